//! Alerts: events → alerts → a durable outbox in the store → webhook,
//! Slack, Discord and Telegram sinks, exactly once per idempotency key
//! through sink outages and control-plane restarts, without floods.
//!
//! - [`Alerts::raise`] / [`Alerts::resolve`] (`conditions.rs`) write the
//!   alert and one pending delivery record per matching sink in one store
//!   change, durable before they return; nothing is sent from the caller's
//!   task.
//! - [`Alerts::run`] (`worker.rs`) is the worker: it sends due deliveries
//!   (per-request timeout, at most [`MAX_IN_FLIGHT`] at once and
//!   [`MAX_IN_FLIGHT_PER_SINK`] per sink), retries with exponential backoff
//!   and full jitter, honours `Retry-After` on 429, treats 4xx other than
//!   408/429 as permanent, gives up `give_up_after` after the alert was
//!   raised (recorded as `gave_up`), emits held resolves, detects offline
//!   hosts from [`Alerts::heartbeat`] (`offline.rs`) and prunes the outbox
//!   to `outbox_capacity` (`prune.rs`).
//! - Noise: a condition key (`host_offline/<host>`, ...) fires once while
//!   open; its resolve is held for `flap_window`, and re-opening inside it
//!   (flapping) continues the same alert, so N flaps give one alert and one
//!   resolve. A per-sink token bucket delays (never drops) deliveries.
//!
//! What to do with a condition or a delivery is decided by pure functions
//! (`conditions.rs`, `worker.rs`); the store applies the change atomically.
//! Payloads and the webhook signature: see [`payload`].

mod conditions;
pub mod config;
pub mod model;
mod offline;
pub mod payload;
mod prune;
pub mod send;
mod worker;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use convoy_kit::Clock;
use tokio::sync::Notify;

pub use config::{AlertsConfig, ChatId, ConfigError, Secret, SinkConfig, SinkKind};
pub use model::{Alert, AlertEvent, EventKind, GpuFault, Severity};

pub use crate::store::{DeliveryState, DeliveryStatus};
use crate::store::{OutboxStore, StoreError};

/// Most delivery attempts in flight at once.
pub const MAX_IN_FLIGHT: usize = 16;
/// Most attempts in flight per sink (a hanging sink cannot starve others).
pub const MAX_IN_FLIGHT_PER_SINK: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error("alert outbox")]
    Store(#[from] StoreError),
    #[error("alert outbox task failed")]
    Task(#[source] tokio::task::JoinError),
    #[error("unknown alert sink {0:?}")]
    UnknownSink(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// What [`Alerts::raise`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Raised {
    /// A new alert was stored (and queued for its sinks).
    New { id: String, sinks: Vec<String> },
    /// The condition is already open: same alert, nothing new to send.
    Duplicate { id: String },
    /// The condition re-opened while its resolve was held: same alert.
    Flapped { id: String, flaps: u32 },
    /// A resolve event (host online) with no open condition.
    Resolved { condition: String, changed: bool },
}

/// The alert subsystem; cheap to clone.
#[derive(Clone)]
pub struct Alerts {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Alerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Alerts")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

struct Inner {
    store: Arc<dyn OutboxStore>,
    clock: Arc<dyn Clock>,
    config: AlertsConfig,
    public_url: String,
    client: reqwest::Client,
    wake: Notify,
    /// Alerts in the outbox (kept here: the prune check runs every tick).
    count: AtomicUsize,
    hosts: std::sync::Mutex<BTreeMap<String, offline::HostSeen>>,
    /// When the outbox went over capacity (the last-resort prune waits).
    over_capacity_since: std::sync::Mutex<Option<u64>>,
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

impl Alerts {
    /// The alerts over the store's outbox (pending deliveries from a
    /// previous run are resumed by [`Alerts::run`]). Validates the config.
    pub fn open(
        store: Arc<dyn OutboxStore>,
        config: AlertsConfig,
        client: reqwest::Client,
        clock: Arc<dyn Clock>,
    ) -> Result<Alerts, AlertsError> {
        config.validate()?;
        let count = store.alert_count()?;
        let public_url = config.public_url.trim_end_matches('/').to_owned();
        Ok(Alerts {
            inner: Arc::new(Inner {
                store,
                clock,
                config,
                public_url,
                client,
                wake: Notify::new(),
                count: AtomicUsize::new(count),
                hosts: std::sync::Mutex::new(BTreeMap::new()),
                over_capacity_since: std::sync::Mutex::new(None),
            }),
        })
    }

    pub fn config(&self) -> &AlertsConfig {
        &self.inner.config
    }

    fn now_ms(&self) -> u64 {
        self.inner.clock.now_ms()
    }

    fn matching_sinks(&self, alert: &Alert) -> Vec<String> {
        if let Some(only) = &alert.only_sink {
            return vec![only.clone()];
        }
        self.inner
            .config
            .sinks
            .iter()
            .filter(|s| {
                s.wants(
                    alert.kind,
                    alert.severity,
                    alert.host.as_deref(),
                    alert.resolved,
                )
            })
            .map(|s| s.name.clone())
            .collect()
    }

    /// Runs a store call off the async workers (store writes are durable,
    /// so they wait for the disk).
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn OutboxStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, AlertsError> {
        let store = self.inner.store.clone();
        tokio::task::spawn_blocking(move || f(&*store))
            .await
            .map_err(AlertsError::Task)?
            .map_err(AlertsError::Store)
    }

    /// Sends a test message to one sink (bypassing its filters).
    pub async fn test(&self, sink_name: &str) -> Result<String, AlertsError> {
        let fleet = String::new();
        match self
            .raise(AlertEvent::Test {
                fleet,
                sink: sink_name.to_owned(),
            })
            .await?
        {
            Raised::New { id, .. } | Raised::Duplicate { id } | Raised::Flapped { id, .. } => {
                Ok(id)
            }
            Raised::Resolved { condition, .. } => Ok(condition),
        }
    }

    /// Newest first: alerts with their per-sink delivery state. Blocking.
    pub fn list(&self, limit: usize) -> Result<Vec<(Alert, Vec<DeliveryState>)>, AlertsError> {
        Ok(self.inner.store.alerts(limit, false)?)
    }

    /// Deliveries not yet delivered or given up (outbox depth, for /metrics).
    pub fn pending_count(&self) -> usize {
        match self.inner.store.pending_count() {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %crate::error_chain(&e), "counting pending alert deliveries failed");
                0
            }
        }
    }

    fn counted(&self, added: usize) {
        self.inner.count.fetch_add(added, Ordering::Relaxed);
    }
}
