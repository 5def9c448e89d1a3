//! The SWIM + Lifeguard state machine: probing, suspicion, refutation, dissemination and
//! anti-entropy, driven through [`Machine`].

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use super::broadcast::BroadcastQueue;
use super::config::MembershipConfig;
use super::health::{LocalHealth, RttEstimator, suspicion_timeout};
use super::meta::NodeMeta;
use super::msg::{GossipMsg, MsgKind, Topic, Update, encoded_len};
use crate::core::{Instant, Machine, NodeId, Transmit};

/// What this node believes about a member's liveness. Serialized (in `status --json`) as its
/// lower-case name, [`MemberState::as_str`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// Answering (or presumed to, until a probe fails).
    Alive,
    /// A probe failed; the member has the suspicion timeout to refute.
    Suspect,
    /// Declared down. Not final: the member comes back with a higher incarnation.
    Down,
}

impl MemberState {
    pub const ALL: [MemberState; 3] = [MemberState::Alive, MemberState::Suspect, MemberState::Down];

    /// The lower-case name: `alive`, `suspect` or `down` (as in the status and the metrics).
    pub const fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Down => "down",
        }
    }
}

/// A member as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub id: NodeId,
    pub state: MemberState,
    /// The member's incarnation as last heard (raised only by the member, to refute).
    pub incarnation: u32,
    /// Last known metadata, kept while the member is suspect or down. `None` until heard.
    pub meta: Option<NodeMeta>,
    /// Version of `meta` (0 when none).
    pub meta_version: u64,
    /// When this node last saw `state` change (this node's clock).
    pub state_since: Instant,
}

/// A change worth telling the user about. Each transition is reported exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemberEvent {
    /// The member was heard from for the first time, or is alive again after suspect/down.
    Up(NodeId),
    /// The member failed a probe and is suspected; it may still refute.
    Suspect(NodeId),
    /// The member was declared down by this node or the rack.
    Down(NodeId),
    /// Another member published new metadata (see [`Membership::member`]).
    MetaChanged(NodeId),
}

/// Message and byte counters for one message kind (postcard payload bytes, framing excluded).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindCount {
    pub messages: u64,
    pub bytes: u64,
}

/// Counters per message kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsgCounters {
    pub ping: KindCount,
    pub ack: KindCount,
    pub ping_req: KindCount,
    pub nack: KindCount,
    pub gossip: KindCount,
    pub sync: KindCount,
}

impl MsgCounters {
    fn add(&mut self, kind: MsgKind, bytes: usize) {
        let c = match kind {
            MsgKind::Ping => &mut self.ping,
            MsgKind::Ack => &mut self.ack,
            MsgKind::PingReq => &mut self.ping_req,
            MsgKind::Nack => &mut self.nack,
            MsgKind::Gossip => &mut self.gossip,
            MsgKind::Sync => &mut self.sync,
        };
        c.messages += 1;
        c.bytes += bytes as u64;
    }

    /// All kinds together.
    pub fn total(&self) -> KindCount {
        [
            self.ping,
            self.ack,
            self.ping_req,
            self.nack,
            self.gossip,
            self.sync,
        ]
        .iter()
        .fold(KindCount::default(), |a, c| KindCount {
            messages: a.messages + c.messages,
            bytes: a.bytes + c.bytes,
        })
    }
}

/// What membership has done so far on this node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MembershipStats {
    pub sent: MsgCounters,
    pub received: MsgCounters,
    /// Messages from nodes outside the rack, ignored.
    pub ignored_unknown: u64,
    /// Probes that failed and made this node suspect (or confirm) a member.
    pub failed_probes: u64,
    /// Suspicions this node let expire into Down.
    pub declared_down: u64,
    /// Times this node refuted a suspicion or Down about itself.
    pub refutations: u64,
    /// Times this node noticed it had been stalled (paused, starved) and voided its probe.
    pub stalls: u64,
}

