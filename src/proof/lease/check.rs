//! The invariants checked after every simulated step, plus the failover and switchover
//! measurements taken on the way.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use crate::core::lease::LeaseEvent;
use crate::core::plan::MasterState;
use crate::core::{Instant, NodeId};
use crate::sim::{NodeStatus, SimTime, SimView, Violation};

use super::{Disks, RackEvent, RackNode};

/// The invariants, plus failover measurements.
#[derive(Debug, Default)]
pub(super) struct Checker {
    pub(super) disks: Rc<RefCell<Disks>>,
    pub(super) last_epoch: u64,
    pub(super) elections: u32,
    /// The node that last announced the VIP, and when it went down (crash), if it did.
    pub(super) vip_owner: Option<NodeId>,
    /// When each node was last seen frozen.
    pub(super) last_paused: BTreeMap<NodeId, SimTime>,
    /// Nodes frozen this recently are exempt from the mfsmaster part of invariant 4.
    pub(super) frozen_exempt: Duration,
    pub(super) owner_down_at: Option<SimTime>,
    pub(super) failovers: Vec<Duration>,
    /// A switchover was asked at this time; the next VIP announcement ends its pause.
    pub(super) switchover_asked_at: Option<SimTime>,
    pub(super) switchovers: Vec<Duration>,
    /// Lease decisions in order (simulated time, node, event).
    pub(super) story: Vec<String>,
}

impl Checker {
    pub(super) fn check(&mut self, v: &SimView<'_, RackNode>) -> Result<(), Violation> {
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
