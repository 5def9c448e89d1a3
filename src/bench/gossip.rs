//! The membership benchmark: a rack of real [`Membership`] machines on the simulator, measured
//! against mooseherd's goals (N = 50: every live member marks a crashed node Down within 3 s at
//! p99 and each node sends at most 1 KB/s; N = 1000: a metadata change reaches every member within
//! 2 s; no live node is ever declared Down, even with 20 % loss and 200 ms jitter).
//!
//! One simulated run, in three phases, every link with the options' loss and jitter:
//! 1. **Quiet** (`duration` from the start, no fault): every Down is a false positive; Suspect
//!    events are counted too; bytes per node per second are measured after a short warm-up.
//!    A datagram counts as its postcard payload plus the 56 bytes of a wire frame.
//! 2. **Metadata changes**: one random node at a time publishes new [`NodeMeta`]; the time until
//!    every other live member holds that version is one convergence sample.
//! 3. **Crashes**: one random node at a time is killed; the time until every live member has
//!    emitted `Down` for it is one detection sample. It is then restarted, so the rack stays at N.
//!
//! Before each sample the rack is left to settle (every member sees every member Alive) and then
//! runs for a random fraction of a second, so samples start at random protocol phases. Times are
//! the simulator's real time, exact to the step (observers run after every step, and only look
//! at the events of that step, so they stay cheap at N = 1000). The same options give the same
//! report, except for the wall time.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use serde::Serialize;

use crate::core::NodeId;
use crate::core::membership::{
    GossipMsg, MemberEvent, MemberState, Membership, MembershipConfig, NodeMeta,
};
use crate::sim::{Jitter, LinkConfig, NodeStatus, Sim, SimConfig, SimTime, SimView, Violation};

/// Bytes a wire frame adds to every datagram (40-byte header + 16-byte AEAD tag).
pub const FRAME_OVERHEAD: usize = crate::wire::MIN_FRAME;
/// The rack size the detection and bandwidth goals are stated for.
pub const GOAL_NODES: u16 = 50;
/// Goal: p99 time until every live member marks a crashed node Down (at N = 50).
pub const GOAL_DETECT_P99_MS: f64 = 3000.0;
/// Goal: bytes sent per node per second, frames included (at N = 50).
pub const GOAL_BYTES_PER_NODE_PER_S: f64 = 1024.0;
/// Goal: p99 time until a metadata change reaches every live member (at N = 1000).
pub const GOAL_CONVERGE_P99_MS: f64 = 2000.0;
/// The rack size the convergence goal is stated for.
pub const GOAL_CONVERGE_NODES: u16 = 1000;

/// A crash not detected by everyone within this is recorded as this long (and counted).
const DETECT_TIMEOUT: Duration = Duration::from_secs(60);
/// A change not seen by everyone within this is recorded as this long (and counted).
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the rack to see everyone Alive before a sample (it starts anyway).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the driver looks at a running sample or a settling rack.
const POLL: Duration = Duration::from_millis(10);
const SETTLE_POLL: Duration = Duration::from_millis(100);
/// Random start phase of each sample: `0 .. PHASE`.
const PHASE: Duration = Duration::from_secs(1);
/// Bytes are measured after this much of the quiet phase (start-up syncs excluded).
const WARM_UP: Duration = Duration::from_secs(5);
/// Mixed into the seed for the benchmark's own choices (victims, phases), so they do not
/// correlate with the simulator's streams.
const BENCH_SALT: u64 = 0xBE4C_6055_1900_0001;

/// What to measure. Start from [`GossipBenchOptions::default`] and change fields.
#[derive(Debug, Clone, PartialEq)]
pub struct GossipBenchOptions {
    /// Rack size (at least 2).
    pub nodes: u16,
    /// Probability that any datagram is lost (`0.0 ..< 1.0`), on every link, in every phase.
    pub loss: f64,
    /// Largest random extra delay per datagram (uniform `0 ..= jitter`, on top of 200 µs).
    pub jitter: Duration,
    /// How many crashes to measure detection over (0 skips the phase).
    pub crashes: u32,
    /// How many metadata changes to measure convergence over (0 skips the phase).
    pub meta_changes: u32,
    /// Length of the quiet phase (false positives, bytes); at least 1 s.
    pub duration: Duration,
    /// Seed of the whole run.
    pub seed: u64,
}