#[derive(Debug, Clone)]
struct Suspicion {
    started: Instant,
    confirmers: Vec<NodeId>,
    deadline: Instant,
    /// When this node last probed the suspect itself during this suspicion.
    last_probe: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Member {
    state: MemberState,
    incarnation: u32,
    /// Who suspected / declared it (meaningful when not Alive).
    accuser: NodeId,
    since: Instant,
    meta: Option<(u64, NodeMeta)>,
    suspicion: Option<Suspicion>,
    /// An Up event was reported (or it is this node).
    seen: bool,
}

#[derive(Debug, Clone)]
struct Probe {
    target: NodeId,
    seq: u32,
    sent_at: Instant,
    direct_deadline: Instant,
    acked: bool,
    indirect: bool,
    expected_nacks: u32,
    nacks: u32,
}

/// An indirect probe this node runs for another member.
#[derive(Debug, Clone)]
struct Relay {
    seq: u32,
    origin: NodeId,
    origin_seq: u32,
    nack_at: Instant,
}

/// SWIM membership with Lifeguard for one node of a static rack. A sans-IO [`Machine`]: feed it
/// messages and time, drain transmits and events.
#[derive(Debug, Clone)]
pub struct Membership {
    me: NodeId,
    cfg: MembershipConfig,
    rng: ChaCha8Rng,
    members: BTreeMap<NodeId, Member>,
    health: LocalHealth,
    rtt: RttEstimator,
    expected_confirmations: u32,
    probe_order: Vec<NodeId>,
    probe_pos: usize,
    probe: Option<Probe>,
    next_probe_at: Instant,
    ticks: u64,
    next_seq: u32,
    relays: Vec<Relay>,
    next_gossip_at: Instant,
    next_sync_at: Instant,
    last_now: Instant,
    queue: BroadcastQueue,
    local_meta: Option<NodeMeta>,
    own_meta_version: u64,
    outbox: VecDeque<Transmit<GossipMsg>>,
    events: VecDeque<MemberEvent>,
    stats: MembershipStats,
}

impl Membership {
    /// Membership for node `me` of the rack `nodes` (every node, `me` included; duplicates are
    /// ignored). Every member starts Alive at incarnation 0 with no metadata; `seed` makes all
    /// random choices reproducible (it is mixed with `me`, so one seed may serve a whole rack).
    pub fn new(
        me: NodeId,
        nodes: &[NodeId],
        cfg: MembershipConfig,
        seed: u64,
        now: Instant,
    ) -> Self {
        let cfg = cfg.normalized();
        let mut members = BTreeMap::new();
        for &id in nodes.iter().chain(std::iter::once(&me)) {
            members.insert(
                id,
                Member {
                    state: MemberState::Alive,
                    incarnation: 0,
                    accuser: id,
                    since: now,
                    meta: None,
                    suspicion: None,
                    seen: id == me,
                },
            );
        }
        let others = members.len().saturating_sub(1);
        let expected_confirmations = cfg
            .suspicion_confirmations
            .min(u32::try_from(others.saturating_sub(1)).unwrap_or(u32::MAX));
        let mixed = seed ^ u64::from(me.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut m = Membership {
            me,
            health: LocalHealth::new(cfg.max_local_health),
            rtt: RttEstimator::default(),
            rng: ChaCha8Rng::seed_from_u64(mixed),
            members,
            expected_confirmations,
            probe_order: Vec::new(),
            probe_pos: 0,
            probe: None,
            next_probe_at: now,
            ticks: 0,
            next_seq: 0,
            relays: Vec::new(),
            next_gossip_at: now,
            next_sync_at: now,
            last_now: now,
            queue: BroadcastQueue::default(),
            local_meta: None,
            own_meta_version: 0,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            stats: MembershipStats::default(),
            cfg,
        };
        // Desynchronise the rack: first probe and first anti-entropy at a random phase.
        let first_probe = m.random_fraction(m.cfg.probe_interval);
        m.next_probe_at = now + first_probe;
        let first_sync = m.cfg.sync_interval + m.random_fraction(m.cfg.sync_interval);
        m.next_sync_at = now + first_sync;
        // Learn what the rack thinks of us (we may have restarted) and everyone's metadata.
        let own = m.own_updates();
        for peer in m.random_members(m.cfg.startup_sync_peers, &[], false) {
            m.send_plain(
                peer,
                GossipMsg::Sync {
                    reply: true,
                    updates: own.clone(),
                },
            );
        }
        m
    }

    /// This node's own incarnation.
    pub fn incarnation(&self) -> u32 {
        self.members.get(&self.me).map_or(0, |m| m.incarnation)
    }

    /// Publish this node's metadata. A change bumps the version and disseminates it; publishing
    /// the same metadata again is free.
    pub fn set_local_meta(&mut self, meta: NodeMeta) {
        if self.local_meta.as_ref() == Some(&meta) {
            return;
        }
        self.publish_meta(meta);
    }

    /// Every member of the rack, this node included, in id order.
    pub fn members(&self) -> impl Iterator<Item = MemberInfo> + '_ {
        self.members.iter().map(|(&id, m)| info(id, m))
    }

