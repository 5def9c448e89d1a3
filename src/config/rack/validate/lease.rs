//! Checks of the lease timing in `[cluster]` (`lease_ms`, `fence_budget_ms`, `max_drift_ppm`),
//! and the arithmetic behind them (see ARCHITECTURE.md, "lease timing").

use std::ops::Range;

use crate::config::diag::Diagnostics;
use crate::config::rack::schema::RawCluster;

/// Shortest lease accepted: below this, scheduling noise on a Pi eats the margins.
pub const MIN_LEASE_MS: u64 = 1000;
/// Longest lease accepted: a minute without a master after a crash is already more than a rack
/// should wait, and a bound keeps the lease arithmetic (µs, ppm) far from overflowing.
pub const MAX_LEASE_MS: u64 = 60_000;
/// Largest drift bound accepted (10 %); real clocks drift far less (a Pi's crystal: ~50 ppm).
pub const MAX_DRIFT_PPM: u64 = 100_000;

/// Checks that the lease leaves room for fencing under the drift bound.
pub(super) fn timing(
    c: &RawCluster,
    at: &dyn Fn(Range<usize>) -> Range<usize>,
    d: &mut Diagnostics<'_>,
) {
    let lease = *c.lease_ms.get_ref();
    let fence = *c.fence_budget_ms.get_ref();
    let drift = *c.max_drift_ppm.get_ref();
    if drift >= MAX_DRIFT_PPM {
        d.error(at(c.max_drift_ppm.span()), format!("max_drift_ppm = {drift} is 10 % or more; real clocks drift far less (a Pi's crystal: ~50 ppm)"));
    } else if drift == 0 {
        d.error(at(c.max_drift_ppm.span()), "max_drift_ppm = 0 claims that no two clocks in the rack ever run at different rates; the lease's safety margin comes from this bound, so give a real one (the default 10000 = 1 %; a Pi's crystal drifts ~50 ppm)");
    }
    if lease < MIN_LEASE_MS {
        d.error(
            at(c.lease_ms.span()),
            format!("lease_ms = {lease} is below the minimum of {MIN_LEASE_MS} ms"),
        );
    } else if lease > MAX_LEASE_MS {
        d.error(
            at(c.lease_ms.span()),
            format!("lease_ms = {lease} is above the maximum of {MAX_LEASE_MS} ms (a minute without a master after a crash)"),
        );
    } else if fence < 100 {
        d.error(at(c.fence_budget_ms.span()), format!("fence_budget_ms = {fence} is too short to drop the VIP and stop mfsmaster (at least 100)"));
    } else if fence >= lease {
        d.error(at(c.fence_budget_ms.span()), format!("fence_budget_ms = {fence} is not shorter than lease_ms = {lease}: a holder would have to fence before it could ever act"));
    } else if drift < MAX_DRIFT_PPM {
        match lease_slack_ms(lease, fence, drift) {
            Some(slack) if slack >= 0 => {}
            _ => d.error(
                at(c.lease_ms.span()),
                format!(
                    "lease_ms = {lease} is too short for fence_budget_ms = {fence}: a holder renews every lease/3 and must keep the whole fencing budget before its lease (less {} ppm drift) ends; use lease_ms >= {}",
                    drift,
                    min_lease_ms(fence, drift)
                ),
            ),
        }
    }
}

/// Time a holder keeps in hand after fencing, in ms: the lease it may believe in (shortened by
/// the drift bound on both its clock and a voter's) minus one renewal period (lease/3, the worst
/// case in which a renewal was just missed) minus the fencing budget. Negative means the budget
/// cannot fit. `None` only on overflow.
pub fn lease_slack_ms(lease_ms: u64, fence_budget_ms: u64, drift_ppm: u64) -> Option<i64> {
    let kept = 1_000_000u64.checked_sub(drift_ppm.checked_mul(2)?)?;
    let believed = i64::try_from(lease_ms.checked_mul(kept)? / 1_000_000).ok()?;
    let renew = i64::try_from(lease_ms / 3).ok()?;
    believed
        .checked_sub(renew)?
        .checked_sub(i64::try_from(fence_budget_ms).ok()?)
}

/// The smallest lease for a fencing budget and drift bound (rounded up to 100 ms); past
/// [`MAX_LEASE_MS`] when no accepted lease fits.
pub fn min_lease_ms(fence_budget_ms: u64, drift_ppm: u64) -> u64 {
    let mut l = MIN_LEASE_MS;
    while lease_slack_ms(l, fence_budget_ms, drift_ppm).is_none_or(|s| s < 0) && l <= MAX_LEASE_MS {
        l += 100;
    }
    l
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The slack never panics or wraps, whatever the numbers.
        #[test]
        fn slack_is_total(lease in any::<u64>(), fence in any::<u64>(), drift in any::<u64>()) {
            if let Some(s) = lease_slack_ms(lease, fence, drift) {
                prop_assert!(s <= i64::try_from(lease).unwrap_or(i64::MAX));
            }
        }
    }

    #[test]
    fn overflowing_numbers_give_no_slack() {
        assert_eq!(lease_slack_ms(u64::MAX, 1000, 10_000), None);
        assert_eq!(lease_slack_ms(3000, 1000, u64::MAX), None);
        assert_eq!(lease_slack_ms(3000, 1000, 10_000), Some(940));
    }
}
