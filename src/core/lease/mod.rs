//! The quorum lease: the only source of leadership in the rack.
//!
//! A one-round PaxosLease (Trencseni, Gazso, Reinhardt, 2008) over the static voter set. A master
//! candidate asks every voter for a lease of `D` for epoch `e`; a voter grants when it holds no
//! unexpired promise to another node (and `e` is above every epoch it has granted, unless the request
//! renews a lease it granted to the same node). A voter's promise runs until its own receive time + `D`
//! on its own clock. The candidate holds the lease once a majority granted, until
//! `send_time + D·(1-2ρ)` on its own clock, so its belief ends before any granting voter's promise
//! can end, whatever the message delays and whatever the clock rates within the drift bound `ρ`.
//! Because two majorities share a voter, and a voter never has two live promises to different
//! nodes, two nodes never believe they hold the lease at the same real instant.
//!
//! Where we differ from the paper, and why:
//! - **One round, no prepare phase.** PaxosLease's prepare lets a proposer learn an unexpired lease;
//!   here a voter with a live promise simply refuses and says who holds it and for how long, which
//!   the candidate uses to schedule its next attempt. Liveness comes from priority back-off instead.
//! - **Epochs persisted once per election** (the paper is diskless): a voter remembers the highest
//!   epoch it granted across restarts, so holders' epochs strictly increase and every log line and
//!   action can name "who was master when". No write per renewal (SD cards wear out).
//! - **Restart silence**: a restarted voter grants nothing for `D` (it may have promised before the
//!   crash), exactly as the paper requires for diskless acceptors.
//! - **Fencing budget**: the holder stops acting as leader at `lease_end - F` and must have fenced
//!   (VIP down, mfsmaster stopped) by `lease_end`; only then, if it can, it releases its voters.
//!
//! The machine is sans-IO: the driver delivers messages and ticks, drains transmits and events,
//! and MUST durably store [`LeaseMachine::durable`] whenever it changes *before* sending any
//! transmit polled after the change (see [`Machine`]).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::{Instant, Machine, NodeId, Transmit};

mod holder;
mod messages;
mod query;
mod voter;

pub use messages::{LeaseEvent, LeaseMsg, RejectReason, StepDownReason};

/// Deliberately broken variants, selectable only by the simulator, to prove that the checker can
/// find the split brains they cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnsafeVariant {
    /// The holder believes in its lease for the full `D` from when it *received* the majority,
    /// ignoring drift and message delay.
    NoDriftMargin,
    /// A restarted voter grants at once, forgetting the promises it may have made before the crash.
    NoRestartWait,
}

/// Timing of the lease, all in the node's own clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseConfig {
    /// `D`: how long a voter's promise lasts.
    pub lease: Duration,
    /// `F`: how long before its lease ends a holder starts fencing.
    pub fence_budget: Duration,
    /// `ρ`: bound on the rate difference of any two clocks, in parts per million.
    pub max_drift_ppm: u64,
    /// How often a holder renews (default `D/4`).
    pub renew_every: Duration,
    /// How often an unanswered request is sent again (a candidate's round), or a new renewal
    /// round is opened while none has won (a holder).
    pub retry_every: Duration,
    /// How long one election or renewal round waits for a majority.
    pub round_timeout: Duration,
    /// Upper bound of the random part of a candidate's back-off (against duels).
    pub backoff_jitter: Duration,
    /// Extra back-off per priority step below 255 (higher priority stands first).
    pub backoff_per_priority: Duration,
    /// Simulator only.
    pub unsafe_variant: Option<UnsafeVariant>,
}