    /// One member, if it is in the rack.
    pub fn member(&self, id: NodeId) -> Option<MemberInfo> {
        self.members.get(&id).map(|m| info(id, m))
    }

    /// The Local Health Multiplier (0 = healthy .. `max_local_health`): how much this node
    /// currently stretches its probe timings because it has evidence that it is itself slow.
    pub fn local_health(&self) -> u8 {
        self.health.score()
    }

    /// Counters since start.
    pub fn stats(&self) -> &MembershipStats {
        &self.stats
    }

    /// Updates waiting to be disseminated (0 when the rack has converged, as far as we know).
    pub fn pending_updates(&self) -> usize {
        self.queue.len()
    }

    /// The configuration in use (after bringing values into range).
    pub fn config(&self) -> &MembershipConfig {
        &self.cfg
    }

    // ----- randomness -----

    fn rand_below(&mut self, n: usize) -> usize {
        if n <= 1 {
            return 0;
        }
        (self.rng.next_u64() % n as u64) as usize
    }

    fn random_fraction(&mut self, d: Duration) -> Duration {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        Duration::from_micros(self.rng.next_u64() % us)
    }

    /// Up to `k` distinct random members other than this node and `exclude`; Down members only
    /// if `include_down`.
    fn random_members(&mut self, k: usize, exclude: &[NodeId], include_down: bool) -> Vec<NodeId> {
        let mut pool: Vec<NodeId> = self
            .members
            .iter()
            .filter(|(id, m)| {
                **id != self.me
                    && !exclude.contains(id)
                    && (include_down || m.state != MemberState::Down)
            })
            .map(|(id, _)| *id)
            .collect();
        let k = k.min(pool.len());
        for i in 0..k {
            let j = i + self.rand_below(pool.len() - i);
            pool.swap(i, j);
        }
        pool.truncate(k);
        pool
    }

    fn fresh_seq(&mut self) -> u32 {
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_seq
    }

    // ----- sending -----

    fn liveness_update(&self, id: NodeId) -> Option<Update> {
        let m = self.members.get(&id)?;
        Some(match m.state {
            MemberState::Alive => Update::Alive {
                node: id,
                incarnation: m.incarnation,
            },
            MemberState::Suspect => Update::Suspect {
                node: id,
                incarnation: m.incarnation,
                from: m.accuser,
            },
            MemberState::Down => Update::Down {
                node: id,
                incarnation: m.incarnation,
                from: m.accuser,
            },
        })
    }

    fn own_updates(&self) -> Vec<Update> {
        let mut v: Vec<Update> = self.liveness_update(self.me).into_iter().collect();
        if let Some((version, meta)) = self.members.get(&self.me).and_then(|m| m.meta.clone()) {
            v.push(Update::Meta {
                node: self.me,
                version,
                meta,
            });
        }
        v
    }

    fn record_sent(&mut self, to: NodeId, msg: GossipMsg, bytes: usize) {
        self.stats.sent.add(msg.kind(), bytes);
        self.outbox.push_back(Transmit { to, msg });
    }

    /// Send `msg` as is (its updates are chosen by the caller).
    fn send_plain(&mut self, to: NodeId, msg: GossipMsg) {
        let bytes = msg.encoded_len();
        self.record_sent(to, msg, bytes);
    }

    /// Send a message built by `make`, piggybacking queued updates within the byte budget. If
    /// this node thinks `to` is suspect or down, that news goes first (Lifeguard's buddy system:
    /// the accused hears it and can refute at once).
    fn send(&mut self, to: NodeId, make: impl Fn(Vec<Update>) -> GossipMsg) {
        let base = make(Vec::new()).encoded_len();
        let mut budget = self.cfg.max_message_bytes.saturating_sub(base);
        let mut max_count = self.cfg.max_piggyback;
        let mut updates = Vec::new();
        let mut exclude = None;
        if let Some(u) = self
            .liveness_update(to)
            .filter(|u| !matches!(u, Update::Alive { .. }))
        {
            let size = u.encoded_len();
            if size <= budget {
                budget -= size;
                max_count -= 1;
                exclude = Some((to, Topic::Liveness));
                updates.push(u);
            }
        }
        updates.extend(
            self.queue
                .select(budget, max_count, self.cfg.retransmit_limit, exclude),
        );
        let msg = make(updates);
        let bytes = msg.encoded_len();
        self.record_sent(to, msg, bytes);
    }

