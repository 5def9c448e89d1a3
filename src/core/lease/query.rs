//! Who holds the lease, asked of the voters: how a node that does not hold it learns the
//! current holder and its epoch (after a restart, or to follow a switchover).

use std::time::Duration;

use super::*;
use crate::core::{Instant, NodeId};

impl LeaseMachine {
    pub(super) fn on_query(&mut self, now: Instant, from: NodeId, round: u64) {
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
    pub(super) fn on_state(
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
    pub(super) fn evaluate_query(&mut self, now: Instant, timed_out: bool) {
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
