//! The controller ties the control plane together: it follows the fleet
//! repo (poll + webhook), validates and renders each new commit, drives the
//! rollout engine, delivers desired states through the agent gateway, turns
//! agent reports into rollout inputs, keeps fleet telemetry, and raises
//! alerts. Every rollout transition is persisted by the engine before it is
//! acted on, so a killed control plane resumes where it was.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};

use convoy_shared::proto::{DesiredState, Report, ReportKind, TelemetryBatch};

use crate::alerts::{AlertEvent, Alerts, GpuFault};
use crate::gateway::{Gateway, GatewayHooks};
use crate::git::{Credentials, GitSource};
use crate::rollout::{Action, EventKind, Input, Rollout};
use crate::rollout::{Engine, HostDesired, Outlet};
use crate::telemetry::{HistoryLimits, TelemetryStore};

/// `[git]` in the control plane's config.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitConfig {
    /// A local path, file://, https:// or ssh URL.
    pub url: String,
    #[serde(default = "default_branch")]
    pub branch: String,
    /// Default "60s".
    #[serde(default)]
    pub poll_interval: Option<String>,
    /// Shared secret of `POST /api/v1/webhooks/git`.
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// https: user name (e.g. "git", "oauth2") and token.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
    /// ssh: private key file.
    #[serde(default)]
    pub ssh_key: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for GitConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitConfig")
            .field("url", &self.url)
            .field("branch", &self.branch)
            .field("poll_interval", &self.poll_interval)
            .field(
                "webhook_secret",
                &self.webhook_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("username", &self.username)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ssh_key", &self.ssh_key)
            .finish()
    }
}

fn default_branch() -> String {
    "main".into()
}

pub const DEFAULT_POLL: Duration = Duration::from_secs(60);
const TICK: Duration = Duration::from_secs(1);
/// Certificates are checked every this many 5 s beats (5 min).
const CERT_CHECK_BEATS: u64 = 60;
/// An agent renews at 60-80 % of its certificate's life; one with less
/// than this left did not, and once expired it cannot reconnect without a
/// new join token.
pub const CERT_EXPIRY_WARNING: Duration = Duration::from_secs(4 * 3600);

impl GitConfig {
    pub fn poll(&self) -> Result<Duration, String> {
        match &self.poll_interval {
            Some(s) => {
                let d = convoy_shared::duration::parse(s)?;
                if d < Duration::from_secs(1) {
                    return Err("git.poll_interval must be at least 1s".into());
                }
                Ok(d)
            }
            None => Ok(DEFAULT_POLL),
        }
    }

    fn credentials(&self) -> Credentials {
        if let Some(key) = &self.ssh_key {
            return Credentials::SshKey {
                user: self.username.clone().unwrap_or_else(|| "git".into()),
                private_key: key.clone(),
                passphrase: None,
            };
        }
        match &self.token {
            Some(t) => Credentials::UserPass {
                user: self.username.clone().unwrap_or_else(|| "git".into()),
                password: t.clone(),
            },
            None => Credentials::None,
        }
    }
}

/// The state of the git sync, for the API.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncState {
    pub url: String,
    pub branch: String,
    pub head: Option<String>,
    pub last_fetch_unix_ms: Option<u64>,
    pub last_error: Option<String>,
}

pub struct Controller {
    fleet: String,
    audit: crate::audit::AuditLog,
    engine: Engine,
    gateway: Gateway,
    alerts: Option<Alerts>,
    telemetry: Arc<Mutex<TelemetryStore>>,
    git: Option<(GitSource, Duration)>,
    webhook_secret: Option<String>,
    sync_now: Notify,
    sync_state: Mutex<SyncState>,
    rt: tokio::runtime::Handle,
    stats: StreamStats,
}

