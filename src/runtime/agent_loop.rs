//! The agent loop's state and what it does with each input. [`super::run_async`] waits for the
//! next input (a frame, a timer, a host reply, a control request, a signal) and hands it to one
//! method here; [`AgentLoop::drive`] then persists, sends, acts and reports before the next wait.

use std::collections::BTreeMap;
use std::net::{SocketAddr, SocketAddrV4};
use std::ops::ControlFlow;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::control::{self, Pending, node_name};
use super::signals::Asked;
use super::{AgentOptions, keyring_reload, metrics, panel, spec, state, sync_limit, watchdog};
use crate::config::{Node, Rack};
use crate::core::agent::{Agent, AgentEvent, AgentMsg, AgentStatus, NodeRole};
use crate::core::lease::LeaseEvent;
use crate::core::membership::{MemberEvent, MemberState};
use crate::core::plan::{Action, MasterState, Observed};
use crate::core::roles::ReplicaState;
use crate::core::{Instant, Machine, NodeId};
use crate::host::dry_run::describe;
use crate::host::{Host, HostCmd, HostReply};
use crate::wire::{Endpoint, Keyring, Opened, fresh_incarnation};

/// Host actions failing this many times in a row make the red LED ask for a person.
const HOST_TROUBLE_FAILURES: u32 = 5;

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

/// The inputs the loop waits on besides its UDP socket and the signals: owned apart from [`AgentLoop`] so the
/// `select!` can borrow them while a handler borrows the loop.
pub(super) struct Inputs {
    pub control: mpsc::Receiver<Pending>,
    pub host: mpsc::UnboundedReceiver<HostReply>,
    /// Pings the systemd watchdog (only when systemd asked for it).
    pub watchdog: Option<tokio::time::Interval>,
    /// Health and host readings: often enough to notice a dead daemon or mount within a second.
    pub health_tick: tokio::time::Interval,
    /// While an mfsmaster is starting, the host is read every 100 ms: the VIP goes up as soon
    /// as the master accepts connections, not at the next health tick (up to a second later).
    /// While leading, every 300 ms: a crashed mfsmaster is restarted within that (measured: with
    /// the 1 s tick, clients waited ~3 s after a crash, their reconnect having missed the master).
    pub start_tick: tokio::time::Interval,
}

/// Everything the running agent holds between two inputs.
pub(super) struct AgentLoop {
    rack: Rack,
    node: Node,
    names: Vec<String>,
    addrs: BTreeMap<NodeId, SocketAddr>,
    socket_path: PathBuf,
    host_name: &'static str,
    clock: Clock,
    sock: UdpSocket,
    endpoint: Endpoint,
    /// Sync answers to stale frames: at most one per peer per second.
    sync_limit: sync_limit::SyncLimit,
    /// The keyring file, read again on SIGHUP.
    keyring_path: PathBuf,
    state: state::StateFile,
    host_tx: std::sync::mpsc::Sender<HostCmd>,
    agent: Agent,
    panel: panel::PanelDriver,
    metrics: metrics::Metrics,
    maintenance: bool,
    /// An action is with the host thread.
    host_busy: bool,
    /// The action with the host thread, and since when.
    action_started: Option<(Action, std::time::Instant)>,
    /// Host actions failed in a row.
    action_failures: u32,
    /// The replica's state as the host last read it.
    replica: ReplicaState,
    /// Pings only while the loop and the host thread are healthy.
    loop_health: watchdog::LoopHealth,
    unhealthy: Option<String>,
    master_starting: bool,
    last_observe: std::time::Instant,
    /// Readings sent to the host thread and not yet answered.
    observes_out: u32,
    /// A new leader (after the first one this agent learns of) is passed to the host: a
    /// worker resets its mount's connection to the old master if it is stuck.
    leader_seen: Option<(NodeId, u64)>,
    /// When stopping: the fencing deadline.
    shutdown_at: Option<Instant>,
    /// The last status line sent to systemd.
    last_status: String,
}

