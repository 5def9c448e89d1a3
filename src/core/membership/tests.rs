//! Whole-rack tests with a tiny in-test driver: N machines, one message queue ordered by
//! delivery time, seeded loss, fixed delay plus optional jitter, explicit time. (The project's
//! real simulator lives in `sim/`; this one only exists so membership can be tested alone.)

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use super::*;
use crate::core::{Instant, Machine, NodeId};

const FRAME: u64 = 56;
const BUDGET: usize = 1300;

struct Net {
    nodes: Vec<Membership>,
    cfg: MembershipConfig,
    seed: u64,
    now: Instant,
    rng: ChaCha8Rng,
    /// Loss probability in parts per million.
    loss_ppm: u64,
    delay: Duration,
    jitter: Duration,
    /// Crashed or paused: receives nothing, sends nothing, runs no timers.
    stopped: Vec<bool>,
    /// (deliver at, order) -> (from, to, message bytes)
    inflight: BTreeMap<(Instant, u64), (NodeId, NodeId, Vec<u8>)>,
    order: u64,
    wake: BTreeSet<(Instant, u16)>,
    wake_at: Vec<Option<Instant>>,
    events: Vec<(Instant, NodeId, MemberEvent)>,
    bytes_sent: Vec<u64>,
    max_msg: usize,
    restarts: u64,
}

fn ids(n: usize) -> Vec<NodeId> {
    (0..n).map(|i| NodeId(i as u16)).collect()
}

impl Net {
    fn new(n: usize, seed: u64) -> Self {
        Self::with_config(n, seed, MembershipConfig::for_rack(n))
    }

    fn with_config(n: usize, seed: u64, cfg: MembershipConfig) -> Self {
        let all = ids(n);
        let nodes = all
            .iter()
            .map(|&id| Membership::new(id, &all, cfg.clone(), seed, Instant::ZERO))
            .collect();
        let mut net = Net {
            nodes,
            cfg,
            seed,
            now: Instant::ZERO,
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0xD1CE),
            loss_ppm: 0,
            delay: Duration::from_micros(500),
            jitter: Duration::ZERO,
            stopped: vec![false; n],
            inflight: BTreeMap::new(),
            order: 0,
            wake: BTreeSet::new(),
            wake_at: vec![None; n],
            events: Vec::new(),
            bytes_sent: vec![0; n],
            max_msg: 0,
            restarts: 0,
        };
        for i in 0..n {
            net.flush(i);
        }
        net
    }

    fn loss(mut self, fraction: f64) -> Self {
        self.loss_ppm = (fraction * 1e6) as u64;
        self
    }

    fn jitter(mut self, j: Duration) -> Self {
        self.jitter = j;
        self
    }

    fn at(secs: f64) -> Instant {
        Instant::from_micros((secs * 1e6) as u64)
    }

    fn flush(&mut self, i: usize) {
        let from = NodeId(i as u16);
        while let Some(tx) = self.nodes[i].poll_transmit() {
            let bytes = tx.msg.to_bytes().expect("encodes");
            assert_eq!(bytes.len(), tx.msg.encoded_len());
            assert!(
                bytes.len() <= BUDGET,
                "{} bytes: {:?}",
                bytes.len(),
                tx.msg.kind()
            );
            self.max_msg = self.max_msg.max(bytes.len());
            self.bytes_sent[i] += bytes.len() as u64 + FRAME;
            if self.rng.next_u64() % 1_000_000 < self.loss_ppm {
                continue;
            }
            let mut at = self.now + self.delay;
            let j = self.jitter.as_micros() as u64;
            if j > 0 {
                at += Duration::from_micros(self.rng.next_u64() % j);
            }
            self.order += 1;
            self.inflight.insert((at, self.order), (from, tx.to, bytes));
        }
        while let Some(ev) = self.nodes[i].poll_event() {
            self.events.push((self.now, from, ev));
        }
        if let Some(old) = self.wake_at[i].take() {
            self.wake.remove(&(old, i as u16));
        }
        if !self.stopped[i]
            && let Some(t) = self.nodes[i].poll_timeout()
        {
            let t = t.max(self.now);
            self.wake_at[i] = Some(t);
            self.wake.insert((t, i as u16));
        }
    }

    fn run_until(&mut self, end: Instant) {
        for _ in 0..50_000_000u64 {
            let next_msg = self.inflight.first_key_value().map(|(k, _)| k.0);
            let next_wake = self.wake.first().map(|(t, _)| *t);
            let t = match (next_msg, next_wake) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => end,
            };
            if t > end {
                self.now = end;
                return;
            }
            self.now = t;
            if next_msg == Some(t) {
                let Some((_, (from, to, bytes))) = self.inflight.pop_first() else {
                    unreachable!()
                };
                let (f, i) = (from.0 as usize, to.0 as usize);
                if self.stopped[i] || self.stopped[f] {
                    continue;
                }
                let msg = GossipMsg::from_bytes(&bytes).expect("decodes");
                self.nodes[i].handle_message(t, from, msg);
                self.flush(i);
            } else {
                let Some((_, i)) = self.wake.pop_first() else {
                    unreachable!()
                };
                let i = i as usize;
                self.wake_at[i] = None;
                self.nodes[i].handle_timeout(t);
                self.flush(i);
            }
            if t == end {
                return;
            }
        }
        panic!("driver loop bound hit");
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        self.run_until(end);
    }

    fn stop(&mut self, i: usize) {
        self.stopped[i] = true;
        if let Some(old) = self.wake_at[i].take() {
            self.wake.remove(&(old, i as u16));
        }
    }

    fn resume(&mut self, i: usize) {
        self.stopped[i] = false;
        self.flush(i);
    }

    fn restart(&mut self, i: usize) {
        self.restarts += 1;
        let all = ids(self.nodes.len());
        let seed = self.seed.wrapping_add(1000 * self.restarts);
        self.nodes[i] = Membership::new(NodeId(i as u16), &all, self.cfg.clone(), seed, self.now);
        self.stopped[i] = false;
        self.flush(i);
    }

    fn live(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.nodes.len()).filter(|&i| !self.stopped[i])
    }

    fn state(&self, at: usize, of: usize) -> MemberState {
        self.nodes[at]
            .member(NodeId(of as u16))
            .expect("member")
            .state
    }

    /// When `observer` first reported `ev` at or after `since`.
    fn first_event(&self, observer: usize, ev: MemberEvent, since: Instant) -> Option<Instant> {
        self.events
            .iter()
            .find(|(t, n, e)| *t >= since && n.0 as usize == observer && *e == ev)
            .map(|(t, _, _)| *t)
    }

    fn count(&self, pred: impl Fn(&MemberEvent) -> bool) -> usize {
        self.events.iter().filter(|(_, _, e)| pred(e)).count()
    }
}

