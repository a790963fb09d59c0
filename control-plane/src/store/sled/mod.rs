//! The embedded store: one sled database in the data dir's `state/`, one
//! tree per kind of record, values JSON (reports: protobuf, as received).
//!
//! Trees: `meta` (fleet name, format stamp, rollout pointers), `hosts`,
//! `tokens` (join tokens, hashed), `certs` (issued agent certificates by
//! serial), `revocations` (`host:<name>` / `serial:<hex>`), `reports` (by
//! report id), `api_tokens` (by SHA-256 of the bearer token); the rollout
//! trees (`rollouts.rs`), `audit` (`audit.rs`) and the alert outbox
//! (`outbox.rs`).
//!
//! Every write a caller acts on is flushed first, so a killed control
//! plane never forgets a consumed token or a revocation. Multi-record
//! changes are sled transactions over the trees they touch.

mod audit;
mod outbox;
mod rollouts;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use convoy_pki::{RevocationList, StoredToken};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sled::Transactional;

use super::{
    ApiTokenRecord, CertRecord, Export, ExportError, Exported, FleetStore, HostRecord, Result,
    StoreError, StoredReport, unix,
};

/// The store's format version, in `meta` under `store_format`. Bumped only
/// for changes an older build would misread; additive record fields
/// (`serde(default)`) do not bump it. A build opens any format up to its
/// own (upgrading older ones in place when a bump needs it) and refuses a
/// newer one instead of misreading it.
pub const STORE_FORMAT: u32 = 1;
const STORE_FORMAT_KEY: &[u8] = b"store_format";

pub(super) fn backend(context: &'static str) -> impl FnOnce(sled::Error) -> StoreError {
    move |e| StoreError::Backend {
        context,
        source: Box::new(e),
    }
}

/// A failed sled transaction as a store error.
pub(super) fn tx_error(
    context: &'static str,
) -> impl FnOnce(sled::transaction::TransactionError<StoreError>) -> StoreError {
    move |e| match e {
        sled::transaction::TransactionError::Abort(e) => e,
        sled::transaction::TransactionError::Storage(e) => backend(context)(e),
    }
}

pub(super) fn encode<T: Serialize>(collection: &'static str, v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| StoreError::Encode {
        collection,
        source: Box::new(e),
    })
}

pub(super) fn decode<T: DeserializeOwned>(
    collection: &'static str,
    key: &[u8],
    v: &[u8],
) -> Result<T> {
    serde_json::from_slice(v).map_err(|e| StoreError::Corrupt {
        collection,
        key: String::from_utf8_lossy(key).into_owned(),
        source: Box::new(e),
    })
}

fn put<T: Serialize>(t: &sled::Tree, collection: &'static str, key: &str, v: &T) -> Result<()> {
    t.insert(key, encode(collection, v)?)
        .map_err(backend("write record"))?;
    Ok(())
}

pub(super) fn get<T: DeserializeOwned>(
    t: &sled::Tree,
    collection: &'static str,
    key: &str,
) -> Result<Option<T>> {
    t.get(key)
        .map_err(backend("read record"))?
        .map(|v| decode(collection, key.as_bytes(), &v))
        .transpose()
}

fn all<T: DeserializeOwned>(t: &sled::Tree, collection: &'static str) -> Result<Vec<T>> {
    let mut out = Vec::new();
    for kv in t.iter() {
        let (k, v) = kv.map_err(backend("scan tree"))?;
        out.push(decode(collection, &k, &v)?);
    }
    Ok(out)
}

/// Group commit over `sled::Db::flush`: a writer takes a ticket after its
/// writes ([`GroupFlush::wrote`]) and waits for a flush that started after
/// them ([`GroupFlush::flush_to`]). While one flush (an fsync) runs, the
/// writers behind it queue; the next one flushes for all of them, so N
/// concurrent writers cost about two fsyncs instead of N, and none acts
/// before its own writes are durable.
#[derive(Debug, Default)]
pub struct GroupFlush {
    written: AtomicU64,
    flushed: std::sync::Mutex<u64>,
}

