//! The simulated network: what can happen to one datagram on one directed link (loss, delay,
//! jitter, duplication) and which links a partition cuts. Partitions are sets of blocked
//! *directed* links, so one-way failures (a node that can send but not hear) are expressible.

use std::time::Duration;

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::Rng;

use super::rng::{Chance, below_incl};
use super::time::micros;
use crate::core::NodeId;

/// How the random extra delay of a datagram is spread between zero and [`LinkConfig::jitter`].
/// All shapes are bounded, so a message's delay never exceeds `delay + jitter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Jitter {
    /// Every extra delay in `0..=jitter` equally likely.
    #[default]
    Uniform,
    /// The mean of two uniform draws: most extra delays near `jitter / 2`.
    Triangular,
    /// Usually small (`0..=jitter/8`), but one datagram in 16 gets up to the full `jitter`:
    /// a congested Wi-Fi or switch queue.
    Tail,
}

/// What one directed link does to the datagrams it carries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinkConfig {
    /// Probability that a datagram is lost (0.0 ..= 1.0).
    pub loss: f64,
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Largest random extra delay; unequal delays reorder datagrams.
    pub jitter: Duration,
    /// Shape of the extra delay.
    pub jitter_shape: Jitter,
    /// Probability that a datagram arrives twice (the copy gets its own delay).
    pub duplicate: f64,
}

impl Default for LinkConfig {
    /// A quiet LAN: 200 µs delay, 100 µs jitter, no loss, no duplicates.
    fn default() -> Self {
        LinkConfig {
            loss: 0.0,
            delay: Duration::from_micros(200),
            jitter: Duration::from_micros(100),
            jitter_shape: Jitter::Uniform,
            duplicate: 0.0,
        }
    }
}

/// A [`LinkConfig`] prepared for the hot path: probabilities as integer thresholds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Link {
    loss: Chance,
    duplicate: Chance,
    delay_us: u64,
    jitter_us: u64,
    shape: Jitter,
}

/// What happens to one datagram: delays of the copies that arrive (none, one or two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fate {
    pub(crate) lost: bool,
    pub(crate) delay_us: u64,
    pub(crate) duplicate_delay_us: Option<u64>,
}

impl Link {
    pub(crate) fn new(c: &LinkConfig) -> Self {
        Link {
            loss: Chance::new(c.loss),
            duplicate: Chance::new(c.duplicate),
            delay_us: micros(c.delay),
            jitter_us: micros(c.jitter),
            shape: c.jitter_shape,
        }
    }

    fn jitter(&self, a: u64, b: u64) -> u64 {
        let j = self.jitter_us;
        let pick = |x: u64, max: u64| ((u128::from(x) * u128::from(max + 1)) >> 64) as u64;
        match self.shape {
            Jitter::Uniform => pick(a, j),
            Jitter::Triangular => (pick(a, j) + pick(b, j)) / 2,
            Jitter::Tail => {
                if b >> 60 == 0 {
                    pick(a, j)
                } else {
                    pick(a, j / 8)
                }
            }
        }
    }

    /// Decide a datagram's fate. Always draws the same number of values, so one lost or
    /// partitioned datagram does not change the fate of the next ones.
    pub(crate) fn fate(&self, rng: &mut ChaCha8Rng) -> Fate {
        let mut draws = [0u64; 6];
        for d in &mut draws {
            *d = rng.next_u64();
        }
        let lost = self.loss.hit(draws[0]);
        let delay_us = self
            .delay_us
            .saturating_add(self.jitter(draws[1], draws[2]));
        let duplicate_delay_us = self.duplicate.hit(draws[3]).then(|| {
            self.delay_us
                .saturating_add(self.jitter(draws[4], draws[5]))
        });
        Fate {
            lost,
            delay_us,
            duplicate_delay_us,
        }
    }
}

