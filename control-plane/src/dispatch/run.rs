//! The dispatcher's periodic work: rollout ticks (deadlines), the git sync
//! (poll and webhook trigger), heartbeats for the offline detector, and
//! the certificate-expiry check.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::Dispatcher;
use crate::rollout::{EngineError, Input};
use crate::sync::Fetched;
use crate::translate::{self, CERT_EXPIRY_WARNING, CertAlert};

/// How often running rollouts are ticked (host deadlines are seconds).
const TICK: Duration = Duration::from_secs(1);
/// Heartbeats to the offline detector, for every connected host.
const BEAT: Duration = Duration::from_secs(5);
/// Certificates are checked every this many beats (5 min).
const CERT_CHECK_BEATS: u64 = 60;

impl Dispatcher {
    /// Runs the tick, sync and heartbeat loops until `stop` turns true.
    /// Resumes first whatever rollout was running when the control plane
    /// stopped.
    pub async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let me = self.clone();
        let resumed = tokio::task::spawn_blocking(move || {
            let effects = me.engine.resume(me.clock.now_ms())?;
            me.route(effects);
            Ok::<_, EngineError>(())
        })
        .await;
        match resumed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %crate::error_chain(&e), "resuming the rollout failed");
            }
            Err(e) => tracing::error!(error = %e, "resuming the rollout failed"),
        }
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut poll = tokio::time::interval(self.sync.poll_interval());
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut beat = tokio::time::interval(BEAT);
        let mut beats: u64 = 0;
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = tick.tick() => self.feed(Input::Tick).await,
                _ = poll.tick() => self.sync_now().await,
                _ = self.sync.triggered() => self.sync_now().await,
                _ = beat.tick() => {
                    self.heartbeats().await;
                    beats += 1;
                    if beats % CERT_CHECK_BEATS == 1 {
                        self.check_certificates().await;
                    }
                }
            }
            if *stop.borrow() {
                break;
            }
        }
    }

    async fn heartbeats(&self) {
        let Some(a) = &self.alerts else { return };
        for host in self.sessions.hosts() {
            if let Err(e) = a.heartbeat(&self.fleet, &host).await {
                tracing::warn!(error = %crate::error_chain(&e), host = %host, "alert heartbeat failed");
            }
        }
    }

    /// Raises `cert_expiring` for hosts whose certificate runs out within
    /// [`CERT_EXPIRY_WARNING`], and resolves it once renewed.
    async fn check_certificates(&self) {
        let Some(alerts) = &self.alerts else { return };
        let store = self.store.clone();
        let read = tokio::task::spawn_blocking(move || {
            Ok::<_, crate::store::StoreError>((store.hosts()?, store.revocations()?))
        })
        .await;
        let (hosts, revoked) = match read {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::warn!(error = %crate::error_chain(&e), "certificate check: reading hosts failed");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "certificate check task failed");
                return;
            }
        };
        let now = u64::try_from(self.clock.now_unix()).unwrap_or(0);
        for c in translate::cert_expiry(&self.fleet, &hosts, &revoked, now, CERT_EXPIRY_WARNING) {
            let res = match c {
                CertAlert::Raise(ev) => alerts.raise(ev).await.map(|_| ()),
                CertAlert::Resolve(key) => alerts.resolve(&key).await.map(|_| ()),
            };
            if let Err(e) = res {
                tracing::warn!(error = %crate::error_chain(&e), "cert_expiring alert failed");
            }
        }
    }

    /// One git sync: fetch, then start the new commit's rollout or refuse
    /// it as a whole.
    async fn sync_now(self: &Arc<Self>) {
        if !self.sync.configured() {
            return;
        }
        let me = self.clone();
        let res = tokio::task::spawn_blocking(move || me.sync_blocking()).await;
        let outcome = res.unwrap_or_else(|e| Err(format!("sync task failed: {e}")));
        self.sync.finished(outcome, self.clock.now_ms());
    }

    fn sync_blocking(&self) -> Result<String, String> {
        let engine = &self.engine;
        let fetched = self.sync.fetch(&self.fleet, |head| {
            engine
                .commit(head)
                .map(|c| c.is_some())
                .map_err(|e| crate::error_chain(&e))
        })?;
        match fetched {
            Fetched::Seen { head } => Ok(head),
            Fetched::Valid { head, repo, info } => {
                for w in &repo.warnings.0 {
                    tracing::warn!(commit = %head, "{w}");
                }
                let started = self
                    .engine
                    .accept_commit(&head, &repo, self.clock.now_ms())
                    .map_err(|e| crate::error_chain(&e))?;
                if let Some(s) = started {
                    tracing::info!(
                        commit = %head,
                        summary = %info.summary,
                        rollout = %s.id,
                        "commit accepted; rollout started"
                    );
                    self.record(translate::commit_accepted(
                        &head,
                        &s.id,
                        &info.summary,
                        &info.author,
                    ));
                    self.route(s.effects);
                }
                Ok(head)
            }
            Fetched::Invalid {
                head,
                problems,
                reason,
            } => {
                tracing::error!(commit = %head, problems = %reason, "commit rejected; the fleet stays on the last good commit");
                let (audit, alert) = translate::commit_rejected(&self.fleet, &head, &reason);
                self.record(audit);
                match self
                    .engine
                    .reject_commit(&head, problems, self.clock.now_ms())
                {
                    Ok(true) => self.raise(alert),
                    Ok(false) => {}
                    Err(e) => {
                        tracing::error!(error = %crate::error_chain(&e), "recording a rejected commit failed")
                    }
                }
                Ok(head)
            }
        }
    }
}