/// Counters of what the agents' streams brought in (cheap: atomics).
#[derive(Debug, Default)]
struct StreamStats {
    reports: AtomicU64,
    telemetry_batches: AtomicU64,
    telemetry_samples: AtomicU64,
    delivered: AtomicU64,
    connects: AtomicU64,
}

/// A snapshot of [`Controller::stream_stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StreamCounts {
    /// Agent reports received (including resends after a reconnect).
    pub reports: u64,
    pub telemetry_batches: u64,
    pub telemetry_samples: u64,
    /// Desired states the agents confirmed.
    pub delivered: u64,
    /// Streams opened.
    pub connects: u64,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("fleet", &self.fleet)
            .finish_non_exhaustive()
    }
}

pub use convoy_kit::clock::now_ms;

/// The engine needs a place to send things before the controller exists.
struct LateOutlet(std::sync::OnceLock<std::sync::Weak<Controller>>);

impl Outlet for LateOutlet {
    fn deliver(&self, host: &str, desired: &HostDesired, state_json: &[u8]) {
        if let Some(c) = self.0.get().and_then(std::sync::Weak::upgrade) {
            c.deliver(host, desired, state_json);
        }
    }
    fn event(&self, rollout: &Rollout, action: &Action) {
        if let Some(c) = self.0.get().and_then(std::sync::Weak::upgrade) {
            c.rollout_event(rollout, action);
        }
    }
}

impl Controller {
    /// Builds the controller over the store's database and plugs it into
    /// the gateway. Call from inside the tokio runtime.
    pub fn new(
        db: &sled::Db,
        gateway: Gateway,
        git: Option<&GitConfig>,
        mirror: &std::path::Path,
        alerts: Option<Alerts>,
    ) -> Result<Arc<Controller>, String> {
        let outlet = Arc::new(LateOutlet(std::sync::OnceLock::new()));
        let engine = Engine::open(db, outlet.clone()).map_err(|e| e.to_string())?;
        let git_source = match git {
            Some(g) => Some((
                GitSource::new(&g.url, &g.branch, g.credentials(), mirror),
                g.poll()?,
            )),
            None => None,
        };
        let sync_state = SyncState {
            url: git.map(|g| g.url.clone()).unwrap_or_default(),
            branch: git.map(|g| g.branch.clone()).unwrap_or_default(),
            ..SyncState::default()
        };
        let audit =
            crate::audit::AuditLog::open(db).map_err(|e| format!("opening the audit log: {e}"))?;
        let ctl = Arc::new(Controller {
            fleet: gateway.fleet().to_owned(),
            audit,
            engine,
            gateway: gateway.clone(),
            alerts,
            telemetry: Arc::new(Mutex::new(TelemetryStore::new(HistoryLimits::default()))),
            git: git_source,
            webhook_secret: git.and_then(|g| g.webhook_secret.clone()),
            sync_now: Notify::new(),
            sync_state: Mutex::new(sync_state),
            rt: tokio::runtime::Handle::current(),
            stats: StreamStats::default(),
        });
        let _ = outlet.0.set(Arc::downgrade(&ctl));
        gateway.set_hooks(ctl.clone());
        Ok(ctl)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn audit(&self) -> &crate::audit::AuditLog {
        &self.audit
    }

    pub fn alerts(&self) -> Option<&Alerts> {
        self.alerts.as_ref()
    }

    pub fn fleet(&self) -> &str {
        &self.fleet
    }

    pub fn webhook_secret(&self) -> Option<&str> {
        self.webhook_secret.as_deref()
    }

    pub fn sync_state(&self) -> SyncState {
        self.sync_state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// What the agents' streams brought in since start.
    pub fn stream_stats(&self) -> StreamCounts {
        let s = &self.stats;
        StreamCounts {
            reports: s.reports.load(Ordering::Relaxed),
            telemetry_batches: s.telemetry_batches.load(Ordering::Relaxed),
            telemetry_samples: s.telemetry_samples.load(Ordering::Relaxed),
            delivered: s.delivered.load(Ordering::Relaxed),
            connects: s.connects.load(Ordering::Relaxed),
        }
    }

    /// The fleet's telemetry (shared with the `/metrics` collector).
    pub fn telemetry(&self) -> &Arc<Mutex<TelemetryStore>> {
        &self.telemetry
    }

    pub fn with_telemetry<T>(&self, f: impl FnOnce(&TelemetryStore) -> T) -> T {
        f(&self.telemetry.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Asks the sync loop to fetch now (webhook, `convoy sync`).
    pub fn trigger_sync(&self) {
        self.sync_now.notify_one();
    }

    /// Runs the sync, tick and heartbeat loops until `stop` turns true.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        // Resume whatever rollout was running when we stopped.
        let me = self.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || me.engine.resume(now_ms())).await {
            tracing::error!(error = %e, "resuming the rollout failed");
        }
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let poll = self.git.as_ref().map_or(DEFAULT_POLL, |(_, p)| *p);
        let mut poll_timer = tokio::time::interval(poll);
        poll_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut beat = tokio::time::interval(Duration::from_secs(5));
        let mut beats: u64 = 0;
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = tick.tick() => {
                    let me = self.clone();
                    let res = tokio::task::spawn_blocking(move || me.engine.feed(&Input::Tick, now_ms())).await;
                    if let Ok(Err(e)) = res {
                        tracing::error!(error = %crate::error_chain(&e), "rollout tick failed");
                    }
                }
                _ = poll_timer.tick() => self.sync().await,
                _ = self.sync_now.notified() => self.sync().await,
                _ = beat.tick() => {
                    if let Some(a) = &self.alerts {
                        for host in self.gateway.sessions_info().keys() {
                            if let Err(e) = a.heartbeat(&self.fleet, host).await {
                                tracing::warn!(error = %e, host = %host, "alert heartbeat failed");
                            }
                        }
                        beats += 1;
                        if beats % CERT_CHECK_BEATS == 1 {
                            self.check_certificates(a).await;
                        }
                    }
                }
            }
            if *stop.borrow() {
                break;
            }
        }
    }

