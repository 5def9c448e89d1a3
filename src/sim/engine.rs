//! The simulator proper: one event queue on the real timeline, N nodes each with its own
//! machine, drifting clock and process state, and a network that loses, delays, duplicates and
//! partitions datagrams. Everything is driven by [`Sim::step`]: take the earliest event (ties
//! broken by insertion order), apply it, let the touched machine act, check the invariants.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::fmt::Write as _;
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::Rng;

use super::check::{Invariant, NodeStatus, NodeView, SimView, Violation};
use super::net::{Blocked, Link, LinkConfig, PartitionKind};
use super::report::{NodeStats, SimReport, SimStats};
use super::rng::{Fnv1a, Purpose, below_incl, stream};
use super::schedule::{Fault, FaultProfile, Schedule};
use super::time::{NodeClock, SimTime, micros};
use crate::core::{Instant, Machine, NodeId, Transmit};

/// How a run is set up. Start from [`SimConfig::new`] and change fields.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// The seed every random choice of the run derives from.
    pub seed: u64,
    /// Number of nodes, ids `0..nodes`.
    pub nodes: u16,
    /// What every link does, unless overridden with [`Sim::set_link`].
    pub link: LinkConfig,
    /// Clock drifts are drawn from `-bound ..= +bound` ppm.
    pub drift_bound_ppm: u32,
    /// Clock offsets (local reading at real time zero) are drawn from `0 ..= max`.
    pub max_clock_offset: Duration,
    /// Fixed clocks for some nodes (tests), instead of drawn ones.
    pub clocks: BTreeMap<NodeId, NodeClock>,
    /// Datagrams a paused node's socket buffer holds; later ones are dropped.
    pub socket_buffer: usize,
    /// Also check the invariants at this period when nothing happens (time-based invariants).
    /// The checkpoint events keep the queue from ever running empty.
    pub check_every: Option<Duration>,
    /// Check the invariants after every step that changed something (true, the default), or
    /// only at the `check_every` checkpoints and at the end of `run_until` (faster for big
    /// racks with costly invariants).
    pub check_each_step: bool,
    /// Keep every event in [`Sim::event_log`].
    pub record_events: bool,
    /// Replay command; `{seed}` is replaced by the seed.
    pub replay: String,
    /// A run with more steps than this at one real instant is stopped as a livelock.
    pub max_steps_per_instant: u64,
}

impl SimConfig {
    /// `nodes` nodes on a quiet LAN, clocks with random offsets and no drift.
    pub fn new(seed: u64, nodes: u16) -> Self {
        SimConfig {
            seed,
            nodes,
            link: LinkConfig::default(),
            drift_bound_ppm: 0,
            max_clock_offset: Duration::from_secs(1_000),
            clocks: BTreeMap::new(),
            socket_buffer: 4_096,
            check_every: None,
            check_each_step: true,
            record_events: false,
            replay: format!("(seed {{seed}}, {nodes} nodes)"),
            max_steps_per_instant: 10_000_000,
        }
    }

    /// Take the network and drift settings of a fault profile.
    pub fn with_profile(mut self, profile: &FaultProfile) -> Self {
        self.link = profile.link;
        self.drift_bound_ppm = profile.drift_bound_ppm;
        self
    }

    /// Set the replay command template (`{seed}` is replaced).
    pub fn with_replay(mut self, template: impl Into<String>) -> Self {
        self.replay = template.into();
        self
    }
}

/// Identifies an active partition, to heal it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartitionId(pub u64);

type Action<M> = Box<dyn FnOnce(&mut M, Instant)>;
type Control<M> = Box<dyn FnOnce(&mut Sim<M>)>;

/// Input waiting in a paused node's socket buffer or control queue.
enum Input<M: Machine> {
    Msg {
        from: NodeId,
        msg: M::Msg,
        bytes: u32,
    },
    Action(Action<M>),
}

enum Ev<M: Machine> {
    Deliver {
        from: NodeId,
        to: NodeId,
        msg: M::Msg,
        bytes: u32,
    },
    Timer {
        node: NodeId,
        generation: u64,
    },
    Fault(Fault),
    Resume {
        node: NodeId,
        generation: u64,
    },
    Heal(PartitionId),
    FlapToggle {
        pid: PartitionId,
        period: Duration,
        end: SimTime,
    },
    Action {
        node: NodeId,
        f: Action<M>,
    },
    Control(Control<M>),
    Checkpoint(Duration),
}

