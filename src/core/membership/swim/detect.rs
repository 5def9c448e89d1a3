//! Failure detection: member state changes, Lifeguard suspicion (deadlines, confirmations),
//! stall detection, probe target choice, direct and indirect probes, and suspicion expiry.

use std::time::Duration;

use super::Membership;
use super::state::{MemberEvent, MemberState, Probe, Relay, Suspicion};
use crate::core::membership::health::suspicion_timeout;
use crate::core::membership::msg::{GossipMsg, Update};
use crate::core::{Instant, NodeId};

/// At most this many indirect probes run for others at once (bounds memory under abuse).
const MAX_RELAYS: usize = 64;

impl Membership {
    // ----- events and state changes -----

    pub(super) fn set_state(&mut self, id: NodeId, state: MemberState, now: Instant) {
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

    pub(super) fn mark_seen(&mut self, id: NodeId) {
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
    pub(super) fn stretch(&self) -> f64 {
        let t = self.cfg.probe_timeout.as_secs_f64();
        let net = (self.rtt.rto().as_secs_f64() / t).max(1.0);
        let cap = f64::from(self.cfg.max_local_health) + 1.0;
        (net * (f64::from(self.health.score()) + 1.0)).min(cap)
    }

    pub(super) fn scaled(&self, d: Duration) -> Duration {
        d.mul_f64(self.stretch())
    }

    pub(super) fn suspicion_deadline(&self, started: Instant, confirmations: usize) -> Instant {
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
    pub(super) fn start_suspicion(
        &mut self,
        id: NodeId,
        incarnation: u32,
        accuser: NodeId,
        now: Instant,
    ) {
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
    pub(super) fn confirm_suspicion(&mut self, id: NodeId, from: NodeId) -> bool {
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
    /// Notice that this node was not run for a long time (paused, starved, suspended). Silence
    /// during that time proves nothing about others: void the running probe and push suspicion
    /// deadlines back by the gap; count it as evidence of our own slowness.
    pub(super) fn observe(&mut self, now: Instant) {
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

    pub(super) fn on_ack(&mut self, now: Instant, from: NodeId, seq: u32) {
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

    pub(super) fn on_ping_req(
        &mut self,
        now: Instant,
        origin: NodeId,
        origin_seq: u32,
        target: NodeId,
    ) {
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

    pub(super) fn next_target(&mut self, now: Instant) -> Option<NodeId> {
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

    pub(super) fn probe_tick(&mut self, now: Instant) {
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
    pub(super) fn finish_probe(&mut self, now: Instant) {
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

    pub(super) fn expire_suspicions(&mut self, now: Instant) {
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
}