impl Default for GossipBenchOptions {
    /// 50 nodes on a quiet LAN, 20 crashes, 20 metadata changes, 60 s quiet phase, seed 1.
    fn default() -> Self {
        GossipBenchOptions {
            nodes: 50,
            loss: 0.0,
            jitter: Duration::ZERO,
            crashes: 20,
            meta_changes: 20,
            duration: Duration::from_secs(60),
            seed: 1,
        }
    }
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Detection needs a crashed node and someone to notice.
    #[error("the gossip benchmark needs at least 2 nodes, got {0}")]
    TooFewNodes(u16),
    /// Loss must be a probability below 1 (at 1 nothing is ever delivered).
    #[error("loss must be at least 0 and below 1, got {0}")]
    BadLoss(f64),
    /// The quiet phase is too short to measure bytes per second.
    #[error("duration must be at least 1 s, got {0:?}")]
    TooShort(Duration),
    /// The simulator stopped the run (a livelock; the benchmark's observers never fail).
    #[error("simulation stopped: {0}")]
    Sim(#[from] Violation),
}

/// What the benchmark measured. The first six fields are the stable JSON interface
/// (`mooseherd bench gossip --json`); the rest are details. Times are simulated milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GossipReport {
    /// Rack size.
    pub nodes: u16,
    /// Median time from a crash until every live member marked the node Down (null: no crash
    /// measured). An undetected crash counts as 60 s.
    pub detect_p50_ms: Option<f64>,
    /// 99th percentile (nearest rank) of the same.
    pub detect_p99_ms: Option<f64>,
    /// 99th percentile of the time from a metadata change until every live member held it
    /// (null: no change measured). A change not converged counts as 30 s.
    pub converge_p99_ms: Option<f64>,
    /// Mean over nodes of bytes sent per simulated second in the quiet phase (after a 5 s
    /// warm-up), postcard payload + 56 bytes of frame per datagram.
    pub bytes_per_node_per_s: f64,
    /// Distinct (observer, member) pairs where the observer declared a live member Down during
    /// the quiet phase.
    pub false_positives: u64,
    /// Suspect events (all observers) during the quiet phase; each was refuted or became a
    /// false positive.
    pub suspect_events: u64,
    /// Distinct (observer, member) pairs where a member that never crashed was declared Down
    /// during the metadata and crash phases.
    pub false_positives_other_phases: u64,
    /// The busiest node's bytes per second in the quiet phase.
    pub bytes_max_node_per_s: f64,
    /// Slowest detection.
    pub detect_max_ms: Option<f64>,
    /// Median convergence.
    pub converge_p50_ms: Option<f64>,
    /// Slowest convergence.
    pub converge_max_ms: Option<f64>,
    /// Crashes measured.
    pub crashes_measured: u32,
    /// Crashes some live member had not marked Down after 60 s.
    pub crashes_undetected: u32,
    /// Metadata changes measured.
    pub meta_changes_measured: u32,
    /// Changes some live member had not received after 30 s.
    pub meta_changes_unconverged: u32,
    /// Loss probability of every link.
    pub loss: f64,
    /// Largest extra delay of a datagram, ms.
    pub jitter_ms: f64,
    /// Seed of the run.
    pub seed: u64,
    /// Length of the quiet phase, simulated seconds.
    pub quiet_s: f64,
    /// Simulated time of the whole run, seconds.
    pub simulated_s: f64,
    /// Simulator steps (events processed).
    pub steps: u64,
    /// Wall-clock time the benchmark took, seconds (the only field that differs between runs
    /// with the same options).
    pub wall_s: f64,
}

/// What the observer is waiting for during one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Goal {
    /// Every pending observer emits `Down(subject)`.
    Down,
    /// Every pending observer holds metadata of `subject` at this version or later.
    Meta(u64),
}

/// One running sample: who still has to notice, and when the last one did.
#[derive(Debug)]
struct Sample {
    subject: NodeId,
    goal: Goal,
    started: SimTime,
    pending: Vec<bool>,
    remaining: usize,
    done: Option<SimTime>,
}

