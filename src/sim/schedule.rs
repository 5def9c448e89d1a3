//! Fault schedules: a concrete, printable list of timed faults. [`Schedule::generate`] turns a
//! seed and a [`FaultProfile`] (how often, how long, which kinds) into such a list, so the faults
//! of a failing seed can be read line by line; tests can also write schedules by hand.
//! Crashes and pauses of each node and the partitions each come from their own random stream,
//! so turning on pauses does not move the crashes of the same seed.

use std::time::Duration;

use super::net::{LinkConfig, PartitionKind, random_subset};
use super::rng::{Purpose, below_incl, between, stream};
use super::time::{SimTime, micros};
use crate::core::NodeId;

/// A kind of partition the generator may pick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionChoice {
    /// One node cut off both ways.
    Isolate,
    /// A random minority (1 ..= (n-1)/2 nodes) cut off from the majority.
    Split,
    /// One node can send but not hear, or hear but not send.
    OneWay,
    /// One of the above, switched on and off with a period (a flapping link or port).
    Flap,
}

/// How often and how hard faults strike, for [`Schedule::generate`]. Rates are mean intervals:
/// the time to the next fault is uniform in `0 ..= 2 * mean`. `None` turns a fault off.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultProfile {
    /// Mean time between crashes of one node (from restart to the next crash).
    pub crash_every: Option<Duration>,
    /// A crashed node restarts after a time in this range.
    pub restart_after: (Duration, Duration),
    /// Mean time between pauses (SIGSTOP) of one node.
    pub pause_every: Option<Duration>,
    /// A pause lasts a time in this range (may exceed any lease).
    pub pause_for: (Duration, Duration),
    /// Mean time between partitions of the rack (one at a time).
    pub partition_every: Option<Duration>,
    /// A partition lasts a time in this range.
    pub partition_for: (Duration, Duration),
    /// The kinds the generator picks from, equally likely. Empty means [`PartitionChoice::Isolate`].
    pub partition_kinds: Vec<PartitionChoice>,
    /// Period of a flapping partition (on for one period, off for the next).
    pub flap_period: (Duration, Duration),
    /// No fault starts before this (lets a cluster form first).
    pub quiet_start: Duration,
    /// What every link does to datagrams (loss, delay, jitter, duplication).
    pub link: LinkConfig,
    /// Every node's clock drift is drawn uniformly from `-bound ..= +bound` ppm.
    pub drift_bound_ppm: u32,
}

impl FaultProfile {
    /// No faults, a quiet LAN, no drift.
    pub fn none() -> Self {
        FaultProfile {
            crash_every: None,
            restart_after: (Duration::from_secs(1), Duration::from_secs(10)),
            pause_every: None,
            pause_for: (Duration::from_millis(100), Duration::from_secs(10)),
            partition_every: None,
            partition_for: (Duration::from_secs(1), Duration::from_secs(20)),
            partition_kinds: vec![
                PartitionChoice::Isolate,
                PartitionChoice::Split,
                PartitionChoice::OneWay,
                PartitionChoice::Flap,
            ],
            flap_period: (Duration::from_millis(200), Duration::from_secs(3)),
            quiet_start: Duration::ZERO,
            link: LinkConfig::default(),
            drift_bound_ppm: 0,
        }
    }

    /// Everything a rack of Pis suffers, often: crashes, long pauses, all partition kinds,
    /// 5 % loss, 50 ms jitter, 1 % duplicates, ±1 % clock drift.
    pub fn harsh() -> Self {
        FaultProfile {
            crash_every: Some(Duration::from_secs(60)),
            pause_every: Some(Duration::from_secs(60)),
            partition_every: Some(Duration::from_secs(20)),
            quiet_start: Duration::from_secs(5),
            link: LinkConfig {
                loss: 0.05,
                delay: Duration::from_micros(500),
                jitter: Duration::from_millis(50),
                jitter_shape: super::net::Jitter::Tail,
                duplicate: 0.01,
            },
            drift_bound_ppm: 10_000,
            ..FaultProfile::none()
        }
    }
}

/// One fault. Faults on a node in the wrong state are no-ops (a crashed node cannot be paused,
/// a running node is not restarted) and are recorded as such in the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The process dies: its state and unread datagrams are lost.
    Crash(NodeId),
    /// A crashed node starts again with a fresh machine from the factory.
    Restart(NodeId),
    /// The process is frozen for `dur`; its clock keeps running, datagrams queue up.
    Pause { node: NodeId, dur: Duration },
    /// Links are cut for `dur`.
    Partition { kind: PartitionKind, dur: Duration },
    /// Links are cut and restored every `period`, for `dur` in all (cut first).
    Flap {
        kind: PartitionKind,
        period: Duration,
        dur: Duration,
    },
}

/// A duration as seconds with microseconds, the format of every schedule line.
pub(crate) struct Secs(pub Duration);

impl std::fmt::Display for Secs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", SimTime(micros(self.0)))
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Crash(n) => write!(f, "crash {n}"),
            Fault::Restart(n) => write!(f, "restart {n}"),
            Fault::Pause { node, dur } => write!(f, "pause {node} for {}", Secs(*dur)),
            Fault::Partition { kind, dur } => write!(f, "partition {kind} for {}", Secs(*dur)),
            Fault::Flap { kind, period, dur } => {
                write!(f, "flap {kind} every {} for {}", Secs(*period), Secs(*dur))
            }
        }
    }
}

/// A fault and the real time it strikes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedFault {
    /// When (real time).
    pub at: SimTime,
    /// What.
    pub fault: Fault,
}

impl std::fmt::Display for TimedFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:>14} {}", self.at.to_string(), self.fault)
    }
}