struct Entry<M: Machine> {
    time: SimTime,
    seq: u64,
    ev: Ev<M>,
}

impl<M: Machine> PartialEq for Entry<M> {
    fn eq(&self, other: &Self) -> bool {
        (self.time, self.seq) == (other.time, other.seq)
    }
}
impl<M: Machine> Eq for Entry<M> {}
impl<M: Machine> PartialOrd for Entry<M> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<M: Machine> Ord for Entry<M> {
    /// Reversed, so the max-heap pops the earliest (time, seq) first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.time, other.seq).cmp(&(self.time, self.seq))
    }
}

/// One node: its process and everything the simulator keeps about it.
pub(crate) struct NodeSlot<M: Machine> {
    id: NodeId,
    machine: Option<M>,
    status: NodeStatus,
    clock: NodeClock,
    incarnation: u32,
    seeds: ChaCha8Rng,
    net: ChaCha8Rng,
    /// The local deadline a queued timer event stands for (None: no live timer event).
    timer: Option<Instant>,
    timer_generation: u64,
    pause_generation: u64,
    inbox: VecDeque<Input<M>>,
}

impl<M: Machine> NodeSlot<M> {
    pub(crate) fn view(&self, now: SimTime) -> NodeView<'_, M> {
        NodeView {
            id: self.id,
            status: self.status,
            machine: self.machine.as_ref(),
            local_now: self.clock.local(now),
            incarnation: self.incarnation,
        }
    }
}

struct PartitionState {
    links: Vec<(NodeId, NodeId)>,
    active: bool,
}

type Factory<M> = Box<dyn FnMut(NodeId, u64, Instant) -> M>;
type SizeFn<M> = Box<dyn Fn(&<M as Machine>::Msg) -> usize>;
type HashFn<M> = Box<dyn Fn(&<M as Machine>::Msg, &mut Fnv1a)>;
type AfterCall<M> = Box<dyn FnMut(NodeId, &M)>;

/// A deterministic simulation of `n` nodes running machine `M`.
pub struct Sim<M: Machine> {
    seed: u64,
    n: u16,
    socket_buffer: usize,
    record_events: bool,
    replay: String,
    max_steps_per_instant: u64,
    check_each_step: bool,
    now: SimTime,
    seq: u64,
    queue: BinaryHeap<Entry<M>>,
    nodes: Vec<NodeSlot<M>>,
    factory: Factory<M>,
    default_link: Link,
    links: BTreeMap<(NodeId, NodeId), Link>,
    blocked: Blocked,
    partitions: BTreeMap<PartitionId, PartitionState>,
    next_partition: u64,
    invariants: Vec<(String, Box<dyn Invariant<M>>)>,
    msg_size: SizeFn<M>,
    msg_hash: Option<HashFn<M>>,
    after_call: Option<AfterCall<M>>,
    trace: Fnv1a,
    /// `MOOSEHERD_SIM_MESSAGES=1`: print every delivered message to stderr (replaying one seed).
    print_messages: bool,
    stats: SimStats,
    transmits: Vec<Transmit<M::Msg>>,
    step_events: Vec<(NodeId, M::Event)>,
    event_log: Vec<(SimTime, NodeId, M::Event)>,
    violation: Option<Violation>,
    dirty: Vec<NodeId>,
    schedule_text: String,
    instant_steps: u64,
}

const T_DELIVER: u8 = 1;
const T_TIMER: u8 = 2;
const T_EVENT: u8 = 3;
const T_FAULT: u8 = 4;
const T_DROP: u8 = 5;
const T_ACTION: u8 = 6;

