//! Status LEDs: what the green, amber and red LED of a Pi show, as a pure function of the rack as
//! this agent sees it and of the time. No GPIO here: the runtime asks [`Panel::show`] for the
//! lights at a given [`Instant`] and hands the [`Frame`] to a `host::gpio` backend.
//!
//! Each LED answers one question, so states combine:
//! - **green** - the role: steady = follower of a known leader, double blink = this node leads,
//!   off = no leader known or no quorum;
//! - **amber** - the rack: slow blink = degraded (a member down or suspect, a replica syncing or
//!   outdated, a member reporting undervoltage, low memory or a disk problem), fast blink =
//!   failover in progress (no leader known yet, or a member fencing), steady = this node is in
//!   maintenance;
//! - **red** - this node: steady = fenced / no quorum (safe mode: it will not lead), fast blink =
//!   needs a person (data disk missing, host actions failing again and again).
//!
//! At start all three run a lamp test (green, amber, red, then all together) so a dead LED is
//! seen. A short button press blinks the node number (its position in the rack file, from 1) on
//! green; while the button is held past a gesture's threshold the LEDs say what releasing it
//! will do (green + amber: switchover, amber + red: maintenance).

mod pattern;
mod svg;
mod view;

pub use pattern::{Blink, Frame, Pattern};
pub use svg::{documented_states, render_svg};
pub use view::{Indication, RackView, parse_member_state};

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::button::Hold;
use super::{Instant, NodeId};

/// Length of the start-up lamp test.
pub const LAMP_TEST: Duration = Duration::from_millis(1800);
/// Node number: each blink is on this long and off this long.
const NUMBER_BLINK: Duration = Duration::from_millis(300);
/// Pause between the two repetitions of the node number.
const NUMBER_PAUSE: Duration = Duration::from_millis(1200);

/// What the LEDs show at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Show {
    pub indication: Indication,
    pub pattern: Pattern,
    pub frame: Frame,
}

/// The LED panel of one node: lamp test at start, node number on request, button feedback, and
/// otherwise the pattern of the [`RackView`]. Pure: every method takes the time.
#[derive(Debug, Clone)]
pub struct Panel {
    start: Instant,
    /// The node number blinked (position in the rack file, from 1).
    number: u16,
    number_since: Option<Instant>,
    armed: Option<Hold>,
}

impl Panel {
    /// A panel that starts its lamp test at `now`.
    pub fn new(now: Instant, node: NodeId) -> Self {
        Panel {
            start: now,
            number: node.0.saturating_add(1),
            number_since: None,
            armed: None,
        }
    }

    /// Blink the node number (twice) from `now` on.
    pub fn blink_number(&mut self, now: Instant) {
        self.number_since = Some(now);
    }

    /// What the button would do if released now (feedback while it is held).
    pub fn set_armed(&mut self, hold: Option<Hold>) {
        self.armed = hold;
    }

    fn number_len(&self) -> Duration {
        (NUMBER_BLINK * 2 * u32::from(self.number) + NUMBER_PAUSE) * 2
    }