    fn send_gossip_to(&mut self, to: NodeId, updates: Vec<Update>) {
        self.send_plain(to, GossipMsg::Gossip { updates });
    }

    // ----- events and state changes -----

    fn set_state(&mut self, id: NodeId, state: MemberState, now: Instant) {
        let Some(m) = self.members.get_mut(&id) else {
            return;
        };
        if m.state == state {
            return;
        }
        m.state = state;
        m.since = now;
        if state != MemberState::Suspect {
            m.suspicion = None;
        }
        let ev = match state {
            MemberState::Alive => {
                m.seen = true;
                MemberEvent::Up(id)
            }
            MemberState::Suspect => MemberEvent::Suspect(id),
            MemberState::Down => MemberEvent::Down(id),
        };
        self.events.push_back(ev);
    }

    fn mark_seen(&mut self, id: NodeId) {
        if let Some(m) = self.members.get_mut(&id)
            && !m.seen
            && m.state == MemberState::Alive
        {
            m.seen = true;
            self.events.push_back(MemberEvent::Up(id));
        }
    }

    /// How much all timings are stretched: by the network's round trip beyond the configured
    /// probe timeout, times the Local Health Multiplier + 1, at most `max_local_health + 1`.
    fn stretch(&self) -> f64 {
        let t = self.cfg.probe_timeout.as_secs_f64();
        let net = (self.rtt.rto().as_secs_f64() / t).max(1.0);
        let cap = f64::from(self.cfg.max_local_health) + 1.0;
        (net * (f64::from(self.health.score()) + 1.0)).min(cap)
    }

    fn scaled(&self, d: Duration) -> Duration {
        d.mul_f64(self.stretch())
    }

    fn suspicion_deadline(&self, started: Instant, confirmations: usize) -> Instant {
        let c = u32::try_from(confirmations).unwrap_or(u32::MAX);
        let t = suspicion_timeout(
            self.cfg.suspicion_min,
            self.cfg.suspicion_max,
            self.expected_confirmations,
            c,
        );
        started + self.scaled(t)
    }

    /// Start suspecting `id` at `incarnation`, accused by `accuser`.
    fn start_suspicion(&mut self, id: NodeId, incarnation: u32, accuser: NodeId, now: Instant) {
        let deadline = self.suspicion_deadline(now, 0);
        if let Some(m) = self.members.get_mut(&id) {
            m.incarnation = incarnation;
            m.accuser = accuser;
            m.suspicion = Some(Suspicion {
                started: now,
                confirmers: Vec::new(),
                deadline,
                last_probe: (accuser == self.me).then_some(now),
            });
        }
        self.set_state(id, MemberState::Suspect, now);
    }

    /// Count `from` as an independent confirmation of the current suspicion of `id`.
    fn confirm_suspicion(&mut self, id: NodeId, from: NodeId) -> bool {
        let Some(m) = self.members.get(&id) else {
            return false;
        };
        let Some(s) = &m.suspicion else {
            return false;
        };
        if from == m.accuser || from == id || s.confirmers.contains(&from) {
            return false;
        }
        let (started, count) = (s.started, s.confirmers.len() + 1);
        let deadline = self.suspicion_deadline(started, count);
        if let Some(s) = self.members.get_mut(&id).and_then(|m| m.suspicion.as_mut()) {
            s.confirmers.push(from);
            s.deadline = deadline;
        }
        true
    }

