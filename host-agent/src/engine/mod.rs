//! The stack engine: keeps the host converged to its desired state, stack
//! by stack, on its own.
//!
//! [`StackEngine::set_desired`] journals the state and wakes the apply
//! task (`worker.rs`); nothing else is done on the caller's task. One pass
//! removes stacks that left the state (`removal.rs`), then gives each stack
//! a turn in `after` order (`turn.rs`): the pure [`lifecycle`] decides,
//! the turn performs — [`plan`] + [`exec`] converge the Docker engine,
//! [`gate`] watches health through the pure [`health`] window, the
//! [`journal`](crate::journal) records every step before the next is acted
//! on, and reports go to the [`outbox`] until acknowledged.
//!
//! A newer desired state supersedes a running pass at the next batch
//! boundary (or gate poll); SIGTERM parks it the same way. A crash at any
//! point is recovered on open: a pass whose generation was not completed
//! runs again and each stack resumes from its in-flight record. A journal
//! write that fails stops the pass (reported, live when the journal cannot
//! take the report); it is retried after a delay or when a new state
//! arrives.

pub mod exec;
pub mod files;
pub mod gate;
pub mod health;
pub mod lifecycle;
pub mod outbox;
pub mod pass;
pub mod plan;
pub mod probe;
mod removal;
pub mod status;
mod turn;
mod worker;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use convoy_kit::error_chain;
use convoy_shared::render::HostState;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

pub use self::exec::ExecError;
pub use self::gate::GateOutcome;
pub use self::plan::{ImageFacts, Observed, StackPlan, Step, plan_removal, plan_stack};
pub use self::status::{HostStatus, StackStatus};
use crate::journal::{DesiredRecord, Journal, JournalError, Phase, SledJournal};
use crate::report::{Report, ReportKind};
use crate::runtime::{RegistryAuth, Runtime};

#[derive(Debug, thiserror::Error)]
pub enum StackEngineError {
    #[error("data dir {path}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("cannot build the HTTP probe client")]
    Prober(#[source] reqwest::Error),
    #[error("the engine has shut down")]
    ShutDown,
}

pub type StackEngineResult<T> = Result<T, StackEngineError>;

/// Optional settings.
#[derive(Debug, Clone, Default)]
pub struct StackEngineOptions {
    /// Credentials for pulls of images not present locally.
    pub registry_auth: Option<RegistryAuth>,
}

/// What the engine handle and its apply task share.
struct Shared {
    data_dir: PathBuf,
    journal: Arc<dyn Journal>,
    outbox: outbox::Outbox,
    runtime: Arc<dyn Runtime>,
    prober: probe::Prober,
    options: StackEngineOptions,
    /// The newest desired generation.
    generation: AtomicU64,
    shutdown: AtomicBool,
    wake: Notify,
    /// The last generation whose pass finished (completed, or stopped on a
    /// journal error and waiting for its retry).
    done: watch::Sender<u64>,
    /// Live phase and message per stack (the journal keeps the outcomes).
    live: Mutex<BTreeMap<String, (Phase, String)>>,
}

impl Shared {
    fn cancelled(&self, generation: u64) -> bool {
        self.shutdown.load(Ordering::SeqCst) || self.generation.load(Ordering::SeqCst) != generation
    }

    fn set_live(&self, stack: &str, phase: Phase, message: impl Into<String>) {
        if let Ok(mut l) = self.live.lock() {
            l.insert(stack.to_string(), (phase, message.into()));
        }
    }

    fn forget_live(&self, stack: &str) {
        if let Ok(mut l) = self.live.lock() {
            l.remove(stack);
        }
    }

    fn report(&self, d: &DesiredRecord, mut r: Report) {
        r.host_revision = d.state.revision.clone();
        r.rollout_id = d.rollout_id.clone().unwrap_or_default();
        info!(stack = %r.stack, kind = ?r.kind, message = %r.message, "report");
        self.outbox.push(r);
    }
}

/// The engine handle. Dropping it stops the apply task as a crash would.
pub struct StackEngine {
    shared: Arc<Shared>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for StackEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackEngine")
            .field("data_dir", &self.shared.data_dir)
            .finish_non_exhaustive()
    }
}