impl<M: Machine> Sim<M> {
    /// A rack of `config.nodes` machines, each built by `factory(id, seed, local_now)` at real
    /// time zero. The factory is called again, with a new seed, for every restart.
    pub fn new(
        config: SimConfig,
        factory: impl FnMut(NodeId, u64, Instant) -> M + 'static,
    ) -> Self {
        let n = config.nodes;
        let mut clock_rng = stream(config.seed, Purpose::Clock, 0);
        let bound = u64::from(config.drift_bound_ppm.min(999_999));
        let mut nodes = Vec::with_capacity(usize::from(n));
        for i in 0..n {
            let id = NodeId(i);
            // always draw both values so a fixed clock for one node does not shift the others
            let offset_us = below_incl(&mut clock_rng, micros(config.max_clock_offset));
            let drift = below_incl(&mut clock_rng, 2 * bound) as i64 - bound as i64;
            let drawn = NodeClock {
                offset_us,
                drift_ppm: drift as i32,
            };
            nodes.push(NodeSlot {
                id,
                machine: None,
                status: NodeStatus::Up,
                clock: config.clocks.get(&id).copied().unwrap_or(drawn),
                incarnation: 0,
                seeds: stream(config.seed, Purpose::NodeSeed, u32::from(i)),
                net: stream(config.seed, Purpose::Net, u32::from(i)),
                timer: None,
                timer_generation: 0,
                pause_generation: 0,
                inbox: VecDeque::new(),
            });
        }
        let mut sim = Sim {
            seed: config.seed,
            n,
            socket_buffer: config.socket_buffer,
            record_events: config.record_events,
            replay: config.replay.replace("{seed}", &config.seed.to_string()),
            max_steps_per_instant: config.max_steps_per_instant,
            check_each_step: config.check_each_step,
            now: SimTime::ZERO,
            seq: 0,
            queue: BinaryHeap::new(),
            nodes,
            factory: Box::new(factory),
            default_link: Link::new(&config.link),
            links: BTreeMap::new(),
            blocked: Blocked::new(n),
            partitions: BTreeMap::new(),
            next_partition: 0,
            invariants: Vec::new(),
            msg_size: Box::new(|_| std::mem::size_of::<M::Msg>()),
            msg_hash: None,
            after_call: None,
            trace: Fnv1a::new(),
            print_messages: std::env::var_os("MOOSEHERD_SIM_MESSAGES").is_some(),
            stats: SimStats {
                nodes: vec![NodeStats::default(); usize::from(n)],
                ..SimStats::default()
            },
            transmits: Vec::new(),
            step_events: Vec::new(),
            event_log: Vec::new(),
            violation: None,
            dirty: Vec::new(),
            schedule_text: String::new(),
            instant_steps: 0,
        };
        for i in 0..n {
            let slot = &mut sim.nodes[usize::from(i)];
            let seed = slot.seeds.next_u64();
            let local = slot.clock.local(SimTime::ZERO);
            slot.machine = Some((sim.factory)(NodeId(i), seed, local));
            // outputs are drained at the first step, after the caller set size and hash functions
            sim.dirty.push(NodeId(i));
        }
        if let Some(every) = config.check_every {
            sim.push(SimTime::ZERO + every, Ev::Checkpoint(every));
        }
        sim
    }

    // ---- setup ---------------------------------------------------------------------------

    /// Size of a datagram on the wire (e.g. postcard size + frame overhead), for byte counts.
    /// Default: `size_of::<M::Msg>()`.
    pub fn with_msg_size(mut self, f: impl Fn(&M::Msg) -> usize + 'static) -> Self {
        self.msg_size = Box::new(f);
        self
    }

    /// How a delivered message enters the trace hash. Default: its Debug text (slower).
    pub fn with_msg_hasher(mut self, f: impl Fn(&M::Msg, &mut Fnv1a) + 'static) -> Self {
        self.msg_hash = Some(Box::new(f));
        self
    }

    /// Call `f` after every call into a node, once its transmits and events are drained and
    /// before they go out. This is where a test copies what a real node would have written to
    /// disk (e.g. the lease's durable epoch) so the factory can hand it to the next incarnation.
    pub fn with_after_call(mut self, f: impl FnMut(NodeId, &M) + 'static) -> Self {
        self.after_call = Some(Box::new(f));
        self
    }

    /// Apply every fault of `schedule` at its time (may be called more than once).
    pub fn with_schedule(mut self, schedule: &Schedule) -> Self {
        self.add_schedule(schedule);
        self
    }

    /// Apply every fault of `schedule` at its time.
    pub fn add_schedule(&mut self, schedule: &Schedule) {
        for f in &schedule.faults {
            self.push(f.at, Ev::Fault(f.fault.clone()));
        }
        let _ = write!(self.schedule_text, "{schedule}");
    }

    /// Check `invariant` after every step from now on; `name` appears in its violations.
    pub fn add_invariant(
        &mut self,
        name: impl Into<String>,
        invariant: impl Invariant<M> + 'static,
    ) {
        self.invariants.push((name.into(), Box::new(invariant)));
    }

