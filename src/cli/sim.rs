//! `mooseherd sim`: the lease proved in simulation over many seeded fault schedules.

use std::process::ExitCode;

use clap::{Args, ValueEnum};

#[derive(Debug, Args)]
pub struct SimArgs {
    /// How many schedules (seeds) to run.
    #[arg(long, default_value_t = 1000)]
    schedules: u64,
    /// First seed; schedule i uses seed + i.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Simulated seconds per schedule.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Which faults: `harsh` (crashes, long pauses, partitions, loss, drift), `lossy` (20 % loss,
    /// 200 ms jitter, short pauses: any election after the first is a false failover) or `crashes`
    /// (crashes and restarts on a quiet LAN: the failover time of a lost leader) or `switchover`
    /// (planned switchovers every 10 s: the write pause).
    #[arg(long, value_enum, default_value_t = ScenarioArg::Harsh)]
    scenario: ScenarioArg,
    /// Run a deliberately broken lease to show that the checker finds the split brain it causes.
    #[arg(long, value_enum)]
    unsafe_variant: Option<UnsafeArg>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScenarioArg {
    Harsh,
    Lossy,
    Crashes,
    Switchover,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum UnsafeArg {
    /// The holder believes in its lease for the full duration from when it heard the majority.
    NoDriftMargin,
    /// A restarted voter grants at once, forgetting promises made before the crash.
    NoRestartWait,
}

/// Runs the schedules and prints the summary.
pub fn run(args: &SimArgs) -> anyhow::Result<ExitCode> {
    use mooseherd::core::lease::UnsafeVariant;
    use mooseherd::proof::lease::{RackShape, Scenario, replay_command, run_many};
    let variant = args.unsafe_variant.map(|v| match v {
        UnsafeArg::NoDriftMargin => UnsafeVariant::NoDriftMargin,
        UnsafeArg::NoRestartWait => UnsafeVariant::NoRestartWait,
    });
    let scenario = match args.scenario {
        ScenarioArg::Harsh => Scenario::Harsh,
        ScenarioArg::Lossy => Scenario::Lossy,
        ScenarioArg::Crashes => Scenario::Crashes,
        ScenarioArg::Switchover => Scenario::Switchover,
    };
    let duration = std::time::Duration::from_secs(args.duration);
    let replay = replay_command(duration, scenario, variant);
    let started = std::time::Instant::now();
    let shape = RackShape::five(variant);
    let summary = run_many(
        args.seed,
        args.schedules,
        scenario,
        &shape,
        duration,
        &replay,
        3,
    );
    let elapsed = started.elapsed();
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        let ms = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{v} ms"));
        println!(
            "{} schedules of {} s ({:?}), 5 nodes, 3 voters, lease {} ms: {} violation(s); failover after a leader crash p50 {} p99 {} ({} failovers); switchover pause p50 {} p99 {} ({}); false failovers {}; {:.1} s",
            summary.schedules,
            args.duration,
            args.scenario,
            shape.cfg.lease.as_millis(),
            summary.violations,
            ms(summary.failover_p50_ms),
            ms(summary.failover_p99_ms),
            summary.failovers,
            ms(summary.switchover_p50_ms),
            ms(summary.switchover_p99_ms),
            summary.switchovers,
            summary.false_failovers,
            elapsed.as_secs_f64()
        );
        if !summary.false_failover_seeds.is_empty() {
            let seeds: Vec<String> = summary
                .false_failover_seeds
                .iter()
                .map(u64::to_string)
                .collect();
            println!(
                "false failovers in seeds {} (replay one: --seed S --schedules 1)",
                seeds.join(", ")
            );
        }
        if !summary.story.is_empty() {
            println!("\nlease decisions (simulated time, node, event):");
            for line in &summary.story {
                println!("{line}");
            }
        }
        for f in &summary.failures {
            println!("\n{f}");
        }
    }
    Ok(if summary.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
