//! mooseherd: a highly available MooseFS master for Raspberry Pi racks.
//!
//! Layers (see ARCHITECTURE.md): [`config`] reads and checks the rack file; [`core`] holds the
//! pure state machines; [`wire`] authenticates what travels between agents; [`sim`] drives the
//! core through seeded faults and [`proof`] checks the product's invariants with it.

pub mod atomic_file;
pub mod bench;
pub mod bounded_read;
pub mod config;
pub mod core;
pub mod firstboot;
pub mod fnv;
pub mod host;
pub mod lab;
pub mod node_id;
pub mod percentile;
pub mod proof;
pub mod provisioner;
pub mod relpath;
pub mod runtime;
pub mod sim;
pub mod wire;

#[cfg(test)]
mod test_support;
