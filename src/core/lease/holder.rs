//! The candidate and holder side of the lease: standing with priority back-off, counting
//! grants into a round, renewing, fencing before the lease ends, and stepping down.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::*;
use crate::core::{Instant, NodeId};

impl LeaseMachine {
    pub(super) fn backoff(&mut self) -> Duration {
        let jitter_us = u64::try_from(self.cfg.backoff_jitter.as_micros()).unwrap_or(0);
        let jitter = if jitter_us == 0 {
            0
        } else {
            self.rng.next_u64() % jitter_us
        };
        let prio = u32::from(255 - self.eligibility.priority);
        self.cfg.backoff_per_priority * prio + Duration::from_micros(jitter)
    }

    pub(super) fn send(&mut self, to: NodeId, msg: LeaseMsg) {
        if to == self.me {
            // Our own vote is handled in place.
            let now = self.now;
            self.handle(now, to, msg);
        } else {
            self.out.push_back(Transmit { to, msg });
        }
    }

    pub(super) fn step_down(
        &mut self,
        epoch: u64,
        reason: StepDownReason,
        handover_to: Option<NodeId>,
    ) {
        let lease_end = self.lease_end().unwrap_or(self.now);
        if reason == StepDownReason::Switchover {
            self.switchover_to = Some(handover_to);
        }
        self.role = Role::Fencing {
            epoch,
            lease_end,
            handover_to,
        };
        self.events
            .push_back(LeaseEvent::StepDown { epoch, reason });
    }

    pub(super) fn abandon_round(&mut self, epoch: u64) {
        if matches!(self.role, Role::Candidate(_)) {
            self.role = Role::Follower;
            // Every voter asked, not only those whose grant arrived: a grant lost on the way
            // would otherwise keep that voter promised to this dead round for a whole lease,
            // and the duel's winner would renew with one voter fewer.
            for v in self.voters.clone() {
                self.send(v, LeaseMsg::Release { epoch });
            }
        }
    }

    pub(super) fn start_round(&mut self, now: Instant, epoch: u64) -> Round {
        let round = self.next_round;
        self.next_round += 1;
        Round {
            epoch,
            round,
            sent_at: now,
            last_sent: now,
            deadline: now + self.cfg.round_timeout,
            grants: BTreeSet::new(),
            rejects: BTreeMap::new(),
        }
    }

    pub(super) fn broadcast_request(
        &mut self,
        epoch: u64,
        round: u64,
        renew: bool,
        skip: &BTreeSet<NodeId>,
    ) {
        for v in self.voters.clone() {
            if !skip.contains(&v) {
                self.send(
                    v,
                    LeaseMsg::Request {
                        epoch,
                        round,
                        renew,
                    },
                );
            }
        }
    }

    pub(super) fn stand(&mut self, now: Instant) {
        self.next_attempt = None;
        // Meanwhile promised to another node as a voter: that node is standing, let it.
        if self
            .promise
            .as_ref()
            .is_some_and(|p| p.holder != self.me && p.until > now)
        {
            self.next_query = now + self.cfg.renew_every;
            return;
        }
        let epoch = self.highest_epoch() + 1;
        self.durable.stood = epoch;
        let r = self.start_round(now, epoch);
        let round = r.round;
        self.role = Role::Candidate(r);
        self.events.push_back(LeaseEvent::Standing { epoch });
        self.broadcast_request(epoch, round, false, &BTreeSet::new());
        self.check_round(now);
    }

    /// Whether this node itself stands for, holds or is fencing `epoch`.
    pub(super) fn claims(&self, epoch: u64) -> bool {
        match &self.role {
            Role::Follower => false,
            Role::Candidate(r) => r.epoch == epoch,
            Role::Holder { epoch: e, .. } | Role::Fencing { epoch: e, .. } => *e == epoch,
        }
    }