impl Sample {
    fn mark(&mut self, observer: NodeId, now: SimTime) {
        let Some(p) = self.pending.get_mut(usize::from(observer.0)) else {
            return;
        };
        if *p {
            *p = false;
            self.remaining -= 1;
            if self.remaining == 0 {
                self.done = Some(now);
            }
        }
    }
}

/// What the observer records, shared between it and the driver.
#[derive(Debug)]
struct Tracker {
    quiet: bool,
    false_downs: BTreeSet<(NodeId, NodeId)>,
    other_false_downs: BTreeSet<(NodeId, NodeId)>,
    suspects: u64,
    crashed_ever: Vec<bool>,
    sample: Option<Sample>,
}

impl Tracker {
    fn observe(&mut self, v: &SimView<'_, Membership>) {
        for &(observer, event) in v.events() {
            match event {
                MemberEvent::Suspect(_) if self.quiet => self.suspects += 1,
                MemberEvent::Down(x) => {
                    if self.quiet {
                        self.false_downs.insert((observer, x));
                    } else if !self
                        .crashed_ever
                        .get(usize::from(x.0))
                        .copied()
                        .unwrap_or(true)
                    {
                        self.other_false_downs.insert((observer, x));
                    }
                    if let Some(s) = &mut self.sample
                        && s.goal == Goal::Down
                        && s.subject == x
                    {
                        s.mark(observer, v.now());
                    }
                }
                MemberEvent::MetaChanged(x) => {
                    if let Some(s) = &mut self.sample
                        && let Goal::Meta(version) = s.goal
                        && s.subject == x
                        && meta_version(v, observer, x) >= version
                    {
                        s.mark(observer, v.now());
                    }
                }
                _ => {}
            }
        }
    }
}

/// The version of `subject`'s metadata that `observer` holds (0 if none or not running).
fn meta_version(v: &SimView<'_, Membership>, observer: NodeId, subject: NodeId) -> u64 {
    v.node(observer)
        .and_then(|n| n.machine)
        .and_then(|m| m.member(subject))
        .map_or(0, |i| i.meta_version)
}