    /// The lights at `now` for the rack as `view` shows it.
    pub fn show(&self, view: &RackView, now: Instant) -> Show {
        let since = now.saturating_since(self.start);
        if since < LAMP_TEST {
            let step = since.as_millis() / 400;
            let frame = match step {
                0 => Frame {
                    green: true,
                    ..Frame::default()
                },
                1 => Frame {
                    amber: true,
                    ..Frame::default()
                },
                2 => Frame {
                    red: true,
                    ..Frame::default()
                },
                _ => Frame::ALL,
            };
            return Show {
                indication: Indication::LampTest,
                pattern: Pattern {
                    green: Blink::Steady,
                    amber: Blink::Steady,
                    red: Blink::Steady,
                },
                frame,
            };
        }
        let steady = |green, amber, red| Pattern {
            green: if green { Blink::Steady } else { Blink::Off },
            amber: if amber { Blink::Steady } else { Blink::Off },
            red: if red { Blink::Steady } else { Blink::Off },
        };
        match self.armed {
            Some(Hold::Switchover) => {
                let p = steady(true, true, false);
                return Show {
                    indication: Indication::ArmedSwitchover,
                    pattern: p,
                    frame: p.frame(since),
                };
            }
            Some(Hold::Maintenance) => {
                let p = steady(false, true, true);
                return Show {
                    indication: Indication::ArmedMaintenance,
                    pattern: p,
                    frame: p.frame(since),
                };
            }
            Some(Hold::Short) | Some(Hold::Stuck) | None => {}
        }
        if let Some(t) = self.number_since {
            let d = now.saturating_since(t);
            if d < self.number_len() {
                let cycle = self.number_len() / 2;
                let in_cycle =
                    Duration::from_micros((d.as_micros() % cycle.as_micros().max(1)) as u64);
                let blink = in_cycle.as_micros() / (NUMBER_BLINK * 2).as_micros();
                let lit = blink < u128::from(self.number)
                    && in_cycle.as_micros() % (NUMBER_BLINK * 2).as_micros()
                        < NUMBER_BLINK.as_micros();
                return Show {
                    indication: Indication::NodeNumber,
                    pattern: Pattern::OFF,
                    frame: Frame {
                        green: lit,
                        ..Frame::default()
                    },
                };
            }
        }
        let pattern = view.pattern();
        Show {
            indication: view.indication(),
            pattern,
            frame: pattern.frame(since),
        }
    }

