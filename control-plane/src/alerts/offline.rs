//! Offline detection: hosts send heartbeats (the dispatcher, every 5 s per
//! connected host); one silent for `offline_after` raises `host_offline`,
//! and its next heartbeat resolves it. In memory: after a restart every
//! host starts online, and a host still gone is reported `offline_after`
//! later.

use std::time::Instant;

use super::model::AlertEvent;
use super::{Alerts, AlertsError};

pub(super) struct HostSeen {
    fleet: String,
    /// Monotonic: elapsed time decides, immune to wall-clock jumps.
    last_seen: Instant,
    last_seen_ms: u64,
    offline: bool,
}

impl Alerts {
    /// Records a heartbeat from a host; a host that was reported offline is
    /// resolved (back online). The worker raises `host_offline` after
    /// `offline_after` without heartbeats.
    pub async fn heartbeat(&self, fleet: &str, host: &str) -> Result<(), AlertsError> {
        let now_ms = self.now_ms();
        let was_offline = {
            let mut hosts = self
                .inner
                .hosts
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let e = hosts.entry(host.to_owned()).or_insert_with(|| HostSeen {
                fleet: fleet.to_owned(),
                last_seen: Instant::now(),
                last_seen_ms: now_ms,
                offline: false,
            });
            e.last_seen = Instant::now();
            e.last_seen_ms = now_ms;
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

    pub(super) async fn check_offline(&self) -> Result<(), AlertsError> {
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
}
