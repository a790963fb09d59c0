//! What the fleet tells the control plane, turned into what the control
//! plane does about it: agent reports and GPU events into rollout inputs and
//! alerts, rollout events and commits into audit entries and alerts,
//! certificate expiry into alerts to raise or resolve.
//!
//! Pure functions of their inputs (the caller reads the store and the clock
//! and acts on the answer), so the mapping is unit-tested without a
//! database, a stream or a sink.

use std::time::Duration;

use convoy_pki::RevocationList;
use convoy_shared::proto::{GpuEvent, GpuEventKind, Report, ReportKind, TelemetryBatch};

use crate::alerts::{AlertEvent, GpuFault};
use crate::audit::AuditEntry;
use crate::rollout::{EventKind, Input, RolloutEvent};
use crate::store::HostRecord;

/// An agent renews at 60-80 % of its certificate's life; one with less
/// than this left did not, and once expired it cannot reconnect without a
/// new join token.
pub const CERT_EXPIRY_WARNING: Duration = Duration::from_secs(4 * 3600);

/// What one stored agent report means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportOutcome {
    /// For the current rollout (the step function ignores an input it
    /// already took, so feeding a resend again is harmless).
    pub input: Option<Input>,
    /// Raised only for a report seen for the first time.
    pub alert: Option<AlertEvent>,
    /// Recorded only for a report seen for the first time.
    pub audit: Option<AuditEntry>,
}

/// Why a host failed, as the rollout records it and the alert says it.
pub fn failure_reason(r: &Report) -> String {
    if r.failing_service.is_empty() {
        format!("stack {}: {}", r.stack, r.message)
    } else {
        format!(
            "stack {} (service {}): {}",
            r.stack, r.failing_service, r.message
        )
    }
}

/// A report from `host` (authenticated by its certificate). `new` is false
/// for a resend of a report stored before: a control plane killed between
/// storing it and feeding the rollout never acted on it, so its input is
/// fed again, while its alert and audit entry were handled (or lost with
/// the kill) the first time and are not repeated. `commit` is the commit
/// the host was last given (for the alert).
pub fn report(fleet: &str, host: &str, r: &Report, new: bool, commit: &str) -> ReportOutcome {
    let kind = ReportKind::try_from(r.kind).unwrap_or(ReportKind::Unspecified);
    let input = match kind {
        ReportKind::HostHealthy => Some(Input::HostHealthy {
            host: host.to_owned(),
            revision: r.host_revision.clone(),
        }),
        ReportKind::RolledBack | ReportKind::Failed => Some(Input::HostFailed {
            host: host.to_owned(),
            revision: r.host_revision.clone(),
            reason: failure_reason(r),
        }),
        _ => None,
    };
    if !new {
        return ReportOutcome {
            input,
            alert: None,
            audit: None,
        };
    }
    let alert = match kind {
        ReportKind::RolledBack => Some(AlertEvent::HostRolledBack {
            fleet: fleet.to_owned(),
            host: host.to_owned(),
            stack: r.stack.clone(),
            commit: commit.to_owned(),
            reason: failure_reason(r),
        }),
        ReportKind::Failed => Some(AlertEvent::StackFailed {
            fleet: fleet.to_owned(),
            host: host.to_owned(),
            stack: r.stack.clone(),
            commit: commit.to_owned(),
            reason: failure_reason(r),
        }),
        _ => None,
    };
    let audit = AuditEntry {
        who: host.to_owned(),
        kind: "report".into(),
        host: host.to_owned(),
        stack: r.stack.clone(),
        rollout: r.rollout_id.clone(),
        message: format!("{kind:?}: {}", r.message),
        ..Default::default()
    };
    ReportOutcome {
        input,
        alert,
        audit: Some(audit),
    }
}

/// An agent's GPU health event as an alert. The GPU is named by UUID (an
/// index can change across reboots); the index is in the detail.
pub fn gpu_alert(fleet: &str, host: &str, e: &GpuEvent) -> AlertEvent {
    use GpuEventKind as K;
    let kind = K::try_from(e.kind).unwrap_or(K::Unspecified);
    let (fault, code) = match kind {
        K::Xid => (GpuFault::Xid, Some(e.value)),
        K::EccUncorrected => (GpuFault::EccUncorrectable, Some(e.value)),
        K::OverTemperature => (GpuFault::Thermal, Some(e.value)),
        K::Lost => (GpuFault::FellOffBus, None),
        K::MemoryNearlyFull | K::Unspecified => (GpuFault::Other, Some(e.value)),
    };
    let gpu = if e.uuid.is_empty() {
        e.gpu_index.to_string()
    } else {
        e.uuid.clone()
    };
    let what = if e.message.is_empty() {
        crate::telemetry::event_kind_label(kind).to_owned()
    } else {
        e.message.clone()
    };
    AlertEvent::GpuEvent {
        fleet: fleet.to_owned(),
        host: host.to_owned(),
        gpu,
        fault,
        code,
        detail: format!("GPU {}: {what}", e.gpu_index),
    }
}

