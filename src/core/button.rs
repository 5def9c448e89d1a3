//! The front-panel button: raw levels in, debounced gestures out. Pure: the caller samples the
//! pin (or gets an edge) and passes the level with the time; [`Button::poll_timeout`] says when to
//! call again even if the level does not change.
//!
//! Gestures are decided on release, by how long the button was held:
//! - shorter than [`SWITCHOVER_HOLD`] (3 s): [`Gesture::ShortPress`] - blink the node number;
//! - from 3 s: [`Gesture::Switchover`] - hand the master role over (on the leader);
//! - from [`MAINTENANCE_HOLD`] (10 s): [`Gesture::Maintenance`] - toggle maintenance;
//! - longer than [`STUCK_HOLD`] (30 s): nothing (a stuck or shorted button must not act).
//!
//! A level counts only once it has been stable for [`DEBOUNCE`]; a button already down when the
//! agent starts is ignored until it has been released.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Instant;

/// A level must hold this long to count.
pub const DEBOUNCE: Duration = Duration::from_millis(30);
/// Held at least this long: switchover.
pub const SWITCHOVER_HOLD: Duration = Duration::from_secs(3);
/// Held at least this long: maintenance on/off.
pub const MAINTENANCE_HOLD: Duration = Duration::from_secs(10);
/// Held longer than this: ignored.
pub const STUCK_HOLD: Duration = Duration::from_secs(30);

/// What a completed press asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Gesture {
    ShortPress,
    Switchover,
    Maintenance,
}

/// What releasing the button now would do (for LED feedback while it is held).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hold {
    Short,
    Switchover,
    Maintenance,
    Stuck,
}

impl Hold {
    /// The hold class of a press that lasted `d`.
    pub fn of(d: Duration) -> Hold {
        if d > STUCK_HOLD {
            Hold::Stuck
        } else if d >= MAINTENANCE_HOLD {
            Hold::Maintenance
        } else if d >= SWITCHOVER_HOLD {
            Hold::Switchover
        } else {
            Hold::Short
        }
    }

    fn gesture(self) -> Option<Gesture> {
        match self {
            Hold::Short => Some(Gesture::ShortPress),
            Hold::Switchover => Some(Gesture::Switchover),
            Hold::Maintenance => Some(Gesture::Maintenance),
            Hold::Stuck => None,
        }
    }
}

/// The debouncer and gesture recogniser.
#[derive(Debug, Clone)]
pub struct Button {
    /// Last raw level seen, and since when.
    raw: bool,
    raw_since: Instant,
    /// Debounced level.
    pressed: bool,
    /// When the current press began (debounced); `None` while released, or for a press that was
    /// already down at start.
    pressed_at: Option<Instant>,
}

impl Button {
    /// A button whose level is `level` (true = pressed) at `now`.
    pub fn new(now: Instant, level: bool) -> Self {
        Button {
            raw: level,
            raw_since: now,
            pressed: level,
            pressed_at: None,
        }
    }

    /// A level read at `now` (call it for every sample or edge, and at [`Self::poll_timeout`]).
    /// Returns the gesture a release completes.
    pub fn input(&mut self, now: Instant, level: bool) -> Option<Gesture> {
        if level != self.raw {
            self.raw = level;
            self.raw_since = now;
        }
        if self.raw == self.pressed || now.saturating_since(self.raw_since) < DEBOUNCE {
            return None;
        }
        // The level has been stable for the debounce time: it counts from its first edge.
        self.pressed = self.raw;
        if self.pressed {
            self.pressed_at = Some(self.raw_since);
            None
        } else {
            let began = self.pressed_at.take()?;
            Hold::of(self.raw_since.saturating_since(began)).gesture()
        }
    }

    /// Whether the (debounced) button is down.
    pub fn is_pressed(&self) -> bool {
        self.pressed
    }

    /// While held: what releasing it at `now` would do.
    pub fn held(&self, now: Instant) -> Option<Hold> {
        let began = self.pressed_at.filter(|_| self.pressed)?;
        Some(Hold::of(now.saturating_since(began)))
    }

