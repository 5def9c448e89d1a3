//! The simulator's own tests, with small machines written here: a recorder (logs every input),
//! a heartbeat failure detector and a token ring for speed.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use super::*;
use crate::core::{Instant, Machine, NodeId, Transmit};

const MS: Duration = Duration::from_millis(1);

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

// ---- a recorder: sends Data(seq) to every peer each `period`, logs what it receives ----------

#[derive(Debug, Clone, PartialEq, Eq)]
struct Data {
    seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum RecEvent {
    Fired,
    Got { from: NodeId, seq: u64 },
}

struct Recorder {
    id: NodeId,
    n: u16,
    seed: u64,
    period: Option<Duration>,
    next: Option<Instant>,
    seq: u64,
    /// (local time, from, seq) of every message received.
    log: Vec<(Instant, NodeId, u64)>,
    timeouts: Vec<Instant>,
    out: VecDeque<Transmit<Data>>,
    events: VecDeque<RecEvent>,
    only_to: Option<NodeId>,
}

impl Recorder {
    fn new(id: NodeId, n: u16, seed: u64, now: Instant, period: Option<Duration>) -> Self {
        Recorder {
            id,
            n,
            seed,
            period,
            next: period.map(|p| now + p),
            seq: 0,
            log: Vec::new(),
            timeouts: Vec::new(),
            out: VecDeque::new(),
            events: VecDeque::new(),
            only_to: None,
        }
    }
}

impl Machine for Recorder {
    type Msg = Data;
    type Event = RecEvent;