impl GroupFlush {
    /// Call after writing; returns the ticket to flush to.
    pub fn wrote(&self) -> u64 {
        self.written.fetch_add(1, Ordering::SeqCst) + 1
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
        let target = self.written.load(Ordering::SeqCst);
        db.flush()?;
        *flushed = target;
        Ok(())
    }
}

/// The trees of the fleet records.
#[derive(Clone)]
struct FleetTrees {
    meta: sled::Tree,
    hosts: sled::Tree,
    tokens: sled::Tree,
    certs: sled::Tree,
    revocations: sled::Tree,
    reports: sled::Tree,
    api_tokens: sled::Tree,
}

/// The control plane's sled database; cheap to clone.
#[derive(Clone)]
pub struct SledStore {
    db: sled::Db,
    flusher: Arc<GroupFlush>,
    fleet: FleetTrees,
    rollouts: rollouts::Trees,
    audit: sled::Tree,
    /// Entries in `audit` (counted once at open).
    audit_len: Arc<std::sync::atomic::AtomicUsize>,
    outbox: outbox::Trees,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").finish_non_exhaustive()
    }
}

impl SledStore {
    /// Opens (or creates) the database at `path`, refusing a newer format
    /// and upgrading older records in place.
    pub fn open(path: &Path) -> Result<SledStore> {
        let db = sled::open(path).map_err(backend("open"))?;
        Self::from_db(db)
    }

    /// The store over an open database.
    pub fn from_db(db: sled::Db) -> Result<SledStore> {
        let tree = |name: &'static str| db.open_tree(name).map_err(backend("open tree"));
        let meta = tree("meta")?;
        convoy_kit::format::check(&meta, STORE_FORMAT_KEY, STORE_FORMAT).map_err(|e| match e {
            convoy_kit::format::FormatError::TooNew { found, supported } => {
                StoreError::FormatTooNew { found, supported }
            }
            convoy_kit::format::FormatError::Db(e) => backend("format")(e),
        })?;
        let audit = tree("audit")?;
        let audit_len = Arc::new(std::sync::atomic::AtomicUsize::new(audit.len()));
        let store = SledStore {
            fleet: FleetTrees {
                meta,
                hosts: tree("hosts")?,
                tokens: tree("tokens")?,
                certs: tree("certs")?,
                revocations: tree("revocations")?,
                reports: tree("reports")?,
                api_tokens: tree("api_tokens")?,
            },
            rollouts: rollouts::Trees::open(&db)?,
            audit,
            audit_len,
            outbox: outbox::Trees::open(&db)?,
            flusher: Arc::new(GroupFlush::default()),
            db,
        };
        store.upgrade_rollouts()?;
        Ok(store)
    }

    /// The database (backups of a stopped daemon, benches).
    pub fn db(&self) -> &sled::Db {
        &self.db
    }

    /// Flushes every tree to disk.
    pub fn flush(&self) -> Result<()> {
        self.db.flush().map_err(backend("flush"))?;
        Ok(())
    }

    /// Flushes, sharing the fsync with concurrent writers.
    fn flush_shared(&self) -> Result<()> {
        let ticket = self.flusher.wrote();
        self.flusher
            .flush_to(&self.db, ticket)
            .map_err(backend("flush"))
    }

    fn next_id(&self) -> Result<u64> {
        self.db.generate_id().map_err(backend("sequence number"))
    }

    fn host_with_cert(&self, cert: &CertRecord) -> Result<Option<HostRecord>> {
        let mut h: Option<HostRecord> = get(&self.fleet.hosts, "hosts", &cert.host)?;
        if let Some(h) = &mut h {
            h.cert_serial = cert.serial.clone();
            h.cert_not_after_unix = cert.not_after_unix;
        }
        Ok(h)
    }
}

impl FleetStore for SledStore {
    fn fleet(&self) -> Result<String> {
        let v = self
            .fleet
            .meta
            .get("fleet")
            .map_err(backend("read fleet"))?
            .ok_or(StoreError::NoFleet)?;
        Ok(String::from_utf8_lossy(&v).into_owned())
    }

    fn set_fleet(&self, fleet: &str) -> Result<()> {
        self.fleet
            .meta
            .insert("fleet", fleet.as_bytes())
            .map_err(backend("write fleet"))?;
        SledStore::flush(self)
    }

    fn flush(&self) -> Result<()> {
        SledStore::flush(self)
    }

