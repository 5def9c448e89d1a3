//! The `mooseherd` command: one binary for the agent and every tool around it. This file holds
//! the top-level options and the dispatch; each command group lives in `cli/`.

mod cli;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use cli::agent::{AgentArgs, MaintenanceArgs, SwitchoverArgs};
use cli::bench::BenchCommand;
use cli::config::{BoardsArgs, CheckConfigArgs, KeygenArgs};
use cli::drbd::DrbdCommand;
use cli::firstboot::FirstbootArgs;
use cli::lab::LabCommand;
use cli::leds::LedsCommand;
use cli::provisioner::ProvisionerArgs;
use cli::sim::SimArgs;
use cli::status::StatusArgs;

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
        Command::CheckConfig(args) => cli::config::check_config(cli.config, args),
        Command::Boards(args) => cli::config::boards(&args),
        Command::Keygen(args) => cli::config::keygen(&args),
        Command::Agent(args) => cli::agent::run(cli.config, args),
        Command::Status(args) => cli::status::run(&cli.config, &args),
        Command::Switchover(args) => cli::agent::switchover(&cli.config, &args),
        Command::Maintenance(args) => cli::agent::maintenance(&cli.config, &args),
        Command::Firstboot(args) => cli::firstboot::run(&args),
        Command::Drbd(cmd) => cli::drbd::run(&cli.config, &cmd),
        Command::Lab(cmd) => cli::lab::run(cmd),
        Command::Bench(cmd) => cli::bench::run(cmd),
        Command::Provisioner(args) => cli::provisioner::run(args),
        Command::Leds(cmd) => cli::leds::run(cmd),
        Command::Sim(args) => cli::sim::run(&args),
        Command::Version => {
            println!("mooseherd {}", version_line());
            Ok(ExitCode::SUCCESS)
        }
    }
}
