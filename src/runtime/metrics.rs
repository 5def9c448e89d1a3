//! The Prometheus endpoint: `GET /metrics` in the text exposition format, on the rack file's
//! `metrics_listen` (default 127.0.0.1:9464). The agent loop updates the metrics (they are
//! atomics); a small task serves them. A port that cannot be bound is logged and the agent runs
//! on without metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::core::NodeId;
use crate::core::agent::{AgentStatus, NodeRole};
use crate::core::lease::StepDownReason;
use crate::core::membership::MemberState;
use crate::core::plan::Action;
use crate::wire::WireStats;

type Labels = Vec<(&'static str, String)>;

/// How often the loop's turns refresh the gauges.
const OBSERVE_EVERY: Duration = Duration::from_millis(200);

fn label(k: &'static str, v: impl Into<String>) -> Labels {
    vec![(k, v.into())]
}

fn action_histogram() -> Histogram {
    // 1 ms .. ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// The agent's metrics (cheap to clone: every metric is shared).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    members: Family<Labels, Gauge>,
    leader: Gauge,
    epoch: Gauge,
    lease_left: Gauge<f64, AtomicU64>,
    eligible: Gauge,
    failovers: Counter,
    elections_won: Counter,
    step_downs: Family<Labels, Counter>,
    actions: Family<Labels, Counter>,
    action_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    daemon_restarts: Family<Labels, Counter>,
    frames: Family<Labels, Counter>,
    rejected: Family<Labels, Counter>,
    agent_starts: Gauge,
    uptime: Gauge,
    /// What the counters derived from running totals last saw.
    last_wire: WireStats,
    last_leader: Option<(NodeId, u64)>,
    /// Every reject reason has a series (created at the first observation).
    rejected_created: bool,
    rejects_seen: bool,
    /// When the gauges were last refreshed (they need no more than a few updates a second).
    last_observe: Option<std::time::Instant>,
    starts_seen: std::collections::BTreeSet<&'static str>,
}

impl Metrics {
    /// `agent_starts`: how often the agent has started on this node (persisted by the caller).
    pub fn new(node: &str, agent_starts: u64) -> Self {
        let mut r = Registry::with_prefix_and_labels(
            "mooseherd",
            [(
                std::borrow::Cow::Borrowed("node"),
                std::borrow::Cow::Owned(node.to_string()),
            )]
            .into_iter(),
        );
        let members = Family::<Labels, Gauge>::default();
        r.register(
            "members",
            "Members of the rack by state as this node sees them (alive, suspect, down)",
            members.clone(),
        );
        let leader = Gauge::default();
        r.register(
            "leader",
            "1 while this node holds the lease",
            leader.clone(),
        );
        let epoch = Gauge::default();
        r.register(
            "lease_epoch",
            "Epoch of the lease as this node knows it",
            epoch.clone(),
        );
        let lease_left = Gauge::<f64, AtomicU64>::default();
        r.register(
            "lease_remaining_seconds",
            "Time left on the known holder's lease (0 when unknown)",
            lease_left.clone(),
        );
        let eligible = Gauge::default();
        r.register(
            "eligible",
            "1 while this node may stand for master",
            eligible.clone(),
        );
        let failovers = Counter::default();
        r.register(
            "failovers",
            "Times the leader this node knows changed to another node (in a newer epoch)",
            failovers.clone(),
        );
        let elections_won = Counter::default();
        r.register(
            "elections_won",
            "Elections this node won",
            elections_won.clone(),
        );
        let step_downs = Family::<Labels, Counter>::default();
        r.register(
            "step_downs",
            "Times this node stepped down, by reason",
            step_downs.clone(),
        );
        let actions = Family::<Labels, Counter>::default();
        r.register(
            "host_actions",
            "Host actions carried out, by action and result (ok, failed)",
            actions.clone(),
        );
        let action_seconds =
            Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(action_histogram);
        r.register(
            "host_action_duration_seconds",
            "How long host actions took, by action",
            action_seconds.clone(),
        );
        let daemon_restarts = Family::<Labels, Counter>::default();
        r.register(
            "daemon_restarts",
            "Role daemons started again after their first start (mfsmaster, mfschunkserver, mfsmetalogger, mfsmount)",
            daemon_restarts.clone(),
        );
        let frames = Family::<Labels, Counter>::default();
        r.register("frames", "Wire frames sealed and delivered", frames.clone());
        let rejected = Family::<Labels, Counter>::default();
        r.register(
            "frames_rejected",
            "Wire frames rejected, by reason",
            rejected.clone(),
        );
        let agent_starts_g = Gauge::default();
        agent_starts_g.set(i64::try_from(agent_starts).unwrap_or(i64::MAX));
        r.register(
            "agent_starts",
            "How often the agent has started on this node (a rising value means restarts)",
            agent_starts_g.clone(),
        );
        let uptime = Gauge::default();
        r.register(
            "uptime_seconds",
            "Seconds since the agent started",
            uptime.clone(),
        );
        Metrics {
            registry: Arc::new(r),
            members,
            leader,
            epoch,
            lease_left,
            eligible,
            failovers,
            elections_won,
            step_downs,
            actions,
            action_seconds,
            daemon_restarts,
            frames,
            rejected,
            agent_starts: agent_starts_g,
            uptime,
            last_wire: WireStats::default(),
            last_leader: None,
            rejected_created: false,
            rejects_seen: false,
            last_observe: None,
            starts_seen: Default::default(),
        }
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        render(&self.registry)
    }

    /// The registry, for the endpoint task.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    /// Updates the gauges from the agent's status and the counters from the wire's totals, at
    /// most every [`OBSERVE_EVERY`] (the loop calls it on every turn).
    pub fn observe(&mut self, s: &AgentStatus, wire: &WireStats, uptime_s: u64) {
        let t = std::time::Instant::now();
        if self
            .last_observe
            .is_some_and(|l| t.saturating_duration_since(l) < OBSERVE_EVERY)
        {
            return;
        }
        self.last_observe = Some(t);
        for state in MemberState::ALL {
            let n = s.members.iter().filter(|m| m.state == state).count();
            self.members
                .get_or_create(&label("state", state.as_str()))
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        self.leader.set(i64::from(s.role == NodeRole::Leader));
        self.epoch.set(i64::try_from(s.epoch).unwrap_or(i64::MAX));
        self.lease_left
            .set(s.lease_left_ms.map_or(0.0, |ms| ms as f64 / 1000.0));
        self.eligible.set(i64::from(s.eligible));
        // Only a newer epoch counts: during a handover the status may show the old holder
        // again for a moment (from gossip).
        if let Some(l) = s.leader
            && self.last_leader.is_none_or(|(_, e)| s.epoch > e)
        {
            if self.last_leader.is_some_and(|(old, _)| old != l) {
                self.failovers.inc();
            }
            self.last_leader = Some((l, s.epoch));
        }
        self.uptime.set(i64::try_from(uptime_s).unwrap_or(i64::MAX));
        let _ = &self.agent_starts;
        self.observe_wire(wire);
    }

    fn observe_wire(&mut self, wire: &WireStats) {
        if *wire == self.last_wire && self.rejected_created {
            return;
        }
        self.rejected_created = true;
        let delta = |new: u64, old: u64| new.saturating_sub(old);
        self.frames
            .get_or_create(&label("kind", "sealed"))
            .inc_by(delta(wire.sealed, self.last_wire.sealed));
        self.frames
            .get_or_create(&label("kind", "delivered"))
            .inc_by(delta(wire.delivered, self.last_wire.delivered));
        // The reasons are the fields of `RejectStats`: read them by name so a new reason shows
        // up without a change here.
        let as_map = |w: &WireStats| {
            serde_json::to_value(w.rejects)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default()
        };
        if wire.rejects == self.last_wire.rejects && self.rejects_seen {
            self.last_wire = *wire;
            return;
        }
        self.rejects_seen = true;
        let (new, old) = (as_map(wire), as_map(&self.last_wire));
        for (reason, v) in &new {
            let n = v.as_u64().unwrap_or(0);
            let o = old.get(reason).and_then(|v| v.as_u64()).unwrap_or(0);
            // Create every reason (at 0) so dashboards see the series before the first reject.
            self.rejected
                .get_or_create(&label("reason", reason.clone()))
                .inc_by(delta(n, o));
        }
        self.last_wire = *wire;
    }

    pub fn elected(&self) {
        self.elections_won.inc();
    }

    pub fn stepped_down(&self, reason: StepDownReason) {
        self.step_downs
            .get_or_create(&label("reason", step_down_label(reason)))
            .inc();
    }

    /// A host action finished after `took`.
    pub fn action(&mut self, action: &Action, ok: bool, took: Duration) {
        let name = action_name(action);
        self.actions
            .get_or_create(&vec![
                ("action", name.to_string()),
                ("result", if ok { "ok" } else { "failed" }.to_string()),
            ])
            .inc();
        self.action_seconds
            .get_or_create(&label("action", name))
            .observe(took.as_secs_f64());
        let daemon = match action {
            Action::StartMaster { .. } => Some("mfsmaster"),
            Action::StartChunkserver => Some("mfschunkserver"),
            Action::StartMetalogger => Some("mfsmetalogger"),
            Action::Remount => Some("mfsmount"),
            _ => None,
        };
        if let Some(d) = daemon
            && !self.starts_seen.insert(d)
        {
            self.daemon_restarts
                .get_or_create(&label("daemon", d))
                .inc();
        }
    }
}

/// The metric label of an action: its variant's name in snake case (`StartMaster { .. }` ->
/// `start_master`).
pub fn action_name(a: &Action) -> &'static str {
    match a {
        Action::ReplicaPrimary { .. } => "replica_primary",
        Action::MountMeta { .. } => "mount_meta",
        Action::StartMaster { .. } => "start_master",
        Action::VipUp { .. } => "vip_up",
        Action::StartProvisioner { .. } => "start_provisioner",
        Action::StopProvisioner => "stop_provisioner",
        Action::VipDown => "vip_down",
        Action::StopMaster => "stop_master",
        Action::UnmountMeta => "unmount_meta",
        Action::ReplicaSecondary => "replica_secondary",
        Action::StartMetalogger => "start_metalogger",
        Action::StopMetalogger => "stop_metalogger",
        Action::StartChunkserver => "start_chunkserver",
        Action::Remount => "remount",
    }
}

/// The metric label of a step-down's reason: the variant's name in lower case, run together
/// (`RenewalFailed` -> `renewalfailed`), as dashboards already query it.
pub fn step_down_label(reason: StepDownReason) -> &'static str {
    match reason {
        StepDownReason::RenewalFailed => "renewalfailed",
        StepDownReason::Switchover => "switchover",
        StepDownReason::NotEligible => "noteligible",
    }
}