    /// When to call [`Self::input`] again without a level change: the end of a debounce, or the
    /// next hold threshold (for feedback).
    pub fn poll_timeout(&self, now: Instant) -> Option<Instant> {
        if self.raw != self.pressed {
            return Some(self.raw_since + DEBOUNCE);
        }
        let began = self.pressed_at.filter(|_| self.pressed)?;
        [
            SWITCHOVER_HOLD,
            MAINTENANCE_HOLD,
            STUCK_HOLD + Duration::from_millis(1),
        ]
        .into_iter()
        .map(|d| began + d)
        .find(|&t| t > now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn press(b: &mut Button, at_ms: u64, hold_ms: u64) -> Vec<Gesture> {
        let mut out = Vec::new();
        let t = |ms| Instant::from_millis(ms);
        out.extend(b.input(t(at_ms), true));
        out.extend(b.input(t(at_ms + 40), true));
        out.extend(b.input(t(at_ms + hold_ms), false));
        out.extend(b.input(t(at_ms + hold_ms + 40), false));
        out
    }

    #[test]
    fn holds_map_to_gestures() {
        let mut b = Button::new(Instant::from_millis(0), false);
        assert_eq!(press(&mut b, 1000, 200), vec![Gesture::ShortPress]);
        assert_eq!(press(&mut b, 5000, 3500), vec![Gesture::Switchover]);
        assert_eq!(press(&mut b, 20_000, 10_500), vec![Gesture::Maintenance]);
        assert_eq!(press(&mut b, 40_000, 31_000), vec![], "stuck: ignored");
    }

    #[test]
    fn bounces_shorter_than_the_debounce_are_ignored() {
        let mut b = Button::new(Instant::from_millis(0), false);
        for ms in [100, 110, 120, 130] {
            assert_eq!(b.input(Instant::from_millis(ms), ms % 20 == 0), None);
        }
        assert_eq!(b.input(Instant::from_millis(500), false), None);
        assert!(!b.is_pressed());
    }

    #[test]
    fn a_button_down_at_start_does_nothing_until_released() {
        let mut b = Button::new(Instant::from_millis(0), true);
        assert_eq!(b.held(Instant::from_millis(4000)), None);
        assert_eq!(b.input(Instant::from_millis(4000), false), None);
        assert_eq!(b.input(Instant::from_millis(4100), false), None);
        assert_eq!(press(&mut b, 5000, 100), vec![Gesture::ShortPress]);
    }

    #[test]
    fn feedback_and_timeouts_follow_the_thresholds() {
        let mut b = Button::new(Instant::from_millis(0), false);
        b.input(Instant::from_millis(1000), true);
        assert_eq!(
            b.poll_timeout(Instant::from_millis(1000)),
            Some(Instant::from_millis(1030))
        );
        b.input(Instant::from_millis(1030), true);
        assert_eq!(b.held(Instant::from_millis(1030)), Some(Hold::Short));
        assert_eq!(
            b.poll_timeout(Instant::from_millis(1030)),
            Some(Instant::from_millis(4000))
        );
        assert_eq!(b.held(Instant::from_millis(4000)), Some(Hold::Switchover));
        assert_eq!(
            b.held(Instant::from_millis(11_000)),
            Some(Hold::Maintenance)
        );
    }

    proptest! {
        /// Any bouncy signal: every gesture needs a debounced press and a debounced release, so
        /// there are never more gestures than stable presses, and a signal that never stays
        /// down for the debounce time makes none.
        #[test]
        fn gestures_need_stable_presses(edges in proptest::collection::vec((any::<bool>(), 1u64..5000), 1..60)) {
            let mut b = Button::new(Instant::from_millis(0), false);
            let mut t = 0u64;
            let mut gestures = 0usize;
            let mut stable_presses = 0usize;
            for (i, (level, gap)) in edges.iter().enumerate() {
                t += gap;
                gestures += usize::from(b.input(Instant::from_millis(t), *level).is_some());
                let next_gap = edges.get(i + 1).map_or(u64::MAX, |e| e.1);
                if *level && next_gap >= 30 {
                    stable_presses += 1;
                }
            }
            t += 100;
            gestures += usize::from(b.input(Instant::from_millis(t), false).is_some());
            gestures += usize::from(b.input(Instant::from_millis(t + 100), false).is_some());
            prop_assert!(gestures <= stable_presses, "{} gestures from {} stable presses", gestures, stable_presses);
        }
    }
}
