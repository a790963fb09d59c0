//! The control plane's durable state behind narrow traits, one per
//! concern: [`FleetStore`] (hosts, join and API tokens, certificates,
//! revocations, agent reports, the fleet name), [`RolloutStore`] (commits,
//! rendered desired states, rollouts), [`AuditStore`], [`OutboxStore`]
//! (alerts and their deliveries) and [`Export`] (backups). [`Store`] is all
//! of them; each component is handed only the part it uses.
//!
//! The traits name no backend type: records are plain data
//! (`records.rs`), errors are [`StoreError`], and every change that must be
//! atomic across records is one method (a rollout step with its host
//! assignments, an alert with its condition and deliveries, an enrollment
//! with its certificate). The embedded implementation is [`SledStore`];
//! the contract tests (`contract.rs`) are written against `&dyn Store` so
//! another backend runs the same suite.
//!
//! # Guarantees
//! - A method that returns `Ok` has made its writes durable, except
//!   [`FleetStore::touch_host`] (losing a last-seen time is harmless) and
//!   the rollout writes, which return a [`Ticket`] to pass to
//!   [`RolloutStore::wait_durable`] before acting on them (so concurrent
//!   steps share one fsync).
//! - Methods are blocking: call them from `spawn_blocking` in async code.

mod records;
pub mod sled;

#[cfg(test)]
pub(crate) mod contract;

use std::error::Error as StdError;
use std::fmt::Debug;
use std::time::SystemTime;

use convoy_pki::{RevocationList, StoredToken, TokenError};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::alerts::model::Alert;
use crate::rollout::step::{Rollout, RolloutStatus};

pub use self::sled::SledStore;
pub use records::{
    ApiTokenRecord, AuditEntry, AuditQuery, CertRecord, CommitRecord, CondState, Condition,
    ConditionChange, DeliveryState, DeliveryStatus, Exported, HostDesired, HostRecord, NewAlert,
    PendingEntry, Resolving, RolloutStep, Scope, StoredReport,
};

/// A backend's own error, boxed so the traits name no backend.
pub type BackendError = Box<dyn StdError + Send + Sync + 'static>;

