//! The lease proof: never two masters, never two owners of the VIP.
//!
//! Each simulated node is the real [`LeaseMachine`] plus a model of its host driven by the real
//! [`plan`](crate::core::plan): the plan's actions change the host model, which feeds the plan
//! again. What the kernel keeps (the VIP with its lifetime, the replica role, the metadata mount)
//! survives an agent crash, as it does on a Pi; mfsmaster dies with the agent (systemd
//! `KillMode=control-group`). A frozen node (SIGSTOP) runs no code at all, but its clock and the
//! kernel's VIP lifetime run on. Every datagram may be lost, delayed, duplicated or reordered,
//! links may be cut one way, and clocks drift within the bound.
//!
//! Invariants, checked after every step:
//! 1. **One believer**: at most one node believes it holds the lease at any real instant.
//! 2. **One VIP**: at most one node has the VIP configured (kernel deadline not passed).
//! 3. **Epochs increase**: every election has an epoch above every earlier election's.
//! 4. **Fence before promote**: when a node promotes, no other node has a VIP, and every other node
//!    that ran throughout its last two leases has stopped mfsmaster. A node frozen past its fencing
//!    point cannot fence itself: the kernel drops its VIP on time (checked), and its thawed
//!    mfsmaster is kept off the metadata by the replication layer (DRBD refuses a second primary;
//!    mfsmaster's lock on a shared directory) until its agent demotes it a moment later. That part
//!    is DRBD's and MooseFS's guarantee, not this proof's.
//!
//! Liveness is checked after the faults stop: within a bounded time some node leads and owns the VIP.

mod check;
mod host;
mod scenario;
mod summary;

pub use host::{Disks, Kernel, MASTER_START, MASTER_STOP, RackEvent, RackNode};
pub use scenario::{RackShape, Scenario};
pub use summary::{Summary, percentile, replay_command, run_many};

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use crate::core::lease::{Eligibility, LeaseMachine, LeaseMsg};
use crate::core::plan::MasterState;
use crate::core::{Instant, NodeId};
use crate::sim::{NodeStatus, Schedule, Sim, SimConfig, SimTime, SimView};

use check::Checker;

/// The outcome of one schedule.
#[derive(Debug, Clone, Default)]
pub struct RunOutcome {
    pub seed: u64,
    pub violation: Option<String>,
    /// Leader crashed -> VIP announced elsewhere, per occurrence.
    pub failovers: Vec<Duration>,
    /// Elections after the first one (in `Lossy`, each is a false failover).
    pub later_elections: u32,
    pub elections: u32,
    /// Switchover asked -> VIP announced by the successor, per switchover.
    pub switchovers: Vec<Duration>,
    pub trace_hash: u64,
    /// Lease decisions in order, with simulated time: what `mooseherd sim -v` prints for one seed.
    pub story: Vec<String>,
}

