//! Alerts: events → alerts → a durable outbox in sled → webhook, Slack,
//! Discord and Telegram sinks, exactly once per idempotency key through sink
//! outages and control-plane restarts, without floods.
//!
//! - [`Alerts::raise`] / [`Alerts::resolve`] write the alert and one pending
//!   delivery record per matching sink in one sled transaction and flush
//!   before returning; nothing is sent from the caller's task.
//! - [`Alerts::run`] is the worker: it sends due deliveries (per-request
//!   timeout, at most [`MAX_IN_FLIGHT`] at once and [`MAX_IN_FLIGHT_PER_SINK`]
//!   per sink), retries with exponential backoff and full jitter, honours
//!   `Retry-After` on 429, treats 4xx other than 408/429 as permanent, gives
//!   up `give_up_after` after the alert was raised (recorded as `gave_up`),
//!   emits held resolves, detects offline hosts from [`Alerts::heartbeat`]
//!   and prunes the outbox to `outbox_capacity`.
//! - Noise: a condition key (`host_offline/<host>`, ...) fires once while
//!   open; its resolve is held for `flap_window`, and re-opening inside it
//!   (flapping) continues the same alert, so N flaps give one alert and one
//!   resolve. A per-sink token bucket delays (never drops) deliveries.
//!
//! Payloads and the webhook signature: see [`payload`].

pub mod config;
pub mod model;
pub mod outbox;
pub mod payload;
pub mod send;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::task::JoinSet;

pub use config::{AlertsConfig, ChatId, ConfigError, Secret, SinkConfig, SinkKind};
pub use model::{Alert, AlertEvent, EventKind, GpuFault, Severity};
pub use outbox::{DeliveryState, DeliveryStatus};

use outbox::{CondState, Condition, Trees, delivery_key, split_pending_key};
use send::{Outcome, TokenBucket};

/// Most delivery attempts in flight at once.
pub const MAX_IN_FLIGHT: usize = 16;
/// Most attempts in flight per sink (a hanging sink cannot starve others).
pub const MAX_IN_FLIGHT_PER_SINK: usize = 4;
/// Longest the worker sleeps between checks.
const MAX_TICK: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum AlertsError {
    #[error("alert outbox storage: {0}")]
    Storage(#[from] sled::Error),
    #[error("alert outbox: corrupt {what} record: {source}")]
    Corrupt {
        what: String,
        #[source]
        source: serde_json::Error,
    },
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

struct HostSeen {
    fleet: String,
    last_seen: Instant,
    last_seen_ms: u64,
    offline: bool,
}

struct Inner {
    db: sled::Db,
    trees: Trees,
    config: AlertsConfig,
    public_url: String,
    client: reqwest::Client,
    wake: Notify,
    count: AtomicUsize,
    hosts: std::sync::Mutex<BTreeMap<String, HostSeen>>,
}

pub(crate) use convoy_kit::clock::now_ms;

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u128::from(u64::MAX)) as u64
}

impl Alerts {
    /// Opens the outbox trees in `db` (pending deliveries from a previous
    /// run are resumed by [`Alerts::run`]). Validates the config.
    pub fn open(
        db: &sled::Db,
        config: AlertsConfig,
        client: reqwest::Client,
    ) -> Result<Alerts, AlertsError> {
        config.validate()?;
        let trees = Trees::open(db)?;
        let count = trees.alerts.len();
        let public_url = config.public_url.trim_end_matches('/').to_owned();
        Ok(Alerts {
            inner: Arc::new(Inner {
                db: db.clone(),
                trees,
                config,
                public_url,
                client,
                wake: Notify::new(),
                count: AtomicUsize::new(count),
                hosts: std::sync::Mutex::new(BTreeMap::new()),
            }),
        })
    }

