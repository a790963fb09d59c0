//! Host identities carried in agent certificates as SPIFFE URI SANs.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use x509_parser::extensions::GeneralName;

use crate::error::{PkiError, Result};
use crate::time::from_unix_secs;

/// Who an agent certificate says it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostIdentity {
    pub fleet: String,
    pub host: String,
    /// Lowercase hex of the certificate serial number's DER content bytes.
    pub serial_hex: String,
    pub not_after: SystemTime,
}

/// `spiffe://<fleet>/host/<host>`.
pub fn spiffe_uri(fleet: &str, host: &str) -> String {
    format!("spiffe://{fleet}/host/{host}")
}

/// Host names: 1..=63 characters of `[a-z0-9-]`, not starting or ending
/// with `-` (a DNS label, lowercase only).
pub fn validate_host_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(PkiError::InvalidHostName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > 63 {
        return bad("longer than 63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return bad("only a-z, 0-9 and '-' are allowed");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return bad("must not start or end with '-'");
    }
    Ok(())
}

/// Fleet names become the SPIFFE trust domain: 1..=253 characters of
/// `[a-z0-9.-_]`.
pub fn validate_fleet_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(PkiError::InvalidFleetName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > 253 {
        return bad("longer than 253 characters");
    }
    if !name.bytes().all(|b| {
        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.' || b == b'_'
    }) {
        return bad("only a-z, 0-9, '.', '-' and '_' are allowed");
    }
    Ok(())
}

/// Parses `spiffe://<fleet>/host/<host>` and checks the fleet.
pub(crate) fn parse_spiffe(uri: &str, expected_fleet: &str) -> Result<String> {
    let malformed = |reason| PkiError::MalformedIdentity {
        uri: uri.to_owned(),
        reason,
    };
    let rest = uri
        .strip_prefix("spiffe://")
        .ok_or_else(|| malformed("scheme is not spiffe://"))?;
    let (fleet, path) = rest
        .split_once('/')
        .ok_or_else(|| malformed("no path after the trust domain"))?;
    if fleet != expected_fleet {
        return Err(PkiError::WrongFleet {
            expected: expected_fleet.to_owned(),
            found: fleet.to_owned(),
        });
    }
    let host = path
        .strip_prefix("host/")
        .ok_or_else(|| malformed("path does not start with host/"))?;
    validate_host_name(host).map_err(|_| malformed("host name is invalid"))?;
    Ok(host.to_owned())
}

/// Reads the host identity from an agent certificate (DER). Fails if the
/// certificate has no SPIFFE URI SAN, more than one, one for another fleet,
/// or a malformed one. Does not verify the signature: do that (TLS) first.
pub fn host_identity(cert_der: &[u8], fleet: &str) -> Result<HostIdentity> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).map_err(|e| PkiError::Parse {
        what: "agent certificate",
        detail: e.to_string(),
    })?;
    let san = cert
        .subject_alternative_name()
        .map_err(|e| PkiError::Parse {
            what: "subject alternative name",
            detail: e.to_string(),
        })?
        .ok_or(PkiError::MissingIdentity)?;
    let uris: Vec<&str> = san
        .value
        .general_names
        .iter()
        .filter_map(|g| match g {
            GeneralName::URI(u) if u.starts_with("spiffe://") => Some(*u),
            _ => None,
        })
        .collect();
    let uri = match uris.as_slice() {
        [] => return Err(PkiError::MissingIdentity),
        [one] => *one,
        many => return Err(PkiError::AmbiguousIdentity(many.len())),
    };
    let host = parse_spiffe(uri, fleet)?;
    Ok(HostIdentity {
        fleet: fleet.to_owned(),
        host,
        serial_hex: hex::encode(cert.raw_serial()),
        not_after: from_unix_secs(cert.validity().not_after.timestamp()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names() {
        for ok in ["a", "web-1", "0", "gpu01", &"a".repeat(63)] {
            assert!(validate_host_name(ok).is_ok(), "{ok} should be valid");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "-",
            "Web",
            "a_b",
            "a.b",
            "a b",
            "é",
            &"a".repeat(64),
        ] {
            assert!(
                validate_host_name(bad).is_err(),
                "{bad:?} should be invalid"
            );
        }
    }

    #[test]
    fn spiffe_parsing() {
        assert_eq!(
            parse_spiffe("spiffe://prod/host/web-1", "prod").ok(),
            Some("web-1".to_owned())
        );
        assert!(matches!(
            parse_spiffe("spiffe://staging/host/web-1", "prod"),
            Err(PkiError::WrongFleet { .. })
        ));
        for bad in [
            "spiffe://prod",
            "spiffe://prod/",
            "spiffe://prod/host/",
            "spiffe://prod/node/web-1",
            "spiffe://prod/host/web-1/extra",
            "spiffe://prod/host/Web",
            "https://prod/host/web-1",
        ] {
            assert!(
                matches!(
                    parse_spiffe(bad, "prod"),
                    Err(PkiError::MalformedIdentity { .. })
                ),
                "{bad} should be malformed"
            );
        }
    }

    #[test]
    fn fleet_names() {
        assert!(validate_fleet_name("prod").is_ok());
        assert!(validate_fleet_name("acme.example_1-x").is_ok());
        assert!(validate_fleet_name("").is_err());
        assert!(validate_fleet_name("Prod").is_err());
        assert!(validate_fleet_name("a/b").is_err());
    }
}