/// Run the membership benchmark (see the module documentation for what each number means).
/// Deterministic: the same options give the same report, except `wall_s`.
///
/// Simulated time is `duration` plus a few seconds per metadata change and per crash (more with
/// loss and jitter). Wall time in a release build: N = 50 simulates 10 minutes in about 0.5 s;
/// N = 1000 runs about half as fast as real time (150 simulated s in 73 s), dominated by
/// [`Membership`]'s own per-call cost, which grows with N. Debug builds are ~10x slower.
pub fn gossip(opts: &GossipBenchOptions) -> Result<GossipReport, BenchError> {
    if opts.nodes < 2 {
        return Err(BenchError::TooFewNodes(opts.nodes));
    }
    if !(0.0..1.0).contains(&opts.loss) {
        return Err(BenchError::BadLoss(opts.loss));
    }
    if opts.duration < Duration::from_secs(1) {
        return Err(BenchError::TooShort(opts.duration));
    }
    let wall = std::time::Instant::now();
    let n = opts.nodes;
    let all: Vec<NodeId> = (0..n).map(NodeId).collect();
    let cfg = MembershipConfig::for_rack(usize::from(n));

    let mut config = SimConfig::new(opts.seed, n).with_replay(format!(
        "mooseherd bench gossip --nodes {n} --loss {} --jitter-ms {} --crashes {} --meta-changes {} --duration-s {} --seed {{seed}}",
        opts.loss,
        opts.jitter.as_millis(),
        opts.crashes,
        opts.meta_changes,
        opts.duration.as_secs()
    ));
    config.link = LinkConfig {
        loss: opts.loss,
        jitter: opts.jitter,
        jitter_shape: Jitter::Uniform,
        ..LinkConfig::default()
    };
    let mut sim = Sim::new(config, move |id, seed, now| {
        Membership::new(id, &all, cfg.clone(), seed, now)
    })
    .with_msg_size(|m: &GossipMsg| m.encoded_len() + FRAME_OVERHEAD)
    .with_msg_hasher(|m, h| {
        // Cheap: kind, size and number of updates (the default Debug text is slow at N = 1000).
        h.u64(m.kind() as u64);
        h.u64(m.encoded_len() as u64);
        h.u64(m.updates().len() as u64);
    });
    let tracker = Rc::new(RefCell::new(Tracker {
        quiet: true,
        false_downs: BTreeSet::new(),
        other_false_downs: BTreeSet::new(),
        suspects: 0,
        crashed_ever: vec![false; usize::from(n)],
        sample: None,
    }));
    let observer = Rc::clone(&tracker);
    sim.add_invariant("bench observer", move |v: &SimView<'_, Membership>| {
        observer.borrow_mut().observe(v);
        Ok(())
    });
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed ^ BENCH_SALT);

    // 1. Quiet: false positives and bytes.
    let warm_up = WARM_UP.min(opts.duration / 2);
    sim.run_until(SimTime::ZERO + warm_up)?;
    let before: Vec<u64> = sim.stats().nodes.iter().map(|s| s.bytes_sent).collect();
    sim.run_until(SimTime::ZERO + opts.duration)?;
    let secs = (opts.duration - warm_up).as_secs_f64();
    let rates: Vec<f64> = sim
        .stats()
        .nodes
        .iter()
        .zip(&before)
        .map(|(s, b)| (s.bytes_sent - b) as f64 / secs)
        .collect();
    let bytes_mean = rates.iter().sum::<f64>() / rates.len() as f64;
    let bytes_max = rates.iter().copied().fold(0.0, f64::max);
    tracker.borrow_mut().quiet = false;

    // 2. Metadata changes: convergence.
    let mut converge = Vec::new();
    let mut unconverged = 0;
    for k in 0..opts.meta_changes {
        settle(&mut sim, &mut rng)?;
        let src = NodeId(below(&mut rng, n));
        let meta = NodeMeta {
            agent_version: k + 1,
            disk_free_mb: rng.next_u64() >> 32,
            ..NodeMeta::default()
        };
        let Some(m) = sim.node_mut(src) else { continue };
        m.set_local_meta(meta);
        let version = m.member(src).map_or(0, |i| i.meta_version);
        start(&sim, &tracker, src, Goal::Meta(version));
        let (took, ok) = finish(&mut sim, &tracker, CONVERGE_TIMEOUT)?;
        converge.push(took);
        unconverged += u32::from(!ok);
    }

    // 3. Crashes: detection. Victims cycle through a shuffled order, so no node dies twice
    // before every node has died once.
    let mut detect = Vec::new();
    let mut undetected = 0;
    let mut order: Vec<u16> = Vec::new();
    for _ in 0..opts.crashes {
        settle(&mut sim, &mut rng)?;
        if order.is_empty() {
            order = (0..n).collect();
            for i in (1..order.len()).rev() {
                let j = usize::from(below(&mut rng, u16::try_from(i + 1).unwrap_or(u16::MAX)));
                order.swap(i, j);
            }
        }
        let victim = NodeId(order.pop().unwrap_or(0));
        sim.crash(victim);
        if let Some(c) = tracker
            .borrow_mut()
            .crashed_ever
            .get_mut(usize::from(victim.0))
        {
            *c = true;
        }
        start(&sim, &tracker, victim, Goal::Down);
        let (took, ok) = finish(&mut sim, &tracker, DETECT_TIMEOUT)?;
        detect.push(took);
        undetected += u32::from(!ok);
        sim.restart(victim);
    }

    let t = tracker.borrow();
    Ok(GossipReport {
        nodes: n,
        detect_p50_ms: percentile(&detect, 0.50),
        detect_p99_ms: percentile(&detect, 0.99),
        converge_p99_ms: percentile(&converge, 0.99),
        bytes_per_node_per_s: round1(bytes_mean),
        false_positives: t.false_downs.len() as u64,
        suspect_events: t.suspects,
        false_positives_other_phases: t.other_false_downs.len() as u64,
        bytes_max_node_per_s: round1(bytes_max),
        detect_max_ms: percentile(&detect, 1.0),
        converge_p50_ms: percentile(&converge, 0.50),
        converge_max_ms: percentile(&converge, 1.0),
        crashes_measured: detect.len() as u32,
        crashes_undetected: undetected,
        meta_changes_measured: converge.len() as u32,
        meta_changes_unconverged: unconverged,
        loss: opts.loss,
        jitter_ms: opts.jitter.as_secs_f64() * 1000.0,
        seed: opts.seed,
        quiet_s: opts.duration.as_secs_f64(),
        simulated_s: sim.now().elapsed().as_secs_f64(),
        steps: sim.stats().steps,
        wall_s: wall.elapsed().as_secs_f64(),
    })
}

