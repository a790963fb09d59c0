//! The delivery worker: picks due deliveries from the queue, sends them
//! (bounded in flight, per sink, and by each sink's rate limit), and
//! records each outcome; what an outcome does to a delivery is
//! [`next_state`], a pure function.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::ops::ControlFlow;
use std::time::Duration;

use tokio::task::JoinSet;

use super::send::{self, Outcome, TokenBucket};
use super::{
    Alerts, AlertsConfig, AlertsError, DeliveryState, DeliveryStatus, MAX_IN_FLIGHT,
    MAX_IN_FLIGHT_PER_SINK, ms, payload,
};
use crate::store::PendingEntry;

/// Longest the worker sleeps between checks.
const MAX_TICK: Duration = Duration::from_millis(500);
/// A delivery whose sink left the config is looked at again this often
/// (the operator may put it back) until it gives up.
const UNCONFIGURED_RETRY: Duration = Duration::from_secs(60);
const UNCONFIGURED: &str = "sink is not configured";

/// A delivery (`alert id`, `sink`) as the in-flight set names it.
type Key = (String, String);

/// What an attempt's outcome (at `now`, give-up at `deadline`) makes of a
/// pending delivery; None if it is no longer pending (another attempt
/// finished it).
pub(super) fn next_state(
    old: &DeliveryState,
    outcome: &Outcome,
    deadline: u64,
    now: u64,
    cfg: &AlertsConfig,
) -> Option<DeliveryState> {
    if old.state != DeliveryStatus::Pending {
        return None;
    }
    let attempted = !matches!(outcome, Outcome::Retry { error, .. } if error == UNCONFIGURED);
    let mut new = old.clone();
    if attempted {
        new.attempts = new.attempts.saturating_add(1);
        new.last_attempt_at_ms = Some(now);
    }
    match outcome {
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
    Some(new)
}

/// The worker's in-memory state across ticks.
#[derive(Default)]
struct Flight {
    in_flight: BTreeSet<Key>,
    per_sink: BTreeMap<String, usize>,
    buckets: BTreeMap<String, TokenBucket>,
    tasks: JoinSet<Key>,
}

impl Flight {
    fn done(&mut self, key: Key) {
        self.in_flight.remove(&key);
        if let Some(n) = self.per_sink.get_mut(&key.1) {
            *n = n.saturating_sub(1);
        }
    }
}

impl Alerts {
    /// The delivery worker. Resumes pending deliveries from earlier runs;
    /// returns when `shutdown` completes (attempts in flight are dropped and
    /// stay pending: the receiver deduplicates by idempotency key).
    pub async fn run(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut f = Flight::default();
        loop {
            let next_wake = match self.tick(&mut f).await {
                Ok(w) => w,
                Err(e) => {
                    tracing::error!(error = %crate::error_chain(&e), "alert worker tick failed");
                    self.now_ms() + 1000
                }
            };
            let sleep_for =
                Duration::from_millis(next_wake.saturating_sub(self.now_ms())).min(MAX_TICK);
            tokio::select! {
                () = &mut shutdown => break,
                () = self.inner.wake.notified() => {}
                () = tokio::time::sleep(sleep_for) => {}
                Some(done) = f.tasks.join_next(), if !f.tasks.is_empty() => {
                    if let Ok(key) = done {
                        f.done(key);
                    } else {
                        // A panicked/cancelled attempt: rebuild the in-flight set.
                        f.in_flight.clear();
                        f.per_sink.clear();
                    }
                }
            }
            // Drain finished attempts without blocking.
            while let Some(done) = f.tasks.try_join_next() {
                if let Ok(key) = done {
                    f.done(key);
                }
            }
        }
        f.tasks.shutdown().await;
        if let Err(e) = self.blocking(|s| s.flush_outbox()).await {
            tracing::warn!(error = %crate::error_chain(&e), "alert outbox flush on shutdown failed");
        }
    }

    async fn tick(&self, f: &mut Flight) -> Result<u64, AlertsError> {
        self.check_offline().await?;
        let now = self.now_ms();
        let mut next_wake = now + ms(MAX_TICK);
        if let Some(at) = self.emit_resolves(now).await? {
            next_wake = next_wake.min(at);
        }
        self.prune(now).await?;
        // Pick what to send now: due, not in flight, under the per-sink
        // bound and the sink's rate limit.
        let config = &self.inner.config;
        let mut picked: Vec<PendingEntry> = Vec::new();
        self.inner.store.scan_pending(&mut |e| {
            if f.in_flight.len() + picked.len() >= MAX_IN_FLIGHT {
                return ControlFlow::Break(());
            }
            if e.due_ms > now {
                next_wake = next_wake.min(e.due_ms);
                return ControlFlow::Break(());
            }
            let key = (e.alert_id.clone(), e.sink.clone());
            if f.in_flight.contains(&key) {
                return ControlFlow::Continue(());
            }
            if let Some(sink) = config.sink(&e.sink) {
                let busy = f.per_sink.get(&sink.name).copied().unwrap_or(0)
                    + picked.iter().filter(|p| p.sink == e.sink).count();
                if busy >= MAX_IN_FLIGHT_PER_SINK {
                    return ControlFlow::Continue(());
                }
                let bucket = f.buckets.entry(sink.name.clone()).or_insert_with(|| {
                    TokenBucket::new(sink.rate_limit_per_minute, sink.rate_limit_burst, now)
                });
                if let Err(at) = bucket.try_take(now) {
                    // Over the rate limit: stays pending, sent when a token
                    // is there.
                    next_wake = next_wake.min(at);
                    return ControlFlow::Continue(());
                }
            }
            picked.push(e.clone());
            ControlFlow::Continue(())
        })?;
        let give_up = ms(config.give_up_after);
        for e in picked {
            let store = &self.inner.store;
            let (Some(d), Some(alert)) = (
                store.delivery(&e.alert_id, &e.sink)?,
                store.alert(&e.alert_id)?,
            ) else {
                // The delivery or its alert was pruned: drop its queue entry.
                store.remove_pending(&e)?;
                continue;
            };
            let deadline = alert.created_at_ms.saturating_add(give_up);
            let Some(sink) = config.sink(&d.sink).cloned() else {
                // Sink removed from the config: keep it until the deadline
                // (the operator may put it back), then give up.
                let outcome = Outcome::Retry {
                    after: Some(UNCONFIGURED_RETRY),
                    error: UNCONFIGURED.to_owned(),
                };
                self.record(&d, &outcome, deadline, now)?;
                continue;
            };
            let key = (e.alert_id.clone(), e.sink.clone());
            f.in_flight.insert(key.clone());
            *f.per_sink.entry(sink.name.clone()).or_insert(0) += 1;
            let this = self.clone();
            f.tasks.spawn(async move {
                let sent_at = this.now_ms() / 1000;
                let outcome = match payload::render(&alert, &sink, sent_at) {
                    Some(req) => {
                        send::attempt(
                            &this.inner.client,
                            req,
                            this.inner.config.request_timeout,
                            this.inner.clock.now(),
                        )
                        .await
                    }
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
                // Recorded right here, on the task: a delivery record is
                // not made durable one by one (OutboxStore::update_delivery),
                // so the write does not wait for the disk.
                if let Err(e) = this.record(&d, &outcome, deadline, this.now_ms()) {
                    tracing::error!(alert = %alert.id, sink = %sink.name, error = %crate::error_chain(&e), "recording alert delivery failed");
                }
                this.inner.wake.notify_one();
                key
            });
        }
        Ok(next_wake)
    }

    /// Persists the result of an attempt (or a skipped one); not durable
    /// by itself (see [`crate::store::OutboxStore::update_delivery`]).
    fn record(
        &self,
        seen: &DeliveryState,
        outcome: &Outcome,
        deadline: u64,
        now: u64,
    ) -> Result<(), AlertsError> {
        let cfg = &self.inner.config;
        self.inner
            .store
            .update_delivery(&seen.alert_id, &seen.sink, &mut |old| {
                next_state(old, outcome, deadline, now, cfg)
            })?;
        if matches!(outcome, Outcome::Retry { .. }) && now >= deadline {
            tracing::warn!(alert = %seen.alert_id, sink = %seen.sink, "alert delivery gave up (give_up_after reached)");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending() -> DeliveryState {
        DeliveryState::new("a1", "hook", 1_000)
    }

    #[test]
    fn outcomes_move_a_pending_delivery() {
        let cfg = AlertsConfig::default();
        let done = next_state(&pending(), &Outcome::Delivered, 10_000, 2_000, &cfg).unwrap();
        assert_eq!(done.state, DeliveryStatus::Delivered);
        assert_eq!((done.attempts, done.delivered_at_ms), (1, Some(2_000)));
        assert!(next_state(&done, &Outcome::Delivered, 10_000, 3_000, &cfg).is_none());

        let perm = Outcome::Permanent {
            error: "HTTP 400".into(),
        };
        let gave_up = next_state(&pending(), &perm, 10_000, 2_000, &cfg).unwrap();
        assert_eq!(gave_up.state, DeliveryStatus::GaveUp);

        let retry = Outcome::Retry {
            after: Some(Duration::from_secs(3)),
            error: "HTTP 429".into(),
        };
        let again = next_state(&pending(), &retry, 10_000, 2_000, &cfg).unwrap();
        assert_eq!(again.state, DeliveryStatus::Pending);
        assert_eq!(again.next_attempt_at_ms, 5_000);
        // Never scheduled past the give-up deadline; at it, it gives up.
        let late = next_state(&pending(), &retry, 4_000, 2_000, &cfg).unwrap();
        assert_eq!(late.next_attempt_at_ms, 4_000);
        let over = next_state(&pending(), &retry, 4_000, 4_000, &cfg).unwrap();
        assert_eq!(over.state, DeliveryStatus::GaveUp);
    }

    #[test]
    fn an_unconfigured_sink_is_not_an_attempt() {
        let cfg = AlertsConfig::default();
        let skipped = Outcome::Retry {
            after: Some(UNCONFIGURED_RETRY),
            error: UNCONFIGURED.into(),
        };
        let d = next_state(&pending(), &skipped, 1_000_000, 2_000, &cfg).unwrap();
        assert_eq!(d.attempts, 0);
        assert_eq!(d.next_attempt_at_ms, 62_000);
    }
}
