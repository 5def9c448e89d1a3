//! `mooseherd bench`: the benchmarks, each printing a table (or JSON) and optionally writing
//! its JSON report.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use mooseherd::lab::drill::Drill;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Membership on the deterministic simulator: failure detection (crash -> every live member
    /// marks it down), convergence of a metadata change, bytes per node per second, false
    /// positives under loss and jitter.
    Gossip(GossipBenchArgs),
    /// PVC created -> Bound through the real provisioner, kube-apiserver and MooseFS: p50/p99 and
    /// total for many claims created at once. Without --kubeconfig it starts the test control
    /// plane and a MooseFS with scripts/kube.sh (root; run from the source tree) and stops them
    /// afterwards.
    Provision(ProvisionBenchArgs),
    /// What an idle agent costs: RSS and CPU of real agents on loopback over a window (one of
    /// them the aarch64 build under qemu-user when target/aarch64-unknown-linux-musl/release/
    /// mooseherd and qemu-aarch64-static exist), and the binary's size. Goals: RSS <= 15 MB,
    /// CPU <= 0.2 % of a core, binary <= 10 MB.
    Footprint(FootprintBenchArgs),
    /// Failover drills on the lab rack (network namespaces, real MooseFS), against mooseherd
    /// and against the keepalived baseline in the same run: time to the first acknowledged
    /// write p50/p99, writes lost, split-brain seconds, false failovers; one timeline chart
    /// (SVG) per system and drill. Root; replaces any lab at --dir. Takes long: about
    /// 20-90 s per run.
    Failover(FailoverBenchArgs),
}

#[derive(Debug, Args)]
pub struct FailoverBenchArgs {
    /// Runs of each drill on each system.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Runs of kill-leader and partition-leader (default: --runs).
    #[arg(long)]
    runs_leader_lost: Option<usize>,
    /// Drills to run, comma-separated (default: all).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Drill::ALL)]
    drills: Vec<Drill>,
    /// Systems, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = ["mooseherd".to_string(), "keepalived".to_string()])]
    systems: Vec<String>,
    /// Directory for the timeline charts (failover-SYSTEM-DRILL.svg).
    #[arg(long, default_value = "target/bench")]
    charts: PathBuf,
    /// How mooseherd's lab replicates the master's metadata: `shared-dir` (a directory both
    /// candidates see, synchronous) or `metalogger` (standbys follow with mfsmetalogger,
    /// asynchronous: the JSON's `lost` is its loss window). The keepalived baseline always
    /// hands a shared directory over.
    #[arg(long, default_value = "shared-dir", value_parser = ["shared-dir", "metalogger"])]
    replication: String,
    /// MooseFS major releases, comma-separated: `3` (Debian 12's packages), `4` (built by
    /// `scripts/moosefs.sh build`), `3,4` side by side in one run. Default: the newest available.
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u8).range(3..=4))]
    moosefs: Vec<u8>,
    /// Print the JSON report instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long, default_value = mooseherd::lab::DEFAULT_DIR)]
    dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct ProvisionBenchArgs {
    /// Number of claims, created at once.
    #[arg(long, default_value_t = 100)]
    pvcs: usize,
    /// A cluster to use (its PV controller must run); then --root is required.
    #[arg(long, requires = "root")]
    kubeconfig: Option<PathBuf>,
    /// A directory on a MooseFS mount for the volumes (created and removed).
    #[arg(long)]
    root: Option<PathBuf>,
    /// Seconds to wait for all claims to be Bound.
    #[arg(long, default_value_t = 120)]
    timeout_s: u64,
    /// Print one JSON object (pvcs, p50_ms, p99_ms, max_ms, total_ms) instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct FootprintBenchArgs {
    /// Measuring window in seconds (after 5 s of settling).
    #[arg(long, default_value_t = 60)]
    duration_s: u64,
    /// Agents in the rack.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// The aarch64 mooseherd to run one agent under qemu-user (default: the release build under
    /// target/, if there is one).
    #[arg(long)]
    aarch64: Option<PathBuf>,
    /// Print the JSON object only (rss_kb, cpu_percent, binary_bytes, ...).
    #[arg(long)]
    json: bool,
    /// Also write the JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GossipBenchArgs {
    /// Rack size.
    #[arg(long, default_value_t = 50)]
    nodes: u16,
    /// Datagram loss probability on every link (0.0 - 0.99).
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Largest extra random delay per datagram, in ms.
    #[arg(long, default_value_t = 0)]
    jitter_ms: u64,
    /// Crashes to measure detection over.
    #[arg(long, default_value_t = 20)]
    crashes: u32,
    /// Metadata changes to measure convergence over.
    #[arg(long, default_value_t = 20)]
    meta_changes: u32,
    /// Simulated seconds of the quiet phase (false positives, bytes).
    #[arg(long, default_value_t = 60)]
    duration_s: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Print the JSON object only.
    #[arg(long)]
    json: bool,
    /// Also write the JSON to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn gossip(a: &GossipBenchArgs) -> anyhow::Result<ExitCode> {
    use mooseherd::bench::gossip::{GossipBenchOptions, print_table};
    let opts = GossipBenchOptions {
        nodes: a.nodes,
        loss: a.loss,
        jitter: std::time::Duration::from_millis(a.jitter_ms),
        crashes: a.crashes,
        meta_changes: a.meta_changes,
        duration: std::time::Duration::from_secs(a.duration_s),
        seed: a.seed,
    };
    let report = mooseherd::bench::gossip::gossip(&opts)?;
    super::emit_report(&report, a.out.as_deref(), a.json, || print_table(&report))
}

