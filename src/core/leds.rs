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

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::agent::{AgentStatus, NodeRole};
use super::button::Hold;
use super::membership::{HealthFlags, MemberState, NodeMeta, ReplicaState};
use super::{Instant, NodeId};

/// How one LED behaves over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Blink {
    Off,
    Steady,
    /// Two 120 ms flashes every second.
    DoubleBlink,
    /// 0.5 Hz: one second on, one second off.
    Slow,
    /// 4 Hz.
    Fast,
}

impl Blink {
    /// Whether the LED is lit `phase` after the pattern's origin.
    pub fn lit(self, phase: Duration) -> bool {
        let ms = phase.as_millis() as u64;
        match self {
            Blink::Off => false,
            Blink::Steady => true,
            Blink::DoubleBlink => {
                let p = ms % 1000;
                p < 120 || (240..360).contains(&p)
            }
            Blink::Slow => ms % 2000 < 1000,
            Blink::Fast => ms % 250 < 125,
        }
    }

    /// The next moment (after `phase`) at which the LED changes, as a phase; `None` if never.
    pub fn next_edge(self, phase: Duration) -> Option<Duration> {
        let ms = phase.as_millis() as u64;
        let (period, edges): (u64, &[u64]) = match self {
            Blink::Off | Blink::Steady => return None,
            Blink::DoubleBlink => (1000, &[120, 240, 360, 1000]),
            Blink::Slow => (2000, &[1000, 2000]),
            Blink::Fast => (250, &[125, 250]),
        };
        let base = ms - ms % period;
        let p = ms % period;
        let e = edges.iter().find(|&&e| e > p).copied().unwrap_or(period);
        Some(Duration::from_millis(base + e))
    }
}

/// The three LEDs of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Pattern {
    pub green: Blink,
    pub amber: Blink,
    pub red: Blink,
}

impl Pattern {
    pub const OFF: Pattern = Pattern {
        green: Blink::Off,
        amber: Blink::Off,
        red: Blink::Off,
    };

    fn all(self) -> [Blink; 3] {
        [self.green, self.amber, self.red]
    }

    /// The lights at `phase`.
    pub fn frame(self, phase: Duration) -> Frame {
        Frame {
            green: self.green.lit(phase),
            amber: self.amber.lit(phase),
            red: self.red.lit(phase),
        }
    }

    /// The next phase at which any LED changes.
    pub fn next_edge(self, phase: Duration) -> Option<Duration> {
        self.all().iter().filter_map(|b| b.next_edge(phase)).min()
    }
}

/// Which LEDs are lit at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Frame {
    pub green: bool,
    pub amber: bool,
    pub red: bool,
}

impl Frame {
    pub const ALL: Frame = Frame {
        green: true,
        amber: true,
        red: true,
    };
}

/// The summary of what the LEDs say, highest concern first (for `status`, logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Indication {
    /// The start-up lamp test.
    LampTest,
    /// Blinking the node number after a short button press.
    NodeNumber,
    /// The button is held past the switchover threshold.
    ArmedSwitchover,
    /// The button is held past the maintenance threshold.
    ArmedMaintenance,
    NeedsPerson,
    /// Fenced, or no quorum in sight: safe mode.
    Fenced,
    FailoverInProgress,
    Maintenance,
    Degraded,
    Leader,
    HealthyFollower,
    /// Seen from another node: down, or nothing known about it.
    Unknown,
}

impl Indication {
    /// A short label for tables.
    pub fn label(self) -> &'static str {
        match self {
            Indication::LampTest => "lamp test",
            Indication::NodeNumber => "node number",
            Indication::ArmedSwitchover => "release: switchover",
            Indication::ArmedMaintenance => "release: maintenance",
            Indication::NeedsPerson => "needs a person",
            Indication::Fenced => "fenced / no quorum",
            Indication::FailoverInProgress => "failover",
            Indication::Maintenance => "maintenance",
            Indication::Degraded => "degraded",
            Indication::Leader => "leader",
            Indication::HealthyFollower => "healthy",
            Indication::Unknown => "unknown",
        }
    }
}

/// The rack as one agent sees it, reduced to what the LEDs show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RackView {
    /// This node leads (holds the lease).
    pub leader: bool,
    /// A leader is known (this node or another).
    pub leader_known: bool,
    /// This node is fencing after stepping down.
    pub fencing: bool,
    /// A majority of the voters is alive as far as this node can tell.
    pub quorum: bool,
    /// Some member is fencing (a failover has begun).
    pub member_fencing: bool,
    /// Members down or suspect, replicas behind, members reporting a hardware problem.
    pub degraded: bool,
    /// This node is in maintenance.
    pub maintenance: bool,
    /// This node needs a person (disk missing, host actions failing again and again).
    pub needs_person: bool,
}

