//! mooseherd: a highly available MooseFS master for Raspberry Pi racks.
//!
//! Layers (see ARCHITECTURE.md): [`config`] reads and checks the rack file; [`core`] holds the
//! pure state machines; the binary's CLI glues them to the host.

pub mod config;
pub mod core;
pub mod wire;
