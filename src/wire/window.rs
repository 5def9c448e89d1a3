//! Sliding replay window over one sender incarnation's frame counters (the IPsec / DTLS
//! anti-replay bitmap, RFC 6479 style). It remembers the highest counter accepted and which of the
//! [`WINDOW`] counters below it were accepted, so reordered frames inside the window are accepted
//! once and duplicates or frames below the window are refused.

/// How many counters below the highest one are still accepted (reordering tolerance).
pub const WINDOW: u64 = 128;

/// Why a counter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// This counter was already accepted.
    Duplicate,
    /// This counter is below the window: too old to tell whether it is a duplicate.
    BelowWindow,
}

/// The replay window of one sender incarnation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayWindow {
    highest: u64,
    /// Bit `i` set = counter `highest - i` was accepted.
    seen: u128,
}

impl ReplayWindow {
    /// A window whose first accepted counter is `counter`.
    pub fn starting_at(counter: u64) -> Self {
        ReplayWindow {
            highest: counter,
            seen: 1,
        }
    }

    /// Whether `counter` would be accepted. Does not change the window: call
    /// [`ReplayWindow::accept`] once the frame has authenticated.
    pub fn check(&self, counter: u64) -> Result<(), Stale> {
        if counter > self.highest {
            return Ok(());
        }
        let back = self.highest - counter;
        if back >= WINDOW {
            return Err(Stale::BelowWindow);
        }
        if self.seen & (1u128 << back) != 0 {
            Err(Stale::Duplicate)
        } else {
            Ok(())
        }
    }

    /// Records `counter` as accepted (after a successful [`ReplayWindow::check`]).
    pub fn accept(&mut self, counter: u64) {
        if counter > self.highest {
            let shift = counter - self.highest;
            self.seen = if shift >= WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.highest = counter;
        } else {
            let back = self.highest - counter;
            if back < WINDOW {
                self.seen |= 1u128 << back;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn duplicates_and_old_counters_are_refused() {
        let mut w = ReplayWindow::starting_at(10);
        assert_eq!(w.check(10), Err(Stale::Duplicate));
        assert_eq!(w.check(11), Ok(()));
        w.accept(200);
        assert_eq!(w.check(200), Err(Stale::Duplicate));
        assert_eq!(w.check(73), Ok(()));
        assert_eq!(w.check(72), Err(Stale::BelowWindow));
        assert_eq!(w.check(10), Err(Stale::BelowWindow));
        w.accept(150);
        assert_eq!(w.check(150), Err(Stale::Duplicate));
        assert_eq!(w.check(151), Ok(()));
        w.accept(u64::MAX);
        assert_eq!(w.check(u64::MAX), Err(Stale::Duplicate));
        assert_eq!(w.check(u64::MAX - 127), Ok(()));
    }

    proptest! {
        /// Against a model that remembers everything: the window never accepts a counter twice,
        /// and accepts every fresh counter within WINDOW of the highest.
        #[test]
        fn window_matches_model(first in 0u64..1000, seq in proptest::collection::vec(0u64..1400, 1..300)) {
            let mut w = ReplayWindow::starting_at(first);
            let mut seen = std::collections::BTreeSet::from([first]);
            let mut highest = first;
            for c in seq {
                let r = w.check(c);
                if seen.contains(&c) {
                    prop_assert!(r.is_err());
                } else if c + WINDOW > highest {
                    prop_assert_eq!(r, Ok(()));
                } else {
                    prop_assert_eq!(r, Err(Stale::BelowWindow));
                }
                if r.is_ok() {
                    w.accept(c);
                    seen.insert(c);
                    highest = highest.max(c);
                }
            }
        }
    }
}