impl AgentLoop {
    /// Loads the rack, binds the sockets, starts the host driver and the side tasks.
    pub(super) async fn start(
        opts: &AgentOptions,
        rack: Rack,
        node: Node,
    ) -> anyhow::Result<(Self, Inputs)> {
        let me = node.id;
        let names: Vec<String> = rack.nodes.iter().map(|n| n.name.clone()).collect();
        let keyring = Keyring::load(&rack.cluster.keyring).map_err(|e| anyhow::anyhow!("{e}"))?;
        let state_dir = opts
            .state_dir
            .clone()
            .unwrap_or_else(|| rack.cluster.state_dir.clone());
        let (state, durable) = state::StateFile::open(&state_dir)?;
        let nodes = u16::try_from(rack.nodes.len()).context("too many nodes")?;
        let incarnation = fresh_incarnation().context("reading OS randomness")?;
        let endpoint = Endpoint::new(me, nodes, rack.fingerprint(), keyring, incarnation)
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
        let (ctl_tx, ctl_rx) = mpsc::channel::<Pending>(16);
        tokio::spawn(control::serve(listener, ctl_tx));

        let clock = Clock(std::time::Instant::now());
        // Host drivers block (and some run a small runtime of their own): build the host and
        // take its first reading off the async runtime.
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
        let (host, observed) =
            std::thread::spawn(move || -> anyhow::Result<(Box<dyn Host>, Observed)> {
                let mut host = super::make_host(&kind, &r2, &n2, &s2, leadership)?;
                let observed = host.observe(now);
                Ok((host, observed))
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the host driver panicked while starting"))??;
        let host_name = host.name();
        if host_name == "dry-run" {
            warn!("host driver: dry-run: actions are logged, not performed");
        }
        let (host_tx, host_rx) = crate::host::spawn(host);
        let seed = incarnation ^ u64::from(me.0);
        let mut spec = spec::agent_spec(&rack, me);
        spec.moosefs = moosefs_release(&node);
        let mut agent = Agent::new(spec, durable, observed, seed, now);
        // Status LEDs and button: a missing chip or busy pin leaves the agent running without.
        let board = crate::config::Catalog::load(Some(&rack.cluster.boards_dir))
            .ok()
            .and_then(|c| c.get(&node.board).cloned());
        let voters: Vec<NodeId> = rack.voters().map(|n| n.id).collect();
        let panel = panel::PanelDriver::open(&opts.gpio, board.as_ref(), me, voters, now);
        // Prometheus endpoint: a port that cannot be bound is logged, the agent runs on.
        let metrics = metrics::Metrics::new(&node.name, metrics::count_start(&state_dir));
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
        // Not eligible until the host has read the replica (the first health tick, at once).
        let replica = ReplicaState::Unknown;
        let maintenance = false;
        agent.set_health(now, crate::host::sys::read_health(maintenance), replica, 0);
        info!(
            node = %node.name, id = me.0, addr = %bind, voters = rack.voters().count(), epoch = durable.highest(),
            "agent started (rack `{}`, {} nodes, lease {} ms)", rack.cluster.name, nodes, rack.cluster.lease_ms
        );

        let watchdog = sd_notify::watchdog_enabled().map(|d| tokio::time::interval(d / 2));
        let inputs = Inputs {
            control: ctl_rx,
            host: host_rx,
            watchdog,
            health_tick: tokio::time::interval(Duration::from_secs(1)),
            start_tick: tokio::time::interval(Duration::from_millis(100)),
        };
        let leader_seen = agent.leader_view();
        let keyring_path = rack.cluster.keyring.clone();
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        let lp = AgentLoop {
            rack,
            node,
            names,
            addrs,
            socket_path,
            host_name,
            clock,
            sock,
            endpoint,
            sync_limit: sync_limit::SyncLimit::default(),
            keyring_path,
            state,
            host_tx,
            agent,
            panel,
            metrics,
            maintenance,
            host_busy: false,
            action_started: None,
            action_failures: 0,
            replica,
            loop_health: watchdog::LoopHealth::default(),
            unhealthy: None,
            master_starting: false,
            last_observe: std::time::Instant::now(),
            observes_out: 0,
            leader_seen,
            shutdown_at: None,
            last_status: String::new(),
        };
        Ok((lp, inputs))
    }

    fn name_of(&self, id: NodeId) -> String {
        node_name(&self.names, id)
    }

    /// Persist, send, act, report. `Break` when the agent has stopped.
    pub(super) async fn drive(&mut self) -> anyhow::Result<ControlFlow<()>> {
        let now = self.clock.now();
        if let Some(g) = self.panel.poll_button(now) {
            let names = &self.names;
            panel::act(g, &mut self.agent, now, &mut self.maintenance, &|id| {
                node_name(names, id)
            });
        }
        self.state
            .store(self.agent.durable())
            .context("writing lease state: refusing to send anything that depends on it")?;
        self.transmit().await;
        self.pass_on_new_leader(now);
        if !self.host_busy
            && let Some(action) = self.agent.poll_action()
        {
            self.execute(action)?;
        }
        self.report_events();
        let snapshot = self.agent.status(now);
        self.panel.update(
            now,
            &snapshot,
            self.action_failures >= HOST_TROUBLE_FAILURES,
        );
        self.metrics.observe(
            &snapshot,
            self.endpoint.stats(),
            now.as_micros() / 1_000_000,
        );
        let status_line = systemd_status(&snapshot, &|id| self.name_of(id));
        if status_line != self.last_status {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&status_line)]);
            self.last_status = status_line;
        }
        if let Some(t) = self.shutdown_at {
            let done = !matches!(snapshot.role, NodeRole::Leader | NodeRole::Fencing);
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
                let _ = std::fs::remove_file(&self.socket_path);
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// Seals and sends every frame the agent has queued.
    async fn transmit(&mut self) {
        while let Some(t) = self.agent.poll_transmit() {
            let Some(addr) = self.addrs.get(&t.to) else {
                continue;
            };
            match self.endpoint.seal_msg(t.to, &t.msg) {
                Ok(frame) => {
                    if let Err(e) = self.sock.send_to(&frame, addr).await {
                        debug!("send to {}: {e}", self.name_of(t.to));
                    }
                }
                Err(e) => warn!("cannot seal a message for {}: {e}", self.name_of(t.to)),
            }
        }
    }

    /// Tells the host about a leader newer than the last one seen, with the members down.
    fn pass_on_new_leader(&mut self, now: Instant) {
        let view = self.agent.leader_view();
        if view.map(|v| v.1) > self.leader_seen.map(|v| v.1) {
            if let (Some(_), Some((l, epoch))) = (self.leader_seen, view) {
                let down: Vec<std::net::IpAddr> = self
                    .agent
                    .status(now)
                    .members
                    .iter()
                    .filter(|m| m.state != MemberState::Alive)
                    .filter_map(|m| self.addrs.get(&m.id).map(|a| a.ip()))
                    .collect();
                debug!(
                    epoch,
                    "new leader {}; members down: {down:?}",
                    self.name_of(l)
                );
                let _ = self.host_tx.send(HostCmd::LeaderChanged(epoch, down));
            }
            self.leader_seen = view;
        }
    }

    /// Hands `action` to the (idle) host thread.
    fn execute(&mut self, action: Action) -> anyhow::Result<()> {
        let epoch = self.agent.lease().highest_epoch();
        // A VIP refresh comes with every lease renewal: routine, so only at debug level.
        if matches!(
            action,
            Action::VipUp {
                announce: false,
                ..
            }
        ) {
            debug!(epoch, "{}", describe(&action));
        } else {
            info!(epoch, "{}", describe(&action));
        }
        self.action_started = Some((action, std::time::Instant::now()));
        self.loop_health.sent(std::time::Instant::now());
        if self
            .host_tx
            .send(HostCmd::Execute(action, self.clock.now()))
            .is_err()
        {
            bail!("the host thread is gone");
        }
        self.host_busy = true;
        Ok(())
    }

    /// Logs the agent's events and counts elections and step-downs.
    fn report_events(&mut self) {
        while let Some(ev) = self.agent.poll_event() {
            match &ev {
                AgentEvent::Lease(LeaseEvent::Elected { .. }) => self.metrics.elected(),
                AgentEvent::Lease(LeaseEvent::StepDown { reason, .. }) => {
                    self.metrics.stepped_down(*reason)
                }
                _ => {}
            }
            if let AgentEvent::Lease(LeaseEvent::Standing { epoch }) = &ev {
                info!(
                    epoch,
                    "standing for election: {}",
                    self.agent.election_reasons(&|id| self.name_of(id))
                );
                continue;
            }
            if let AgentEvent::Member(MemberEvent::Down(id)) = &ev
                && let Some(addr) = self.addrs.get(id)
            {
                let _ = self.host_tx.send(HostCmd::MemberDown(addr.ip()));
            }
            log_event(&ev, &|id| self.name_of(id));
        }
    }

    /// When the agent's next timer fires (at the latest in a second).
    pub(super) fn deadline(&self) -> tokio::time::Instant {
        self.agent
            .poll_timeout()
            .map(|t| self.clock.deadline(t))
            .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(1))
    }

