//! The runtime: the tokio loop that connects the agent core to the world. It owns the UDP socket
//! (gossip and lease frames, sealed by [`crate::wire`]), the timers, the control socket, the host
//! driver and the durable state file. It decides nothing: every decision is the core's.
//!
//! Loop invariants:
//! - durable lease state is written (fsync) before any frame polled after a change is sent;
//! - host actions run one at a time, in the plan's order;
//! - on SIGTERM a leader steps down and fences before the process exits (bounded by the lease).

pub mod control;
pub mod metrics;
pub mod panel;
pub mod spec;
pub mod state;
pub mod watchdog;

use std::collections::BTreeMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::config::{HostChecks, Rack};
use crate::core::agent::{Agent, AgentEvent, AgentMsg, NodeRole};
use crate::core::lease::LeaseEvent;
use crate::core::membership::MemberEvent;
use crate::core::roles::ReplicaState;
use crate::core::{Instant, Machine, NodeId};
use crate::host::dry_run::{DryRunHost, describe};
use crate::host::{Host, HostCmd, HostReply};
use crate::wire::{Endpoint, Keyring, Opened, fresh_incarnation};
use control::{Pending, Request, Response, StatusReport};

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

/// The monotonic clock the core sees: microseconds since the agent started.
struct Clock(std::time::Instant);

impl Clock {
    fn now(&self) -> Instant {
        Instant::from_micros(u64::try_from(self.0.elapsed().as_micros()).unwrap_or(u64::MAX))
    }
    fn deadline(&self, at: Instant) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.0 + Duration::from_micros(at.as_micros()))
    }
}

