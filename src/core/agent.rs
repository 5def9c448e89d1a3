//! The agent core: everything one node decides, as one sans-IO machine.
//!
//! It combines [`Membership`] (who is alive, with what metadata), the [`LeaseMachine`] (who leads)
//! and the [`plan`] (what the host must do about it). Data flows one way:
//! messages and ticks -> membership + lease -> desired state -> plan -> actions -> host drivers ->
//! [`Agent::observe`] -> plan again. The runtime (tokio, real host drivers) and the simulator both
//! drive this same type.
//!
//! Host protocol: the driver takes actions with [`Agent::poll_action`], one at a time, carries each
//! out, and reports the host's state with [`Agent::observe`] (or [`Agent::action_failed`]). No new
//! action is handed out while one is in flight, so the plan's order is the order of effects.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::lease::{Eligibility, LeaseConfig, LeaseDurable, LeaseEvent, LeaseMachine, LeaseMsg};
use super::membership::{
    GossipMsg, HealthFlags, LeaseView, MemberEvent, MemberState, Membership, MembershipConfig,
    MooseFsVersion, NodeMeta, ReplicaView, Roles,
};
use super::plan::{self, Action, Backend, Desired, MasterState, Observed};
use super::roles::{self, Health, ReplicaState, Restarter};
use super::{Instant, Machine, NodeId, Transmit};

/// Everything that travels between agents (sealed by the wire).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentMsg {
    Gossip(GossipMsg),
    Lease(LeaseMsg),
}

/// What this node is in the rack (from the rack file).
#[derive(Debug, Clone)]
pub struct AgentSpec {
    pub me: NodeId,
    pub nodes: Vec<NodeId>,
    pub voters: Vec<NodeId>,
    pub roles: Roles,
    /// `Some(priority)` for a master candidate.
    pub candidate: Option<u8>,
    pub backend: Backend,
    pub lease: LeaseConfig,
    pub membership: MembershipConfig,
    pub agent_version: u32,
    /// The MooseFS release installed here (found by the runtime at start; unknown in the
    /// simulator).
    pub moosefs: MooseFsVersion,
}

/// This build's version as one number (major << 16 | minor << 8 | patch), for gossip metadata.
pub fn agent_version() -> u32 {
    let part = |s: &str| s.parse::<u32>().unwrap_or(0);
    let mut it = env!("CARGO_PKG_VERSION").split('.');
    let (a, b, c) = (
        part(it.next().unwrap_or("0")),
        part(it.next().unwrap_or("0")),
        part(it.next().unwrap_or("0")),
    );
    (a << 16) | (b << 8) | c
}

/// What the agent reports to its user (log lines, metrics, status).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEvent {
    Member(MemberEvent),
    Lease(LeaseEvent),
    /// This node's eligibility changed (with the reason).
    Eligibility(Eligibility),
    /// Fencing for `epoch` is complete; voters were released.
    Fenced {
        epoch: u64,
    },
    /// A host action failed; it is retried after a back-off.
    ActionFailed {
        action: Action,
        error: String,
    },
}

/// The node's role as the status shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRole {
    Leader,
    /// Stepped down, fencing.
    Fencing,
    /// A master candidate, not leading.
    Standby,
    /// Not a master candidate.
    Member,
}

/// One member in the status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberStatus {
    pub id: NodeId,
    pub state: MemberState,
    pub incarnation: u32,
    pub state_for_ms: u64,
    pub meta: Option<NodeMeta>,
}

/// A snapshot of what this agent knows, for `mooseherd status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentStatus {
    pub node: NodeId,
    pub role: NodeRole,
    /// The leader as this node knows it, and its epoch.
    pub leader: Option<NodeId>,
    pub epoch: u64,
    /// Time left on the lease (this node's if it leads; the known holder's otherwise).
    pub lease_left_ms: Option<u64>,
    pub eligible: bool,
    pub eligibility: String,
    pub local_health_score: u8,
    pub host: Observed,
    pub pending_action: Option<Action>,
    pub members: Vec<MemberStatus>,
    /// The MooseFS release installed here, "3.0.117" ("unknown" when not found).
    #[serde(default)]
    pub moosefs_version: String,
}

/// One node's decisions.
pub struct Agent {
    spec: AgentSpec,
    membership: Membership,
    lease: LeaseMachine,
    observed: Observed,
    health: Health,
    replica: ReplicaState,
    files: u64,
    eligibility: Option<Eligibility>,
    /// Health readings arrived at least once (eligibility is not judged before).
    health_known: bool,
    meta: NodeMeta,
    pending: Option<Action>,
    retry_at: Option<Instant>,
    chunkserver: Restarter,
    mount: Restarter,
    actions: VecDeque<Action>,
    events: VecDeque<AgentEvent>,
    now: Instant,
}