    /// When the LEDs or the button need a look.
    pub(super) fn panel_wake(&self) -> Option<tokio::time::Instant> {
        self.panel
            .next_wake(self.clock.now())
            .map(|t| self.clock.deadline(t))
    }

    /// The next datagram on the gossip socket, into `buf`.
    pub(super) async fn recv(&self, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
        self.sock.recv_from(buf).await
    }

    /// A datagram arrived.
    pub(super) async fn on_frame(&mut self, frame: &[u8], from_addr: SocketAddr) {
        let now = self.clock.now();
        match self.endpoint.open_msg::<AgentMsg>(frame) {
            Ok(Opened::Delivered { from, payload }) => {
                self.agent.handle_message(now, from, payload)
            }
            Ok(Opened::NeedsSync { from, reply }) => {
                if !self.sync_limit.allow(from, std::time::Instant::now()) {
                    debug!(
                        peer = %self.name_of(from),
                        suppressed = self.sync_limit.suppressed(),
                        "stale frame: a sync frame went to this peer less than a second ago, not answering"
                    );
                    return;
                }
                if let Some(addr) = self.addrs.get(&from) {
                    let _ = self.sock.send_to(&reply, addr).await;
                }
            }
            Ok(Opened::Synced { .. }) => {}
            Err(reason) => debug!(%from_addr, ?reason, "dropped a frame"),
        }
    }

