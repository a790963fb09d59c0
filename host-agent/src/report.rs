//! What the agent tells the control plane about its stacks: [`Report`]s
//! (journaled in the outbox until acknowledged; convertible to the wire type
//! `convoy_shared::proto::v1::Report`) and the [`GateFailure`] a failed
//! apply or health gate carries. Plain data: the journal stores these and
//! the engine makes them; neither depends on the other through this file.

use convoy_shared::limits::{MAX_LOG_LINES, MAX_TEXT_LEN};
use convoy_shared::proto::v1;
use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};

static SEQ: AtomicU32 = AtomicU32::new(0);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    Progress,
    Healthy,
    RolledBack,
    Failed,
    Removed,
    HostHealthy,
}

impl From<ReportKind> for v1::ReportKind {
    fn from(k: ReportKind) -> Self {
        match k {
            ReportKind::Progress => v1::ReportKind::Progress,
            ReportKind::Healthy => v1::ReportKind::Healthy,
            ReportKind::RolledBack => v1::ReportKind::RolledBack,
            ReportKind::Failed => v1::ReportKind::Failed,
            ReportKind::Removed => v1::ReportKind::Removed,
            ReportKind::HostHealthy => v1::ReportKind::HostHealthy,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Unique, sorts by creation time: 13 hex digits of milliseconds, 8 of
    /// a per-process sequence, 8 random.
    pub id: String,
    pub host_revision: String,
    pub stack: String,
    pub stack_revision: String,
    pub kind: ReportKind,
    pub message: String,
    pub failing_service: String,
    pub log_tail: Vec<String>,
    pub at_unix_ms: i64,
    pub rollout_id: String,
    pub restored_revision: String,
}

/// Why an apply or a health gate failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateFailure {
    pub service: String,
    /// Container id of the failing service, when it has one (for logs).
    pub container: Option<String>,
    pub reason: String,
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_TEXT_LEN {
        let mut cut = MAX_TEXT_LEN;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

impl Report {
    pub fn new(kind: ReportKind, stack: &str, stack_revision: &str, message: String) -> Self {
        let at = crate::unix_ms();
        Self {
            id: format!(
                "{:013x}{:08x}{:08x}",
                at,
                SEQ.fetch_add(1, Ordering::Relaxed),
                rand::random::<u32>()
            ),
            host_revision: String::new(),
            stack: stack.to_string(),
            stack_revision: stack_revision.to_string(),
            kind,
            message: truncate(message),
            failing_service: String::new(),
            log_tail: Vec::new(),
            at_unix_ms: at,
            rollout_id: String::new(),
            restored_revision: String::new(),
        }
    }

    pub fn with_failure(mut self, service: &str, mut log_tail: Vec<String>) -> Self {
        self.failing_service = service.to_string();
        if log_tail.len() > MAX_LOG_LINES {
            log_tail.drain(..log_tail.len() - MAX_LOG_LINES);
        }
        self.log_tail = log_tail.into_iter().map(truncate).collect();
        self
    }
}

impl From<Report> for v1::Report {
    fn from(r: Report) -> Self {
        v1::Report {
            id: r.id,
            host_revision: r.host_revision,
            stack: r.stack,
            stack_revision: r.stack_revision,
            kind: v1::ReportKind::from(r.kind) as i32,
            message: r.message,
            failing_service: r.failing_service,
            log_tail: r.log_tail,
            at_unix_ms: r.at_unix_ms,
            rollout_id: r.rollout_id,
            restored_revision: r.restored_revision,
        }
    }
}
