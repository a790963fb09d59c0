//! Alert events (what the rest of the control plane reports) and alerts
//! (what is stored in the outbox and delivered to sinks).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The kind of an alert; also the names used in a sink's `events = [...]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    RolloutFailed,
    RolloutHalted,
    RolloutCompleted,
    HostRolledBack,
    StackFailed,
    CommitRejected,
    HostOffline,
    HostOnline,
    GpuEvent,
    CertExpiring,
    RevokedHostConnect,
    Test,
}

impl EventKind {
    pub const ALL: [EventKind; 12] = [
        EventKind::RolloutFailed,
        EventKind::RolloutHalted,
        EventKind::RolloutCompleted,
        EventKind::HostRolledBack,
        EventKind::StackFailed,
        EventKind::CommitRejected,
        EventKind::HostOffline,
        EventKind::HostOnline,
        EventKind::GpuEvent,
        EventKind::CertExpiring,
        EventKind::RevokedHostConnect,
        EventKind::Test,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::RolloutFailed => "rollout_failed",
            EventKind::RolloutHalted => "rollout_halted",
            EventKind::RolloutCompleted => "rollout_completed",
            EventKind::HostRolledBack => "host_rolled_back",
            EventKind::StackFailed => "stack_failed",
            EventKind::CommitRejected => "commit_rejected",
            EventKind::HostOffline => "host_offline",
            EventKind::HostOnline => "host_online",
            EventKind::GpuEvent => "gpu_event",
            EventKind::CertExpiring => "cert_expiring",
            EventKind::RevokedHostConnect => "revoked_host_connect",
            EventKind::Test => "test",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Ordered: `Info < Warning < Critical` (a sink's `min_severity`).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    #[default]
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of GPU fault an agent reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuFault {
    /// An NVIDIA XID error (the code is in `GpuEvent::code`).
    Xid,
    /// Uncorrectable (double-bit) ECC errors.
    EccUncorrectable,
    /// Corrected ECC errors over a threshold.
    EccCorrected,
    /// Over-temperature / thermal slowdown.
    Thermal,
    /// The GPU fell off the bus (disappeared from NVML).
    FellOffBus,
    Other,
}

impl GpuFault {
    pub fn as_str(self) -> &'static str {
        match self {
            GpuFault::Xid => "xid",
            GpuFault::EccUncorrectable => "ecc_uncorrectable",
            GpuFault::EccCorrected => "ecc_corrected",
            GpuFault::Thermal => "thermal",
            GpuFault::FellOffBus => "fell_off_bus",
            GpuFault::Other => "other",
        }
    }
}

/// Something the control plane observed that may be worth an alert. Raise it
/// with [`crate::alerts::Alerts::raise`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AlertEvent {
    RolloutFailed {
        fleet: String,
        rollout: String,
        commit: String,
        reason: String,
    },
    RolloutHalted {
        fleet: String,
        rollout: String,
        commit: String,
        reason: String,
    },
    RolloutCompleted {
        fleet: String,
        rollout: String,
        commit: String,
    },
    HostRolledBack {
        fleet: String,
        host: String,
        stack: String,
        /// The commit that was rolled back (the one that failed).
        commit: String,
        reason: String,
    },
    StackFailed {
        fleet: String,
        host: String,
        stack: String,
        commit: String,
        reason: String,
    },
    CommitRejected {
        fleet: String,
        commit: String,
        reason: String,
    },
    HostOffline {
        fleet: String,
        host: String,
        /// Unix milliseconds of the last heartbeat, if known.
        last_seen_ms: Option<u64>,
    },
    /// Resolves an open `host_offline` alert for the host (sends nothing if
    /// there is none).
    HostOnline { fleet: String, host: String },
    GpuEvent {
        fleet: String,
        host: String,
        /// GPU index or UUID.
        gpu: String,
        fault: GpuFault,
        /// XID code or error count, when meaningful.
        code: Option<u64>,
        detail: String,
    },
    CertExpiring {
        fleet: String,
        /// The host whose certificate it is, or `None` for the CA / server.
        host: Option<String>,
        /// Certificate subject (CN) or serial.
        subject: String,
        /// Unix seconds.
        not_after: u64,
    },
    RevokedHostConnect {
        fleet: String,
        host: String,
        peer: String,
    },
    /// A test message, routed only to `sink` (no filters).
    Test { fleet: String, sink: String },
}

impl AlertEvent {
    pub fn kind(&self) -> EventKind {
        match self {
            AlertEvent::RolloutFailed { .. } => EventKind::RolloutFailed,
            AlertEvent::RolloutHalted { .. } => EventKind::RolloutHalted,
            AlertEvent::RolloutCompleted { .. } => EventKind::RolloutCompleted,
            AlertEvent::HostRolledBack { .. } => EventKind::HostRolledBack,
            AlertEvent::StackFailed { .. } => EventKind::StackFailed,
            AlertEvent::CommitRejected { .. } => EventKind::CommitRejected,
            AlertEvent::HostOffline { .. } => EventKind::HostOffline,
            AlertEvent::HostOnline { .. } => EventKind::HostOnline,
            AlertEvent::GpuEvent { .. } => EventKind::GpuEvent,
            AlertEvent::CertExpiring { .. } => EventKind::CertExpiring,
            AlertEvent::RevokedHostConnect { .. } => EventKind::RevokedHostConnect,
            AlertEvent::Test { .. } => EventKind::Test,
        }
    }