    /// The next moment after `now` at which the lights may change (for the runtime's timer);
    /// the view itself changing is the caller's business.
    pub fn next_change(&self, view: &RackView, now: Instant) -> Option<Instant> {
        let since = now.saturating_since(self.start);
        if since < LAMP_TEST {
            let next = Duration::from_millis((since.as_millis() as u64 / 400 + 1) * 400);
            return Some(self.start + next.min(LAMP_TEST));
        }
        if self
            .armed
            .is_some_and(|h| matches!(h, Hold::Switchover | Hold::Maintenance))
        {
            return None;
        }
        if let Some(t) = self.number_since {
            let d = now.saturating_since(t);
            if d < self.number_len() {
                let step = NUMBER_BLINK.as_micros() as u64;
                let next = (d.as_micros() as u64 / step + 1) * step;
                return Some(t + Duration::from_micros(next));
            }
        }
        view.pattern()
            .next_edge(since)
            .map(|phase| self.start + phase)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn healthy() -> RackView {
        RackView {
            leader_known: true,
            quorum: true,
            ..RackView::default()
        }
    }

    #[test]
    fn the_brief_states_have_their_patterns() {
        let h = healthy();
        assert_eq!(h.pattern().green, Blink::Steady);
        assert_eq!(h.indication(), Indication::HealthyFollower);
        let l = RackView { leader: true, ..h };
        assert_eq!(l.pattern().green, Blink::DoubleBlink);
        assert_eq!(l.indication(), Indication::Leader);
        let d = RackView {
            degraded: true,
            ..h
        };
        assert_eq!(d.pattern().amber, Blink::Slow);
        let f = RackView {
            leader_known: false,
            ..h
        };
        assert_eq!(f.pattern().amber, Blink::Fast);
        assert_eq!(f.pattern().green, Blink::Off);
        assert_eq!(f.indication(), Indication::FailoverInProgress);
        let q = RackView { quorum: false, ..h };
        assert_eq!(q.pattern().red, Blink::Steady);
        assert_eq!(q.pattern().green, Blink::Off);
        assert_eq!(q.indication(), Indication::Fenced);
        let fencing_leader = RackView {
            leader: true,
            fencing: true,
            ..h
        };
        assert_eq!(fencing_leader.pattern().green, Blink::Off);
        assert_eq!(fencing_leader.pattern().red, Blink::Steady);
        let p = RackView {
            needs_person: true,
            ..h
        };
        assert_eq!(p.pattern().red, Blink::Fast);
        assert_eq!(p.indication(), Indication::NeedsPerson);
    }

    #[test]
    fn documented_patterns_are_all_different() {
        let states = documented_states();
        for (i, (a, pa)) in states.iter().enumerate() {
            for (b, pb) in &states[i + 1..] {
                assert_ne!(pa, pb, "{a} and {b} look the same");
            }
        }
    }

    #[test]
    fn lamp_test_lights_each_led_then_all() {
        let p = Panel::new(Instant::from_millis(1000), NodeId(0));
        let v = healthy();
        let at = |ms: u64| p.show(&v, Instant::from_millis(1000 + ms));
        assert_eq!(
            at(100).frame,
            Frame {
                green: true,
                ..Frame::default()
            }
        );
        assert!(at(500).frame.amber && !at(500).frame.green);
        assert!(at(900).frame.red);
        assert_eq!(at(1500).frame, Frame::ALL);
        assert_eq!(at(1500).indication, Indication::LampTest);
        assert_eq!(at(2000).indication, Indication::HealthyFollower);
        assert_eq!(
            p.next_change(&v, Instant::from_millis(1000)),
            Some(Instant::from_millis(1400))
        );
    }

    #[test]
    fn a_short_press_blinks_the_node_number_twice() {
        let mut p = Panel::new(Instant::from_millis(0), NodeId(2));
        let v = healthy();
        let t0 = Instant::from_millis(5000);
        p.blink_number(t0);
        let mut rises = 0;
        let mut last = false;
        for ms in (0..20_000).step_by(10) {
            let s = p.show(&v, t0 + Duration::from_millis(ms));
            if s.indication != Indication::NodeNumber {
                break;
            }
            if s.frame.green && !last {
                rises += 1;
            }
            last = s.frame.green;
        }
        assert_eq!(rises, 6, "node 3, twice");
    }

    #[test]
    fn held_button_feedback_overrides_the_pattern() {
        let mut p = Panel::new(Instant::from_millis(0), NodeId(0));
        p.set_armed(Some(Hold::Maintenance));
        let s = p.show(&healthy(), Instant::from_millis(5000));
        assert_eq!(s.indication, Indication::ArmedMaintenance);
        assert_eq!(
            s.frame,
            Frame {
                amber: true,
                red: true,
                ..Frame::default()
            }
        );
    }

    #[test]
    fn the_svg_in_docs_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/leds.svg");
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == render_svg(),
            "docs/leds.svg is stale: run `cargo run -- leds render --out docs/leds.svg`"
        );
    }

    fn any_view() -> impl Strategy<Value = RackView> {
        proptest::collection::vec(any::<bool>(), 8).prop_map(|b| RackView {
            leader: b[0],
            leader_known: b[1] || b[0],
            fencing: b[2],
            quorum: b[3],
            member_fencing: b[4],
            degraded: b[5],
            maintenance: b[6],
            needs_person: b[7],
        })
    }

    proptest! {
        #[test]
        fn next_change_is_the_next_frame_change(v in any_view(), start in 0u64..10_000, at in 0u64..20_000) {
            let p = Panel::new(Instant::from_millis(start), NodeId(1));
            let now = Instant::from_millis(start + at);
            let f = p.show(&v, now).frame;
            match p.next_change(&v, now) {
                None => {
                    for ms in (0..5000).step_by(7) {
                        prop_assert_eq!(p.show(&v, now + Duration::from_millis(ms)).frame, f);
                    }
                }
                Some(t) => {
                    prop_assert!(t > now);
                    // Nothing changes before the announced moment.
                    let mut probe = now;
                    while probe + Duration::from_millis(5) < t {
                        probe += Duration::from_millis(5);
                        prop_assert_eq!(p.show(&v, probe).frame, f);
                    }
                }
            }
        }

        #[test]
        fn safe_mode_never_shows_green_and_needs_person_always_shows_red(v in any_view(), ms in 0u64..10_000) {
            let pat = v.pattern();
            if v.fencing || !v.quorum {
                prop_assert_eq!(pat.green, Blink::Off);
                prop_assert!(pat.red != Blink::Off);
            }
            if v.needs_person {
                prop_assert_eq!(pat.red, Blink::Fast);
                prop_assert_eq!(v.indication(), Indication::NeedsPerson);
            }
            // The pattern is a pure function of the view and the time.
            prop_assert_eq!(pat.frame(Duration::from_millis(ms)), v.pattern().frame(Duration::from_millis(ms)));
        }
    }
}
