//! Fleet state in sled. One tree per kind of record, values JSON (reports:
//! protobuf bytes, as received). Every write that a caller acts on is
//! flushed first, so a killed control plane never forgets a consumed token
//! or a revocation.
//!
//! Trees: `meta` (fleet name), `hosts`, `tokens` (join tokens, hashed),
//! `certs` (issued agent certificates by serial), `revocations`
//! (`host:<name>` / `serial:<hex>`), `reports` (by report id), `api_tokens`
//! (by SHA-256 of the bearer token).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use convoy_pki::{RevocationList, StoredToken, TokenError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// Store errors.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("sled ({context})")]
    Sled {
        context: &'static str,
        #[source]
        source: sled::Error,
    },
    #[error("corrupt {tree} record {key:?}")]
    Corrupt {
        tree: &'static str,
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("encoding a {tree} record")]
    Encode {
        tree: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("unknown join token")]
    UnknownToken,
    #[error(
        "store format {found} is newer than this build reads ({supported}); \
         run the newer convoy-control-plane or restore a backup taken by this version"
    )]
    FormatTooNew { found: u32, supported: u32 },
    #[error("join token refused")]
    Token(#[source] TokenError),
    #[error("the store holds no fleet name (was `init` run?)")]
    NoFleet,
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

fn sled_err(context: &'static str) -> impl FnOnce(sled::Error) -> StoreError {
    move |source| StoreError::Sled { context, source }
}

/// What we know about a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Unix seconds of the last message on its stream (0: never).
    pub last_seen_unix: u64,
    /// Serial (hex) of its current certificate.
    pub cert_serial: String,
    /// Unix seconds when its current certificate expires.
    pub cert_not_after_unix: u64,
    pub enrolled_at_unix: u64,
}

/// An issued agent certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRecord {
    pub serial: String,
    pub host: String,
    pub not_after_unix: u64,
    pub issued_at_unix: u64,
}

/// Scope of an API token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Admin,
}

/// A stored API token (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiTokenRecord {
    pub name: String,
    pub scope: Scope,
    pub created_unix: u64,
}

/// What the `reports` tree holds per id: the report with the host it came
/// from (the authenticated host, never anything in the message).
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredReport {
    #[prost(string, tag = "1")]
    pub host: String,
    #[prost(message, required, tag = "2")]
    pub report: convoy_shared::proto::Report,
}

/// Unix seconds (0 before the epoch).
pub fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// SHA-256 hex of an API bearer token: the key it is stored under.
pub fn api_token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Group commit over `sled::Db::flush`: a writer takes a ticket after its
/// writes ([`GroupFlush::wrote`]) and waits for a flush that started after
/// them ([`GroupFlush::flush_to`]). While one flush (an fsync) runs, the
/// writers behind it queue; the next one flushes for all of them, so N
/// concurrent writers cost about two fsyncs instead of N, and none acts
/// before its own writes are durable.
#[derive(Debug, Default)]
pub struct GroupFlush {
    written: std::sync::atomic::AtomicU64,
    flushed: std::sync::Mutex<u64>,
}

impl GroupFlush {
    /// Call after writing; returns the ticket to flush to.
    pub fn wrote(&self) -> u64 {
        self.written
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1
    }

    /// Returns once every write made before ticket `ticket` was taken is
    /// flushed.
    pub fn flush_to(&self, db: &sled::Db, ticket: u64) -> sled::Result<()> {
        let mut flushed = self
            .flushed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *flushed >= ticket {
            return Ok(());
        }
        // Everything with a ticket up to here wrote before this flush.
        let target = self.written.load(std::sync::atomic::Ordering::SeqCst);
        db.flush()?;
        *flushed = target;
        Ok(())
    }
}

/// The control plane's sled database.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    flusher: std::sync::Arc<GroupFlush>,
    meta: sled::Tree,
    hosts: sled::Tree,
    tokens: sled::Tree,
    certs: sled::Tree,
    revocations: sled::Tree,
    reports: sled::Tree,
    api_tokens: sled::Tree,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

/// The store's format version, in `meta` under `store_format`. Bumped only
/// for changes an older build would misread; additive record fields
/// (`serde(default)`) do not bump it. A build opens any format up to its
/// own (upgrading older ones in place when a bump needs it) and refuses a
/// newer one instead of misreading it.
pub const STORE_FORMAT: u32 = 1;
const STORE_FORMAT_KEY: &[u8] = b"store_format";

