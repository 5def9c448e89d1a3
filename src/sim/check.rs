//! Invariants and observers: code that looks at the whole simulated rack after every step.
//! An invariant returns a [`Violation`] to stop the run ("two nodes believe they hold the lease
//! at 12.3 s"); an observer always returns `Ok` and records what it wants (detection times,
//! bytes per node). Both see every live machine, its local clock and the events just emitted.

use super::time::SimTime;
use crate::core::{Instant, Machine, NodeId};

/// Where a node's process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeStatus {
    /// Running: gets messages and timeouts.
    Up,
    /// Frozen (SIGSTOP): gets nothing; datagrams queue up; its clock runs on.
    Paused,
    /// Crashed: no machine until a restart.
    Down,
}

/// A failed invariant: what went wrong and when, with what is needed to replay the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// What went wrong, for a person ("n1 and n3 both lead in epoch 7").
    pub what: String,
    /// Real time of the step after which the check failed.
    pub at: SimTime,
    /// Name of the invariant that failed (filled in by the simulator).
    pub invariant: String,
    /// Seed of the run (filled in by the simulator).
    pub seed: u64,
    /// Command that replays the run (filled in by the simulator).
    pub replay: String,
}

impl Violation {
    /// A violation at `at`; the simulator fills in the invariant's name, seed and replay command.
    pub fn new(what: impl Into<String>, at: SimTime) -> Self {
        Violation {
            what: what.into(),
            at,
            invariant: String::new(),
            seed: 0,
            replay: String::new(),
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "invariant {:?} violated at {}: {} (seed {}",
            self.invariant, self.at, self.what, self.seed
        )?;
        if !self.replay.is_empty() {
            write!(f, "; replay: {}", self.replay)?;
        }
        write!(f, ")")
    }
}

impl std::error::Error for Violation {}

/// One node as an invariant sees it.
#[derive(Debug)]
pub struct NodeView<'a, M> {
    /// The node.
    pub id: NodeId,
    /// Up, paused or down.
    pub status: NodeStatus,
    /// Its machine, unless it is crashed.
    pub machine: Option<&'a M>,
    /// Its local clock now (it runs even while paused or crashed).
    pub local_now: Instant,
    /// How many times it has been restarted.
    pub incarnation: u32,
}

/// The whole rack after one step, read-only.
pub struct SimView<'a, M: Machine> {
    pub(crate) now: SimTime,
    pub(crate) nodes: &'a [super::engine::NodeSlot<M>],
    pub(crate) events: &'a [(NodeId, M::Event)],
}

impl<'a, M: Machine> SimView<'a, M> {
    /// Real time of this step.
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Number of nodes in the rack.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the rack has no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// One node (None if `id` is outside the rack).
    pub fn node(&self, id: NodeId) -> Option<NodeView<'a, M>> {
        self.nodes.get(usize::from(id.0)).map(|s| s.view(self.now))
    }

    /// Every node, in id order.
    pub fn nodes(&self) -> impl Iterator<Item = NodeView<'a, M>> + '_ {
        self.nodes.iter().map(|s| s.view(self.now))
    }

    /// Every running or paused machine with its local time, in id order.
    pub fn machines(&self) -> impl Iterator<Item = (NodeId, &'a M, Instant)> + '_ {
        self.nodes()
            .filter_map(|v| v.machine.map(|m| (v.id, m, v.local_now)))
    }

    /// The events emitted since the last check (this step, unless
    /// [`super::SimConfig::check_each_step`] is off), in order, with the node that emitted each.
    pub fn events(&self) -> &'a [(NodeId, M::Event)] {
        self.events
    }

    /// A violation at this step's time.
    pub fn violation(&self, what: impl Into<String>) -> Violation {
        Violation::new(what, self.now)
    }
}

/// A check run after every step of the simulation. Closures
/// `FnMut(&SimView<M>) -> Result<(), Violation>` are invariants too.
pub trait Invariant<M: Machine> {
    /// Look at the rack; `Err` stops the run.
    fn check(&mut self, view: &SimView<'_, M>) -> Result<(), Violation>;
}

impl<M: Machine, F> Invariant<M> for F
where
    F: FnMut(&SimView<'_, M>) -> Result<(), Violation>,
{
    fn check(&mut self, view: &SimView<'_, M>) -> Result<(), Violation> {
        self(view)
    }
}
