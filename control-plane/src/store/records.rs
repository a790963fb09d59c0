//! The records the control plane keeps, as plain data (serde for the
//! embedded store's JSON values; a SQL backend maps them to columns).
//! Rollout and alert payloads are the engines' own types
//! ([`crate::rollout::step`], [`crate::alerts::model`]): the store only
//! keeps them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use convoy_shared::source::Diagnostic;

use crate::alerts::model::Alert;
use crate::rollout::step::{HistoryEntry, HostRollout, Rollout};

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

/// A stored agent report: the report with the host it came from (the
/// authenticated host, never anything in the message). Protobuf, as the
/// embedded store keeps it.
#[derive(Clone, PartialEq, prost::Message)]
pub struct StoredReport {
    #[prost(string, tag = "1")]
    pub host: String,
    #[prost(message, required, tag = "2")]
    pub report: convoy_shared::proto::Report,
}

/// What a host should run now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostDesired {
    pub revision: String,
    /// Monotonic per host; the agent refuses a lower one.
    pub generation: u64,
    pub commit: String,
    pub rollout_id: String,
}

/// A commit the control plane decided on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitRecord {
    pub id: String,
    pub accepted: bool,
    pub problems: Vec<Diagnostic>,
    pub at_ms: u64,
    pub rollout_id: Option<String>,
}

/// One rollout step as written: the rollout after it and only what
/// changed, so a 10k-host rollout does not rewrite every host per report.
#[derive(Debug, Clone, Copy)]
pub struct RolloutStep<'a> {
    /// The rollout after the step (its header fields are written; its
    /// `hosts` and `history` are not, see below).
    pub rollout: &'a Rollout,
    /// Hosts whose record changed (all of them for a new rollout).
    pub hosts: &'a [(&'a str, &'a HostRollout)],
    /// History entries appended, starting at index `history_from`.
    pub history: &'a [HistoryEntry],
    pub history_from: usize,
    /// Desired states assigned to hosts by this step.
    pub assignments: &'a [(String, HostDesired)],
}

/// One audit log entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub seq: u64,
    pub at_unix_ms: u64,
    /// An API token's name, a host name, `git` or `control-plane`.
    pub who: String,
    /// e.g. `commit_accepted`, `commit_rejected`, `rollout`, `report`,
    /// `promote`, `abort`, `rollback`, `sync`, `token_created`, `revoke`.
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stack: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rollout: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub commit: String,
    pub message: String,
}

/// Filters of `GET /api/v1/events`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuditQuery {
    pub host: Option<String>,
    pub stack: Option<String>,
    pub rollout: Option<String>,
    pub kind: Option<String>,
    /// Entries older than this sequence number (pagination: pass the
    /// smallest `seq` of the previous page).
    pub before: Option<u64>,
    /// At most this many (default 100, max 1000).
    pub limit: Option<usize>,
}

impl AuditQuery {
    /// Whether `e` passes the filters (not `before`/`limit`).
    pub fn matches(&self, e: &AuditEntry) -> bool {
        self.host.as_ref().is_none_or(|h| &e.host == h)
            && self.stack.as_ref().is_none_or(|s| &e.stack == s)
            && self.rollout.as_ref().is_none_or(|r| &e.rollout == r)
            && self.kind.as_ref().is_none_or(|k| &e.kind == k)
    }

    pub fn limit(&self) -> usize {
        self.limit.unwrap_or(100).clamp(1, 1000)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    GaveUp,
}

/// One alert's delivery to one sink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryState {
    pub alert_id: String,
    pub sink: String,
    pub state: DeliveryStatus,
    pub attempts: u32,
    /// Unix ms; meaningful while pending.
    pub next_attempt_at_ms: u64,
    pub last_attempt_at_ms: Option<u64>,
    pub delivered_at_ms: Option<u64>,
    pub last_error: Option<String>,
}

impl DeliveryState {
    /// A delivery due at `now_ms`, never tried.
    pub fn new(alert_id: &str, sink: &str, now_ms: u64) -> DeliveryState {
        DeliveryState {
            alert_id: alert_id.to_owned(),
            sink: sink.to_owned(),
            state: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at_ms: now_ms,
            last_attempt_at_ms: None,
            delivered_at_ms: None,
            last_error: None,
        }
    }
}

/// Where an alert condition stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CondState {
    Open,
    /// Resolved, but the "resolved" message waits out the flap window.
    Resolving,
    Resolved,
}

/// An alert condition (`host_offline/<host>`, ...): open, resolving or
/// resolved, with the alert that opened it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    pub state: CondState,
    pub resolvable: bool,
    /// Times it re-opened while its resolve was held (flapping).
    pub flaps: u32,
    /// The opening alert (kept here so the resolve can be built even if the
    /// alert record was pruned).
    pub alert: Alert,
}

/// An alert to store with one pending delivery per sink, due at `now_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    /// From [`super::OutboxStore::next_alert_seq`]: orders the outbox.
    pub seq: u64,
    pub alert: Alert,
    pub sinks: Vec<String>,
    pub now_ms: u64,
}

/// What happens to a condition's held resolve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resolving {
    #[default]
    Keep,
    /// Hold the resolve from `since_ms` (the flap window runs).
    Hold { since_ms: u64 },
    /// Drop the held resolve.
    Clear,
}

/// One atomic change to an alert condition and the outbox, decided from
/// the condition's current state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConditionChange {
    /// The condition's new record (None: leave it).
    pub condition: Option<Condition>,
    pub resolving: Resolving,
    /// An alert (with its deliveries) to store along.
    pub alert: Option<NewAlert>,
}

/// A queued delivery, in due order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingEntry {
    pub due_ms: u64,
    pub alert_id: String,
    pub sink: String,
}

/// What an export (a backup) visits: each collection, its records, its end.
#[derive(Debug, Clone, Copy)]
pub enum Exported<'a> {
    Collection(&'a [u8]),
    Record { key: &'a [u8], value: &'a [u8] },
    End,
}
