//! Fault injection for the drills: how long each fault is held, and injecting one on the
//! leader (freeze, partition, flap, loss, starve, kill, switchover).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::bail;

use super::Drill;
use crate::lab::{LabState, faults, kill_node};

/// How long the freeze lasts: more than twice the lab's 3 s lease.
const FREEZE: Duration = Duration::from_secs(8);
/// How long the leader stays cut off.
const PARTITION: Duration = Duration::from_secs(10);
/// Flap: the leader's link goes down for FLAP_DOWN and up for FLAP_UP, FLAP_CYCLES times.
const FLAP_DOWN: Duration = Duration::from_secs(2);
const FLAP_UP: Duration = Duration::from_secs(2);
const FLAP_CYCLES: u32 = 4;
/// Lossy: this share of the packets leaving every node is dropped, for LOSSY_FOR.
const LOSS_PERCENT: u8 = 20;
const LOSSY_FOR: Duration = Duration::from_secs(20);
/// Starve: the leader's agent (or keepalived) gets this % of one CPU for STARVE_FOR.
const STARVE_PERCENT: u32 = 3;
const STARVE_FOR: Duration = Duration::from_secs(20);
/// The processes of `system` that decide on a node: the agent, or keepalived.
fn deciders(system: &str) -> &'static [&'static str] {
    if system == crate::lab::SYSTEM_KEEPALIVED {
        &["keepalived"]
    } else {
        &["mooseherd"]
    }
}
/// Asks node `name`'s agent for a switchover.
fn agent_switchover(dir: &Path, name: &str) -> anyhow::Result<()> {
    let path = dir.join(name).join("control.sock");
    let r = crate::runtime::control::call_blocking(
        &path,
        &crate::runtime::control::Request::Switchover { to: None },
        None,
    )?;
    if !r.ok {
        bail!(
            "switchover refused: {}",
            r.error.unwrap_or_else(|| "no reason given".into())
        );
    }
    Ok(())
}

/// What a drill did, for the timeline and the restore step.
pub(super) struct Fault {
    /// The first line of the timeline.
    pub(super) what: String,
    /// When the fault took effect.
    pub(super) at: Instant,
    /// When it was healed (for faults that last).
    pub(super) healed: Option<Instant>,
    /// The old leader must be started again (its processes were killed or stopped for good).
    pub(super) restart: bool,
    /// The baseline's old master must get its keepalived back (switchover stopped it).
    pub(super) restart_keepalived: bool,
}

impl Fault {
    /// A fault that lasts: `guard` holds it from now for `hold`, and its drop heals it.
    pub(super) fn held<G>(guard: G, what: String, hold: Duration) -> Self {
        let at = Instant::now();
        std::thread::sleep(hold);
        drop(guard);
        Self {
            what,
            at,
            healed: Some(Instant::now()),
            restart: false,
            restart_keepalived: false,
        }
    }
}

/// Injects drill `name` on the leader `leader` (node index `li`) and holds it; returns when the
/// fault is over (healed, or a kill done).
pub(super) fn inject(
    dir: &Path,
    state: &LabState,
    drill: Drill,
    leader: &str,
    li: usize,
) -> anyhow::Result<Fault> {
    let system = state.system.as_str();
    let mut f = Fault {
        what: String::new(),
        at: Instant::now(),
        healed: None,
        restart: false,
        restart_keepalived: false,
    };
    match drill {
        Drill::KillLeader => {
            // The fault counts from when every killed process is dead: a write that started
            // while the signals were on their way could still be acknowledged by the old master.
            faults::wait_dead(&kill_node(leader), Duration::from_secs(5));
            f.at = Instant::now();
            f.what = "killed (every process of the node, SIGKILL)".into();
            f.restart = true;
        }
        Drill::CrashMfsmaster => {
            let masters = faults::procs(leader, &["mfsmaster"]);
            if masters.is_empty() {
                bail!("{leader} runs no mfsmaster to crash");
            }
            faults::signal(&masters, nix::sys::signal::Signal::SIGKILL);
            faults::wait_dead(
                &masters.iter().map(|p| p.pid).collect::<Vec<_>>(),
                Duration::from_secs(5),
            );
            f.at = Instant::now();
            f.what = "mfsmaster killed (SIGKILL)".into();
        }
        Drill::FreezeLeader => {
            let mut comms = deciders(system).to_vec();
            comms.push("mfsmaster");
            f = Fault::held(
                faults::Frozen::start(faults::procs(leader, &comms)),
                format!(
                    "{} and mfsmaster frozen (SIGSTOP) for {} s",
                    deciders(system)[0],
                    FREEZE.as_secs()
                ),
                FREEZE,
            );
        }
        Drill::PartitionLeader => {
            f = Fault::held(
                faults::Partition::start(li)?,
                format!(
                    "cut off (port off the switch, link up) for {} s",
                    PARTITION.as_secs()
                ),
                PARTITION,
            );
        }
        Drill::Flap => {
            let _up = faults::LinkGuard(li);
            f.what = format!(
                "link down {} s / up {} s, {FLAP_CYCLES} times",
                FLAP_DOWN.as_secs(),
                FLAP_UP.as_secs()
            );
            for c in 0..FLAP_CYCLES {
                faults::set_link(li, false)?;
                if c == 0 {
                    f.at = Instant::now();
                }
                std::thread::sleep(FLAP_DOWN);
                faults::set_link(li, true)?;
                std::thread::sleep(FLAP_UP);
            }
            f.healed = Some(Instant::now());
        }
        Drill::Lossy => {
            f = Fault::held(
                faults::Loss::start(&state.nodes, LOSS_PERCENT)?,
                format!(
                    "{LOSS_PERCENT} % of packets dropped on every node for {} s",
                    LOSSY_FOR.as_secs()
                ),
                LOSSY_FOR,
            );
        }
        Drill::Starve => {
            let procs = faults::procs(leader, deciders(system));
            f = Fault::held(
                faults::Starve::start(&procs, STARVE_PERCENT)?,
                format!(
                    "{} squeezed to {STARVE_PERCENT} % of a CPU for {} s",
                    deciders(system)[0],
                    STARVE_FOR.as_secs()
                ),
                STARVE_FOR,
            );
        }
        Drill::Switchover => {
            f.at = Instant::now();
            if system == crate::lab::SYSTEM_KEEPALIVED {
                // What an operator of the recipe does: stop keepalived on the master
                // (`systemctl stop keepalived`); it sends a priority-0 advert and runs notify_stop.
                faults::signal(
                    &faults::procs(leader, &["keepalived"]),
                    nix::sys::signal::Signal::SIGTERM,
                );
                f.what = "keepalived stopped on the master (planned switchover)".into();
                f.restart_keepalived = true;
            } else {
                agent_switchover(dir, leader)?;
                f.what = "`mooseherd switchover` on the leader".into();
            }
        }
    }
    Ok(f)
}