impl Agent {
    /// A node (re)starting at `now`, with its persisted lease state and what the host looks like.
    pub fn new(
        spec: AgentSpec,
        durable: LeaseDurable,
        observed: Observed,
        seed: u64,
        now: Instant,
    ) -> Self {
        let membership = Membership::new(spec.me, &spec.nodes, spec.membership.clone(), seed, now);
        let lease = LeaseMachine::new(
            spec.me,
            &spec.voters,
            spec.candidate.is_some(),
            spec.lease.clone(),
            durable,
            seed ^ 0x5eed,
            now,
        );
        let meta = NodeMeta {
            roles: spec.roles,
            agent_version: spec.agent_version,
            moosefs: spec.moosefs,
            ..NodeMeta::default()
        };
        let mut a = Agent {
            spec,
            membership,
            lease,
            observed,
            health: Health::default(),
            replica: ReplicaState::Unknown,
            files: 0,
            eligibility: None,
            health_known: false,
            meta,
            pending: None,
            retry_at: None,
            chunkserver: Restarter::new(),
            mount: Restarter::new(),
            actions: VecDeque::new(),
            events: VecDeque::new(),
            now,
        };
        a.update(now);
        a
    }

    pub fn id(&self) -> NodeId {
        self.spec.me
    }

    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    pub fn lease(&self) -> &LeaseMachine {
        &self.lease
    }

    /// What must be persisted before anything polled after a change is sent.
    pub fn durable(&self) -> LeaseDurable {
        self.lease.durable()
    }

    /// Local health and replica readings (from `host::sys`, the replication driver).
    pub fn set_health(&mut self, now: Instant, health: Health, replica: ReplicaState, files: u64) {
        self.health = health;
        self.replica = replica;
        self.files = files;
        self.health_known = true;
        self.update(now);
    }

    /// The health readings as eligibility should judge them. mfsmaster running here already
    /// holds its memory, which MemAvailable no longer shows: counting it again made a leader
    /// whose master took the machine below the requirement step down as "not eligible" and
    /// stand again, round after round (seen in the DRBD VM tier on a 1.25 GiB VM).
    fn health_for_eligibility(&self) -> Health {
        let mut h = self.health;
        if matches!(
            self.observed.master,
            MasterState::Starting | MasterState::Ready
        ) {
            h.mem_available_mib = h
                .mem_available_mib
                .saturating_add(roles::master_ram_mib(self.files));
        }
        h
    }

    /// The host's state after an action (or a periodic check).
    pub fn observe(&mut self, now: Instant, observed: Observed) {
        self.track_daemons(now, &observed);
        self.observed = observed;
        self.pending = None;
        self.update(now);
    }

    /// A periodic reading of the host (not the answer to an action: an action in flight stays in
    /// flight).
    pub fn refresh(&mut self, now: Instant, observed: Observed) {
        let pending = self.pending;
        self.pending = None;
        self.track_daemons(now, &observed);
        self.pending = pending;
        self.observed = observed;
        self.update(now);
    }

    /// Feeds the restart back-off of the role daemons: a daemon that was up and is gone, or that
    /// was just started and is not up, counts as a failure.
    fn track_daemons(&mut self, now: Instant, new: &Observed) {
        let started = |a: Action| self.pending == Some(a);
        if new.chunkserver_running {
            self.chunkserver.running(now);
        } else if self.observed.chunkserver_running || started(Action::StartChunkserver) {
            self.chunkserver.failed(now);
        }
        if new.mount_healthy {
            self.mount.running(now);
        } else if self.observed.mount_healthy || started(Action::Remount) {
            self.mount.failed(now);
        }
    }

    /// The action in flight failed; the plan is tried again after a short back-off.
    pub fn action_failed(&mut self, now: Instant, observed: Observed, error: String) {
        self.track_daemons(now, &observed);
        if let Some(action) = self.pending.take() {
            self.events
                .push_back(AgentEvent::ActionFailed { action, error });
        }
        self.observed = observed;
        self.retry_at = Some(now + Duration::from_millis(500));
        self.update(now);
    }

    /// The next host action, if none is in flight.
    pub fn poll_action(&mut self) -> Option<Action> {
        if self.pending.is_some() {
            return None;
        }
        let a = self.actions.pop_front()?;
        self.pending = Some(a);
        Some(a)
    }