    /// The agent's timer fired.
    pub(super) fn on_timeout(&mut self) {
        self.agent.handle_timeout(self.clock.now());
    }

    /// A control request arrived.
    pub(super) fn on_control(&mut self, p: Pending) {
        let target = control::Target {
            now: self.clock.now(),
            agent: &mut self.agent,
            rack: &self.rack,
            node: &self.node.name,
            names: &self.names,
            host: self.host_name,
            wire: *self.endpoint.stats(),
            leds: self.panel.report(),
            maintenance: &mut self.maintenance,
        };
        let response = control::handle(target, &p.request, p.uid);
        let _ = p.reply.send(response);
    }

    /// The host thread answered.
    pub(super) fn on_host_reply(&mut self, reply: HostReply) {
        let now = self.clock.now();
        self.loop_health.answered();
        match reply {
            HostReply::Done(Ok(obs)) => {
                self.action_done(true, &obs);
                self.action_failures = 0;
                self.agent.observe(now, obs);
            }
            HostReply::Done(Err((obs, e))) => {
                self.action_done(false, &obs);
                self.action_failures = self.action_failures.saturating_add(1);
                self.agent.action_failed(now, obs, e);
            }
            HostReply::Observed(obs) => {
                self.observes_out = self.observes_out.saturating_sub(1);
                self.master_starting = obs.master == MasterState::Starting;
                self.agent.refresh(now, obs);
            }
            // The health tick passes the latest reading on every second; a change is
            // passed on at once.
            HostReply::Replica(r) if r != self.replica => {
                info!("replica: {r:?}");
                self.replica = r;
                self.agent.set_health(
                    now,
                    crate::host::sys::read_health(self.maintenance),
                    self.replica,
                    0,
                );
            }
            HostReply::Replica(_) => {}
        }
    }

    /// The action with the host thread finished (`ok` or not) with the host as `obs`.
    fn action_done(&mut self, ok: bool, obs: &Observed) {
        self.host_busy = false;
        if let Some((a, t)) = self.action_started.take() {
            self.metrics.action(&a, ok, t.elapsed());
        }
        self.master_starting = obs.master == MasterState::Starting;
    }

