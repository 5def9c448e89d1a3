//! Host drivers: the thin edge where decisions become effects on the machine (VIP, MooseFS
//! daemons, mounts, replication). Each driver sits behind [`Host`], so the agent loop does not
//! care whether it drives the real thing or records what it would do.

pub mod chunk_locks;
pub mod client_reset;
pub mod drbd;
pub mod dry_run;
pub mod gpio;
pub mod linux;
pub mod meta_disk;
pub mod mfs;
pub mod mount;
pub mod mount_table;
pub mod vip;

use crate::core::Instant;
use crate::core::plan::{Action, Observed};
use crate::core::roles::ReplicaState;

/// What a host driver does for the agent loop. Calls are made from one dedicated thread, one at a
/// time; each should return quickly (start a daemon and return; readiness shows in `observe`),
/// except where a deadline is documented (stopping mfsmaster: SIGTERM, then SIGKILL).
pub trait Host: Send {
    /// A short name for logs and status (`dry-run`, `linux`).
    fn name(&self) -> &'static str;
    /// The host's state now (at start, and after each action).
    fn observe(&mut self, now: Instant) -> Observed;
    /// Carries out one action; returns the state afterwards, or what went wrong.
    fn execute(&mut self, action: Action, now: Instant) -> Result<Observed, String>;
    /// How current this node's metadata copy is (read on every health tick; eligibility).
    fn replica(&mut self) -> ReplicaState {
        ReplicaState::UpToDate
    }
    /// A new leader was elected (epoch `epoch`; the members at `down` are seen down): this
    /// node's mount, chunkserver or metalogger may hold a stuck connection to the old master or
    /// to a node cut off with it ([`client_reset`]). Must return at once.
    fn leader_changed(&mut self, _epoch: u64, _down: &[std::net::IpAddr]) {}
    /// The member at `addr` was declared down: this node's MooseFS connections to it (the
    /// master's to its chunkserver, a mount's to its chunkserver) would otherwise wait for
    /// MooseFS's own timeouts ([`client_reset::member_down`]). Must return at once.
    fn member_down(&mut self, _addr: std::net::IpAddr) {}
}
pub mod syn_hold;
pub mod sys;

/// A request to the host thread.
#[derive(Debug, Clone)]
pub enum HostCmd {
    Execute(Action, Instant),
    Observe(Instant),
    Replica,
    /// A new leader is known, at this epoch; the addresses of the members seen down now. No
    /// reply.
    LeaderChanged(u64, Vec<std::net::IpAddr>),
    /// The member at this address was just declared down. No reply.
    MemberDown(std::net::IpAddr),
}

/// The host thread's answer.
#[derive(Debug, Clone)]
pub enum HostReply {
    /// The action is done (or failed, with the state after it).
    Done(Result<Observed, (Observed, String)>),
    /// A periodic reading.
    Observed(Observed),
    /// A replica reading.
    Replica(ReplicaState),
}

/// Runs `host` on its own thread: the agent loop never blocks on the host.
pub fn spawn(
    mut host: Box<dyn Host>,
) -> (
    std::sync::mpsc::Sender<HostCmd>,
    tokio::sync::mpsc::UnboundedReceiver<HostReply>,
) {
    let (cmd_tx, cmd_rx) = std::sync::mpsc::channel::<HostCmd>();
    let (reply_tx, reply_rx) = tokio::sync::mpsc::unbounded_channel();
    let spawned = std::thread::Builder::new()
        .name("host".into())
        .spawn(move || {
            for cmd in cmd_rx {
                let reply = match cmd {
                    HostCmd::Execute(a, now) => {
                        HostReply::Done(host.execute(a, now).map_err(|e| (host.observe(now), e)))
                    }
                    HostCmd::Observe(now) => HostReply::Observed(host.observe(now)),
                    HostCmd::Replica => HostReply::Replica(host.replica()),
                    HostCmd::LeaderChanged(epoch, down) => {
                        host.leader_changed(epoch, &down);
                        continue;
                    }
                    HostCmd::MemberDown(addr) => {
                        host.member_down(addr);
                        continue;
                    }
                };
                if reply_tx.send(reply).is_err() {
                    break;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the host thread: {e}");
    }
    (cmd_tx, reply_rx)
}