    /// Raises `cert_expiring` for enrolled, unrevoked hosts whose certificate
    /// expires within [`CERT_EXPIRY_WARNING`], and resolves it once renewed.
    async fn check_certificates(&self, alerts: &Alerts) {
        let store = self.gateway.store().clone();
        let Ok(Ok((hosts, revoked))) = tokio::task::spawn_blocking(move || {
            Ok::<_, crate::store::StoreError>((store.hosts()?, store.revocations()?))
        })
        .await
        else {
            return;
        };
        let now = now_ms() / 1000;
        for h in hosts {
            if revoked.hosts.contains(&h.name) || h.cert_not_after_unix == 0 {
                continue;
            }
            let subject = format!("agent {}", h.name);
            if h.cert_not_after_unix.saturating_sub(now) < CERT_EXPIRY_WARNING.as_secs() {
                let ev = AlertEvent::CertExpiring {
                    fleet: self.fleet.clone(),
                    host: Some(h.name.clone()),
                    subject,
                    not_after: h.cert_not_after_unix,
                };
                if let Err(e) = alerts.raise(ev).await {
                    tracing::warn!(error = %e, "raising cert_expiring failed");
                }
            } else if let Err(e) = alerts.resolve(&format!("cert_expiring/{subject}")).await {
                tracing::warn!(error = %e, "resolving cert_expiring failed");
            }
        }
    }

