//! The SWIM + Lifeguard state machine: probing, suspicion, refutation, dissemination and
//! anti-entropy, driven through [`Machine`].

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

use super::broadcast::BroadcastQueue;
use super::config::MembershipConfig;
use super::health::{LocalHealth, RttEstimator};
use super::meta::NodeMeta;
use super::msg::{GossipMsg, Update, encoded_len};
use crate::core::{Instant, Machine, NodeId, Transmit};

mod detect;
mod dissemination;
mod state;

pub use state::{KindCount, MemberEvent, MemberInfo, MemberState, MembershipStats, MsgCounters};
use state::{Member, Probe, Relay, info};

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
