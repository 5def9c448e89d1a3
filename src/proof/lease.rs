//! The lease proof: never two masters, never two owners of the VIP.
//!
//! Each simulated node is the real [`LeaseMachine`] plus a model of its host driven by the real
//! [`plan`](crate::core::plan): the plan's actions change the host model, which feeds the plan
//! again. What the kernel keeps (the VIP with its lifetime, the replica role, the metadata mount)
//! survives an agent crash, as it does on a Pi; mfsmaster dies with the agent (systemd
//! `KillMode=control-group`). A frozen node (SIGSTOP) runs no code at all, but its clock and the
//! kernel's VIP lifetime run on. Every datagram may be lost, delayed, duplicated or reordered,
//! links may be cut one way, and clocks drift within the bound.
//!
//! Invariants, checked after every step:
//! 1. **One believer**: at most one node believes it holds the lease at any real instant.
//! 2. **One VIP**: at most one node has the VIP configured (kernel deadline not passed).
//! 3. **Epochs increase**: every election has an epoch above every earlier election's.
//! 4. **Fence before promote**: when a node promotes, no other node has a VIP, and every other node
//!    that ran throughout its last two leases has stopped mfsmaster. A node frozen past its fencing
//!    point cannot fence itself: the kernel drops its VIP on time (checked), and its thawed
//!    mfsmaster is kept off the metadata by the replication layer (DRBD refuses a second primary;
//!    mfsmaster's lock on a shared directory) until its agent demotes it a moment later. That part
//!    is DRBD's and MooseFS's guarantee, not this proof's.
//!
//! Liveness is checked after the faults stop: within a bounded time some node leads and owns the VIP.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use serde::Serialize;

use crate::core::lease::{
    Eligibility, LeaseConfig, LeaseDurable, LeaseEvent, LeaseMachine, LeaseMsg, UnsafeVariant,
};
use crate::core::plan::{self, Action, Backend, Desired, MasterState, Observed, ReplicaRole};
use crate::core::{Instant, Machine, NodeId, Transmit};
use crate::sim::{
    FaultProfile, NodeStatus, PartitionChoice, Schedule, Sim, SimConfig, SimTime, SimView,
    Violation,
};

/// How long the host takes for the slow steps (mfsmaster start 0.4-0.6 s measured; a stop is a
/// SIGTERM with a deadline inside the fencing budget, then SIGKILL).
pub const MASTER_START: Duration = Duration::from_millis(500);
pub const MASTER_STOP: Duration = Duration::from_millis(400);

/// Host state the kernel keeps across an agent crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernel {
    pub vip_until: Option<Instant>,
    pub replica: ReplicaRole,
    pub meta_mounted: bool,
}

/// What survives a crash, per node: the lease's durable state and the kernel's.
#[derive(Debug, Default)]
pub struct Disks {
    pub durable: BTreeMap<NodeId, LeaseDurable>,
    pub kernel: BTreeMap<NodeId, Kernel>,
}

/// What a simulated node reports (for invariants and measurements).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RackEvent {
    Lease(LeaseEvent),
    /// Started promoting (replica primary) for `epoch`.
    Promoting {
        epoch: u64,
    },
    /// The VIP went up (announced) for `epoch`.
    VipUp {
        epoch: u64,
    },
    /// Fencing for `epoch` completed.
    Fenced {
        epoch: u64,
    },
}

/// One node: the real lease machine and a model of its host.
pub struct RackNode {
    id: NodeId,
    lease: LeaseMachine,
    disks: Rc<RefCell<Disks>>,
    master: MasterState,
    master_done_at: Option<Instant>,
    master_unclean: bool,
    provisioner: bool,
    backend: Backend,
    events: VecDeque<RackEvent>,
}

impl RackNode {
    fn kernel(&self) -> Kernel {
        self.disks
            .borrow()
            .kernel
            .get(&self.id)
            .copied()
            .unwrap_or(Kernel {
                vip_until: None,
                replica: ReplicaRole::Secondary,
                meta_mounted: false,
            })
    }

