//! Lifeguard's two local-health mechanisms (Dadgar, Phillips, Currey, 2018: "Lifeguard: Local
//! Health Awareness for More Accurate Failure Detection"):
//! - the Local Health Multiplier (LHM): a saturating score that rises on evidence that *this*
//!   node is slow (probes failing with helpers silent, having to refute suspicions of itself) and
//!   falls on successful probes; all of this node's probe timings are stretched by `LHM + 1`;
//! - the dynamic suspicion timeout: a suspicion starts with a long timeout that shrinks as
//!   independent members confirm it.
//!
//! Our addition: a round-trip estimator (Jacobson/Karels, as TCP's RTO) over direct probe acks.
//! When the network itself is slow or jittery (not this node), the probe timeout would otherwise
//! stay far below the round trip and every probe would fail; instead all timings stretch by
//! `rto / probe_timeout` as well, together with the LHM capped at `max + 1` times.

use std::time::Duration;

/// The Local Health Multiplier: 0 = healthy, up to a configured maximum (8 by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalHealth {
    score: u8,
    max: u8,
}

impl LocalHealth {
    /// A healthy score with the given ceiling.
    pub fn new(max: u8) -> Self {
        LocalHealth { score: 0, max }
    }

    /// The current score (0..=max).
    pub fn score(self) -> u8 {
        self.score
    }

    /// Add `delta` (may be negative), saturating at 0 and at the maximum.
    pub fn apply(&mut self, delta: i32) {
        let s = (i32::from(self.score) + delta).clamp(0, i32::from(self.max));
        self.score = u8::try_from(s).unwrap_or(self.max);
    }

    /// `d` stretched by the multiplier: `d * (score + 1)`.
    pub fn scale(self, d: Duration) -> Duration {
        d.saturating_mul(u32::from(self.score) + 1)
    }
}

/// Smoothed round-trip time of direct probes (RFC 6298 weights, microseconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RttEstimator {
    srtt_us: u64,
    rttvar_us: u64,
}

impl RttEstimator {
    /// Feed one round-trip sample.
    pub fn sample(&mut self, rtt: Duration) {
        let r = u64::try_from(rtt.as_micros())
            .unwrap_or(u64::MAX / 8)
            .min(u64::MAX / 8);
        if self.srtt_us == 0 && self.rttvar_us == 0 {
            self.srtt_us = r.max(1);
            self.rttvar_us = r / 2;
        } else {
            self.rttvar_us = (3 * self.rttvar_us + self.srtt_us.abs_diff(r)) / 4;
            self.srtt_us = (7 * self.srtt_us + r) / 8;
        }
    }

    /// Retransmission-style timeout `srtt + 4 * rttvar` (zero before the first sample).
    pub fn rto(self) -> Duration {
        Duration::from_micros(self.srtt_us + 4 * self.rttvar_us)
    }
}

/// Lifeguard's suspicion timeout after `confirmations` independent confirmations out of
/// `expected`: `max(min, max - (max - min) * log(C + 1) / log(K + 1))`. With no confirmation the
/// full `max`; with `expected` (or more) the `min`; with `expected == 0` always `min`.
pub fn suspicion_timeout(
    min: Duration,
    max: Duration,
    expected: u32,
    confirmations: u32,
) -> Duration {
    if expected == 0 || max <= min {
        return min;
    }
    let frac = (f64::from(confirmations) + 1.0).ln() / (f64::from(expected) + 1.0).ln();
    let frac = frac.clamp(0.0, 1.0);
    let span = (max - min).as_secs_f64();
    let t = max.as_secs_f64() - span * frac;
    Duration::from_secs_f64(t.max(min.as_secs_f64()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lhm_saturates_both_ways_and_scales_timings() {
        let mut h = LocalHealth::new(8);
        h.apply(-1);
        assert_eq!(h.score(), 0);
        h.apply(3);
        assert_eq!(h.score(), 3);
        assert_eq!(
            h.scale(Duration::from_millis(200)),
            Duration::from_millis(800)
        );
        h.apply(100);
        assert_eq!(h.score(), 8);
        assert_eq!(
            h.scale(Duration::from_millis(100)),
            Duration::from_millis(900)
        );
        h.apply(-2);
        assert_eq!(h.score(), 6);
    }

    #[test]
    fn rtt_estimator_follows_the_network() {
        let mut r = RttEstimator::default();
        assert_eq!(r.rto(), Duration::ZERO);
        r.sample(Duration::from_millis(1));
        assert_eq!(r.rto(), Duration::from_millis(3));
        for _ in 0..50 {
            r.sample(Duration::from_millis(1));
        }
        assert!(r.rto() < Duration::from_millis(2));
        // A jittery network: samples alternating 0 and 400 ms.
        for i in 0..50 {
            r.sample(Duration::from_millis(if i % 2 == 0 { 0 } else { 400 }));
        }
        assert!(r.rto() > Duration::from_millis(500), "{:?}", r.rto());
    }

    #[test]
    fn suspicion_timeout_shrinks_logarithmically_with_confirmations() {
        let (min, max) = (Duration::from_secs(1), Duration::from_secs(4));
        let t = |c| suspicion_timeout(min, max, 3, c).as_millis();
        assert_eq!(t(0), 4000);
        // log(2)/log(4) = 0.5 -> 4 - 3 * 0.5
        assert_eq!(t(1), 2500);
        // log(3)/log(4) = 0.792... -> 4 - 3 * 0.792
        assert_eq!(t(2), 1622);
        assert_eq!(t(3), 1000);
        assert_eq!(t(10), 1000);
        // Never below min, and degenerate configs give min.
        assert_eq!(suspicion_timeout(min, max, 0, 0), min);
        assert_eq!(suspicion_timeout(max, min, 3, 0), max);
        // Monotone non-increasing.
        let mut last = u128::MAX;
        for c in 0..6 {
            assert!(t(c) <= last);
            last = t(c);
        }
    }
}