/// Runs one schedule of `duration` (plus a quiet tail for the liveness check).
pub fn run_one(
    seed: u64,
    scenario: Scenario,
    shape: &RackShape,
    duration: Duration,
    replay: &str,
) -> RunOutcome {
    let profile = scenario.profile();
    let schedule = Schedule::generate(seed, &profile, duration, shape.nodes);
    let disks = Rc::new(RefCell::new(Disks::default()));
    let factory = {
        let disks = Rc::clone(&disks);
        let shape = shape.clone();
        move |id: NodeId, seed: u64, now: Instant| {
            let durable = disks.borrow().durable.get(&id).copied().unwrap_or_default();
            let prio = shape
                .candidates
                .iter()
                .find(|(c, _)| *c == id)
                .map(|(_, p)| *p);
            let mut lease = LeaseMachine::new(
                id,
                &shape.voters,
                prio.is_some(),
                shape.cfg.clone(),
                durable,
                seed,
                now,
            );
            if let Some(priority) = prio {
                lease.set_eligibility(
                    now,
                    Eligibility {
                        eligible: true,
                        priority,
                        reason: "sim".into(),
                    },
                );
            }
            RackNode {
                id,
                lease,
                disks: Rc::clone(&disks),
                // A restarted agent finds mfsmaster killed with its cgroup: start it with -a.
                master: MasterState::Stopped,
                master_done_at: None,
                master_unclean: true,
                provisioner: false,
                backend: shape.backend,
                events: VecDeque::new(),
            }
        }
    };
    let config = SimConfig::new(seed, shape.nodes)
        .with_profile(&profile)
        .with_replay(replay.to_string());
    let mut sim = Sim::new(config, factory)
        .with_schedule(&schedule)
        .with_msg_size(|m: &LeaseMsg| {
            postcard::to_allocvec(m).map_or(64, |v| v.len()) + crate::proof::FRAME_OVERHEAD
        });
    let checker = Rc::new(RefCell::new(Checker {
        disks: Rc::clone(&disks),
        frozen_exempt: shape.cfg.lease * 2,
        ..Checker::default()
    }));
    {
        let c = Rc::clone(&checker);
        sim.add_invariant(
            "lease safety",
            Box::new(move |v: &SimView<'_, RackNode>| c.borrow_mut().check(v)),
        );
    }
    let mut out = RunOutcome {
        seed,
        ..RunOutcome::default()
    };
    let end = SimTime::ZERO + duration;
    if let Some(every) = scenario.switchover_every() {
        let candidates: Vec<NodeId> = shape.candidates.iter().map(|(id, _)| *id).collect();
        let mut t = SimTime::ZERO + every;
        let mut k = 0usize;
        while t < end {
            let c = Rc::clone(&checker);
            let candidates = candidates.clone();
            sim.at_sim(t, move |sim| {
                for i in 0..sim.len() {
                    let id = NodeId(i);
                    let Some(local) = sim.clock(id) else { continue };
                    if sim
                        .node(id)
                        .is_none_or(|n| n.lease.leader_epoch(local).is_none())
                    {
                        continue;
                    }
                    // Alternate between a named successor and "the best one".
                    let others: Vec<NodeId> =
                        candidates.iter().copied().filter(|c| *c != id).collect();
                    let to = if k.is_multiple_of(2) {
                        others.get((k / 2) % others.len().max(1)).copied()
                    } else {
                        None
                    };
                    if sim.node_mut(id).is_some_and(|n| n.switchover(local, to)) {
                        c.borrow_mut().switchover_asked_at = Some(sim.now());
                    }
                }
            });
            t = t + every;
            k += 1;
        }
    }
    if let Err(v) = sim.run_until(end) {
        out.violation = Some(format!("{v}\nschedule:\n{}", schedule_text(&schedule)));
    } else {
        // Liveness: faults are over (crashed nodes restarted); within 3 leases someone leads.
        for id in 0..shape.nodes {
            if sim.status(NodeId(id)) == Some(NodeStatus::Down) {
                sim.restart(NodeId(id));
            }
        }
        sim.heal_all();
        let deadline = end + Duration::from_secs(15);
        let mut led = false;
        while sim.now() < deadline {
            if let Err(v) = sim.run_for(Duration::from_millis(100)) {
                out.violation = Some(format!("{v}\nschedule:\n{}", schedule_text(&schedule)));
                break;
            }
            let now_led = (0..shape.nodes).any(|i| {
                let id = NodeId(i);
                let local = sim.clock(id).unwrap_or_default();
                sim.node(id).is_some_and(|n| {
                    n.lease.leader_epoch(local).is_some()
                        && n.vip_until().is_some_and(|u| u > local)
                })
            });
            if now_led {
                led = true;
                break;
            }
        }
        if !led && out.violation.is_none() {
            out.violation = Some(format!(
                "liveness: no leader with the VIP 15 s after the faults stopped (seed {seed}; replay: {})\nschedule:\n{}",
                replay.replace("{seed}", &seed.to_string()),
                schedule_text(&schedule)
            ));
        }
    }
    let c = checker.borrow();
    out.failovers = c.failovers.clone();
    out.switchovers = c.switchovers.clone();
    out.elections = c.elections;
    out.later_elections = c.elections.saturating_sub(1);
    out.story = c.story.clone();
    out.trace_hash = sim.trace_hash();
    out
}

fn schedule_text(s: &Schedule) -> String {
    s.faults.iter().map(|f| format!("  {f}\n")).collect()
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::lease::UnsafeVariant;

    const REPLAY: &str = "mooseherd sim --seed {seed} --schedules 1";

    #[test]
    fn harsh_schedules_keep_every_invariant() {
        let s = run_many(
            1,
            40,
            Scenario::Harsh,
            &RackShape::five(None),
            Duration::from_secs(60),
            REPLAY,
            1,
        );
        assert_eq!(s.violations, 0, "{}", s.failures.join("\n"));
        assert!(s.failovers > 0, "the schedules must kill some leaders");
    }

    #[test]
    fn lossy_network_causes_no_false_failover() {
        let s = run_many(
            1,
            20,
            Scenario::Lossy,
            &RackShape::five(None),
            Duration::from_secs(60),
            REPLAY,
            1,
        );
        assert_eq!(
            (s.violations, s.false_failovers),
            (0, 0),
            "{}",
            s.failures.join("\n")
        );
    }

    #[test]
    fn a_crashed_leader_is_replaced_within_a_lease_and_a_second() {
        let s = run_many(
            1,
            40,
            Scenario::Crashes,
            &RackShape::five(None),
            Duration::from_secs(60),
            REPLAY,
            1,
        );
        assert_eq!(s.violations, 0, "{}", s.failures.join("\n"));
        assert!(s.failovers >= 10);
        assert!(s.failover_p50_ms.is_some_and(|p| p <= 4000), "{s:?}");
    }

    #[test]
    fn switchover_pauses_writes_for_under_two_seconds() {
        let s = run_many(
            1,
            100,
            Scenario::Switchover,
            &RackShape::five(None),
            Duration::from_secs(60),
            REPLAY,
            1,
        );
        assert_eq!(s.violations, 0, "{}", s.failures.join("\n"));
        assert!(s.switchovers >= 400, "{s:?}");
        assert!(s.switchover_p99_ms.is_some_and(|p| p <= 2000), "{s:?}");
    }

    #[test]
    fn same_seed_same_run() {
        let a = run_one(
            7,
            Scenario::Harsh,
            &RackShape::five(None),
            Duration::from_secs(30),
            REPLAY,
        );
        let b = run_one(
            7,
            Scenario::Harsh,
            &RackShape::five(None),
            Duration::from_secs(30),
            REPLAY,
        );
        assert_eq!(a.trace_hash, b.trace_hash);
        let c = run_one(
            8,
            Scenario::Harsh,
            &RackShape::five(None),
            Duration::from_secs(30),
            REPLAY,
        );
        assert_ne!(a.trace_hash, c.trace_hash);
    }

    #[test]
    fn the_checker_catches_a_holder_that_ignores_drift() {
        let s = run_many(
            1,
            3000,
            Scenario::Harsh,
            &RackShape::five(Some(UnsafeVariant::NoDriftMargin)),
            Duration::from_secs(60),
            REPLAY,
            1,
        );
        assert!(s.violations > 0, "no-drift-margin must be caught");
        assert!(
            s.failures[0].contains("replay: mooseherd sim --seed"),
            "{}",
            s.failures[0]
        );
    }

    #[test]
    fn the_checker_catches_a_voter_that_forgets_its_promises() {
        let s = run_many(
            1,
            3000,
            Scenario::Harsh,
            &RackShape::five(Some(UnsafeVariant::NoRestartWait)),
            Duration::from_secs(60),
            REPLAY,
            1,
        );
        assert!(s.violations > 0, "no-restart-wait must be caught");
    }
}
