//! The `mooseherd` command: one binary for the agent and every tool around it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use mooseherd::config::{self, Catalog, HostChecks, Rack, Role, Severity};
use mooseherd::runtime::control::{self, Request, Response, StatusReport};

/// Highly available MooseFS for Raspberry Pi racks.
///
/// Every Pi runs the same agent. The agents elect one leader with a quorum lease; the leader runs
/// mfsmaster and holds the virtual IP, and fences itself before its lease can run out, so there
/// are never two masters. The rack is described by one TOML file shared by all Pis.
#[derive(Debug, Parser)]
#[command(name = "mooseherd", version = version_line(), propagate_version = true)]
struct Cli {
    /// Rack file (the same on every Pi).
    #[arg(
        long,
        global = true,
        env = "MOOSEHERD_CONFIG",
        default_value = "/etc/mooseherd/rack.toml"
    )]
    config: PathBuf,

    /// More log detail (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    /// Less log detail (-q warnings only, -qq errors only).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    quiet: u8,

    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a rack file and print a summary of the rack, or every mistake as FILE:LINE:COL.
    ///
    /// Exit status: 0 when the rack is valid (warnings may be printed), 1 when it is not.
    CheckConfig(CheckConfigArgs),
    /// List the boards this binary knows, or show one board's pins.
    Boards(BoardsArgs),
    /// Run the agent on this node (systemd starts it; see systemd/mooseherd.service).
    ///
    /// It gossips with the other agents, takes part in the quorum lease and drives this node's
    /// roles. SIGTERM makes a leader step down and fence before the process exits.
    Agent(AgentArgs),
    /// Show the rack as the local agent sees it: members, leader, epoch, lease time left, each
    /// node's status LEDs (● steady, ◉ double blink, ◐ slow, ✱ fast, · off; green, amber, red),
    /// wire counters. `--watch` redraws it every second.
    Status(StatusArgs),
    /// Hand the master role over: the leader fences itself, releases its voters and asks the
    /// chosen standby (or the best one) to take over. Run it on the leader's node. Root only.
    Switchover(SwitchoverArgs),
    /// Put this node in maintenance (never stands for master; a leader hands over) or take it
    /// out. Root only.
    Maintenance(MaintenanceArgs),
    /// Create a gossip keyring (mode 0600), or rotate keys in one without downtime.
    ///
    /// Rotation: `--add` on every node (new key opens, old key still seals), then `--promote ID`
    /// on every node (new key seals), then `--remove OLD` on every node. See docs/keyring.md.
    Keygen(KeygenArgs),
    /// Prepare this Pi from its boot partition; mooseherd-firstboot.service runs it on every boot.
    ///
    /// Reads mooseherd/rack.toml, mooseherd/keyring, mooseherd/authorized_keys and
    /// mooseherd/root-password-hash from the boot partition; creates ssh host keys if there are
    /// none, installs the login keys, validates and installs the rack file and keyring, finds this
    /// node by MAC address (else by an address it has, else by hostname), sets the hostname and
    /// the node's address, mounts the data disk (`disk`; a filesystem is created only with
    /// `format = true`, never on a disk labelled `mooseherd`), creates the chunk directories and
    /// enables the agent. Changes only what differs: a second run changes nothing.
    ///
    /// Exit status: 0 when every step succeeded, 1 when any failed (the others still ran).
    Firstboot(FirstbootArgs),
    /// DRBD: the resource file mooseherd generates, and the handlers DRBD calls.
    #[command(subcommand)]
    Drbd(DrbdCommand),
    /// A rack of real agents in network namespaces on this machine, with real MooseFS, for trying
    /// mooseherd and for failover drills. Root only.
    #[command(subcommand)]
    Lab(LabCommand),
    /// Benchmarks that print a table and write JSON.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Run the Kubernetes PVC provisioner in the foreground, as if this node led the rack.
    ///
    /// The agent runs the same provisioner itself, on the leader only, when the rack file has
    /// `[provisioner] enabled = true`; this command is for trying it against a cluster and for
    /// debugging. A claim of a StorageClass whose `provisioner` is NAME becomes a directory under
    /// ROOT (with a MooseFS quota of the requested size) and a hostPath PV under HOST_ROOT.
    /// See deploy/ for StorageClass examples and RBAC.
    Provisioner(ProvisionerArgs),
    /// The status LEDs: `leds render` draws every pattern as an SVG strip (docs/leds.svg).
    #[command(subcommand)]
    Leds(LedsCommand),
    /// Print the version, git commit and target.
    Version,
    /// Prove the lease in simulation: many seeded schedules of crashes, pauses, partitions, loss,
    /// jitter and clock drift against the real lease and plan code, checking after every step
    /// that there is never more than one lease holder or VIP owner.
    ///
    /// A violation prints its seed, the fault schedule and the command that replays it.
    /// Exit status: 0 when no schedule violated an invariant, 1 otherwise.
    Sim(SimArgs),
}

