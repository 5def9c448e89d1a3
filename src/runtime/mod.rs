//! The runtime: the tokio loop that connects the agent core to the world. It owns the UDP socket
//! (gossip and lease frames, sealed by [`crate::wire`]), the timers, the control socket, the host
//! driver and the durable state file. It decides nothing: every decision is the core's.
//!
//! Loop invariants:
//! - durable lease state is written (fsync) before any frame polled after a change is sent;
//! - host actions run one at a time, in the plan's order;
//! - on SIGTERM (SIGINT, SIGQUIT) a leader steps down and fences before the process exits
//!   (bounded by the lease); SIGHUP re-reads the keyring; no other catchable signal ends the
//!   agent (see [`signals`]).

mod agent_loop;
pub mod control;
mod keyring_reload;
pub mod metrics;
pub mod panel;
mod signals;
pub mod spec;
pub mod state;
pub mod sync_limit;
pub mod watchdog;

use std::path::PathBuf;

use anyhow::{Context, bail};
use tracing::warn;

use crate::config::{HostChecks, Rack};
use crate::host::Host;
use crate::host::dry_run::DryRunHost;
use agent_loop::AgentLoop;

/// How the agent is started.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    pub config: PathBuf,
    /// This node's name; default: the host name.
    pub node: Option<String>,
    /// Control socket; default: the rack file's `control_socket`.
    pub socket: Option<PathBuf>,
    /// State directory; default: the rack file's `state_dir`.
    pub state_dir: Option<PathBuf>,
    /// Host driver: `linux` or `dry-run`.
    pub host: String,
    /// Status LEDs and button backend (`auto`, `none`, `gpiocdev`, `rppal`, `sysfs`, `sim:DIR`).
    pub gpio: crate::host::gpio::GpioSpec,
}

/// Runs the agent until SIGTERM/SIGINT/SIGQUIT (then fences if it leads, and exits).
pub fn run(opts: AgentOptions) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    rt.block_on(run_async(opts))
}

fn pick_node<'r>(rack: &'r Rack, name: Option<&str>) -> anyhow::Result<&'r crate::config::Node> {
    let name = match name {
        Some(n) => n.to_string(),
        None => nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default(),
    };
    rack.node_by_name(&name).with_context(|| {
        let names: Vec<&str> = rack.nodes.iter().map(|n| n.name.as_str()).collect();
        format!(
            "node `{name}` is not in {} (nodes: {}); give --node NAME",
            rack.source.display(),
            names.join(", ")
        )
    })
}

async fn run_async(opts: AgentOptions) -> anyhow::Result<()> {
    // First of all: from here on no signal kills the agent without fencing.
    let mut signals = signals::Signals::install()?;
    let (rack, node) = load_rack(&opts)?;
    let span = tracing::info_span!("agent", node = %node.name);
    let _enter = span.enter();
    let (mut lp, mut inputs) = AgentLoop::start(&opts, rack, node).await?;
    let mut buf = vec![0u8; 2048];
    loop {
        if lp.drive().await?.is_break() {
            return Ok(());
        }
        let deadline = lp.deadline();
        let panel_wake = lp.panel_wake();
        let fast_observe = lp.wants_fast_observe();
        tokio::select! {
            r = lp.recv(&mut buf) => {
                let Ok((len, from)) = r else { continue };
                lp.on_frame(&buf[..len], from).await;
            }
            _ = tokio::time::sleep_until(deadline) => lp.on_timeout(),
            _ = tokio::time::sleep_until(panel_wake.unwrap_or(deadline)), if panel_wake.is_some() => {}
            Some(p) = inputs.control.recv() => lp.on_control(p),
            Some(reply) = inputs.host.recv() => lp.on_host_reply(reply),
            _ = inputs.start_tick.tick(), if fast_observe => lp.on_start_tick(),
            _ = inputs.health_tick.tick() => lp.on_health_tick(),
            _ = tick(&mut inputs.watchdog), if inputs.watchdog.is_some() => lp.on_watchdog_tick(),
            asked = signals.next() => lp.on_signal(asked),
        }
    }
}

/// The next tick of an optional interval (never, without one).
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The rack file (its warnings logged) and this node in it.
fn load_rack(opts: &AgentOptions) -> anyhow::Result<(Rack, crate::config::Node)> {
    let (rack, warnings) =
        Rack::load(&opts.config, HostChecks::ALL).map_err(|e| anyhow::anyhow!("{e}"))?;
    for w in &warnings {
        warn!("{w}");
    }
    let node = pick_node(&rack, opts.node.as_deref())?.clone();
    Ok((rack, node))
}

/// The host driver for `--host`.
fn make_host(
    kind: &str,
    rack: &Rack,
    node: &crate::config::Node,
    state_dir: &std::path::Path,
    leadership: tokio::sync::watch::Sender<Option<u64>>,
) -> anyhow::Result<Box<dyn Host>> {
    match kind {
        "dry-run" => Ok(Box::new(DryRunHost::new())),
        "linux" => Ok(Box::new(
            crate::host::linux::LinuxHost::new(rack, node, state_dir)
                .context("setting up the host driver")?
                .with_leadership(leadership),
        )),
        other => bail!("unknown host driver `{other}` (linux or dry-run)"),
    }
}