/// Counts agent starts in `state_dir/starts` and returns the new count (0 if it cannot be kept).
pub fn count_start(state_dir: &std::path::Path) -> u64 {
    let path = state_dir.join("starts");
    let n = crate::bounded_read::read_text_opt(&path, 64, crate::bounded_read::Links::Follow)
        .ok()
        .flatten()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0)
        .saturating_add(1);
    if let Err(e) =
        crate::atomic_file::write_atomic(&path, format!("{n}\n").as_bytes(), 0o644, None)
    {
        tracing::debug!("cannot count agent starts in {}: {e}", path.display());
    }
    n
}

fn render(r: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = encode(&mut out, r);
    out
}

/// Binds the endpoint. A failure is returned for the caller to log.
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `GET /metrics` forever.
pub async fn serve(listener: TcpListener, registry: Arc<Registry>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let registry = registry.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut len = 0;
            // One request per connection, headers only, bounded in size and time.
            let read = tokio::time::timeout(Duration::from_secs(5), async {
                while len < buf.len() {
                    let n = stream.read(&mut buf[len..]).await?;
                    if n == 0 {
                        break;
                    }
                    len += n;
                    if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                Ok::<_, std::io::Error>(())
            })
            .await;
            if !matches!(read, Ok(Ok(()))) {
                return;
            }
            let req = String::from_utf8_lossy(&buf[..len]);
            let path = req.split_whitespace().nth(1).unwrap_or("");
            let method = req.split_whitespace().next().unwrap_or("");
            let (status, body, ctype) = if method != "GET" {
                (
                    "405 Method Not Allowed",
                    "GET only\n".to_string(),
                    "text/plain",
                )
            } else if path == "/metrics" || path.starts_with("/metrics?") {
                let body = render(&registry);
                (
                    "200 OK",
                    body,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )
            } else {
                (
                    "404 Not Found",
                    "mooseherd: metrics are at /metrics\n".to_string(),
                    "text/plain",
                )
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(body.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn action_names_are_snake_case() {
        assert_eq!(
            action_name(&Action::StartMaster {
                epoch: 3,
                recover: false
            }),
            "start_master"
        );
        assert_eq!(action_name(&Action::VipDown), "vip_down");
    }

    #[test]
    fn rendering_has_the_families_and_restarts_count_second_starts() {
        let mut m = Metrics::new("pi1", 3);
        m.action(&Action::StartChunkserver, true, Duration::from_millis(20));
        m.action(&Action::StartChunkserver, true, Duration::from_millis(20));
        m.stepped_down(StepDownReason::Switchover);
        let mut w = WireStats::default();
        m.observe_wire(&w);
        w.sealed = 5;
        m.observe_wire(&w);
        let text = m.render();
        for needle in [
            "mooseherd_daemon_restarts_total{node=\"pi1\",daemon=\"mfschunkserver\"} 1",
            "mooseherd_frames_total{node=\"pi1\",kind=\"sealed\"} 5",
            "mooseherd_agent_starts{node=\"pi1\"} 3",
            "mooseherd_host_action_duration_seconds_bucket",
            "mooseherd_step_downs_total{node=\"pi1\",reason=\"switchover\"} 1",
        ] {
            assert!(text.contains(needle), "{needle} missing:\n{text}");
        }
    }
}
