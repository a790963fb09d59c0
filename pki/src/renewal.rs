//! When an agent should renew its certificate.

use std::time::{Duration, SystemTime};

use rand::Rng;

/// A uniformly random instant between 60% and 80% of the way from
/// `not_before` to `not_after` (jitter spreads a fleet's renewals out).
/// If `not_after` is not after `not_before`, returns `not_before`.
pub fn renewal_at<R: Rng + ?Sized>(
    not_before: SystemTime,
    not_after: SystemTime,
    rng: &mut R,
) -> SystemTime {
    let Ok(lifetime) = not_after.duration_since(not_before) else {
        return not_before;
    };
    let nanos = lifetime.as_nanos();
    let lo = nanos * 3 / 5;
    let hi = nanos * 4 / 5;
    let offset = rng.random_range(lo..=hi);
    let secs = u64::try_from(offset / 1_000_000_000).unwrap_or(u64::MAX);
    // The remainder is < 1e9, so it fits in u32.
    let sub = u32::try_from(offset % 1_000_000_000).unwrap_or(0);
    not_before
        .checked_add(Duration::new(secs, sub))
        .unwrap_or(not_after)
}