    /// Hand the lease over (to `to`, or to the best standby). False when this node does not lead.
    pub fn switchover(&mut self, now: Instant, to: Option<NodeId>) -> bool {
        let to = to.or_else(|| self.best_standby());
        let ok = self.lease.request_switchover(now, to);
        self.update(now);
        ok
    }

    /// Maintenance: not eligible (a leader steps down and hands over).
    pub fn set_maintenance(&mut self, now: Instant, on: bool) {
        self.health.maintenance = on;
        if on && self.lease.leader_epoch(now).is_some() {
            let to = self.best_standby();
            self.lease.request_switchover(now, to);
        }
        self.update(now);
    }

    /// The newest metadata `(metaid, version)` any alive master candidate reports (itself
    /// included), for the metalogger backend: a candidate behind it must not stand.
    ///
    /// A node with no metadata at all also counts the candidates that are down: "no metadata
    /// anywhere" (a new filesystem) must mean anywhere, or a standby whose metalogger has not
    /// downloaded the metadata yet would stand as soon as the leader dies.
    fn newest_metadata(&self) -> Option<(u64, u64)> {
        let own = match self.replica {
            ReplicaState::Version { metaid, version } => Some((metaid, version)),
            _ => None,
        };
        let has_none = own.is_none_or(|(id, _)| id == 0);
        self.membership
            .members()
            .filter(|m| m.id != self.spec.me && (has_none || m.state == MemberState::Alive))
            .filter_map(|m| m.meta)
            .filter(|meta| meta.roles.contains(Roles::MASTER) && meta.replica.metaid != 0)
            .map(|meta| (meta.replica.metaid, meta.replica.metadata_version))
            .chain(own.filter(|(id, _)| *id != 0))
            .max_by_key(|(_, v)| *v)
    }

    /// The newest MooseFS release any master candidate reports (itself included, down ones too:
    /// a node whose MooseFS cannot read the metadata a newer master wrote must not stand even
    /// while that master is down).
    fn newest_moosefs(&self) -> MooseFsVersion {
        let own = self.spec.candidate.map(|_| self.spec.moosefs);
        self.membership
            .members()
            .filter(|m| m.id != self.spec.me)
            .filter_map(|m| m.meta)
            .filter(|meta| meta.roles.contains(Roles::MASTER))
            .map(|meta| meta.moosefs)
            .chain(own)
            .max()
            .unwrap_or_default()
    }

    /// The alive master candidate with the best health and replica, by the gossip metadata.
    fn best_standby(&self) -> Option<NodeId> {
        self.membership
            .members()
            .filter(|m| m.id != self.spec.me && m.state == MemberState::Alive)
            .filter_map(|m| m.meta.map(|meta| (m.id, meta)))
            .filter(|(_, meta)| meta.roles.contains(Roles::MASTER) && meta.health.is_healthy())
            .max_by_key(|(id, meta)| (meta.replica.metadata_version, std::cmp::Reverse(*id)))
            .map(|(id, _)| id)
    }

    fn desired(&self, now: Instant) -> Desired {
        match (self.lease.leader_epoch(now), self.lease.lease_end()) {
            (Some(epoch), Some(lease_end)) => Desired::Leader { epoch, lease_end },
            _ => Desired::Standby,
        }
    }

    /// Recomputes eligibility, metadata and the plan.
    fn update(&mut self, now: Instant) {
        self.now = now;
        if let Some(priority) = self.spec.candidate
            && self.health_known
        {
            // The leader's running master is the newest copy by definition (its files on disk
            // lag behind the metaloggers' changelogs).
            let newest = if self.lease.leader_epoch(now).is_some() {
                None
            } else {
                self.newest_metadata()
            };
            let e = roles::eligibility(
                priority,
                &self.health_for_eligibility(),
                self.replica,
                newest,
                self.files,
                (self.spec.moosefs, self.newest_moosefs()),
            );
            // Tell the user when the verdict changes (not when free memory moves by 0.1 GiB).
            let changed = match &self.eligibility {
                None => true,
                Some(old) => {
                    old.eligible != e.eligible
                        || old.priority != e.priority
                        || (!e.eligible && old.reason != e.reason)
                }
            };
            if changed {
                self.events.push_back(AgentEvent::Eligibility(e.clone()));
            }
            if self.eligibility.as_ref() != Some(&e) {
                self.lease.set_eligibility(now, e.clone());
                self.eligibility = Some(e);
            }
        }
        // Fencing complete: release the voters.
        if let Some(epoch) = self.lease.fencing()
            && self.pending.is_none()
            && self.observed.is_fenced(now)
        {
            self.lease.fenced(now, epoch);
            self.events.push_back(AgentEvent::Fenced { epoch });
        }
        self.publish_meta(now);
        if self.pending.is_none() && self.retry_at.is_none_or(|t| now >= t) {
            self.retry_at = None;
            let mut actions =
                plan::next_actions(self.desired(now), &self.observed, self.spec.backend, now);
            // The master role first: fencing never waits behind a chunkserver or a mount.
            if actions.is_empty() {
                let roles = plan::Roles {
                    chunkserver: self.spec.roles.contains(Roles::CHUNKSERVER),
                    worker: self.spec.roles.contains(Roles::WORKER),
                    chunkserver_may_start: self.chunkserver.may_start(now),
                    // No master to mount from until a leader is known: mounting earlier only
                    // makes an mfsmount that dies and has to be replaced.
                    mount_may_start: self.mount.may_start(now)
                        && (self.lease.known_holder().is_some() || self.gossip_leader().is_some()),
                };
                actions = plan::role_actions(&roles, &self.observed);
            }
            self.actions = actions.into();
        }
    }