impl LeaseConfig {
    /// Defaults derived from the rack's lease, fencing budget and drift bound.
    pub fn new(lease: Duration, fence_budget: Duration, max_drift_ppm: u64) -> Self {
        Self {
            lease,
            fence_budget,
            max_drift_ppm,
            // Renew early and keep opening rounds until one wins: with 20 % loss and 200 ms of
            // jitter, a holder gets ~9 fresh rounds before its fencing point.
            renew_every: lease / 4,
            retry_every: lease / 30,
            round_timeout: lease / 6,
            // Priority dominates the random part: 25 priority points outweigh the whole jitter.
            backoff_jitter: lease / 60,
            backoff_per_priority: lease / 1500,
            unsafe_variant: None,
        }
    }

    /// How long a holder may believe in a lease, counted from when it sent the request:
    /// `D·(1-2ρ)`. A voter's promise, counted from the later receive time on a clock at most
    /// `ρ` faster, lasts at least `D/(1+ρ)` real time; the holder's belief on a clock at most `ρ`
    /// slower lasts at most `D(1-2ρ)/(1-ρ)`, which is shorter.
    pub fn belief(&self) -> Duration {
        let ppm = 1_000_000u128.saturating_sub(2 * u128::from(self.max_drift_ppm));
        let us = self.lease.as_micros() * ppm / 1_000_000;
        Duration::from_micros(u64::try_from(us).unwrap_or(u64::MAX))
    }

    /// How long a restarted voter stays silent: one lease, stretched by the drift bound.
    pub fn restart_silence(&self) -> Duration {
        let us =
            self.lease.as_micros() * (1_000_000 + 2 * u128::from(self.max_drift_ppm)) / 1_000_000;
        Duration::from_micros(u64::try_from(us).unwrap_or(u64::MAX))
    }
}

/// State that must survive a restart (one fsync'd write per election, none per renewal).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseDurable {
    /// The highest epoch this node has granted as a voter.
    pub granted: u64,
    /// The highest epoch this node has stood for as a candidate.
    pub stood: u64,
}

impl LeaseDurable {
    /// The highest epoch this node knows it took part in.
    pub fn highest(&self) -> u64 {
        self.granted.max(self.stood)
    }
}

/// Can this node stand for election, and with what priority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Eligibility {
    pub eligible: bool,
    pub priority: u8,
    /// Why (shown in logs and status): "UpToDate, 3.1 GiB free" or "undervoltage".
    pub reason: String,
}

#[derive(Debug, Clone)]
struct Promise {
    holder: NodeId,
    epoch: u64,
    until: Instant,
}

#[derive(Debug, Clone)]
struct Round {
    epoch: u64,
    round: u64,
    sent_at: Instant,
    last_sent: Instant,
    deadline: Instant,
    grants: BTreeSet<NodeId>,
    rejects: BTreeMap<NodeId, (RejectReason, Option<NodeId>, Duration)>,
}

/// A standby's survey of the voters.
#[derive(Debug, Clone)]
struct QueryRound {
    round: u64,
    deadline: Instant,
    /// Per voter: promised to whom, until when (our clock), still restarting.
    answers: BTreeMap<NodeId, (Option<NodeId>, Instant, bool)>,
}

#[derive(Debug, Clone)]
enum Role {
    /// Not holding; maybe waiting to stand at `next_attempt`.
    Follower,
    /// Standing in `round`.
    Candidate(Round),
    /// Holding `epoch` until `lease_end`; may be renewing.
    Holder {
        epoch: u64,
        lease_end: Instant,
        next_renew: Instant,
        /// Open renewal rounds, oldest first; a majority of grants across them extends the lease.
        renewing: Vec<Round>,
    },
    /// Stepped down from `epoch`; waiting for the driver to confirm fencing.
    Fencing {
        epoch: u64,
        lease_end: Instant,
        handover_to: Option<NodeId>,
    },
}

