//! Who in the rack is alive, and what each node says about itself: SWIM membership (Das, Gupta,
//! Motivala, 2002) with HashiCorp's Lifeguard extensions, as a pure sans-IO state machine.
//!
//! Every agent runs one [`Membership`]. It probes one member per interval in a shuffled
//! round-robin order (Ping -> Ack; on timeout, PingReq to k helpers which relay the Ack or
//! answer Nack), suspects members that fail, and declares them Down when the suspicion times out
//! without a refutation. A member that hears it is suspected raises its incarnation and
//! disseminates Alive. News (liveness and versioned [`NodeMeta`]) rides piggybacked on every
//! message, is pushed to a few random members while fresh, and a periodic full-state exchange
//! repairs anything lost. The roles and lease machines read [`Membership::members`] and the
//! [`MemberEvent`]s; the runtime and the simulator drive it through [`crate::core::Machine`].
//!
//! # Why our own and not foca
//! foca 2 is a good sans-IO SWIM, but mooseherd's needs differ: the rack is a static list (a
//! [`NodeId`](crate::core::NodeId) is the node's index in the rack file), so foca's join protocol
//! and identity renewal are dead weight, and unknown senders are simply ignored; we need Lifeguard
//! (local health multiplier, suspicion timeouts that shrink with independent confirmations, nacks
//! in indirect probes), which foca lacks; per-member metadata (lease view, health, replica)
//! changes often and is disseminated as versioned state next to liveness; and we want the exact
//! [`Machine`](crate::core::Machine) timer model, so the simulator controls every timer.
//!
//! # Departures from the papers, and why
//! - Down is not final: a static rack's node comes back after a reboot with incarnation 0; it
//!   learns what the rack thinks of it (startup full-state pull, pings that carry its own state
//!   first) and refutes with a higher incarnation. Down members are still probed at a low rate.
//! - The Local Health Multiplier also stretches suspicion timeouts: a node with evidence of its
//!   own slowness waits longer before declaring others down. All timings are also stretched by
//!   the measured probe round trip beyond the configured probe timeout (a TCP-style RTO), so a
//!   jittery network does not make every probe fail; the total stretch is capped at 9x.
//! - A node holding a suspicion probes the suspect itself first (and again every half minimum
//!   timeout): epidemic dissemination leaves a small chance that one node misses the refutation
//!   entirely, and then its own probe's Ack carries it. Without this, 50 nodes at 20 % loss and
//!   200 ms jitter saw about one false Down per 10 simulated minutes.
//! - A node that notices it was not run for several probe intervals (paused, starved) voids its
//!   running probe and pushes its suspicion deadlines back by the gap: silence it could not hear
//!   proves nothing.
//! - The prober tells a newly suspected member directly, and a member that hears a stale
//!   accusation answers the sender directly with its Alive, so refutations take one round trip.

mod broadcast;
mod config;
mod health;
mod meta;
mod msg;
mod swim;

#[cfg(test)]
mod tests;

pub use config::MembershipConfig;
pub use health::{LocalHealth, RttEstimator, suspicion_timeout};
pub use meta::{
    HealthFlags, LeaseView, MooseFsVersion, NodeMeta, ReplicaState, ReplicaView, Roles,
};
pub use msg::{GossipMsg, MsgKind, Update};
pub use swim::{
    KindCount, MemberEvent, MemberInfo, MemberState, Membership, MembershipStats, MsgCounters,
};
