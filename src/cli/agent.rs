//! `mooseherd agent`, and the commands that ask the running agent to act: `switchover` and
//! `maintenance`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use mooseherd::runtime::control::Request;

use super::SocketArgs;

#[derive(Debug, Args)]
pub struct AgentArgs {
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
pub struct SwitchoverArgs {
    #[command(flatten)]
    socket: SocketArgs,
    /// The master candidate to hand over to (default: the best standby).
    #[arg(long)]
    to: Option<String>,
}

#[derive(Debug, Args)]
pub struct MaintenanceArgs {
    #[command(flatten)]
    socket: SocketArgs,
    /// `on` or `off`.
    #[arg(value_parser = ["on", "off"])]
    state: String,
}

/// `mooseherd agent`: runs until SIGTERM.
pub fn run(config: PathBuf, args: AgentArgs) -> anyhow::Result<ExitCode> {
    mooseherd::runtime::run(mooseherd::runtime::AgentOptions {
        config,
        node: args.node,
        socket: args.socket,
        state_dir: args.state_dir,
        host: args.host,
        gpio: args.gpio,
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `mooseherd switchover`.
pub fn switchover(config: &Path, args: &SwitchoverArgs) -> anyhow::Result<ExitCode> {
    let req = Request::Switchover {
        to: args.to.clone(),
    };
    ask(config, &args.socket, &req)
}

/// `mooseherd maintenance on|off`.
pub fn maintenance(config: &Path, args: &MaintenanceArgs) -> anyhow::Result<ExitCode> {
    let req = Request::Maintenance {
        on: args.state == "on",
    };
    ask(config, &args.socket, &req)
}

/// Sends a command to the agent and prints its answer (the refusal on standard error).
fn ask(config: &Path, s: &SocketArgs, req: &Request) -> anyhow::Result<ExitCode> {
    let resp = s.call(config, req)?;
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