#[test]
fn five_nodes_converge_to_all_alive() {
    let mut net = Net::new(5, 1);
    net.run_until(Net::at(3.0));
    for i in 0..5 {
        for j in 0..5 {
            assert_eq!(net.state(i, j), MemberState::Alive);
            if i != j {
                assert!(
                    net.first_event(i, MemberEvent::Up(NodeId(j as u16)), Instant::ZERO)
                        .is_some()
                );
            }
        }
        assert_eq!(net.nodes[i].local_health(), 0);
    }
    assert_eq!(net.count(|e| !matches!(e, MemberEvent::Up(_))), 0);
    // Each Up exactly once.
    assert_eq!(net.count(|e| matches!(e, MemberEvent::Up(_))), 20);
}

#[test]
fn crashed_node_is_marked_down_by_all_within_bound() {
    for seed in 0..5 {
        let mut net = Net::new(5, seed);
        net.run_until(Net::at(2.0));
        let crash = Net::at(2.0);
        net.stop(3);
        net.run_for(Duration::from_secs(6));
        let mut worst = Duration::ZERO;
        for i in net.live().collect::<Vec<_>>() {
            let t = net
                .first_event(i, MemberEvent::Down(NodeId(3)), crash)
                .unwrap_or_else(|| panic!("seed {seed}: n{i} never marked n3 down"));
            worst = worst.max(t.saturating_since(crash));
            assert_eq!(net.state(i, 3), MemberState::Down);
        }
        assert!(
            worst < Duration::from_secs(4),
            "seed {seed}: detection took {worst:?}"
        );
        // Nobody else was suspected.
        assert_eq!(
            net.count(|e| matches!(e, MemberEvent::Down(n) | MemberEvent::Suspect(n) if n.0 != 3)),
            0
        );
    }
}