/// Health flags that make the rack degraded when any member reports them.
const DEGRADING: HealthFlags = HealthFlags(
    HealthFlags::UNDERVOLTAGE.0
        | HealthFlags::LOW_MEMORY.0
        | HealthFlags::DISK_SLOW.0
        | HealthFlags::DISK_MISSING.0,
);

fn replica_behind(meta: &NodeMeta) -> bool {
    matches!(
        meta.replica.state,
        ReplicaState::Syncing | ReplicaState::Outdated
    )
}

impl RackView {
    /// The view of the node whose status this is. `voters` are the rack's voters;
    /// `host_trouble` is the runtime's verdict that host actions keep failing.
    pub fn from_status(s: &AgentStatus, voters: &[NodeId], host_trouble: bool) -> Self {
        let alive = |id: NodeId| {
            id == s.node
                || s.members
                    .iter()
                    .any(|m| m.id == id && m.state == MemberState::Alive)
        };
        let alive_voters = voters.iter().filter(|&&v| alive(v)).count();
        let mine = s
            .members
            .iter()
            .find(|m| m.id == s.node)
            .and_then(|m| m.meta.as_ref());
        let own_flags = mine.map(|m| m.health).unwrap_or_default();
        let others = s.members.iter().filter(|m| m.id != s.node);
        let mut degraded = false;
        let mut member_fencing = false;
        for m in others {
            if m.state != MemberState::Alive {
                degraded = true;
                continue;
            }
            if let Some(meta) = &m.meta {
                degraded |= replica_behind(meta) || meta.health.0 & DEGRADING.0 != 0;
                member_fencing |= meta.health.contains(HealthFlags::FENCED);
            }
        }
        if let Some(meta) = mine {
            degraded |= replica_behind(meta) || meta.health.0 & DEGRADING.0 != 0;
        }
        RackView {
            leader: s.role == NodeRole::Leader,
            leader_known: s.leader.is_some(),
            fencing: s.role == NodeRole::Fencing,
            quorum: voters.is_empty() || alive_voters * 2 > voters.len(),
            member_fencing,
            degraded,
            maintenance: own_flags.contains(HealthFlags::MAINTENANCE),
            needs_person: host_trouble || own_flags.contains(HealthFlags::DISK_MISSING),
        }
    }

    /// What another member's LEDs show, judged from its gossip metadata (an approximation: that
    /// node's own view of the rack is not gossiped). `None` when nothing is known of it.
    pub fn of_member(
        state: MemberState,
        meta: Option<&NodeMeta>,
        rack: &RackView,
        leader: Option<NodeId>,
        id: NodeId,
    ) -> Option<Self> {
        let meta = meta?;
        if state != MemberState::Alive {
            return None;
        }
        Some(RackView {
            leader: leader == Some(id),
            fencing: meta.health.contains(HealthFlags::FENCED),
            maintenance: meta.health.contains(HealthFlags::MAINTENANCE),
            needs_person: meta.health.contains(HealthFlags::DISK_MISSING),
            ..*rack
        })
    }

    /// The pattern for this view (no lamp test, button or node number).
    pub fn pattern(&self) -> Pattern {
        let safe_mode = self.fencing || !self.quorum;
        let failover = !safe_mode && (!self.leader_known || self.member_fencing);
        Pattern {
            green: if self.leader && !safe_mode {
                Blink::DoubleBlink
            } else if self.leader_known && !safe_mode {
                Blink::Steady
            } else {
                Blink::Off
            },
            amber: if failover {
                Blink::Fast
            } else if self.degraded {
                Blink::Slow
            } else if self.maintenance {
                Blink::Steady
            } else {
                Blink::Off
            },
            red: if self.needs_person {
                Blink::Fast
            } else if safe_mode {
                Blink::Steady
            } else {
                Blink::Off
            },
        }
    }

    /// The most important thing the LEDs say.
    pub fn indication(&self) -> Indication {
        let safe_mode = self.fencing || !self.quorum;
        if self.needs_person {
            Indication::NeedsPerson
        } else if safe_mode {
            Indication::Fenced
        } else if !self.leader_known || self.member_fencing {
            Indication::FailoverInProgress
        } else if self.maintenance {
            Indication::Maintenance
        } else if self.degraded {
            Indication::Degraded
        } else if self.leader {
            Indication::Leader
        } else {
            Indication::HealthyFollower
        }
    }
}

/// Parses a member state's name ([`MemberState::as_str`]) back.
pub fn parse_member_state(s: &str) -> Option<MemberState> {
    MemberState::ALL.into_iter().find(|m| m.as_str() == s)
}

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