    fn id(&self) -> NodeId {
        self.id
    }
    fn handle_message(&mut self, now: Instant, from: NodeId, msg: Data) {
        self.log.push((now, from, msg.seq));
        self.events.push_back(RecEvent::Got { from, seq: msg.seq });
    }
    fn handle_timeout(&mut self, now: Instant) {
        let Some(next) = self.next else { return };
        if now < next {
            return;
        }
        self.timeouts.push(now);
        self.events.push_back(RecEvent::Fired);
        for to in (0..self.n).map(NodeId).filter(|t| *t != self.id) {
            if self.only_to.is_none_or(|o| o == to) {
                self.seq += 1;
                self.out.push_back(Transmit {
                    to,
                    msg: Data { seq: self.seq },
                });
            }
        }
        self.next = self.period.map(|p| now + p);
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }
    fn poll_transmit(&mut self) -> Option<Transmit<Data>> {
        self.out.pop_front()
    }
    fn poll_event(&mut self) -> Option<RecEvent> {
        self.events.pop_front()
    }
}

fn recorders(cfg: SimConfig, period: Option<Duration>) -> Sim<Recorder> {
    let n = cfg.nodes;
    Sim::new(cfg, move |id, seed, now| {
        Recorder::new(id, n, seed, now, period)
    })
}

// ---- a heartbeat failure detector ---------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
struct Heartbeat;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Fd {
    Down(NodeId),
    Up(NodeId),
}

struct Detector {
    id: NodeId,
    n: u16,
    interval: Duration,
    timeout: Duration,
    next_beat: Instant,
    last_heard: Vec<Instant>,
    down: Vec<bool>,
    out: VecDeque<Transmit<Heartbeat>>,
    events: VecDeque<Fd>,
}

impl Detector {
    fn new(id: NodeId, n: u16, now: Instant) -> Self {
        Detector {
            id,
            n,
            interval: ms(100),
            timeout: ms(500),
            next_beat: now,
            last_heard: vec![now; usize::from(n)],
            down: vec![false; usize::from(n)],
            out: VecDeque::new(),
            events: VecDeque::new(),
        }
    }
}

impl Machine for Detector {
    type Msg = Heartbeat;
    type Event = Fd;
    fn id(&self) -> NodeId {
        self.id
    }
    fn handle_message(&mut self, now: Instant, from: NodeId, _: Heartbeat) {
        let i = usize::from(from.0);
        self.last_heard[i] = now;
        if self.down[i] {
            self.down[i] = false;
            self.events.push_back(Fd::Up(from));
        }
    }
    fn handle_timeout(&mut self, now: Instant) {
        if now >= self.next_beat {
            for to in (0..self.n).map(NodeId).filter(|t| *t != self.id) {
                self.out.push_back(Transmit { to, msg: Heartbeat });
            }
            self.next_beat = now + self.interval;
        }
        for p in (0..self.n).filter(|p| *p != self.id.0) {
            let i = usize::from(p);
            if !self.down[i] && now >= self.last_heard[i] + self.timeout {
                self.down[i] = true;
                self.events.push_back(Fd::Down(NodeId(p)));
            }
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.next_beat;
        for p in (0..self.n).filter(|p| *p != self.id.0) {
            let i = usize::from(p);
            if !self.down[i] {
                t = t.min(self.last_heard[i] + self.timeout);
            }
        }
        Some(t)
    }
    fn poll_transmit(&mut self) -> Option<Transmit<Heartbeat>> {
        self.out.pop_front()
    }
    fn poll_event(&mut self) -> Option<Fd> {
        self.events.pop_front()
    }
}

fn harsh_run(seed: u64) -> SimReport {
    let profile = FaultProfile {
        crash_every: Some(Duration::from_secs(10)),
        ..FaultProfile::harsh()
    };
    let schedule = Schedule::generate(seed, &profile, Duration::from_secs(30), 5);
    let mut sim = Sim::new(
        SimConfig::new(seed, 5).with_profile(&profile),
        |id, _, now| Detector::new(id, 5, now),
    )
    .with_schedule(&schedule);
    sim.run_until(SimTime::from_secs(30)).unwrap();
    sim.report()
}

#[test]
fn same_seed_same_report_and_different_seeds_differ() {
    let a = harsh_run(42);
    let b = harsh_run(42);
    assert_eq!(a, b);
    assert!(
        a.stats.delivered > 1_000 && a.stats.dropped > 0 && a.stats.faults > 0,
        "{a}"
    );
    let c = harsh_run(43);
    assert_ne!(a.trace_hash, c.trace_hash);
}

#[test]
fn loss_one_delivers_nothing_and_loss_zero_everything() {
    let mut cfg = SimConfig::new(1, 4);
    cfg.link.loss = 1.0;
    let mut sim = recorders(cfg, Some(ms(10)));
    sim.run_until(SimTime::from_secs(2)).unwrap();
    let s = sim.stats();
    assert!(s.nodes[0].msgs_sent > 500);
    assert_eq!(s.delivered, 0);
    assert_eq!(
        s.nodes.iter().map(|n| n.dropped_loss).sum::<u64>(),
        s.dropped
    );

    let mut cfg = SimConfig::new(1, 4);
    cfg.link.jitter = ms(30);
    let mut sim = recorders(cfg, Some(ms(10)));
    sim.run_until(SimTime::from_secs(2)).unwrap();
    for id in (0..4).map(NodeId) {
        sim.node_mut(id).unwrap().period = None; // stop sending, let the network drain
        sim.node_mut(id).unwrap().next = None;
    }
    sim.run_for(Duration::from_secs(1)).unwrap();
    let s = sim.stats();
    let sent: u64 = s.nodes.iter().map(|n| n.msgs_sent).sum();
    assert!(sent > 2_000);
    assert_eq!(s.delivered, sent);
    assert_eq!(s.dropped, 0);
}

#[test]
fn a_blocked_directed_link_drops_only_that_direction() {
    let mut sim = recorders(SimConfig::new(3, 3), Some(ms(10)));
    let pid = sim.partition(&PartitionKind::OneWay {
        from: vec![NodeId(0)],
        to: vec![NodeId(1)],
    });
    assert!(sim.is_blocked(NodeId(0), NodeId(1)) && !sim.is_blocked(NodeId(1), NodeId(0)));
    sim.run_until(SimTime::from_secs(1)).unwrap();
    let from = |sim: &Sim<Recorder>, to: u16, from: u16| {
        sim.node(NodeId(to))
            .unwrap()
            .log
            .iter()
            .filter(|(_, f, _)| f.0 == from)
            .count()
    };
    assert_eq!(from(&sim, 1, 0), 0);
    assert!(from(&sim, 0, 1) > 90);
    assert!(from(&sim, 1, 2) > 90 && from(&sim, 2, 0) > 90);
    assert!(sim.stats().nodes[0].dropped_partition > 90);
    sim.heal(pid);
    sim.run_for(Duration::from_secs(1)).unwrap();
    assert!(from(&sim, 1, 0) > 90);
}

#[test]
fn a_paused_node_processes_nothing_then_gets_its_queue_in_order() {
    let mut cfg = SimConfig::new(4, 3);
    cfg.link.jitter = Duration::ZERO; // keep sends in order, to check the queue keeps them so
    cfg.record_events = true;
    let mut sim = recorders(cfg, Some(ms(100)));
    sim.run_until(SimTime::from_secs(1)).unwrap();
    sim.pause(NodeId(1), Duration::from_secs(5));
    assert_eq!(sim.status(NodeId(1)), Some(NodeStatus::Paused));
    let before = sim.node(NodeId(1)).unwrap().log.len();
    let timeouts_before = sim.node(NodeId(1)).unwrap().timeouts.len();
    sim.run_until(SimTime::from_millis(5_999)).unwrap();
    let n1 = sim.node(NodeId(1)).unwrap();
    assert_eq!(n1.log.len(), before);
    assert_eq!(n1.timeouts.len(), timeouts_before);
    let local_resume = sim
        .clock_params(NodeId(1))
        .unwrap()
        .local(SimTime::from_secs(6));
    sim.run_until(SimTime::from_secs(6)).unwrap();
    let n1 = sim.node(NodeId(1)).unwrap();
    let queued: Vec<_> = n1.log[before..].to_vec();
    assert!(queued.len() >= 98, "{} queued", queued.len()); // 2 senders x ~50 ticks
    assert!(queued.iter().all(|(t, _, _)| *t == local_resume));
    for from in [NodeId(0), NodeId(2)] {
        let seqs: Vec<u64> = queued.iter().filter(|q| q.1 == from).map(|q| q.2).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    }
    // the overdue timeout fired at the resume instant too, after the queued messages
    assert_eq!(n1.timeouts.len(), timeouts_before + 1);
    assert_eq!(n1.timeouts.last(), Some(&local_resume));
    let last = sim.event_log().last().unwrap();
    assert_eq!(
        (last.0, last.2.clone()),
        (SimTime::from_secs(6), RecEvent::Fired)
    );
}

#[test]
fn one_percent_fast_clock_fires_a_one_second_timer_at_0_990_real() {
    let mut cfg = SimConfig::new(5, 2);
    cfg.clocks.insert(
        NodeId(0),
        NodeClock {
            offset_us: 77_000_000,
            drift_ppm: 10_000,
        },
    );
    cfg.clocks.insert(
        NodeId(1),
        NodeClock {
            offset_us: 5,
            drift_ppm: -10_000,
        },
    );
    cfg.record_events = true;
    let mut sim = recorders(cfg, Some(Duration::from_secs(1)));
    sim.run_until(SimTime::from_millis(1_500)).unwrap();
    let fired: Vec<_> = sim
        .event_log()
        .iter()
        .filter(|e| e.2 == RecEvent::Fired)
        .map(|e| (e.0, e.1))
        .collect();
    assert_eq!(fired[0], (SimTime(990_100), NodeId(0)));
    assert_eq!(fired[1..], [(SimTime(1_010_102), NodeId(1))]); // 1 % slow: 1 s local = 1.0101 s
    let n0 = sim.node(NodeId(0)).unwrap();
    // never before its local deadline; a fast clock moves 1.01 µs per real µs, so it may pass it
    assert_eq!(n0.timeouts[0], Instant(78_000_001));
    assert_eq!(sim.clock(NodeId(0)), Some(Instant(77_000_000 + 1_515_000)));
    assert_eq!(sim.clock(NodeId(1)), Some(Instant(5 + 1_485_000)));
}

#[test]
fn drift_is_drawn_within_the_bound_per_node() {
    let mut cfg = SimConfig::new(6, 50);
    cfg.drift_bound_ppm = 10_000;
    let sim = recorders(cfg, None);
    let drifts: Vec<i32> = (0..50)
        .map(|i| sim.clock_params(NodeId(i)).unwrap().drift_ppm)
        .collect();
    assert!(drifts.iter().all(|d| d.abs() <= 10_000));
    assert!(drifts.iter().any(|d| *d > 5_000) && drifts.iter().any(|d| *d < -5_000));
}

#[test]
fn crash_loses_state_and_restart_uses_the_factory_with_a_new_seed() {
    let calls = Rc::new(RefCell::new(Vec::new()));
    let c = calls.clone();
    let mut sim = Sim::new(SimConfig::new(7, 3), move |id, seed, now| {
        c.borrow_mut().push((id, seed, now));
        Recorder::new(id, 3, seed, now, Some(ms(10)))
    });
    sim.run_until(SimTime::from_secs(1)).unwrap();
    assert!(sim.node(NodeId(2)).unwrap().log.len() > 100);
    let first_seed = sim.node(NodeId(2)).unwrap().seed;
    sim.crash(NodeId(2));
    assert!(sim.node(NodeId(2)).is_none());
    sim.run_until(SimTime::from_secs(2)).unwrap();
    assert!(sim.stats().nodes[2].dropped_at_receiver > 100);
    sim.restart(NodeId(2));
    let n2 = sim.node(NodeId(2)).unwrap();
    assert!(n2.log.is_empty());
    assert_ne!(n2.seed, first_seed);
    let calls = calls.borrow();
    assert_eq!(calls.len(), 4);
    assert_eq!(calls[3].0, NodeId(2));
    assert_eq!(calls[3].2, sim.clock(NodeId(2)).unwrap());
    sim.run_for(Duration::from_secs(1)).unwrap();
    assert!(sim.node(NodeId(2)).unwrap().log.len() > 100);
    assert_eq!(sim.stats().nodes[2].restarts, 1);
}

#[test]
fn duplication_and_reordering_happen_at_the_configured_rates() {
    let mut cfg = SimConfig::new(8, 2);
    cfg.link = LinkConfig {
        duplicate: 0.1,
        jitter: ms(5),
        delay: MS,
        ..LinkConfig::default()
    };
    let mut sim = recorders(cfg, Some(ms(2)));
    sim.node_mut(NodeId(1)).unwrap().next = None; // only n0 sends
    sim.run_until(SimTime::from_secs(20)).unwrap();
    let sent = sim.stats().nodes[0].msgs_sent;
    let log = &sim.node(NodeId(1)).unwrap().log;
    let dups = log.len() as u64 - sent + 3; // at most a few still in flight
    let rate = dups as f64 / sent as f64;
    assert!((0.09..0.11).contains(&rate), "duplicate rate {rate}");
    let mut seen = std::collections::BTreeSet::new();
    let mut reordered = 0;
    let mut max = 0;
    for (_, _, seq) in log {
        if seen.insert(*seq) {
            if *seq < max {
                reordered += 1;
            }
            max = max.max(*seq);
        }
    }
    // 2 ms apart, uniform 0..5 ms jitter: a datagram arrives before an earlier one when the
    // earlier one's jitter exceeds its own by more than 2 ms (p = 0.18) or 4 ms (p = 0.02)
    let r = reordered as f64 / sent as f64;
    assert!((0.17..0.21).contains(&r), "reorder rate {r}");
}

#[test]
fn a_failing_invariant_stops_the_run_with_seed_and_replay() {
    let cfg = SimConfig::new(99, 3).with_replay("mooseherd sim --seed {seed} --nodes 3");
    let mut sim = recorders(cfg, Some(ms(10)));
    sim.add_invariant(
        "fewer than 50 messages at n1",
        |v: &SimView<'_, Recorder>| {
            let n = v
                .node(NodeId(1))
                .and_then(|n| n.machine)
                .map_or(0, |m| m.log.len());
            if n >= 50 {
                Err(v.violation(format!("n1 got {n} messages")))
            } else {
                Ok(())
            }
        },
    );
    let err = sim.run_until(SimTime::from_secs(10)).unwrap_err();
    assert_eq!(err.what, "n1 got 50 messages");
    assert!(sim.now() < SimTime::from_secs(1));
    assert_eq!(err.at, sim.now());
    let r = sim.report();
    assert_eq!(r.seed, 99);
    assert_eq!(r.replay, "mooseherd sim --seed 99 --nodes 3");
    assert_eq!(r.violations, vec![err.clone()]);
    let text = r.to_string();
    assert!(
        text.contains("VIOLATION") && text.contains("replay: mooseherd sim --seed 99 --nodes 3"),
        "{text}"
    );
    assert!(err.to_string().contains("--seed 99"));
    // stays stopped
    assert_eq!(sim.run_until(SimTime::from_secs(20)), Err(err));
}

#[test]
fn schedules_print_the_same_way_twice_and_streams_are_independent() {
    let p = FaultProfile {
        crash_every: Some(Duration::from_secs(20)),
        partition_every: Some(Duration::from_secs(10)),
        ..FaultProfile::harsh()
    };
    let a = Schedule::generate(5, &p, Duration::from_secs(120), 5).to_string();
    let b = Schedule::generate(5, &p, Duration::from_secs(120), 5).to_string();
    assert_eq!(a, b);
    assert!(
        a.contains("crash n")
            && a.contains("restart n")
            && a.contains("pause n")
            && a.contains("partition ")
    );
    assert_ne!(
        a,
        Schedule::generate(6, &p, Duration::from_secs(120), 5).to_string()
    );
    // turning pauses off leaves crashes and partitions where they were
    let no_pause = FaultProfile {
        pause_every: None,
        ..p
    };
    let c = Schedule::generate(5, &no_pause, Duration::from_secs(120), 5).to_string();
    let without_pauses: Vec<&str> = a.lines().filter(|l| !l.contains(" pause ")).collect();
    assert_eq!(c.lines().collect::<Vec<_>>(), without_pauses);
    let line = Schedule::new()
        .at(
            SimTime::from_millis(1_500),
            Fault::Pause {
                node: NodeId(2),
                dur: ms(250),
            },
        )
        .to_string();
    assert_eq!(line, "     1.500000s pause n2 for 0.250000s\n");
}

#[test]
fn heartbeat_detector_sees_an_isolated_node_and_its_return() {
    let mut cfg = SimConfig::new(10, 4);
    cfg.record_events = true;
    let schedule = Schedule::new().at(
        SimTime::from_secs(2),
        Fault::Partition {
            kind: PartitionKind::Isolate(NodeId(3)),
            dur: Duration::from_secs(3),
        },
    );
    let detect = Rc::new(RefCell::new(Vec::new()));
    let d = detect.clone();
    let mut sim = Sim::new(cfg, |id, _, now| Detector::new(id, 4, now)).with_schedule(&schedule);
    sim.add_invariant(
        "observer: detection times",
        move |v: &SimView<'_, Detector>| {
            for (node, e) in v.events() {
                if *e == Fd::Down(NodeId(3)) {
                    d.borrow_mut().push((*node, v.now()));
                }
            }
            Ok(())
        },
    );
    sim.run_until(SimTime::from_secs(8)).unwrap();
    let detect = detect.borrow();
    assert_eq!(detect.len(), 3, "{detect:?}");
    for (_, at) in detect.iter() {
        let after = at.saturating_since(SimTime::from_secs(2));
        assert!(after >= ms(400) && after <= ms(600), "{after:?}");
    }
    let ups = sim
        .event_log()
        .iter()
        .filter(|e| e.2 == Fd::Up(NodeId(3)))
        .count();
    assert_eq!(ups, 3);
    assert!(
        sim.event_log()
            .iter()
            .all(|e| e.0 < SimTime::from_millis(5_600) || e.0 < SimTime::from_secs(2))
    );
}