/// One node's lease state: voter (if it is one) and candidate (if it is a master candidate).
#[derive(Debug)]
pub struct LeaseMachine {
    me: NodeId,
    voters: Vec<NodeId>,
    is_voter: bool,
    is_candidate: bool,
    cfg: LeaseConfig,
    rng: ChaCha8Rng,
    durable: LeaseDurable,
    // voter side
    promise: Option<Promise>,
    silent_until: Instant,
    // candidate side
    role: Role,
    eligibility: Eligibility,
    next_attempt: Option<Instant>,
    next_query: Instant,
    query: Option<QueryRound>,
    next_round: u64,
    known_holder: Option<(NodeId, u64, Instant)>,
    /// Highest epoch heard of from voters (not persisted until we stand).
    seen_epoch: u64,
    switchover_to: Option<Option<NodeId>>,
    hold_off_until: Instant,
    now: Instant,
    out: VecDeque<Transmit<LeaseMsg>>,
    events: VecDeque<LeaseEvent>,
}

impl LeaseMachine {
    /// A node starting (or restarting) at `now` with what it persisted before.
    pub fn new(
        me: NodeId,
        voters: &[NodeId],
        is_candidate: bool,
        cfg: LeaseConfig,
        durable: LeaseDurable,
        seed: u64,
        now: Instant,
    ) -> Self {
        let is_voter = voters.contains(&me);
        // A voter that never granted anything (durable epoch 0) cannot have an outstanding promise.
        let silent_until =
            if cfg.unsafe_variant == Some(UnsafeVariant::NoRestartWait) || durable.granted == 0 {
                now
            } else {
                now + cfg.restart_silence()
            };
        Self {
            me,
            voters: voters.to_vec(),
            is_voter,
            is_candidate,
            rng: ChaCha8Rng::seed_from_u64(seed),
            durable,
            promise: None,
            silent_until,
            role: Role::Follower,
            eligibility: Eligibility {
                eligible: false,
                priority: 0,
                reason: "starting".into(),
            },
            next_attempt: None,
            next_query: now,
            query: None,
            next_round: 1,
            known_holder: None,
            seen_epoch: 0,
            switchover_to: None,
            hold_off_until: now,
            now,
            out: VecDeque::new(),
            events: VecDeque::new(),
            cfg,
        }
    }

    /// What must be persisted (write it before sending anything polled after it changed).
    pub fn durable(&self) -> LeaseDurable {
        self.durable
    }