    pub fn severity(&self) -> Severity {
        match self {
            AlertEvent::RolloutFailed { .. }
            | AlertEvent::StackFailed { .. }
            | AlertEvent::HostOffline { .. }
            | AlertEvent::RevokedHostConnect { .. } => Severity::Critical,
            AlertEvent::RolloutHalted { .. }
            | AlertEvent::HostRolledBack { .. }
            | AlertEvent::CommitRejected { .. }
            | AlertEvent::CertExpiring { .. } => Severity::Warning,
            AlertEvent::GpuEvent { fault, .. } => match fault {
                GpuFault::Xid | GpuFault::EccUncorrectable | GpuFault::FellOffBus => {
                    Severity::Critical
                }
                GpuFault::EccCorrected | GpuFault::Thermal | GpuFault::Other => Severity::Warning,
            },
            AlertEvent::RolloutCompleted { .. }
            | AlertEvent::HostOnline { .. }
            | AlertEvent::Test { .. } => Severity::Info,
        }
    }

    /// The condition this event is about: the same key while the condition
    /// is open maps to the same alert (raised once).
    pub fn condition_key(&self) -> String {
        match self {
            AlertEvent::RolloutFailed { rollout, .. } => format!("rollout_failed/{rollout}"),
            AlertEvent::RolloutHalted { rollout, .. } => format!("rollout_halted/{rollout}"),
            AlertEvent::RolloutCompleted { rollout, .. } => format!("rollout_completed/{rollout}"),
            AlertEvent::HostRolledBack {
                host,
                stack,
                commit,
                ..
            } => format!("host_rolled_back/{host}/{stack}/{commit}"),
            AlertEvent::StackFailed { host, stack, .. } => format!("stack_failed/{host}/{stack}"),
            AlertEvent::CommitRejected { commit, .. } => format!("commit_rejected/{commit}"),
            AlertEvent::HostOffline { host, .. } | AlertEvent::HostOnline { host, .. } => {
                format!("host_offline/{host}")
            }
            AlertEvent::GpuEvent {
                host, gpu, fault, ..
            } => format!("gpu_event/{host}/{gpu}/{}", fault.as_str()),
            AlertEvent::CertExpiring { subject, .. } => format!("cert_expiring/{subject}"),
            AlertEvent::RevokedHostConnect { host, .. } => format!("revoked_host_connect/{host}"),
            AlertEvent::Test { sink, .. } => format!("test/{sink}"),
        }
    }

    /// Conditions that are expected to end (and then get a "resolved"
    /// message) — the others are one-shot facts (a rollout failed).
    pub fn resolvable(&self) -> bool {
        matches!(
            self,
            AlertEvent::RolloutHalted { .. }
                | AlertEvent::StackFailed { .. }
                | AlertEvent::HostOffline { .. }
                | AlertEvent::HostOnline { .. }
                | AlertEvent::GpuEvent { .. }
                | AlertEvent::CertExpiring { .. }
                | AlertEvent::RevokedHostConnect { .. }
        )
    }