/// Store errors, the same for every backend.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("storage backend ({context})")]
    Backend {
        context: &'static str,
        #[source]
        source: BackendError,
    },
    #[error("corrupt {collection} record {key:?}")]
    Corrupt {
        collection: &'static str,
        key: String,
        #[source]
        source: BackendError,
    },
    #[error("encoding a {collection} record")]
    Encode {
        collection: &'static str,
        #[source]
        source: BackendError,
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

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Says when rollout writes are durable: pass it to
/// [`RolloutStore::wait_durable`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[must_use = "wait for the write to be durable before acting on it"]
pub struct Ticket(pub u64);

/// Hosts, tokens, certificates, revocations, reports: what the agent
/// gateway and the API keep.
pub trait FleetStore: Send + Sync + Debug {
    /// The fleet this store belongs to (set once by `init`).
    fn fleet(&self) -> Result<String>;
    fn set_fleet(&self, fleet: &str) -> Result<()>;
    /// Makes every write so far durable.
    fn flush(&self) -> Result<()>;

    fn put_token(&self, token: &StoredToken) -> Result<()>;
    fn token(&self, id: &str) -> Result<Option<StoredToken>>;
    /// Verifies `secret` for token `id` and marks it used, atomically (two
    /// concurrent enrollments with one token cannot both succeed). Returns
    /// the token as consumed.
    fn consume_token(&self, id: &str, secret: &str, now: SystemTime) -> Result<StoredToken>;

    fn put_host(&self, host: &HostRecord) -> Result<()>;
    fn host(&self, name: &str) -> Result<Option<HostRecord>>;
    fn hosts(&self) -> Result<Vec<HostRecord>>;
    /// Enrolled hosts, without reading their records.
    fn host_count(&self) -> Result<usize>;
    /// Updates the host's last-seen time (not necessarily durable).
    fn touch_host(&self, name: &str, now: SystemTime) -> Result<()>;
    /// An enrollment, atomically: the host record (made current on `cert`),
    /// the certificate, and the host-wide revocation lifted (its old
    /// certificates stay revoked by serial).
    fn enroll_host(&self, host: &HostRecord, cert: &CertRecord) -> Result<()>;

    /// Records an issued certificate and makes it the host's current one.
    fn record_cert(&self, cert: &CertRecord) -> Result<()>;
    fn certs_of(&self, host: &str) -> Result<Vec<CertRecord>>;

    /// Revokes the host and every certificate it was ever issued.
    fn revoke_host(&self, host: &str, now: SystemTime) -> Result<()>;
    /// Lifts the host-wide revocation; its certificates stay revoked.
    fn unrevoke_host(&self, host: &str) -> Result<()>;
    fn revocations(&self) -> Result<RevocationList>;

    /// Stores a report under its id. False if one with that id was stored
    /// before (a resend); the first one is kept.
    fn put_report(&self, id: &str, report: &StoredReport) -> Result<bool>;
    fn report(&self, id: &str) -> Result<Option<StoredReport>>;
    /// The reports `host` sent, in id order (the order the agent made them
    /// in: ids start with the time).
    fn reports_of(&self, host: &str) -> Result<Vec<(String, StoredReport)>>;

    fn put_api_token(&self, token_hash: &str, rec: &ApiTokenRecord) -> Result<()>;
    /// Every API token record with its hash (compared in constant time).
    fn api_tokens(&self) -> Result<Vec<(String, ApiTokenRecord)>>;
}

/// Every record of every collection, for backups.
pub trait Export {
    /// Visits each collection, its records, its end.
    fn export(
        &self,
        visit: &mut dyn FnMut(Exported<'_>) -> std::io::Result<()>,
    ) -> Result<(), ExportError>;
}

/// An export stopped by the store or by its visitor.
#[derive(Debug, Error)]
pub enum ExportError {
    #[error("reading the store")]
    Store(#[from] StoreError),
    #[error("writing the export")]
    Write(#[from] std::io::Error),
}

/// Commits, rendered desired states, rollouts: what the rollout engine
/// keeps.
pub trait RolloutStore: Send + Sync + Debug {
    fn commit(&self, id: &str) -> Result<Option<CommitRecord>>;
    /// Records a commit (a rejected one; accepted ones come with their
    /// rollout through [`RolloutStore::start_rollout`]).
    fn put_commit(&self, rec: &CommitRecord) -> Result<()>;
    fn last_good_commit(&self) -> Result<Option<String>>;

    /// A rendered host state, kept per host and revision (written once,
    /// shared by every commit that renders the same state).
    fn put_rendered_state(&self, host: &str, revision: &str, state_json: &[u8]) -> Result<()>;
    fn rendered_state(&self, host: &str, revision: &str) -> Result<Option<Vec<u8>>>;
    /// What `host` should run now.
    fn host_desired(&self, host: &str) -> Result<Option<HostDesired>>;

    /// A new rollout sequence number (ids sort by it).
    fn next_rollout_seq(&self) -> Result<u64>;
    fn current_rollout_id(&self) -> Result<Option<String>>;
    /// Starts a rollout, atomically: its commit record, the commit as last
    /// good, the rollout as current, and the rollout itself.
    fn start_rollout(&self, commit: &CommitRecord, rollout: &Rollout) -> Result<Ticket>;
    /// Writes one step atomically: the host assignments and the rollout's
    /// changes.
    fn write_step(&self, step: &RolloutStep<'_>) -> Result<Ticket>;
    /// Returns once the writes that gave `ticket` are durable.
    fn wait_durable(&self, ticket: Ticket) -> Result<()>;
    fn rollout(&self, id: &str) -> Result<Option<Rollout>>;
    /// Rollouts, newest first.
    fn rollouts(&self, limit: usize) -> Result<Vec<Rollout>>;
    /// The newest rollouts' statuses, newest first, without their hosts.
    fn rollout_statuses(&self, limit: usize) -> Result<Vec<RolloutStatus>>;
}

/// The audit log: append-only, bounded.
pub trait AuditStore: Send + Sync + Debug {
    /// Appends `entry` with the next sequence number (returned), pruning
    /// the oldest entries past `keep`.
    fn append_audit(&self, entry: &AuditEntry, keep: usize) -> Result<u64>;
    /// Newest first, filtered.
    fn audit(&self, q: &AuditQuery) -> Result<Vec<AuditEntry>>;
}

/// The alert outbox: alerts, their per-sink deliveries and the queue of
/// pending ones, and alert conditions.
pub trait OutboxStore: Send + Sync + Debug {
    /// A new alert sequence number (orders the outbox; names occurrences).
    fn next_alert_seq(&self) -> Result<u64>;
    fn alert_count(&self) -> Result<usize>;
    /// Deliveries neither delivered nor given up.
    fn pending_count(&self) -> Result<usize>;

    /// Reads condition `key` and applies, atomically, the change `decide`
    /// makes of it (`decide` may run more than once; the last run's change
    /// is the one applied).
    fn update_condition(
        &self,
        key: &str,
        decide: &mut dyn FnMut(Option<&Condition>) -> ConditionChange,
    ) -> Result<()>;
    /// Stores an alert with its deliveries (no condition: test messages).
    fn insert_alert(&self, alert: &NewAlert) -> Result<()>;
    /// Conditions whose resolve is held, with when it was resolved.
    fn held_resolves(&self) -> Result<Vec<(String, u64)>>;

    fn alert(&self, id: &str) -> Result<Option<Alert>>;
    /// Newest first (`oldest_first`: the other way), with deliveries.
    fn alerts(&self, limit: usize, oldest_first: bool) -> Result<Vec<(Alert, Vec<DeliveryState>)>>;
    /// Removes an alert with its deliveries and queue entries, and its
    /// condition if that still names this alert and is closed (one-shot, or
    /// resolved).
    fn remove_alert(&self, id: &str) -> Result<()>;

    /// Visits queued deliveries in due order until `visit` says stop.
    fn scan_pending(
        &self,
        visit: &mut dyn FnMut(&PendingEntry) -> std::ops::ControlFlow<()>,
    ) -> Result<()>;
    /// Drops a queue entry whose delivery or alert is gone.
    fn remove_pending(&self, entry: &PendingEntry) -> Result<()>;
    fn delivery(&self, alert_id: &str, sink: &str) -> Result<Option<DeliveryState>>;
    /// Reads a delivery and, atomically, replaces it with what `decide`
    /// makes of it (None: leave it), moving its queue entry.
    fn update_delivery(
        &self,
        alert_id: &str,
        sink: &str,
        decide: &mut dyn FnMut(&DeliveryState) -> Option<DeliveryState>,
    ) -> Result<()>;
    /// Makes every outbox write durable ([`OutboxStore::update_delivery`]
    /// is not, one by one: a lost attempt result only means a resend the
    /// receiver deduplicates).
    fn flush_outbox(&self) -> Result<()>;
}

/// The whole durable state.
pub trait Store: FleetStore + RolloutStore + AuditStore + OutboxStore + Export {}

impl<T: FleetStore + RolloutStore + AuditStore + OutboxStore + Export> Store for T {}

/// Unix seconds (0 before the epoch).
pub fn unix(t: SystemTime) -> u64 {
    u64::try_from(convoy_kit::clock::unix_secs(t)).unwrap_or(0)
}

/// SHA-256 hex of an API bearer token: the key it is stored under.
pub fn api_token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