    fn set_kernel(&self, k: Kernel) {
        self.disks.borrow_mut().kernel.insert(self.id, k);
    }

    fn observed(&self, now: Instant) -> Observed {
        let k = self.kernel();
        Observed {
            replica: k.replica,
            meta_mounted: k.meta_mounted,
            master: self.master,
            master_unclean: self.master_unclean,
            vip_until: k.vip_until.filter(|u| *u > now),
            provisioner: self.provisioner,
            metalogger: false,
            chunkserver_running: false,
            mount_healthy: false,
        }
    }

    /// The lease machine (for invariants).
    pub fn lease(&self) -> &LeaseMachine {
        &self.lease
    }

    /// The VIP deadline the kernel holds for this node, if any.
    pub fn vip_until(&self) -> Option<Instant> {
        self.kernel().vip_until
    }

    /// mfsmaster on this node.
    pub fn master(&self) -> MasterState {
        self.master
    }

    /// Asks this node, if it leads, to hand over to `to` (the operator's `switchover` command).
    pub fn switchover(&mut self, now: Instant, to: Option<NodeId>) -> bool {
        let ok = self.lease.request_switchover(now, to);
        self.drive(now);
        ok
    }

    /// Runs the plan until the host model is settled for now.
    fn drive(&mut self, now: Instant) {
        if let Some(t) = self.master_done_at
            && now >= t
        {
            self.master_done_at = None;
            self.master = match self.master {
                MasterState::Starting => MasterState::Ready,
                MasterState::Stopping => MasterState::Stopped,
                s => s,
            };
        }
        for _ in 0..16 {
            let desired = match (self.lease.leader_epoch(now), self.lease.lease_end()) {
                (Some(epoch), Some(lease_end)) => Desired::Leader { epoch, lease_end },
                _ => Desired::Standby,
            };
            let actions = plan::next_actions(desired, &self.observed(now), self.backend, now);
            if actions.is_empty() {
                break;
            }
            for a in actions {
                self.apply(a, now);
            }
        }
        if let Some(epoch) = self.lease.fencing()
            && self.observed(now).is_fenced(now)
        {
            self.lease.fenced(now, epoch);
            self.events.push_back(RackEvent::Fenced { epoch });
        }
    }

    fn apply(&mut self, a: Action, now: Instant) {
        let mut k = self.kernel();
        match a {
            Action::ReplicaPrimary { epoch } => {
                self.events.push_back(RackEvent::Promoting { epoch });
                k.replica = ReplicaRole::Primary;
            }
            Action::MountMeta { .. } => k.meta_mounted = true,
            Action::StartMaster { .. } => {
                self.master = MasterState::Starting;
                self.master_done_at = Some(now + MASTER_START);
                self.master_unclean = false;
            }
            Action::VipUp {
                epoch,
                valid_s,
                announce,
            } => {
                // Worst case for safety: the kernel removes the address as late as it may.
                k.vip_until =
                    Some(now + Duration::from_secs(u64::from(valid_s)) + plan::KERNEL_VIP_SLACK);
                if announce {
                    self.events.push_back(RackEvent::VipUp { epoch });
                }
            }
            Action::StartProvisioner { .. } => self.provisioner = true,
            Action::StopProvisioner => self.provisioner = false,
            Action::VipDown => k.vip_until = None,
            Action::StopMaster => {
                self.master = MasterState::Stopping;
                self.master_done_at = Some(now + MASTER_STOP);
            }
            Action::UnmountMeta => k.meta_mounted = false,
            Action::ReplicaSecondary => k.replica = ReplicaRole::Secondary,
            Action::StartMetalogger
            | Action::StopMetalogger
            | Action::StartChunkserver
            | Action::Remount => {}
        }
        self.set_kernel(k);
    }
}

impl Machine for RackNode {
    type Msg = LeaseMsg;
    type Event = RackEvent;

