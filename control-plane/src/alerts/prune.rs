//! Keeping the outbox bounded.

use std::sync::atomic::Ordering;

use super::{Alerts, AlertsError, DeliveryStatus};

/// Which alerts a prune pass may drop, by their deliveries' states.
fn prunable(pass: usize, states: &[DeliveryStatus]) -> bool {
    match pass {
        0 => states.iter().all(|s| *s == DeliveryStatus::Delivered),
        1 => states.iter().all(|s| *s != DeliveryStatus::Pending),
        _ => true,
    }
}

impl Alerts {
    /// Keeps at most `outbox_capacity` alerts: prunes the oldest fully
    /// delivered ones first, then ones with only delivered/given-up
    /// deliveries, and only as a last resort (logged) pending ones — once
    /// the outbox has stayed over capacity for a request timeout, so a
    /// burst whose attempts are still in flight is not mistaken for a
    /// backlog that will not drain.
    pub(super) async fn prune(&self, now_ms: u64) -> Result<(), AlertsError> {
        let cap = self.inner.config.outbox_capacity;
        let over_since = {
            let mut over = self
                .inner
                .over_capacity_since
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if self.inner.count.load(Ordering::Relaxed) <= cap {
                *over = None;
                return Ok(());
            }
            *over.get_or_insert(now_ms)
        };
        let last_resort =
            now_ms.saturating_sub(over_since) >= super::ms(self.inner.config.request_timeout);
        let target = cap - cap / 10;
        for pass in 0..if last_resort { 3 } else { 2 } {
            // The last resort (dropping pending deliveries) only enforces
            // the hard cap, not the 10 % headroom.
            let goal = if pass < 2 { target } else { cap };
            let excess = self
                .inner
                .count
                .load(Ordering::Relaxed)
                .saturating_sub(goal);
            if excess == 0 {
                break;
            }
            let removed = self
                .blocking(move |s| {
                    let mut removed = 0;
                    // Oldest first; alerts past the excess are not looked at.
                    for (alert, ds) in s.alerts(usize::MAX, true)? {
                        if removed == excess {
                            break;
                        }
                        let states: Vec<DeliveryStatus> = ds.iter().map(|d| d.state).collect();
                        if !prunable(pass, &states) {
                            continue;
                        }
                        if states.contains(&DeliveryStatus::Pending) {
                            tracing::error!(alert = %alert.id, "alert outbox full: dropping an alert with pending deliveries");
                        }
                        s.remove_alert(&alert.id)?;
                        removed += 1;
                    }
                    Ok(removed)
                })
                .await?;
            self.inner.count.fetch_sub(removed, Ordering::Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeliveryStatus::{Delivered, GaveUp, Pending};

    #[test]
    fn delivered_go_first_then_finished_then_anything() {
        assert!(prunable(0, &[Delivered, Delivered]));
        assert!(!prunable(0, &[Delivered, GaveUp]));
        assert!(prunable(1, &[Delivered, GaveUp]));
        assert!(!prunable(1, &[Pending]));
        assert!(prunable(2, &[Pending]));
    }
}