fn make_private_dir(path: &Path) -> StackEngineResult<()> {
    use std::os::unix::fs::PermissionsExt;
    let err = |source| StackEngineError::DataDir {
        path: path.to_path_buf(),
        source,
    };
    std::fs::create_dir_all(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    Ok(())
}

impl StackEngine {
    /// Opens the journal under `data_dir` (created 0700) and starts the
    /// apply task; an apply interrupted by a crash is resumed. Must be
    /// called inside a tokio runtime.
    pub fn open(
        data_dir: impl AsRef<Path>,
        runtime: Arc<dyn Runtime>,
    ) -> StackEngineResult<StackEngine> {
        Self::open_with(data_dir, runtime, StackEngineOptions::default())
    }

    pub fn open_with(
        data_dir: impl AsRef<Path>,
        runtime: Arc<dyn Runtime>,
        options: StackEngineOptions,
    ) -> StackEngineResult<StackEngine> {
        // Absolute: relative bind sources are resolved under it, and the
        // engine wants absolute host paths.
        let data_dir =
            std::path::absolute(data_dir.as_ref()).map_err(|source| StackEngineError::DataDir {
                path: data_dir.as_ref().to_path_buf(),
                source,
            })?;
        make_private_dir(&data_dir)?;
        let journal = Arc::new(SledJournal::open(&data_dir.join("journal"))?);
        Self::with_journal(data_dir, journal, runtime, options)
    }

    /// Like [`StackEngine::open_with`] on a journal the caller opened
    /// (tests hand in a failure-injecting one). `data_dir` holds the stack
    /// files.
    pub fn with_journal(
        data_dir: PathBuf,
        journal: Arc<dyn Journal>,
        runtime: Arc<dyn Runtime>,
        options: StackEngineOptions,
    ) -> StackEngineResult<StackEngine> {
        let generation = journal.desired()?.map_or(0, |d| d.generation);
        let completed = journal.completed()?;
        let (done, _) = watch::channel(completed);
        let shared = Arc::new(Shared {
            data_dir,
            outbox: outbox::Outbox::new(journal.clone()),
            journal,
            runtime,
            prober: probe::Prober::new().map_err(StackEngineError::Prober)?,
            options,
            generation: AtomicU64::new(generation),
            shutdown: AtomicBool::new(false),
            wake: Notify::new(),
            done,
            live: Mutex::new(BTreeMap::new()),
        });
        let worker = tokio::spawn(worker::run(shared.clone()));
        Ok(StackEngine {
            shared,
            worker: Mutex::new(Some(worker)),
        })
    }

    /// Persists `state` as the desired state, then applies it in the
    /// background (superseding any apply in progress). When the journal
    /// refuses it, nothing is applied: the error is returned and reported
    /// (live, as the journal cannot hold the report either).
    pub fn set_desired(
        &self,
        state: HostState,
        rollout_id: Option<String>,
    ) -> StackEngineResult<()> {
        let sh = &self.shared;
        if sh.shutdown.load(Ordering::SeqCst) {
            return Err(StackEngineError::ShutDown);
        }
        let generation = sh.generation.load(Ordering::SeqCst) + 1;
        let record = DesiredRecord {
            state,
            rollout_id,
            generation,
        };
        if let Err(e) = sh.journal.put_desired(&record) {
            let msg = format!(
                "cannot record the desired state in the journal ({}); not applied: the stacks \
                 run as they were until the control plane sends it again",
                error_chain(&e)
            );
            sh.report(&record, Report::new(ReportKind::Failed, "", "", msg));
            return Err(e.into());
        }
        sh.generation.store(generation, Ordering::SeqCst);
        sh.wake.notify_one();
        Ok(())
    }

    /// Waits until the pass for the newest desired state has finished
    /// (every stack gated, rolled back or failed; or stopped on a journal
    /// error, reported, its retry pending).
    pub async fn wait_idle(&self) -> StackEngineResult<()> {
        let target = self.shared.generation.load(Ordering::SeqCst);
        let mut rx = self.shared.done.subscribe();
        rx.wait_for(|g| *g >= target)
            .await
            .map(|_| ())
            .map_err(|_| StackEngineError::ShutDown)
    }

    /// Per stack: desired, applied and last-known-good revisions, phase.
    pub fn status(&self) -> StackEngineResult<HostStatus> {
        let j = &self.shared.journal;
        let desired = j.desired()?;
        let applied = j.all_applied()?.into_iter().collect();
        let lkg = j.all_lkg()?.into_iter().collect();
        let inflight = j.all_inflight()?.into_iter().collect();
        let live = self
            .shared
            .live
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default();
        Ok(HostStatus {
            host_revision: desired.as_ref().map(|d| d.state.revision.clone()),
            generation: self.shared.generation.load(Ordering::SeqCst),
            completed_generation: *self.shared.done.borrow(),
            stacks: status::stacks(desired.as_ref(), &applied, &lkg, &inflight, &live),
        })
    }

    /// Reports not yet acknowledged, oldest first (journaled, and any the
    /// journal could not take).
    pub fn pending_reports(&self) -> StackEngineResult<Vec<Report>> {
        Ok(self.shared.outbox.pending())
    }

    /// True once the journal takes no more writes until it is reopened
    /// (sled after an I/O error such as a full disk): the daemon restarts
    /// to reopen it. Until then nothing more is applied.
    pub fn journal_refuses_writes(&self) -> bool {
        self.shared.journal.refuses_writes()
    }

    /// Reports the journal could not take, held in memory until the
    /// control plane acknowledges them (they are lost on exit).
    pub fn held_reports(&self) -> usize {
        self.shared.outbox.held()
    }

    /// Drops acknowledged reports.
    pub fn ack(&self, ids: &[String]) -> StackEngineResult<()> {
        Ok(self.shared.outbox.ack(ids)?)
    }

    /// Graceful stop: the apply task finishes its current batch (or gate
    /// poll) and parks; the in-flight record stays so the next `open`
    /// resumes. Containers keep running.
    pub async fn shutdown(&self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        self.shared.wake.notify_one();
        let handle = self.worker.lock().ok().and_then(|mut w| w.take());
        if let Some(h) = handle
            && let Err(e) = h.await
        {
            warn!(error = %e, "engine worker ended abnormally");
        }
        if let Err(e) = self.shared.journal.flush() {
            warn!(error = %error_chain(&e), "journal flush at shutdown failed");
        }
    }

    /// Hard stop, as a crash would: the apply task is dropped wherever it
    /// is (mid-step included). For crash-recovery tests and fatal paths.
    pub async fn abort(&self) {
        let handle = self.worker.lock().ok().and_then(|mut w| w.take());
        if let Some(h) = handle {
            h.abort();
            // The task was cancelled: its JoinError says only that.
            let _cancelled = h.await;
        }
    }
}

impl Drop for StackEngine {
    fn drop(&mut self) {
        if let Ok(mut w) = self.worker.lock()
            && let Some(h) = w.take()
        {
            h.abort();
        }
    }
}