#[test]
fn flapping_partition_toggles_and_ends_healed() {
    let mut sim = recorders(SimConfig::new(11, 3), None);
    let schedule = Schedule::new().at(
        SimTime::from_secs(1),
        Fault::Flap {
            kind: PartitionKind::Isolate(NodeId(0)),
            period: ms(100),
            dur: ms(450),
        },
    );
    sim.add_schedule(&schedule);
    let mut states = Vec::new();
    for t in [1_050, 1_150, 1_250, 1_350, 1_420, 1_500] {
        sim.run_until(SimTime::from_millis(t)).unwrap();
        states.push(sim.is_blocked(NodeId(0), NodeId(1)));
    }
    assert_eq!(states, vec![true, false, true, false, true, false]);
}

#[test]
fn actions_run_at_their_time_and_wait_for_a_paused_node() {
    let mut sim = recorders(SimConfig::new(12, 2), None);
    sim.at(SimTime::from_secs(1), NodeId(0), |m, now| {
        m.next = Some(now);
        m.only_to = Some(NodeId(1));
    });
    sim.pause(NodeId(1), Duration::from_secs(3));
    sim.at(SimTime::from_secs(2), NodeId(1), |m, _| m.seq = 1_000);
    sim.at_sim(SimTime::from_millis(2_500), |s| s.crash(NodeId(0)));
    sim.run_until(SimTime::from_millis(2_999)).unwrap();
    assert_eq!(sim.node(NodeId(1)).unwrap().seq, 0);
    assert_eq!(sim.status(NodeId(0)), Some(NodeStatus::Down));
    sim.run_until(SimTime::from_secs(3)).unwrap();
    let n1 = sim.node(NodeId(1)).unwrap();
    assert_eq!(n1.seq, 1_000);
    assert_eq!(n1.log.len(), 1);
}

