//! Seeded proofs of the core's promises: the real core state machines of a whole rack, driven by
//! the simulator ([`crate::sim`]) through generated schedules of faults, with the product's
//! invariants checked after every step. `mooseherd sim` runs them; a failing seed is printed with
//! the command that replays it.

pub mod lease;

/// Bytes a wire frame adds to a message: 40-byte header + 16-byte AEAD tag.
pub const FRAME_OVERHEAD: usize = 56;
