//! Join tokens: `convoy1.<id>.<secret>.<ca_sha256_hex>`.
//!
//! `id` is 8 random bytes (16 lowercase hex chars) used to look the token
//! up; `secret` is 32 random bytes (64 hex chars) of which only the SHA-256
//! is stored; the CA fingerprint lets the agent pin the CA on first contact.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;

use crate::identity::validate_host_name;
use crate::time::unix_secs;

/// Prefix (format version) of printed tokens.
pub const TOKEN_PREFIX: &str = "convoy1";

const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;
const FINGERPRINT_BYTES: usize = 32;

/// Token parsing, creation and verification errors.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TokenError {
    #[error("join token must start with {TOKEN_PREFIX:?}")]
    BadPrefix,
    #[error("join token must have 4 '.'-separated parts, found {0}")]
    WrongPartCount(usize),
    #[error("join token {field} must be {expected_len} lowercase hex characters")]
    BadField {
        field: &'static str,
        expected_len: usize,
    },
    #[error("invalid host name for join token: {0}")]
    BadHost(String),
    #[error("time out of range")]
    TimeOutOfRange,
    #[error("join token has expired")]
    Expired,
    #[error("join token has already been used")]
    AlreadyUsed,
    #[error("join token secret does not match")]
    BadSecret,
}

/// Namespace for creating join tokens.
#[derive(Debug)]
pub struct JoinToken;

impl JoinToken {
    /// Creates a token for `host`, valid for `ttl` from `now`. Returns the
    /// printed token (shown once to the operator) and the record to store.
    #[expect(
        clippy::new_ret_no_self,
        reason = "the agreed API returns (printed token, stored record)"
    )]
    pub fn new(
        host: &str,
        labels: BTreeMap<String, String>,
        ttl: Duration,
        now: SystemTime,
        ca_fingerprint: &str,
    ) -> Result<(String, StoredToken), TokenError> {
        validate_host_name(host).map_err(|e| TokenError::BadHost(e.to_string()))?;
        check_hex(ca_fingerprint, FINGERPRINT_BYTES, "CA fingerprint")?;
        let expires = now.checked_add(ttl).ok_or(TokenError::TimeOutOfRange)?;
        let expires_at_unix =
            u64::try_from(unix_secs(expires).map_err(|_| TokenError::TimeOutOfRange)?)
                .map_err(|_| TokenError::TimeOutOfRange)?;
        let mut rng = rand::rng();
        let mut id = [0u8; ID_BYTES];
        let mut secret = [0u8; SECRET_BYTES];
        rng.fill_bytes(&mut id);
        rng.fill_bytes(&mut secret);
        let id = hex::encode(id);
        let printed = format!(
            "{TOKEN_PREFIX}.{id}.{}.{ca_fingerprint}",
            hex::encode(secret)
        );
        let stored = StoredToken {
            id,
            host: host.to_owned(),
            labels,
            expires_at_unix,
            secret_hash_hex: hex::encode(Sha256::digest(secret)),
            used: false,
        };
        Ok((printed, stored))
    }
}

/// What the control plane keeps for a token. Never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredToken {
    pub id: String,
    pub host: String,
    pub labels: BTreeMap<String, String>,
    pub expires_at_unix: u64,
    pub secret_hash_hex: String,
    pub used: bool,
}

impl StoredToken {
    /// Checks `secret` (hex, as in the printed token) against the stored
    /// hash in constant time, then that the token is unused and unexpired.
    /// The secret is checked first so that an attacker without it learns
    /// nothing about the token's state.
    pub fn verify(&self, secret: &str, now: SystemTime) -> Result<(), TokenError> {
        let secret_bytes = hex::decode(secret).map_err(|_| TokenError::BadSecret)?;
        let presented = Sha256::digest(&secret_bytes);
        let stored = hex::decode(&self.secret_hash_hex).map_err(|_| TokenError::BadSecret)?;
        if !constant_time_eq(presented.as_slice(), &stored) {
            return Err(TokenError::BadSecret);
        }
        if self.used {
            return Err(TokenError::AlreadyUsed);
        }
        let now_unix = unix_secs(now).map_err(|_| TokenError::TimeOutOfRange)?;
        if now_unix >= i64::try_from(self.expires_at_unix).unwrap_or(i64::MAX) {
            return Err(TokenError::Expired);
        }
        Ok(())
    }

    /// [`verify`](Self::verify), then marks the token used.
    pub fn consume(&mut self, secret: &str, now: SystemTime) -> Result<(), TokenError> {
        self.verify(secret, now)?;
        self.used = true;
        Ok(())
    }
}

/// A printed token split into its parts.
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedToken {
    pub id: String,
    /// Hex of the 32-byte secret.
    pub secret: String,
    /// Lowercase hex SHA-256 of the CA certificate DER.
    pub ca_fingerprint: String,
}

impl std::fmt::Debug for ParsedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParsedToken")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .field("ca_fingerprint", &self.ca_fingerprint)
            .finish()
    }
}

/// Parses `convoy1.<id>.<secret>.<ca_sha256_hex>` (surrounding whitespace
/// is ignored).
pub fn parse_token(s: &str) -> Result<ParsedToken, TokenError> {
    let parts: Vec<&str> = s.trim().split('.').collect();
    if parts.first() != Some(&TOKEN_PREFIX) {
        return Err(TokenError::BadPrefix);
    }
    let [_, id, secret, fp] = parts.as_slice() else {
        return Err(TokenError::WrongPartCount(parts.len()));
    };
    check_hex(id, ID_BYTES, "id")?;
    check_hex(secret, SECRET_BYTES, "secret")?;
    check_hex(fp, FINGERPRINT_BYTES, "CA fingerprint")?;
    Ok(ParsedToken {
        id: (*id).to_owned(),
        secret: (*secret).to_owned(),
        ca_fingerprint: (*fp).to_owned(),
    })
}

fn check_hex(s: &str, bytes: usize, field: &'static str) -> Result<(), TokenError> {
    let ok = s.len() == bytes * 2
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if ok {
        Ok(())
    } else {
        Err(TokenError::BadField {
            field,
            expected_len: bytes * 2,
        })
    }
}

/// Compares two byte strings in time that depends only on their lengths
/// (which are public: both are SHA-256 digests), so the running time does
/// not reveal how long a matching prefix an attacker has guessed.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ct_eq() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"\x00", b"\x80"));
    }
}
