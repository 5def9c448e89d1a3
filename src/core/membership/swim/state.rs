//! The member table: what this node believes about each member (state, incarnation, metadata,
//! suspicion), the probes and relays in flight, the events and the message counters.

use crate::core::membership::meta::NodeMeta;
use crate::core::membership::msg::MsgKind;
use crate::core::{Instant, NodeId};

/// What this node believes about a member's liveness. Serialized (in `status --json`) as its
/// lower-case name, [`MemberState::as_str`].
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    /// Answering (or presumed to, until a probe fails).
    Alive,
    /// A probe failed; the member has the suspicion timeout to refute.
    Suspect,
    /// Declared down. Not final: the member comes back with a higher incarnation.
    Down,
}

impl MemberState {
    pub const ALL: [MemberState; 3] = [MemberState::Alive, MemberState::Suspect, MemberState::Down];

    /// The lower-case name: `alive`, `suspect` or `down` (as in the status and the metrics).
    pub const fn as_str(self) -> &'static str {
        match self {
            MemberState::Alive => "alive",
            MemberState::Suspect => "suspect",
            MemberState::Down => "down",
        }
    }
}

/// A member as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    pub id: NodeId,
    pub state: MemberState,
    /// The member's incarnation as last heard (raised only by the member, to refute).
    pub incarnation: u32,
    /// Last known metadata, kept while the member is suspect or down. `None` until heard.
    pub meta: Option<NodeMeta>,
    /// Version of `meta` (0 when none).
    pub meta_version: u64,
    /// When this node last saw `state` change (this node's clock).
    pub state_since: Instant,
}

/// A change worth telling the user about. Each transition is reported exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MemberEvent {
    /// The member was heard from for the first time, or is alive again after suspect/down.
    Up(NodeId),
    /// The member failed a probe and is suspected; it may still refute.
    Suspect(NodeId),
    /// The member was declared down by this node or the rack.
    Down(NodeId),
    /// Another member published new metadata (see
    /// [`Membership::member`](super::Membership::member)).
    MetaChanged(NodeId),
}

/// Message and byte counters for one message kind (postcard payload bytes, framing excluded).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KindCount {
    pub messages: u64,
    pub bytes: u64,
}

/// Counters per message kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsgCounters {
    pub ping: KindCount,
    pub ack: KindCount,
    pub ping_req: KindCount,
    pub nack: KindCount,
    pub gossip: KindCount,
    pub sync: KindCount,
}

impl MsgCounters {
    pub(super) fn add(&mut self, kind: MsgKind, bytes: usize) {
        let c = match kind {
            MsgKind::Ping => &mut self.ping,
            MsgKind::Ack => &mut self.ack,
            MsgKind::PingReq => &mut self.ping_req,
            MsgKind::Nack => &mut self.nack,
            MsgKind::Gossip => &mut self.gossip,
            MsgKind::Sync => &mut self.sync,
        };
        c.messages += 1;
        c.bytes += bytes as u64;
    }

    /// All kinds together.
    pub fn total(&self) -> KindCount {
        [
            self.ping,
            self.ack,
            self.ping_req,
            self.nack,
            self.gossip,
            self.sync,
        ]
        .iter()
        .fold(KindCount::default(), |a, c| KindCount {
            messages: a.messages + c.messages,
            bytes: a.bytes + c.bytes,
        })
    }
}

/// What membership has done so far on this node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MembershipStats {
    pub sent: MsgCounters,
    pub received: MsgCounters,
    /// Messages from nodes outside the rack, ignored.
    pub ignored_unknown: u64,
    /// Probes that failed and made this node suspect (or confirm) a member.
    pub failed_probes: u64,
    /// Suspicions this node let expire into Down.
    pub declared_down: u64,
    /// Times this node refuted a suspicion or Down about itself.
    pub refutations: u64,
    /// Times this node noticed it had been stalled (paused, starved) and voided its probe.
    pub stalls: u64,
}

#[derive(Debug, Clone)]
pub(super) struct Suspicion {
    pub(super) started: Instant,
    pub(super) confirmers: Vec<NodeId>,
    pub(super) deadline: Instant,
    /// When this node last probed the suspect itself during this suspicion.
    pub(super) last_probe: Option<Instant>,
}

#[derive(Debug, Clone)]
pub(super) struct Member {
    pub(super) state: MemberState,
    pub(super) incarnation: u32,
    /// Who suspected / declared it (meaningful when not Alive).
    pub(super) accuser: NodeId,
    pub(super) since: Instant,
    pub(super) meta: Option<(u64, NodeMeta)>,
    pub(super) suspicion: Option<Suspicion>,
    /// An Up event was reported (or it is this node).
    pub(super) seen: bool,
}

#[derive(Debug, Clone)]
pub(super) struct Probe {
    pub(super) target: NodeId,
    pub(super) seq: u32,
    pub(super) sent_at: Instant,
    pub(super) direct_deadline: Instant,
    pub(super) acked: bool,
    pub(super) indirect: bool,
    pub(super) expected_nacks: u32,
    pub(super) nacks: u32,
}

/// An indirect probe this node runs for another member.
#[derive(Debug, Clone)]
pub(super) struct Relay {
    pub(super) seq: u32,
    pub(super) origin: NodeId,
    pub(super) origin_seq: u32,
    pub(super) nack_at: Instant,
}
pub(super) fn info(id: NodeId, m: &Member) -> MemberInfo {
    MemberInfo {
        id,
        state: m.state,
        incarnation: m.incarnation,
        meta: m.meta.as_ref().map(|(_, meta)| meta.clone()),
        meta_version: m.meta.as_ref().map_or(0, |(v, _)| *v),
        state_since: m.since,
    }
}