    /// Apply one update heard from `sender`. Returns true if it told us that we are suspected or
    /// down (whether or not that was news), so the caller can answer the sender directly.
    fn apply(&mut self, now: Instant, u: Update) -> bool {
        let id = u.node();
        if !self.members.contains_key(&id) {
            return false;
        }
        if id == self.me {
            return self.apply_about_me(u);
        }
        let Some(m) = self.members.get(&id) else {
            return false;
        };
        let (state, inc) = (m.state, m.incarnation);
        match u {
            Update::Alive { incarnation, .. } => {
                if incarnation > inc {
                    if let Some(m) = self.members.get_mut(&id) {
                        m.incarnation = incarnation;
                    }
                    self.set_state(id, MemberState::Alive, now);
                    self.queue.push(u);
                }
            }
            Update::Suspect {
                incarnation, from, ..
            } => {
                let newer = incarnation > inc;
                match state {
                    MemberState::Suspect if incarnation == inc => {
                        // A new, independent confirmation: count it and pass it on.
                        let confirmed = self.confirm_suspicion(id, from);
                        if confirmed {
                            self.queue.push(u);
                        }
                    }
                    _ if newer || (state == MemberState::Alive && incarnation == inc) => {
                        self.start_suspicion(id, incarnation, from, now);
                        self.queue.push(u);
                    }
                    _ => {}
                }
            }
            Update::Down {
                incarnation, from, ..
            } => {
                if incarnation > inc || (incarnation == inc && state != MemberState::Down) {
                    if let Some(m) = self.members.get_mut(&id) {
                        m.incarnation = incarnation;
                        m.accuser = from;
                    }
                    self.set_state(id, MemberState::Down, now);
                    self.queue.push(u);
                }
            }
            Update::Meta {
                version, ref meta, ..
            } => {
                let newer = self
                    .members
                    .get(&id)
                    .is_some_and(|m| m.meta.as_ref().is_none_or(|(v, _)| version > *v));
                if newer {
                    if let Some(m) = self.members.get_mut(&id) {
                        m.meta = Some((version, meta.clone()));
                    }
                    self.events.push_back(MemberEvent::MetaChanged(id));
                    self.queue.push(u);
                }
            }
        }
        false
    }

    fn apply_about_me(&mut self, u: Update) -> bool {
        let me = self.me;
        let mine = self.incarnation();
        match u {
            Update::Alive { incarnation, .. } => {
                // An older life of ours was further along: adopt, so refutations exceed it.
                if incarnation > mine
                    && let Some(m) = self.members.get_mut(&me)
                {
                    m.incarnation = incarnation;
                }
                false
            }
            Update::Suspect { incarnation, .. } | Update::Down { incarnation, .. } => {
                if incarnation >= mine {
                    if let Some(m) = self.members.get_mut(&me) {
                        m.incarnation = incarnation.saturating_add(1);
                    }
                    self.stats.refutations += 1;
                    self.health.apply(1);
                    if let Some(alive) = self.liveness_update(me) {
                        self.queue.push(alive);
                    }
                }
                true
            }
            Update::Meta { version, meta, .. } => {
                // An older life of ours published this version (or the same version with other
                // content): continue numbering above it, and if we have metadata, outbid it now.
                let conflict = version == self.own_meta_version
                    && self.local_meta.as_ref().is_some_and(|mine| *mine != meta);
                if version > self.own_meta_version || conflict {
                    self.own_meta_version = version;
                    if let Some(meta) = self.local_meta.clone() {
                        self.publish_meta(meta);
                    }
                }
                false
            }
        }
    }

    fn publish_meta(&mut self, meta: NodeMeta) {
        self.own_meta_version += 1;
        let version = self.own_meta_version;
        if let Some(m) = self.members.get_mut(&self.me) {
            m.meta = Some((version, meta.clone()));
        }
        self.local_meta = Some(meta.clone());
        self.queue.push(Update::Meta {
            node: self.me,
            version,
            meta,
        });
    }
}

fn info(id: NodeId, m: &Member) -> MemberInfo {
    MemberInfo {
        id,
        state: m.state,
        incarnation: m.incarnation,
        meta: m.meta.as_ref().map(|(_, meta)| meta.clone()),
        meta_version: m.meta.as_ref().map_or(0, |(v, _)| *v),
        state_since: m.since,
    }
}

/// The fixed part of a received message, kept while its updates are applied.
enum Head {
    Ping(u32),
    Ack(u32),
    PingReq(u32, NodeId),
    Nack(u32),
    Gossip,
    Sync(bool),
}

/// At most this many indirect probes run for others at once (bounds memory under abuse).
const MAX_RELAYS: usize = 64;
/// Updates per Sync chunk at most (postcard's one-byte length prefix).
const MAX_SYNC_UPDATES: usize = 127;

impl Membership {
    /// Notice that this node was not run for a long time (paused, starved, suspended). Silence
    /// during that time proves nothing about others: void the running probe and push suspicion
    /// deadlines back by the gap; count it as evidence of our own slowness.
    fn observe(&mut self, now: Instant) {
        let threshold = self.scaled(self.cfg.probe_interval) * 3;
        if now > self.last_now + threshold {
            let gap = now.saturating_since(self.last_now);
            self.stats.stalls += 1;
            self.probe = None;
            self.relays.clear();
            for m in self.members.values_mut() {
                if let Some(s) = &mut m.suspicion {
                    s.started += gap;
                    s.deadline += gap;
                }
            }
            self.health.apply(1);
        }
        if now > self.last_now {
            self.last_now = now;
        }
    }