#[test]
fn overlapping_faults_are_no_ops_not_panics() {
    let s = Schedule::new()
        .at(
            SimTime::from_millis(10),
            Fault::Pause {
                node: NodeId(0),
                dur: ms(100),
            },
        )
        .at(SimTime::from_millis(20), Fault::Crash(NodeId(0)))
        .at(SimTime::from_millis(30), Fault::Crash(NodeId(0)))
        .at(
            SimTime::from_millis(40),
            Fault::Pause {
                node: NodeId(0),
                dur: ms(10),
            },
        )
        .at(SimTime::from_millis(50), Fault::Restart(NodeId(0)))
        .at(SimTime::from_millis(60), Fault::Restart(NodeId(0)))
        .at(SimTime::from_millis(70), Fault::Crash(NodeId(9)));
    let mut sim = recorders(SimConfig::new(13, 2), Some(ms(5))).with_schedule(&s);
    sim.run_until(SimTime::from_millis(200)).unwrap();
    assert_eq!(sim.status(NodeId(0)), Some(NodeStatus::Up));
    assert_eq!(sim.stats().faults_ignored, 4);
}

#[test]
fn a_timer_livelock_is_reported_not_hung() {
    struct Stuck(NodeId);
    impl Machine for Stuck {
        type Msg = ();
        type Event = ();
        fn id(&self) -> NodeId {
            self.0
        }
        fn handle_message(&mut self, _: Instant, _: NodeId, _: ()) {}
        fn handle_timeout(&mut self, _: Instant) {}
        fn poll_timeout(&self) -> Option<Instant> {
            Some(Instant::ZERO)
        }
        fn poll_transmit(&mut self) -> Option<Transmit<()>> {
            None
        }
        fn poll_event(&mut self) -> Option<()> {
            None
        }
    }
    let mut cfg = SimConfig::new(14, 1);
    cfg.max_steps_per_instant = 1_000;
    let mut sim = Sim::new(cfg, |id, _, _| Stuck(id));
    let err = sim.run_until(SimTime::from_secs(1)).unwrap_err();
    assert!(err.what.contains("livelock"));
}