/// Runs the agent until SIGTERM/SIGINT (then fences if it leads, and exits).
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
    let (rack, warnings) =
        Rack::load(&opts.config, HostChecks::ALL).map_err(|e| anyhow::anyhow!("{e}"))?;
    for w in &warnings {
        warn!("{w}");
    }
    let node = pick_node(&rack, opts.node.as_deref())?.clone();
    let me = node.id;
    let span = tracing::info_span!("agent", node = %node.name);
    let _enter = span.enter();
    let names: Vec<String> = rack.nodes.iter().map(|n| n.name.clone()).collect();
    let name_of = |id: NodeId| {
        names
            .get(usize::from(id.0))
            .cloned()
            .unwrap_or_else(|| id.to_string())
    };
    let keyring = Keyring::load(&rack.cluster.keyring).map_err(|e| anyhow::anyhow!("{e}"))?;
    let state_dir = opts
        .state_dir
        .clone()
        .unwrap_or_else(|| rack.cluster.state_dir.clone());
    let (mut state, durable) = state::StateFile::open(&state_dir)?;
    let nodes = u16::try_from(rack.nodes.len()).context("too many nodes")?;
    let incarnation = fresh_incarnation().context("reading OS randomness")?;
    let mut endpoint = Endpoint::new(me, nodes, rack.fingerprint(), keyring, incarnation)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let port = rack.cluster.gossip_port;
    let addrs: BTreeMap<NodeId, SocketAddr> = rack
        .nodes
        .iter()
        .map(|n| (n.id, SocketAddr::V4(SocketAddrV4::new(n.addr, port))))
        .collect();
    let bind = SocketAddr::V4(SocketAddrV4::new(node.addr, port));
    let sock = UdpSocket::bind(bind).await.with_context(|| {
        format!(
            "binding UDP {bind} for node `{}`: is this machine {}? (give --node)",
            node.name, node.addr
        )
    })?;
    let socket_path = opts
        .socket
        .clone()
        .unwrap_or_else(|| rack.cluster.control_socket.clone());
    let listener = control::bind(&socket_path).await?;
    let (ctl_tx, mut ctl_rx) = mpsc::channel::<Pending>(16);
    tokio::spawn(control::serve(listener, ctl_tx));

    let clock = Clock(std::time::Instant::now());
    // Host drivers block (and some run a small runtime of their own): build the host and take its
    // first reading off the async runtime.
    let now = clock.now();
    // The PVC provisioner runs here on the runtime, while the host thread (which carries out
    // StartProvisioner / StopProvisioner) says this node leads.
    let (leadership, leadership_rx) = tokio::sync::watch::channel(None);
    if rack.provisioner.enabled {
        let p = &rack.provisioner;
        tokio::spawn(crate::provisioner::run_while_leader(
            leadership_rx,
            crate::provisioner::ProvisionerConfig {
                name: p.name.clone(),
                kubeconfig: p.kubeconfig.clone(),
                mount: node.mount_path.clone(),
                root: node.mount_path.join(&p.root),
                host_root: rack.cluster.mount_path.join(&p.root),
                instance: node.name.clone(),
            },
        ));
    }
    let (kind, r2, n2, s2) = (
        opts.host.clone(),
        rack.clone(),
        node.clone(),
        state_dir.clone(),
    );
    let (host, observed) = std::thread::spawn(
        move || -> anyhow::Result<(Box<dyn Host>, crate::core::plan::Observed)> {
            let mut host = make_host(&kind, &r2, &n2, &s2, leadership)?;
            let observed = host.observe(now);
            Ok((host, observed))
        },
    )
    .join()
    .map_err(|_| anyhow::anyhow!("the host driver panicked while starting"))??;
    let host_name = host.name();
    if host_name == "dry-run" {
        warn!("host driver: dry-run: actions are logged, not performed");
    }
    let (host_tx, mut host_rx) = crate::host::spawn(host);
    let mut host_busy = false;
    let seed = incarnation ^ u64::from(me.0);
    let mut agent = Agent::new(spec::agent_spec(&rack, me), durable, observed, seed, now);
    let mut maintenance = false;
    // Status LEDs and button (#9): a missing chip or busy pin leaves the agent running without.
    let board = crate::config::Catalog::load(Some(&rack.cluster.boards_dir))
        .ok()
        .and_then(|c| c.get(&node.board).cloned());
    let voters: Vec<NodeId> = rack.voters().map(|n| n.id).collect();
    let mut panel = panel::PanelDriver::open(&opts.gpio, board.as_ref(), me, voters, now);
    let mut action_failures = 0u32;
    // Prometheus endpoint (#9): a port that cannot be bound is logged, the agent runs on.
    let mut metrics = metrics::Metrics::new(&node.name, metrics::count_start(&state_dir));
    if let Some(addr) = node.metrics_listen {
        match metrics::bind(addr).await {
            Ok(l) => {
                info!("metrics on http://{addr}/metrics");
                tokio::spawn(metrics::serve(l, metrics.registry()));
            }
            Err(e) => warn!(
                "metrics endpoint disabled: cannot listen on {addr}: {e} (set metrics_listen in the rack file, or \"off\")"
            ),
        }
    }
    let mut action_started: Option<(crate::core::plan::Action, std::time::Instant)> = None;
    // Not eligible until the host has read the replica (the first health tick, at once).
    let mut replica = ReplicaState::Unknown;
    agent.set_health(now, crate::host::sys::read_health(maintenance), replica, 0);
    info!(
        node = %node.name, id = me.0, addr = %bind, voters = rack.voters().count(), epoch = durable.highest(),
        "agent started (rack `{}`, {} nodes, lease {} ms)", rack.cluster.name, nodes, rack.cluster.lease_ms
    );

    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("SIGTERM handler")?;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("SIGINT handler")?;
    let watchdog = sd_notify::watchdog_enabled().map(|d| d / 2);
    let mut watchdog_tick = tokio::time::interval(watchdog.unwrap_or(Duration::from_secs(3600)));
    // Pings only while the loop and the host thread are healthy (#9).
    let mut loop_health = watchdog::LoopHealth::default();
    let mut unhealthy: Option<String> = None;
    // Health and host readings: often enough to notice a dead daemon or mount within a second.
    let mut health_tick = tokio::time::interval(Duration::from_secs(1));
    // While an mfsmaster is starting, the host is read every 100 ms: the VIP goes up as soon
    // as the master accepts connections, not at the next health tick (up to a second later).
    // While leading, every 300 ms: a crashed mfsmaster is restarted within that (measured: with
    // the 1 s tick, clients waited ~3 s after a crash, their reconnect having missed the master).
    let mut start_tick = tokio::time::interval(Duration::from_millis(100));
    let mut master_starting = false;
    let mut last_observe = std::time::Instant::now();
    // Readings sent to the host thread and not yet answered.
    let mut observes_out: u32 = 0;
    // A new leader (after the first one this agent learns of) is passed to the host: a
    // worker resets its mount's connection to the old master if it is stuck.
    let mut leader_seen = agent.leader_view();

    let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
    let mut shutdown_at: Option<Instant> = None;
    let mut buf = vec![0u8; 2048];
    let mut last_status = String::new();

    loop {
        // Drive: persist, send, act, report.
        let now = clock.now();
        if let Some(g) = panel.poll_button(now) {
            panel::act(g, &mut agent, now, &mut maintenance, &name_of);
        }
        state
            .store(agent.durable())
            .context("writing lease state: refusing to send anything that depends on it")?;
        while let Some(t) = agent.poll_transmit() {
            let Some(addr) = addrs.get(&t.to) else {
                continue;
            };
            match endpoint.seal_msg(t.to, &t.msg) {
                Ok(frame) => {
                    if let Err(e) = sock.send_to(&frame, addr).await {
                        debug!("send to {}: {e}", name_of(t.to));
                    }
                }
                Err(e) => warn!("cannot seal a message for {}: {e}", name_of(t.to)),
            }
        }
        let view = agent.leader_view();
        if view.map(|v| v.1) > leader_seen.map(|v| v.1) {
            if let (Some(_), Some((l, epoch))) = (leader_seen, view) {
                let down: Vec<std::net::IpAddr> = agent
                    .status(now)
                    .members
                    .iter()
                    .filter(|m| m.state != "alive")
                    .filter_map(|m| addrs.get(&m.id).map(|a| a.ip()))
                    .collect();
                debug!(epoch, "new leader {}; members down: {down:?}", name_of(l));
                let _ = host_tx.send(HostCmd::LeaderChanged(epoch, down));
            }
            leader_seen = view;
        }
        if !host_busy && let Some(action) = agent.poll_action() {
            let epoch = agent.lease().highest_epoch();
            // A VIP refresh comes with every lease renewal: routine, so only at debug level.
            if matches!(
                action,
                crate::core::plan::Action::VipUp {
                    announce: false,
                    ..
                }
            ) {
                debug!(epoch, "{}", describe(&action));
            } else {
                info!(epoch, "{}", describe(&action));
            }
            action_started = Some((action, std::time::Instant::now()));
            loop_health.sent(std::time::Instant::now());
            if host_tx.send(HostCmd::Execute(action, clock.now())).is_err() {
                bail!("the host thread is gone");
            }
            host_busy = true;
        }
        while let Some(ev) = agent.poll_event() {
            match &ev {
                AgentEvent::Lease(LeaseEvent::Elected { .. }) => metrics.elected(),
                AgentEvent::Lease(LeaseEvent::StepDown { reason, .. }) => {
                    metrics.stepped_down(&format!("{reason:?}").to_lowercase())
                }
                _ => {}
            }
            if let AgentEvent::Lease(LeaseEvent::Standing { epoch }) = &ev {
                info!(
                    epoch,
                    "standing for election: {}",
                    agent.election_reasons(&name_of)
                );
                continue;
            }
            log_event(&ev, &name_of);
        }
        let snapshot = agent.status(now);
        panel.update(now, &snapshot, action_failures >= HOST_TROUBLE_FAILURES);
        metrics.observe(&snapshot, endpoint.stats(), now.as_micros() / 1_000_000);
        let status_line = systemd_status(&snapshot, &name_of);
        if status_line != last_status {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&status_line)]);
            last_status = status_line;
        }
        if let Some(t) = shutdown_at {
            let done = !matches!(agent.status(now).role, NodeRole::Leader | NodeRole::Fencing);
            if done || now >= t {
                info!(
                    "stopped{}",
                    if done {
                        " (fenced)"
                    } else {
                        " (fencing deadline reached)"
                    }
                );
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
                let _ = std::fs::remove_file(&socket_path);
                return Ok(());
            }
        }
        let deadline = agent
            .poll_timeout()
            .map(|t| clock.deadline(t))
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(1));
        let panel_wake = panel.next_wake(now).map(|t| clock.deadline(t));

        tokio::select! {
            r = sock.recv_from(&mut buf) => {
                let Ok((len, from_addr)) = r else { continue };
                let now = clock.now();
                match endpoint.open_msg::<AgentMsg>(&buf[..len]) {
                    Ok(Opened::Delivered { from, payload }) => agent.handle_message(now, from, payload),
                    Ok(Opened::NeedsSync { from, reply }) => {
                        if let Some(addr) = addrs.get(&from) {
                            let _ = sock.send_to(&reply, addr).await;
                        }
                    }
                    Ok(Opened::Synced { .. }) => {}
                    Err(reason) => debug!(%from_addr, ?reason, "dropped a frame"),
                }
            }
            _ = tokio::time::sleep_until(deadline) => agent.handle_timeout(clock.now()),
            _ = tokio::time::sleep_until(panel_wake.unwrap_or(deadline)), if panel_wake.is_some() => {}
            Some(p) = ctl_rx.recv() => {
                let now = clock.now();
                let response = if p.request.mutates() && p.uid != 0 && p.uid != nix::unistd::geteuid().as_raw() {
                    Response::error(format!("{:?} needs root (your uid is {})", p.request, p.uid))
                } else {
                    match &p.request {
                        Request::Status => Response {
                            ok: true, error: None, message: None,
                            status: Some(StatusReport {
                                rack: rack.cluster.name.clone(),
                                node: node.name.clone(),
                                names: names.clone(),
                                host: host_name.to_string(),
                                uptime_s: now.as_micros() / 1_000_000,
                                agent: agent.status(now),
                                wire: *endpoint.stats(),
                                version: env!("CARGO_PKG_VERSION").to_string(),
                                leds: panel.report(),
                            }),
                        },
                        Request::Switchover { to } => {
                            let target = match to {
                                Some(n) => match rack.node_by_name(n) {
                                    Some(t) if t.has(crate::config::Role::Master) => Ok(Some(t.id)),
                                    Some(_) => Err(format!("`{n}` is not a master candidate")),
                                    None => Err(format!("no node named `{n}` in the rack")),
                                },
                                None => Ok(None),
                            };
                            match target {
                                Err(e) => Response::error(e),
                                Ok(t) if agent.switchover(now, t) => {
                                    info!("switchover asked{}: stepping down and fencing", t.map(|t| format!(" to {}", name_of(t))).unwrap_or_default());
                                    Response::message(format!("{} steps down and hands over{}", node.name, t.map(|t| format!(" to {}", name_of(t))).unwrap_or_default()))
                                }
                                Ok(_) => {
                                    let leader = agent.status(now).leader.map(&name_of).unwrap_or_else(|| "unknown".into());
                                    Response::error(format!("{} is not the leader (the leader is {leader}); run switchover on the leader", node.name))
                                }
                            }
                        }
                        Request::Maintenance { on } => {
                            maintenance = *on;
                            agent.set_maintenance(now, *on);
                            info!("maintenance {}", if *on { "on: not eligible" } else { "off" });
                            Response::message(format!("{}: maintenance {}", node.name, if *on { "on" } else { "off" }))
                        }
                    }
                };
                let _ = p.reply.send(response);
            }
            Some(reply) = host_rx.recv() => {
                let now = clock.now();
                loop_health.answered();
                match reply {
                    HostReply::Done(Ok(obs)) => {
                        host_busy = false;
                        action_failures = 0;
                        if let Some((a, t)) = action_started.take() {
                            metrics.action(&a, true, t.elapsed());
                        }
                        master_starting = obs.master == crate::core::plan::MasterState::Starting;
                        agent.observe(now, obs);
                    }
                    HostReply::Done(Err((obs, e))) => {
                        host_busy = false;
                        action_failures = action_failures.saturating_add(1);
                        if let Some((a, t)) = action_started.take() {
                            metrics.action(&a, false, t.elapsed());
                        }
                        master_starting = obs.master == crate::core::plan::MasterState::Starting;
                        agent.action_failed(now, obs, e);
                    }
                    HostReply::Observed(obs) => {
                        observes_out = observes_out.saturating_sub(1);
                        master_starting = obs.master == crate::core::plan::MasterState::Starting;
                        agent.refresh(now, obs);
                    }
                    // The health tick passes the latest reading on every second; a change is
                    // passed on at once.
                    HostReply::Replica(r) if r != replica => {
                        info!("replica: {r:?}");
                        replica = r;
                        agent.set_health(now, crate::host::sys::read_health(maintenance), replica, 0);
                    }
                    HostReply::Replica(_) => {}
                }
            }
            // Only into an idle host thread: a reading must never queue in front of the next
            // action (a VIP refresh waiting behind readings let the VIP's lifetime run out).
            _ = start_tick.tick(), if (master_starting || agent.lease().leader_epoch(clock.now()).is_some())
                && !host_busy && observes_out == 0 => {
                if master_starting || last_observe.elapsed() >= Duration::from_millis(300) {
                    last_observe = std::time::Instant::now();
                    observes_out += 1;
                    let _ = host_tx.send(HostCmd::Observe(clock.now()));
                }
            }
            _ = health_tick.tick() => {
                let now = clock.now();
                agent.set_health(now, crate::host::sys::read_health(maintenance), replica, 0);
                loop_health.sent(std::time::Instant::now());
                observes_out += 1;
                let _ = host_tx.send(HostCmd::Observe(now));
                let _ = host_tx.send(HostCmd::Replica);
            }
            _ = watchdog_tick.tick(), if watchdog.is_some() => {
                match loop_health.check(std::time::Instant::now()) {
                    Ok(()) => {
                        if unhealthy.take().is_some() {
                            info!("healthy again: pinging the systemd watchdog");
                        }
                        let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                    }
                    Err(why) => {
                        if unhealthy.as_deref() != Some(why.as_str()) {
                            warn!("not pinging the systemd watchdog: {why}; systemd will restart the agent");
                            let line = format!("unhealthy: {why}");
                            let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&line)]);
                            last_status = line;
                        }
                        unhealthy = Some(why);
                    }
                }
            }
            _ = sigterm.recv() => begin_shutdown(&mut agent, &clock, &mut shutdown_at),
            _ = sigint.recv() => begin_shutdown(&mut agent, &clock, &mut shutdown_at),
        }
    }
}

