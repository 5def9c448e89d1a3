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

/// Lease messages (authenticated by the wire like gossip).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaseMsg {
    /// "Grant me the lease for `epoch`" (`renew`: I hold it already and extend it).
    Request { epoch: u64, round: u64, renew: bool },
    /// The voter promised the sender the lease for `epoch` for `D` from its receive time.
    Grant { epoch: u64, round: u64 },
    /// The voter refuses; it says what it knows so the candidate can wait rather than duel.
    Reject {
        epoch: u64,
        round: u64,
        why: RejectReason,
        highest_epoch: u64,
        holder: Option<NodeId>,
        remaining_ms: u64,
    },
    /// The sender no longer needs the voter's promise for `epoch` (it fenced, or lost its round).
    Release { epoch: u64 },
    /// The holder of `epoch` stepped down and fenced, and asks the receiver to stand at once.
    Handover { epoch: u64 },
    /// A standby asks a voter what it has promised (costs no epoch and no disk write).
    Query { round: u64 },
    /// A voter's answer to `Query`: whom it promised, for how much longer, and whether it is still
    /// silent after a restart.
    State {
        round: u64,
        holder: Option<NodeId>,
        epoch: u64,
        remaining_ms: u64,
        restarting: bool,
        highest_epoch: u64,
    },
}

/// Why a voter refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectReason {
    /// It holds an unexpired promise to another node.
    Promised,
    /// The epoch is not above the highest it granted.
    StaleEpoch,
    /// It restarted recently and may have promised before the crash.
    Restarting,
}

/// What the lease machine tells its user. Every variant is a decision worth a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseEvent {
    /// This node stands for election.
    Standing { epoch: u64 },
    /// This node holds the lease for `epoch` until `until` (its clock): promote.
    Elected { epoch: u64, until: Instant },
    /// This node must stop acting as leader now and fence (VIP down first).
    StepDown { epoch: u64, reason: StepDownReason },
    /// An election round failed.
    RoundFailed {
        epoch: u64,
        grants: usize,
        needed: usize,
    },
    /// Another node is known to hold the lease.
    HolderSeen { holder: NodeId, epoch: u64 },
}