// ---- speed -----------------------------------------------------------------------------------

/// A token ring: every message received is passed to the next node.
struct Ring {
    id: NodeId,
    n: u16,
    start_tokens: u64,
    out: VecDeque<Transmit<u64>>,
}

impl Machine for Ring {
    type Msg = u64;
    type Event = ();
    fn id(&self) -> NodeId {
        self.id
    }
    fn handle_message(&mut self, _: Instant, _: NodeId, msg: u64) {
        self.out.push_back(Transmit {
            to: NodeId((self.id.0 + 1) % self.n),
            msg: msg + 1,
        });
    }
    fn handle_timeout(&mut self, _: Instant) {}
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn poll_transmit(&mut self) -> Option<Transmit<u64>> {
        if self.start_tokens > 0 {
            self.start_tokens -= 1;
            return Some(Transmit {
                to: NodeId((self.id.0 + 1) % self.n),
                msg: 0,
            });
        }
        self.out.pop_front()
    }
    fn poll_event(&mut self) -> Option<()> {
        None
    }
}

fn ring(seed: u64, n: u16, tokens: u64) -> Sim<Ring> {
    let mut cfg = SimConfig::new(seed, n);
    cfg.link.jitter = ms(1);
    Sim::new(cfg, move |id, _, _| Ring {
        id,
        n,
        start_tokens: tokens,
        out: VecDeque::new(),
    })
    .with_msg_size(|_| 40)
}

