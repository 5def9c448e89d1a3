//! The simulated node of the lease proof: the real lease machine plus a model of its host
//! (kernel VIP, replica role, mfsmaster, disks) that the real plan's actions drive.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::time::Duration;

use crate::core::lease::{LeaseDurable, LeaseEvent, LeaseMachine, LeaseMsg};
use crate::core::plan::{self, Action, Backend, Desired, MasterState, Observed, ReplicaRole};
use crate::core::{Instant, Machine, NodeId, Transmit};

/// How long the host takes for the slow steps (mfsmaster start 0.4-0.6 s measured; a stop is a
/// SIGTERM with a deadline inside the fencing budget, then SIGKILL).
pub const MASTER_START: Duration = Duration::from_millis(500);
pub const MASTER_STOP: Duration = Duration::from_millis(400);

/// Host state the kernel keeps across an agent crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernel {
    pub vip_until: Option<Instant>,
    pub replica: ReplicaRole,
    pub meta_mounted: bool,
}

/// What survives a crash, per node: the lease's durable state and the kernel's.
#[derive(Debug, Default)]
pub struct Disks {
    pub durable: BTreeMap<NodeId, LeaseDurable>,
    pub kernel: BTreeMap<NodeId, Kernel>,
}

/// What a simulated node reports (for invariants and measurements).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RackEvent {
    Lease(LeaseEvent),
    /// Started promoting (replica primary) for `epoch`.
    Promoting {
        epoch: u64,
    },
    /// The VIP went up (announced) for `epoch`.
    VipUp {
        epoch: u64,
    },
    /// Fencing for `epoch` completed.
    Fenced {
        epoch: u64,
    },
}

/// One node: the real lease machine and a model of its host.
pub struct RackNode {
    pub(super) id: NodeId,
    pub(super) lease: LeaseMachine,
    pub(super) disks: Rc<RefCell<Disks>>,
    pub(super) master: MasterState,
    pub(super) master_done_at: Option<Instant>,
    pub(super) master_unclean: bool,
    pub(super) provisioner: bool,
    pub(super) backend: Backend,
    pub(super) events: VecDeque<RackEvent>,
}

impl RackNode {
    fn kernel(&self) -> Kernel {
        self.disks
            .borrow()
            .kernel
            .get(&self.id)
            .copied()
            .unwrap_or(Kernel {
                vip_until: None,
                replica: ReplicaRole::Secondary,
                meta_mounted: false,
            })
    }

    fn set_kernel(&self, k: Kernel) {
        self.disks.borrow_mut().kernel.insert(self.id, k);
    }

    fn observed(&self, now: Instant) -> Observed {
        let k = self.kernel();
        Observed {
            replica: k.replica,
            meta_mounted: k.meta_mounted,
            master: self.master,
            master_unclean: self.master_unclean,
            vip_until: k.vip_until.filter(|u| *u > now),
            provisioner: self.provisioner,
            metalogger: false,
            chunkserver_running: false,
            mount_healthy: false,
        }
    }

    /// The lease machine (for invariants).
    pub fn lease(&self) -> &LeaseMachine {
        &self.lease
    }

    /// The VIP deadline the kernel holds for this node, if any.
    pub fn vip_until(&self) -> Option<Instant> {
        self.kernel().vip_until
    }

    /// mfsmaster on this node.
    pub fn master(&self) -> MasterState {
        self.master
    }

    /// Asks this node, if it leads, to hand over to `to` (the operator's `switchover` command).
    pub fn switchover(&mut self, now: Instant, to: Option<NodeId>) -> bool {
        let ok = self.lease.request_switchover(now, to);
        self.drive(now);
        ok
    }

    /// Runs the plan until the host model is settled for now.
    fn drive(&mut self, now: Instant) {
        if let Some(t) = self.master_done_at
            && now >= t
        {
            self.master_done_at = None;
            self.master = match self.master {
                MasterState::Starting => MasterState::Ready,
                MasterState::Stopping => MasterState::Stopped,
                s => s,
            };
        }
        for _ in 0..16 {
            let desired = match (self.lease.leader_epoch(now), self.lease.lease_end()) {
                (Some(epoch), Some(lease_end)) => Desired::Leader { epoch, lease_end },
                _ => Desired::Standby,
            };
            let actions = plan::next_actions(desired, &self.observed(now), self.backend, now);
            if actions.is_empty() {
                break;
            }
            for a in actions {
                self.apply(a, now);
            }
        }
        if let Some(epoch) = self.lease.fencing()
            && self.observed(now).is_fenced(now)
        {
            self.lease.fenced(now, epoch);
            self.events.push_back(RackEvent::Fenced { epoch });
        }
    }

    fn apply(&mut self, a: Action, now: Instant) {
        let mut k = self.kernel();
        match a {
            Action::ReplicaPrimary { epoch } => {
                self.events.push_back(RackEvent::Promoting { epoch });
                k.replica = ReplicaRole::Primary;
            }
            Action::MountMeta { .. } => k.meta_mounted = true,
            Action::StartMaster { .. } => {
                self.master = MasterState::Starting;
                self.master_done_at = Some(now + MASTER_START);
                self.master_unclean = false;
            }
            Action::VipUp {
                epoch,
                valid_s,
                announce,
            } => {
                // Worst case for safety: the kernel removes the address as late as it may.
                k.vip_until =
                    Some(now + Duration::from_secs(u64::from(valid_s)) + plan::KERNEL_VIP_SLACK);
                if announce {
                    self.events.push_back(RackEvent::VipUp { epoch });
                }
            }
            Action::StartProvisioner { .. } => self.provisioner = true,
            Action::StopProvisioner => self.provisioner = false,
            Action::VipDown => k.vip_until = None,
            Action::StopMaster => {
                self.master = MasterState::Stopping;
                self.master_done_at = Some(now + MASTER_STOP);
            }
            Action::UnmountMeta => k.meta_mounted = false,
            Action::ReplicaSecondary => k.replica = ReplicaRole::Secondary,
            Action::StartMetalogger
            | Action::StopMetalogger
            | Action::StartChunkserver
            | Action::Remount => {}
        }
        self.set_kernel(k);
    }
}

impl Machine for RackNode {
    type Msg = LeaseMsg;
    type Event = RackEvent;

    fn id(&self) -> NodeId {
        self.id
    }

    fn handle_message(&mut self, now: Instant, from: NodeId, msg: LeaseMsg) {
        self.lease.handle_message(now, from, msg);
        self.drive(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.lease.handle_timeout(now);
        self.drive(now);
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.lease.poll_timeout();
        if let Some(m) = self.master_done_at {
            t = Some(t.map_or(m, |x| x.min(m)));
        }
        // The VIP is refreshed when a renewal moves the lease end, which drives the plan anyway.
        t
    }

    fn poll_transmit(&mut self) -> Option<Transmit<LeaseMsg>> {
        // The durable state is written (fsync) before anything is sent.
        let d = self.lease.durable();
        self.disks.borrow_mut().durable.insert(self.id, d);
        self.lease.poll_transmit()
    }

    fn poll_event(&mut self) -> Option<RackEvent> {
        if let Some(e) = self.lease.poll_event() {
            return Some(RackEvent::Lease(e));
        }
        self.events.pop_front()
    }
}
