//! Simulated time. The simulator keeps one *real* timeline ([`SimTime`], what a wall clock in the
//! lab would read) and gives every node its own drifting monotonic clock ([`NodeClock`]). Machines
//! only ever see their local [`Instant`]; the event queue only ever holds real times. Keeping the
//! two in different types makes mixing them a compile error.

use std::ops::{Add, Sub};
use std::time::Duration;

use crate::core::Instant;

/// A point on the simulator's real timeline, in microseconds since the start of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SimTime(pub u64);

impl SimTime {
    /// The start of every run.
    pub const ZERO: SimTime = SimTime(0);
    /// Later than any run can reach.
    pub const MAX: SimTime = SimTime(u64::MAX);

    /// `us` microseconds after the start of the run.
    pub fn from_micros(us: u64) -> Self {
        SimTime(us)
    }

    /// `ms` milliseconds after the start of the run.
    pub fn from_millis(ms: u64) -> Self {
        SimTime(ms.saturating_mul(1_000))
    }

    /// `s` seconds after the start of the run.
    pub fn from_secs(s: u64) -> Self {
        SimTime(s.saturating_mul(1_000_000))
    }

    /// Microseconds since the start of the run.
    pub fn as_micros(self) -> u64 {
        self.0
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: SimTime) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }

    /// Time since the start of the run.
    pub fn elapsed(self) -> Duration {
        Duration::from_micros(self.0)
    }
}

pub(crate) fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Add<Duration> for SimTime {
    type Output = SimTime;
    fn add(self, d: Duration) -> SimTime {
        SimTime(self.0.saturating_add(micros(d)))
    }
}

impl Sub<Duration> for SimTime {
    type Output = SimTime;
    fn sub(self, d: Duration) -> SimTime {
        SimTime(self.0.saturating_sub(micros(d)))
    }
}

impl std::fmt::Display for SimTime {
    /// Seconds with microsecond precision, e.g. `12.000345s`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

const PPM: i128 = 1_000_000;

/// One node's monotonic clock: `local = offset + real * (1 + drift_ppm / 1e6)`, rounded down to
/// the microsecond. It keeps running while the node is paused or crashed (a process restart does
/// not reset `CLOCK_MONOTONIC`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeClock {
    /// The local reading at real time zero, in microseconds.
    pub offset_us: u64,
    /// How much faster (positive) or slower (negative) than real time the clock runs, in parts
    /// per million: +10_000 means 1 % fast. Must be above -1_000_000.
    pub drift_ppm: i32,
}

impl NodeClock {
    /// A clock with no offset and no drift: local time equals real time.
    pub const EXACT: NodeClock = NodeClock {
        offset_us: 0,
        drift_ppm: 0,
    };

    fn rate(self) -> i128 {
        (PPM + i128::from(self.drift_ppm)).max(1)
    }

    /// The local reading at real time `real`.
    pub fn local(self, real: SimTime) -> Instant {
        let scaled = i128::from(real.0) * self.rate() / PPM;
        let local = i128::from(self.offset_us) + scaled;
        Instant(u64::try_from(local).unwrap_or(u64::MAX))
    }

    /// The earliest real time at which the local reading is at least `local`: a timer set for
    /// local `deadline` fires at `real_at(deadline)` and never sees a local time before it.
    pub fn real_at(self, local: Instant) -> SimTime {
        let Some(x) = local.0.checked_sub(self.offset_us) else {
            return SimTime::ZERO;
        };
        // smallest r with floor(r * rate / 1e6) >= x, i.e. r >= x * 1e6 / rate
        let num = i128::from(x) * PPM;
        let rate = self.rate();
        let r = (num + rate - 1) / rate;
        let real = SimTime(u64::try_from(r).unwrap_or(u64::MAX));
        debug_assert!(real == SimTime::MAX || self.local(real) >= local);
        real
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_at_is_the_first_real_time_reaching_a_local_deadline() {
        for drift in [-10_000, -1, 0, 1, 7_777, 10_000] {
            let c = NodeClock {
                offset_us: 123_456,
                drift_ppm: drift,
            };
            for l in [0u64, 123_456, 123_457, 1_123_456, 987_654_321] {
                let r = c.real_at(Instant(l));
                assert!(c.local(r) >= Instant(l), "drift {drift} l {l}");
                if r.0 > 0 {
                    assert!(
                        c.local(SimTime(r.0 - 1)) < Instant(l),
                        "drift {drift} l {l}"
                    );
                }
            }
        }
        let fast = NodeClock {
            offset_us: 0,
            drift_ppm: 10_000,
        };
        assert_eq!(fast.real_at(Instant::from_millis(1_000)), SimTime(990_100));
        assert_eq!(SimTime(12_000_345).to_string(), "12.000345s");
    }
}