    async fn sync(self: &Arc<Self>) {
        if self.git.is_none() {
            return;
        }
        let me = self.clone();
        let res = tokio::task::spawn_blocking(move || me.sync_blocking()).await;
        let outcome = match res {
            Ok(r) => r,
            Err(e) => Err(format!("sync task failed: {e}")),
        };
        let mut st = self.sync_state.lock().unwrap_or_else(|e| e.into_inner());
        st.last_fetch_unix_ms = Some(now_ms());
        match outcome {
            Ok(head) => {
                st.head = Some(head);
                st.last_error = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "fleet repo sync failed; keeping the last good commit");
                st.last_error = Some(e);
            }
        }
    }

    /// Fetches; loads, validates and renders a new head; starts its rollout
    /// or rejects it as a whole.
    fn sync_blocking(&self) -> Result<String, String> {
        let Some((git, _)) = &self.git else {
            return Err("no git source configured".into());
        };
        let head = git.fetch().map_err(|e| e.to_string())?;
        if self
            .engine
            .commit(&head)
            .map_err(|e| e.to_string())?
            .is_some()
        {
            return Ok(head);
        }
        let (files, info) = git.read_commit(&head).map_err(|e| e.to_string())?;
        match convoy_shared::repo::load(&files) {
            Ok(repo) => {
                if repo.fleet.name != self.fleet {
                    let reason = format!(
                        "fleet.toml names fleet {:?}, but this control plane serves {:?}",
                        repo.fleet.name, self.fleet
                    );
                    self.reject(&head, vec![], reason);
                    return Ok(head);
                }
                for w in &repo.warnings.0 {
                    tracing::warn!(commit = %head, "{w}");
                }
                match self.engine.accept_commit(&head, &repo, now_ms()) {
                    Ok(Some(id)) => {
                        tracing::info!(
                            commit = %head,
                            summary = %info.summary,
                            rollout = %id,
                            "commit accepted; rollout started"
                        );
                        self.audit.record(crate::audit::AuditEntry {
                            who: "git".into(),
                            kind: "commit_accepted".into(),
                            rollout: id,
                            commit: head.clone(),
                            message: format!("{} ({})", info.summary, info.author),
                            ..Default::default()
                        });
                    }
                    Ok(None) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
            Err(diags) => {
                let reason = diags
                    .errors()
                    .take(20)
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n");
                self.reject(&head, diags.0, reason);
            }
        }
        Ok(head)
    }

    fn reject(
        &self,
        commit: &str,
        problems: Vec<convoy_shared::source::Diagnostic>,
        reason: String,
    ) {
        tracing::error!(commit = %commit, problems = %reason, "commit rejected; the fleet stays on the last good commit");
        self.audit.record(crate::audit::AuditEntry {
            who: "git".into(),
            kind: "commit_rejected".into(),
            commit: commit.to_owned(),
            message: reason.clone(),
            ..Default::default()
        });
        match self.engine.reject_commit(commit, problems, now_ms()) {
            Ok(true) => {
                if let Some(a) = &self.alerts {
                    let ev = AlertEvent::CommitRejected {
                        fleet: self.fleet.clone(),
                        commit: commit.to_owned(),
                        reason,
                    };
                    let a = a.clone();
                    self.rt.spawn(async move {
                        if let Err(e) = a.raise(ev).await {
                            tracing::error!(error = %e, "raising an alert failed");
                        }
                    });
                }
            }
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "recording a rejected commit failed"),
        }
    }

    fn deliver(&self, host: &str, d: &HostDesired, json: &[u8]) {
        let state = desired_state(d, json);
        match self.gateway.send_desired(host, state) {
            Ok(()) => {}
            Err(e) => tracing::info!(
                host = %host,
                revision = %d.revision,
                reason = %e,
                "desired state waits for the host to connect"
            ),
        }
    }

    fn raise(&self, ev: AlertEvent) {
        if let Some(a) = &self.alerts {
            let a = a.clone();
            self.rt.spawn(async move {
                if let Err(e) = a.raise(ev).await {
                    tracing::error!(error = %e, "raising an alert failed");
                }
            });
        }
    }

    fn rollout_event(&self, r: &Rollout, action: &Action) {
        let Action::Event {
            kind,
            host,
            message,
        } = action
        else {
            return;
        };
        tracing::info!(
            rollout = %r.id,
            commit = %r.commit,
            host = host.as_deref().unwrap_or(""),
            event = ?kind,
            "{message}"
        );
        self.audit.record(crate::audit::AuditEntry {
            who: "control-plane".into(),
            kind: "rollout".into(),
            host: host.clone().unwrap_or_default(),
            rollout: r.id.clone(),
            commit: r.commit.clone(),
            message: message.clone(),
            ..Default::default()
        });
        let fleet = self.fleet.clone();
        match kind {
            EventKind::RolloutCompleted => self.raise(AlertEvent::RolloutCompleted {
                fleet,
                rollout: r.id.clone(),
                commit: r.commit.clone(),
            }),
            EventKind::RolloutHalted => self.raise(AlertEvent::RolloutHalted {
                fleet,
                rollout: r.id.clone(),
                commit: r.commit.clone(),
                reason: message.clone(),
            }),
            EventKind::RolloutRolledBack | EventKind::RolloutRollingBack => {
                self.raise(AlertEvent::RolloutFailed {
                    fleet,
                    rollout: r.id.clone(),
                    commit: r.commit.clone(),
                    reason: message.clone(),
                })
            }
            _ => {}
        }
    }
}