    fn publish_meta(&mut self, now: Instant) {
        let mut health = HealthFlags::default();
        for (on, flag) in [
            (self.health.undervoltage, HealthFlags::UNDERVOLTAGE),
            (self.health.throttled, HealthFlags::THROTTLED),
            (self.health.maintenance, HealthFlags::MAINTENANCE),
            (self.lease.fencing().is_some(), HealthFlags::FENCED),
        ] {
            if on {
                health = health | flag;
            }
        }
        let (holder, epoch) = match self.lease.known_holder() {
            Some((h, e, _)) => (Some(h), e),
            None => (None, self.lease.highest_epoch()),
        };
        let view = |state| ReplicaView {
            state,
            ..ReplicaView::default()
        };
        let replica = match self.replica {
            ReplicaState::UpToDate => view(super::membership::ReplicaState::UpToDate),
            ReplicaState::Syncing => view(super::membership::ReplicaState::Syncing),
            ReplicaState::Outdated => view(super::membership::ReplicaState::Outdated),
            ReplicaState::Diskless => view(super::membership::ReplicaState::Diskless),
            ReplicaState::Version { metaid, version } => ReplicaView {
                state: super::membership::ReplicaState::UpToDate,
                metadata_version: version,
                metaid,
            },
            ReplicaState::Unknown => ReplicaView::default(),
        };
        let meta = NodeMeta {
            health,
            lease: LeaseView { epoch, holder },
            replica,
            ..self.meta.clone()
        };
        if meta != self.meta {
            self.meta = meta.clone();
            self.membership.set_local_meta(meta);
        }
        let _ = now;
    }

    /// Why this node stands (or not), and what it knows of the other master candidates, for the
    /// log line of every election decision: "n2 stands: UpToDate, 3.1 GiB free; n1: down;
    /// n3: not eligible (undervoltage)". `name` maps ids to names.
    pub fn election_reasons(&self, name: &dyn Fn(NodeId) -> String) -> String {
        let mine = match &self.eligibility {
            Some(e) if e.eligible => format!(
                "{} stands (priority {}): {}",
                name(self.spec.me),
                e.priority,
                e.reason
            ),
            Some(e) => format!("{} not eligible: {}", name(self.spec.me), e.reason),
            None => format!("{} is not a master candidate", name(self.spec.me)),
        };
        let mut parts = vec![mine];
        for m in self.membership.members().filter(|m| m.id != self.spec.me) {
            let Some(meta) = &m.meta else { continue };
            if !meta.roles.contains(Roles::MASTER) {
                continue;
            }
            let why = if m.state != MemberState::Alive {
                format!("{:?}", m.state).to_lowercase()
            } else if meta.health.is_healthy() {
                format!("eligible by its health, replica {:?}", meta.replica.state).to_lowercase()
            } else {
                let mut flags = Vec::new();
                for (f, n) in [
                    (HealthFlags::UNDERVOLTAGE, "undervoltage"),
                    (HealthFlags::THROTTLED, "throttled"),
                    (HealthFlags::MAINTENANCE, "maintenance"),
                    (HealthFlags::FENCED, "fencing"),
                    (HealthFlags::LOW_MEMORY, "low memory"),
                    (HealthFlags::DISK_MISSING, "disk missing"),
                ] {
                    if meta.health.contains(f) {
                        flags.push(n);
                    }
                }
                format!("not eligible ({})", flags.join(", "))
            };
            parts.push(format!("{}: {why}", name(m.id)));
        }
        parts.join("; ")
    }