fn provision(a: &ProvisionBenchArgs) -> anyhow::Result<ExitCode> {
    use mooseherd::bench::provision::{ProvisionBenchOptions, print_table};
    // Without a cluster: the test control plane + MooseFS of scripts/kube.sh, stopped afterwards.
    struct Started(PathBuf);
    impl Drop for Started {
        fn drop(&mut self) {
            let _ = std::process::Command::new("bash")
                .arg("scripts/kube.sh")
                .arg("stop")
                .arg(&self.0)
                .status();
        }
    }
    let mut started = None;
    let (kubeconfig, root) = match (&a.kubeconfig, &a.root) {
        (Some(k), Some(r)) => (k.clone(), r.clone()),
        _ => {
            anyhow::ensure!(
                std::path::Path::new("scripts/kube.sh").is_file(),
                "without --kubeconfig the benchmark starts a test cluster with scripts/kube.sh: run it from the source tree (as root), or give --kubeconfig and --root"
            );
            let dir = std::env::temp_dir().join(format!("mooseherd-bench-{}", std::process::id()));
            let s = Started(dir.clone());
            let ok = std::process::Command::new("bash")
                .arg("scripts/kube.sh")
                .arg("start")
                .arg(&dir)
                .status()
                .context("running scripts/kube.sh")?
                .success();
            started = Some(s);
            anyhow::ensure!(ok, "scripts/kube.sh start {} failed", dir.display());
            // The control plane and MooseFS live in a network namespace of their own: join it
            // (this thread only; the runtime and every process it starts are created from here).
            let env = std::fs::read_to_string(dir.join("env")).context("reading the env file")?;
            if let Some(ns) = env
                .lines()
                .find_map(|l| l.strip_prefix("MOOSEHERD_TEST_NETNS="))
            {
                let f = std::fs::File::open(ns).with_context(|| format!("opening {ns}"))?;
                nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
                    .with_context(|| format!("entering {ns}"))?;
            }
            (dir.join("kubeconfig"), dir.join("mfs").join("bench"))
        }
    };
    let opts = ProvisionBenchOptions {
        pvcs: a.pvcs,
        kubeconfig,
        root,
        timeout: std::time::Duration::from_secs(a.timeout_s),
    };
    let report = super::runtime()?.block_on(mooseherd::bench::provision::provision(&opts))?;
    drop(started);
    super::emit_report(&report, a.out.as_deref(), a.json, || print_table(&report))
}

/// Runs one benchmark.
pub fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Gossip(a) => gossip(&a),
        BenchCommand::Provision(a) => provision(&a),
        BenchCommand::Footprint(a) => footprint(&a),
        BenchCommand::Failover(a) => failover(&a),
    }
}

fn footprint(a: &FootprintBenchArgs) -> anyhow::Result<ExitCode> {
    use mooseherd::bench::footprint::{FootprintOptions, table};
    if !(1..=3600).contains(&a.duration_s) {
        anyhow::bail!("--duration-s {}: give 1 to 3600 seconds", a.duration_s);
    }
    let report = mooseherd::bench::footprint::footprint(&FootprintOptions {
        duration: std::time::Duration::from_secs(a.duration_s),
        nodes: a.nodes,
        aarch64: a.aarch64.clone(),
        ..FootprintOptions::default()
    })?;
    super::emit_report(&report, a.out.as_deref(), a.json, || {
        print!("{}", table(&report))
    })
}

fn failover(a: &FailoverBenchArgs) -> anyhow::Result<ExitCode> {
    use mooseherd::bench::failover::{FailoverOptions, table};
    if a.runs == 0 || a.runs > 1000 {
        anyhow::bail!("--runs {}: give 1 to 1000", a.runs);
    }
    let report = mooseherd::bench::failover::failover(&FailoverOptions {
        dir: a.dir.clone(),
        runs: a.runs,
        runs_leader_lost: a.runs_leader_lost,
        drills: a.drills.clone(),
        systems: a.systems.clone(),
        charts: Some(a.charts.clone()),
        replication: a.replication.clone(),
        moosefs: a.moosefs.clone(),
    })?;
    super::emit_report(&report, a.out.as_deref(), a.json, || {
        print!("{}", table(&report))
    })
}