    fn on_ack(&mut self, now: Instant, from: NodeId, seq: u32) {
        if let Some(p) = &mut self.probe
            && p.seq == seq
        {
            if from == p.target {
                let rtt = now.saturating_since(p.sent_at);
                self.rtt.sample(rtt);
            }
            let Some(p) = &mut self.probe else {
                return;
            };
            if !p.acked {
                p.acked = true;
                let (direct, target) = (!p.indirect, p.target);
                if direct {
                    self.health.apply(-1);
                }
                self.mark_seen(target);
            }
            return;
        }
        if let Some(i) = self.relays.iter().position(|r| r.seq == seq) {
            let r = self.relays.remove(i);
            self.send(r.origin, |updates| GossipMsg::Ack {
                seq: r.origin_seq,
                updates,
            });
        }
    }

    fn on_ping_req(&mut self, now: Instant, origin: NodeId, origin_seq: u32, target: NodeId) {
        if target == self.me || target == origin || !self.members.contains_key(&target) {
            return;
        }
        let seq = self.fresh_seq();
        self.send(target, |updates| GossipMsg::Ping { seq, updates });
        if self.relays.len() >= MAX_RELAYS {
            self.relays.remove(0);
        }
        let nack_at = now + self.scaled(self.cfg.probe_timeout);
        self.relays.push(Relay {
            seq,
            origin,
            origin_seq,
            nack_at,
        });
    }

    fn next_target(&mut self, now: Instant) -> Option<NodeId> {
        // A suspect this node has not checked lately comes first: either our probe fails too
        // (an independent confirmation) or its Ack carries the refutation, even if the
        // refutation's gossip missed us. Rechecked every half minimum suspicion timeout.
        let recheck = self.scaled(self.cfg.suspicion_min) / 2;
        let due = self.members.iter_mut().find_map(|(id, m)| {
            m.suspicion
                .as_mut()
                .filter(|s| s.last_probe.is_none_or(|t| now >= t + recheck))
                .map(|s| (id, s))
        });
        if let Some((&id, s)) = due {
            s.last_probe = Some(now);
            return Some(id);
        }
        for _ in 0..=self.members.len() {
            if self.probe_pos >= self.probe_order.len() {
                let me = self.me;
                self.probe_order = self
                    .members
                    .keys()
                    .copied()
                    .filter(|id| *id != me)
                    .collect();
                for i in (1..self.probe_order.len()).rev() {
                    let j = self.rand_below(i + 1);
                    self.probe_order.swap(i, j);
                }
                self.probe_pos = 0;
                if self.probe_order.is_empty() {
                    return None;
                }
            }
            let id = self.probe_order[self.probe_pos];
            self.probe_pos += 1;
            if self
                .members
                .get(&id)
                .is_some_and(|m| m.state != MemberState::Down)
            {
                return Some(id);
            }
        }
        None
    }