impl Store {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        let db = sled::open(path).map_err(sled_err("open"))?;
        let tree = |name: &'static str| db.open_tree(name).map_err(sled_err("open tree"));
        let meta = tree("meta")?;
        convoy_kit::format::check(&meta, STORE_FORMAT_KEY, STORE_FORMAT).map_err(|e| match e {
            convoy_kit::format::FormatError::TooNew { found, supported } => {
                StoreError::FormatTooNew { found, supported }
            }
            convoy_kit::format::FormatError::Db(e) => sled_err("format")(e),
        })?;
        Ok(Store {
            meta,
            hosts: tree("hosts")?,
            tokens: tree("tokens")?,
            certs: tree("certs")?,
            revocations: tree("revocations")?,
            reports: tree("reports")?,
            api_tokens: tree("api_tokens")?,
            db,
            flusher: std::sync::Arc::new(GroupFlush::default()),
        })
    }

    /// The database, for the other components that keep trees in it
    /// (rollouts, alerts).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Flushes every tree to disk.
    pub fn flush(&self) -> Result<()> {
        self.db.flush().map_err(sled_err("flush"))?;
        Ok(())
    }

    pub fn set_fleet(&self, fleet: &str) -> Result<()> {
        self.meta
            .insert("fleet", fleet.as_bytes())
            .map_err(sled_err("write fleet"))?;
        self.flush()
    }

    pub fn fleet(&self) -> Result<String> {
        let v = self
            .meta
            .get("fleet")
            .map_err(sled_err("read fleet"))?
            .ok_or(StoreError::NoFleet)?;
        Ok(String::from_utf8_lossy(&v).into_owned())
    }

    // ------------------------------------------------------------ tokens

    pub fn put_token(&self, token: &StoredToken) -> Result<()> {
        put(&self.tokens, "tokens", &token.id, token)?;
        self.flush()
    }

    pub fn token(&self, id: &str) -> Result<Option<StoredToken>> {
        get(&self.tokens, "tokens", id)
    }

    /// Verifies `secret` for token `id` and marks it used, atomically
    /// (compare-and-swap: two concurrent enrollments with the same token
    /// cannot both succeed). Returns the token record.
    pub fn consume_token(&self, id: &str, secret: &str, now: SystemTime) -> Result<StoredToken> {
        loop {
            let old = self
                .tokens
                .get(id)
                .map_err(sled_err("read token"))?
                .ok_or(StoreError::UnknownToken)?;
            let mut token: StoredToken = decode("tokens", id, &old)?;
            token.consume(secret, now).map_err(StoreError::Token)?;
            let new = encode("tokens", &token)?;
            match self
                .tokens
                .compare_and_swap(id, Some(old), Some(new))
                .map_err(sled_err("consume token"))?
            {
                Ok(()) => {
                    self.flush()?;
                    return Ok(token);
                }
                Err(_) => continue,
            }
        }
    }

    // ------------------------------------------------------------- hosts

    pub fn put_host(&self, host: &HostRecord) -> Result<()> {
        put(&self.hosts, "hosts", &host.name, host)?;
        self.flush()
    }

    pub fn host(&self, name: &str) -> Result<Option<HostRecord>> {
        get(&self.hosts, "hosts", name)
    }

    pub fn hosts(&self) -> Result<Vec<HostRecord>> {
        all(&self.hosts, "hosts")
    }

    /// Enrolled hosts, counted without decoding their records.
    pub fn host_count(&self) -> Result<usize> {
        let mut n = 0;
        for k in self.hosts.iter().keys() {
            k.map_err(sled_err("count hosts"))?;
            n += 1;
        }
        Ok(n)
    }

    /// Updates `last_seen` (not flushed: losing it in a crash is harmless).
    pub fn touch_host(&self, name: &str, now: SystemTime) -> Result<()> {
        if let Some(mut h) = self.host(name)? {
            h.last_seen_unix = unix(now);
            put(&self.hosts, "hosts", name, &h)?;
        }
        Ok(())
    }

    // ------------------------------------------------------------- certs

    /// Records an issued certificate and makes it the host's current one.
    pub fn record_cert(&self, cert: &CertRecord) -> Result<()> {
        put(&self.certs, "certs", &cert.serial, cert)?;
        if let Some(mut h) = self.host(&cert.host)? {
            h.cert_serial = cert.serial.clone();
            h.cert_not_after_unix = cert.not_after_unix;
            put(&self.hosts, "hosts", &h.name, &h)?;
        }
        self.flush()
    }

    pub fn certs_of(&self, host: &str) -> Result<Vec<CertRecord>> {
        Ok(all::<CertRecord>(&self.certs, "certs")?
            .into_iter()
            .filter(|c| c.host == host)
            .collect())
    }

    // ------------------------------------------------------- revocations

    /// Revokes the host and every certificate it was ever issued. Persisted
    /// (flushed) before returning.
    pub fn revoke_host(&self, host: &str, now: SystemTime) -> Result<()> {
        let at = unix(now).to_string();
        self.revocations
            .insert(format!("host:{host}"), at.as_bytes())
            .map_err(sled_err("revoke host"))?;
        for c in self.certs_of(host)? {
            self.revocations
                .insert(format!("serial:{}", c.serial), at.as_bytes())
                .map_err(sled_err("revoke serial"))?;
        }
        self.flush()
    }

    /// Lifts the host-wide revocation (a re-enrollment with a new token);
    /// its old certificates stay revoked by serial.
    pub fn unrevoke_host(&self, host: &str) -> Result<()> {
        self.revocations
            .remove(format!("host:{host}"))
            .map_err(sled_err("unrevoke host"))?;
        self.flush()
    }

    pub fn revocations(&self) -> Result<RevocationList> {
        let mut list = RevocationList::default();
        for kv in self.revocations.iter() {
            let (k, _) = kv.map_err(sled_err("read revocations"))?;
            let k = String::from_utf8_lossy(&k);
            if let Some(h) = k.strip_prefix("host:") {
                list.revoke_host(h);
            } else if let Some(s) = k.strip_prefix("serial:") {
                list.revoke_serial(s);
            }
        }
        Ok(list)
    }

    // ----------------------------------------------------------- reports

    /// Stores a report (protobuf bytes) under its id. Returns false if one
    /// with that id was already stored (the report is a resend).
    pub fn put_report(&self, id: &str, bytes: &[u8]) -> Result<bool> {
        let prev = self
            .reports
            .compare_and_swap(id, None as Option<&[u8]>, Some(bytes))
            .map_err(sled_err("write report"))?;
        // Reports arrive from every host at once during a rollout: share
        // the flushes.
        let ticket = self.flusher.wrote();
        self.flusher
            .flush_to(&self.db, ticket)
            .map_err(sled_err("flush"))?;
        Ok(prev.is_ok())
    }

    /// Every stored report (protobuf bytes) in id order, which is the
    /// order the agents made them in (ids start with the time).
    pub fn reports(&self) -> Result<Vec<(String, Vec<u8>)>> {
        let mut out = Vec::new();
        for kv in self.reports.iter() {
            let (k, v) = kv.map_err(sled_err("read reports"))?;
            out.push((String::from_utf8_lossy(&k).into_owned(), v.to_vec()));
        }
        Ok(out)
    }

    pub fn report(&self, id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .reports
            .get(id)
            .map_err(sled_err("read report"))?
            .map(|v| v.to_vec()))
    }

    // -------------------------------------------------------- api tokens

    pub fn put_api_token(&self, token_hash: &str, rec: &ApiTokenRecord) -> Result<()> {
        put(&self.api_tokens, "api_tokens", token_hash, rec)?;
        self.flush()
    }

    /// All API token records with their hashes (for constant-time lookup).
    pub fn api_tokens(&self) -> Result<Vec<(String, ApiTokenRecord)>> {
        let mut out = Vec::new();
        for kv in self.api_tokens.iter() {
            let (k, v) = kv.map_err(sled_err("read api tokens"))?;
            let k = String::from_utf8_lossy(&k).into_owned();
            let rec = decode("api_tokens", &k, &v)?;
            out.push((k, rec));
        }
        Ok(out)
    }
}