    /// Candidate side: a voter answered.
    pub(super) fn on_answer(&mut self, now: Instant, from: NodeId, msg: &LeaseMsg) {
        if !self.voters.contains(&from) {
            return;
        }
        let (epoch, round) = match msg {
            LeaseMsg::Grant { epoch, round } | LeaseMsg::Reject { epoch, round, .. } => {
                (*epoch, *round)
            }
            _ => return,
        };
        if let LeaseMsg::Reject {
            highest_epoch,
            holder,
            remaining_ms,
            ..
        } = msg
        {
            self.seen_epoch = self.seen_epoch.max(*highest_epoch);
            if let Some(h) = holder
                && *h != self.me
            {
                let until = now + Duration::from_millis(*remaining_ms);
                let epoch_of_h = *highest_epoch;
                if self
                    .known_holder
                    .is_none_or(|(kh, ke, _)| kh != *h || ke != epoch_of_h)
                {
                    self.events.push_back(LeaseEvent::HolderSeen {
                        holder: *h,
                        epoch: epoch_of_h,
                    });
                }
                self.known_holder = Some((*h, epoch_of_h, until));
            }
        }
        let r = match &mut self.role {
            Role::Candidate(r) => Some(r),
            Role::Holder { renewing, .. } => renewing.iter_mut().find(|r| r.round == round),
            _ => None,
        };
        let r = match r {
            Some(r) => r,
            None => {
                // A late grant for a round we gave up: release it so the voter is free.
                if matches!(msg, LeaseMsg::Grant { .. }) && self.holds(now) != Some(epoch) {
                    self.out.push_back(Transmit {
                        to: from,
                        msg: LeaseMsg::Release { epoch },
                    });
                }
                return;
            }
        };
        if r.epoch != epoch || r.round != round {
            return;
        }
        match msg {
            LeaseMsg::Grant { .. } => {
                r.grants.insert(from);
                r.rejects.remove(&from);
            }
            LeaseMsg::Reject {
                why,
                holder,
                remaining_ms,
                ..
            } => {
                r.rejects
                    .insert(from, (*why, *holder, Duration::from_millis(*remaining_ms)));
            }
            _ => {}
        }
        self.check_round(now);
    }

    /// Decides a round as soon as it can be decided.
    pub(super) fn check_round(&mut self, now: Instant) {
        let q = self.quorum();
        let n = self.voters.len();
        let (r, holding) = match &self.role {
            Role::Candidate(r) => (r.clone(), false),
            Role::Holder { renewing, .. } => {
                // A majority may be gathered across renewal rounds: each voter's grant counts
                // from the send time of the newest round it granted, and the lease runs from the
                // oldest of those among the majority (every one of their promises outlives it).
                let mut newest: BTreeMap<NodeId, Instant> = BTreeMap::new();
                for r in renewing.iter() {
                    for v in &r.grants {
                        let t = newest.entry(*v).or_insert(r.sent_at);
                        *t = (*t).max(r.sent_at);
                    }
                }
                let mut sent: Vec<(Instant, NodeId)> =
                    newest.into_iter().map(|(v, t)| (t, v)).collect();
                sent.sort_unstable_by(|a, b| b.cmp(a));
                let (Some(first), Some(&(oldest, _))) =
                    (renewing.first(), sent.get(q.wrapping_sub(1)))
                else {
                    return;
                };
                let mut r = first.clone();
                r.sent_at = oldest;
                r.grants = sent.iter().take(q).map(|(_, v)| *v).collect();
                (r, true)
            }
            _ => return,
        };
        // A majority that arrives too late to act on (e.g. the candidate was frozen mid-round) is
        // no election: the lease it grants has already reached its fencing point.
        let useful = now + self.cfg.fence_budget < self.belief_end(r.sent_at, now);
        let won = r.grants.len() >= q && useful;
        let lost = !won && (r.rejects.len() > n - q || now >= r.deadline || !useful);
        match (holding, won, lost) {
            (false, true, _) => {
                let lease_end = self.belief_end(r.sent_at, now);
                self.role = Role::Holder {
                    epoch: r.epoch,
                    lease_end,
                    next_renew: r.sent_at + self.cfg.renew_every,
                    renewing: Vec::new(),
                };
                self.known_holder = None;
                self.events.push_back(LeaseEvent::Elected {
                    epoch: r.epoch,
                    until: lease_end,
                });
            }
            (false, false, true) => {
                // Wait until enough of the refusing voters' promises can have run out.
                let mut waits: Vec<Duration> = r.rejects.values().map(|(_, _, d)| *d).collect();
                waits.sort();
                let need = q.saturating_sub(r.grants.len());
                let wait = waits
                    .get(need.saturating_sub(1))
                    .copied()
                    .unwrap_or_default();
                self.events.push_back(LeaseEvent::RoundFailed {
                    epoch: r.epoch,
                    grants: r.grants.len(),
                    needed: q,
                });
                self.abandon_round(r.epoch);
                self.next_query = now + wait.max(self.cfg.retry_every);
            }
            (true, true, _) => {
                let end = self.belief_end(r.sent_at, now);
                let renew_every = self.cfg.renew_every;
                if let Role::Holder {
                    lease_end,
                    next_renew,
                    renewing,
                    ..
                } = &mut self.role
                {
                    *lease_end = (*lease_end).max(end);
                    *next_renew = r.sent_at + renew_every;
                    renewing.clear();
                }
            }
            _ => {}
        }
    }

    pub(super) fn belief_end(&self, sent_at: Instant, received_at: Instant) -> Instant {
        match self.cfg.unsafe_variant {
            Some(UnsafeVariant::NoDriftMargin) => received_at + self.cfg.lease,
            _ => sent_at + self.cfg.belief(),
        }
    }
}