/// Which directed links a partition cuts, described the way a person would say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartitionKind {
    /// The node can neither send to nor hear from anyone.
    Isolate(NodeId),
    /// The listed nodes (usually a minority) are cut off from all others, both ways; each side
    /// still talks within itself.
    Split(Vec<NodeId>),
    /// Datagrams from every `from` node to every `to` node are dropped; the other direction works.
    OneWay { from: Vec<NodeId>, to: Vec<NodeId> },
    /// Exactly these directed links `(from, to)` are cut.
    Links(Vec<(NodeId, NodeId)>),
}

impl PartitionKind {
    /// The directed links this partition cuts in a rack of `n` nodes (nodes `0..n`).
    pub fn links(&self, n: u16) -> Vec<(NodeId, NodeId)> {
        let all = || (0..n).map(NodeId);
        let mut out = Vec::new();
        match self {
            PartitionKind::Isolate(x) => {
                for o in all().filter(|o| o != x) {
                    out.push((*x, o));
                    out.push((o, *x));
                }
            }
            PartitionKind::Split(side) => {
                for a in side {
                    for b in all().filter(|b| !side.contains(b)) {
                        out.push((*a, b));
                        out.push((b, *a));
                    }
                }
            }
            PartitionKind::OneWay { from, to } => {
                for a in from {
                    for b in to.iter().filter(|b| *b != a) {
                        out.push((*a, *b));
                    }
                }
            }
            PartitionKind::Links(l) => out.extend(l.iter().copied()),
        }
        out.retain(|(a, b)| a.0 < n && b.0 < n && a != b);
        out.sort();
        out.dedup();
        out
    }
}

fn list(f: &mut std::fmt::Formatter<'_>, nodes: &[NodeId]) -> std::fmt::Result {
    write!(f, "[")?;
    for (i, n) in nodes.iter().enumerate() {
        if i > 0 {
            write!(f, " ")?;
        }
        write!(f, "{n}")?;
    }
    write!(f, "]")
}

impl std::fmt::Display for PartitionKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PartitionKind::Isolate(x) => write!(f, "isolate {x}"),
            PartitionKind::Split(side) => {
                write!(f, "split ")?;
                list(f, side)?;
                write!(f, " from the rest")
            }
            PartitionKind::OneWay { from, to } => {
                write!(f, "one-way ")?;
                list(f, from)?;
                write!(f, " -/-> ")?;
                list(f, to)
            }
            PartitionKind::Links(l) => {
                write!(f, "links")?;
                for (a, b) in l {
                    write!(f, " {a}->{b}")?;
                }
                Ok(())
            }
        }
    }
}

/// Count of the partitions cutting each directed link (partitions may overlap).
#[derive(Debug, Clone)]
pub(crate) struct Blocked {
    n: usize,
    cuts: Vec<u16>,
}

impl Blocked {
    pub(crate) fn new(n: u16) -> Self {
        let n = usize::from(n);
        Blocked {
            n,
            cuts: vec![0; n * n],
        }
    }

    pub(crate) fn is_blocked(&self, from: NodeId, to: NodeId) -> bool {
        self.cuts[usize::from(from.0) * self.n + usize::from(to.0)] > 0
    }

    pub(crate) fn add(&mut self, links: &[(NodeId, NodeId)], delta: i32) {
        for (a, b) in links {
            let c = &mut self.cuts[usize::from(a.0) * self.n + usize::from(b.0)];
            *c = if delta > 0 {
                c.saturating_add(1)
            } else {
                c.saturating_sub(1)
            };
        }
    }
}

/// A uniformly random subset of `0..n` with `k` members, sorted.
pub(crate) fn random_subset(rng: &mut ChaCha8Rng, n: u16, k: usize) -> Vec<NodeId> {
    let mut all: Vec<NodeId> = (0..n).map(NodeId).collect();
    let k = k.min(all.len());
    for i in 0..k {
        let j = i + below_incl(rng, (all.len() - 1 - i) as u64) as usize;
        all.swap(i, j);
    }
    let mut out = all[..k].to_vec();
    out.sort();
    out
}