    fn id(&self) -> NodeId {
        self.id
    }

    fn handle_message(&mut self, now: Instant, from: NodeId, msg: LeaseMsg) {
        self.lease.handle_message(now, from, msg);
        self.drive(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.lease.handle_timeout(now);
        self.drive(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.lease.poll_timeout();
        if let Some(m) = self.master_done_at {
            t = Some(t.map_or(m, |x| x.min(m)));
        }
        // The VIP is refreshed when a renewal moves the lease end, which drives the plan anyway.
        t
    }

    fn poll_transmit(&mut self) -> Option<Transmit<LeaseMsg>> {
        // The durable state is written (fsync) before anything is sent.
        let d = self.lease.durable();
        self.disks.borrow_mut().durable.insert(self.id, d);
        self.lease.poll_transmit()
    }

    fn poll_event(&mut self) -> Option<RackEvent> {
        if let Some(e) = self.lease.poll_event() {
            return Some(RackEvent::Lease(e));
        }
        self.events.pop_front()
    }
}

/// The rack of a proof run.
#[derive(Debug, Clone)]
pub struct RackShape {
    pub nodes: u16,
    pub voters: Vec<NodeId>,
    /// Master candidates and their priorities.
    pub candidates: Vec<(NodeId, u8)>,
    pub cfg: LeaseConfig,
    pub backend: Backend,
}

impl RackShape {
    /// Five nodes: three voters; candidates n0 (200), n1 (150) and the non-voter n3 (100).
    pub fn five(variant: Option<UnsafeVariant>) -> Self {
        let mut cfg = LeaseConfig::new(
            Duration::from_millis(3000),
            Duration::from_millis(1000),
            10_000,
        );
        cfg.unsafe_variant = variant;
        Self {
            nodes: 5,
            voters: vec![NodeId(0), NodeId(1), NodeId(2)],
            candidates: vec![(NodeId(0), 200), (NodeId(1), 150), (NodeId(3), 100)],
            cfg,
            backend: Backend::SharedDir,
        }
    }
}

/// Which schedules to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Crashes, restarts, long pauses, every partition kind, loss, jitter, duplicates, drift.
    Harsh,
    /// 20 % loss, 200 ms jitter, drift and short pauses (below the fencing budget), no crash or
    /// partition: any election after the first is a false failover.
    Lossy,
    /// Crashes and restarts only, on a LAN with 2 % loss: the failover time of a lost leader.
    Crashes,
    /// Planned switchovers every 10 s on a LAN with 2 % loss: the write pause of a switchover.
    Switchover,
}

impl Scenario {
    /// How often the operator asks the leader for a switchover in this scenario.
    fn switchover_every(self) -> Option<Duration> {
        match self {
            Scenario::Harsh => Some(Duration::from_secs(17)),
            Scenario::Switchover => Some(Duration::from_secs(10)),
            Scenario::Lossy | Scenario::Crashes => None,
        }
    }
}

impl Scenario {
    pub fn profile(self) -> FaultProfile {
        use crate::sim::{Jitter, LinkConfig};
        match self {
            Scenario::Harsh => FaultProfile {
                crash_every: Some(Duration::from_secs(40)),
                restart_after: (Duration::from_millis(500), Duration::from_secs(8)),
                pause_every: Some(Duration::from_secs(40)),
                pause_for: (Duration::from_millis(100), Duration::from_secs(8)),
                partition_every: Some(Duration::from_secs(20)),
                partition_for: (Duration::from_millis(500), Duration::from_secs(10)),
                partition_kinds: vec![
                    PartitionChoice::Isolate,
                    PartitionChoice::Split,
                    PartitionChoice::OneWay,
                    PartitionChoice::Flap,
                ],
                quiet_start: Duration::from_secs(4),
                link: LinkConfig {
                    loss: 0.05,
                    delay: Duration::from_micros(300),
                    jitter: Duration::from_millis(80),
                    jitter_shape: Jitter::Tail,
                    duplicate: 0.02,
                },
                drift_bound_ppm: 10_000,
                ..FaultProfile::none()
            },
            Scenario::Switchover => FaultProfile {
                quiet_start: Duration::from_secs(4),
                link: LinkConfig {
                    loss: 0.02,
                    delay: Duration::from_micros(300),
                    jitter: Duration::from_millis(10),
                    jitter_shape: Jitter::Tail,
                    duplicate: 0.0,
                },
                drift_bound_ppm: 10_000,
                ..FaultProfile::none()
            },
            Scenario::Crashes => FaultProfile {
                crash_every: Some(Duration::from_secs(30)),
                restart_after: (Duration::from_secs(1), Duration::from_secs(8)),
                quiet_start: Duration::from_secs(4),
                link: LinkConfig {
                    loss: 0.02,
                    delay: Duration::from_micros(300),
                    jitter: Duration::from_millis(10),
                    jitter_shape: Jitter::Tail,
                    duplicate: 0.0,
                },
                drift_bound_ppm: 10_000,
                ..FaultProfile::none()
            },
            Scenario::Lossy => FaultProfile {
                pause_every: Some(Duration::from_secs(20)),
                pause_for: (Duration::from_millis(10), Duration::from_millis(300)),
                quiet_start: Duration::from_secs(4),
                link: LinkConfig {
                    loss: 0.20,
                    delay: Duration::from_micros(300),
                    jitter: Duration::from_millis(200),
                    jitter_shape: Jitter::Uniform,
                    duplicate: 0.0,
                },
                drift_bound_ppm: 10_000,
                ..FaultProfile::none()
            },
        }
    }
}

/// The outcome of one schedule.
#[derive(Debug, Clone, Default)]
pub struct RunOutcome {
    pub seed: u64,
    pub violation: Option<String>,
    /// Leader crashed -> VIP announced elsewhere, per occurrence.
    pub failovers: Vec<Duration>,
    /// Elections after the first one (in `Lossy`, each is a false failover).
    pub later_elections: u32,
    pub elections: u32,
    /// Switchover asked -> VIP announced by the successor, per switchover.
    pub switchovers: Vec<Duration>,
    pub trace_hash: u64,
    /// Lease decisions in order, with simulated time: what `mooseherd sim -v` prints for one seed.
    pub story: Vec<String>,
}

/// Runs one schedule of `duration` (plus a quiet tail for the liveness check).
pub fn run_one(
    seed: u64,
    scenario: Scenario,
    shape: &RackShape,
    duration: Duration,
    replay: &str,
) -> RunOutcome {
    let profile = scenario.profile();
    let schedule = Schedule::generate(seed, &profile, duration, shape.nodes);
    let disks = Rc::new(RefCell::new(Disks::default()));
    let factory = {
        let disks = Rc::clone(&disks);
        let shape = shape.clone();
        move |id: NodeId, seed: u64, now: Instant| {
            let durable = disks.borrow().durable.get(&id).copied().unwrap_or_default();
            let prio = shape
                .candidates
                .iter()
                .find(|(c, _)| *c == id)
                .map(|(_, p)| *p);
            let mut lease = LeaseMachine::new(
                id,
                &shape.voters,
                prio.is_some(),
                shape.cfg.clone(),
                durable,
                seed,
                now,
            );
            if let Some(priority) = prio {
                lease.set_eligibility(
                    now,
                    Eligibility {
                        eligible: true,
                        priority,
                        reason: "sim".into(),
                    },
                );
            }
            RackNode {
                id,
                lease,
                disks: Rc::clone(&disks),
                // A restarted agent finds mfsmaster killed with its cgroup: start it with -a.
                master: MasterState::Stopped,
                master_done_at: None,
                master_unclean: true,
                provisioner: false,
                backend: shape.backend,
                events: VecDeque::new(),
            }
        }
    };
    let config = SimConfig::new(seed, shape.nodes)
        .with_profile(&profile)
        .with_replay(replay.to_string());
    let mut sim = Sim::new(config, factory)
        .with_schedule(&schedule)
        .with_msg_size(|m: &LeaseMsg| {
            postcard::to_allocvec(m).map_or(64, |v| v.len()) + crate::proof::FRAME_OVERHEAD
        });
    let checker = Rc::new(RefCell::new(Checker {
        disks: Rc::clone(&disks),
        frozen_exempt: shape.cfg.lease * 2,
        ..Checker::default()
    }));
    {
        let c = Rc::clone(&checker);
        sim.add_invariant(
            "lease safety",
            Box::new(move |v: &SimView<'_, RackNode>| c.borrow_mut().check(v)),
        );
    }
    let mut out = RunOutcome {
        seed,
        ..RunOutcome::default()
    };
    let end = SimTime::ZERO + duration;
    if let Some(every) = scenario.switchover_every() {
        let candidates: Vec<NodeId> = shape.candidates.iter().map(|(id, _)| *id).collect();
        let mut t = SimTime::ZERO + every;
        let mut k = 0usize;
        while t < end {
            let c = Rc::clone(&checker);
            let candidates = candidates.clone();
            sim.at_sim(t, move |sim| {
                for i in 0..sim.len() {
                    let id = NodeId(i);
                    let Some(local) = sim.clock(id) else { continue };
                    if sim
                        .node(id)
                        .is_none_or(|n| n.lease.leader_epoch(local).is_none())
                    {
                        continue;
                    }
                    // Alternate between a named successor and "the best one".
                    let others: Vec<NodeId> =
                        candidates.iter().copied().filter(|c| *c != id).collect();
                    let to = if k.is_multiple_of(2) {
                        others.get((k / 2) % others.len().max(1)).copied()
                    } else {
                        None
                    };
                    if sim.node_mut(id).is_some_and(|n| n.switchover(local, to)) {
                        c.borrow_mut().switchover_asked_at = Some(sim.now());
                    }
                }
            });
            t = t + every;
            k += 1;
        }
    }
    if let Err(v) = sim.run_until(end) {
        out.violation = Some(format!("{v}\nschedule:\n{}", schedule_text(&schedule)));
    } else {
        // Liveness: faults are over (crashed nodes restarted); within 3 leases someone leads.
        for id in 0..shape.nodes {
            if sim.status(NodeId(id)) == Some(NodeStatus::Down) {
                sim.restart(NodeId(id));
            }
        }
        sim.heal_all();
        let deadline = end + Duration::from_secs(15);
        let mut led = false;
        while sim.now() < deadline {
            if let Err(v) = sim.run_for(Duration::from_millis(100)) {
                out.violation = Some(format!("{v}\nschedule:\n{}", schedule_text(&schedule)));
                break;
            }
            let now_led = (0..shape.nodes).any(|i| {
                let id = NodeId(i);
                let local = sim.clock(id).unwrap_or_default();
                sim.node(id).is_some_and(|n| {
                    n.lease.leader_epoch(local).is_some()
                        && n.vip_until().is_some_and(|u| u > local)
                })
            });
            if now_led {
                led = true;
                break;
            }
        }
        if !led && out.violation.is_none() {
            out.violation = Some(format!(
                "liveness: no leader with the VIP 15 s after the faults stopped (seed {seed}; replay: {})\nschedule:\n{}",
                replay.replace("{seed}", &seed.to_string()),
                schedule_text(&schedule)
            ));
        }
    }
    let c = checker.borrow();
    out.failovers = c.failovers.clone();
    out.switchovers = c.switchovers.clone();
    out.elections = c.elections;
    out.later_elections = c.elections.saturating_sub(1);
    out.story = c.story.clone();
    out.trace_hash = sim.trace_hash();
    out
}

fn schedule_text(s: &Schedule) -> String {
    s.faults.iter().map(|f| format!("  {f}\n")).collect()
}

/// The invariants, plus failover measurements.
#[derive(Debug, Default)]
struct Checker {
    disks: Rc<RefCell<Disks>>,
    last_epoch: u64,
    elections: u32,
    /// The node that last announced the VIP, and when it went down (crash), if it did.
    vip_owner: Option<NodeId>,
    /// When each node was last seen frozen.
    last_paused: BTreeMap<NodeId, SimTime>,
    /// Nodes frozen this recently are exempt from the mfsmaster part of invariant 4.
    frozen_exempt: Duration,
    owner_down_at: Option<SimTime>,
    failovers: Vec<Duration>,
    /// A switchover was asked at this time; the next VIP announcement ends its pause.
    switchover_asked_at: Option<SimTime>,
    switchovers: Vec<Duration>,
    /// Lease decisions in order (simulated time, node, event).
    story: Vec<String>,
}

impl Checker {
    fn check(&mut self, v: &SimView<'_, RackNode>) -> Result<(), Violation> {
        let views: Vec<_> = v.nodes().collect();
        for n in &views {
            if n.status == NodeStatus::Paused {
                self.last_paused.insert(n.id, v.now());
            }
        }
        // 1. One believer.
        let believers: Vec<String> = views
            .iter()
            .filter_map(|n| {
                n.machine
                    .and_then(|m| m.lease.holds(n.local_now))
                    .map(|e| format!("{} (epoch {e})", n.id))
            })
            .collect();
        if believers.len() > 1 {
            return Err(v.violation(format!(
                "two nodes believe they hold the lease: {}",
                believers.join(", ")
            )));
        }
        // 2. One VIP (the kernel's deadline, whatever the agent's state).
        let vip_live = |id: NodeId, local: Instant| {
            self.disks
                .borrow()
                .kernel
                .get(&id)
                .and_then(|k| k.vip_until)
                .is_some_and(|u| u > local)
        };
        let vips: Vec<NodeId> = views
            .iter()
            .filter(|n| vip_live(n.id, n.local_now))
            .map(|n| n.id)
            .collect();
        if vips.len() > 1 {
            return Err(v.violation(format!("the VIP is on {} and {}", vips[0], vips[1])));
        }
        // Crash of the VIP owner starts a failover measurement.
        if let Some(owner) = self.vip_owner
            && self.owner_down_at.is_none()
            && views
                .iter()
                .any(|n| n.id == owner && n.status == NodeStatus::Down)
        {
            self.owner_down_at = Some(v.now());
        }
        for (id, ev) in v.events() {
            if !matches!(ev, RackEvent::Lease(LeaseEvent::HolderSeen { .. })) {
                self.story.push(format!(
                    "{:>10.3} s  {id}  {ev:?}",
                    v.now().saturating_since(SimTime::ZERO).as_secs_f64()
                ));
            }
            match ev {
                RackEvent::Lease(LeaseEvent::Elected { epoch, .. }) => {
                    // 3. Epochs increase.
                    if *epoch <= self.last_epoch {
                        return Err(v.violation(format!(
                            "{id} elected for epoch {epoch}, not above the earlier epoch {}",
                            self.last_epoch
                        )));
                    }
                    self.last_epoch = *epoch;
                    self.elections += 1;
                }
                RackEvent::Promoting { epoch } => {
                    // 4. Fence before promote.
                    for n in &views {
                        if n.id == *id {
                            continue;
                        }
                        if vip_live(n.id, n.local_now) {
                            return Err(v.violation(format!(
                                "{id} promotes for epoch {epoch} while {} still has the VIP",
                                n.id
                            )));
                        }
                        let Some(m) = n.machine else { continue };
                        let recently_frozen = self
                            .last_paused
                            .get(&n.id)
                            .is_some_and(|t| v.now().saturating_since(*t) < self.frozen_exempt);
                        if n.status == NodeStatus::Up
                            && !recently_frozen
                            && m.master() != MasterState::Stopped
                        {
                            return Err(v.violation(format!("{id} promotes for epoch {epoch} while {} still runs mfsmaster ({:?})", n.id, m.master())));
                        }
                    }
                }
                RackEvent::VipUp { .. } => {
                    if let Some(t0) = self.switchover_asked_at.take() {
                        self.switchovers.push(v.now().saturating_since(t0));
                    }
                    if let Some(t0) = self.owner_down_at.take()
                        && Some(*id) != self.vip_owner
                    {
                        self.failovers.push(v.now().saturating_since(t0));
                    }
                    self.vip_owner = Some(*id);
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// What `mooseherd sim` prints: totals over many schedules.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub schedules: u64,
    pub violations: u64,
    pub failover_p50_ms: Option<u64>,
    pub failover_p99_ms: Option<u64>,
    pub failovers: usize,
    pub false_failovers: u64,
    pub switchover_p50_ms: Option<u64>,
    pub switchover_p99_ms: Option<u64>,
    pub switchovers: usize,
    /// The first violations found (seed, what, replay command and schedule).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    /// Seeds whose schedule had a false failover (replay one with `--seed S --schedules 1 -v`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub false_failover_seeds: Vec<u64>,
    /// With one schedule: its lease decisions in order.
    #[serde(skip)]
    pub story: Vec<String>,
}

impl Summary {
    /// Whether the run passed: no schedule violated an invariant and none had a false failover
    /// (in the lossy scenario nothing fails, so any election after the first is a false
    /// failover, which the product promises not to have).
    pub fn passed(&self) -> bool {
        self.violations == 0 && self.false_failovers == 0
    }
}

/// The `mooseherd sim` command line that replays one schedule of a run, with `{seed}` where the
/// seed goes (what [`run_many`] takes as `replay`).
pub fn replay_command(
    duration: Duration,
    scenario: Scenario,
    variant: Option<crate::core::lease::UnsafeVariant>,
) -> String {
    use crate::core::lease::UnsafeVariant;
    let mut replay = format!(
        "mooseherd sim --seed {{seed}} --schedules 1 --duration {}",
        duration.as_secs()
    );
    replay.push_str(match scenario {
        Scenario::Harsh => "",
        Scenario::Lossy => " --scenario lossy",
        Scenario::Crashes => " --scenario crashes",
        Scenario::Switchover => " --scenario switchover",
    });
    replay.push_str(match variant {
        None => "",
        Some(UnsafeVariant::NoDriftMargin) => " --unsafe-variant no-drift-margin",
        Some(UnsafeVariant::NoRestartWait) => " --unsafe-variant no-restart-wait",
    });
    replay
}

/// Runs `count` schedules with seeds `first_seed..`, stopping early after `max_failures` violations.
pub fn run_many(
    first_seed: u64,
    count: u64,
    scenario: Scenario,
    shape: &RackShape,
    duration: Duration,
    replay: &str,
    max_failures: usize,
) -> Summary {
    let mut failovers = Vec::new();
    let mut switchovers = Vec::new();
    let mut violations = 0;
    let mut false_failovers = 0;
    let mut failures = Vec::new();
    let mut false_failover_seeds = Vec::new();
    let mut story = Vec::new();
    let mut ran = 0;
    for seed in first_seed..first_seed.saturating_add(count) {
        let out = run_one(seed, scenario, shape, duration, replay);
        ran += 1;
        failovers.extend(out.failovers);
        switchovers.extend(out.switchovers);
        if scenario == Scenario::Lossy {
            false_failovers += u64::from(out.later_elections);
            if out.later_elections > 0 {
                false_failover_seeds.push(seed);
            }
        }
        if count == 1 {
            story = out.story;
        }
        if let Some(v) = out.violation {
            violations += 1;
            failures.push(v);
            if failures.len() >= max_failures {
                break;
            }
        }
    }
    failovers.sort();
    switchovers.sort();
    Summary {
        schedules: ran,
        violations,
        failover_p50_ms: percentile(&failovers, 50),
        failover_p99_ms: percentile(&failovers, 99),
        failovers: failovers.len(),
        false_failovers,
        switchover_p50_ms: percentile(&switchovers, 50),
        switchover_p99_ms: percentile(&switchovers, 99),
        switchovers: switchovers.len(),
        failures,
        false_failover_seeds,
        story,
    }
}

/// The `p`-th percentile (nearest rank) of sorted durations, in ms.
pub fn percentile(sorted: &[Duration], p: usize) -> Option<u64> {
    crate::percentile::nearest_rank(sorted, p as f64).map(|d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPLAY: &str = "mooseherd sim --seed {seed} --schedules 1";

    #[test]
    fn harsh_schedules_keep_every_invariant() {
        let s = run_many(
            1,
            40,
            Scenario::Harsh,
            &RackShape::five(None),
            Duration::from_secs(60),
            REPLAY,
            1,
        );
        assert_eq!(s.violations, 0, "{}", s.failures.join("\n"));
        assert!(s.failovers > 0, "the schedules must kill some leaders");
    }

    #[test]
    fn lossy_network_causes_no_false_failover() {
        let s = run_many(
            1,
            20,
            Scenario::Lossy,
            &RackShape::five(None),
            Duration::from_secs(60),
            REPLAY,
            1,
        );
        assert_eq!(
            (s.violations, s.false_failovers),
            (0, 0),
            "{}",
            s.failures.join("\n")
        );
    }

    #[test]
    fn a_crashed_leader_is_replaced_within_a_lease_and_a_second() {
        let s = run_many(
            1,
            40,
            Scenario::Crashes,
            &RackShape::five(None),
            Duration::from_secs(60),
            REPLAY,
            1,
        );
        assert_eq!(s.violations, 0, "{}", s.failures.join("\n"));
        assert!(s.failovers >= 10);
        assert!(s.failover_p50_ms.is_some_and(|p| p <= 4000), "{s:?}");
    }

    #[test]
    fn switchover_pauses_writes_for_under_two_seconds() {
        let s = run_many(
            1,
            100,
            Scenario::Switchover,
            &RackShape::five(None),
            Duration::from_secs(60),
            REPLAY,
            1,
        );
        assert_eq!(s.violations, 0, "{}", s.failures.join("\n"));
        assert!(s.switchovers >= 400, "{s:?}");
        assert!(s.switchover_p99_ms.is_some_and(|p| p <= 2000), "{s:?}");
    }

    #[test]
    fn same_seed_same_run() {
        let a = run_one(
            7,
            Scenario::Harsh,
            &RackShape::five(None),
            Duration::from_secs(30),
            REPLAY,
        );
        let b = run_one(
            7,
            Scenario::Harsh,
            &RackShape::five(None),
            Duration::from_secs(30),
            REPLAY,
        );
        assert_eq!(a.trace_hash, b.trace_hash);
        let c = run_one(
            8,
            Scenario::Harsh,
            &RackShape::five(None),
            Duration::from_secs(30),
            REPLAY,
        );
        assert_ne!(a.trace_hash, c.trace_hash);
    }

    #[test]
    fn the_checker_catches_a_holder_that_ignores_drift() {
        let s = run_many(
            1,
            3000,
            Scenario::Harsh,
            &RackShape::five(Some(UnsafeVariant::NoDriftMargin)),
            Duration::from_secs(60),
            REPLAY,
            1,
        );
        assert!(s.violations > 0, "no-drift-margin must be caught");
        assert!(
            s.failures[0].contains("replay: mooseherd sim --seed"),
            "{}",
            s.failures[0]
        );
    }

    #[test]
    fn the_checker_catches_a_voter_that_forgets_its_promises() {
        let s = run_many(
            1,
            3000,
            Scenario::Harsh,
            &RackShape::five(Some(UnsafeVariant::NoRestartWait)),
            Duration::from_secs(60),
            REPLAY,
            1,
        );
        assert!(s.violations > 0, "no-restart-wait must be caught");
    }
}