/// Why a holder steps down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepDownReason {
    /// Renewals failed and the fencing point `lease_end - F` was reached.
    RenewalFailed,
    /// A switchover was asked for.
    Switchover,
    /// The node is no longer eligible (health, replica, maintenance).
    NotEligible,
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

    fn backoff(&mut self) -> Duration {
        let jitter_us = u64::try_from(self.cfg.backoff_jitter.as_micros()).unwrap_or(0);
        let jitter = if jitter_us == 0 {
            0
        } else {
            self.rng.next_u64() % jitter_us
        };
        let prio = u32::from(255 - self.eligibility.priority);
        self.cfg.backoff_per_priority * prio + Duration::from_micros(jitter)
    }

    fn send(&mut self, to: NodeId, msg: LeaseMsg) {
        if to == self.me {
            // Our own vote is handled in place.
            let now = self.now;
            self.handle(now, to, msg);
        } else {
            self.out.push_back(Transmit { to, msg });
        }
    }

    fn step_down(&mut self, epoch: u64, reason: StepDownReason, handover_to: Option<NodeId>) {
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

    fn abandon_round(&mut self, epoch: u64) {
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

    fn start_round(&mut self, now: Instant, epoch: u64) -> Round {
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

    fn broadcast_request(&mut self, epoch: u64, round: u64, renew: bool, skip: &BTreeSet<NodeId>) {
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

    fn stand(&mut self, now: Instant) {
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
    fn claims(&self, epoch: u64) -> bool {
        match &self.role {
            Role::Follower => false,
            Role::Candidate(r) => r.epoch == epoch,
            Role::Holder { epoch: e, .. } | Role::Fencing { epoch: e, .. } => *e == epoch,
        }
    }

    /// Voter side.
    fn on_request(&mut self, now: Instant, from: NodeId, epoch: u64, round: u64, renew: bool) {
        if !self.is_voter {
            return;
        }
        let reject = |m: &Self, why: RejectReason| LeaseMsg::Reject {
            epoch,
            round,
            why,
            highest_epoch: m.durable.highest(),
            holder: m
                .promise
                .as_ref()
                .filter(|p| p.until > now)
                .map(|p| p.holder),
            remaining_ms: m
                .promise
                .as_ref()
                .map_or(0, |p| p.until.saturating_since(now).as_millis() as u64),
        };
        if now < self.silent_until {
            let msg = LeaseMsg::Reject {
                epoch,
                round,
                why: RejectReason::Restarting,
                highest_epoch: self.durable.highest(),
                holder: None,
                remaining_ms: self.silent_until.saturating_since(now).as_millis() as u64,
            };
            self.send(from, msg);
            return;
        }
        let live = self.promise.as_ref().filter(|p| p.until > now).cloned();
        match live {
            Some(p) if p.holder == from && p.epoch == epoch => {
                // Renewal (or a retransmission) by the current holder.
                self.promise = Some(Promise {
                    holder: from,
                    epoch,
                    until: now + self.cfg.lease,
                });
                self.send(from, LeaseMsg::Grant { epoch, round });
            }
            // Promised `epoch` to a candidate that lost the duel for it while `from` renews it:
            // only the winner of an epoch renews it, and the loser can never win it (the winner's
            // majority granted it first), so the promise moves to the winner.
            Some(p) if renew && p.epoch == epoch && epoch == self.durable.granted => {
                self.promise = Some(Promise {
                    holder: from,
                    epoch,
                    until: now + self.cfg.lease,
                });
                self.send(from, LeaseMsg::Grant { epoch, round });
            }
            Some(_) => {
                let msg = reject(self, RejectReason::Promised);
                self.send(from, msg);
            }
            None => {
                // A renewal of the newest epoch this voter granted joins the holder's side even
                // if this voter's promise lapsed, or it granted that epoch to another candidate
                // (itself, in a duel) that lost: only one node can have won `epoch` (every
                // majority that granted it first intersects), only that winner renews, and a
                // voter that granted anything newer refuses. Without this, a holder that won a
                // duel keeps a one-voter margin for its whole term, and loss turns that into
                // false failovers.
                let renewal = renew
                    && epoch == self.durable.granted
                    && (from == self.me || !self.claims(epoch));
                if epoch > self.durable.granted || renewal {
                    self.durable.granted = epoch;
                    self.promise = Some(Promise {
                        holder: from,
                        epoch,
                        until: now + self.cfg.lease,
                    });
                    self.send(from, LeaseMsg::Grant { epoch, round });
                } else {
                    let msg = reject(self, RejectReason::StaleEpoch);
                    self.send(from, msg);
                }
            }
        }
    }

    fn on_release(&mut self, from: NodeId, epoch: u64) {
        if self
            .promise
            .as_ref()
            .is_some_and(|p| p.holder == from && p.epoch == epoch)
        {
            self.promise = None;
        }
        if self
            .known_holder
            .is_some_and(|(h, e, _)| h == from && e == epoch)
        {
            self.known_holder = None;
        }
    }

    /// Candidate side: a voter answered.
    fn on_answer(&mut self, now: Instant, from: NodeId, msg: &LeaseMsg) {
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
    fn check_round(&mut self, now: Instant) {
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

    fn belief_end(&self, sent_at: Instant, received_at: Instant) -> Instant {
        match self.cfg.unsafe_variant {
            Some(UnsafeVariant::NoDriftMargin) => received_at + self.cfg.lease,
            _ => sent_at + self.cfg.belief(),
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

    fn on_query(&mut self, now: Instant, from: NodeId, round: u64) {
        if !self.is_voter {
            return;
        }
        let restarting = now < self.silent_until;
        let live = self.promise.as_ref().filter(|p| p.until > now).cloned();
        let msg = LeaseMsg::State {
            round,
            holder: live.as_ref().map(|p| p.holder),
            epoch: live.as_ref().map_or(self.durable.granted, |p| p.epoch),
            remaining_ms: if restarting {
                self.silent_until.saturating_since(now).as_millis() as u64
            } else {
                live.as_ref()
                    .map_or(0, |p| p.until.saturating_since(now).as_millis() as u64)
            },
            restarting,
            highest_epoch: self.durable.highest(),
        };
        self.send(from, msg);
    }

    #[allow(clippy::too_many_arguments)]
    fn on_state(
        &mut self,
        now: Instant,
        from: NodeId,
        round: u64,
        holder: Option<NodeId>,
        epoch: u64,
        remaining_ms: u64,
        restarting: bool,
        highest_epoch: u64,
    ) {
        if !self.voters.contains(&from) {
            return;
        }
        // Knowing a higher epoch costs no write: it is persisted when we stand.
        let _ = highest_epoch;
        let until = now + Duration::from_millis(remaining_ms);
        if let Some(h) = holder
            && h != self.me
        {
            if self
                .known_holder
                .is_none_or(|(kh, ke, _)| kh != h || ke != epoch)
            {
                self.events
                    .push_back(LeaseEvent::HolderSeen { holder: h, epoch });
            }
            let later = self.known_holder.map_or(until, |(_, _, u)| u.max(until));
            self.known_holder = Some((h, epoch, later));
        }
        self.seen_epoch = self.seen_epoch.max(highest_epoch);
        let Some(q) = &mut self.query else { return };
        if q.round != round {
            return;
        }
        q.answers
            .insert(from, (holder.filter(|h| *h != self.me), until, restarting));
        self.evaluate_query(now, false);
    }

    /// Decides from the voters' answers whether to stand now, or when to ask again.
    fn evaluate_query(&mut self, now: Instant, timed_out: bool) {
        let need = self.quorum();
        let Some(q) = &self.query else { return };
        let free = q
            .answers
            .values()
            .filter(|(h, _, r)| h.is_none() && !r)
            .count();
        let complete = q.answers.len() == self.voters.len();
        if free >= need {
            self.query = None;
            let b = self.backoff();
            self.next_attempt = Some(now + b);
            return;
        }
        if !(complete || timed_out || q.answers.len() - free > self.voters.len() - need) {
            return;
        }
        // Ask again when enough promises can have run out to make a majority free.
        let mut ends: Vec<Instant> = q
            .answers
            .values()
            .filter(|(h, _, r)| h.is_some() || *r)
            .map(|(_, u, _)| *u)
            .collect();
        ends.sort();
        let missing = need.saturating_sub(free);
        let unanswered = self.voters.len() - q.answers.len();
        let at = if missing <= unanswered {
            now + self.cfg.retry_every
        } else {
            ends.get(missing - unanswered - 1).copied().unwrap_or(now) + Duration::from_millis(5)
        };
        self.query = None;
        self.next_query = at
            .max(now + Duration::from_millis(5))
            .min(now + self.cfg.renew_every);
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
mod tests {
    use super::*;

    const D: Duration = Duration::from_millis(3000);

    /// Three voters, all master candidates, on a perfect network with instant delivery and one
    /// shared clock; `down` nodes neither send nor receive.
    struct Rack {
        nodes: Vec<LeaseMachine>,
        down: BTreeSet<usize>,
        now: Instant,
    }

    impl Rack {
        fn new(prios: &[u8]) -> Self {
            let ids: Vec<NodeId> = (0..prios.len() as u16).map(NodeId).collect();
            let now = Instant::from_millis(0);
            let mut nodes: Vec<LeaseMachine> = ids
                .iter()
                .map(|id| {
                    LeaseMachine::new(
                        *id,
                        &ids,
                        true,
                        LeaseConfig::new(D, Duration::from_millis(1000), 10_000),
                        LeaseDurable::default(),
                        u64::from(id.0),
                        now,
                    )
                })
                .collect();
            for (n, p) in nodes.iter_mut().zip(prios) {
                n.set_eligibility(
                    now,
                    Eligibility {
                        eligible: true,
                        priority: *p,
                        reason: "test".into(),
                    },
                );
            }
            Rack {
                nodes,
                down: BTreeSet::new(),
                now,
            }
        }

        fn run_for(&mut self, d: Duration) {
            let end = self.now + d;
            while self.now < end {
                self.now += Duration::from_millis(10);
                for i in 0..self.nodes.len() {
                    if !self.down.contains(&i) {
                        self.nodes[i].handle_timeout(self.now);
                    }
                }
                self.deliver();
            }
        }

        fn deliver(&mut self) {
            loop {
                let mut any = false;
                for i in 0..self.nodes.len() {
                    while let Some(t) = self.nodes[i].poll_transmit() {
                        any = true;
                        let to = usize::from(t.to.0);
                        if std::env::var("LEASE_TRACE").is_ok() {
                            eprintln!("{} n{i} -> n{to} {:?}", self.now, t.msg);
                        }
                        if !self.down.contains(&i) && !self.down.contains(&to) {
                            self.nodes[to].handle_message(self.now, NodeId(i as u16), t.msg);
                        }
                    }
                    while let Some(ev) = self.nodes[i].poll_event() {
                        if std::env::var("LEASE_TRACE").is_ok() {
                            eprintln!("{} n{i} {ev:?}", self.now);
                        }
                    }
                }
                if !any {
                    break;
                }
            }
        }

        fn holders(&self) -> Vec<(usize, u64)> {
            self.nodes
                .iter()
                .enumerate()
                .filter(|(i, _)| !self.down.contains(i))
                .filter_map(|(i, n)| n.holds(self.now).map(|e| (i, e)))
                .collect()
        }
    }

    /// What one voter answers `from` (draining its output).
    fn answer(v: &mut LeaseMachine, now: Instant, from: u16, msg: LeaseMsg) -> Vec<LeaseMsg> {
        v.handle_message(now, NodeId(from), msg);
        std::iter::from_fn(|| v.poll_transmit())
            .filter(|t| t.to == NodeId(from))
            .map(|t| t.msg)
            .collect()
    }

    #[test]
    fn a_voter_that_gave_the_epoch_to_a_loser_grants_the_winners_renewals() {
        let ids: Vec<NodeId> = (0..3).map(NodeId).collect();
        let cfg = LeaseConfig::new(D, Duration::from_millis(1000), 10_000);
        let t0 = Instant::from_millis(0);
        let mut v = LeaseMachine::new(NodeId(2), &ids, false, cfg, LeaseDurable::default(), 7, t0);
        let req = |epoch, renew| LeaseMsg::Request {
            epoch,
            round: 1,
            renew,
        };
        let granted = |m: &[LeaseMsg]| matches!(m, [LeaseMsg::Grant { .. }]);
        // A duel for epoch 1: n1 asks first and gets this voter; n0 wins with the others.
        assert!(granted(&answer(&mut v, t0, 1, req(1, false))));
        assert!(!granted(&answer(&mut v, t0, 0, req(1, false))));
        // n1 lost (its release was lost too): the promise moves to n0, whose renewals prove it
        // won epoch 1; n1 can no longer be granted it.
        let t1 = t0 + Duration::from_millis(800);
        assert!(granted(&answer(&mut v, t1, 0, req(1, true))));
        assert!(!granted(&answer(&mut v, t1, 1, req(1, false))));
        // Its promise lapses (loss): a renewal of the same epoch is still granted.
        let t2 = t1 + D + Duration::from_millis(10);
        assert!(granted(&answer(&mut v, t2, 0, req(1, true))));
        // Once it granted a newer epoch, the old one is never renewed again.
        let t3 = t2 + D + Duration::from_millis(10);
        assert!(granted(&answer(&mut v, t3, 1, req(2, false))));
        let t4 = t3 + D + Duration::from_millis(10);
        assert!(matches!(
            answer(&mut v, t4, 0, req(1, true)).as_slice(),
            [LeaseMsg::Reject {
                why: RejectReason::StaleEpoch,
                ..
            }]
        ));
    }

    #[test]
    fn highest_priority_is_elected_at_first_start_and_keeps_renewing() {
        let mut r = Rack::new(&[100, 200, 150]);
        r.run_for(Duration::from_millis(500));
        assert_eq!(r.holders(), vec![(1, 1)]);
        r.run_for(Duration::from_secs(20));
        assert_eq!(
            r.holders(),
            vec![(1, 1)],
            "renewals keep the same holder and epoch"
        );
    }

    #[test]
    fn holder_lost_then_another_is_elected_with_a_higher_epoch() {
        let mut r = Rack::new(&[100, 200, 150]);
        r.run_for(Duration::from_secs(5));
        assert_eq!(r.holders(), vec![(1, 1)]);
        r.down.insert(1);
        let lost_at = r.now;
        let mut elected = None;
        for _ in 0..1000 {
            r.run_for(Duration::from_millis(10));
            if let Some((i, e)) = r.holders().first().copied() {
                elected = Some((i, e, r.now.saturating_since(lost_at)));
                break;
            }
        }
        let (i, e, after) = elected.expect("a new holder");
        assert_eq!((i, e), (2, 2), "next priority, next epoch");
        assert!(after <= D + Duration::from_millis(700), "took {after:?}");
    }

    #[test]
    fn switchover_hands_over_after_fencing_without_waiting_for_the_lease() {
        let mut r = Rack::new(&[100, 200, 150]);
        r.run_for(Duration::from_secs(5));
        let t = r.now;
        assert!(r.nodes[1].request_switchover(t, Some(NodeId(0))));
        assert_eq!(
            r.nodes[1].leader_epoch(t),
            None,
            "acting leader stops at once"
        );
        r.run_for(Duration::from_millis(100));
        assert_eq!(
            r.holders().len(),
            1,
            "still believes until fenced: nobody else may hold yet"
        );
        let t = r.now;
        r.nodes[1].fenced(t, 1);
        r.deliver();
        r.run_for(Duration::from_millis(200));
        assert_eq!(
            r.holders(),
            vec![(0, 2)],
            "the chosen node holds within 200 ms"
        );
    }

    #[test]
    fn holder_fences_before_its_lease_ends_when_cut_off() {
        let mut r = Rack::new(&[100, 200, 150]);
        r.run_for(Duration::from_secs(5));
        let end = r.nodes[1].lease_end().expect("holder");
        r.down.insert(0);
        r.down.insert(2);
        let mut stepped = None;
        for _ in 0..500 {
            let now = r.now + Duration::from_millis(10);
            r.now = now;
            r.nodes[1].handle_timeout(now);
            while let Some(ev) = r.nodes[1].poll_event() {
                if let LeaseEvent::StepDown { reason, .. } = ev {
                    stepped = Some((now, reason));
                }
            }
            while r.nodes[1].poll_transmit().is_some() {}
            if stepped.is_some() {
                break;
            }
        }
        let (at, reason) = stepped.expect("stepped down");
        assert_eq!(reason, StepDownReason::RenewalFailed);
        assert!(
            at + Duration::from_millis(990) <= end,
            "fencing starts a full budget before the end"
        );
        assert_eq!(r.nodes[1].leader_epoch(at), None);
    }

    #[test]
    fn voter_refuses_a_second_node_while_its_promise_lives() {
        let ids = [NodeId(0), NodeId(1), NodeId(2)];
        let cfg = LeaseConfig::new(D, Duration::from_millis(1000), 10_000);
        let mut v = LeaseMachine::new(
            NodeId(0),
            &ids,
            false,
            cfg,
            LeaseDurable::default(),
            1,
            Instant::ZERO,
        );
        let t = Instant::from_millis(10_000);
        v.handle_message(
            t,
            NodeId(1),
            LeaseMsg::Request {
                epoch: 1,
                round: 1,
                renew: false,
            },
        );
        assert!(matches!(
            v.poll_transmit(),
            Some(Transmit {
                msg: LeaseMsg::Grant { epoch: 1, .. },
                ..
            })
        ));
        v.handle_message(
            t + Duration::from_millis(100),
            NodeId(2),
            LeaseMsg::Request {
                epoch: 2,
                round: 1,
                renew: false,
            },
        );
        match v.poll_transmit() {
            Some(Transmit {
                msg:
                    LeaseMsg::Reject {
                        why: RejectReason::Promised,
                        holder: Some(NodeId(1)),
                        remaining_ms,
                        ..
                    },
                ..
            }) => assert_eq!(remaining_ms, 2900),
            other => panic!("{other:?}"),
        }
        // After the promise ends, a higher epoch is granted; a lower one never.
        v.handle_message(
            t + D,
            NodeId(2),
            LeaseMsg::Request {
                epoch: 1,
                round: 2,
                renew: false,
            },
        );
        assert!(matches!(
            v.poll_transmit(),
            Some(Transmit {
                msg: LeaseMsg::Reject {
                    why: RejectReason::StaleEpoch,
                    ..
                },
                ..
            })
        ));
        v.handle_message(
            t + D,
            NodeId(2),
            LeaseMsg::Request {
                epoch: 2,
                round: 3,
                renew: false,
            },
        );
        assert!(matches!(
            v.poll_transmit(),
            Some(Transmit {
                msg: LeaseMsg::Grant { epoch: 2, .. },
                ..
            })
        ));
        assert_eq!(v.durable().granted, 2);
    }

    #[test]
    fn restarted_voter_is_silent_for_one_lease() {
        let ids = [NodeId(0), NodeId(1), NodeId(2)];
        let cfg = LeaseConfig::new(D, Duration::from_millis(1000), 10_000);
        let t = Instant::from_millis(50_000);
        let mut v = LeaseMachine::new(
            NodeId(0),
            &ids,
            false,
            cfg,
            LeaseDurable {
                granted: 4,
                stood: 0,
            },
            1,
            t,
        );
        v.handle_message(
            t + Duration::from_millis(3000),
            NodeId(1),
            LeaseMsg::Request {
                epoch: 5,
                round: 1,
                renew: false,
            },
        );
        assert!(matches!(
            v.poll_transmit(),
            Some(Transmit {
                msg: LeaseMsg::Reject {
                    why: RejectReason::Restarting,
                    ..
                },
                ..
            })
        ));
        v.handle_message(
            t + Duration::from_millis(3100),
            NodeId(1),
            LeaseMsg::Request {
                epoch: 5,
                round: 2,
                renew: false,
            },
        );
        assert!(matches!(
            v.poll_transmit(),
            Some(Transmit {
                msg: LeaseMsg::Grant { epoch: 5, .. },
                ..
            })
        ));
    }

    #[test]
    fn belief_is_shorter_than_any_promise() {
        let cfg = LeaseConfig::new(D, Duration::from_millis(1000), 10_000);
        assert_eq!(cfg.belief(), Duration::from_millis(2940));
        assert!(cfg.restart_silence() > D);
    }
}
