//! The agent engine: persists the desired host state, converges the Docker
//! engine to it stack by stack (pure [`plan`] + idempotent [`exec`]), gates
//! each stack on [`health`], rolls back to the last-known-good on its own,
//! and keeps [`report`]s in a durable outbox until acknowledged.
//!
//! One background task applies; `set_desired` only persists and wakes it. A
//! newer desired state supersedes a running apply at the next batch
//! boundary (or gate poll). A crash at any point is recovered on `open`:
//! an apply whose generation was not completed is planned again.

pub mod exec;
pub mod gate;
pub mod health;
pub mod plan;
pub mod probe;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use convoy_shared::limits::MAX_LOG_LINES;
use convoy_shared::render::{HostState, RenderedStack};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{error, info, warn};

pub use self::exec::ExecError;
pub use self::gate::GateOutcome;
pub use self::plan::{ImageFacts, Observed, StackPlan, Step, plan_removal, plan_stack};
use crate::journal::{
    AppliedRecord, DesiredRecord, Inflight, Journal, JournalError, LkgRecord, Phase, SledJournal,
};
use crate::report::{GateFailure, Report, ReportKind};
use crate::runtime::{LABEL_SERVICE, RegistryAuth, Runtime, RuntimeError};

#[derive(Debug, thiserror::Error)]
pub enum StackEngineError {
    #[error("data dir {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error("runtime: {0}")]
    Runtime(#[from] RuntimeError),
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

/// One stack as `status()` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StackStatus {
    pub stack: String,
    pub desired_revision: Option<String>,
    pub applied_revision: Option<String>,
    pub lkg_revision: Option<String>,
    pub phase: Phase,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostStatus {
    pub host_revision: Option<String>,
    pub generation: u64,
    pub completed_generation: u64,
    pub stacks: Vec<StackStatus>,
}

struct Inner {
    data_dir: PathBuf,
    journal: Arc<dyn Journal>,
    runtime: Arc<dyn Runtime>,
    prober: probe::Prober,
    options: StackEngineOptions,
    /// The newest desired generation.
    generation: AtomicU64,
    shutdown: AtomicBool,
    wake: Notify,
    done: watch::Sender<u64>,
    /// Live phase and message per stack (the journal keeps the outcomes).
    live: Mutex<BTreeMap<String, (Phase, String)>>,
}

pub struct StackEngine {
    inner: Arc<Inner>,
    worker: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for StackEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StackEngine")
            .field("data_dir", &self.inner.data_dir)
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

/// How one apply pass ended.
enum Pass {
    Completed,
    Interrupted,
}

/// How one stack ended within a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StackEnd {
    Healthy,
    NotHealthy,
    Interrupted,
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
        let data_dir = data_dir.as_ref().to_path_buf();
        make_private_dir(&data_dir)?;
        let journal: Arc<dyn Journal> = Arc::new(SledJournal::open(&data_dir.join("journal"))?);
        let generation = journal.desired()?.map_or(0, |d| d.generation);
        let completed = journal.completed()?;
        let (done, _) = watch::channel(completed);
        let inner = Arc::new(Inner {
            data_dir,
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
        let worker = tokio::spawn(worker(inner.clone()));
        Ok(StackEngine {
            inner,
            worker: Mutex::new(Some(worker)),
        })
    }

    /// Persists `state` as the desired state, then applies it in the
    /// background (superseding any apply in progress).
    pub fn set_desired(
        &self,
        state: HostState,
        rollout_id: Option<String>,
    ) -> StackEngineResult<()> {
        if self.inner.shutdown.load(Ordering::SeqCst) {
            return Err(StackEngineError::ShutDown);
        }
        let generation = self.inner.generation.load(Ordering::SeqCst) + 1;
        self.inner.journal.put_desired(&DesiredRecord {
            state,
            rollout_id,
            generation,
        })?;
        self.inner.generation.store(generation, Ordering::SeqCst);
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Waits until the newest desired state has been applied completely
    /// (every stack gated, rolled back or failed).
    pub async fn wait_idle(&self) -> StackEngineResult<()> {
        let target = self.inner.generation.load(Ordering::SeqCst);
        let mut rx = self.inner.done.subscribe();
        rx.wait_for(|g| *g >= target)
            .await
            .map(|_| ())
            .map_err(|_| StackEngineError::ShutDown)
    }

    /// Per stack: desired, applied and last-known-good revisions, phase.
    pub fn status(&self) -> StackEngineResult<HostStatus> {
        let j = &self.inner.journal;
        let desired = j.desired()?;
        let applied: BTreeMap<String, AppliedRecord> = j.all_applied()?.into_iter().collect();
        let lkg: BTreeMap<String, LkgRecord> = j.all_lkg()?.into_iter().collect();
        let inflight: BTreeMap<String, Inflight> = j.all_inflight()?.into_iter().collect();
        let live = self
            .inner
            .live
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default();
        let mut names: BTreeSet<String> = applied.keys().cloned().collect();
        names.extend(lkg.keys().cloned());
        names.extend(inflight.keys().cloned());
        let desired_revs: BTreeMap<String, String> = desired
            .as_ref()
            .map(|d| {
                d.state
                    .stacks
                    .iter()
                    .map(|s| (s.name.clone(), s.revision.clone()))
                    .collect()
            })
            .unwrap_or_default();
        names.extend(desired_revs.keys().cloned());
        let stacks = names
            .into_iter()
            .map(|name| {
                let (phase, message) = live.get(&name).cloned().unwrap_or_else(|| {
                    let phase = inflight
                        .get(&name)
                        .map(|i| i.phase)
                        .or_else(|| applied.get(&name).map(|a| a.phase))
                        .unwrap_or(Phase::Pending);
                    (phase, String::new())
                });
                StackStatus {
                    desired_revision: desired_revs.get(&name).cloned(),
                    applied_revision: applied
                        .get(&name)
                        .map(|a| a.revision.clone())
                        .filter(|r| !r.is_empty()),
                    lkg_revision: lkg.get(&name).map(|l| l.stack.revision.clone()),
                    phase,
                    message,
                    stack: name,
                }
            })
            .collect();
        Ok(HostStatus {
            host_revision: desired.as_ref().map(|d| d.state.revision.clone()),
            generation: self.inner.generation.load(Ordering::SeqCst),
            completed_generation: *self.inner.done.borrow(),
            stacks,
        })
    }

    /// Reports not yet acknowledged, oldest first.
    pub fn pending_reports(&self) -> StackEngineResult<Vec<Report>> {
        Ok(self.inner.journal.pending_reports()?)
    }

    /// Drops acknowledged reports.
    pub fn ack(&self, ids: &[String]) -> StackEngineResult<()> {
        Ok(self.inner.journal.ack(ids)?)
    }

    /// Graceful stop: the apply task finishes its current batch (or gate
    /// poll) and parks; the in-flight record stays so the next `open`
    /// resumes. Containers keep running.
    pub async fn shutdown(&self) {
        self.inner.shutdown.store(true, Ordering::SeqCst);
        self.inner.wake.notify_one();
        let handle = self.worker.lock().ok().and_then(|mut w| w.take());
        if let Some(h) = handle
            && let Err(e) = h.await
        {
            warn!(error = %e, "engine worker ended abnormally");
        }
        if let Err(e) = self.inner.journal.flush() {
            warn!(error = %e, "journal flush at shutdown failed");
        }
    }

    /// Hard stop, as a crash would: the apply task is dropped wherever it
    /// is (mid-step included). For crash-recovery tests and fatal paths.
    pub async fn abort(&self) {
        let handle = self.worker.lock().ok().and_then(|mut w| w.take());
        if let Some(h) = handle {
            h.abort();
            let _ = h.await;
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

async fn worker(inner: Arc<Inner>) {
    loop {
        if inner.shutdown.load(Ordering::SeqCst) {
            break;
        }
        let desired = match inner.journal.desired() {
            Ok(d) => d,
            Err(e) => {
                error!(error = %e, "cannot read the desired state");
                None
            }
        };
        let completed = *inner.done.borrow();
        if let Some(d) = desired
            && d.generation > completed
        {
            match apply_pass(&inner, &d).await {
                Pass::Completed => {
                    if let Err(e) = inner.journal.put_completed(d.generation) {
                        error!(error = %e, "cannot record the completed apply");
                    }
                    inner.done.send_replace(d.generation);
                }
                Pass::Interrupted => {}
            }
            continue;
        }
        inner.wake.notified().await;
    }
}

impl Inner {
    fn cancelled(&self, generation: u64) -> bool {
        self.shutdown.load(Ordering::SeqCst) || self.generation.load(Ordering::SeqCst) != generation
    }

    fn set_live(&self, stack: &str, phase: Phase, message: impl Into<String>) {
        if let Ok(mut l) = self.live.lock() {
            l.insert(stack.to_string(), (phase, message.into()));
        }
    }

    fn files_dir(&self, stack: &str, revision: &str) -> PathBuf {
        self.data_dir.join("stacks").join(stack).join(revision)
    }

    fn report(&self, d: &DesiredRecord, mut r: Report) {
        r.host_revision = d.state.revision.clone();
        r.rollout_id = d.rollout_id.clone().unwrap_or_default();
        info!(stack = %r.stack, kind = ?r.kind, message = %r.message, "report");
        if let Err(e) = self.journal.push_report(&r) {
            error!(error = %e, "cannot journal a report");
        }
    }
}

/// Applies the whole desired state once: removals first, then every stack
/// in `after` order.
async fn apply_pass(inner: &Arc<Inner>, d: &DesiredRecord) -> Pass {
    let generation = d.generation;
    info!(host_revision = %d.state.revision, generation, "applying desired state");

    if let Err(e) = remove_stale_stacks(inner, d).await {
        if matches!(e, ExecError::Cancelled) {
            return Pass::Interrupted;
        }
        warn!(error = %e, "removing stale stacks failed; will retry on the next apply");
    }

    let on_host: BTreeSet<&str> = d.state.stacks.iter().map(|s| s.name.as_str()).collect();
    let mut healthy: BTreeSet<String> = BTreeSet::new();
    let mut all_healthy = true;
    for stack in &d.state.stacks {
        if inner.cancelled(generation) {
            return Pass::Interrupted;
        }
        let blocked: Vec<&String> = stack
            .after
            .iter()
            .filter(|a| on_host.contains(a.as_str()) && !healthy.contains(*a))
            .collect();
        if !blocked.is_empty() {
            let msg = format!(
                "not applied: stack(s) {} it must come after are not healthy on this host",
                blocked
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            inner.set_live(&stack.name, Phase::Failed, msg.clone());
            inner.report(
                d,
                Report::new(ReportKind::Failed, &stack.name, &stack.revision, msg),
            );
            all_healthy = false;
            continue;
        }
        match apply_stack(inner, d, stack).await {
            StackEnd::Healthy => {
                healthy.insert(stack.name.clone());
            }
            StackEnd::NotHealthy => all_healthy = false,
            StackEnd::Interrupted => return Pass::Interrupted,
        }
    }
    if all_healthy && !d.state.stacks.is_empty() {
        inner.report(
            d,
            Report::new(
                ReportKind::HostHealthy,
                "",
                "",
                format!("host revision {} is applied and healthy", d.state.revision),
            ),
        );
    }
    Pass::Completed
}

/// Stacks that carry our labels on the engine, or are in the journal, but
/// are not in the desired state: removed entirely.
async fn remove_stale_stacks(inner: &Arc<Inner>, d: &DesiredRecord) -> Result<(), ExecError> {
    let rt = inner.runtime.as_ref();
    let err = |e: RuntimeError| ExecError::Step {
        service: String::new(),
        container: None,
        reason: e.to_string(),
    };
    let journal_err = |e: JournalError| ExecError::Step {
        service: String::new(),
        container: None,
        reason: e.to_string(),
    };
    // Only stacks this agent's journal knows (applied, last-known-good or
    // in flight; the in-flight record is written before anything is
    // created): objects of other agents sharing the engine stay untouched.
    let lkg: BTreeMap<String, LkgRecord> = inner
        .journal
        .all_lkg()
        .map_err(journal_err)?
        .into_iter()
        .collect();
    let mut journaled: BTreeSet<String> = lkg.keys().cloned().collect();
    journaled.extend(
        inner
            .journal
            .all_applied()
            .map_err(journal_err)?
            .into_iter()
            .map(|(k, _)| k),
    );
    journaled.extend(
        inner
            .journal
            .all_inflight()
            .map_err(journal_err)?
            .into_iter()
            .map(|(k, _)| k),
    );
    let wanted: BTreeSet<&str> = d.state.stacks.iter().map(|s| s.name.as_str()).collect();
    for stack in &journaled {
        if wanted.contains(stack.as_str()) {
            continue;
        }
        if inner.cancelled(d.generation) {
            return Err(ExecError::Cancelled);
        }
        inner.set_live(stack, Phase::Removing, "");
        let remove_volumes = lkg.get(stack).is_some_and(|l| l.stack.remove_volumes);
        let observed = exec::observe(rt, stack).await.map_err(err)?;
        let plan = plan_removal(stack, &observed, remove_volumes);
        let revision = lkg
            .get(stack)
            .map(|l| l.stack.revision.clone())
            .unwrap_or_default();
        // The last-known-good spec gives the stop grace periods; without
        // one an empty stack stands in (compose's default grace).
        let empty = lkg
            .get(stack)
            .map(|l| l.stack.clone())
            .unwrap_or_else(|| RenderedStack {
                name: stack.clone(),
                revision: revision.clone(),
                compose: Default::default(),
                health: Default::default(),
                after: Vec::new(),
                remove_volumes,
                files: BTreeMap::new(),
            });
        let cancelled = || inner.cancelled(d.generation);
        let pins = BTreeMap::new();
        let ex = exec::Executor {
            runtime: rt,
            stack: &empty,
            pins: &pins,
            files_dir: inner.files_dir(stack, &revision),
            auth: None,
            deadline: Instant::now() + std::time::Duration::from_secs(60),
            cancelled: &cancelled,
        };
        ex.run(&plan).await?;
        let _ = inner.journal.remove_applied(stack);
        let _ = inner.journal.remove_lkg(stack);
        let _ = inner.journal.remove_inflight(stack);
        let _ = std::fs::remove_dir_all(inner.data_dir.join("stacks").join(stack));
        if let Ok(mut l) = inner.live.lock() {
            l.remove(stack.as_str());
        }
        inner.report(
            d,
            Report::new(
                ReportKind::Removed,
                stack,
                &revision,
                format!(
                    "stack {stack} removed ({})",
                    if remove_volumes {
                        "volumes removed"
                    } else {
                        "volumes kept"
                    }
                ),
            ),
        );
    }
    Ok(())
}

/// The image ids the stack's containers run, by service.
async fn running_image_ids(
    rt: &dyn Runtime,
    stack: &str,
) -> Result<BTreeMap<String, String>, RuntimeError> {
    Ok(exec::stack_containers(rt, stack)
        .await?
        .into_iter()
        .filter_map(|c| {
            c.labels
                .get(LABEL_SERVICE)
                .cloned()
                .map(|s| (s, c.image_id))
        })
        .collect())
}

/// Plans and runs `stack` with `pins`; `Err` carries the step failure.
async fn converge(
    inner: &Arc<Inner>,
    stack: &RenderedStack,
    pins: &BTreeMap<String, String>,
    generation: u64,
    started: Instant,
) -> Result<bool, ExecError> {
    let rt = inner.runtime.as_ref();
    let to_exec = |e: String| ExecError::Step {
        service: String::new(),
        container: None,
        reason: e,
    };
    let dir = inner.files_dir(&stack.name, &stack.revision);
    exec::write_files(stack, &dir).map_err(|e| {
        to_exec(format!(
            "cannot write stack files to {}: {e}",
            dir.display()
        ))
    })?;
    let observed = exec::observe(rt, &stack.name)
        .await
        .map_err(|e| to_exec(e.to_string()))?;
    let images = exec::image_facts(rt, stack, pins)
        .await
        .map_err(|e| to_exec(e.to_string()))?;
    let plan = plan_stack(stack, &observed, &images);
    if plan.is_empty() {
        return Ok(false);
    }
    info!(stack = %stack.name, revision = %stack.revision, steps = plan.steps().count(), "running plan");
    let cancelled = || inner.cancelled(generation);
    let ex = exec::Executor {
        runtime: rt,
        stack,
        pins,
        files_dir: dir,
        auth: inner.options.registry_auth.as_ref(),
        deadline: started + stack.health.deadline,
        cancelled: &cancelled,
    };
    ex.run(&plan).await?;
    Ok(true)
}

async fn apply_stack(inner: &Arc<Inner>, d: &DesiredRecord, stack: &RenderedStack) -> StackEnd {
    let generation = d.generation;
    let name = stack.name.as_str();
    let j = &inner.journal;
    let applied = j.applied(name).ok().flatten();
    let inflight = j
        .inflight(name)
        .ok()
        .flatten()
        .filter(|i| i.revision == stack.revision);

    // A revision that already failed here is not retried by re-sending the
    // same state (no flapping); a new revision is.
    if inflight.is_none()
        && let Some(a) = &applied
        && a.attempted == stack.revision
        && matches!(a.phase, Phase::RolledBack | Phase::Failed)
    {
        inner.set_live(
            name,
            a.phase,
            "this revision already failed its health gate here",
        );
        return StackEnd::NotHealthy;
    }

    // Resume a rollback that a crash interrupted.
    if let Some(i) = &inflight
        && i.phase == Phase::RollingBack
    {
        let failure = i.failure.clone().unwrap_or_else(|| GateFailure {
            service: String::new(),
            container: None,
            reason: "health gate failed (rollback resumed after a restart)".into(),
        });
        return fail_and_rollback(inner, d, stack, failure, i.log_tail.clone()).await;
    }

    let started = Instant::now();
    let mut record = Inflight {
        revision: stack.revision.clone(),
        host_revision: d.state.revision.clone(),
        generation,
        phase: Phase::Applying,
        started_unix_ms: crate::unix_ms(),
        failure: None,
        log_tail: Vec::new(),
    };
    if let Err(e) = j.put_inflight(name, &record) {
        error!(stack = %name, error = %e, "cannot journal the apply; not applying");
        return StackEnd::NotHealthy;
    }
    inner.set_live(name, Phase::Applying, "");
    let changed = match converge(inner, stack, &BTreeMap::new(), generation, started).await {
        Ok(changed) => changed,
        Err(ExecError::Cancelled) => return StackEnd::Interrupted,
        Err(ExecError::Step {
            service,
            container,
            reason,
        }) => {
            let failure = GateFailure {
                service,
                container,
                reason: format!("apply failed: {reason}"),
            };
            let tail = log_tail(inner, &failure).await;
            return fail_and_rollback(inner, d, stack, failure, tail).await;
        }
    };
    let already_healthy = applied
        .as_ref()
        .is_some_and(|a| a.revision == stack.revision && a.phase == Phase::Healthy);
    if !changed && already_healthy && inflight.is_none() {
        let _ = j.remove_inflight(name);
        inner.set_live(name, Phase::Healthy, "up to date");
        return StackEnd::Healthy;
    }

    record.phase = Phase::Verifying;
    let _ = j.put_inflight(name, &record);
    inner.set_live(name, Phase::Verifying, "");
    let cancelled = || inner.cancelled(generation);
    let outcome = gate::gate(
        inner.runtime.as_ref(),
        &inner.prober,
        stack,
        gate::GateContext {
            started,
            cancelled: &cancelled,
        },
    )
    .await;
    match outcome {
        GateOutcome::Cancelled => StackEnd::Interrupted,
        GateOutcome::Healthy => {
            let image_ids = running_image_ids(inner.runtime.as_ref(), name)
                .await
                .unwrap_or_default();
            let now = crate::unix_ms();
            let lkg = LkgRecord {
                stack: stack.clone(),
                image_ids: image_ids.clone(),
                at_unix_ms: now,
            };
            let applied = AppliedRecord {
                revision: stack.revision.clone(),
                phase: Phase::Healthy,
                attempted: stack.revision.clone(),
                image_ids,
                at_unix_ms: now,
            };
            if let Err(e) = j
                .put_lkg(name, &lkg)
                .and_then(|()| j.put_applied(name, &applied))
            {
                error!(stack = %name, error = %e, "cannot journal the healthy revision");
            }
            let _ = j.remove_inflight(name);
            inner.set_live(name, Phase::Healthy, "");
            inner.report(
                d,
                Report::new(
                    ReportKind::Healthy,
                    name,
                    &stack.revision,
                    format!(
                        "stack {name} is healthy at revision {} ({:.1}s)",
                        short(&stack.revision),
                        started.elapsed().as_secs_f64()
                    ),
                ),
            );
            gc_files(inner, name);
            StackEnd::Healthy
        }
        GateOutcome::Failed(failure) => {
            let tail = log_tail(inner, &failure).await;
            fail_and_rollback(inner, d, stack, failure, tail).await
        }
    }
}

fn short(rev: &str) -> &str {
    rev.get(..12).unwrap_or(rev)
}

async fn log_tail(inner: &Arc<Inner>, f: &GateFailure) -> Vec<String> {
    let Some(id) = &f.container else {
        return Vec::new();
    };
    match inner.runtime.logs_tail(id, MAX_LOG_LINES).await {
        Ok(lines) => lines,
        Err(e) => vec![format!("(cannot read logs: {e})")],
    }
}

/// The gate (or the apply) failed: restore the last-known-good if there is
/// one, else stop the stack; report either way.
async fn fail_and_rollback(
    inner: &Arc<Inner>,
    d: &DesiredRecord,
    stack: &RenderedStack,
    failure: GateFailure,
    tail: Vec<String>,
) -> StackEnd {
    let name = stack.name.as_str();
    let j = &inner.journal;
    warn!(stack = %name, service = %failure.service, reason = %failure.reason, "health gate failed");
    let record = Inflight {
        revision: stack.revision.clone(),
        host_revision: d.state.revision.clone(),
        generation: d.generation,
        phase: Phase::RollingBack,
        started_unix_ms: crate::unix_ms(),
        failure: Some(failure.clone()),
        log_tail: tail.clone(),
    };
    let _ = j.put_inflight(name, &record);
    inner.set_live(name, Phase::RollingBack, failure.reason.clone());

    let lkg = j.lkg(name).ok().flatten();
    let Some(lkg) = lkg else {
        // First deploy: nothing to go back to. Stop what was started so a
        // crash loop does not keep running; the containers stay for logs.
        let rt = inner.runtime.as_ref();
        if let Ok(cs) = exec::stack_containers(rt, name).await {
            let stops = cs.iter().map(|c| {
                let grace = c
                    .labels
                    .get(LABEL_SERVICE)
                    .and_then(|svc| stack.compose.services.get(svc))
                    .and_then(|s| s.stop_grace_period)
                    .unwrap_or(std::time::Duration::from_secs(10));
                rt.stop_container(&c.id, grace)
            });
            for r in futures::future::join_all(stops).await {
                if let Err(e) = r {
                    warn!(stack = %name, error = %e, "cannot stop a container of the failed stack");
                }
            }
        }
        let applied = AppliedRecord {
            revision: String::new(),
            phase: Phase::Failed,
            attempted: stack.revision.clone(),
            image_ids: BTreeMap::new(),
            at_unix_ms: crate::unix_ms(),
        };
        let _ = j.put_applied(name, &applied);
        let _ = j.remove_inflight(name);
        let msg = format!(
            "{}; no last-known-good revision to restore (first deploy): stack stopped",
            failure.reason
        );
        inner.set_live(name, Phase::Failed, msg.clone());
        inner.report(
            d,
            Report::new(ReportKind::Failed, name, &stack.revision, msg)
                .with_failure(&failure.service, tail),
        );
        return StackEnd::NotHealthy;
    };

    let started = Instant::now();
    let restored = match converge(inner, &lkg.stack, &lkg.image_ids, d.generation, started).await {
        Err(ExecError::Cancelled) => return StackEnd::Interrupted,
        Err(e) => Err(format!("restoring the last-known-good failed: {e}")),
        Ok(_) => {
            let cancelled = || inner.cancelled(d.generation);
            match gate::gate(
                inner.runtime.as_ref(),
                &inner.prober,
                &lkg.stack,
                gate::GateContext {
                    started,
                    cancelled: &cancelled,
                },
            )
            .await
            {
                GateOutcome::Cancelled => return StackEnd::Interrupted,
                GateOutcome::Healthy => Ok(()),
                GateOutcome::Failed(f) => Err(format!(
                    "the restored last-known-good is not healthy either: {}",
                    f.reason
                )),
            }
        }
    };
    let now = crate::unix_ms();
    let _ = j.remove_inflight(name);
    match restored {
        Ok(()) => {
            let applied = AppliedRecord {
                revision: lkg.stack.revision.clone(),
                phase: Phase::RolledBack,
                attempted: stack.revision.clone(),
                image_ids: lkg.image_ids.clone(),
                at_unix_ms: now,
            };
            let _ = j.put_applied(name, &applied);
            let msg = format!(
                "{}; rolled back to revision {}",
                failure.reason,
                short(&lkg.stack.revision)
            );
            inner.set_live(name, Phase::RolledBack, msg.clone());
            let mut r = Report::new(ReportKind::RolledBack, name, &stack.revision, msg)
                .with_failure(&failure.service, tail);
            r.restored_revision = lkg.stack.revision.clone();
            inner.report(d, r);
        }
        Err(why) => {
            let applied = AppliedRecord {
                revision: String::new(),
                phase: Phase::Failed,
                attempted: stack.revision.clone(),
                image_ids: BTreeMap::new(),
                at_unix_ms: now,
            };
            let _ = j.put_applied(name, &applied);
            let msg = format!("{}; {why}", failure.reason);
            inner.set_live(name, Phase::Failed, msg.clone());
            inner.report(
                d,
                Report::new(ReportKind::Failed, name, &stack.revision, msg)
                    .with_failure(&failure.service, tail),
            );
        }
    }
    StackEnd::NotHealthy
}

/// Drops file dirs of revisions no container and no record refers to.
fn gc_files(inner: &Arc<Inner>, stack: &str) {
    let dir = inner.data_dir.join("stacks").join(stack);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    let mut keep: BTreeSet<String> = BTreeSet::new();
    if let Ok(Some(l)) = inner.journal.lkg(stack) {
        keep.insert(l.stack.revision);
    }
    if let Ok(Some(d)) = inner.journal.desired() {
        keep.extend(
            d.state
                .stacks
                .iter()
                .filter(|s| s.name == stack)
                .map(|s| s.revision.clone()),
        );
    }
    // Containers left unchanged by later revisions still bind from the
    // directory of the revision that created them: keep those too. This
    // runs synchronously on a snapshot taken by the caller's last listing,
    // so be conservative: only remove when the listing is available.
    let rt = inner.runtime.clone();
    let stack_name = stack.to_string();
    tokio::spawn(async move {
        let Ok(cs) = exec::stack_containers(rt.as_ref(), &stack_name).await else {
            return;
        };
        keep.extend(
            cs.iter()
                .filter_map(|c| c.labels.get(plan::LABEL_REVISION).cloned()),
        );
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    });
}