    fn probe_tick(&mut self, now: Instant) {
        self.finish_probe(now);
        self.ticks += 1;
        if let Some(target) = self.next_target(now) {
            let seq = self.fresh_seq();
            self.send(target, |updates| GossipMsg::Ping { seq, updates });
            self.probe = Some(Probe {
                target,
                seq,
                sent_at: now,
                direct_deadline: now + self.scaled(self.cfg.probe_timeout),
                acked: false,
                indirect: false,
                expected_nacks: 0,
                nacks: 0,
            });
        }
        let every = u64::from(self.cfg.down_probe_every);
        if every > 0 && self.ticks.is_multiple_of(every) {
            let down: Vec<NodeId> = self
                .members
                .iter()
                .filter(|(id, m)| **id != self.me && m.state == MemberState::Down)
                .map(|(id, _)| *id)
                .collect();
            if !down.is_empty() {
                let target = down[self.rand_below(down.len())];
                let seq = self.fresh_seq();
                self.send(target, |updates| GossipMsg::Ping { seq, updates });
            }
        }
        self.next_probe_at = now + self.scaled(self.cfg.probe_interval);
    }

    /// End the running probe: if nobody acked, adjust local health and suspect the target.
    fn finish_probe(&mut self, now: Instant) {
        let Some(p) = self.probe.take() else {
            return;
        };
        if p.acked {
            return;
        }
        // Helpers that sent neither ack nor nack point at our own network or CPU.
        let delta = if p.expected_nacks > 0 {
            i32::try_from(p.expected_nacks.saturating_sub(p.nacks)).unwrap_or(i32::MAX)
        } else {
            1
        };
        self.health.apply(delta);
        self.stats.failed_probes += 1;
        let Some(m) = self.members.get(&p.target) else {
            return;
        };
        let (state, incarnation) = (m.state, m.incarnation);
        let suspect = Update::Suspect {
            node: p.target,
            incarnation,
            from: self.me,
        };
        match state {
            MemberState::Alive => {
                self.start_suspicion(p.target, incarnation, self.me, now);
                self.queue.push(suspect.clone());
                // Tell the accused directly: if it is alive it refutes at once.
                self.send_gossip_to(p.target, vec![suspect]);
            }
            MemberState::Suspect => {
                if self.confirm_suspicion(p.target, self.me) {
                    self.queue.push(suspect);
                }
            }
            MemberState::Down => {}
        }
    }

    fn expire_suspicions(&mut self, now: Instant) {
        let expired: Vec<NodeId> = self
            .members
            .iter()
            .filter(|(_, m)| m.suspicion.as_ref().is_some_and(|s| s.deadline <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let me = self.me;
            let Some(m) = self.members.get_mut(&id) else {
                continue;
            };
            m.accuser = me;
            let incarnation = m.incarnation;
            self.set_state(id, MemberState::Down, now);
            self.stats.declared_down += 1;
            self.queue.push(Update::Down {
                node: id,
                incarnation,
                from: me,
            });
        }
    }

    /// Send this node's full view to `to` in as many Sync messages as the byte budget needs.
    fn send_full_state(&mut self, to: NodeId, reply: bool) {
        let ids: Vec<NodeId> = self.members.keys().copied().collect();
        let mut all = Vec::with_capacity(ids.len() * 2);
        for id in ids {
            all.extend(self.liveness_update(id));
            if let Some((version, meta)) = self.members.get(&id).and_then(|m| m.meta.clone()) {
                all.push(Update::Meta {
                    node: id,
                    version,
                    meta,
                });
            }
        }
        let base = GossipMsg::Sync {
            reply,
            updates: Vec::new(),
        }
        .encoded_len();
        let budget = self.cfg.max_message_bytes.saturating_sub(base);
        let mut first = true;
        let mut chunk = Vec::new();
        let mut used = 0;
        let flush = |m: &mut Membership, chunk: &mut Vec<Update>, first: &mut bool| {
            if chunk.is_empty() {
                return;
            }
            let msg = GossipMsg::Sync {
                reply: reply && *first,
                updates: std::mem::take(chunk),
            };
            *first = false;
            m.send_plain(to, msg);
        };
        for u in all {
            let size = u.encoded_len();
            if size > budget {
                continue;
            }
            if used + size > budget || chunk.len() >= MAX_SYNC_UPDATES {
                flush(self, &mut chunk, &mut first);
                used = 0;
            }
            used += size;
            chunk.push(u);
        }
        flush(self, &mut chunk, &mut first);
    }
}

impl Machine for Membership {
    type Msg = GossipMsg;
    type Event = MemberEvent;

    fn id(&self) -> NodeId {
        self.me
    }