    /// Builder form of [`Sim::add_invariant`].
    pub fn with_invariant(
        mut self,
        name: impl Into<String>,
        invariant: impl Invariant<M> + 'static,
    ) -> Self {
        self.add_invariant(name, invariant);
        self
    }

    /// Change what the directed link `from -> to` does to datagrams sent from now on.
    pub fn set_link(&mut self, from: NodeId, to: NodeId, link: LinkConfig) {
        self.links.insert((from, to), Link::new(&link));
    }

    /// Change every link (drops per-link overrides).
    pub fn set_all_links(&mut self, link: LinkConfig) {
        self.links.clear();
        self.default_link = Link::new(&link);
    }

    /// Run `f` on `node`'s machine at real time `at` (with its local time). A paused node runs it
    /// right after it resumes; a crashed node never does.
    pub fn at(&mut self, at: SimTime, node: NodeId, f: impl FnOnce(&mut M, Instant) + 'static) {
        let at = at.max(self.now);
        self.push(
            at,
            Ev::Action {
                node,
                f: Box::new(f),
            },
        );
    }

    /// Run `f` on the whole simulator at real time `at` (crash whoever leads, partition, ...).
    pub fn at_sim(&mut self, at: SimTime, f: impl FnOnce(&mut Sim<M>) + 'static) {
        let at = at.max(self.now);
        self.push(at, Ev::Control(Box::new(f)));
    }

    // ---- running -------------------------------------------------------------------------

    /// Real time now.
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// The run's seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Number of nodes.
    pub fn len(&self) -> u16 {
        self.n
    }

    /// Whether the rack has no nodes.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Process events up to and including real time `until`, then set the time to `until`.
    /// Stops at the first violated invariant and returns it (and again on every later call).
    pub fn run_until(&mut self, until: SimTime) -> Result<(), Violation> {
        self.check_stopped()?;
        self.flush_dirty()?;
        while let Some(top) = self.queue.peek() {
            if top.time > until {
                break;
            }
            self.step_inner()?;
        }
        self.now = self.now.max(until);
        if !self.check_each_step {
            self.check_invariants()?;
        }
        Ok(())
    }

    /// [`Sim::run_until`] `now + d`.
    pub fn run_for(&mut self, d: Duration) -> Result<(), Violation> {
        self.run_until(self.now + d)
    }

    /// Process the next event. `Ok(false)` when nothing is queued.
    pub fn step(&mut self) -> Result<bool, Violation> {
        self.check_stopped()?;
        self.flush_dirty()?;
        if self.queue.is_empty() {
            return Ok(false);
        }
        self.step_inner()?;
        Ok(true)
    }

    /// Time of the next queued event.
    pub fn next_event_at(&self) -> Option<SimTime> {
        self.queue.peek().map(|e| e.time)
    }

    // ---- looking -------------------------------------------------------------------------

    /// A node's machine, unless it is crashed (or `id` is outside the rack).
    pub fn node(&self, id: NodeId) -> Option<&M> {
        self.nodes.get(usize::from(id.0))?.machine.as_ref()
    }

    /// A node's machine to change by hand; its output is drained at the next step.
    pub fn node_mut(&mut self, id: NodeId) -> Option<&mut M> {
        let slot = self.nodes.get_mut(usize::from(id.0))?;
        if slot.machine.is_some() {
            self.dirty.push(id);
        }
        slot.machine.as_mut()
    }

    /// Up, paused or down (None outside the rack).
    pub fn status(&self, id: NodeId) -> Option<NodeStatus> {
        Some(self.nodes.get(usize::from(id.0))?.status)
    }

    /// A node's local clock reading now.
    pub fn clock(&self, id: NodeId) -> Option<Instant> {
        Some(self.nodes.get(usize::from(id.0))?.clock.local(self.now))
    }

    /// A node's clock parameters (offset, drift).
    pub fn clock_params(&self, id: NodeId) -> Option<NodeClock> {
        Some(self.nodes.get(usize::from(id.0))?.clock)
    }

