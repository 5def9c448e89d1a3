//! What the LEDs say about the rack: the [`RackView`] an agent's status reduces to, and the
//! [`Indication`] (and [`Pattern`]) it maps to.

use serde::{Deserialize, Serialize};

use super::{Blink, Pattern};
use crate::core::NodeId;
use crate::core::agent::{AgentStatus, NodeRole};
use crate::core::membership::{HealthFlags, MemberState, NodeMeta, ReplicaState};

/// The summary of what the LEDs say, highest concern first (for `status`, logs and metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Indication {
    /// The start-up lamp test.
    LampTest,
    /// Blinking the node number after a short button press.
    NodeNumber,
    /// The button is held past the switchover threshold.
    ArmedSwitchover,
    /// The button is held past the maintenance threshold.
    ArmedMaintenance,
    NeedsPerson,
    /// Fenced, or no quorum in sight: safe mode.
    Fenced,
    FailoverInProgress,
    Maintenance,
    Degraded,
    Leader,
    HealthyFollower,
    /// Seen from another node: down, or nothing known about it.
    Unknown,
}

impl Indication {
    /// A short label for tables.
    pub fn label(self) -> &'static str {
        match self {
            Indication::LampTest => "lamp test",
            Indication::NodeNumber => "node number",
            Indication::ArmedSwitchover => "release: switchover",
            Indication::ArmedMaintenance => "release: maintenance",
            Indication::NeedsPerson => "needs a person",
            Indication::Fenced => "fenced / no quorum",
            Indication::FailoverInProgress => "failover",
            Indication::Maintenance => "maintenance",
            Indication::Degraded => "degraded",
            Indication::Leader => "leader",
            Indication::HealthyFollower => "healthy",
            Indication::Unknown => "unknown",
        }
    }
}

/// The rack as one agent sees it, reduced to what the LEDs show.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RackView {
    /// This node leads (holds the lease).
    pub leader: bool,
    /// A leader is known (this node or another).
    pub leader_known: bool,
    /// This node is fencing after stepping down.
    pub fencing: bool,
    /// A majority of the voters is alive as far as this node can tell.
    pub quorum: bool,
    /// Some member is fencing (a failover has begun).
    pub member_fencing: bool,
    /// Members down or suspect, replicas behind, members reporting a hardware problem.
    pub degraded: bool,
    /// This node is in maintenance.
    pub maintenance: bool,
    /// This node needs a person (disk missing, host actions failing again and again).
    pub needs_person: bool,
}

/// Health flags that make the rack degraded when any member reports them.
const DEGRADING: HealthFlags = HealthFlags(
    HealthFlags::UNDERVOLTAGE.0
        | HealthFlags::LOW_MEMORY.0
        | HealthFlags::DISK_SLOW.0
        | HealthFlags::DISK_MISSING.0,
);

fn replica_behind(meta: &NodeMeta) -> bool {
    matches!(
        meta.replica.state,
        ReplicaState::Syncing | ReplicaState::Outdated
    )
}

/// Members that run different MooseFS major releases: older master candidates cannot stand, and
/// 3.0 chunkservers and mounts did not take writes through a 4.x master in the lab.
fn mixed_moosefs_majors(s: &AgentStatus) -> bool {
    let mut majors = s
        .members
        .iter()
        .filter_map(|m| m.meta.as_ref())
        .filter(|meta| meta.moosefs.is_known())
        .map(|meta| meta.moosefs.major());
    let first = majors.next();
    majors.any(|m| Some(m) != first)
}

impl RackView {
    /// The view of the node whose status this is. `voters` are the rack's voters;
    /// `host_trouble` is the runtime's verdict that host actions keep failing.
    pub fn from_status(s: &AgentStatus, voters: &[NodeId], host_trouble: bool) -> Self {
        let alive = |id: NodeId| {
            id == s.node
                || s.members
                    .iter()
                    .any(|m| m.id == id && m.state == MemberState::Alive)
        };
        let alive_voters = voters.iter().filter(|&&v| alive(v)).count();
        let mine = s
            .members
            .iter()
            .find(|m| m.id == s.node)
            .and_then(|m| m.meta.as_ref());
        let own_flags = mine.map(|m| m.health).unwrap_or_default();
        let others = s.members.iter().filter(|m| m.id != s.node);
        let mut degraded = false;
        let mut member_fencing = false;
        for m in others {
            if m.state != MemberState::Alive {
                degraded = true;
                continue;
            }
            if let Some(meta) = &m.meta {
                degraded |= replica_behind(meta) || meta.health.0 & DEGRADING.0 != 0;
                member_fencing |= meta.health.contains(HealthFlags::FENCED);
            }
        }
        if let Some(meta) = mine {
            degraded |= replica_behind(meta) || meta.health.0 & DEGRADING.0 != 0;
        }
        degraded |= mixed_moosefs_majors(s);
        RackView {
            leader: s.role == NodeRole::Leader,
            leader_known: s.leader.is_some(),
            fencing: s.role == NodeRole::Fencing,
            quorum: voters.is_empty() || alive_voters * 2 > voters.len(),
            member_fencing,
            degraded,
            maintenance: own_flags.contains(HealthFlags::MAINTENANCE),
            needs_person: host_trouble || own_flags.contains(HealthFlags::DISK_MISSING),
        }
    }

    /// What another member's LEDs show, judged from its gossip metadata (an approximation: that
    /// node's own view of the rack is not gossiped). `None` when nothing is known of it.
    pub fn of_member(
        state: MemberState,
        meta: Option<&NodeMeta>,
        rack: &RackView,
        leader: Option<NodeId>,
        id: NodeId,
    ) -> Option<Self> {
        let meta = meta?;
        if state != MemberState::Alive {
            return None;
        }
        Some(RackView {
            leader: leader == Some(id),
            fencing: meta.health.contains(HealthFlags::FENCED),
            maintenance: meta.health.contains(HealthFlags::MAINTENANCE),
            needs_person: meta.health.contains(HealthFlags::DISK_MISSING),
            ..*rack
        })
    }

    /// The pattern for this view (no lamp test, button or node number).
    pub fn pattern(&self) -> Pattern {
        let safe_mode = self.fencing || !self.quorum;
        let failover = !safe_mode && (!self.leader_known || self.member_fencing);
        Pattern {
            green: if self.leader && !safe_mode {
                Blink::DoubleBlink
            } else if self.leader_known && !safe_mode {
                Blink::Steady
            } else {
                Blink::Off
            },
            amber: if failover {
                Blink::Fast
            } else if self.degraded {
                Blink::Slow
            } else if self.maintenance {
                Blink::Steady
            } else {
                Blink::Off
            },
            red: if self.needs_person {
                Blink::Fast
            } else if safe_mode {
                Blink::Steady
            } else {
                Blink::Off
            },
        }
    }

    /// The most important thing the LEDs say.
    pub fn indication(&self) -> Indication {
        let safe_mode = self.fencing || !self.quorum;
        if self.needs_person {
            Indication::NeedsPerson
        } else if safe_mode {
            Indication::Fenced
        } else if !self.leader_known || self.member_fencing {
            Indication::FailoverInProgress
        } else if self.maintenance {
            Indication::Maintenance
        } else if self.degraded {
            Indication::Degraded
        } else if self.leader {
            Indication::Leader
        } else {
            Indication::HealthyFollower
        }
    }
}

/// Parses a member state's name ([`MemberState::as_str`]) back.
pub fn parse_member_state(s: &str) -> Option<MemberState> {
    MemberState::ALL.into_iter().find(|m| m.as_str() == s)
}