#[test]
fn paused_node_refutes_and_is_alive_again() {
    let mut net = Net::new(5, 7);
    net.run_until(Net::at(2.0));
    net.stop(1);
    net.run_for(Duration::from_secs(6));
    for i in net.live().collect::<Vec<_>>() {
        assert_eq!(net.state(i, 1), MemberState::Down);
    }
    let resumed = net.now;
    net.resume(1);
    net.run_for(Duration::from_secs(3));
    for i in 0..5 {
        assert_eq!(net.state(i, 1), MemberState::Alive, "n{i} view of n1");
        if i != 1 {
            assert!(
                net.first_event(i, MemberEvent::Up(NodeId(1)), resumed)
                    .is_some()
            );
        }
    }
    assert!(net.nodes[1].incarnation() > 0);
    assert!(net.nodes[1].stats().stalls >= 1);
    // The paused node does not blame others for its own pause.
    assert!(
        net.events
            .iter()
            .all(|(t, n, e)| !(*t >= resumed && n.0 == 1 && matches!(e, MemberEvent::Down(_))))
    );
}

#[test]
fn restarted_node_is_alive_again_everywhere() {
    let mut net = Net::new(5, 11);
    let meta = NodeMeta {
        agent_version: 1,
        ..NodeMeta::default()
    };
    net.nodes[2].set_local_meta(meta.clone());
    net.run_until(Net::at(2.0));
    net.stop(2);
    net.run_for(Duration::from_secs(6));
    assert_eq!(net.state(0, 2), MemberState::Down);
    // Last known metadata survives Down.
    assert_eq!(
        net.nodes[0].member(NodeId(2)).and_then(|m| m.meta),
        Some(meta)
    );
    let restarted = net.now;
    net.restart(2);
    let meta2 = NodeMeta {
        agent_version: 2,
        ..NodeMeta::default()
    };
    net.nodes[2].set_local_meta(meta2.clone());
    net.flush(2);
    net.run_for(Duration::from_secs(2));
    for i in 0..5 {
        assert_eq!(net.state(i, 2), MemberState::Alive, "n{i} view of n2");
        let m = net.nodes[i].member(NodeId(2)).expect("member");
        assert_eq!(m.meta, Some(meta2.clone()), "n{i} meta of n2");
        if i != 2 {
            assert!(
                net.first_event(i, MemberEvent::Up(NodeId(2)), restarted)
                    .is_some()
            );
        }
    }
    assert!(net.nodes[2].incarnation() > 0);
}

#[test]
fn metadata_reaches_every_member() {
    let mut net = Net::new(5, 3);
    net.run_until(Net::at(1.0));
    let meta = NodeMeta {
        roles: Roles::MASTER | Roles::VOTER,
        health: HealthFlags::THROTTLED,
        lease: LeaseView {
            epoch: 7,
            holder: Some(NodeId(0)),
        },
        replica: ReplicaView {
            state: ReplicaState::UpToDate,
            metadata_version: 123_456,
            metaid: 0x1234,
        },
        disk_free_mb: 40_000,
        agent_version: 3,
        moosefs: super::MooseFsVersion::new(4, 57, 5),
    };
    net.nodes[0].set_local_meta(meta.clone());
    net.nodes[0].set_local_meta(meta.clone()); // same again: no new version
    net.flush(0);
    let set = net.now;
    net.run_for(Duration::from_millis(500));
    for i in 1..5 {
        let m = net.nodes[i].member(NodeId(0)).expect("member");
        assert_eq!(m.meta.as_ref(), Some(&meta));
        assert_eq!(m.meta_version, 1);
        assert!(
            net.first_event(i, MemberEvent::MetaChanged(NodeId(0)), set)
                .is_some()
        );
    }
    assert_eq!(net.count(|e| matches!(e, MemberEvent::MetaChanged(_))), 4);
}

#[test]
fn twenty_percent_loss_for_two_minutes_gives_no_false_down() {
    let mut net = Net::new(10, 5).loss(0.2);
    net.run_until(Net::at(120.0));
    let downs = net.count(|e| matches!(e, MemberEvent::Down(_)));
    let suspects = net.count(|e| matches!(e, MemberEvent::Suspect(_)));
    assert_eq!(downs, 0, "false Down events ({suspects} suspicions)");
    for i in 0..10 {
        for j in 0..10 {
            assert_ne!(net.state(i, j), MemberState::Down);
        }
    }
}

