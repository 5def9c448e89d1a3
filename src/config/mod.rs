//! Configuration: the rack file every Pi shares, and the board files that map its pins.
//!
//! Nothing here touches the network or spawns anything; the only file system access is reading
//! the files themselves (and, for host checks, the keyring's permissions).

pub mod board;
pub mod diag;
mod parse;
pub mod rack;

pub use board::{Board, Catalog};
pub use diag::{Diagnostic, Severity};
pub use rack::{ConfigError, HostChecks, Node, Rack, Replication, Role};