    /// Majority of the voter set.
    pub fn quorum(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// The epoch this node holds the lease for at `now`, if it does (its belief, until `lease_end`).
    pub fn holds(&self, now: Instant) -> Option<u64> {
        match &self.role {
            Role::Holder {
                epoch, lease_end, ..
            } if now < *lease_end => Some(*epoch),
            Role::Fencing {
                epoch, lease_end, ..
            } if now < *lease_end => Some(*epoch),
            _ => None,
        }
    }

    /// The epoch this node may act as leader for at `now` (holds, and has not reached its fencing point).
    pub fn leader_epoch(&self, now: Instant) -> Option<u64> {
        match &self.role {
            Role::Holder {
                epoch, lease_end, ..
            } if now + self.cfg.fence_budget < *lease_end => Some(*epoch),
            _ => None,
        }
    }

    /// The epoch this node stepped down from and must fence (then call [`LeaseMachine::fenced`]).
    pub fn fencing(&self) -> Option<u64> {
        match &self.role {
            Role::Fencing { epoch, .. } => Some(*epoch),
            _ => None,
        }
    }

    /// When this node's belief in its lease ends (holder or fencing).
    pub fn lease_end(&self) -> Option<Instant> {
        match &self.role {
            Role::Holder { lease_end, .. } | Role::Fencing { lease_end, .. } => Some(*lease_end),
            _ => None,
        }
    }

    /// The holder this node last heard of, its epoch, and when that knowledge runs out.
    pub fn known_holder(&self) -> Option<(NodeId, u64, Instant)> {
        match &self.role {
            Role::Holder {
                epoch, lease_end, ..
            } => Some((self.me, *epoch, *lease_end)),
            _ => self.known_holder,
        }
    }

    /// The highest epoch this node knows of.
    pub fn highest_epoch(&self) -> u64 {
        self.durable.highest().max(self.seen_epoch)
    }

    pub fn eligibility(&self) -> &Eligibility {
        &self.eligibility
    }

    /// Updates whether this node may stand. A holder that becomes ineligible steps down.
    pub fn set_eligibility(&mut self, now: Instant, e: Eligibility) {
        self.now = now;
        let was = self.eligibility.eligible;
        self.eligibility = e;
        if !self.eligibility.eligible {
            if let Role::Holder { epoch, .. } = self.role {
                self.step_down(epoch, StepDownReason::NotEligible, None);
            } else if let Role::Candidate(r) = &self.role {
                let epoch = r.epoch;
                self.abandon_round(epoch);
            }
        } else if !was {
            // Find out at once whether the voters are free.
            self.next_query = now;
        }
    }

    /// Asks the holder to hand the lease over (to `to`, or to whoever stands first).
    pub fn request_switchover(&mut self, now: Instant, to: Option<NodeId>) -> bool {
        self.now = now;
        if let Role::Holder { epoch, .. } = self.role {
            self.step_down(epoch, StepDownReason::Switchover, to);
            true
        } else {
            false
        }
    }

    /// The driver confirms that fencing for `epoch` is complete (VIP down, mfsmaster stopped,
    /// replica demoted). Voters are released so a successor need not wait for the promises to run out.
    pub fn fenced(&mut self, now: Instant, epoch: u64) {
        self.now = now;
        if let Role::Fencing {
            epoch: e,
            handover_to,
            ..
        } = self.role
            && e == epoch
        {
            for v in self.voters.clone() {
                self.send(v, LeaseMsg::Release { epoch });
            }
            if let Some(to) = handover_to {
                self.send(to, LeaseMsg::Handover { epoch });
            }
            // Do not stand again right away after a switchover: give the successor a lease.
            if handover_to.is_some() || self.switchover_to.take().is_some() {
                self.hold_off_until = now + self.cfg.lease;
            }
            self.role = Role::Follower;
            self.known_holder = None;
            self.next_query = self.hold_off_until.max(now);
        }
    }

    fn handle(&mut self, now: Instant, from: NodeId, msg: LeaseMsg) {
        match msg {
            LeaseMsg::Request {
                epoch,
                round,
                renew,
            } => self.on_request(now, from, epoch, round, renew),
            LeaseMsg::Grant { .. } | LeaseMsg::Reject { .. } => self.on_answer(now, from, &msg),
            LeaseMsg::Release { epoch } => self.on_release(from, epoch),
            LeaseMsg::Handover { epoch } => {
                self.seen_epoch = self.seen_epoch.max(epoch);
                if self.known_holder.is_some_and(|(h, _, _)| h == from) {
                    self.known_holder = None;
                }
                if matches!(self.role, Role::Follower)
                    && self.is_candidate
                    && self.eligibility.eligible
                {
                    self.next_attempt = Some(now);
                }
            }
            LeaseMsg::Query { round } => self.on_query(now, from, round),
            LeaseMsg::State {
                round,
                holder,
                epoch,
                remaining_ms,
                restarting,
                highest_epoch,
            } => {
                self.on_state(
                    now,
                    from,
                    round,
                    holder,
                    epoch,
                    remaining_ms,
                    restarting,
                    highest_epoch,
                );
            }
        }
    }
}

impl Machine for LeaseMachine {
    type Msg = LeaseMsg;
    type Event = LeaseEvent;

    fn id(&self) -> NodeId {
        self.me
    }