    pub fn fleet(&self) -> &str {
        match self {
            AlertEvent::RolloutFailed { fleet, .. }
            | AlertEvent::RolloutHalted { fleet, .. }
            | AlertEvent::RolloutCompleted { fleet, .. }
            | AlertEvent::HostRolledBack { fleet, .. }
            | AlertEvent::StackFailed { fleet, .. }
            | AlertEvent::CommitRejected { fleet, .. }
            | AlertEvent::HostOffline { fleet, .. }
            | AlertEvent::HostOnline { fleet, .. }
            | AlertEvent::GpuEvent { fleet, .. }
            | AlertEvent::CertExpiring { fleet, .. }
            | AlertEvent::RevokedHostConnect { fleet, .. }
            | AlertEvent::Test { fleet, .. } => fleet,
        }
    }

    /// Builds the stored alert (not resolved). `public_url` has no trailing
    /// slash.
    pub(crate) fn to_alert(&self, id: String, public_url: &str, created_at_ms: u64) -> Alert {
        let mut a = Alert {
            id,
            condition: self.condition_key(),
            kind: self.kind(),
            severity: self.severity(),
            resolved: false,
            fleet: self.fleet().to_owned(),
            host: None,
            stack: None,
            rollout: None,
            commit: None,
            summary: String::new(),
            details: BTreeMap::new(),
            link: String::new(),
            created_at_ms,
            only_sink: None,
        };
        let path;
        match self {
            AlertEvent::RolloutFailed {
                rollout,
                commit,
                reason,
                ..
            } => {
                a.rollout = Some(rollout.clone());
                a.commit = Some(commit.clone());
                a.summary = format!(
                    "Rollout {rollout} of commit {} failed: {reason}",
                    short(commit)
                );
                a.details.insert("reason".into(), reason.clone());
                path = format!("rollouts/{rollout}");
            }
            AlertEvent::RolloutHalted {
                rollout,
                commit,
                reason,
                ..
            } => {
                a.rollout = Some(rollout.clone());
                a.commit = Some(commit.clone());
                a.summary = format!(
                    "Rollout {rollout} of commit {} halted: {reason}",
                    short(commit)
                );
                a.details.insert("reason".into(), reason.clone());
                path = format!("rollouts/{rollout}");
            }
            AlertEvent::RolloutCompleted {
                rollout, commit, ..
            } => {
                a.rollout = Some(rollout.clone());
                a.commit = Some(commit.clone());
                a.summary = format!("Rollout {rollout} of commit {} completed", short(commit));
                path = format!("rollouts/{rollout}");
            }
            AlertEvent::HostRolledBack {
                host,
                stack,
                commit,
                reason,
                ..
            } => {
                a.host = Some(host.clone());
                a.stack = Some(stack.clone());
                a.commit = Some(commit.clone());
                a.summary = format!(
                    "Host {host} rolled stack {stack} back from commit {}: {reason}",
                    short(commit)
                );
                a.details.insert("reason".into(), reason.clone());
                path = format!("hosts/{host}");
            }
            AlertEvent::StackFailed {
                host,
                stack,
                commit,
                reason,
                ..
            } => {
                a.host = Some(host.clone());
                a.stack = Some(stack.clone());
                a.commit = Some(commit.clone());
                a.summary = format!(
                    "Stack {stack} failed on host {host} at commit {}: {reason}",
                    short(commit)
                );
                a.details.insert("reason".into(), reason.clone());
                path = format!("hosts/{host}");
            }
            AlertEvent::CommitRejected { commit, reason, .. } => {
                a.commit = Some(commit.clone());
                a.summary = format!("Commit {} rejected: {reason}", short(commit));
                a.details.insert("reason".into(), reason.clone());
                path = format!("commits/{commit}");
            }
            AlertEvent::HostOffline {
                host, last_seen_ms, ..
            } => {
                a.host = Some(host.clone());
                a.summary = format!("Host {host} is offline (no heartbeat)");
                if let Some(ms) = last_seen_ms {
                    a.details.insert("last_seen".into(), rfc3339(*ms));
                }
                path = format!("hosts/{host}");
            }
            AlertEvent::HostOnline { host, .. } => {
                a.host = Some(host.clone());
                a.summary = format!("Host {host} is online");
                path = format!("hosts/{host}");
            }
            AlertEvent::GpuEvent {
                host,
                gpu,
                fault,
                code,
                detail,
                ..
            } => {
                a.host = Some(host.clone());
                let code_s = code.map(|c| format!(" {c}")).unwrap_or_default();
                a.summary = format!(
                    "GPU {gpu} on host {host}: {}{code_s}: {detail}",
                    fault.as_str()
                );
                a.details.insert("gpu".into(), gpu.clone());
                a.details.insert("fault".into(), fault.as_str().into());
                if let Some(c) = code {
                    a.details.insert("code".into(), c.to_string());
                }
                a.details.insert("detail".into(), detail.clone());
                path = format!("hosts/{host}");
            }
            AlertEvent::CertExpiring {
                host,
                subject,
                not_after,
                ..
            } => {
                a.host = host.clone();
                let when = rfc3339(not_after.saturating_mul(1000));
                a.summary = format!("Certificate {subject} expires at {when}");
                a.details.insert("subject".into(), subject.clone());
                a.details.insert("not_after".into(), when);
                path = match host {
                    Some(h) => format!("hosts/{h}"),
                    None => "certificates".to_owned(),
                };
            }
            AlertEvent::RevokedHostConnect { host, peer, .. } => {
                a.host = Some(host.clone());
                a.summary = format!("Revoked host {host} tried to connect from {peer}");
                a.details.insert("peer".into(), peer.clone());
                path = format!("hosts/{host}");
            }
            AlertEvent::Test { sink, .. } => {
                a.summary = format!("Test alert from Convoy for sink {sink}");
                a.only_sink = Some(sink.clone());
                path = "events".to_owned();
            }
        }
        a.link = format!("{public_url}/api/v1/{path}");
        a
    }
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// A stored alert: one message to deliver (an opening alert or its
/// "resolved" message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable id: derived from the condition key and its occurrence; a
    /// resolve message has the opening alert's id plus `.resolved`.
    pub id: String,
    /// The condition key, e.g. `host_offline/gpu-1`.
    pub condition: String,
    pub kind: EventKind,
    pub severity: Severity,
    pub resolved: bool,
    pub fleet: String,
    pub host: Option<String>,
    pub stack: Option<String>,
    pub rollout: Option<String>,
    pub commit: Option<String>,
    pub summary: String,
    pub details: BTreeMap<String, String>,
    /// `<public_url>/api/v1/...`
    pub link: String,
    pub created_at_ms: u64,
    /// Test alerts go to this sink only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_sink: Option<String>,
}

/// `<first 20 hex of sha256(condition "\n" occurrence)>`; the occurrence is
/// a persistent, monotonic number taken when the condition opens.
pub(crate) fn alert_id(condition: &str, occurrence: u64) -> String {
    let mut h = Sha256::new();
    h.update(condition.as_bytes());
    h.update(b"\n");
    h.update(occurrence.to_string().as_bytes());
    let mut s = hex::encode(h.finalize());
    s.truncate(20);
    s
}

/// Unix milliseconds as RFC 3339 UTC (`2024-05-01T12:00:00.000Z`).
pub fn rfc3339(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let ms = unix_ms % 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

// Howard Hinnant's days-from-civil inverse.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_values() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339(1_700_000_000_000), "2023-11-14T22:13:20.000Z");
    }

    #[test]
    fn ids_are_deterministic_and_distinct() {
        assert_eq!(alert_id("host_offline/a", 1), alert_id("host_offline/a", 1));
        assert_ne!(alert_id("host_offline/a", 1), alert_id("host_offline/a", 2));
        assert_ne!(alert_id("host_offline/a", 1), alert_id("host_offline/b", 1));
    }
}
