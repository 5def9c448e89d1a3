//! What lease machines say to each other and to their driver: messages on the wire, and the
//! events the driver acts on.

use serde::{Deserialize, Serialize};

use crate::core::{Instant, NodeId};

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
