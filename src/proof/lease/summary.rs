//! Many schedules at once: the totals `mooseherd sim` prints, the replay command line and the
//! percentiles.

use std::time::Duration;

use serde::Serialize;

use super::{RackShape, Scenario, run_one};

/// What `mooseherd sim` prints: totals over many schedules.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub schedules: u64,
    pub violations: u64,
    pub failover_p50_ms: Option<u64>,
    pub failover_p99_ms: Option<u64>,
    pub failovers: usize,
    pub false_failovers: u64,
    pub switchover_p50_ms: Option<u64>,
    pub switchover_p99_ms: Option<u64>,
    pub switchovers: usize,
    /// The first violations found (seed, what, replay command and schedule).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<String>,
    /// Seeds whose schedule had a false failover (replay one with `--seed S --schedules 1 -v`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub false_failover_seeds: Vec<u64>,
    /// With one schedule: its lease decisions in order.
    #[serde(skip)]
    pub story: Vec<String>,
}

impl Summary {
    /// Whether the run passed: no schedule violated an invariant and none had a false failover
    /// (in the lossy scenario nothing fails, so any election after the first is a false
    /// failover, which the product promises not to have).
    pub fn passed(&self) -> bool {
        self.violations == 0 && self.false_failovers == 0
    }
}

/// The `mooseherd sim` command line that replays one schedule of a run, with `{seed}` where the
/// seed goes (what [`run_many`] takes as `replay`).
pub fn replay_command(
    duration: Duration,
    scenario: Scenario,
    variant: Option<crate::core::lease::UnsafeVariant>,
) -> String {
    use crate::core::lease::UnsafeVariant;
    let mut replay = format!(
        "mooseherd sim --seed {{seed}} --schedules 1 --duration {}",
        duration.as_secs()
    );
    replay.push_str(match scenario {
        Scenario::Harsh => "",
        Scenario::Lossy => " --scenario lossy",
        Scenario::Crashes => " --scenario crashes",
        Scenario::Switchover => " --scenario switchover",
    });
    replay.push_str(match variant {
        None => "",
        Some(UnsafeVariant::NoDriftMargin) => " --unsafe-variant no-drift-margin",
        Some(UnsafeVariant::NoRestartWait) => " --unsafe-variant no-restart-wait",
    });
    replay
}

/// Runs `count` schedules with seeds `first_seed..`, stopping early after `max_failures` violations.
pub fn run_many(
    first_seed: u64,
    count: u64,
    scenario: Scenario,
    shape: &RackShape,
    duration: Duration,
    replay: &str,
    max_failures: usize,
) -> Summary {
    let mut failovers = Vec::new();
    let mut switchovers = Vec::new();
    let mut violations = 0;
    let mut false_failovers = 0;
    let mut failures = Vec::new();
    let mut false_failover_seeds = Vec::new();
    let mut story = Vec::new();
    let mut ran = 0;
    for seed in first_seed..first_seed.saturating_add(count) {
        let out = run_one(seed, scenario, shape, duration, replay);
        ran += 1;
        failovers.extend(out.failovers);
        switchovers.extend(out.switchovers);
        if scenario == Scenario::Lossy {
            false_failovers += u64::from(out.later_elections);
            if out.later_elections > 0 {
                false_failover_seeds.push(seed);
            }
        }
        if count == 1 {
            story = out.story;
        }
        if let Some(v) = out.violation {
            violations += 1;
            failures.push(v);
            if failures.len() >= max_failures {
                break;
            }
        }
    }
    failovers.sort();
    switchovers.sort();
    Summary {
        schedules: ran,
        violations,
        failover_p50_ms: percentile(&failovers, 50),
        failover_p99_ms: percentile(&failovers, 99),
        failovers: failovers.len(),
        false_failovers,
        switchover_p50_ms: percentile(&switchovers, 50),
        switchover_p99_ms: percentile(&switchovers, 99),
        switchovers: switchovers.len(),
        failures,
        false_failover_seeds,
        story,
    }
}

/// The `p`-th percentile (nearest rank) of sorted durations, in ms.
pub fn percentile(sorted: &[Duration], p: usize) -> Option<u64> {
    crate::percentile::nearest_rank(sorted, p as f64).map(|d| d.as_millis() as u64)
}
