//! The gossip messages and the updates they carry. Every message type piggybacks a list of
//! [`Update`]s, so dissemination costs no extra packets while probing goes on. The driver
//! serialises a [`GossipMsg`] with postcard and seals it in a frame; [`GossipMsg::encoded_len`]
//! is the postcard size the machine budgets against.

use serde::{Deserialize, Serialize};

use super::meta::NodeMeta;
use crate::core::NodeId;

/// One piece of membership news, ordered per member by incarnation (liveness) or version (meta).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Update {
    /// `node` is alive at `incarnation` (only the node itself raises its incarnation).
    Alive { node: NodeId, incarnation: u32 },
    /// `from` could not reach `node` at `incarnation`.
    Suspect {
        node: NodeId,
        incarnation: u32,
        from: NodeId,
    },
    /// `from` declared `node` down at `incarnation` (not final: a higher `Alive` revives it).
    Down {
        node: NodeId,
        incarnation: u32,
        from: NodeId,
    },
    /// `node`'s metadata, version `version` (only the node itself raises the version).
    Meta {
        node: NodeId,
        version: u64,
        meta: NodeMeta,
    },
}

/// Which stream of news about a member an update belongs to: a newer update of the same topic
/// replaces an older one in the dissemination queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Topic {
    Liveness,
    Meta,
}

impl Update {
    /// The member this update is about.
    pub fn node(&self) -> NodeId {
        match self {
            Update::Alive { node, .. }
            | Update::Suspect { node, .. }
            | Update::Down { node, .. }
            | Update::Meta { node, .. } => *node,
        }
    }

    pub(crate) fn key(&self) -> (NodeId, Topic) {
        let topic = match self {
            Update::Meta { .. } => Topic::Meta,
            _ => Topic::Liveness,
        };
        (self.node(), topic)
    }

    /// Postcard size in bytes.
    pub fn encoded_len(&self) -> usize {
        encoded_len(self)
    }
}

/// A membership message between two agents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GossipMsg {
    /// "Are you alive?" Answered by [`GossipMsg::Ack`] with the same `seq`.
    Ping { seq: u32, updates: Vec<Update> },
    /// Answer to a ping; also relayed by a helper for an indirect probe (with the requester's `seq`).
    Ack { seq: u32, updates: Vec<Update> },
    /// "Please ping `target` for me": the receiver pings it and relays the ack, or a nack.
    PingReq {
        seq: u32,
        target: NodeId,
        updates: Vec<Update>,
    },
    /// Lifeguard: the helper of an indirect probe got no ack in time. Proves the requester can
    /// still hear its helpers, so a failed probe is not blamed on the requester's own slowness.
    Nack { seq: u32, updates: Vec<Update> },
    /// Dissemination only: pushed to a few random members while there is news.
    Gossip { updates: Vec<Update> },
    /// Anti-entropy: (part of) the sender's full view. `reply` asks for the receiver's view back.
    Sync { reply: bool, updates: Vec<Update> },
}

/// The kinds of [`GossipMsg`], for statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MsgKind {
    Ping,
    Ack,
    PingReq,
    Nack,
    Gossip,
    Sync,
}

impl GossipMsg {
    /// The kind of this message.
    pub fn kind(&self) -> MsgKind {
        match self {
            GossipMsg::Ping { .. } => MsgKind::Ping,
            GossipMsg::Ack { .. } => MsgKind::Ack,
            GossipMsg::PingReq { .. } => MsgKind::PingReq,
            GossipMsg::Nack { .. } => MsgKind::Nack,
            GossipMsg::Gossip { .. } => MsgKind::Gossip,
            GossipMsg::Sync { .. } => MsgKind::Sync,
        }
    }

    /// The piggybacked updates.
    pub fn updates(&self) -> &[Update] {
        match self {
            GossipMsg::Ping { updates, .. }
            | GossipMsg::Ack { updates, .. }
            | GossipMsg::PingReq { updates, .. }
            | GossipMsg::Nack { updates, .. }
            | GossipMsg::Gossip { updates }
            | GossipMsg::Sync { updates, .. } => updates,
        }
    }

    fn take_updates(self) -> Vec<Update> {
        match self {
            GossipMsg::Ping { updates, .. }
            | GossipMsg::Ack { updates, .. }
            | GossipMsg::PingReq { updates, .. }
            | GossipMsg::Nack { updates, .. }
            | GossipMsg::Gossip { updates }
            | GossipMsg::Sync { updates, .. } => updates,
        }
    }

    /// Postcard size in bytes (what the driver will seal in a frame).
    pub fn encoded_len(&self) -> usize {
        encoded_len(self)
    }

    /// Serialise with postcard.
    pub fn to_bytes(&self) -> Result<Vec<u8>, postcard::Error> {
        postcard::to_allocvec(self)
    }

    /// Parse a postcard payload; never panics on bad input.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }

    pub(crate) fn into_updates(self) -> Vec<Update> {
        self.take_updates()
    }
}

/// Postcard size of any value; `usize::MAX` if it cannot be serialised (never for our types).
pub(crate) fn encoded_len<T: Serialize + ?Sized>(value: &T) -> usize {
    postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
        .unwrap_or(usize::MAX)
}
