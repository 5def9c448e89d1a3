//! The sans-IO core: pure, deterministic state machines. No clocks, sockets, threads or system
//! calls: time and messages come in as arguments, and what should happen comes out as values.
//! The tokio runtime and the simulator both drive this same code.

pub use crate::node_id::NodeId;

pub mod time;

pub use time::Instant;
pub mod machine;
pub mod membership;

pub use machine::{Machine, Transmit};
pub mod agent;
pub mod button;
pub mod lease;
pub mod leds;
pub mod plan;
pub mod roles;