#[derive(Debug, Subcommand)]
enum LabCommand {
    /// Create the namespaces and the rack file, start one agent per node, wait until healthy.
    Up {
        /// Number of nodes (pi1 and pi2 are master candidates, the first three vote).
        #[arg(long, default_value_t = 5)]
        nodes: usize,
        /// How the master's metadata reaches the standby.
        #[arg(long, default_value = "shared-dir", value_parser = ["shared-dir", "metalogger"])]
        replication: String,
        /// Host driver of the agents: `linux` runs real MooseFS daemons and moves a real VIP;
        /// `dry-run` only logs what the agents would do.
        #[arg(long, default_value = "linux", value_parser = ["linux", "dry-run"])]
        host: String,
        #[arg(long, default_value = mooseherd::lab::DEFAULT_DIR)]
        dir: PathBuf,
    },
    /// One line per node: agent, role, epoch, leader, VIP, members alive.
    Status {
        #[arg(long, default_value = mooseherd::lab::DEFAULT_DIR)]
        dir: PathBuf,
    },
    /// Hold a node's (simulated) front-panel button: under 3 s blinks the node number, 3 s
    /// switches the master over (on the leader), 10 s toggles maintenance.
    Button {
        node: String,
        /// How long to hold it, in seconds.
        #[arg(long, default_value_t = 0.3)]
        hold: f64,
        #[arg(long, default_value = mooseherd::lab::DEFAULT_DIR)]
        dir: PathBuf,
    },
    /// Run a command in a node's network namespace: `mooseherd lab exec pi1 -- mfscli -SIN`.
    Exec {
        node: String,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Run a failover drill on the lab's leader, with a writer (numbered fsync'd files through
    /// pi4's mfsmount), a verifier, a split-brain monitor and a timeline. Works on either lab
    /// (`lab up` or `lab baseline up`).
    ///
    /// kill-leader: SIGKILL every process of the leader's node. crash-mfsmaster: SIGKILL its
    /// mfsmaster only. freeze-leader: SIGSTOP the agent (or keepalived) and mfsmaster for 8 s.
    /// partition-leader: its switch port leaves the bridge for 10 s (link stays up).
    /// flap: its link goes down 2 s / up 2 s, 4 times. lossy: 20 % of the packets leaving every
    /// node dropped for 20 s (must cause no failover). starve: the agent (or keepalived) gets 3 %
    /// of a CPU for 20 s (no false failover). switchover: `mooseherd switchover` (or stopping
    /// keepalived on the master).
    ///
    /// Exit status 1 when a write was lost, the rack had split-brain time, no write came within
    /// 90 s, or a drill without a node failure failed over.
    Drill {
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(mooseherd::lab::drill::DRILLS))]
        name: String,
        /// Print one JSON object: drill, first_write_ms, max_gap_ms, lost, split_brain_s, failovers, timeline.
        #[arg(long)]
        json: bool,
        /// Also draw the timeline (VIP, masters, write latency) as an SVG picture here.
        #[arg(long)]
        chart: Option<PathBuf>,
        #[arg(long, default_value = mooseherd::lab::DEFAULT_DIR)]
        dir: PathBuf,
    },
    /// The keepalived recipe mooseherd is measured against, on the same lab.
    #[command(subcommand)]
    Baseline(BaselineCommand),
    /// Stop everything the lab started and delete its namespaces and files.
    Down {
        /// Keep the lab directory (logs, data).
        #[arg(long)]
        keep: bool,
        #[arg(long, default_value = mooseherd::lab::DEFAULT_DIR)]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum BaselineCommand {
    /// A lab rack run by keepalived instead of mooseherd: keepalived 2.2 on pi1 and pi2
    /// (default VRRP timers, nopreempt, a vrrp_script checking mfsmaster) whose notify scripts
    /// start or stop mfsmaster on the shared directory; chunkservers on pi1-pi3 and mfsmount on
    /// pi3-pi5 pointed at the VIP. `lab status`, `lab drill` and `lab down` work on it.
    Up {
        #[arg(long, default_value_t = 5)]
        nodes: usize,
        #[arg(long, default_value = mooseherd::lab::DEFAULT_DIR)]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum LedsCommand {
    /// Draw the LED patterns (lamp test, node number, every rack state) as one SVG picture:
    /// three rows per state (green, amber, red), four seconds left to right.
    Render {
        /// Write the SVG here instead of to standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
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
struct FailoverBenchArgs {
    /// Runs of each drill on each system.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Runs of kill-leader and partition-leader (default: --runs).
    #[arg(long)]
    runs_leader_lost: Option<usize>,
    /// Drills to run, comma-separated (default: all).
    #[arg(long, value_delimiter = ',', default_values_t = mooseherd::lab::drill::DRILLS.iter().map(|d| d.to_string()))]
    drills: Vec<String>,
    /// Systems, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = ["mooseherd".to_string(), "keepalived".to_string()])]
    systems: Vec<String>,
    /// Directory for the timeline charts (failover-SYSTEM-DRILL.svg).
    #[arg(long, default_value = "target/bench")]
    charts: PathBuf,
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
struct ProvisionBenchArgs {
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
struct ProvisionerArgs {
    /// kubeconfig of the provisioner's ServiceAccount (deploy/kubeconfig.sh writes one).
    #[arg(long, default_value = mooseherd::provisioner::DEFAULT_KUBECONFIG)]
    kubeconfig: PathBuf,
    /// Where volumes are created on this host: a directory on the MooseFS mount.
    #[arg(long)]
    root: PathBuf,
    /// The same directory as pods on the workers see it (default: ROOT).
    #[arg(long)]
    host_root: Option<PathBuf>,
    /// The provisioner name StorageClasses give.
    #[arg(long, default_value = mooseherd::provisioner::DEFAULT_NAME)]
    name: String,
}

#[derive(Debug, Args)]
struct FootprintBenchArgs {
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
struct GossipBenchArgs {
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

#[derive(Debug, Args)]
struct AgentArgs {
    /// This node's name in the rack file (default: the host name).
    #[arg(long)]
    node: Option<String>,
    /// Control socket (default: the rack file's `control_socket`).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// State directory (default: the rack file's `state_dir`).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// `linux` drives the real host (VIP, MooseFS daemons, mounts); `dry-run` only logs what it
    /// would do.
    #[arg(long, default_value = "linux", value_parser = ["linux", "dry-run"])]
    host: String,
    /// Status LEDs and button: `auto` (the board's GPIO chip if present, else the on-board LEDs
    /// under /sys/class/leds, else none), `gpiocdev` (Pi 5, any recent kernel), `rppal` (Pi 3/4
    /// through /dev/gpiomem), `sysfs` (on-board ACT/PWR only), `none`, or `sim:DIR` (records the
    /// LEDs in DIR/leds.jsonl and reads the button from DIR/button; the lab uses it). When the
    /// backend cannot be opened the agent logs why and runs without LEDs.
    #[arg(long, default_value = "auto", value_name = "BACKEND")]
    gpio: mooseherd::host::gpio::GpioSpec,
}

#[derive(Debug, Args)]
struct SocketArgs {
    /// The agent's control socket (default: the rack file's `control_socket`, or
    /// /run/mooseherd/control when the rack file cannot be read).
    #[arg(long)]
    socket: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct StatusArgs {
    #[command(flatten)]
    socket: SocketArgs,
    /// Print the agent's full status as JSON.
    #[arg(long)]
    json: bool,
    /// Redraw every SECONDS (default 1) until interrupted.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "1")]
    watch: Option<f64>,
    /// Colour the LEDs column: `auto` (when standard output is a terminal), `always`, `never`.
    #[arg(long, default_value = "auto", value_parser = ["auto", "always", "never"])]
    color: String,
}

#[derive(Debug, Args)]
struct SwitchoverArgs {
    #[command(flatten)]
    socket: SocketArgs,
    /// The master candidate to hand over to (default: the best standby).
    #[arg(long)]
    to: Option<String>,
}

#[derive(Debug, Args)]
struct MaintenanceArgs {
    #[command(flatten)]
    socket: SocketArgs,
    /// `on` or `off`.
    #[arg(value_parser = ["on", "off"])]
    state: String,
}

#[derive(Debug, Subcommand)]
enum DrbdCommand {
    /// Print the DRBD resource file for this rack (`/etc/drbd.d/<resource>.res`); the agent
    /// writes the same file.
    ResourceFile,
    /// DRBD's fence-peer handler (the resource file names it). Asks the local agent whether this
    /// node holds the lease: yes -> exit 7 (the peer is fenced by the lease; DRBD outdates it and
    /// resumes IO), no or no answer -> exit 1 (DRBD keeps IO frozen and does not promote).
    FencePeer(DrbdHandlerArgs),
    /// DRBD's after-resync-target (8.4) / unfence-peer (9) handler: mooseherd sets no fencing
    /// constraints outside DRBD, so it only logs and exits 0.
    UnfencePeer(DrbdHandlerArgs),
}

#[derive(Debug, Args)]
struct DrbdHandlerArgs {
    #[command(flatten)]
    socket: SocketArgs,
}

#[derive(Debug, Args)]
struct FirstbootArgs {
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

#[derive(Debug, Args)]
struct KeygenArgs {
    /// The keyring file (default: /etc/mooseherd/keyring).
    #[arg(default_value = mooseherd::wire::keyring::DEFAULT_KEYRING_PATH)]
    path: PathBuf,
    /// Append a new key that opens frames but does not seal yet (rotation step 1).
    #[arg(long, conflicts_with_all = ["promote", "remove"])]
    add: bool,
    /// Make key ID the sealing key (rotation step 2).
    #[arg(long, value_name = "ID", conflicts_with = "remove")]
    promote: Option<u8>,
    /// Remove key ID (rotation step 3; the last key cannot be removed).
    #[arg(long, value_name = "ID")]
    remove: Option<u8>,
}

#[derive(Debug, Args)]
struct SimArgs {
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
enum ScenarioArg {
    Harsh,
    Lossy,
    Crashes,
    Switchover,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum UnsafeArg {
    /// The holder believes in its lease for the full duration from when it heard the majority.
    NoDriftMargin,
    /// A restarted voter grants at once, forgetting promises made before the crash.
    NoRestartWait,
}

#[derive(Debug, Args)]
struct CheckConfigArgs {
    /// Rack file to check (defaults to --config).
    file: Option<PathBuf>,
    /// Skip checks that need the Pi itself (keyring present and private): for editing the rack
    /// file on a workstation before copying it to the boot partition.
    #[arg(long)]
    no_host_checks: bool,
    /// Print the validated rack (or the diagnostics) as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct BoardsArgs {
    /// Show this board's pins instead of listing all boards.
    name: Option<String>,
    /// Directory of extra or replacement board files.
    #[arg(long, default_value = config::board::DEFAULT_OVERRIDE_DIR)]
    boards_dir: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn version_line() -> &'static str {
    concat!(
        env!("CARGO_PKG_VERSION"),
        " (",
        env!("MOOSEHERD_GIT_COMMIT"),
        ", ",
        env!("MOOSEHERD_TARGET"),
        ")"
    )
}

fn init_logging(cli: &Cli) {
    let level = match (cli.verbose, cli.quiet) {
        (0, 0) => "info",
        (1, _) => "debug",
        (v, _) if v >= 2 => "trace",
        (_, 1) => "warn",
        _ => "error",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MOOSEHERD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> ExitCode {
    // `mooseherd status | head` must end quietly, like any Unix tool, not panic on EPIPE.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread exists.
    unsafe {
        let _ = nix::sys::signal::signal(
            nix::sys::signal::Signal::SIGPIPE,
            nix::sys::signal::SigHandler::SigDfl,
        );
    }
    let cli = Cli::parse();
    init_logging(&cli);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mooseherd: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::CheckConfig(args) => {
            let file = args.file.unwrap_or(cli.config);
            check_config(&file, args.no_host_checks, args.json)
        }
        Command::Boards(args) => boards(&args),
        Command::Sim(args) => sim(&args),
        Command::Bench(BenchCommand::Gossip(args)) => bench_gossip(&args),
        Command::Bench(BenchCommand::Provision(args)) => bench_provision(&args),
        Command::Provisioner(args) => provisioner(args),
        Command::Bench(BenchCommand::Footprint(a)) => {
            use mooseherd::bench::footprint::{FootprintOptions, footprint, table};
            if !(1..=3600).contains(&a.duration_s) {
                anyhow::bail!("--duration-s {}: give 1 to 3600 seconds", a.duration_s);
            }
            let report = footprint(&FootprintOptions {
                duration: std::time::Duration::from_secs(a.duration_s),
                nodes: a.nodes,
                aarch64: a.aarch64.clone(),
                ..FootprintOptions::default()
            })?;
            emit_report(&report, a.out.as_deref(), a.json, || {
                print!("{}", table(&report))
            })
        }
        Command::Lab(cmd) => lab(cmd),
        Command::Bench(BenchCommand::Failover(a)) => {
            use mooseherd::bench::failover::{FailoverOptions, failover, table};
            if a.runs == 0 || a.runs > 1000 {
                anyhow::bail!("--runs {}: give 1 to 1000", a.runs);
            }
            let report = failover(&FailoverOptions {
                dir: a.dir.clone(),
                runs: a.runs,
                runs_leader_lost: a.runs_leader_lost,
                drills: a.drills.clone(),
                systems: a.systems.clone(),
                charts: Some(a.charts.clone()),
            })?;
            emit_report(&report, a.out.as_deref(), a.json, || {
                print!("{}", table(&report))
            })
        }
        Command::Agent(args) => {
            mooseherd::runtime::run(mooseherd::runtime::AgentOptions {
                config: cli.config,
                node: args.node,
                socket: args.socket,
                state_dir: args.state_dir,
                host: args.host,
                gpio: args.gpio,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status(args) => status(&cli.config, &args),
        Command::Switchover(args) => {
            let req = Request::Switchover {
                to: args.to.clone(),
            };
            control_call(&cli.config, &args.socket, &req)
        }
        Command::Maintenance(args) => {
            let req = Request::Maintenance {
                on: args.state == "on",
            };
            control_call(&cli.config, &args.socket, &req)
        }
        Command::Keygen(args) => keygen(&args),
        Command::Firstboot(args) => firstboot(&args),
        Command::Drbd(cmd) => drbd(&cli.config, &cmd),
        Command::Leds(LedsCommand::Render { out }) => {
            let svg = mooseherd::core::leds::render_svg();
            match out {
                Some(p) => {
                    std::fs::write(&p, svg).with_context(|| format!("writing {}", p.display()))?
                }
                None => print!("{svg}"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Version => {
            println!("mooseherd {}", version_line());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn drbd(config: &std::path::Path, cmd: &DrbdCommand) -> anyhow::Result<ExitCode> {
    use mooseherd::host::drbd;
    // DRBD passes the resource and peer in the environment (drbd.conf(5), "handlers").
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| "?".into());
    match cmd {
        DrbdCommand::ResourceFile => {
            let (rack, _) = Rack::load(config, HostChecks::NONE)?;
            print!("{}", drbd::resource_file(&rack)?);
            Ok(ExitCode::SUCCESS)
        }
        DrbdCommand::FencePeer(args) => {
            let view = match call(&socket_path(config, &args.socket), &Request::Status) {
                Ok(resp) => resp
                    .status
                    .map_or(drbd::LeaseView::Unknown, |s| drbd::lease_view(&s.agent)),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "fence-peer: cannot ask the agent");
                    drbd::LeaseView::Unknown
                }
            };
            let answer = drbd::fence_peer_decision(view);
            let line = format!(
                "mooseherd drbd fence-peer: resource {} peer {}: exit {}: {}",
                env("DRBD_RESOURCE"),
                env("DRBD_PEER_ADDRESS"),
                answer.exit_code,
                answer.reason
            );
            eprintln!("{line}");
            // DRBD 8.4 logs only the exit code and drops the handler's output: the reason goes
            // to the kernel log beside DRBD's own lines (best effort).
            if let Ok(mut kmsg) = std::fs::OpenOptions::new().write(true).open("/dev/kmsg") {
                use std::io::Write as _;
                let _ = writeln!(kmsg, "{line}");
            }
            tracing::info!(
                resource = %env("DRBD_RESOURCE"),
                exit_code = answer.exit_code,
                reason = %answer.reason,
                "fence-peer"
            );
            Ok(ExitCode::from(u8::try_from(answer.exit_code).unwrap_or(1)))
        }
        DrbdCommand::UnfencePeer(_) => {
            eprintln!(
                "mooseherd drbd unfence-peer: resource {}: nothing to remove",
                env("DRBD_RESOURCE")
            );
            Ok(ExitCode::from(
                u8::try_from(drbd::UNFENCE_PEER_EXIT).unwrap_or(0),
            ))
        }
    }
}

fn firstboot(args: &FirstbootArgs) -> anyhow::Result<ExitCode> {
    use mooseherd::firstboot::{LocalFacts, apply};
    let live = args.root == std::path::Path::new("/");
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

fn check_config(file: &std::path::Path, no_host: bool, json: bool) -> anyhow::Result<ExitCode> {
    let host = if no_host {
        HostChecks::NONE
    } else {
        HostChecks::ALL
    };
    match Rack::load(file, host) {
        Ok((rack, warnings)) => {
            if json {
                let v = serde_json::json!({"valid": true, "rack": rack, "diagnostics": warnings});
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for w in &warnings {
                    println!("{w}");
                }
                print_summary(&rack);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(config::ConfigError::Invalid(diags)) => {
            if json {
                let v = serde_json::json!({"valid": false, "diagnostics": diags});
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for d in &diags {
                    println!("{d}");
                }
                let errors = diags
                    .iter()
                    .filter(|d| d.severity == Severity::Error)
                    .count();
                eprintln!(
                    "{}: {errors} error(s); the rack file is not valid",
                    file.display()
                );
            }
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e).context("check-config"),
    }
}

fn print_summary(rack: &Rack) {
    let c = &rack.cluster;
    println!(
        "{}: rack `{}` is valid: {} nodes, {} voters (quorum {}), VIP {} on {}, replication {}",
        rack.source.display(),
        c.name,
        rack.nodes.len(),
        rack.voters().count(),
        rack.quorum(),
        c.vip,
        c.interface,
        c.replication.as_str()
    );
    println!(
        "  lease {} ms (renewed every {} ms), fencing budget {} ms, drift bound {} ppm, gossip on UDP {}",
        c.lease_ms,
        c.lease_ms / 3,
        c.fence_budget_ms,
        c.max_drift_ppm,
        c.gossip_port
    );
    println!(
        "  {:<12} {:<16} {:<28} {:<6} {:<6} {:>4}",
        "NODE", "ADDR", "ROLES", "BOARD", "VOTER", "PRIO"
    );
    for n in &rack.nodes {
        let roles: Vec<&str> = n.roles.iter().map(|r| r.as_str()).collect();
        println!(
            "  {:<12} {:<16} {:<28} {:<6} {:<6} {:>4}",
            n.name,
            n.addr.to_string(),
            roles.join(","),
            n.board,
            if n.voter { "yes" } else { "-" },
            if n.has(Role::Master) {
                n.priority.to_string()
            } else {
                "-".into()
            }
        );
    }
}

fn boards(args: &BoardsArgs) -> anyhow::Result<ExitCode> {
    let cat = Catalog::load(Some(&args.boards_dir)).context("loading boards")?;
    match &args.name {
        None => {
            if args.json {
                let all: Vec<_> = cat.iter().collect();
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                println!("{:<6} {:<34} {:<18} SOURCE", "BOARD", "MODEL", "GPIO CHIP");
                for b in cat.iter() {
                    println!(
                        "{:<6} {:<34} {:<18} {}",
                        b.name, b.model, b.gpio_chip, b.source
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(name) => {
            let Some(b) = cat.get(name) else {
                anyhow::bail!(
                    "no board named `{name}` (known: {})",
                    cat.names().join(", ")
                );
            };
            if args.json {
                println!("{}", serde_json::to_string_pretty(b)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{} — {} ({})", b.name, b.model, b.source);
            println!(
                "  gpio chip      {} ({} header lines)",
                b.gpio_chip, b.header_lines
            );
            for (label, led) in [
                ("green LED", b.green),
                ("amber LED", b.amber),
                ("red LED", b.red),
            ] {
                match led {
                    Some(l) => println!(
                        "  {label:<14} GPIO{}{}",
                        l.pin,
                        if l.active_low { " (active-low)" } else { "" }
                    ),
                    None => println!("  {label:<14} none"),
                }
            }
            match b.button {
                Some(p) => println!(
                    "  button         GPIO{}{}{}",
                    p.pin,
                    if p.active_low { " (active-low)" } else { "" },
                    if p.pull_up { " with pull-up" } else { "" }
                ),
                None => println!("  button         none"),
            }
            println!(
                "  on-board LEDs  act={} pwr={}",
                b.onboard.act.as_deref().unwrap_or("-"),
                b.onboard.pwr.as_deref().unwrap_or("-")
            );
            println!("  reserved pins  {:?}", b.reserved);
            println!("  watchdog max   {} s", b.watchdog_max_s);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn sim(args: &SimArgs) -> anyhow::Result<ExitCode> {
    use mooseherd::core::lease::UnsafeVariant;
    use mooseherd::proof::lease::{RackShape, Scenario, run_many};
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
    let mut replay = format!(
        "mooseherd sim --seed {{seed}} --schedules 1 --duration {}",
        args.duration
    );
    match args.scenario {
        ScenarioArg::Harsh => {}
        ScenarioArg::Lossy => replay.push_str(" --scenario lossy"),
        ScenarioArg::Crashes => replay.push_str(" --scenario crashes"),
        ScenarioArg::Switchover => replay.push_str(" --scenario switchover"),
    }
    if let Some(v) = args.unsafe_variant {
        replay.push_str(match v {
            UnsafeArg::NoDriftMargin => " --unsafe-variant no-drift-margin",
            UnsafeArg::NoRestartWait => " --unsafe-variant no-restart-wait",
        });
    }
    let started = std::time::Instant::now();
    let shape = RackShape::five(variant);
    let summary = run_many(
        args.seed,
        args.schedules,
        scenario,
        &shape,
        std::time::Duration::from_secs(args.duration),
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
    // In the lossy scenario nothing fails: any election after the first is a false failover,
    // which the product promises not to have.
    Ok(if summary.violations == 0 && summary.false_failovers == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn socket_path(config: &std::path::Path, s: &SocketArgs) -> PathBuf {
    if let Some(p) = &s.socket {
        return p.clone();
    }
    match Rack::load(config, HostChecks::NONE) {
        Ok((rack, _)) => rack.cluster.control_socket,
        Err(_) => PathBuf::from("/run/mooseherd/control"),
    }
}

fn call(path: &PathBuf, req: &Request) -> anyhow::Result<Response> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(control::call(path, req))
}

fn control_call(
    config: &std::path::Path,
    s: &SocketArgs,
    req: &Request,
) -> anyhow::Result<ExitCode> {
    let resp = call(&socket_path(config, s), req)?;
    match (resp.ok, resp.message, resp.error) {
        (true, m, _) => {
            println!("{}", m.unwrap_or_else(|| "ok".into()));
            Ok(ExitCode::SUCCESS)
        }
        (false, _, e) => {
            eprintln!(
                "mooseherd: {}",
                e.unwrap_or_else(|| "the agent refused".into())
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

fn status(config: &std::path::Path, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let path = socket_path(config, &args.socket);
    let colour = match args.color.as_str() {
        "always" => true,
        "never" => false,
        _ => std::io::stdout().is_terminal(),
    };
    let interval = match args.watch {
        Some(s) if !(0.1..=3600.0).contains(&s) => {
            anyhow::bail!("--watch {s}: give an interval between 0.1 and 3600 seconds")
        }
        Some(s) => Some(std::time::Duration::from_secs_f64(s)),
        None => None,
    };
    loop {
        let text = match call(&path, &Request::Status) {
            Ok(resp) => match resp.status {
                Some(report) if args.json => serde_json::to_string_pretty(&report)? + "\n",
                Some(report) => render_status(&report, colour),
                None => {
                    let e = resp
                        .error
                        .unwrap_or_else(|| "the agent sent no status".into());
                    if interval.is_none() {
                        anyhow::bail!("{e}");
                    }
                    format!("mooseherd: {e}\n")
                }
            },
            Err(e) if interval.is_none() => return Err(e),
            Err(e) => format!("mooseherd: {e:#}\n"),
        };
        let Some(every) = interval else {
            print!("{text}");
            return Ok(ExitCode::SUCCESS);
        };
        // Clear the screen and redraw (Ctrl-C ends it).
        print!("\x1b[H\x1b[2J{text}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        std::thread::sleep(every);
    }
}

/// The LEDs of a node as three symbols (● steady, ◉ double blink, ◐ slow, ✱ fast, · off),
/// coloured with ANSI escapes when `colour`.
fn render_leds(p: &mooseherd::core::leds::Pattern, colour: bool) -> String {
    use mooseherd::core::leds::Blink;
    let mut out = String::new();
    for (b, code) in [(p.green, "32"), (p.amber, "33"), (p.red, "31")] {
        let sym = match b {
            Blink::Off => "·",
            Blink::Steady => "●",
            Blink::DoubleBlink => "◉",
            Blink::Slow => "◐",
            Blink::Fast => "✱",
        };
        if colour && b != Blink::Off {
            out.push_str(&format!("\x1b[1;{code}m{sym}\x1b[0m"));
        } else {
            out.push_str(sym);
        }
    }
    out
}

fn render_status(r: &StatusReport, colour: bool) -> String {
    use std::fmt::Write;
    let name = |id: mooseherd::core::NodeId| {
        r.names
            .get(usize::from(id.0))
            .cloned()
            .unwrap_or_else(|| id.to_string())
    };
    let a = &r.agent;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "rack `{}` as seen from {} (host driver: {}, up {} s, mooseherd {})",
        r.rack, r.node, r.host, r.uptime_s, r.version
    );
    let leader = a.leader.map(name).unwrap_or_else(|| "none".into());
    let left = a
        .lease_left_ms
        .map(|ms| format!(", lease {:.1} s left", ms as f64 / 1000.0))
        .unwrap_or_default();
    let _ = writeln!(out, "leader: {leader}, epoch {}{left}", a.epoch);
    let _ = writeln!(
        out,
        "this node: {:?}, {} ({})",
        a.role,
        if a.eligible {
            "eligible"
        } else {
            "not eligible"
        },
        a.eligibility
    );
    if let Some(l) = &r.leds {
        let _ = writeln!(
            out,
            "LEDs: {} {} (backend: {})",
            render_leds(&l.pattern, colour),
            l.indication.label(),
            l.backend
        );
    }
    let _ = writeln!(
        out,
        "{:<10} {:<8} {:>4} {:<26} {:<14} {:<10} {:<12} LEDS",
        "NODE", "STATE", "INC", "ROLES", "LEASE VIEW", "REPLICA", "HEALTH"
    );
    for m in &a.members {
        let (roles, lease, replica, health) = match &m.meta {
            Some(meta) => {
                let mut roles = Vec::new();
                for (bit, n) in [
                    (1u8, "master"),
                    (2, "chunkserver"),
                    (4, "worker"),
                    (8, "voter"),
                ] {
                    if meta.roles.0 & bit != 0 {
                        roles.push(n);
                    }
                }
                let lease = match meta.lease.holder {
                    Some(h) => format!("{} @{}", name(h), meta.lease.epoch),
                    None => format!("- @{}", meta.lease.epoch),
                };
                let health = if meta.health.0 == 0 {
                    "ok".to_string()
                } else {
                    format!("flags {:#x}", meta.health.0)
                };
                (
                    roles.join(","),
                    lease,
                    format!("{:?}", meta.replica.state).to_lowercase(),
                    health,
                )
            }
            None => ("?".into(), "?".into(), "?".into(), "?".into()),
        };
        let me = if name(m.id) == r.node { "*" } else { "" };
        // This node's LEDs exactly; the others' judged from their gossip (their own view of the
        // rack is not gossiped).
        let leds = match &r.leds {
            Some(l) if m.id == a.node => {
                format!(
                    "{} {}",
                    render_leds(&l.pattern, colour),
                    l.indication.label()
                )
            }
            Some(l) => {
                use mooseherd::core::leds::{RackView, parse_member_state};
                match parse_member_state(&m.state).and_then(|st| {
                    RackView::of_member(st, m.meta.as_ref(), &l.view, a.leader, m.id)
                }) {
                    Some(v) => format!(
                        "{} {}",
                        render_leds(&v.pattern(), colour),
                        v.indication().label()
                    ),
                    None => "··· unknown".into(),
                }
            }
            None => "-".into(),
        };
        let _ = writeln!(
            out,
            "{:<10} {:<8} {:>4} {:<26} {:<14} {:<10} {:<12} {leds}",
            format!("{}{me}", name(m.id)),
            m.state,
            m.incarnation,
            roles,
            lease,
            replica,
            health
        );
    }
    let w = &r.wire;
    let _ = writeln!(
        out,
        "frames: {} sealed, {} delivered, {} rejected ({})",
        w.sealed,
        w.delivered,
        w.rejects.total(),
        serde_json::to_value(w.rejects)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .map(|o| o
                .into_iter()
                .filter(|(_, v)| v.as_u64().unwrap_or(0) > 0)
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "none".into())
    );
    out
}

fn keygen(args: &KeygenArgs) -> anyhow::Result<ExitCode> {
    use mooseherd::wire::keyring;
    let p = &args.path;
    if args.add {
        let id = keyring::add_key(p).map_err(|e| anyhow::anyhow!("{e}"))?;
        println!(
            "{}: added key {id} (opens frames; still sealing with the old key). Next, on every node: mooseherd keygen {} --promote {id}",
            p.display(),
            p.display()
        );
    } else if let Some(id) = args.promote {
        keyring::promote_key(p, id).map_err(|e| anyhow::anyhow!("{e}"))?;
        println!(
            "{}: key {id} now seals. When every node seals with it, remove the old key with --remove",
            p.display()
        );
    } else if let Some(id) = args.remove {
        keyring::remove_key(p, id).map_err(|e| anyhow::anyhow!("{e}"))?;
        println!("{}: removed key {id}", p.display());
    } else {
        let id = keyring::keygen(p).map_err(|e| anyhow::anyhow!("{e}"))?;
        println!(
            "{}: new keyring with key {id} (mode 0600). Copy this same file to every node of the rack.",
            p.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn bench_gossip(a: &GossipBenchArgs) -> anyhow::Result<ExitCode> {
    use mooseherd::bench::gossip::{GossipBenchOptions, gossip, print_table};
    let opts = GossipBenchOptions {
        nodes: a.nodes,
        loss: a.loss,
        jitter: std::time::Duration::from_millis(a.jitter_ms),
        crashes: a.crashes,
        meta_changes: a.meta_changes,
        duration: std::time::Duration::from_secs(a.duration_s),
        seed: a.seed,
    };
    let report = gossip(&opts)?;
    emit_report(&report, a.out.as_deref(), a.json, || print_table(&report))
}

/// A benchmark's report: written as JSON to `out` if given, then printed as JSON or a table.
fn emit_report(
    report: &impl serde::Serialize,
    out: Option<&std::path::Path>,
    json: bool,
    table: impl FnOnce(),
) -> anyhow::Result<ExitCode> {
    let text = serde_json::to_string(report)?;
    if let Some(p) = out {
        std::fs::write(p, &text).with_context(|| format!("writing {}", p.display()))?;
    }
    if json {
        println!("{text}");
    } else {
        table();
    }
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

fn provisioner(a: ProvisionerArgs) -> anyhow::Result<ExitCode> {
    let root = std::path::absolute(&a.root).context("--root")?;
    let cfg = mooseherd::provisioner::ProvisionerConfig {
        name: a.name,
        kubeconfig: a.kubeconfig,
        mount: root.clone(),
        host_root: a.host_root.unwrap_or_else(|| root.clone()),
        root,
        instance: nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "provisioner".into()),
    };
    runtime()?.block_on(async {
        tokio::select! {
            () = mooseherd::provisioner::run(cfg) => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    });
    Ok(ExitCode::SUCCESS)
}

fn bench_provision(a: &ProvisionBenchArgs) -> anyhow::Result<ExitCode> {
    use mooseherd::bench::provision::{ProvisionBenchOptions, print_table, provision};
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
    let report = runtime()?.block_on(provision(&opts))?;
    drop(started);
    emit_report(&report, a.out.as_deref(), a.json, || print_table(&report))
}

fn lab(cmd: LabCommand) -> anyhow::Result<ExitCode> {
    use mooseherd::lab;
    match cmd {
        LabCommand::Up {
            nodes,
            replication,
            host,
            dir,
        } => {
            lab::up(&lab::UpOptions {
                dir,
                nodes,
                replication,
                host,
                system: lab::SYSTEM_MOOSEHERD.into(),
            })?;
        }
        LabCommand::Baseline(BaselineCommand::Up { nodes, dir }) => {
            lab::up(&lab::UpOptions {
                dir,
                nodes,
                replication: "shared-dir".into(),
                host: "linux".into(),
                system: lab::SYSTEM_KEEPALIVED.into(),
            })?;
        }
        LabCommand::Status { dir } => lab::print_status(&dir)?,
        LabCommand::Button { node, hold, dir } => {
            if !(0.0..=60.0).contains(&hold) {
                anyhow::bail!("--hold {hold}: give 0 to 60 seconds");
            }
            lab::press_button(&dir, &node, std::time::Duration::from_secs_f64(hold))?;
        }
        LabCommand::Exec { node, cmd } => {
            let code = lab::exec(&node, &cmd)?;
            return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
        }
        LabCommand::Drill {
            name,
            json,
            chart,
            dir,
        } => {
            let r = lab::drill::run(&dir, &name)?;
            if let Some(p) = &chart {
                std::fs::write(p, lab::chart::render(&r))
                    .with_context(|| format!("writing {}", p.display()))?;
            }
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                lab::drill::print(&r);
            }
            if r.lost > 0
                || r.split_brain_s > 0.0
                || r.first_write_ms.is_none()
                || r.false_failovers > 0
            {
                return Ok(ExitCode::FAILURE);
            }
        }

        LabCommand::Down { keep, dir } => lab::down(&dir, keep)?,
    }
    Ok(ExitCode::SUCCESS)
}
