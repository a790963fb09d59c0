//! [`StreamBridge`], the stream client's [`AgentHooks`] on the stack engine:
//! desired states from the stream are checked (generation, format, revision)
//! and handed to the engine, which journals them before applying; the
//! engine's report outbox goes back on the stream until acknowledged.

use std::path::PathBuf;

use convoy_shared::proto::{DesiredState, Report};
use convoy_shared::render::{HOST_STATE_FORMAT, HostState};

use crate::engine::StackEngine;
use crate::stream::AgentHooks;

/// Bridges the stream client and the engine.
pub struct StreamBridge {
    engine: std::sync::Arc<StackEngine>,
    /// Highest generation accepted, persisted so a restarted agent still
    /// refuses an older desired state replayed by the control plane.
    generation_file: PathBuf,
}

impl StreamBridge {
    pub fn new(engine: std::sync::Arc<StackEngine>, data_dir: &std::path::Path) -> Self {
        Self {
            engine,
            generation_file: data_dir.join("desired.generation"),
        }
    }

    fn generation(&self) -> u64 {
        std::fs::read_to_string(&self.generation_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }
}

#[async_trait::async_trait]
impl AgentHooks for StreamBridge {
    async fn on_desired(&self, d: DesiredState) {
        let current = self.generation();
        if d.generation < current {
            tracing::warn!(
                generation = d.generation,
                current,
                revision = %d.revision,
                "refusing a desired state older than the one held"
            );
            return;
        }
        // The control plane sends the current desired state again on every
        // connect. The one already held (same generation and revision) is
        // journaled and being applied or done, its reports in the outbox:
        // applying it again would make a second set of reports for it.
        if d.generation == current && current > 0 && self.desired_revision() == d.revision {
            tracing::debug!(
                generation = d.generation,
                revision = %d.revision,
                "desired state already held; nothing to do"
            );
            return;
        }
        let state: HostState = match serde_json::from_slice(&d.state_json) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, revision = %d.revision, "desired state is not valid JSON");
                return;
            }
        };
        if state.format > HOST_STATE_FORMAT {
            tracing::error!(
                format = state.format,
                supported = HOST_STATE_FORMAT,
                "desired state uses a newer format; upgrade this agent"
            );
            return;
        }
        if state.revision != d.revision {
            tracing::error!(
                announced = %d.revision,
                content = %state.revision,
                "desired state revision does not match its content; ignored"
            );
            return;
        }
        let rollout = (!d.rollout_id.is_empty()).then(|| d.rollout_id.clone());
        match self.engine.set_desired(state, rollout) {
            Ok(()) => {
                if let Err(e) = convoy_kit::fsx::write_atomic(
                    &self.generation_file,
                    d.generation.to_string().as_bytes(),
                    0o600,
                ) {
                    tracing::error!(error = %e, "recording the desired generation failed");
                }
                tracing::info!(
                    revision = %d.revision,
                    generation = d.generation,
                    rollout = %d.rollout_id,
                    commit = %d.commit,
                    "desired state journaled; applying"
                );
            }
            Err(e) => {
                tracing::error!(error = %convoy_kit::error_chain(&e), "journaling the desired state failed")
            }
        }
    }

    fn pending_reports(&self) -> Vec<Report> {
        match self.engine.pending_reports() {
            Ok(r) => r.into_iter().map(Report::from).collect(),
            Err(e) => {
                tracing::error!(error = %convoy_kit::error_chain(&e), "reading the report outbox failed");
                Vec::new()
            }
        }
    }

    fn ack(&self, ids: &[String]) {
        if let Err(e) = self.engine.ack(ids) {
            tracing::error!(error = %convoy_kit::error_chain(&e), "acknowledging reports failed");
        }
    }

    fn desired_revision(&self) -> String {
        self.engine
            .status()
            .ok()
            .and_then(|s| s.host_revision)
            .unwrap_or_default()
    }
}