    fn put_token(&self, token: &StoredToken) -> Result<()> {
        put(&self.fleet.tokens, "tokens", &token.id, token)?;
        SledStore::flush(self)
    }

    fn token(&self, id: &str) -> Result<Option<StoredToken>> {
        get(&self.fleet.tokens, "tokens", id)
    }

    fn consume_token(&self, id: &str, secret: &str, now: SystemTime) -> Result<StoredToken> {
        loop {
            let old = self
                .fleet
                .tokens
                .get(id)
                .map_err(backend("read token"))?
                .ok_or(StoreError::UnknownToken)?;
            let mut token: StoredToken = decode("tokens", id.as_bytes(), &old)?;
            token.consume(secret, now).map_err(StoreError::Token)?;
            let new = encode("tokens", &token)?;
            match self
                .fleet
                .tokens
                .compare_and_swap(id, Some(old), Some(new))
                .map_err(backend("consume token"))?
            {
                Ok(()) => {
                    SledStore::flush(self)?;
                    return Ok(token);
                }
                Err(_) => continue,
            }
        }
    }

    fn put_host(&self, host: &HostRecord) -> Result<()> {
        put(&self.fleet.hosts, "hosts", &host.name, host)?;
        SledStore::flush(self)
    }

    fn host(&self, name: &str) -> Result<Option<HostRecord>> {
        get(&self.fleet.hosts, "hosts", name)
    }

    fn hosts(&self) -> Result<Vec<HostRecord>> {
        all(&self.fleet.hosts, "hosts")
    }

    fn host_count(&self) -> Result<usize> {
        let mut n = 0;
        for k in self.fleet.hosts.iter().keys() {
            k.map_err(backend("count hosts"))?;
            n += 1;
        }
        Ok(n)
    }

    fn touch_host(&self, name: &str, now: SystemTime) -> Result<()> {
        if let Some(mut h) = self.host(name)? {
            h.last_seen_unix = unix(now);
            put(&self.fleet.hosts, "hosts", name, &h)?;
        }
        Ok(())
    }

    fn enroll_host(&self, host: &HostRecord, cert: &CertRecord) -> Result<()> {
        let mut h = host.clone();
        h.cert_serial = cert.serial.clone();
        h.cert_not_after_unix = cert.not_after_unix;
        let host_bytes = encode("hosts", &h)?;
        let cert_bytes = encode("certs", cert)?;
        let t = &self.fleet;
        (&t.hosts, &t.certs, &t.revocations)
            .transaction(|(hosts, certs, revocations)| {
                hosts.insert(h.name.as_bytes(), host_bytes.as_slice())?;
                certs.insert(cert.serial.as_bytes(), cert_bytes.as_slice())?;
                revocations.remove(format!("host:{}", h.name).as_bytes())?;
                Ok::<_, sled::transaction::ConflictableTransactionError<StoreError>>(())
            })
            .map_err(tx_error("enroll host"))?;
        SledStore::flush(self)
    }

    fn record_cert(&self, cert: &CertRecord) -> Result<()> {
        let cert_bytes = encode("certs", cert)?;
        let host = self
            .host_with_cert(cert)?
            .map(|h| encode("hosts", &h).map(|b| (h.name, b)))
            .transpose()?;
        let t = &self.fleet;
        (&t.hosts, &t.certs)
            .transaction(|(hosts, certs)| {
                certs.insert(cert.serial.as_bytes(), cert_bytes.as_slice())?;
                if let Some((name, bytes)) = &host {
                    hosts.insert(name.as_bytes(), bytes.as_slice())?;
                }
                Ok::<_, sled::transaction::ConflictableTransactionError<StoreError>>(())
            })
            .map_err(tx_error("record certificate"))?;
        SledStore::flush(self)
    }

    fn certs_of(&self, host: &str) -> Result<Vec<CertRecord>> {
        Ok(all::<CertRecord>(&self.fleet.certs, "certs")?
            .into_iter()
            .filter(|c| c.host == host)
            .collect())
    }