    fn handle_message(&mut self, now: Instant, from: NodeId, msg: GossipMsg) {
        if from == self.me || !self.members.contains_key(&from) {
            self.stats.ignored_unknown += 1;
            return;
        }
        self.observe(now);
        self.stats.received.add(msg.kind(), encoded_len(&msg));
        self.mark_seen(from);
        let head = match &msg {
            GossipMsg::Ping { seq, .. } => Head::Ping(*seq),
            GossipMsg::Ack { seq, .. } => Head::Ack(*seq),
            GossipMsg::PingReq { seq, target, .. } => Head::PingReq(*seq, *target),
            GossipMsg::Nack { seq, .. } => Head::Nack(*seq),
            GossipMsg::Gossip { .. } => Head::Gossip,
            GossipMsg::Sync { reply, .. } => Head::Sync(*reply),
        };
        let mut accused = false;
        for u in msg.into_updates() {
            accused |= self.apply(now, u);
        }
        if accused {
            // Re-disseminate our Alive (its retransmissions may be spent while this sender,
            // and maybe others, missed it); the answer below carries it first.
            if let Some(alive) = self.liveness_update(self.me) {
                self.queue.push(alive);
            }
        }
        let answers_anyway = matches!(head, Head::Ping(_) | Head::Sync(true));
        match head {
            Head::Ping(seq) => self.send(from, |updates| GossipMsg::Ack { seq, updates }),
            Head::Ack(seq) => self.on_ack(now, from, seq),
            Head::PingReq(seq, target) => self.on_ping_req(now, from, seq, target),
            Head::Nack(seq) => {
                if let Some(p) = &mut self.probe
                    && p.seq == seq
                    && p.indirect
                {
                    p.nacks += 1;
                }
            }
            Head::Gossip => {}
            Head::Sync(reply) => {
                if reply {
                    self.send_full_state(from, false);
                }
            }
        }
        // The sender believes we are suspect or down: answer it directly with our Alive.
        if accused && !answers_anyway {
            let own: Vec<Update> = self.liveness_update(self.me).into_iter().collect();
            self.send_gossip_to(from, own);
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.observe(now);
        if let Some(p) = &self.probe
            && !p.acked
            && !p.indirect
            && now >= p.direct_deadline
        {
            let (seq, target) = (p.seq, p.target);
            let helpers = self.random_members(self.cfg.indirect_probes, &[target], false);
            for &h in &helpers {
                self.send(h, |updates| GossipMsg::PingReq {
                    seq,
                    target,
                    updates,
                });
            }
            if let Some(p) = &mut self.probe {
                p.indirect = true;
                p.expected_nacks = u32::try_from(helpers.len()).unwrap_or(u32::MAX);
            }
        }
        let (due, keep): (Vec<Relay>, Vec<Relay>) =
            self.relays.drain(..).partition(|r| r.nack_at <= now);
        self.relays = keep;
        for r in due {
            self.send(r.origin, |updates| GossipMsg::Nack {
                seq: r.origin_seq,
                updates,
            });
        }
        if now >= self.next_probe_at {
            self.probe_tick(now);
        }
        self.expire_suspicions(now);
        if now >= self.next_gossip_at {
            if !self.queue.is_empty() {
                for t in self.random_members(self.cfg.gossip_fanout, &[], false) {
                    if self.queue.is_empty() {
                        break;
                    }
                    self.send(t, |updates| GossipMsg::Gossip { updates });
                }
            }
            self.next_gossip_at = now + self.cfg.gossip_interval;
        }
        if now >= self.next_sync_at {
            if let Some(&peer) = self.random_members(1, &[], false).first() {
                self.send_full_state(peer, true);
            }
            self.next_sync_at = now + self.cfg.sync_interval;
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.next_probe_at.min(self.next_sync_at);
        if let Some(p) = &self.probe
            && !p.acked
            && !p.indirect
        {
            t = t.min(p.direct_deadline);
        }
        for r in &self.relays {
            t = t.min(r.nack_at);
        }
        for m in self.members.values() {
            if let Some(s) = &m.suspicion {
                t = t.min(s.deadline);
            }
        }
        if !self.queue.is_empty() {
            t = t.min(self.next_gossip_at);
        }
        Some(t)
    }

    fn poll_transmit(&mut self) -> Option<Transmit<GossipMsg>> {
        self.outbox.pop_front()
    }

    fn poll_event(&mut self) -> Option<MemberEvent> {
        self.events.pop_front()
    }
}