#[test]
fn ring_is_deterministic() {
    let run = || {
        let mut s = ring(3, 10, 10);
        s.run_until(SimTime::from_millis(200)).unwrap();
        s.report()
    };
    let a = run();
    assert!(a.stats.delivered > 10_000);
    assert_eq!(a, run());
}

/// `cargo test --release --lib sim::tests::speed -- --ignored --nocapture`
#[test]
#[ignore]
fn speed() {
    let cases = [
        (
            "10 nodes, 1k in flight, Debug trace hash",
            10,
            100,
            false,
            20,
        ),
        (
            "10 nodes, 1k in flight, u64 trace hasher",
            10,
            100,
            true,
            20,
        ),
        (
            "50 nodes, 10k in flight, u64 trace hasher",
            50,
            200,
            true,
            2,
        ),
    ];
    for (label, n, tokens, custom, secs) in cases {
        let mut sim = ring(1, n, tokens);
        if custom {
            sim = sim.with_msg_hasher(|m, h| h.u64(*m));
        }
        let start = std::time::Instant::now();
        sim.run_until(SimTime::from_secs(secs)).unwrap();
        let wall = start.elapsed();
        let d = sim.stats().delivered;
        println!(
            "{label}: {d} delivered in {wall:.2?} = {:.2} M msg/s (queue max {})",
            d as f64 / wall.as_secs_f64() / 1e6,
            sim.stats().max_queue
        );
    }
}

