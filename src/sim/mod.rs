//! The deterministic simulator: drives N instances of any [`crate::core::Machine`] through
//! seeded schedules of faults (crashes, restarts, SIGSTOP-style pauses, partitions of any shape,
//! flapping links, loss, jitter, duplication, clock drift) and checks pluggable invariants after
//! every step. Every protocol of the core (membership, lease, roles) is proven with it.
//!
//! Two timelines: the simulator's real time ([`SimTime`]) orders the event queue; each node sees
//! only its own drifting clock ([`NodeClock`], a [`crate::core::Instant`]). The same seed gives
//! the same run, bit for bit: randomness comes from per-purpose ChaCha8 streams, ties in the
//! queue are broken by insertion order, and a running FNV-1a [`SimReport::trace_hash`] over every
//! delivery, timeout, event and fault lets a test assert that.
//!
//! ```ignore
//! let profile = FaultProfile::harsh();
//! let schedule = Schedule::generate(seed, &profile, Duration::from_secs(120), 5);
//! let mut sim = Sim::new(SimConfig::new(seed, 5).with_profile(&profile), |id, seed, now| MyMachine::new(id, seed, now))
//!     .with_schedule(&schedule)
//!     .with_invariant("one leader", |v: &SimView<MyMachine>| Ok(()));
//! sim.run_until(SimTime::from_secs(120))?;
//! println!("{}", sim.report());
//! ```

mod check;
mod engine;
mod net;
mod report;
mod rng;
mod schedule;
mod time;

pub use check::{Invariant, NodeStatus, NodeView, SimView, Violation};
pub use engine::{PartitionId, Sim, SimConfig};
pub use net::{Jitter, LinkConfig, PartitionKind};
pub use report::{NodeStats, SimReport, SimStats};
pub use rng::Fnv1a;
pub use schedule::{Fault, FaultProfile, PartitionChoice, Schedule, TimedFault};
pub use time::{NodeClock, SimTime};

#[cfg(test)]
mod tests;
