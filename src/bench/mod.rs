//! Benchmarks of the core's promises, measured on the project's deterministic simulator
//! ([`crate::sim`]) rather than on real hardware: the numbers are reproducible from a seed, and
//! they measure the protocol (timers, fan-out, message sizes), not the machine running them.
//! `mooseherd bench ...` calls these functions and prints their reports as a table or as JSON.
//!
//! - [`gossip`]: SWIM + Lifeguard membership: how fast a crash is detected by the whole rack,
//!   how fast a metadata change reaches everyone, what it costs in bytes, and whether loss and
//!   jitter make it declare live nodes down.
//! - [`footprint`]: the exception, a measurement of this machine: RSS and CPU of idle real agents,
//!   and the binary's size.

pub mod failover;
pub mod footprint;
pub mod gossip;
pub mod provision;

pub use gossip::{BenchError, GossipBenchOptions, GossipReport, gossip, print_table, table};
