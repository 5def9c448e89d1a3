//! Host drivers: the thin edge where decisions become effects on the machine (VIP, MooseFS
//! daemons, mounts, replication). Each driver sits behind [`Host`], so the agent loop does not
//! care whether it drives the real thing or records what it would do.

pub mod drbd;
pub mod dry_run;

use crate::core::Instant;
use crate::core::plan::{Action, Observed};

/// What a host driver does for the agent loop.
pub trait Host {
    /// A short name for logs and status (`dry-run`, `linux`).
    fn name(&self) -> &'static str;
    /// The host's state now (at start, and after each action).
    fn observe(&mut self, now: Instant) -> Observed;
    /// Carries out one action; returns the state afterwards, or what went wrong.
    fn execute(&mut self, action: Action, now: Instant) -> Result<Observed, String>;
}
pub mod sys;
pub mod vip;
