//! The dispatcher: the one owner of the control plane's moving parts (the
//! rollout engine, the gateway's stream registry, the audit log, the
//! alerts, the fleet telemetry, the git sync) and the only place that
//! routes between them. Data flows one way:
//!
//! ```text
//! agent streams ─(GatewayHooks)─▶ dispatcher ─▶ translate (pure) ─▶ engine.feed
//! git sync ─(Fetched)──────────▶ dispatcher ─▶ engine.accept/reject
//! operator API ────────────────▶ dispatcher ─▶ engine.input
//! engine ─(Effects: deliveries, events)─▶ dispatcher ─▶ sessions / audit / alerts
//! ```
//!
//! The engine and the gateway hold no handle on the dispatcher: the
//! gateway is given it as its hooks when it is built (after the
//! dispatcher, over the same [`Sessions`]), and the engine returns what a
//! step decided instead of calling out.
//!
//! `hooks.rs`: what the agents' streams bring in; `run.rs`: the periodic
//! loops (rollout ticks, git sync, heartbeats, certificate checks).

mod hooks;
mod run;

pub use hooks::StreamHooks;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use convoy_kit::Clock;
use convoy_shared::proto::DesiredState;
use serde::Serialize;

use crate::alerts::{AlertEvent, Alerts};
use crate::audit::{AuditEntry, AuditLog};
use crate::gateway::Sessions;
use crate::rollout::{Effects, Engine, EngineError, HostDesired, Input, Rollout};
use crate::store::FleetStore;
use crate::sync::GitSync;
use crate::telemetry::TelemetryStore;

/// What the dispatcher is built from.
#[derive(Debug)]
pub struct Parts {
    pub fleet: String,
    pub clock: Arc<dyn Clock>,
    pub store: Arc<dyn FleetStore>,
    pub engine: Engine,
    pub sessions: Sessions,
    pub audit: AuditLog,
    pub alerts: Option<Alerts>,
    pub telemetry: Arc<Mutex<TelemetryStore>>,
    pub sync: GitSync,
}

pub struct Dispatcher {
    fleet: String,
    clock: Arc<dyn Clock>,
    store: Arc<dyn FleetStore>,
    engine: Engine,
    sessions: Sessions,
    audit: AuditLog,
    alerts: Option<Alerts>,
    telemetry: Arc<Mutex<TelemetryStore>>,
    sync: GitSync,
    rt: tokio::runtime::Handle,
    stats: StreamStats,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("fleet", &self.fleet)
            .finish_non_exhaustive()
    }
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

/// A snapshot of [`Dispatcher::stream_stats`].
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

/// A host's desired state as it goes on the wire.
pub fn desired_state(d: &HostDesired, json: &[u8]) -> DesiredState {
    DesiredState {
        revision: d.revision.clone(),
        generation: d.generation,
        commit: d.commit.clone(),
        rollout_id: d.rollout_id.clone(),
        state_json: json.to_vec(),
    }
}

impl Dispatcher {
    /// Call from inside the tokio runtime (alerts are raised on it).
    pub fn new(p: Parts) -> Dispatcher {
        Dispatcher {
            fleet: p.fleet,
            clock: p.clock,
            store: p.store,
            engine: p.engine,
            sessions: p.sessions,
            audit: p.audit,
            alerts: p.alerts,
            telemetry: p.telemetry,
            sync: p.sync,
            rt: tokio::runtime::Handle::current(),
            stats: StreamStats::default(),
        }
    }

    pub fn fleet(&self) -> &str {
        &self.fleet
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    pub fn alerts(&self) -> Option<&Alerts> {
        self.alerts.as_ref()
    }

    pub fn sync(&self) -> &GitSync {
        &self.sync
    }

    /// The fleet's telemetry (shared with the `/metrics` collector).
    pub fn telemetry(&self) -> &Arc<Mutex<TelemetryStore>> {
        &self.telemetry
    }

    pub fn with_telemetry<T>(&self, f: impl FnOnce(&TelemetryStore) -> T) -> T {
        f(&self.telemetry.lock().unwrap_or_else(|e| e.into_inner()))
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

    /// Appends to the audit log (stamped with the dispatcher's clock).
    pub fn record(&self, entry: AuditEntry) {
        self.audit.record(entry);
    }

    /// Queues an alert; the outbox write runs on the runtime, off the
    /// caller's path (a failure is logged with its cause).
    pub fn raise(&self, ev: AlertEvent) {
        if let Some(a) = &self.alerts {
            let a = a.clone();
            self.rt.spawn(async move {
                if let Err(e) = a.raise(ev).await {
                    tracing::error!(error = %crate::error_chain(&e), "raising an alert failed");
                }
            });
        }
    }

    /// Routes what a durable rollout step decided: desired states onto the
    /// hosts' streams (a host that is not connected gets it on connect),
    /// events into the audit log and alerts.
    pub fn route(&self, effects: Effects) {
        for d in effects.deliveries {
            let state = desired_state(&d.desired, &d.state_json);
            if let Err(e) = self.sessions.send_desired(&d.host, state) {
                tracing::info!(
                    host = %d.host,
                    revision = %d.desired.revision,
                    reason = %e,
                    "desired state waits for the host to connect"
                );
            }
        }
        for ev in effects.events {
            tracing::info!(
                rollout = %ev.rollout,
                commit = %ev.commit,
                host = ev.host.as_deref().unwrap_or(""),
                event = ?ev.kind,
                "{}",
                ev.message
            );
            let (audit, alert) = crate::translate::rollout_event(&self.fleet, &ev);
            self.record(audit);
            if let Some(a) = alert {
                self.raise(a);
            }
        }
    }

    /// Feeds an input to the current rollout and routes what it decided.
    /// Blocking (store writes): call from `spawn_blocking`.
    pub fn operate(&self, input: &Input) -> Result<Option<Rollout>, EngineError> {
        let (rollout, effects) = self.engine.input(input, self.clock.now_ms())?;
        self.route(effects);
        Ok(rollout)
    }

    /// `convoy promote`. Blocking.
    pub fn promote(&self) -> Result<Rollout, EngineError> {
        let (rollout, effects) = self.engine.promote(self.clock.now_ms())?;
        self.route(effects);
        Ok(rollout)
    }

    /// [`Dispatcher::operate`] from async code, without a copy of the
    /// rollout: what every agent report and tick goes through.
    pub async fn feed(self: &Arc<Self>, input: Input) {
        let me = self.clone();
        let res = tokio::task::spawn_blocking(move || {
            let effects = me.engine.feed(&input, me.clock.now_ms())?;
            me.route(effects);
            Ok::<_, EngineError>(())
        })
        .await;
        match res {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %crate::error_chain(&e), "rollout input failed"),
            Err(e) => tracing::error!(error = %e, "rollout task failed"),
        }
    }
}
