//! What each agent tells the rack about itself, besides being alive: its roles, health, view of
//! the lease and state of its metadata replica. Kept small (about 20-40 bytes in postcard) because
//! it rides in gossip messages; the roles and lease machines read it to decide who may stand.

use serde::{Deserialize, Serialize};

use crate::core::NodeId;

/// The roles a node plays, as a bitmask (a copy of the rack file, so a status view needs no file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Roles(pub u8);

impl Roles {
    /// A master candidate.
    pub const MASTER: Roles = Roles(1);
    /// Runs mfschunkserver.
    pub const CHUNKSERVER: Roles = Roles(1 << 1);
    /// Keeps mfsmount mounted.
    pub const WORKER: Roles = Roles(1 << 2);
    /// Votes in the lease quorum.
    pub const VOTER: Roles = Roles(1 << 3);

    /// Whether every role of `other` is present.
    pub fn contains(self, other: Roles) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Roles {
    type Output = Roles;
    fn bitor(self, rhs: Roles) -> Roles {
        Roles(self.0 | rhs.0)
    }
}

/// Health problems a node reports about itself (bit flags; 0 = healthy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct HealthFlags(pub u32);

impl HealthFlags {
    /// The firmware saw undervoltage (get_throttled bit 0 or 16).
    pub const UNDERVOLTAGE: HealthFlags = HealthFlags(1);
    /// The CPU is or was throttled (frequency capped or soft temperature limit).
    pub const THROTTLED: HealthFlags = HealthFlags(1 << 1);
    /// Not enough free RAM to hold the MooseFS metadata: must not stand as master.
    pub const LOW_MEMORY: HealthFlags = HealthFlags(1 << 2);
    /// The USB/SD disk answers slowly.
    pub const DISK_SLOW: HealthFlags = HealthFlags(1 << 3);
    /// An operator put the node in maintenance: not eligible, draining.
    pub const MAINTENANCE: HealthFlags = HealthFlags(1 << 4);
    /// The configured data disk is missing.
    pub const DISK_MISSING: HealthFlags = HealthFlags(1 << 5);
    /// The node has fenced itself (safe mode).
    pub const FENCED: HealthFlags = HealthFlags(1 << 6);

    /// Whether every flag of `other` is set.
    pub fn contains(self, other: HealthFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// No flag set.
    pub fn is_healthy(self) -> bool {
        self.0 == 0
    }
}

impl std::ops::BitOr for HealthFlags {
    type Output = HealthFlags;
    fn bitor(self, rhs: HealthFlags) -> HealthFlags {
        HealthFlags(self.0 | rhs.0)
    }
}

/// What a node believes about the `leader` lease (informative only: the lease machine decides).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseView {
    /// Highest lease epoch the node has seen.
    pub epoch: u64,
    /// Who holds the lease in that epoch, if known.
    pub holder: Option<NodeId>,
}

/// The state of a node's copy of the MooseFS metadata.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ReplicaState {
    /// Not known yet (agent starting, backend not read).
    #[default]
    Unknown,
    /// Current: may stand for the lease.
    UpToDate,
    /// Catching up.
    Syncing,
    /// Behind and not syncing: must not stand.
    Outdated,
    /// No metadata disk on this node.
    Diskless,
}

/// A node's replica state and the newest metadata version it holds (metalogger backend).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReplicaView {
    pub state: ReplicaState,
    pub metadata_version: u64,
    /// The MooseFS filesystem id of that metadata (0: none yet).
    pub metaid: u64,
}

/// Everything a node publishes about itself through membership. Callers should publish only
/// meaningful changes (e.g. round `disk_free_mb`): every change costs a dissemination round.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NodeMeta {
    pub roles: Roles,
    pub health: HealthFlags,
    pub lease: LeaseView,
    pub replica: ReplicaView,
    pub disk_free_mb: u64,
    pub agent_version: u32,
    /// The MooseFS release installed on the node (unknown: 0).
    pub moosefs: MooseFsVersion,
}

/// A MooseFS release as one number, `major << 16 | minor << 8 | patch` (patch capped at 255),
/// as the agent found it at start (`mfsmaster -v`); 0 when not known (simulator, no MooseFS).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct MooseFsVersion(pub u32);

impl MooseFsVersion {
    pub const UNKNOWN: MooseFsVersion = MooseFsVersion(0);

    pub fn new(major: u16, minor: u16, patch: u16) -> Self {
        let cap = |v: u16| u32::from(v.min(255));
        MooseFsVersion((u32::from(major) << 16) | (cap(minor) << 8) | cap(patch))
    }

    pub fn is_known(self) -> bool {
        self.0 != 0
    }

    pub fn major(self) -> u16 {
        u16::try_from(self.0 >> 16).unwrap_or(u16::MAX)
    }
}

impl std::fmt::Display for MooseFsVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if !self.is_known() {
            return f.write_str("unknown");
        }
        write!(
            f,
            "{}.{}.{}",
            self.major(),
            (self.0 >> 8) & 0xff,
            self.0 & 0xff
        )
    }
}