#[test]
fn loss_and_jitter_give_no_false_down() {
    let mut net = Net::new(10, 6).loss(0.2).jitter(Duration::from_millis(200));
    net.run_until(Net::at(60.0));
    let downs = net.count(|e| matches!(e, MemberEvent::Down(_)));
    let suspects = net.count(|e| matches!(e, MemberEvent::Suspect(_)));
    assert_eq!(downs, 0, "false Down events ({suspects} suspicions)");
}

#[test]
fn full_state_is_split_within_the_byte_budget() {
    // 60 nodes with metadata: the full view is several KB, sent in chunks of <= 1300 bytes.
    let mut net = Net::new(60, 9);
    for i in 0..60 {
        net.nodes[i].set_local_meta(NodeMeta {
            disk_free_mb: u64::MAX - i as u64,
            replica: ReplicaView {
                state: ReplicaState::Syncing,
                metadata_version: u64::MAX,
                metaid: u64::MAX,
            },
            lease: LeaseView {
                epoch: u64::MAX,
                holder: Some(NodeId(u16::MAX)),
            },
            ..NodeMeta::default()
        });
        net.flush(i);
    }
    net.run_until(Net::at(3.0));
    net.stop(5);
    net.run_for(Duration::from_secs(5));
    net.restart(5);
    net.run_for(Duration::from_secs(2));
    assert!(net.max_msg <= BUDGET);
    assert!(
        net.max_msg > 1000,
        "chunks were used ({} bytes max)",
        net.max_msg
    );
    for j in (0..60).filter(|&j| j != 5) {
        assert!(
            net.nodes[5]
                .member(NodeId(j))
                .and_then(|m| m.meta)
                .is_some()
        );
    }
}

#[test]
fn same_seed_same_events() {
    let run = |seed| {
        let mut net = Net::new(6, seed).loss(0.1);
        net.run_until(Net::at(3.0));
        net.stop(4);
        net.run_for(Duration::from_secs(5));
        net.restart(4);
        net.run_for(Duration::from_secs(3));
        (net.events, net.bytes_sent)
    };
    assert_eq!(run(42), run(42));
    assert_ne!(run(42), run(43));
}

#[test]
fn unknown_senders_and_subjects_are_ignored() {
    let all = ids(3);
    let mut m = Membership::new(
        NodeId(0),
        &all,
        MembershipConfig::default(),
        1,
        Instant::ZERO,
    );
    while m.poll_transmit().is_some() {}
    m.handle_message(
        Instant::from_millis(1),
        NodeId(9),
        GossipMsg::Ping {
            seq: 1,
            updates: vec![],
        },
    );
    assert!(m.poll_transmit().is_none());
    assert_eq!(m.stats().ignored_unknown, 1);
    m.handle_message(
        Instant::from_millis(2),
        NodeId(1),
        GossipMsg::Gossip {
            updates: vec![Update::Down {
                node: NodeId(7),
                incarnation: 3,
                from: NodeId(1),
            }],
        },
    );
    assert!(m.member(NodeId(7)).is_none());
    assert_eq!(m.members().count(), 3);
}

#[test]
fn suspicion_of_self_is_refuted_with_higher_incarnation() {
    let all = ids(3);
    let mut m = Membership::new(
        NodeId(0),
        &all,
        MembershipConfig::default(),
        1,
        Instant::ZERO,
    );
    while m.poll_transmit().is_some() {}
    m.handle_message(
        Instant::from_millis(1),
        NodeId(1),
        GossipMsg::Gossip {
            updates: vec![Update::Suspect {
                node: NodeId(0),
                incarnation: 0,
                from: NodeId(1),
            }],
        },
    );
    assert_eq!(m.incarnation(), 1);
    assert_eq!(m.local_health(), 1);
    let tx = m.poll_transmit().expect("direct refutation");
    assert_eq!(tx.to, NodeId(1));
    assert_eq!(
        tx.msg.updates(),
        &[Update::Alive {
            node: NodeId(0),
            incarnation: 1
        }]
    );
}