#[test]
fn state_saved_after_each_call_survives_a_crash_through_the_factory() {
    // the "disk": the highest seq each node has seen, written after every call
    let disk = Rc::new(RefCell::new(
        std::collections::BTreeMap::<NodeId, u64>::new(),
    ));
    let (w, r) = (disk.clone(), disk.clone());
    let mut sim = Sim::new(SimConfig::new(16, 2), move |id, seed, now| {
        let mut m = Recorder::new(id, 2, seed, now, Some(ms(10)));
        m.seq = r.borrow().get(&id).copied().unwrap_or(0);
        m
    })
    .with_after_call(move |id, m: &Recorder| {
        w.borrow_mut().insert(id, m.seq);
    });
    sim.run_until(SimTime::from_secs(1)).unwrap();
    let before = sim.node(NodeId(0)).unwrap().seq;
    assert!(before >= 99);
    sim.crash(NodeId(0));
    sim.restart(NodeId(0));
    assert_eq!(sim.node(NodeId(0)).unwrap().seq, before);
}

#[test]
fn checkpoints_only_mode_sees_every_event_since_the_last_check() {
    let mut cfg = SimConfig::new(15, 3);
    cfg.check_each_step = false;
    cfg.check_every = Some(ms(100));
    let seen = Rc::new(RefCell::new((0usize, 0usize)));
    let s = seen.clone();
    let mut sim = recorders(cfg, Some(ms(10))).with_invariant(
        "observer",
        move |v: &SimView<'_, Recorder>| {
            let mut s = s.borrow_mut();
            s.0 += 1;
            s.1 += v.events().len();
            Ok(())
        },
    );
    sim.run_until(SimTime::from_secs(1)).unwrap();
    let (checks, events) = *seen.borrow();
    assert!((10..=12).contains(&checks), "{checks} checks");
    assert_eq!(events as u64, sim.stats().events);
}