fn encode<T: Serialize>(tree: &'static str, v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|source| StoreError::Encode { tree, source })
}

fn decode<T: DeserializeOwned>(tree: &'static str, key: &str, v: &[u8]) -> Result<T> {
    serde_json::from_slice(v).map_err(|source| StoreError::Corrupt {
        tree,
        key: key.to_owned(),
        source,
    })
}

fn put<T: Serialize>(t: &sled::Tree, tree: &'static str, key: &str, v: &T) -> Result<()> {
    t.insert(key, encode(tree, v)?)
        .map_err(sled_err("write record"))?;
    Ok(())
}

fn get<T: DeserializeOwned>(t: &sled::Tree, tree: &'static str, key: &str) -> Result<Option<T>> {
    t.get(key)
        .map_err(sled_err("read record"))?
        .map(|v| decode(tree, key, &v))
        .transpose()
}

fn all<T: DeserializeOwned>(t: &sled::Tree, tree: &'static str) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for kv in t.iter() {
        let (k, v) = kv.map_err(sled_err("scan tree"))?;
        out.push(decode(tree, &String::from_utf8_lossy(&k), &v)?);
    }
    Ok(out)
}

#[cfg(test)]
mod format_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_newer_store_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        {
            let s = Store::open(&path).unwrap();
            assert_eq!(
                s.meta.get(STORE_FORMAT_KEY).unwrap().unwrap().as_ref(),
                b"1"
            );
            s.meta.insert(STORE_FORMAT_KEY, b"2").unwrap();
            s.flush().unwrap();
        }
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::FormatTooNew {
                found: 2,
                supported: 1
            })
        ));
    }
}
