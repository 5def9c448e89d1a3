//! Runs the membership benchmark ([`mooseherd::bench::gossip`]) once and prints its table and
//! its JSON report, until `mooseherd bench gossip` is wired in the CLI.
//!
//! ```text
//! cargo run --release --example gossip_bench -- --nodes 50 --loss 0.2 --jitter-ms 200 --duration-s 600
//! ```

use std::time::Duration;

use clap::Parser;
use mooseherd::bench::{GossipBenchOptions, gossip, print_table};

/// Membership benchmark on the deterministic simulator.
#[derive(Parser)]
struct Args {
    /// Rack size.
    #[arg(long, default_value_t = 50)]
    nodes: u16,
    /// Datagram loss probability (0 ..< 1).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Largest extra delay per datagram, ms.
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Crashes to measure detection over.
    #[arg(long, default_value_t = 20)]
    crashes: u32,
    /// Metadata changes to measure convergence over.
    #[arg(long, default_value_t = 20)]
    meta_changes: u32,
    /// Length of the quiet phase (false positives, bytes), simulated seconds.
    #[arg(long, default_value_t = 60)]
    duration_s: u64,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let report = gossip(&GossipBenchOptions {
        nodes: a.nodes,
        loss: a.loss,
        jitter: Duration::from_millis(a.jitter_ms),
        crashes: a.crashes,
        meta_changes: a.meta_changes,
        duration: Duration::from_secs(a.duration_s),
        seed: a.seed,
    })?;
    print_table(&report);
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