#[test]
fn confirmations_shorten_the_suspicion() {
    let all = ids(6);
    // No probing of our own during the test (its failures would confirm too).
    let cfg = MembershipConfig {
        probe_interval: Duration::from_secs(3600),
        ..MembershipConfig::for_rack(6)
    };
    let mut m = Membership::new(NodeId(0), &all, cfg, 1, Instant::ZERO);
    let t0 = Instant::from_millis(10);
    let suspect = |from| GossipMsg::Gossip {
        updates: vec![Update::Suspect {
            node: NodeId(5),
            incarnation: 0,
            from: NodeId(from),
        }],
    };
    m.handle_message(t0, NodeId(1), suspect(1));
    assert_eq!(
        m.member(NodeId(5)).map(|i| i.state),
        Some(MemberState::Suspect)
    );
    assert_eq!(m.poll_event(), Some(MemberEvent::Up(NodeId(1))));
    assert_eq!(m.poll_event(), Some(MemberEvent::Suspect(NodeId(5))));
    // Confirmations from 2, 3, 4 (and a duplicate from 2) bring the deadline to t0 + min.
    for from in [2, 2, 3, 4] {
        m.handle_message(t0, NodeId(from), suspect(from));
    }
    let min = m.config().suspicion_min;
    // Step time in small increments (a long jump would look like a stall of this node).
    let mut t = t0;
    while t < t0 + min - Duration::from_millis(1) {
        t += Duration::from_millis(1);
        m.handle_timeout(t.min(t0 + min - Duration::from_millis(1)));
    }
    assert_eq!(
        m.member(NodeId(5)).map(|i| i.state),
        Some(MemberState::Suspect)
    );
    m.handle_timeout(t0 + min);
    assert_eq!(
        m.member(NodeId(5)).map(|i| i.state),
        Some(MemberState::Down)
    );
    assert_eq!(m.stats().declared_down, 1);
}

// ----- Measurements toward the lead's goals (slow: run in release) -----
// cargo test --release --lib membership::tests::measure -- --ignored --nocapture --test-threads 1

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    crate::percentile::nearest_rank(v, p * 100.0).unwrap_or(f64::NAN)
}

fn rate(net: &Net, before: &[u64], secs: f64, skip: usize) -> (f64, f64) {
    let per: Vec<f64> = (0..net.nodes.len())
        .filter(|&i| i != skip)
        .map(|i| (net.bytes_sent[i] - before[i]) as f64 / secs)
        .collect();
    let mean = per.iter().sum::<f64>() / per.len() as f64;
    let max = per.iter().cloned().fold(0.0, f64::max);
    (mean, max)
}

