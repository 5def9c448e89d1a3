//! The voter side of the lease: granting, refusing and releasing promises. A voter never has
//! two live promises to different nodes; that is what makes two holders impossible.

use super::*;
use crate::core::{Instant, NodeId};

impl LeaseMachine {
    /// Voter side.
    pub(super) fn on_request(
        &mut self,
        now: Instant,
        from: NodeId,
        epoch: u64,
        round: u64,
        renew: bool,
    ) {
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

    pub(super) fn on_release(&mut self, from: NodeId, epoch: u64) {
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
}