    fn handle_message(&mut self, now: Instant, from: NodeId, msg: LeaseMsg) {
        self.now = now;
        if from == self.me {
            // Our own vote is handled in place and never travels.
            return;
        }
        self.handle(now, from, msg);
        self.handle_timeout(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if let Some(p) = &self.promise
            && p.until <= now
        {
            self.promise = None;
        }
        if self.known_holder.is_some_and(|(_, _, until)| until <= now) {
            self.known_holder = None;
        }
        match &mut self.role {
            Role::Follower => {
                let may_stand =
                    self.is_candidate && self.eligibility.eligible && now >= self.hold_off_until;
                if !may_stand {
                    self.query = None;
                    self.next_attempt = None;
                } else if self.next_attempt.is_some_and(|t| now >= t) {
                    self.stand(now);
                } else if let Some(q) = &self.query {
                    if now >= q.deadline {
                        self.evaluate_query(now, true);
                    }
                } else if self.next_attempt.is_none() && now >= self.next_query {
                    let round = self.next_round;
                    self.next_round += 1;
                    self.query = Some(QueryRound {
                        round,
                        deadline: now + self.cfg.round_timeout,
                        answers: BTreeMap::new(),
                    });
                    for v in self.voters.clone() {
                        self.send(v, LeaseMsg::Query { round });
                    }
                }
            }
            Role::Candidate(r) => {
                if now >= r.deadline {
                    self.check_round(now);
                } else if now >= r.last_sent + self.cfg.retry_every {
                    r.last_sent = now;
                    let (epoch, round, skip) = (
                        r.epoch,
                        r.round,
                        r.grants.iter().chain(r.rejects.keys()).copied().collect(),
                    );
                    self.broadcast_request(epoch, round, false, &skip);
                }
            }
            Role::Holder {
                epoch,
                lease_end,
                next_renew,
                renewing,
            } => {
                let (epoch, lease_end) = (*epoch, *lease_end);
                if now + self.cfg.fence_budget >= lease_end {
                    self.step_down(epoch, StepDownReason::RenewalFailed, None);
                    return;
                }
                // Rounds whose lease would end before the fencing point are of no use.
                let belief = self.cfg.belief();
                let budget = self.cfg.fence_budget;
                renewing.retain(|r| now + budget < r.sent_at + belief);
                let last = renewing.last().map(|r| r.sent_at);
                let open = match last {
                    None => now >= *next_renew,
                    Some(t) => now >= t + self.cfg.retry_every,
                };
                if open && renewing.len() < 16 {
                    let r = self.start_round(now, epoch);
                    let round = r.round;
                    if let Role::Holder { renewing, .. } = &mut self.role {
                        renewing.push(r);
                    }
                    self.broadcast_request(epoch, round, true, &BTreeSet::new());
                    self.check_round(now);
                }
            }
            Role::Fencing { .. } => {}
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let mut t: Vec<Instant> = Vec::new();
        if let Some(p) = &self.promise {
            t.push(p.until);
        }
        if let Some((_, _, until)) = self.known_holder {
            t.push(until);
        }
        match &self.role {
            Role::Follower => {
                if self.is_candidate && self.eligibility.eligible {
                    match (&self.next_attempt, &self.query) {
                        (Some(a), _) => t.push((*a).max(self.hold_off_until)),
                        (None, Some(q)) => t.push(q.deadline),
                        (None, None) => t.push(self.next_query.max(self.hold_off_until)),
                    }
                }
            }
            Role::Candidate(r) => {
                t.push(r.deadline);
                t.push(r.last_sent + self.cfg.retry_every);
            }
            Role::Holder {
                lease_end,
                next_renew,
                renewing,
                ..
            } => {
                t.push(*lease_end - self.cfg.fence_budget);
                match renewing.last() {
                    None => t.push(*next_renew),
                    Some(r) => t.push(r.sent_at + self.cfg.retry_every),
                }
            }
            Role::Fencing { .. } => {}
        }
        t.into_iter().min()
    }

    fn poll_transmit(&mut self) -> Option<Transmit<LeaseMsg>> {
        self.out.pop_front()
    }

    fn poll_event(&mut self) -> Option<LeaseEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests;
