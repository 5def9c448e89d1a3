//! The rack shapes and fault scenarios a proof run is made of.

use std::time::Duration;

use serde::Serialize;

use crate::core::NodeId;
use crate::core::lease::{LeaseConfig, UnsafeVariant};
use crate::core::plan::Backend;
use crate::sim::{FaultProfile, PartitionChoice};

/// The rack of a proof run.
#[derive(Debug, Clone)]
pub struct RackShape {
    pub nodes: u16,
    pub voters: Vec<NodeId>,
    /// Master candidates and their priorities.
    pub candidates: Vec<(NodeId, u8)>,
    pub cfg: LeaseConfig,
    pub backend: Backend,
}

impl RackShape {
    /// Five nodes: three voters; candidates n0 (200), n1 (150) and the non-voter n3 (100).
    pub fn five(variant: Option<UnsafeVariant>) -> Self {
        let mut cfg = LeaseConfig::new(
            Duration::from_millis(3000),
            Duration::from_millis(1000),
            10_000,
        );
        cfg.unsafe_variant = variant;
        Self {
            nodes: 5,
            voters: vec![NodeId(0), NodeId(1), NodeId(2)],
            candidates: vec![(NodeId(0), 200), (NodeId(1), 150), (NodeId(3), 100)],
            cfg,
            backend: Backend::SharedDir,
        }
    }
}

/// Which schedules to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Crashes, restarts, long pauses, every partition kind, loss, jitter, duplicates, drift.
    Harsh,
    /// 20 % loss, 200 ms jitter, drift and short pauses (below the fencing budget), no crash or
    /// partition: any election after the first is a false failover.
    Lossy,
    /// Crashes and restarts only, on a LAN with 2 % loss: the failover time of a lost leader.
    Crashes,
    /// Planned switchovers every 10 s on a LAN with 2 % loss: the write pause of a switchover.
    Switchover,
}

impl Scenario {
    /// How often the operator asks the leader for a switchover in this scenario.
    pub(super) fn switchover_every(self) -> Option<Duration> {
        match self {
            Scenario::Harsh => Some(Duration::from_secs(17)),
            Scenario::Switchover => Some(Duration::from_secs(10)),
            Scenario::Lossy | Scenario::Crashes => None,
        }
    }
}

impl Scenario {
    pub fn profile(self) -> FaultProfile {
        use crate::sim::{Jitter, LinkConfig};
        match self {
            Scenario::Harsh => FaultProfile {
                crash_every: Some(Duration::from_secs(40)),
                restart_after: (Duration::from_millis(500), Duration::from_secs(8)),
                pause_every: Some(Duration::from_secs(40)),
                pause_for: (Duration::from_millis(100), Duration::from_secs(8)),
                partition_every: Some(Duration::from_secs(20)),
                partition_for: (Duration::from_millis(500), Duration::from_secs(10)),
                partition_kinds: vec![
                    PartitionChoice::Isolate,
                    PartitionChoice::Split,
                    PartitionChoice::OneWay,
                    PartitionChoice::Flap,
                ],
                quiet_start: Duration::from_secs(4),
                link: LinkConfig {
                    loss: 0.05,
                    delay: Duration::from_micros(300),
                    jitter: Duration::from_millis(80),
                    jitter_shape: Jitter::Tail,
                    duplicate: 0.02,
                },
                drift_bound_ppm: 10_000,
                ..FaultProfile::none()
            },
            Scenario::Switchover => FaultProfile {
                quiet_start: Duration::from_secs(4),
                link: LinkConfig {
                    loss: 0.02,
                    delay: Duration::from_micros(300),
                    jitter: Duration::from_millis(10),
                    jitter_shape: Jitter::Tail,
                    duplicate: 0.0,
                },
                drift_bound_ppm: 10_000,
                ..FaultProfile::none()
            },
            Scenario::Crashes => FaultProfile {
                crash_every: Some(Duration::from_secs(30)),
                restart_after: (Duration::from_secs(1), Duration::from_secs(8)),
                quiet_start: Duration::from_secs(4),
                link: LinkConfig {
                    loss: 0.02,
                    delay: Duration::from_micros(300),
                    jitter: Duration::from_millis(10),
                    jitter_shape: Jitter::Tail,
                    duplicate: 0.0,
                },
                drift_bound_ppm: 10_000,
                ..FaultProfile::none()
            },
            Scenario::Lossy => FaultProfile {
                pause_every: Some(Duration::from_secs(20)),
                pause_for: (Duration::from_millis(10), Duration::from_millis(300)),
                quiet_start: Duration::from_secs(4),
                link: LinkConfig {
                    loss: 0.20,
                    delay: Duration::from_micros(300),
                    jitter: Duration::from_millis(200),
                    jitter_shape: Jitter::Uniform,
                    duplicate: 0.0,
                },
                drift_bound_ppm: 10_000,
                ..FaultProfile::none()
            },
        }
    }
}
