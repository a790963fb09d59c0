//! Retry delays: exponential backoff with full jitter (AWS architecture
//! blog, "Exponential Backoff And Jitter"): retry number `n` (0-based)
//! waits a uniformly random time in `[0, min(cap, base * 2^n)]`, so a fleet
//! that lost its control plane at the same instant does not come back in
//! lockstep, and a sink that is down is not hammered. The agent's reconnect
//! loop and the control plane's alert outbox both use it.

use std::time::Duration;

use rand::Rng;

/// The upper bound of the n-th delay: `min(cap, base * 2^attempt)`.
pub fn ceiling(attempt: u32, base: Duration, cap: Duration) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(cap).min(cap)
}

/// A full-jitter delay for retry number `attempt` (0-based).
pub fn full_jitter<R: Rng + ?Sized>(
    attempt: u32,
    base: Duration,
    cap: Duration,
    rng: &mut R,
) -> Duration {
    let hi = ceiling(attempt, base, cap);
    let nanos = u64::try_from(hi.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rng.random_range(0..=nanos))
}

/// Backoff state across attempts.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap: cap.max(base),
            attempt: 0,
        }
    }

    /// The delay before the next attempt; each call raises the ceiling.
    pub fn next_delay<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Duration {
        let d = full_jitter(self.attempt, self.base, self.cap, rng);
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// After a success (a stable connection, a delivery).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    pub fn attempt(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;

    const DEFAULT_BASE: Duration = Duration::from_millis(500);
    const DEFAULT_CAP: Duration = Duration::from_secs(60);

    #[test]
    fn ceilings_grow_then_cap() {
        let c: Vec<u64> = (0..10)
            .map(|n| ceiling(n, DEFAULT_BASE, DEFAULT_CAP).as_millis() as u64)
            .collect();
        assert_eq!(
            c,
            [
                500, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000
            ]
        );
        assert_eq!(ceiling(u32::MAX, DEFAULT_BASE, DEFAULT_CAP), DEFAULT_CAP);
    }

    #[test]
    fn delays_grow_on_average_and_reset() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        // Mean of full jitter is ceiling/2: compare means over many runs.
        let mean = |attempt: u32, rng: &mut rand::rngs::StdRng| {
            let total: Duration = (0..2000)
                .map(|_| full_jitter(attempt, DEFAULT_BASE, DEFAULT_CAP, rng))
                .sum();
            total / 2000
        };
        let m: Vec<Duration> = (0..8).map(|a| mean(a, &mut rng)).collect();
        for w in m.windows(2) {
            assert!(w[1] > w[0], "means must grow: {m:?}");
        }
        let mut b = Backoff::new(DEFAULT_BASE, DEFAULT_CAP);
        for _ in 0..5 {
            b.next_delay(&mut rng);
        }
        assert_eq!(b.attempt(), 5);
        b.reset();
        assert_eq!(b.attempt(), 0);
        assert!(b.next_delay(&mut rng) <= DEFAULT_BASE);
    }

    proptest! {
        #[test]
        fn delay_within_zero_and_cap(
            attempt in 0u32..200,
            base_ms in 1u64..5_000,
            cap_ms in 1u64..120_000,
            seed in any::<u64>(),
        ) {
            let base = Duration::from_millis(base_ms);
            let cap = Duration::from_millis(cap_ms);
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let d = full_jitter(attempt, base, cap, &mut rng);
            prop_assert!(d <= cap);
            prop_assert!(d <= ceiling(attempt, base, cap));
            prop_assert!(ceiling(attempt + 1, base, cap) >= ceiling(attempt, base, cap));
        }
    }
}
