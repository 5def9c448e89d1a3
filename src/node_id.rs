//! A node's number on the wire. It lives in its own leaf module because both the rack file
//! (which assigns the numbers) and the core (which speaks them) need it, and the rack file must
//! not depend on the core.

use serde::{Deserialize, Serialize};

/// A node's number: its position in the rack file's `[[node]]` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u16);

impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "n{}", self.0)
    }
}