    pub fn config(&self) -> &AlertsConfig {
        &self.inner.config
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

    async fn durable(&self) -> Result<(), AlertsError> {
        self.inner.db.flush_async().await?;
        self.inner.wake.notify_one();
        Ok(())
    }

    /// Records an event: a new alert (durably queued for every matching
    /// sink before this returns), or nothing new if its condition is open.
    /// `HostOnline` resolves `host_offline/<host>`.
    pub async fn raise(&self, event: AlertEvent) -> Result<Raised, AlertsError> {
        if let AlertEvent::HostOnline { .. } = &event {
            let condition = event.condition_key();
            let changed = self.resolve(&condition).await?;
            return Ok(Raised::Resolved { condition, changed });
        }
        let now = now_ms();
        let seq = self.inner.db.generate_id()?;
        let key = if let AlertEvent::Test { sink, .. } = &event {
            if self.inner.config.sink(sink).is_none() {
                return Err(AlertsError::UnknownSink(sink.clone()));
            }
            format!("test/{sink}/{seq}")
        } else {
            event.condition_key()
        };
        let mut alert = event.to_alert(model::alert_id(&key, seq), &self.inner.public_url, now);
        alert.condition = key.clone();
        let sinks = self.matching_sinks(&alert);
        let is_test = matches!(event, AlertEvent::Test { .. });
        let resolvable = event.resolvable();
        let r = self.inner.trees.tx(|tx| {
            if !is_test && let Some(mut c) = tx.condition(&key)? {
                match c.state {
                    CondState::Open => return Ok((Raised::Duplicate { id: c.alert.id }, false)),
                    CondState::Resolving => {
                        c.state = CondState::Open;
                        c.flaps = c.flaps.saturating_add(1);
                        tx.resolving.remove(key.as_bytes())?;
                        tx.put_condition(&key, &c)?;
                        return Ok((
                            Raised::Flapped {
                                id: c.alert.id.clone(),
                                flaps: c.flaps,
                            },
                            false,
                        ));
                    }
                    CondState::Resolved => {}
                }
            }
            tx.insert_alert(seq, &alert, &sinks, now)?;
            if !is_test {
                tx.put_condition(
                    &key,
                    &Condition {
                        state: CondState::Open,
                        resolvable,
                        flaps: 0,
                        alert: alert.clone(),
                    },
                )?;
            }
            Ok((
                Raised::New {
                    id: alert.id.clone(),
                    sinks: sinks.clone(),
                },
                true,
            ))
        })?;
        let (raised, inserted) = r;
        if inserted {
            self.inner.count.fetch_add(1, Ordering::Relaxed);
            tracing::info!(alert = %alert.id, condition = %key, kind = %alert.kind, severity = %alert.severity, sinks = sinks.len(), "alert raised");
        } else {
            tracing::debug!(condition = %key, ?raised, "alert condition already open");
        }
        self.durable().await?;
        Ok(raised)
    }

    /// Resolves an open condition. The "resolved" message goes out once it
    /// stayed resolved for `flap_window` (re-raising it before that is
    /// flapping: same alert). Returns whether an open condition was found.
    pub async fn resolve(&self, condition_key: &str) -> Result<bool, AlertsError> {
        let now = now_ms();
        let changed = self.inner.trees.tx(|tx| {
            let Some(mut c) = tx.condition(condition_key)? else {
                return Ok(false);
            };
            if c.state != CondState::Open || !c.resolvable {
                return Ok(false);
            }
            c.state = CondState::Resolving;
            tx.put_condition(condition_key, &c)?;
            tx.resolving
                .insert(condition_key.as_bytes(), &now.to_be_bytes())?;
            Ok(true)
        })?;
        if changed {
            tracing::info!(condition = %condition_key, "alert condition resolved (held for flap window)");
            self.durable().await?;
        }
        Ok(changed)
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

    /// Newest first: alerts with their per-sink delivery state.
    pub fn list(&self, limit: usize) -> Result<Vec<(Alert, Vec<DeliveryState>)>, AlertsError> {
        let mut out = Vec::new();
        for kv in self.inner.trees.alerts.iter().rev().take(limit) {
            let (_, v) = kv?;
            let alert: Alert = outbox::dec("alert", &v)?;
            let d = self.inner.trees.deliveries_of(&alert.id)?;
            out.push((alert, d));
        }
        Ok(out)
    }

    /// Deliveries not yet delivered or given up (outbox depth, for /metrics).
    pub fn pending_count(&self) -> usize {
        self.inner.trees.pending.len()
    }

    /// Records a heartbeat from a host; a host that was reported offline is
    /// resolved (back online). The worker raises `host_offline` after
    /// `offline_after` without heartbeats.
    pub async fn heartbeat(&self, fleet: &str, host: &str) -> Result<(), AlertsError> {
        let was_offline = {
            let mut hosts = self
                .inner
                .hosts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let e = hosts.entry(host.to_owned()).or_insert_with(|| HostSeen {
                fleet: fleet.to_owned(),
                last_seen: Instant::now(),
                last_seen_ms: now_ms(),
                offline: false,
            });
            e.last_seen = Instant::now();
            e.last_seen_ms = now_ms();
            e.fleet = fleet.to_owned();
            std::mem::replace(&mut e.offline, false)
        };
        if was_offline {
            self.raise(AlertEvent::HostOnline {
                fleet: fleet.to_owned(),
                host: host.to_owned(),
            })
            .await?;
        }
        Ok(())
    }

    /// Stops watching a host's heartbeats (host removed from the fleet).
    pub fn forget_host(&self, host: &str) {
        self.inner
            .hosts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(host);
    }

    async fn check_offline(&self) -> Result<(), AlertsError> {
        let offline_after = self.inner.config.offline_after;
        let newly: Vec<(String, String, u64)> = {
            let mut hosts = self
                .inner
                .hosts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            hosts
                .iter_mut()
                .filter(|(_, h)| !h.offline && h.last_seen.elapsed() >= offline_after)
                .map(|(name, h)| {
                    h.offline = true;
                    (h.fleet.clone(), name.clone(), h.last_seen_ms)
                })
                .collect()
        };
        for (fleet, host, last_seen_ms) in newly {
            self.raise(AlertEvent::HostOffline {
                fleet,
                host,
                last_seen_ms: Some(last_seen_ms),
            })
            .await?;
        }
        Ok(())
    }

    /// Emits resolve messages whose flap window has passed; returns when the
    /// next one is due.
    async fn emit_resolves(&self, now: u64) -> Result<Option<u64>, AlertsError> {
        let window = ms(self.inner.config.flap_window);
        let mut due = Vec::new();
        let mut next: Option<u64> = None;
        for kv in self.inner.trees.resolving.iter() {
            let (k, v) = kv?;
            let since = v.as_ref().try_into().map(u64::from_be_bytes).unwrap_or(0);
            if since.saturating_add(window) <= now {
                due.push(String::from_utf8_lossy(&k).into_owned());
            } else {
                let at = since.saturating_add(window);
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        let mut emitted = false;
        for key in due {
            let seq = self.inner.db.generate_id()?;
            let r = self.inner.trees.tx(|tx| {
                let Some(mut c) = tx.condition(&key)? else {
                    tx.resolving.remove(key.as_bytes())?;
                    return Ok(None);
                };
                tx.resolving.remove(key.as_bytes())?;
                if c.state != CondState::Resolving {
                    return Ok(None);
                }
                c.state = CondState::Resolved;
                tx.put_condition(&key, &c)?;
                let mut a = c.alert.clone();
                a.id = format!("{}.resolved", c.alert.id);
                a.resolved = true;
                a.created_at_ms = now;
                a.summary = match (a.kind, &a.host) {
                    (EventKind::HostOffline, Some(h)) => format!("Host {h} is back online"),
                    _ => format!("Resolved: {}", c.alert.summary),
                };
                if c.flaps > 0 {
                    a.summary.push_str(&format!(" (flapped {} times)", c.flaps));
                    a.details.insert("flaps".into(), c.flaps.to_string());
                }
                let sinks = self.matching_sinks(&a);
                tx.insert_alert(seq, &a, &sinks, now)?;
                Ok(Some((a.id, sinks.len())))
            })?;
            if let Some((id, n)) = r {
                self.inner.count.fetch_add(1, Ordering::Relaxed);
                tracing::info!(alert = %id, condition = %key, sinks = n, "alert resolved");
                emitted = true;
            }
        }
        if emitted {
            self.inner.db.flush_async().await?;
        }
        Ok(next)
    }

    /// The delivery worker. Resumes pending deliveries from earlier runs;
    /// returns when `shutdown` completes (attempts in flight are dropped and
    /// stay pending: the receiver deduplicates by idempotency key).
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut in_flight: BTreeSet<Vec<u8>> = BTreeSet::new();
        let mut per_sink: BTreeMap<String, usize> = BTreeMap::new();
        let mut buckets: BTreeMap<String, TokenBucket> = BTreeMap::new();
        let mut tasks: JoinSet<(Vec<u8>, String)> = JoinSet::new();
        loop {
            let next_wake = match self
                .tick(&mut in_flight, &mut per_sink, &mut buckets, &mut tasks)
                .await
            {
                Ok(w) => w,
                Err(e) => {
                    tracing::error!(error = %e, "alert worker tick failed");
                    now_ms() + 1000
                }
            };
            let sleep_for = Duration::from_millis(next_wake.saturating_sub(now_ms())).min(MAX_TICK);
            tokio::select! {
                () = &mut shutdown => break,
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep(sleep_for) => {}
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    if let Ok((key, sink)) = done {
                        in_flight.remove(&key);
                        if let Some(n) = per_sink.get_mut(&sink) { *n = n.saturating_sub(1); }
                    } else {
                        // A panicked/cancelled attempt: rebuild the in-flight set.
                        in_flight.clear();
                        per_sink.clear();
                    }
                }
            }
            // Drain finished attempts without blocking.
            while let Some(done) = tasks.try_join_next() {
                if let Ok((key, sink)) = done {
                    in_flight.remove(&key);
                    if let Some(n) = per_sink.get_mut(&sink) {
                        *n = n.saturating_sub(1);
                    }
                }
            }
        }
        tasks.shutdown().await;
        if let Err(e) = self.inner.db.flush_async().await {
            tracing::warn!(error = %e, "alert outbox flush on shutdown failed");
        }
    }

    async fn tick(
        &self,
        in_flight: &mut BTreeSet<Vec<u8>>,
        per_sink: &mut BTreeMap<String, usize>,
        buckets: &mut BTreeMap<String, TokenBucket>,
        tasks: &mut JoinSet<(Vec<u8>, String)>,
    ) -> Result<u64, AlertsError> {
        self.check_offline().await?;
        let now = now_ms();
        let mut next_wake = now + ms(MAX_TICK);
        if let Some(at) = self.emit_resolves(now).await? {
            next_wake = next_wake.min(at);
        }
        self.prune()?;
        let give_up = ms(self.inner.config.give_up_after);
        for kv in self.inner.trees.pending.iter() {
            if in_flight.len() >= MAX_IN_FLIGHT {
                break;
            }
            let (k, _) = kv?;
            let Some((due, dkey)) = split_pending_key(&k) else {
                continue;
            };
            if due > now {
                next_wake = next_wake.min(due);
                break;
            }
            if in_flight.contains(dkey) {
                continue;
            }
            let Some(d) = self.inner.trees.delivery(dkey)? else {
                self.inner.trees.pending.remove(&k)?;
                continue;
            };
            let Some(alert) = self.inner.trees.alert_by_id(&d.alert_id)? else {
                self.inner.trees.pending.remove(&k)?;
                continue;
            };
            let deadline = alert.created_at_ms.saturating_add(give_up);
            let Some(sink) = self.inner.config.sink(&d.sink).cloned() else {
                // Sink removed from the config: keep it until the deadline
                // (the operator may put it back), then give up.
                let error = "sink is not configured".to_owned();
                self.record(
                    &d,
                    Outcome::Retry {
                        after: Some(Duration::from_secs(60)),
                        error,
                    },
                    deadline,
                    now,
                )?;
                continue;
            };
            if per_sink.get(&sink.name).copied().unwrap_or(0) >= MAX_IN_FLIGHT_PER_SINK {
                continue;
            }
            let bucket = buckets.entry(sink.name.clone()).or_insert_with(|| {
                TokenBucket::new(sink.rate_limit_per_minute, sink.rate_limit_burst, now)
            });
            if let Err(at) = bucket.try_take(now) {
                // Over the rate limit: stays pending, sent when a token is there.
                next_wake = next_wake.min(at);
                continue;
            }
            in_flight.insert(dkey.to_vec());
            *per_sink.entry(sink.name.clone()).or_insert(0) += 1;
            let this = self.clone();
            let dkey = dkey.to_vec();
            tasks.spawn(async move {
                let sent_at = now_ms() / 1000;
                let outcome = match payload::render(&alert, &sink, sent_at) {
                    Some(req) => send::attempt(&this.inner.client, req, this.inner.config.request_timeout).await,
                    None => Outcome::Permanent {
                        error: "sink config incomplete for its kind".into(),
                    },
                };
                if let Outcome::Permanent { error } = &outcome {
                    tracing::warn!(alert = %alert.id, sink = %sink.name, %error, "alert delivery failed permanently");
                } else if let Outcome::Retry { error, .. } = &outcome {
                    tracing::info!(alert = %alert.id, sink = %sink.name, attempts = d.attempts + 1, %error, "alert delivery failed; will retry");
                } else {
                    tracing::info!(alert = %alert.id, sink = %sink.name, attempts = d.attempts + 1, "alert delivered");
                }
                if let Err(e) = this.record(&d, outcome, deadline, now_ms()) {
                    tracing::error!(alert = %alert.id, sink = %sink.name, error = %e, "recording alert delivery failed");
                }
                this.inner.wake.notify_one();
                (dkey, sink.name)
            });
        }
        Ok(next_wake)
    }

    /// Persists the result of an attempt (or a skipped one).
    fn record(
        &self,
        seen: &DeliveryState,
        outcome: Outcome,
        deadline: u64,
        now: u64,
    ) -> Result<(), AlertsError> {
        let attempted =
            !matches!(&outcome, Outcome::Retry { error, .. } if error == "sink is not configured");
        let cfg = &self.inner.config;
        let dkey = delivery_key(&seen.alert_id, &seen.sink);
        self.inner.trees.tx(|tx| {
            let Some(b) = tx.deliveries.get(dkey.as_slice())? else {
                return Ok(());
            };
            let old: DeliveryState = outbox::dec_tx("delivery", &b)?;
            if old.state != DeliveryStatus::Pending {
                return Ok(());
            }
            let mut new = old.clone();
            if attempted {
                new.attempts = new.attempts.saturating_add(1);
                new.last_attempt_at_ms = Some(now);
            }
            match &outcome {
                Outcome::Delivered => {
                    new.state = DeliveryStatus::Delivered;
                    new.delivered_at_ms = Some(now);
                    new.last_error = None;
                }
                Outcome::Permanent { error } => {
                    new.state = DeliveryStatus::GaveUp;
                    new.last_error = Some(format!("permanent: {error}"));
                }
                Outcome::Retry { after, error } => {
                    if now >= deadline {
                        new.state = DeliveryStatus::GaveUp;
                        new.last_error = Some(format!(
                            "gave up after {} attempts ({:?}): {error}",
                            new.attempts, cfg.give_up_after
                        ));
                    } else {
                        let wait = after.unwrap_or_else(|| {
                            send::backoff(new.attempts.max(1), cfg.retry_base, cfg.retry_cap)
                        });
                        new.next_attempt_at_ms = now.saturating_add(ms(wait)).min(deadline);
                        new.last_error = Some(error.clone());
                    }
                }
            }
            tx.put_delivery(&old, &new)?;
            Ok(())
        })?;
        if matches!(outcome, Outcome::Retry { .. }) && now >= deadline {
            tracing::warn!(alert = %seen.alert_id, sink = %seen.sink, "alert delivery gave up (give_up_after reached)");
        }
        Ok(())
    }

    /// Keeps at most `outbox_capacity` alerts: prunes the oldest fully
    /// delivered ones first, then ones with only delivered/given-up
    /// deliveries, and only as a last resort (logged) pending ones.
    fn prune(&self) -> Result<(), AlertsError> {
        let cap = self.inner.config.outbox_capacity;
        if self.inner.count.load(Ordering::Relaxed) <= cap {
            return Ok(());
        }
        let target = cap - cap / 10;
        for pass in 0..3 {
            let mut victims = Vec::new();
            // The last resort (dropping pending deliveries) only enforces
            // the hard cap, not the 10 % headroom.
            let goal = if pass < 2 { target } else { cap };
            let mut excess = self
                .inner
                .count
                .load(Ordering::Relaxed)
                .saturating_sub(goal);
            if excess == 0 {
                break;
            }
            for kv in self.inner.trees.alerts.iter() {
                if excess == 0 {
                    break;
                }
                let (seq, v) = kv?;
                let alert: Alert = outbox::dec("alert", &v)?;
                let ds = self.inner.trees.deliveries_of(&alert.id)?;
                let ok = match pass {
                    0 => ds.iter().all(|d| d.state == DeliveryStatus::Delivered),
                    1 => ds.iter().all(|d| d.state != DeliveryStatus::Pending),
                    _ => true,
                };
                if ok {
                    victims.push((seq, alert, ds));
                    excess -= 1;
                }
            }
            for (seq, alert, ds) in victims {
                if pass == 2 && ds.iter().any(|d| d.state == DeliveryStatus::Pending) {
                    tracing::error!(alert = %alert.id, "alert outbox full: dropping an alert with pending deliveries");
                }
                self.inner.trees.tx(|tx| {
                    tx.alerts.remove(&seq)?;
                    tx.by_id.remove(alert.id.as_bytes())?;
                    for d in &ds {
                        let dk = delivery_key(&d.alert_id, &d.sink);
                        tx.deliveries.remove(dk.as_slice())?;
                        if d.state == DeliveryStatus::Pending {
                            tx.pending
                                .remove(outbox::pending_key(d.next_attempt_at_ms, &dk))?;
                        }
                    }
                    if let Some(c) = tx.condition(&alert.condition)?
                        && c.alert.id == alert.id
                        && (!c.resolvable || c.state == CondState::Resolved)
                    {
                        tx.conditions.remove(alert.condition.as_bytes())?;
                    }
                    Ok(())
                })?;
                self.inner.count.fetch_sub(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
}