/// The states of the README picture: (name, view).
pub fn documented_states() -> Vec<(&'static str, Pattern)> {
    let healthy = RackView {
        leader_known: true,
        quorum: true,
        ..RackView::default()
    };
    vec![
        ("healthy follower", healthy.pattern()),
        (
            "leader",
            RackView {
                leader: true,
                ..healthy
            }
            .pattern(),
        ),
        (
            "degraded (follower)",
            RackView {
                degraded: true,
                ..healthy
            }
            .pattern(),
        ),
        (
            "degraded (leader)",
            RackView {
                degraded: true,
                leader: true,
                ..healthy
            }
            .pattern(),
        ),
        (
            "failover in progress",
            RackView {
                leader_known: false,
                ..healthy
            }
            .pattern(),
        ),
        (
            "fenced / no quorum",
            RackView {
                quorum: false,
                ..healthy
            }
            .pattern(),
        ),
        (
            "needs a person",
            RackView {
                needs_person: true,
                ..healthy
            }
            .pattern(),
        ),
        (
            "maintenance",
            RackView {
                maintenance: true,
                ..healthy
            }
            .pattern(),
        ),
    ]
}

/// An SVG picture of the documented patterns (plus the lamp test and node number 3): one strip
/// per state, three rows (green, amber, red), 4 s of time left to right.
pub fn render_svg() -> String {
    use std::fmt::Write;
    const SPAN_MS: u64 = 4000;
    const STEP_MS: u64 = 20;
    const PX_PER_STEP: u64 = 2;
    const ROW: u64 = 12;
    const LABEL_W: u64 = 170;
    let colours = ["#1db954", "#ffb000", "#e0245e"];
    type FrameAt = Box<dyn Fn(Duration) -> Frame>;
    let mut strips: Vec<(String, FrameAt)> = Vec::new();
    let healthy = RackView {
        leader_known: true,
        quorum: true,
        ..RackView::default()
    };
    let lamp = Panel::new(Instant::from_millis(0), NodeId(0));
    strips.push((
        "lamp test, then healthy".into(),
        Box::new(move |d| lamp.show(&healthy, Instant::from_millis(0) + d).frame),
    ));
    let mut number = Panel::new(Instant::from_millis(0), NodeId(2));
    number.blink_number(Instant::from_millis(0) + LAMP_TEST);
    strips.push((
        "node number 3 (short press)".into(),
        Box::new(move |d| {
            number
                .show(&healthy, Instant::from_millis(0) + LAMP_TEST + d)
                .frame
        }),
    ));
    for (name, p) in documented_states() {
        strips.push((name.into(), Box::new(move |d| p.frame(d))));
    }
    let width = LABEL_W + SPAN_MS / STEP_MS * PX_PER_STEP + 10;
    let strip_h = ROW * 3 + 10;
    let height = strips.len() as u64 * strip_h + 30;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    let _ = writeln!(
        s,
        "<rect width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>"
    );
    for sec in 0..=SPAN_MS / 1000 {
        let x = LABEL_W + sec * 1000 / STEP_MS * PX_PER_STEP;
        let _ = writeln!(
            s,
            "<line x1=\"{x}\" y1=\"0\" x2=\"{x}\" y2=\"{}\" stroke=\"#cccccc\"/><text x=\"{}\" y=\"{}\" fill=\"#555555\">{sec} s</text>",
            height - 20,
            x + 2,
            height - 6
        );
    }
    for (i, (name, frame_at)) in strips.iter().enumerate() {
        let y0 = i as u64 * strip_h + 4;
        let _ = writeln!(s, "<text x=\"4\" y=\"{}\">{name}</text>", y0 + ROW * 2 - 2);
        for (row, colour) in colours.iter().enumerate() {
            let y = y0 + row as u64 * ROW;
            let _ = writeln!(
                s,
                "<rect x=\"{LABEL_W}\" y=\"{y}\" width=\"{}\" height=\"{}\" fill=\"#222222\"/>",
                SPAN_MS / STEP_MS * PX_PER_STEP,
                ROW - 2
            );
            // Runs of lit steps become one rectangle each.
            let mut run: Option<u64> = None;
            for step in 0..=SPAN_MS / STEP_MS {
                let lit = step < SPAN_MS / STEP_MS && {
                    let f = frame_at(Duration::from_millis(step * STEP_MS));
                    [f.green, f.amber, f.red][row]
                };
                match (lit, run) {
                    (true, None) => run = Some(step),
                    (false, Some(from)) => {
                        let _ = writeln!(
                            s,
                            "<rect x=\"{}\" y=\"{y}\" width=\"{}\" height=\"{}\" fill=\"{colour}\"/>",
                            LABEL_W + from * PX_PER_STEP,
                            (step - from) * PX_PER_STEP,
                            ROW - 2
                        );
                        run = None;
                    }
                    _ => {}
                }
            }
        }
    }
    s.push_str("</svg>\n");
    s
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