/// Every GPU event of a telemetry batch, as alerts, in sample order.
pub fn gpu_alerts(fleet: &str, host: &str, batch: &TelemetryBatch) -> Vec<AlertEvent> {
    batch
        .samples
        .iter()
        .flat_map(|s| s.gpu_events.iter())
        .map(|e| gpu_alert(fleet, host, e))
        .collect()
}

/// What the certificate check does for one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertAlert {
    /// The host's certificate expires within the warning window.
    Raise(AlertEvent),
    /// It does not (any more): resolve this condition key.
    Resolve(String),
}

/// `cert_expiring` for enrolled, unrevoked hosts whose certificate expires
/// within `warning` of `now_unix`, and its resolve for the others. Hosts
/// never issued a certificate are skipped.
pub fn cert_expiry(
    fleet: &str,
    hosts: &[HostRecord],
    revoked: &RevocationList,
    now_unix: u64,
    warning: Duration,
) -> Vec<CertAlert> {
    hosts
        .iter()
        .filter(|h| !revoked.hosts.contains(&h.name) && h.cert_not_after_unix != 0)
        .map(|h| {
            let subject = format!("agent {}", h.name);
            if h.cert_not_after_unix.saturating_sub(now_unix) < warning.as_secs() {
                CertAlert::Raise(AlertEvent::CertExpiring {
                    fleet: fleet.to_owned(),
                    host: Some(h.name.clone()),
                    subject,
                    not_after: h.cert_not_after_unix,
                })
            } else {
                CertAlert::Resolve(format!("cert_expiring/{subject}"))
            }
        })
        .collect()
}

/// A rollout event as an audit entry, and the alert it raises (completed,
/// halted, failed).
pub fn rollout_event(fleet: &str, e: &RolloutEvent) -> (AuditEntry, Option<AlertEvent>) {
    let audit = AuditEntry {
        who: "control-plane".into(),
        kind: "rollout".into(),
        host: e.host.clone().unwrap_or_default(),
        rollout: e.rollout.clone(),
        commit: e.commit.clone(),
        message: e.message.clone(),
        ..Default::default()
    };
    let (fleet, rollout, commit) = (fleet.to_owned(), e.rollout.clone(), e.commit.clone());
    let alert = match e.kind {
        EventKind::RolloutCompleted => Some(AlertEvent::RolloutCompleted {
            fleet,
            rollout,
            commit,
        }),
        EventKind::RolloutHalted => Some(AlertEvent::RolloutHalted {
            fleet,
            rollout,
            commit,
            reason: e.message.clone(),
        }),
        EventKind::RolloutRolledBack | EventKind::RolloutRollingBack => {
            Some(AlertEvent::RolloutFailed {
                fleet,
                rollout,
                commit,
                reason: e.message.clone(),
            })
        }
        _ => None,
    };
    (audit, alert)
}

/// A commit that passed validation and started rollout `rollout`.
pub fn commit_accepted(commit: &str, rollout: &str, summary: &str, author: &str) -> AuditEntry {
    AuditEntry {
        who: "git".into(),
        kind: "commit_accepted".into(),
        rollout: rollout.to_owned(),
        commit: commit.to_owned(),
        message: format!("{summary} ({author})"),
        ..Default::default()
    }
}

/// A commit refused as a whole: its audit entry and its alert.
pub fn commit_rejected(fleet: &str, commit: &str, reason: &str) -> (AuditEntry, AlertEvent) {
    let audit = AuditEntry {
        who: "git".into(),
        kind: "commit_rejected".into(),
        commit: commit.to_owned(),
        message: reason.to_owned(),
        ..Default::default()
    };
    let alert = AlertEvent::CommitRejected {
        fleet: fleet.to_owned(),
        commit: commit.to_owned(),
        reason: reason.to_owned(),
    };
    (audit, alert)
}

/// A revoked host presented its certificate from `peer`.
pub fn revoked_attempt(fleet: &str, host: &str, peer: &str) -> (AuditEntry, AlertEvent) {
    let audit = AuditEntry {
        who: host.to_owned(),
        kind: "revoked_connect".into(),
        host: host.to_owned(),
        message: format!("revoked host tried to connect from {peer}"),
        ..Default::default()
    };
    let alert = AlertEvent::RevokedHostConnect {
        fleet: fleet.to_owned(),
        host: host.to_owned(),
        peer: peer.to_owned(),
    };
    (audit, alert)
}

#[cfg(test)]
mod tests;
