//! `mooseherd firstboot`: prepares a Pi from its boot partition.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

#[derive(Debug, Args)]
pub struct FirstbootArgs {
    /// The mounted boot partition holding mooseherd/rack.toml.
    #[arg(long, default_value = "/boot/firmware")]
    boot: PathBuf,
    /// The root file system to set up. Anything but `/` skips what acts on the running machine
    /// (hostname, data disk, starting the agent) and takes the node from --node.
    #[arg(long, default_value = "/")]
    root: PathBuf,
    /// With --root: the node to set up (its hostname is used to find it).
    #[arg(long)]
    node: Option<String>,
    /// Seconds to wait for a network interface to appear (its MAC identifies the node).
    #[arg(long, default_value_t = 15)]
    wait_secs: u64,
}

/// Runs every first-boot step and prints what changed.
pub fn run(args: &FirstbootArgs) -> anyhow::Result<ExitCode> {
    use mooseherd::firstboot::{LocalFacts, apply};
    // `--root .` in `/` is the live root too: first boot resolves the root the same way.
    let live = std::fs::canonicalize(&args.root).is_ok_and(|r| r == std::path::Path::new("/"));
    if !live && args.node.is_none() {
        anyhow::bail!(
            "--root {} needs --node NAME (a prepared root has no network interfaces to match)",
            args.root.display()
        );
    }
    let facts = args.node.as_ref().map(|n| LocalFacts {
        hostname: n.clone(),
        ..LocalFacts::default()
    });
    let report = apply::run_all(&apply::Options {
        root: args.root.clone(),
        boot: args.boot.clone(),
        wait_for_interfaces: std::time::Duration::from_secs(args.wait_secs),
        facts,
    });
    for c in &report.changed {
        println!("changed: {c}");
    }
    for n in &report.notes {
        println!("note: {n}");
    }
    for e in &report.errors {
        println!("error: {e}");
    }
    println!(
        "mooseherd firstboot: node {}, {} change(s), {} error(s)",
        report.node.as_deref().unwrap_or("unknown"),
        report.changed.len(),
        report.errors.len()
    );
    Ok(if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
