//! The shape every sans-IO state machine of the core has, quinn-proto style: inputs are method
//! calls with an explicit `now`; outputs are polled. The tokio runtime and the simulator are two
//! drivers of this one trait.
//!
//! A driver MUST, in a loop: deliver received messages with [`Machine::handle_message`]; call
//! [`Machine::handle_timeout`] once `now >= poll_timeout()`; then drain [`Machine::poll_transmit`]
//! and [`Machine::poll_event`] until they return `None`. Calling `handle_timeout` early is allowed
//! and must be harmless.

use super::{Instant, NodeId};

/// A message the machine wants sent to one peer. Delivery is best effort: it may be lost,
/// delayed, duplicated or reordered, and the machine must stay correct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit<M> {
    pub to: NodeId,
    pub msg: M,
}

/// A deterministic state machine driven by messages and time.
pub trait Machine {
    /// What travels between machines (serialised by the driver, e.g. postcard + AEAD frame).
    type Msg: Clone + std::fmt::Debug;
    /// What the machine reports to its user (a member went down, a lease was won, ...).
    type Event: Clone + std::fmt::Debug;

    /// This machine's node.
    fn id(&self) -> NodeId;
    /// A message arrived from `from` (already authenticated by the driver).
    fn handle_message(&mut self, now: Instant, from: NodeId, msg: Self::Msg);
    /// Time has advanced to `now`.
    fn handle_timeout(&mut self, now: Instant);
    /// The next time `handle_timeout` must be called, if any.
    fn poll_timeout(&self) -> Option<Instant>;
    /// The next message to send.
    fn poll_transmit(&mut self) -> Option<Transmit<Self::Msg>>;
    /// The next event for the user.
    fn poll_event(&mut self) -> Option<Self::Event>;
}