/// A concrete list of timed faults, in time order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schedule {
    /// The faults, sorted by time (ties keep insertion order).
    pub faults: Vec<TimedFault>,
}

/// Upper bound on faults per generator stream, so a degenerate profile cannot loop for long.
const MAX_PER_STREAM: usize = 100_000;

impl Schedule {
    /// An empty schedule (add faults with [`Schedule::at`]).
    pub fn new() -> Self {
        Schedule::default()
    }

    /// Add `fault` at real time `at` (builder style, for hand-written schedules).
    pub fn at(mut self, at: SimTime, fault: Fault) -> Self {
        self.push(at, fault);
        self
    }

    /// Add `fault` at real time `at`, keeping the list sorted.
    pub fn push(&mut self, at: SimTime, fault: Fault) {
        let pos = self.faults.partition_point(|f| f.at <= at);
        self.faults.insert(pos, TimedFault { at, fault });
    }

    /// The schedule of faults for a run of `duration` with `n` nodes, drawn from `seed`.
    /// The same arguments always give the same schedule.
    pub fn generate(seed: u64, profile: &FaultProfile, duration: Duration, n: u16) -> Schedule {
        let end = micros(duration);
        let start = micros(profile.quiet_start);
        let mut faults: Vec<TimedFault> = Vec::new();
        let mut add = |at: u64, fault: Fault| {
            faults.push(TimedFault {
                at: SimTime(at),
                fault,
            })
        };
        let range = |r: (Duration, Duration)| (micros(r.0), micros(r.1).max(micros(r.0)));
        let next = |rng: &mut _, t: u64, mean: Duration| {
            t.saturating_add(1)
                .saturating_add(below_incl(rng, micros(mean).saturating_mul(2)))
        };

        for node in (0..n).map(NodeId) {
            if let Some(mean) = profile.crash_every {
                let mut rng = stream(seed, Purpose::ScheduleCrash, u32::from(node.0));
                let (lo, hi) = range(profile.restart_after);
                let mut t = start;
                for _ in 0..MAX_PER_STREAM {
                    t = next(&mut rng, t, mean);
                    if t >= end {
                        break;
                    }
                    add(t, Fault::Crash(node));
                    t = t.saturating_add(between(&mut rng, lo, hi));
                    if t >= end {
                        break;
                    }
                    add(t, Fault::Restart(node));
                }
            }
            if let Some(mean) = profile.pause_every {
                let mut rng = stream(seed, Purpose::SchedulePause, u32::from(node.0));
                let (lo, hi) = range(profile.pause_for);
                let mut t = start;
                for _ in 0..MAX_PER_STREAM {
                    t = next(&mut rng, t, mean);
                    if t >= end {
                        break;
                    }
                    let dur = between(&mut rng, lo, hi);
                    add(
                        t,
                        Fault::Pause {
                            node,
                            dur: Duration::from_micros(dur),
                        },
                    );
                    t = t.saturating_add(dur);
                }
            }
        }

        if let Some(mean) = profile.partition_every
            && n >= 2
        {
            let mut rng = stream(seed, Purpose::SchedulePartition, 0);
            let (lo, hi) = range(profile.partition_for);
            let (plo, phi) = range(profile.flap_period);
            let kinds = if profile.partition_kinds.is_empty() {
                vec![PartitionChoice::Isolate]
            } else {
                profile.partition_kinds.clone()
            };
            let mut t = start;
            for _ in 0..MAX_PER_STREAM {
                t = next(&mut rng, t, mean);
                if t >= end {
                    break;
                }
                let dur = Duration::from_micros(between(&mut rng, lo, hi));
                let choice = kinds[below_incl(&mut rng, kinds.len() as u64 - 1) as usize];
                let flap = choice == PartitionChoice::Flap;
                let base = if flap {
                    [
                        PartitionChoice::Isolate,
                        PartitionChoice::Split,
                        PartitionChoice::OneWay,
                    ][below_incl(&mut rng, 2) as usize]
                } else {
                    choice
                };
                let kind = random_kind(&mut rng, base, n);
                let fault = if flap {
                    let period = Duration::from_micros(between(&mut rng, plo, phi).max(1));
                    Fault::Flap { kind, period, dur }
                } else {
                    Fault::Partition { kind, dur }
                };
                add(t, fault);
                t = t.saturating_add(micros(dur));
            }
        }

        faults.sort_by_key(|f| f.at);
        Schedule { faults }
    }
}

fn random_kind(
    rng: &mut rand_chacha::ChaCha8Rng,
    choice: PartitionChoice,
    n: u16,
) -> PartitionKind {
    let one = NodeId(below_incl(rng, u64::from(n) - 1) as u16);
    match choice {
        PartitionChoice::Isolate | PartitionChoice::Flap => PartitionKind::Isolate(one),
        PartitionChoice::Split => {
            let max_minority = u64::from(n.saturating_sub(1) / 2).max(1);
            let k = between(rng, 1, max_minority) as usize;
            PartitionKind::Split(random_subset(rng, n, k))
        }
        PartitionChoice::OneWay => {
            let others: Vec<NodeId> = (0..n).map(NodeId).filter(|o| *o != one).collect();
            if below_incl(rng, 1) == 0 {
                PartitionKind::OneWay {
                    from: vec![one],
                    to: others,
                }
            } else {
                PartitionKind::OneWay {
                    from: others,
                    to: vec![one],
                }
            }
        }
    }
}

impl std::fmt::Display for Schedule {
    /// One fault per line: `   12.000345s crash n3`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for fault in &self.faults {
            writeln!(f, "{fault}")?;
        }
        Ok(())
    }
}