    /// The rack as invariants see it.
    pub fn view(&self) -> SimView<'_, M> {
        SimView {
            now: self.now,
            nodes: &self.nodes,
            events: &[],
        }
    }

    /// Every event emitted so far (only with [`SimConfig::record_events`]).
    pub fn event_log(&self) -> &[(SimTime, NodeId, M::Event)] {
        &self.event_log
    }

    /// Counts so far.
    pub fn stats(&self) -> &SimStats {
        &self.stats
    }

    /// The trace hash so far.
    pub fn trace_hash(&self) -> u64 {
        self.trace.value()
    }

    /// The first violation, if the run has stopped.
    pub fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    /// The report of the run so far.
    pub fn report(&self) -> SimReport {
        SimReport {
            seed: self.seed,
            duration: self.now.elapsed(),
            trace_hash: self.trace.value(),
            stats: self.stats.clone(),
            violations: self.violation.iter().cloned().collect(),
            replay: self.replay.clone(),
            schedule: self.schedule_text.clone(),
        }
    }

    // ---- faults, applied now -------------------------------------------------------------

    /// Kill a node's process now: its machine and unread datagrams are lost.
    pub fn crash(&mut self, id: NodeId) {
        self.apply_fault(Fault::Crash(id));
    }

    /// Start a crashed node again with a fresh machine from the factory.
    pub fn restart(&mut self, id: NodeId) {
        self.apply_fault(Fault::Restart(id));
    }

    /// Freeze a node for `dur` (SIGSTOP): it gets no calls, datagrams queue up, its clock runs.
    pub fn pause(&mut self, id: NodeId, dur: Duration) {
        self.apply_fault(Fault::Pause { node: id, dur });
    }

    /// Thaw a paused node now (earlier than its pause would end).
    pub fn resume(&mut self, id: NodeId) {
        if let Some(slot) = self.nodes.get(usize::from(id.0)) {
            let generation = slot.pause_generation;
            self.do_resume(id, generation);
        }
    }

    /// Cut links until [`Sim::heal`].
    pub fn partition(&mut self, kind: &PartitionKind) -> PartitionId {
        let links = kind.links(self.n);
        self.trace_fault(&format!("partition {kind}"));
        self.blocked.add(&links, 1);
        let pid = PartitionId(self.next_partition);
        self.next_partition += 1;
        self.partitions.insert(
            pid,
            PartitionState {
                links,
                active: true,
            },
        );
        pid
    }

    /// Restore the links of a partition (no-op if already healed).
    pub fn heal(&mut self, pid: PartitionId) {
        if let Some(p) = self.partitions.remove(&pid) {
            if p.active {
                self.blocked.add(&p.links, -1);
            }
            self.trace_fault(&format!("heal {}", pid.0));
        }
    }

    /// Restore every link.
    pub fn heal_all(&mut self) {
        let ids: Vec<PartitionId> = self.partitions.keys().copied().collect();
        for pid in ids {
            self.heal(pid);
        }
    }

    /// Whether datagrams from `from` to `to` are currently dropped by a partition.
    pub fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        from.0 < self.n && to.0 < self.n && self.blocked.is_blocked(from, to)
    }

    // ---- internals -----------------------------------------------------------------------

    fn push(&mut self, time: SimTime, ev: Ev<M>) {
        self.seq += 1;
        self.queue.push(Entry {
            time,
            seq: self.seq,
            ev,
        });
        let len = self.queue.len() as u64;
        if len > self.stats.max_queue {
            self.stats.max_queue = len;
        }
    }

    fn check_stopped(&self) -> Result<(), Violation> {
        match &self.violation {
            Some(v) => Err(v.clone()),
            None => Ok(()),
        }
    }

    fn flush_dirty(&mut self) -> Result<(), Violation> {
        if self.dirty.is_empty() {
            return Ok(());
        }
        let dirty = std::mem::take(&mut self.dirty);
        for id in dirty {
            if self.nodes[usize::from(id.0)].status == NodeStatus::Up {
                self.after_call(id);
            }
        }
        self.check_invariants()
    }

    fn step_inner(&mut self) -> Result<(), Violation> {
        let Some(entry) = self.queue.pop() else {
            return Ok(());
        };
        if entry.time > self.now {
            self.now = entry.time;
            self.instant_steps = 0;
        }
        self.instant_steps += 1;
        self.stats.steps += 1;
        if self.instant_steps > self.max_steps_per_instant {
            let mut v = Violation::new(
                format!(
                    "livelock: more than {} steps at one instant",
                    self.max_steps_per_instant
                ),
                self.now,
            );
            v.invariant = "simulator".into();
            return Err(self.stop(v));
        }
        let acted = match entry.ev {
            Ev::Deliver {
                from,
                to,
                msg,
                bytes,
            } => self.deliver(from, to, msg, bytes),
            Ev::Timer { node, generation } => self.fire_timer(node, generation),
            Ev::Fault(f) => {
                self.apply_fault(f);
                true
            }
            Ev::Resume { node, generation } => self.do_resume(node, generation),
            Ev::Heal(pid) => {
                self.heal(pid);
                true
            }
            Ev::FlapToggle { pid, period, end } => self.flap(pid, period, end),
            Ev::Action { node, f } => self.action(node, f),
            Ev::Control(f) => {
                f(self);
                self.flush_dirty()?;
                true
            }
            Ev::Checkpoint(every) => {
                self.push(self.now + every, Ev::Checkpoint(every));
                return self.check_invariants();
            }
        };
        if acted && self.check_each_step {
            self.check_invariants()
        } else {
            Ok(())
        }
    }

    fn stop(&mut self, mut v: Violation) -> Violation {
        v.seed = self.seed;
        v.replay = self.replay.clone();
        self.violation = Some(v.clone());
        v
    }

    fn check_invariants(&mut self) -> Result<(), Violation> {
        let mut result = Ok(());
        if !self.invariants.is_empty() {
            let mut invariants = std::mem::take(&mut self.invariants);
            let view = SimView {
                now: self.now,
                nodes: &self.nodes,
                events: &self.step_events,
            };
            for (name, inv) in invariants.iter_mut() {
                if let Err(mut v) = inv.check(&view) {
                    v.invariant = name.clone();
                    result = Err(v);
                    break;
                }
            }
            self.invariants = invariants;
        }
        self.step_events.clear();
        result.map_err(|v| self.stop(v))
    }

    fn deliver(&mut self, from: NodeId, to: NodeId, msg: M::Msg, bytes: u32) -> bool {
        let i = usize::from(to.0);
        if self.blocked.is_blocked(from, to) {
            // cut while in flight
            self.stats.nodes[usize::from(from.0)].dropped_partition += 1;
            self.stats.dropped += 1;
            return false;
        }
        match self.nodes[i].status {
            NodeStatus::Down => {
                self.drop_at_receiver(to);
                false
            }
            NodeStatus::Paused => {
                let slot = &mut self.nodes[i];
                if slot.inbox.len() < self.socket_buffer {
                    slot.inbox.push_back(Input::Msg { from, msg, bytes });
                } else {
                    self.drop_at_receiver(to);
                }
                false
            }
            NodeStatus::Up => {
                self.deliver_now(from, to, msg, bytes);
                true
            }
        }
    }

    fn drop_at_receiver(&mut self, to: NodeId) {
        self.stats.nodes[usize::from(to.0)].dropped_at_receiver += 1;
        self.stats.dropped += 1;
        self.trace.bytes(&[T_DROP]);
        self.trace.u64(self.now.0);
        self.trace.u64(u64::from(to.0));
    }

    fn deliver_now(&mut self, from: NodeId, to: NodeId, msg: M::Msg, bytes: u32) {
        if self.print_messages {
            eprintln!(
                "{:>10.3} s  {from} -> {to}  {msg:?}",
                self.now.0 as f64 / 1e6
            );
        }
        let t = &mut self.trace;
        t.bytes(&[T_DELIVER]);
        t.u64(self.now.0);
        t.u64((u64::from(from.0) << 16) | u64::from(to.0));
        match &self.msg_hash {
            Some(h) => h(&msg, t),
            None => {
                let _ = write!(t, "{msg:?}");
            }
        }
        self.stats.delivered += 1;
        let st = &mut self.stats.nodes[usize::from(to.0)];
        st.msgs_received += 1;
        st.bytes_received += u64::from(bytes);
        let slot = &mut self.nodes[usize::from(to.0)];
        let local = slot.clock.local(self.now);
        if let Some(m) = slot.machine.as_mut() {
            m.handle_message(local, from, msg);
        }
        self.after_call(to);
    }

    fn fire_timer(&mut self, node: NodeId, generation: u64) -> bool {
        let i = usize::from(node.0);
        let slot = &mut self.nodes[i];
        if generation != slot.timer_generation || slot.timer.is_none() {
            return false;
        }
        slot.timer = None;
        if slot.status != NodeStatus::Up {
            // paused: re-armed (overdue, so at once) when it resumes
            return false;
        }
        let local = slot.clock.local(self.now);
        self.trace.bytes(&[T_TIMER]);
        self.trace.u64(self.now.0);
        self.trace.u64(u64::from(node.0));
        self.stats.timeouts += 1;
        self.stats.nodes[i].timeouts += 1;
        if let Some(m) = self.nodes[i].machine.as_mut() {
            m.handle_timeout(local);
        }
        self.after_call(node);
        true
    }

    /// After any call into a node: send what it wants sent, collect its events, re-arm its timer.
    fn after_call(&mut self, id: NodeId) {
        let i = usize::from(id.0);
        let mut transmits = std::mem::take(&mut self.transmits);
        if let Some(m) = self.nodes[i].machine.as_mut() {
            while let Some(t) = m.poll_transmit() {
                transmits.push(t);
            }
            while let Some(e) = m.poll_event() {
                self.trace.bytes(&[T_EVENT]);
                self.trace.u64(u64::from(id.0));
                let _ = write!(self.trace, "{e:?}");
                self.stats.events += 1;
                self.stats.nodes[i].events += 1;
                if self.record_events {
                    self.event_log.push((self.now, id, e.clone()));
                }
                self.step_events.push((id, e));
            }
            if let Some(f) = self.after_call.as_mut() {
                f(id, m);
            }
        }
        for t in transmits.drain(..) {
            self.send(id, t.to, t.msg);
        }
        self.transmits = transmits;
        self.rearm(id);
    }

    fn rearm(&mut self, id: NodeId) {
        let now = self.now;
        let slot = &mut self.nodes[usize::from(id.0)];
        let want = match (&slot.machine, slot.status) {
            (Some(m), NodeStatus::Up) => m.poll_timeout(),
            _ => None,
        };
        if want == slot.timer {
            return;
        }
        slot.timer = want;
        slot.timer_generation += 1;
        if let Some(deadline) = want {
            let at = slot.clock.real_at(deadline).max(now);
            let generation = slot.timer_generation;
            self.push(
                at,
                Ev::Timer {
                    node: id,
                    generation,
                },
            );
        }
    }

    fn send(&mut self, from: NodeId, to: NodeId, msg: M::Msg) {
        let fi = usize::from(from.0);
        let bytes = u32::try_from((self.msg_size)(&msg)).unwrap_or(u32::MAX);
        let st = &mut self.stats.nodes[fi];
        st.msgs_sent += 1;
        st.bytes_sent += u64::from(bytes);
        if to.0 >= self.n {
            st.dropped_partition += 1;
            self.stats.dropped += 1;
            return;
        }
        let link = if self.links.is_empty() {
            &self.default_link
        } else {
            self.links.get(&(from, to)).unwrap_or(&self.default_link)
        };
        let fate = link.fate(&mut self.nodes[fi].net);
        if self.blocked.is_blocked(from, to) {
            self.stats.nodes[fi].dropped_partition += 1;
            self.stats.dropped += 1;
            return;
        }
        if fate.lost {
            self.stats.nodes[fi].dropped_loss += 1;
            self.stats.dropped += 1;
            return;
        }
        if let Some(d) = fate.duplicate_delay_us {
            self.stats.duplicated += 1;
            let at = SimTime(self.now.0.saturating_add(d));
            self.push(
                at,
                Ev::Deliver {
                    from,
                    to,
                    msg: msg.clone(),
                    bytes,
                },
            );
        }
        let at = SimTime(self.now.0.saturating_add(fate.delay_us));
        self.push(
            at,
            Ev::Deliver {
                from,
                to,
                msg,
                bytes,
            },
        );
    }

    fn trace_fault(&mut self, what: &str) {
        self.stats.faults += 1;
        self.trace.bytes(&[T_FAULT]);
        self.trace.u64(self.now.0);
        self.trace.bytes(what.as_bytes());
    }

    fn ignored(&mut self, what: &str) {
        self.stats.faults_ignored += 1;
        self.trace.bytes(&[T_FAULT, 0]);
        self.trace.u64(self.now.0);
        self.trace.bytes(what.as_bytes());
    }

    fn apply_fault(&mut self, fault: Fault) {
        let now = self.now;
        match fault {
            Fault::Crash(id) => {
                let Some(slot) = self.nodes.get_mut(usize::from(id.0)) else {
                    return self.ignored("crash outside the rack");
                };
                if slot.status == NodeStatus::Down {
                    return self.ignored(&format!("crash {id}: already down"));
                }
                slot.status = NodeStatus::Down;
                slot.machine = None;
                slot.timer = None;
                slot.timer_generation += 1;
                slot.pause_generation += 1;
                let lost = slot.inbox.len() as u64;
                slot.inbox.clear();
                let st = &mut self.stats.nodes[usize::from(id.0)];
                st.crashes += 1;
                st.dropped_at_receiver += lost;
                self.stats.dropped += lost;
                self.trace_fault(&format!("crash {id}"));
            }
            Fault::Restart(id) => {
                let Some(slot) = self.nodes.get_mut(usize::from(id.0)) else {
                    return self.ignored("restart outside the rack");
                };
                if slot.status != NodeStatus::Down {
                    return self.ignored(&format!("restart {id}: not down"));
                }
                slot.incarnation += 1;
                let seed = slot.seeds.next_u64();
                let local = slot.clock.local(now);
                slot.machine = Some((self.factory)(id, seed, local));
                slot.status = NodeStatus::Up;
                self.stats.nodes[usize::from(id.0)].restarts += 1;
                self.trace_fault(&format!("restart {id} seed {seed}"));
                self.after_call(id);
            }
            Fault::Pause { node, dur } => {
                let Some(slot) = self.nodes.get_mut(usize::from(node.0)) else {
                    return self.ignored("pause outside the rack");
                };
                if slot.status != NodeStatus::Up {
                    return self.ignored(&format!("pause {node}: not up"));
                }
                slot.status = NodeStatus::Paused;
                slot.pause_generation += 1;
                let generation = slot.pause_generation;
                self.stats.nodes[usize::from(node.0)].pauses += 1;
                self.trace_fault(&format!("pause {node} {}", micros(dur)));
                self.push(now + dur, Ev::Resume { node, generation });
            }
            Fault::Partition { kind, dur } => {
                let pid = self.partition(&kind);
                self.push(now + dur, Ev::Heal(pid));
            }
            Fault::Flap { kind, period, dur } => {
                let pid = self.partition(&kind);
                let end = now + dur;
                let period = period.max(Duration::from_micros(1));
                self.push((now + period).min(end), Ev::FlapToggle { pid, period, end });
            }
        }
    }

    fn flap(&mut self, pid: PartitionId, period: Duration, end: SimTime) -> bool {
        let now = self.now;
        let Some(p) = self.partitions.get_mut(&pid) else {
            return false;
        };
        if now >= end {
            self.heal(pid);
            return true;
        }
        p.active = !p.active;
        let on = p.active;
        self.blocked.add(&p.links, if on { 1 } else { -1 });
        self.trace_fault(&format!(
            "flap {} {}",
            pid.0,
            if on { "cut" } else { "restored" }
        ));
        self.push((now + period).min(end), Ev::FlapToggle { pid, period, end });
        true
    }

    fn do_resume(&mut self, id: NodeId, generation: u64) -> bool {
        let Some(slot) = self.nodes.get_mut(usize::from(id.0)) else {
            return false;
        };
        if slot.status != NodeStatus::Paused || slot.pause_generation != generation {
            return false;
        }
        slot.status = NodeStatus::Up;
        let inbox = std::mem::take(&mut slot.inbox);
        self.trace_fault(&format!("resume {id} with {} queued", inbox.len()));
        // socket buffer first, in arrival order; then the overdue timeout (re-armed at now)
        for input in inbox {
            match input {
                Input::Msg { from, msg, bytes } => self.deliver_now(from, id, msg, bytes),
                Input::Action(f) => self.run_action(id, f),
            }
        }
        self.after_call(id);
        true
    }

    fn action(&mut self, node: NodeId, f: Action<M>) -> bool {
        let Some(slot) = self.nodes.get_mut(usize::from(node.0)) else {
            return false;
        };
        match slot.status {
            NodeStatus::Up => {
                self.run_action(node, f);
                true
            }
            NodeStatus::Paused => {
                slot.inbox.push_back(Input::Action(f));
                false
            }
            NodeStatus::Down => {
                self.ignored(&format!("action on {node}: down"));
                false
            }
        }
    }

    fn run_action(&mut self, node: NodeId, f: Action<M>) {
        self.trace.bytes(&[T_ACTION]);
        self.trace.u64(self.now.0);
        self.trace.u64(u64::from(node.0));
        let slot = &mut self.nodes[usize::from(node.0)];
        let local = slot.clock.local(self.now);
        if let Some(m) = slot.machine.as_mut() {
            f(m, local);
        }
        self.after_call(node);
    }
}