    /// The leader and epoch as this node knows them (from the lease, else from gossip).
    pub fn leader_view(&self) -> Option<(NodeId, u64)> {
        match self.lease.known_holder() {
            Some((h, e, _)) => Some((h, e)),
            None => self.gossip_leader(),
        }
    }

    /// A snapshot for `mooseherd status`.
    pub fn status(&self, now: Instant) -> AgentStatus {
        let role = if self.lease.leader_epoch(now).is_some() {
            NodeRole::Leader
        } else if self.lease.fencing().is_some() {
            NodeRole::Fencing
        } else if self.spec.candidate.is_some() {
            NodeRole::Standby
        } else {
            NodeRole::Member
        };
        let known = self.lease.known_holder();
        let gossip_holder = self.gossip_leader();
        let (leader, epoch, left) = match known {
            Some((h, e, until)) => (
                Some(h),
                e,
                Some(until.saturating_since(now).as_millis() as u64),
            ),
            None => match gossip_holder {
                Some((h, e)) => (Some(h), e, None),
                None => (None, self.lease.highest_epoch(), None),
            },
        };
        let members = self
            .membership
            .members()
            .map(|m| MemberStatus {
                id: m.id,
                state: m.state,
                incarnation: m.incarnation,
                state_for_ms: now.saturating_since(m.state_since).as_millis() as u64,
                meta: m.meta,
            })
            .collect();
        AgentStatus {
            node: self.spec.me,
            role,
            leader,
            epoch,
            lease_left_ms: left,
            eligible: self.eligibility.as_ref().is_some_and(|e| e.eligible),
            eligibility: self
                .eligibility
                .as_ref()
                .map_or_else(|| "not a master candidate".into(), |e| e.reason.clone()),
            local_health_score: self.membership.local_health(),
            host: self.observed,
            pending_action: self.pending,
            members,
            moosefs_version: self.spec.moosefs.to_string(),
        }
    }

    /// The leader most alive members report in their gossip metadata (highest epoch wins).
    fn gossip_leader(&self) -> Option<(NodeId, u64)> {
        let mut votes: BTreeMap<(u64, NodeId), usize> = BTreeMap::new();
        for m in self
            .membership
            .members()
            .filter(|m| m.state == MemberState::Alive)
        {
            if let Some(meta) = m.meta
                && let Some(h) = meta.lease.holder
            {
                *votes.entry((meta.lease.epoch, h)).or_default() += 1;
            }
        }
        votes.keys().next_back().map(|(e, h)| (*h, *e))
    }
}

impl Machine for Agent {
    type Msg = AgentMsg;
    type Event = AgentEvent;

    fn id(&self) -> NodeId {
        self.spec.me
    }

    fn handle_message(&mut self, now: Instant, from: NodeId, msg: AgentMsg) {
        match msg {
            AgentMsg::Gossip(g) => self.membership.handle_message(now, from, g),
            AgentMsg::Lease(l) => self.lease.handle_message(now, from, l),
        }
        self.update(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.membership.handle_timeout(now);
        self.lease.handle_timeout(now);
        self.update(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        // Wake up when a role daemon's back-off ends, if it is down. (A back-off already over is
        // acted on at every update; only future ones need a wake-up.)
        let later = |t: Instant| (t > self.now).then_some(t);
        let cs = (self.spec.roles.contains(Roles::CHUNKSERVER)
            && !self.observed.chunkserver_running)
            .then(|| later(self.chunkserver.next_start()))
            .flatten();
        let mt = (self.spec.roles.contains(Roles::WORKER) && !self.observed.mount_healthy)
            .then(|| later(self.mount.next_start()))
            .flatten();
        [
            self.membership.poll_timeout(),
            self.lease.poll_timeout(),
            self.retry_at,
            cs,
            mt,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn poll_transmit(&mut self) -> Option<Transmit<AgentMsg>> {
        if let Some(t) = self.lease.poll_transmit() {
            return Some(Transmit {
                to: t.to,
                msg: AgentMsg::Lease(t.msg),
            });
        }
        self.membership.poll_transmit().map(|t| Transmit {
            to: t.to,
            msg: AgentMsg::Gossip(t.msg),
        })
    }

    fn poll_event(&mut self) -> Option<AgentEvent> {
        if let Some(e) = self.lease.poll_event() {
            return Some(AgentEvent::Lease(e));
        }
        if let Some(e) = self.membership.poll_event() {
            return Some(AgentEvent::Member(e));
        }
        self.events.pop_front()
    }
}