/// A uniform draw from `0 .. n` (`n >= 1`).
fn below(rng: &mut ChaCha8Rng, n: u16) -> u16 {
    (rng.next_u64() % u64::from(n.max(1))) as u16
}

/// Whether every running member sees every member Alive.
fn all_alive(sim: &Sim<Membership>) -> bool {
    (0..sim.len()).all(|i| {
        sim.node(NodeId(i))
            .is_none_or(|m| m.members().all(|info| info.state == MemberState::Alive))
    })
}

/// Let the rack settle (everyone sees everyone Alive, or the timeout), then run a random
/// fraction of a second so the next sample starts at a random protocol phase.
fn settle(sim: &mut Sim<Membership>, rng: &mut ChaCha8Rng) -> Result<(), Violation> {
    let deadline = sim.now() + SETTLE_TIMEOUT;
    while !all_alive(sim) && sim.now() < deadline {
        sim.run_for(SETTLE_POLL)?;
    }
    let phase_us = u64::try_from(PHASE.as_micros()).unwrap_or(1).max(1);
    sim.run_for(Duration::from_micros(rng.next_u64() % phase_us))
}

/// Start a sample about `subject` now: every running node other than `subject` must notice.
/// Observers that already hold the goal count at once.
fn start(sim: &Sim<Membership>, tracker: &RefCell<Tracker>, subject: NodeId, goal: Goal) {
    let now = sim.now();
    let mut sample = Sample {
        subject,
        goal,
        started: now,
        pending: vec![false; usize::from(sim.len())],
        remaining: 0,
        done: None,
    };
    for i in 0..sim.len() {
        let id = NodeId(i);
        if id == subject || sim.status(id) != Some(NodeStatus::Up) {
            continue;
        }
        sample.pending[usize::from(i)] = true;
        sample.remaining += 1;
    }
    if sample.remaining == 0 {
        sample.done = Some(now);
    }
    for i in 0..sim.len() {
        let id = NodeId(i);
        let Some(info) = sim.node(id).and_then(|m| m.member(subject)) else {
            continue;
        };
        let holds = match goal {
            Goal::Down => info.state == MemberState::Down,
            Goal::Meta(v) => info.meta_version >= v,
        };
        if holds {
            sample.mark(id, now);
        }
    }
    tracker.borrow_mut().sample = Some(sample);
}

/// Run until the sample is done or `timeout` has passed; its duration in ms (the timeout if
/// not done) and whether it was done.
fn finish(
    sim: &mut Sim<Membership>,
    tracker: &RefCell<Tracker>,
    timeout: Duration,
) -> Result<(f64, bool), Violation> {
    let deadline = sim.now() + timeout;
    loop {
        let done = tracker.borrow().sample.as_ref().and_then(|s| s.done);
        if done.is_some() || sim.now() >= deadline {
            break;
        }
        sim.run_until((sim.now() + POLL).min(deadline))?;
    }
    let sample = tracker.borrow_mut().sample.take();
    Ok(match sample {
        Some(Sample {
            started,
            done: Some(done),
            ..
        }) => (ms(done.saturating_since(started)), true),
        _ => (ms(timeout), false),
    })
}

