//! The agent's local journal: the records the engine keeps across restarts
//! behind the narrow [`Journal`] trait, and [`SledJournal`], the one
//! implementation, in sled at `<data_dir>/journal`. Records: `desired` (the
//! host state to converge to), `applied` (per stack: what was last applied
//! and its outcome), `lkg` (per stack: last-known-good spec and the image
//! ids it ran), `inflight` (per stack: an apply in progress, for crash
//! recovery) and `outbox` (reports until acknowledged).
//!
//! # Guarantees
//! A write that returns `Ok` is on disk (flushed) before the caller acts on
//! it; a write that fails returns the error and the caller must not act as
//! if it were recorded (the engine stops the apply on it).

#[cfg(test)]
pub mod faulty;
mod sled;

use std::collections::BTreeMap;
use std::path::PathBuf;

use convoy_shared::render::{HostState, RenderedStack};
use serde::{Deserialize, Serialize};

pub use self::sled::{JOURNAL_FORMAT, SledJournal};

use crate::report::{GateFailure, Report};

/// Reports kept unacknowledged at most; the oldest are dropped beyond it so
/// a control plane that never acks cannot grow the journal without bound.
pub const MAX_OUTBOX: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: ::sled::Error,
    },
    #[error("journal tree {tree}")]
    Db {
        tree: &'static str,
        #[source]
        source: ::sled::Error,
    },
    #[error("journal tree {tree} key {key}: bad record")]
    Decode {
        tree: &'static str,
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "journal {path}: format {found} is newer than this agent reads ({supported}); \
         run the newer convoy-agent (or move the data dir aside to start afresh)"
    )]
    FormatTooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error(
        "the journal refused an earlier write ({first}) and takes no more until it is \
         reopened (the agent restarts for that)"
    )]
    Latched { first: String },
    #[error("journal tree {tree}: cannot encode record")]
    Encode {
        tree: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

pub type JournalResult<T> = Result<T, JournalError>;

/// The desired state as received, with the rollout that delivered it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DesiredRecord {
    pub state: HostState,
    pub rollout_id: Option<String>,
    /// Bumped on every `set_desired`; an apply of an older generation is
    /// superseded.
    pub generation: u64,
}

/// Where a stack is in its life on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Pending,
    Applying,
    Verifying,
    RollingBack,
    Healthy,
    RolledBack,
    Failed,
    Removing,
}

/// Per stack: what is applied (running) and how the last attempt ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedRecord {
    /// The revision whose containers run now (after a rollback: the LKG's).
    pub revision: String,
    pub phase: Phase,
    /// The last revision attempted (equal to `revision` unless it failed).
    pub attempted: String,
    /// Service -> image id it ran.
    pub image_ids: BTreeMap<String, String>,
    pub at_unix_ms: i64,
}

/// Per stack: the last-known-good spec and the image ids it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LkgRecord {
    pub stack: RenderedStack,
    pub image_ids: BTreeMap<String, String>,
    pub at_unix_ms: i64,
}

/// An apply in progress for one stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inflight {
    pub revision: String,
    pub host_revision: String,
    pub generation: u64,
    pub phase: Phase,
    pub started_unix_ms: i64,
    /// While rolling back: why, and the failing service's log tail.
    #[serde(default)]
    pub failure: Option<GateFailure>,
    #[serde(default)]
    pub log_tail: Vec<String>,
}

/// What the engine reads and writes across restarts. Every method is one
/// durable operation; see the module's guarantees.
pub trait Journal: Send + Sync + std::fmt::Debug {
    fn put_desired(&self, d: &DesiredRecord) -> JournalResult<()>;
    fn desired(&self) -> JournalResult<Option<DesiredRecord>>;
    /// The last desired generation applied completely (0: none).
    fn completed(&self) -> JournalResult<u64>;
    fn put_completed(&self, generation: u64) -> JournalResult<()>;

    fn put_applied(&self, stack: &str, r: &AppliedRecord) -> JournalResult<()>;
    fn applied(&self, stack: &str) -> JournalResult<Option<AppliedRecord>>;
    fn all_applied(&self) -> JournalResult<Vec<(String, AppliedRecord)>>;
    fn remove_applied(&self, stack: &str) -> JournalResult<()>;

    fn put_lkg(&self, stack: &str, r: &LkgRecord) -> JournalResult<()>;
    fn lkg(&self, stack: &str) -> JournalResult<Option<LkgRecord>>;
    fn all_lkg(&self) -> JournalResult<Vec<(String, LkgRecord)>>;
    fn remove_lkg(&self, stack: &str) -> JournalResult<()>;

    fn put_inflight(&self, stack: &str, r: &Inflight) -> JournalResult<()>;
    fn inflight(&self, stack: &str) -> JournalResult<Option<Inflight>>;
    fn all_inflight(&self) -> JournalResult<Vec<(String, Inflight)>>;
    fn remove_inflight(&self, stack: &str) -> JournalResult<()>;

    /// Appends a report to the outbox (ids sort by creation time); keeps at
    /// most [`MAX_OUTBOX`], dropping the oldest.
    fn push_report(&self, r: &Report) -> JournalResult<()>;
    /// Unacknowledged reports, oldest first.
    fn pending_reports(&self) -> JournalResult<Vec<Report>>;
    /// Drops acknowledged reports; unknown ids are ignored.
    fn ack(&self, ids: &[String]) -> JournalResult<()>;

    fn flush(&self) -> JournalResult<()>;

    /// True once the journal takes no more writes until it is reopened
    /// (see [`SledJournal`]'s caveats).
    fn refuses_writes(&self) -> bool {
        false
    }
}