    fn revoke_host(&self, host: &str, now: SystemTime) -> Result<()> {
        let at = unix(now).to_string();
        let mut batch = sled::Batch::default();
        batch.insert(format!("host:{host}").as_bytes(), at.as_bytes());
        for c in self.certs_of(host)? {
            batch.insert(format!("serial:{}", c.serial).as_bytes(), at.as_bytes());
        }
        self.fleet
            .revocations
            .apply_batch(batch)
            .map_err(backend("revoke host"))?;
        SledStore::flush(self)
    }

    fn unrevoke_host(&self, host: &str) -> Result<()> {
        self.fleet
            .revocations
            .remove(format!("host:{host}"))
            .map_err(backend("unrevoke host"))?;
        SledStore::flush(self)
    }

    fn revocations(&self) -> Result<RevocationList> {
        let mut list = RevocationList::default();
        for kv in self.fleet.revocations.iter() {
            let (k, _) = kv.map_err(backend("read revocations"))?;
            let k = String::from_utf8_lossy(&k);
            if let Some(h) = k.strip_prefix("host:") {
                list.revoke_host(h);
            } else if let Some(s) = k.strip_prefix("serial:") {
                list.revoke_serial(s);
            }
        }
        Ok(list)
    }

    fn put_report(&self, id: &str, report: &StoredReport) -> Result<bool> {
        use prost::Message as _;
        let bytes = report.encode_to_vec();
        let prev = self
            .fleet
            .reports
            .compare_and_swap(id, None as Option<&[u8]>, Some(bytes))
            .map_err(backend("write report"))?;
        // Reports arrive from every host at once during a rollout: share
        // the flushes.
        self.flush_shared()?;
        Ok(prev.is_ok())
    }

    fn report(&self, id: &str) -> Result<Option<StoredReport>> {
        use prost::Message as _;
        self.fleet
            .reports
            .get(id)
            .map_err(backend("read report"))?
            .map(|v| {
                StoredReport::decode(v.as_ref()).map_err(|e| StoreError::Corrupt {
                    collection: "reports",
                    key: id.to_owned(),
                    source: Box::new(e),
                })
            })
            .transpose()
    }

    fn reports_of(&self, host: &str) -> Result<Vec<(String, StoredReport)>> {
        use prost::Message as _;
        let mut out = Vec::new();
        for kv in self.fleet.reports.iter() {
            let (k, v) = kv.map_err(backend("read reports"))?;
            let id = String::from_utf8_lossy(&k).into_owned();
            match StoredReport::decode(v.as_ref()) {
                Ok(r) if r.host == host => out.push((id, r)),
                Ok(_) => {}
                // One undecodable record must not hide the rest.
                Err(e) => {
                    tracing::warn!(report = %id, error = %e, "undecodable stored report skipped")
                }
            }
        }
        Ok(out)
    }

    fn put_api_token(&self, token_hash: &str, rec: &ApiTokenRecord) -> Result<()> {
        put(&self.fleet.api_tokens, "api_tokens", token_hash, rec)?;
        SledStore::flush(self)
    }

    fn api_tokens(&self) -> Result<Vec<(String, ApiTokenRecord)>> {
        let mut out = Vec::new();
        for kv in self.fleet.api_tokens.iter() {
            let (k, v) = kv.map_err(backend("read api tokens"))?;
            let rec = decode("api_tokens", &k, &v)?;
            out.push((String::from_utf8_lossy(&k).into_owned(), rec));
        }
        Ok(out)
    }
}

/// A sled database as a whole: every tree, including ones this build does
/// not know (a backup carries them all).
impl Export for sled::Db {
    fn export(
        &self,
        visit: &mut dyn FnMut(Exported<'_>) -> std::io::Result<()>,
    ) -> Result<(), ExportError> {
        for name in self.tree_names() {
            let tree = self.open_tree(&name).map_err(backend("open tree"))?;
            visit(Exported::Collection(&name))?;
            for kv in tree.iter() {
                let (k, v) = kv.map_err(backend("read tree"))?;
                visit(Exported::Record { key: &k, value: &v })?;
            }
            visit(Exported::End)?;
        }
        Ok(())
    }
}

impl Export for SledStore {
    fn export(
        &self,
        visit: &mut dyn FnMut(Exported<'_>) -> std::io::Result<()>,
    ) -> Result<(), ExportError> {
        Export::export(&self.db, visit)
    }
}