    /// Whether the fast reading tick applies: an mfsmaster is starting or this node leads, and
    /// the host thread is idle (a reading must never queue in front of the next action: a VIP
    /// refresh waiting behind readings let the VIP's lifetime run out).
    pub(super) fn wants_fast_observe(&self) -> bool {
        (self.master_starting || self.agent.lease().leader_epoch(self.clock.now()).is_some())
            && !self.host_busy
            && self.observes_out == 0
    }

    /// The fast reading tick: every 100 ms while a master starts, every 300 ms while leading.
    pub(super) fn on_start_tick(&mut self) {
        if self.master_starting || self.last_observe.elapsed() >= Duration::from_millis(300) {
            self.last_observe = std::time::Instant::now();
            self.observes_out += 1;
            let _ = self.host_tx.send(HostCmd::Observe(self.clock.now()));
        }
    }

    /// The health tick: the node's health to the agent, and a host and replica reading.
    pub(super) fn on_health_tick(&mut self) {
        let now = self.clock.now();
        self.agent.set_health(
            now,
            crate::host::sys::read_health(self.maintenance),
            self.replica,
            0,
        );
        self.loop_health.sent(std::time::Instant::now());
        self.observes_out += 1;
        let _ = self.host_tx.send(HostCmd::Observe(now));
        let _ = self.host_tx.send(HostCmd::Replica);
    }

    /// The systemd watchdog tick: ping while the loop and the host thread are healthy.
    pub(super) fn on_watchdog_tick(&mut self) {
        match self.loop_health.check(std::time::Instant::now()) {
            Ok(()) => {
                if self.unhealthy.take().is_some() {
                    info!("healthy again: pinging the systemd watchdog");
                }
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            }
            Err(why) => {
                if self.unhealthy.as_deref() != Some(why.as_str()) {
                    warn!(
                        "not pinging the systemd watchdog: {why}; systemd will restart the agent"
                    );
                    let line = format!("unhealthy: {why}");
                    let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(&line)]);
                    self.last_status = line;
                }
                self.unhealthy = Some(why);
            }
        }
    }

    /// A signal arrived (see [`super::signals`] for what each one does).
    pub(super) fn on_signal(&mut self, asked: Asked) {
        match asked {
            Asked::Stop(name) => self.on_stop_signal(name),
            Asked::Reload => {
                info!(
                    "SIGHUP: reloading the keyring {}",
                    self.keyring_path.display()
                );
                keyring_reload::reload(&mut self.endpoint, &self.keyring_path);
            }
            Asked::Ignore(name) => {
                info!("{name} received: ignored (SIGHUP reloads the keyring, SIGTERM stops)")
            }
        }
    }

    /// SIGTERM, SIGINT or SIGQUIT: a leader steps down and fences first (bounded by 5 s).
    fn on_stop_signal(&mut self, name: &str) {
        let now = self.clock.now();
        if self.shutdown_at.is_some() {
            info!("{name} received: already stopping");
            return;
        }
        if self.agent.switchover(now, None) {
            info!("{name}: stopping: stepping down first (fence, then release the voters)");
        } else {
            info!("{name}: stopping");
        }
        self.shutdown_at = Some(now + Duration::from_secs(5));
    }
}

fn systemd_status(s: &AgentStatus, name_of: &dyn Fn(NodeId) -> String) -> String {
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

/// The MooseFS release this node runs (logged; gossiped so that a master candidate with an
/// older major release than another never stands). Not found: unknown, with a warning.
fn moosefs_release(node: &crate::config::Node) -> crate::core::membership::MooseFsVersion {
    use crate::config::Role;
    match crate::host::mfs::MfsVersion::installed(
        node.has(Role::Master),
        node.has(Role::Chunkserver),
        node.has(Role::Worker),
    ) {
        Ok(v) => {
            let code = v.code();
            info!(moosefs = %code, "MooseFS {code} installed");
            code
        }
        Err(e) => {
            warn!("MooseFS release not known: {e}");
            Default::default()
        }
    }
}