fn ms(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Nearest-rank percentile (`p` in `0..=1`): the smallest sample with at least `p` of the
/// samples at or below it. None for no samples.
fn percentile(samples: &[f64], p: f64) -> Option<f64> {
    crate::percentile::of_unsorted(samples, p * 100.0)
}

/// The report as a short table for a person: one line per metric with its goal and a verdict.
pub fn table(r: &GossipReport) -> String {
    use std::fmt::Write as _;
    let opt = |x: Option<f64>| x.map_or_else(|| "-".to_string(), |v| format!("{v:.0} ms"));
    // A goal stated for another rack size gets a verdict in parentheses: for reference only.
    let verdict = |ok: Option<bool>, at: Option<u16>| match (ok, at.is_none_or(|at| at == r.nodes))
    {
        (Some(true), true) => "ok",
        (Some(false), true) => "MISSED",
        (Some(true), false) => "(ok)",
        (Some(false), false) => "(over)",
        (None, _) => "",
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "gossip benchmark: {} nodes, loss {:.0} %, jitter 0-{:.0} ms, seed {} ({:.0} s simulated in {:.1} s)",
        r.nodes,
        r.loss * 100.0,
        r.jitter_ms,
        r.seed,
        r.simulated_s,
        r.wall_s
    );
    let mut line = |name: &str, value: String, goal: String, ok: Option<bool>, at: Option<u16>| {
        let _ = writeln!(
            s,
            "  {name:<26} {value:>10}   {goal:<22} {}",
            verdict(ok, at)
        );
    };
    let at = |n: u16| {
        if n == r.nodes {
            String::new()
        } else {
            format!(" at N={n}")
        }
    };
    line(
        format!("detect p50 ({} crashes)", r.crashes_measured).as_str(),
        opt(r.detect_p50_ms),
        String::new(),
        None,
        None,
    );
    line(
        "detect p99",
        opt(r.detect_p99_ms),
        format!("<= {GOAL_DETECT_P99_MS:.0} ms{}", at(GOAL_NODES)),
        r.detect_p99_ms.map(|v| v <= GOAL_DETECT_P99_MS),
        Some(GOAL_NODES),
    );
    line(
        format!("converge p99 ({} changes)", r.meta_changes_measured).as_str(),
        opt(r.converge_p99_ms),
        format!("<= {GOAL_CONVERGE_P99_MS:.0} ms{}", at(GOAL_CONVERGE_NODES)),
        r.converge_p99_ms.map(|v| v <= GOAL_CONVERGE_P99_MS),
        Some(GOAL_CONVERGE_NODES),
    );
    line(
        "bytes per node per s",
        format!("{:.0} B/s", r.bytes_per_node_per_s),
        format!("<= {GOAL_BYTES_PER_NODE_PER_S:.0} B/s{}", at(GOAL_NODES)),
        Some(r.bytes_per_node_per_s <= GOAL_BYTES_PER_NODE_PER_S),
        Some(GOAL_NODES),
    );
    line(
        format!("false positives ({:.0} s)", r.quiet_s).as_str(),
        r.false_positives.to_string(),
        "0".into(),
        Some(r.false_positives == 0),
        None,
    );
    line(
        "suspect events",
        r.suspect_events.to_string(),
        String::new(),
        None,
        None,
    );
    let trouble = u64::from(r.crashes_undetected)
        + u64::from(r.meta_changes_unconverged)
        + r.false_positives_other_phases;
    if trouble > 0 {
        let _ = writeln!(
            s,
            "  note: {} crashes undetected after {} s, {} changes unconverged after {} s, {} false Down during crashes/changes",
            r.crashes_undetected,
            DETECT_TIMEOUT.as_secs(),
            r.meta_changes_unconverged,
            CONVERGE_TIMEOUT.as_secs(),
            r.false_positives_other_phases
        );
    }
    s
}

/// Print [`table`] to standard output.
pub fn print_table(report: &GossipReport) {
    print!("{}", table(report));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> GossipBenchOptions {
        GossipBenchOptions {
            nodes: 8,
            crashes: 4,
            meta_changes: 4,
            duration: Duration::from_secs(20),
            seed: 7,
            ..GossipBenchOptions::default()
        }
    }

    #[test]
    fn small_rack_measures_every_metric() {
        let r = gossip(&small()).expect("runs");
        assert_eq!(r.nodes, 8);
        assert_eq!(r.crashes_measured, 4);
        assert_eq!(r.crashes_undetected, 0);
        let (p50, p99) = (r.detect_p50_ms.unwrap(), r.detect_p99_ms.unwrap());
        // Nobody can be declared Down before the shortest suspicion timeout (0.5 s at N = 8).
        assert!(p50 >= 500.0 && p50 <= p99, "{r:?}");
        assert!(p99 < 5_000.0, "detection p99 {p99} ms");
        assert_eq!(r.meta_changes_measured, 4);
        assert_eq!(r.meta_changes_unconverged, 0);
        let c = r.converge_p99_ms.unwrap();
        assert!(c > 0.0 && c < 2_000.0, "convergence p99 {c} ms");
        assert!(r.bytes_per_node_per_s > 0.0);
        assert!(r.bytes_per_node_per_s <= r.bytes_max_node_per_s);
        assert_eq!(r.false_positives, 0);
        assert_eq!(r.false_positives_other_phases, 0);
        assert!(r.simulated_s >= 20.0);
        let t = table(&r);
        assert!(
            t.contains("detect p99") && t.contains("false positives"),
            "{t}"
        );
    }

    #[test]
    fn same_options_same_report() {
        let opts = GossipBenchOptions {
            loss: 0.1,
            jitter: Duration::from_millis(50),
            crashes: 2,
            meta_changes: 2,
            duration: Duration::from_secs(10),
            ..small()
        };
        let run = |o: &GossipBenchOptions| GossipReport {
            wall_s: 0.0,
            ..gossip(o).expect("runs")
        };
        let a = run(&opts);
        assert_eq!(a, run(&opts));
        assert_ne!(
            a,
            run(&GossipBenchOptions {
                seed: 8,
                ..opts.clone()
            })
        );
    }

    #[test]
    fn json_keys_come_first_in_order() {
        let r = gossip(&GossipBenchOptions {
            nodes: 3,
            crashes: 0,
            meta_changes: 0,
            duration: Duration::from_secs(2),
            ..GossipBenchOptions::default()
        })
        .expect("runs");
        assert_eq!(r.detect_p99_ms, None);
        let json = serde_json::to_string(&r).expect("serialises");
        let keys: Vec<&str> = json
            .split(['{', ','])
            .filter_map(|p| p.split('"').nth(1))
            .take(6)
            .collect();
        assert_eq!(
            keys,
            [
                "nodes",
                "detect_p50_ms",
                "detect_p99_ms",
                "converge_p99_ms",
                "bytes_per_node_per_s",
                "false_positives"
            ]
        );
        assert!(json.contains("\"detect_p50_ms\":null"), "{json}");
    }

    #[test]
    fn bad_options_are_refused() {
        let with = |f: fn(&mut GossipBenchOptions)| {
            let mut o = small();
            f(&mut o);
            gossip(&o)
        };
        assert!(matches!(
            with(|o| o.nodes = 1),
            Err(BenchError::TooFewNodes(1))
        ));
        assert!(matches!(
            with(|o| o.loss = 1.0),
            Err(BenchError::BadLoss(_))
        ));
        assert!(matches!(
            with(|o| o.loss = f64::NAN),
            Err(BenchError::BadLoss(_))
        ));
        assert!(matches!(
            with(|o| o.duration = Duration::ZERO),
            Err(BenchError::TooShort(_))
        ));
    }

    /// The goals, at full size. Slow (about 75 s in release):
    /// `cargo test --release --lib bench::gossip -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn goals_are_met() {
        let quiet = gossip(&GossipBenchOptions::default()).expect("runs");
        print_table(&quiet);
        assert!(quiet.detect_p99_ms.unwrap() <= GOAL_DETECT_P99_MS);
        assert!(quiet.bytes_per_node_per_s <= GOAL_BYTES_PER_NODE_PER_S);
        let harsh = gossip(&GossipBenchOptions {
            loss: 0.2,
            jitter: Duration::from_millis(200),
            duration: Duration::from_secs(600),
            ..GossipBenchOptions::default()
        })
        .expect("runs");
        print_table(&harsh);
        assert_eq!(harsh.false_positives, 0);
        assert_eq!(harsh.false_positives_other_phases, 0);
        let big = gossip(&GossipBenchOptions {
            nodes: GOAL_CONVERGE_NODES,
            crashes: 5,
            ..GossipBenchOptions::default()
        })
        .expect("runs");
        print_table(&big);
        assert!(big.converge_p99_ms.unwrap() <= GOAL_CONVERGE_P99_MS);
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), Some(10.0));
        assert_eq!(percentile(&v, 0.99), Some(20.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
