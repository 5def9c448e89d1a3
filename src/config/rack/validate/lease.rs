//! Checks of the lease timing in `[cluster]` (`lease_ms`, `fence_budget_ms`, `max_drift_ppm`),
//! and the arithmetic behind them (see ARCHITECTURE.md, "lease timing").

use std::ops::Range;

use crate::config::diag::Diagnostics;
use crate::config::rack::schema::RawCluster;

/// Shortest lease accepted: below this, scheduling noise on a Pi eats the margins.
pub const MIN_LEASE_MS: u64 = 1000;

/// Checks that the lease leaves room for fencing under the drift bound.
pub(super) fn timing(
    c: &RawCluster,
    at: &dyn Fn(Range<usize>) -> Range<usize>,
    d: &mut Diagnostics<'_>,
) {
    let lease = *c.lease_ms.get_ref();
    let fence = *c.fence_budget_ms.get_ref();
    let drift = *c.max_drift_ppm.get_ref();
    if drift >= 100_000 {
        d.error(at(c.max_drift_ppm.span()), format!("max_drift_ppm = {drift} is over 10 %; real clocks drift far less (a Pi's crystal: ~50 ppm)"));
    }
    if lease < MIN_LEASE_MS {
        d.error(
            at(c.lease_ms.span()),
            format!("lease_ms = {lease} is below the minimum of {MIN_LEASE_MS} ms"),
        );
    } else if fence < 100 {
        d.error(at(c.fence_budget_ms.span()), format!("fence_budget_ms = {fence} is too short to drop the VIP and stop mfsmaster (at least 100)"));
    } else if let Some(slack) = lease_slack_ms(lease, fence, drift)
        && slack < 0
    {
        {
            d.error(
                at(c.lease_ms.span()),
                format!(
                    "lease_ms = {lease} is too short for fence_budget_ms = {fence}: a holder renews every lease/3 and must keep the whole fencing budget before its lease (less {} ppm drift) ends; use lease_ms >= {}",
                    drift,
                    min_lease_ms(fence, drift)
                ),
            );
        }
    }
}

/// Time a holder keeps in hand after fencing, in ms: the lease it may believe in (shortened by
/// the drift bound on both its clock and a voter's) minus one renewal period (lease/3, the worst
/// case in which a renewal was just missed) minus the fencing budget. Negative means the budget
/// cannot fit. `None` only on overflow.
pub fn lease_slack_ms(lease_ms: u64, fence_budget_ms: u64, drift_ppm: u64) -> Option<i64> {
    let believed =
        i64::try_from(lease_ms.checked_mul(1_000_000u64.checked_sub(2 * drift_ppm)?)? / 1_000_000)
            .ok()?;
    let renew = i64::try_from(lease_ms / 3).ok()?;
    Some(believed - renew - i64::try_from(fence_budget_ms).ok()?)
}

/// The smallest lease for a fencing budget and drift bound (rounded up to 100 ms).
pub fn min_lease_ms(fence_budget_ms: u64, drift_ppm: u64) -> u64 {
    let mut l = MIN_LEASE_MS;
    while lease_slack_ms(l, fence_budget_ms, drift_ppm).is_some_and(|s| s < 0) && l < 3_600_000 {
        l += 100;
    }
    l
}
