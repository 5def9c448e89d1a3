//! The command groups of the `mooseherd` binary, one module each. They parse, call the library
//! and print; what a command decides (a drill's verdict, the simulator's replay line, the agent
//! itself) lives in the library next to what it judges.

pub mod agent;
pub mod bench;
pub mod config;
pub mod drbd;
pub mod firstboot;
pub mod lab;
pub mod leds;
pub mod provisioner;
pub mod sim;
pub mod status;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use mooseherd::config::{HostChecks, Rack};
use mooseherd::runtime::control::{self, Request, Response};

/// Where to reach the local agent.
#[derive(Debug, Args)]
pub struct SocketArgs {
    /// The agent's control socket (default: the rack file's `control_socket`, or
    /// /run/mooseherd/control when the rack file cannot be read).
    #[arg(long)]
    socket: Option<PathBuf>,
}

impl SocketArgs {
    /// The socket: `--socket`, else the rack file's, else the default path.
    pub fn path(&self, config: &Path) -> PathBuf {
        if let Some(p) = &self.socket {
            return p.clone();
        }
        match Rack::load(config, HostChecks::NONE) {
            Ok((rack, _)) => rack.cluster.control_socket,
            Err(_) => PathBuf::from("/run/mooseherd/control"),
        }
    }

    /// Sends `request` to the agent.
    pub fn call(&self, config: &Path, request: &Request) -> anyhow::Result<Response> {
        Ok(control::call_blocking(&self.path(config), request, None)?)
    }
}

/// A report: written as JSON to `out` if given, then printed as JSON or as `table` prints it.
pub fn emit_report(
    report: &impl serde::Serialize,
    out: Option<&Path>,
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

/// A single-threaded tokio runtime for the commands that need one.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}
