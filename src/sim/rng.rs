//! Seeded randomness and the trace hash. Every purpose (clocks, each node's network fate, each
//! node's incarnation seeds, each kind of generated fault) draws from its own ChaCha8 stream,
//! derived from the run's seed and a stream number, so that a change in one purpose (one more
//! fault, one more message from node 3) does not shift the random numbers of the others.
//! Only integer arithmetic is used on random values, so runs hash the same on every platform.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

/// What a random stream is used for; part of its stream number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Purpose {
    /// Clock offsets and drifts, one stream for all nodes.
    Clock = 1,
    /// The fate (loss, delay, duplication) of messages sent by one node.
    Net = 2,
    /// The seeds of one node's incarnations.
    NodeSeed = 3,
    /// Generated crash/restart times of one node.
    ScheduleCrash = 4,
    /// Generated pauses of one node.
    SchedulePause = 5,
    /// Generated partitions (all nodes).
    SchedulePartition = 6,
}

/// The random stream for `purpose` and `index` (usually a node number) of the run `seed`.
pub(crate) fn stream(seed: u64, purpose: Purpose, index: u32) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream((u64::from(purpose as u32) << 32) | u64::from(index));
    rng
}

/// A uniform integer in `0..=max` (multiply-shift; the bias is below 2^-32 for the ranges used).
pub(crate) fn below_incl(rng: &mut ChaCha8Rng, max: u64) -> u64 {
    if max == u64::MAX {
        return rng.next_u64();
    }
    ((u128::from(rng.next_u64()) * u128::from(max + 1)) >> 64) as u64
}

/// A uniform integer in `lo..=hi` (`lo` if the range is empty).
pub(crate) fn between(rng: &mut ChaCha8Rng, lo: u64, hi: u64) -> u64 {
    if hi <= lo {
        // still draw, so the stream advances the same way whatever the range
        let _ = rng.next_u64();
        return lo;
    }
    lo + below_incl(rng, hi - lo)
}

/// A probability as a threshold on a uniform `u64`: an event happens when a draw is below it.
/// Built from an `f64` once (IEEE multiplication is exact-rounded, so this is portable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Chance {
    threshold: u64,
    always: bool,
}

impl Chance {
    pub(crate) fn new(p: f64) -> Self {
        if p.is_nan() || p <= 0.0 {
            Chance {
                threshold: 0,
                always: false,
            }
        } else if p >= 1.0 {
            Chance {
                threshold: u64::MAX,
                always: true,
            }
        } else {
            // 2^64 as f64 is exact; the product is below 2^64
            Chance {
                threshold: (p * 18_446_744_073_709_551_616.0) as u64,
                always: false,
            }
        }
    }

    /// Whether the event happens for the draw `x` (a uniform `u64`).
    pub(crate) fn hit(self, x: u64) -> bool {
        self.always || x < self.threshold
    }
}

pub use crate::fnv::Fnv1a;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_independent_and_reproducible() {
        let a1 = stream(7, Purpose::Net, 0).next_u64();
        let a2 = stream(7, Purpose::Net, 0).next_u64();
        let b = stream(7, Purpose::Net, 1).next_u64();
        let c = stream(8, Purpose::Net, 0).next_u64();
        assert_eq!(a1, a2);
        assert_ne!(a1, b);
        assert_ne!(a1, c);
    }

    #[test]
    fn chance_extremes() {
        assert!(Chance::new(1.0).hit(u64::MAX));
        assert!(!Chance::new(0.0).hit(0));
    }
}