/// Host actions failing this many times in a row make the red LED ask for a person.
const HOST_TROUBLE_FAILURES: u32 = 5;

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

fn begin_shutdown(agent: &mut Agent, clock: &Clock, shutdown_at: &mut Option<Instant>) {
    let now = clock.now();
    if shutdown_at.is_some() {
        return;
    }
    if agent.switchover(now, None) {
        info!("stopping: stepping down first (fence, then release the voters)");
    } else {
        info!("stopping");
    }
    *shutdown_at = Some(now + Duration::from_secs(5));
}

fn systemd_status(
    s: &crate::core::agent::AgentStatus,
    name_of: &dyn Fn(NodeId) -> String,
) -> String {
    let leader = s.leader.map(name_of).unwrap_or_else(|| "none".into());
    format!("{:?}, epoch {}, leader {}", s.role, s.epoch, leader).to_lowercase()
}

fn log_event(ev: &AgentEvent, name_of: &dyn Fn(NodeId) -> String) {
    match ev {
        AgentEvent::Member(MemberEvent::Up(id)) => info!(member = %name_of(*id), "member is alive"),
        AgentEvent::Member(MemberEvent::Suspect(id)) => {
            warn!(member = %name_of(*id), "member is suspected (missed probes)")
        }
        AgentEvent::Member(MemberEvent::Down(id)) => {
            warn!(member = %name_of(*id), "member is down")
        }
        AgentEvent::Member(MemberEvent::MetaChanged(id)) => {
            debug!(member = %name_of(*id), "member metadata changed")
        }
        AgentEvent::Lease(LeaseEvent::Standing { epoch }) => info!(epoch, "standing for election"),
        AgentEvent::Lease(LeaseEvent::Elected { epoch, .. }) => info!(
            epoch,
            "elected: this node holds the lease and becomes the master"
        ),
        AgentEvent::Lease(LeaseEvent::StepDown { epoch, reason }) => {
            warn!(epoch, ?reason, "stepping down: fencing (VIP first)")
        }
        AgentEvent::Lease(LeaseEvent::RoundFailed {
            epoch,
            grants,
            needed,
        }) => info!(epoch, grants, needed, "election round failed"),
        AgentEvent::Lease(LeaseEvent::HolderSeen { holder, epoch }) => {
            info!(epoch, leader = %name_of(*holder), "leader is {}", name_of(*holder))
        }
        AgentEvent::Eligibility(e) => {
            if e.eligible {
                info!(priority = e.priority, "eligible to stand: {}", e.reason)
            } else {
                warn!("not eligible to stand: {}", e.reason)
            }
        }
        AgentEvent::Fenced { epoch } => info!(
            epoch,
            "fenced: VIP down, mfsmaster stopped, replica secondary; voters released"
        ),
        AgentEvent::ActionFailed { action, error } => {
            warn!(?action, "host action failed, retrying: {error}")
        }
    }
}