#[test]
#[ignore]
fn measure_n50_detection_and_bandwidth() {
    let n = 50;
    let mut detect = Vec::new();
    let (mut idle_mean, mut idle_max, mut crash_max, mut crash_mean) =
        (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let seeds = 100;
    for seed in 0..seeds {
        let mut net = Net::new(n, seed);
        net.run_until(Net::at(5.0));
        let before = net.bytes_sent.clone();
        net.run_until(Net::at(15.0));
        let (mean, max) = rate(&net, &before, 10.0, usize::MAX);
        idle_mean += mean / seeds as f64;
        idle_max = idle_max.max(max);
        // Crash at a random phase.
        let victim = (seed as usize * 7) % n;
        net.run_for(Duration::from_micros(seed * 9_973 % 1_000_000));
        let crash = net.now;
        let before = net.bytes_sent.clone();
        net.stop(victim);
        net.run_for(Duration::from_secs(8));
        let (mean, max) = rate(&net, &before, 8.0, victim);
        crash_max = crash_max.max(max);
        crash_mean += mean / seeds as f64;
        let mut worst = 0.0f64;
        for i in net.live().collect::<Vec<_>>() {
            let t = net
                .first_event(i, MemberEvent::Down(NodeId(victim as u16)), crash)
                .map_or(f64::INFINITY, |t| t.saturating_since(crash).as_secs_f64());
            worst = worst.max(t);
        }
        detect.push(worst);
        let false_downs =
            net.count(|e| matches!(e, MemberEvent::Down(v) if v.0 as usize != victim));
        assert_eq!(false_downs, 0);
    }
    println!(
        "N=50 detection (all live members mark Down), {seeds} seeds: p50 {:.2}s p99 {:.2}s max {:.2}s",
        percentile(&mut detect, 0.5),
        percentile(&mut detect, 0.99),
        percentile(&mut detect, 1.0)
    );
    println!(
        "N=50 sent incl. 56 B/frame: idle mean {idle_mean:.0} B/s, idle max node {idle_max:.0} B/s, \
         over the 8 s after a crash mean {crash_mean:.0} B/s, max node {crash_max:.0} B/s"
    );
}

#[test]
#[ignore]
fn measure_n50_loss_jitter_ten_minutes() {
    // MEMBERSHIP_SEEDS=20 to run more schedules.
    let n: u64 = std::env::var("MEMBERSHIP_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    for seed in 77..77 + n {
        loss_jitter_ten_minutes(seed);
    }
}

fn loss_jitter_ten_minutes(seed: u64) {
    let mut net = Net::new(50, seed)
        .loss(0.2)
        .jitter(Duration::from_millis(200));
    net.run_until(Net::at(600.0));
    let downs = net.count(|e| matches!(e, MemberEvent::Down(_)));
    let suspects = net.count(|e| matches!(e, MemberEvent::Suspect(_)));
    let (mean, max) = rate(&net, &vec![0; 50], 600.0, usize::MAX);
    let lhm: Vec<u8> = net.nodes.iter().map(|m| m.local_health()).collect();
    println!(
        "N=50 seed {seed}, 20% loss, 0-200 ms jitter, 600 s: {downs} false Down, {suspects} Suspect events (all observers), \
         sent mean {mean:.0} B/s max {max:.0} B/s, LHM at end {lhm:?}"
    );
    if downs > 0 {
        let (t, who, ev) = *net
            .events
            .iter()
            .find(|(_, _, e)| matches!(e, MemberEvent::Down(_)))
            .unwrap();
        let MemberEvent::Down(x) = ev else {
            unreachable!()
        };
        println!("first false Down: {who} declared {x} at {t}; events about {x} from 10 s before:");
        for (t2, n, e) in &net.events {
            let about = match e {
                MemberEvent::Up(v)
                | MemberEvent::Suspect(v)
                | MemberEvent::Down(v)
                | MemberEvent::MetaChanged(v) => *v,
            };
            if about == x
                && (*n == who || *t2 + Duration::from_secs(5) >= t)
                && *t2 + Duration::from_secs(120) >= t
                && *t2 <= t + Duration::from_secs(2)
            {
                println!("  {t2} at {n}: {e:?}");
            }
        }
    }
    if downs > 0 {
        for i in [0usize, 16, 38] {
            println!(
                "n{i}: {:?} stats {:?}",
                net.nodes[i].member(NodeId(38)),
                net.nodes[i].stats()
            );
        }
    }
    assert_eq!(downs, 0);
}

#[test]
#[ignore]
fn measure_n1000_meta_convergence() {
    let n = 1000;
    let mut times = Vec::new();
    for (seed, loss) in [(0, 0.0), (1, 0.0), (2, 0.0), (3, 0.2)] {
        let mut net = Net::new(n, seed).loss(loss);
        net.run_until(Net::at(3.0));
        let set = net.now;
        let meta = NodeMeta {
            agent_version: 9,
            ..NodeMeta::default()
        };
        let src = (seed as usize * 31) % n;
        net.nodes[src].set_local_meta(meta);
        net.flush(src);
        let mut done = None;
        for step in 1..=50 {
            net.run_for(Duration::from_millis(100));
            let all = (0..n).all(|i| {
                net.nodes[i]
                    .member(NodeId(src as u16))
                    .and_then(|m| m.meta)
                    .is_some_and(|m| m.agent_version == 9)
            });
            if all {
                done = Some(step as f64 * 0.1);
                break;
            }
        }
        let mut arrivals: Vec<f64> = (0..n)
            .filter(|&i| i != src)
            .map(|i| {
                net.first_event(i, MemberEvent::MetaChanged(NodeId(src as u16)), set)
                    .map_or(f64::INFINITY, |t| t.saturating_since(set).as_secs_f64())
            })
            .collect();
        let last = percentile(&mut arrivals, 1.0);
        println!(
            "N=1000 seed {seed} loss {loss}: meta reached 50% after {:.2} s, 99% after {:.2} s, \
             all after {last:.2} s (checked every 100 ms: {done:?})",
            percentile(&mut arrivals, 0.5),
            percentile(&mut arrivals, 0.99),
        );
        if loss == 0.0 {
            times.push(last);
        }
    }
    assert!(times.iter().all(|t| *t <= 2.0));
}
