//! The seam between the stream client and whatever applies desired states.

use std::path::PathBuf;

use convoy_shared::proto::{DesiredState, Report};

use convoy_kit::fsx::write_atomic;

/// What the stream client calls. The apply engine implements this; the
/// [`FileHooks`] default only records what arrives.
#[async_trait::async_trait]
pub trait AgentHooks: Send + Sync + 'static {
    /// A desired state arrived. Persist it and return; apply it elsewhere
    /// (this runs on the stream task: a slow call delays heartbeats).
    async fn on_desired(&self, state: DesiredState);
    /// Reports not yet acknowledged, oldest first. Resent after every
    /// reconnect until acked.
    fn pending_reports(&self) -> Vec<Report>;
    /// The control plane stored these reports.
    fn ack(&self, ids: &[String]);
    /// The host revision the agent holds as desired (sent in Hello).
    fn desired_revision(&self) -> String {
        String::new()
    }
}

/// Writes each desired state's JSON to `<data dir>/desired.json` (and its
/// revision to `desired.revision`); has no reports.
#[derive(Debug, Clone)]
pub struct FileHooks {
    dir: PathBuf,
}

impl FileHooks {
    pub fn new(dir: impl Into<PathBuf>) -> FileHooks {
        FileHooks { dir: dir.into() }
    }
}

#[async_trait::async_trait]
impl AgentHooks for FileHooks {
    async fn on_desired(&self, state: DesiredState) {
        let dir = self.dir.clone();
        let res = tokio::task::spawn_blocking(move || {
            write_atomic(&dir.join("desired.json"), &state.state_json, 0o600)?;
            write_atomic(
                &dir.join("desired.revision"),
                state.revision.as_bytes(),
                0o600,
            )?;
            Ok::<_, std::io::Error>(state.revision)
        })
        .await;
        match res {
            Ok(Ok(rev)) => tracing::info!(revision = %rev, "desired state stored"),
            Ok(Err(e)) => tracing::error!(error = %e, "storing desired state failed"),
            Err(e) => tracing::error!(error = %e, "desired-state task failed"),
        }
    }

    fn pending_reports(&self) -> Vec<Report> {
        Vec::new()
    }

    fn ack(&self, _ids: &[String]) {}

    fn desired_revision(&self) -> String {
        std::fs::read_to_string(self.dir.join("desired.revision")).unwrap_or_default()
    }
}