/// An agent's GPU health event as an alert. The GPU is named by UUID (an
/// index can change across reboots); the index is in the detail.
pub fn gpu_alert(fleet: &str, host: &str, e: &convoy_shared::proto::GpuEvent) -> AlertEvent {
    use convoy_shared::proto::GpuEventKind as K;
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

fn desired_state(d: &HostDesired, json: &[u8]) -> DesiredState {
    DesiredState {
        revision: d.revision.clone(),
        generation: d.generation,
        commit: d.commit.clone(),
        rollout_id: d.rollout_id.clone(),
        state_json: json.to_vec(),
    }
}

#[async_trait::async_trait]
impl GatewayHooks for Controller {
    async fn desired_for(&self, host: &str) -> Option<DesiredState> {
        let engine = self.engine.clone();
        let h = host.to_owned();
        match tokio::task::spawn_blocking(move || engine.desired_for(&h)).await {
            Ok(Ok(Some((d, json)))) => Some(desired_state(&d, &json)),
            Ok(Ok(None)) => None,
            Ok(Err(e)) => {
                tracing::error!(host = %host, error = %e, "reading the desired state failed");
                None
            }
            Err(_) => None,
        }
    }

    async fn delivered(&self, host: &str, revision: &str, _generation: u64) {
        self.stats.delivered.fetch_add(1, Ordering::Relaxed);
        self.input(Input::Delivered {
            host: host.to_owned(),
            revision: revision.to_owned(),
        })
        .await;
    }

    async fn report(&self, host: &str, r: &Report, new: bool) {
        self.stats.reports.fetch_add(1, Ordering::Relaxed);
        let kind = ReportKind::try_from(r.kind).unwrap_or(ReportKind::Unspecified);
        if !new {
            // A resend: the report was stored before, but a control plane
            // killed between storing it and feeding the rollout never acted
            // on it (and the agent resends only what was not acked). The
            // step function ignores inputs it already took, so feed it
            // again; alerts were raised (or lost with the kill) the first
            // time and are not raised twice.
            match kind {
                ReportKind::HostHealthy => {
                    self.input(Input::HostHealthy {
                        host: host.to_owned(),
                        revision: r.host_revision.clone(),
                    })
                    .await;
                }
                ReportKind::RolledBack | ReportKind::Failed => {
                    self.input(Input::HostFailed {
                        host: host.to_owned(),
                        revision: r.host_revision.clone(),
                        reason: format!("stack {}: {}", r.stack, r.message),
                    })
                    .await;
                }
                _ => {}
            }
            return;
        }
        tracing::info!(
            host = %host,
            stack = %r.stack,
            kind = ?kind,
            host_revision = %r.host_revision,
            rollout = %r.rollout_id,
            "{}",
            r.message
        );
        self.audit.record(crate::audit::AuditEntry {
            who: host.to_owned(),
            kind: "report".into(),
            host: host.to_owned(),
            stack: r.stack.clone(),
            rollout: r.rollout_id.clone(),
            message: format!("{kind:?}: {}", r.message),
            ..Default::default()
        });
        let commit = self
            .engine
            .desired_for(host)
            .ok()
            .flatten()
            .map(|(d, _)| d.commit)
            .unwrap_or_default();
        match kind {
            ReportKind::HostHealthy => {
                self.input(Input::HostHealthy {
                    host: host.to_owned(),
                    revision: r.host_revision.clone(),
                })
                .await;
            }
            ReportKind::RolledBack | ReportKind::Failed => {
                let reason = if r.failing_service.is_empty() {
                    format!("stack {}: {}", r.stack, r.message)
                } else {
                    format!(
                        "stack {} (service {}): {}",
                        r.stack, r.failing_service, r.message
                    )
                };
                let ev = if kind == ReportKind::RolledBack {
                    AlertEvent::HostRolledBack {
                        fleet: self.fleet.clone(),
                        host: host.to_owned(),
                        stack: r.stack.clone(),
                        commit,
                        reason: reason.clone(),
                    }
                } else {
                    AlertEvent::StackFailed {
                        fleet: self.fleet.clone(),
                        host: host.to_owned(),
                        stack: r.stack.clone(),
                        commit,
                        reason: reason.clone(),
                    }
                };
                self.raise(ev);
                self.input(Input::HostFailed {
                    host: host.to_owned(),
                    revision: r.host_revision.clone(),
                    reason,
                })
                .await;
            }
            _ => {}
        }
    }

    async fn telemetry(&self, host: &str, batch: TelemetryBatch) {
        self.stats.telemetry_batches.fetch_add(1, Ordering::Relaxed);
        self.stats
            .telemetry_samples
            .fetch_add(batch.samples.len() as u64, Ordering::Relaxed);
        if batch.dropped > 0 {
            tracing::info!(host = %host, dropped = batch.dropped, "the agent dropped telemetry samples while disconnected");
        }
        let events: Vec<AlertEvent> = batch
            .samples
            .iter()
            .flat_map(|s| s.gpu_events.iter())
            .map(|e| gpu_alert(&self.fleet, host, e))
            .collect();
        self.telemetry
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ingest_batch(host, batch);
        for ev in events {
            if let AlertEvent::GpuEvent {
                gpu, fault, detail, ..
            } = &ev
            {
                tracing::warn!(host = %host, gpu = %gpu, fault = fault.as_str(), "GPU event: {detail}");
            }
            self.raise(ev);
        }
    }

    async fn revoked_attempt(&self, host: &str, peer: &str) {
        self.audit.record(crate::audit::AuditEntry {
            who: host.to_owned(),
            kind: "revoked_connect".into(),
            host: host.to_owned(),
            message: format!("revoked host tried to connect from {peer}"),
            ..Default::default()
        });
        self.raise(AlertEvent::RevokedHostConnect {
            fleet: self.fleet.clone(),
            host: host.to_owned(),
            peer: peer.to_owned(),
        });
    }

    async fn connected(&self, host: &str, connected: bool) {
        if connected {
            self.stats.connects.fetch_add(1, Ordering::Relaxed);
        }
        tracing::info!(host = %host, connected, "host stream");
    }
}

impl Controller {
    async fn input(&self, input: Input) {
        let engine = self.engine.clone();
        let res = tokio::task::spawn_blocking(move || engine.feed(&input, now_ms())).await;
        match res {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %crate::error_chain(&e), "rollout input failed"),
            Err(e) => tracing::error!(error = %e, "rollout task failed"),
        }
    }
}
