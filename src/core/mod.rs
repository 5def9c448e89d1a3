//! The sans-IO core: pure, deterministic state machines. No clocks, sockets, threads or system
//! calls: time and messages come in as arguments, and what should happen comes out as values.
//! The tokio runtime and the simulator both drive this same code.

use serde::{Deserialize, Serialize};

/// A node's number: its position in the rack file's `[[node]]` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u16);

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "n{}", self.0)
    }
}

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
