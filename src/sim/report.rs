//! What a run measured: per-node traffic, rack-wide counts, and the [`SimReport`] that a test
//! compares between runs (same seed, same report) or prints when an invariant fails.

use std::time::Duration;

use super::check::Violation;
use super::schedule::Secs;
use crate::core::NodeId;

/// Traffic and lifecycle counts of one node (over all its incarnations).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Datagrams the node handed to the network.
    pub msgs_sent: u64,
    /// Their size (from the size function), bytes.
    pub bytes_sent: u64,
    /// Datagrams delivered to the node's machine (duplicates count twice).
    pub msgs_received: u64,
    /// Their size, bytes.
    pub bytes_received: u64,
    /// Datagrams the node sent that were lost at random.
    pub dropped_loss: u64,
    /// Datagrams the node sent over a cut link (or to a node outside the rack).
    pub dropped_partition: u64,
    /// Datagrams addressed to the node that it never read: it was down, they were queued when
    /// it crashed, or its socket buffer was full while paused.
    pub dropped_at_receiver: u64,
    /// Timeouts handled.
    pub timeouts: u64,
    /// Events emitted.
    pub events: u64,
    /// Crashes, restarts and pauses suffered.
    pub crashes: u64,
    /// Restarts (fresh machines from the factory after the first).
    pub restarts: u64,
    /// Pauses.
    pub pauses: u64,
}

/// Rack-wide counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Events taken from the queue.
    pub steps: u64,
    /// Datagrams delivered to a machine.
    pub delivered: u64,
    /// Extra copies the network made.
    pub duplicated: u64,
    /// Datagrams lost at random, over cut links, or at a receiver that could not read them.
    pub dropped: u64,
    /// Timeouts handled.
    pub timeouts: u64,
    /// Events emitted.
    pub events: u64,
    /// Faults applied (crash, restart, pause, partition start and end, flap toggles).
    pub faults: u64,
    /// Faults that found the node in the wrong state and did nothing.
    pub faults_ignored: u64,
    /// Most events ever waiting in the queue.
    pub max_queue: u64,
    /// Per node, in id order.
    pub nodes: Vec<NodeStats>,
}

impl SimStats {
    /// One node's counts (zeros if `id` is outside the rack).
    pub fn node(&self, id: NodeId) -> NodeStats {
        self.nodes
            .get(usize::from(id.0))
            .cloned()
            .unwrap_or_default()
    }
}

/// The result of a run: equal seeds and inputs give equal reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimReport {
    /// The run's seed.
    pub seed: u64,
    /// Real time simulated.
    pub duration: Duration,
    /// FNV-1a over every delivery, timeout, event and fault, in order.
    pub trace_hash: u64,
    /// Counts.
    pub stats: SimStats,
    /// Failed invariants (a run stops at the first).
    pub violations: Vec<Violation>,
    /// The command that replays this run.
    pub replay: String,
    /// The fault schedule the run was given, one fault per line.
    pub schedule: String,
}

impl std::fmt::Display for SimReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = &self.stats;
        writeln!(
            f,
            "seed {} simulated {} trace {:016x}: {} steps, {} delivered, {} dropped, {} duplicated, {} timeouts, {} events, {} faults",
            self.seed,
            Secs(self.duration),
            self.trace_hash,
            s.steps,
            s.delivered,
            s.dropped,
            s.duplicated,
            s.timeouts,
            s.events,
            s.faults
        )?;
        for v in &self.violations {
            writeln!(f, "VIOLATION {v}")?;
        }
        if !self.violations.is_empty() {
            if !self.schedule.is_empty() {
                writeln!(f, "schedule:")?;
                write!(f, "{}", self.schedule)?;
            }
            writeln!(f, "replay: {}", self.replay)?;
        }
        Ok(())
    }
}
