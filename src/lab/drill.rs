//! Failover drills on the lab rack, with a writer, a verifier, a split-brain monitor and a
//! timeline.
//!
//! - The **writer** appends numbered records to a file on a worker's mfsmount, each followed by
//!   fsync; a record counts as acknowledged when fsync returned. It keeps writing through the drill.
//! - The **monitor** checks every 50 ms how many namespaces have the VIP configured and how many
//!   mfsmasters accept connections; time with two of either is split-brain time.
//! - The **verifier** reads the file back afterwards: every acknowledged record must be there.
//! - The **timeline** comes from the agents' JSON logs (the decisions, with their timestamps).

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde::Serialize;

use super::{LabState, faults, kill_node, load, net};

/// The mfsmaster port clients and chunkservers connect to.
const MASTER_CLIENT_PORT: u16 = 9421;

/// One line of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Mark {
    /// Milliseconds after the fault.
    pub at_ms: i64,
    pub node: String,
    pub what: String,
}

/// Shared between the writer thread and the drill.
#[derive(Default)]
struct WriterLog {
    /// Acknowledged records: sequence number, when the write started, when fsync returned.
    acked: Vec<(u64, Instant, Instant)>,
    errors: u64,
    /// When each failed write started.
    failed: Vec<Instant>,
}

fn writer(dir: PathBuf, stop: Arc<AtomicBool>, log: Arc<Mutex<WriterLog>>) {
    // Every record is a new file (create, write, fsync, close): each one needs the master, so the
    // first acknowledged record after a fault says when the master serves again. (Appending to an
    // open file inside one chunk needs only the chunkservers and goes on through a failover.)
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let path = dir.join(format!("rec-{seq:08}"));
        let ok = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o644)
            .open(&path)
            .and_then(|mut f| {
                f.write_all(format!("{seq}\n").as_bytes())
                    .and_then(|()| f.sync_all())
            })
            .is_ok();
        if let Ok(mut l) = log.lock() {
            if ok {
                l.acked.push((seq, started, Instant::now()));
            } else {
                // Not acknowledged: it does not count, whether it landed or not.
                l.errors += 1;
                l.failed.push(started);
            }
        }
        seq += 1;
        std::thread::sleep(Duration::from_millis(if ok { 20 } else { 100 }));
    }
}

/// One look of the monitor at the rack: bit `i` set when node `i` has the VIP configured, or
/// runs an mfsmaster that is not stopped and accepts connections (tried inside its namespace,
/// so a partitioned node is seen too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// Milliseconds after the fault (negative before it).
    pub at_ms: i64,
    pub vip: u32,
    pub masters: u32,
}

/// The mfsmasters of the machine that are not stopped: their network namespace inodes.
fn running_masters() -> Vec<u64> {
    faults::all_pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "mfsmaster")
        })
        .filter(|pid| faults::proc_state(*pid).is_some_and(|s| !matches!(s, 'T' | 't' | 'Z' | 'X')))
        .filter_map(faults::proc_netns)
        .collect()
}

/// Split-brain monitor: every 100 ms, which nodes have the VIP and which run a master that
/// accepts connections. Runs on its own thread, which it moves between the nodes' namespaces.
fn monitor(
    names: Vec<String>,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<(Instant, u32, u32)>>>,
) {
    let nodes: Vec<(Option<std::fs::File>, Option<u64>)> = names
        .iter()
        .map(|n| {
            (
                std::fs::File::open(format!("/run/netns/{}", net::ns(n))).ok(),
                faults::netns_inode(n),
            )
        })
        .collect();
    let vip = std::net::IpAddr::V4(net::vip());
    let tick = Duration::from_millis(100);
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        let masters = running_masters();
        let (mut vips, mut writable) = (0u32, 0u32);
        for (i, (file, inode)) in nodes.iter().enumerate() {
            let Some(f) = file else { continue };
            if nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
                continue;
            }
            let has_vip = nix::ifaddrs::getifaddrs().is_ok_and(|mut a| {
                a.any(|ifa| {
                    ifa.address
                        .and_then(|s| s.as_sockaddr_in().map(|x| std::net::IpAddr::V4(x.ip())))
                        == Some(vip)
                })
            });
            if has_vip {
                vips |= 1 << i;
            }
            if inode.is_some_and(|ino| masters.contains(&ino))
                && TcpStream::connect_timeout(
                    &SocketAddr::from((net::node_addr(i), MASTER_CLIENT_PORT)),
                    Duration::from_millis(50),
                )
                .is_ok()
            {
                writable |= 1 << i;
            }
        }
        if let Ok(mut s) = samples.lock() {
            s.push((t0, vips, writable));
        }
        if let Some(rest) = tick.checked_sub(t0.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}

/// Seconds during which `pred` held, from consecutive samples.
fn time_where(samples: &[Sample], pred: impl Fn(&Sample) -> bool) -> f64 {
    samples
        .windows(2)
        .filter(|w| pred(&w[0]))
        .map(|w| (w[1].at_ms - w[0].at_ms) as f64 / 1000.0)
        .sum::<f64>()
        // An empty float sum is -0.0.
        + 0.0
}

/// How many times the master moved: the sole writable master became another node.
fn failovers(samples: &[Sample]) -> u32 {
    let mut last: Option<u32> = None;
    let mut moves = 0;
    for s in samples {
        if s.masters.count_ones() == 1 {
            if last.is_some_and(|l| l != s.masters) {
                moves += 1;
            }
            last = Some(s.masters);
        }
    }
    moves
}

/// Timeline lines from the monitor: VIP and writable master appearing or going, per node.
fn sample_marks(samples: &[Sample], names: &[String]) -> Vec<Mark> {
    let mut marks = Vec::new();
    for w in samples.windows(2) {
        for (i, n) in names.iter().enumerate() {
            let bit = 1u32 << i;
            for (before, after, what) in [
                (w[0].vip, w[1].vip, "VIP"),
                (w[0].masters, w[1].masters, "mfsmaster accepting"),
            ] {
                if before & bit != after & bit {
                    marks.push(Mark {
                        at_ms: w[1].at_ms,
                        node: n.clone(),
                        what: format!(
                            "{} {what} (monitor)",
                            if after & bit != 0 { "+" } else { "-" }
                        ),
                    });
                }
            }
        }
    }
    marks
}

/// Seconds since the Unix epoch of an RFC 3339 UTC timestamp as tracing writes it
/// (`2026-11-25T09:28:04.628874Z`).
fn parse_ts(ts: &str) -> Option<f64> {
    let (date, time) = ts.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (h, mi, s) = (
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
    );
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + h * 3600.0 + mi * 60.0 + s)
}

/// Decisions worth a timeline line, by the text of the agents' log messages.
const MARKS: &[(&str, &str)] = &[
    ("member is down", "sees the old leader down"),
    ("standing for election", "stands for election"),
    ("elected:", "elected (holds the lease)"),
    ("make the metadata replica primary", "replica primary"),
    ("start mfsmaster", "starts mfsmaster"),
    ("mfsmaster is ready", "mfsmaster accepts connections"),
    ("add the VIP", "VIP up + gratuitous ARP"),
    ("stepping down", "steps down (fencing)"),
    ("fenced:", "fenced"),
];

fn timeline(dir: &Path, names: &[String], skip: &str, fault_wall: f64) -> Vec<Mark> {
    let mut marks = Vec::new();
    for n in names.iter().filter(|n| *n != skip) {
        let Ok(text) = std::fs::read_to_string(dir.join(n).join("agent.log")) else {
            continue;
        };
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let Some(ts) = v["timestamp"].as_str().and_then(parse_ts) else {
                continue;
            };
            if ts < fault_wall - 0.5 || ts > fault_wall + 60.0 {
                continue;
            }
            let msg = v["fields"]["message"].as_str().unwrap_or_default();
            if let Some((_, what)) = MARKS.iter().find(|(needle, _)| msg.contains(needle)) {
                if *what == "sees the old leader down"
                    && v["fields"]["member"].as_str() != Some(skip)
                {
                    continue;
                }
                marks.push(Mark {
                    at_ms: ((ts - fault_wall) * 1000.0).round() as i64,
                    node: n.clone(),
                    what: what.to_string(),
                });
            }
        }
    }
    marks.sort_by_key(|m| m.at_ms);
    marks
}

fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// A failover drill. The names (`as_str`, the CLI's values) are those of `lab drill NAME`, the
/// JSON reports and the chart files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Drill {
    KillLeader,
    CrashMfsmaster,
    FreezeLeader,
    PartitionLeader,
    Flap,
    Lossy,
    Starve,
    Switchover,
}

impl Drill {
    /// The drills, in the order `bench failover` runs them.
    pub const ALL: [Drill; 8] = [
        Drill::KillLeader,
        Drill::CrashMfsmaster,
        Drill::FreezeLeader,
        Drill::PartitionLeader,
        Drill::Flap,
        Drill::Lossy,
        Drill::Starve,
        Drill::Switchover,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Drill::KillLeader => "kill-leader",
            Drill::CrashMfsmaster => "crash-mfsmaster",
            Drill::FreezeLeader => "freeze-leader",
            Drill::PartitionLeader => "partition-leader",
            Drill::Flap => "flap",
            Drill::Lossy => "lossy",
            Drill::Starve => "starve",
            Drill::Switchover => "switchover",
        }
    }

    /// The drill called `name`, or an error listing the drills.
    pub fn named(name: &str) -> anyhow::Result<Drill> {
        match Drill::ALL.into_iter().find(|d| d.as_str() == name) {
            Some(d) => Ok(d),
            None => bail!("unknown drill `{name}` (available: {})", DRILLS.join(", ")),
        }
    }

    /// Drills in which no node fails: any failover in them is a false one.
    pub fn expects_no_failover(self) -> bool {
        matches!(self, Drill::Lossy | Drill::Starve)
    }

    /// Drills whose figure is the longest pause in the writes, not the time to the first write
    /// after one event: the faults that last a while, and the switchover (the old master serves
    /// until it hands over, so the pause is what a client feels).
    pub fn measures_pause(self) -> bool {
        matches!(
            self,
            Drill::Flap | Drill::Lossy | Drill::Starve | Drill::Switchover
        )
    }

    /// Drills that lose the leader node (`bench failover --runs-leader-lost` applies to them).
    pub fn loses_leader(self) -> bool {
        matches!(self, Drill::KillLeader | Drill::PartitionLeader)
    }
}

impl std::fmt::Display for Drill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The drills' names, in the order of [`Drill::ALL`].
pub const DRILLS: &[&str] = &[
    Drill::ALL[0].as_str(),
    Drill::ALL[1].as_str(),
    Drill::ALL[2].as_str(),
    Drill::ALL[3].as_str(),
    Drill::ALL[4].as_str(),
    Drill::ALL[5].as_str(),
    Drill::ALL[6].as_str(),
    Drill::ALL[7].as_str(),
];

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
/// A write in flight at the fault and acknowledged later than this after it counts as the
/// first write after the fault.
const IN_FLIGHT_GRACE: Duration = Duration::from_millis(250);
/// After the fault ends: writes go on this long before the drill stops.
const SETTLE: Duration = Duration::from_secs(3);
/// No acknowledged write this long after the fault: the drill gives up waiting.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(90);

/// [`Drill::expects_no_failover`] of a report's drill name (false for an unknown name).
pub fn expects_no_failover(drill: &str) -> bool {
    Drill::named(drill).is_ok_and(Drill::expects_no_failover)
}

/// [`Drill::measures_pause`] of a report's drill name (false for an unknown name).
pub fn measures_pause(drill: &str) -> bool {
    Drill::named(drill).is_ok_and(Drill::measures_pause)
}

/// The processes of `system` that decide on a node: the agent, or keepalived.
fn deciders(system: &str) -> &'static [&'static str] {
    if system == super::SYSTEM_KEEPALIVED {
        &["keepalived"]
    } else {
        &["mooseherd"]
    }
}

/// What `mooseherd lab drill --json` prints (and `bench failover` collects).
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    pub drill: String,
    /// `mooseherd` or `keepalived`.
    pub system: String,
    /// From the fault to the first acknowledged write that started after it.
    pub first_write_ms: Option<u64>,
    /// The longest time without an acknowledged write, from a second before the fault on.
    pub max_gap_ms: u64,
    /// Acknowledged records proven missing: the file system answered, and the record was not
    /// there or held something else.
    pub lost: u64,
    /// Acknowledged records that could not be read back within [`VERIFY_TIMEOUT`] (the file
    /// system did not answer): neither proven kept nor proven lost.
    pub unverified: u64,
    /// Seconds with the VIP on two nodes or two mfsmasters accepting connections.
    pub split_brain_s: f64,
    /// Of which: the VIP configured on two nodes.
    pub vip_on_two_s: f64,
    /// Of which: two mfsmasters running and accepting connections.
    pub masters_on_two_s: f64,
    /// Times the master moved to another node.
    pub failovers: u32,
    /// Failovers in a drill where no node failed (`lossy`, `starve`).
    pub false_failovers: u32,
    pub acknowledged: u64,
    pub write_errors: u64,
    pub leader_before: String,
    pub leader_after: Option<String>,
    /// How long the fault lasted (0 for a kill).
    pub fault_ms: u64,
    pub timeline: Vec<Mark>,
    /// The monitor's samples and every write, for the chart.
    #[serde(skip)]
    pub samples: Vec<Sample>,
    #[serde(skip)]
    pub writes: Vec<WritePoint>,
    #[serde(skip)]
    pub nodes: Vec<String>,
}

/// One write, for the chart: when it started (ms after the fault) and how long it took; `None`
/// when it failed.
#[derive(Debug, Clone, Copy)]
pub struct WritePoint {
    pub at_ms: i64,
    pub took_ms: Option<u64>,
}

/// Stops the writer and the monitor when the drill ends, however it ends.
struct Running {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Running {
    fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.finish();
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
struct Fault {
    /// The first line of the timeline.
    what: String,
    /// When the fault took effect.
    at: Instant,
    /// When it was healed (for faults that last).
    healed: Option<Instant>,
    /// The old leader must be started again (its processes were killed or stopped for good).
    restart: bool,
    /// The baseline's old master must get its keepalived back (switchover stopped it).
    restart_keepalived: bool,
}

impl Fault {
    /// A fault that lasts: `guard` holds it from now for `hold`, and its drop heals it.
    fn held<G>(guard: G, what: String, hold: Duration) -> Self {
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
fn inject(
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
            if system == super::SYSTEM_KEEPALIVED {
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

/// Runs `drill` on the lab at `dir`.
pub fn run(dir: &Path, drill: Drill) -> anyhow::Result<DrillReport> {
    super::require_root()?;
    let state: LabState = load(dir)?;
    let names = state.nodes.clone();
    super::wait_system_healthy(dir, &state, Duration::from_secs(60))
        .context("the lab rack is not healthy before the drill")?;
    let old_leader = super::system_leader(dir, &state).context("no leader")?;
    let li = names
        .iter()
        .position(|n| *n == old_leader)
        .context("the leader is not a lab node")?;
    // Write through a worker that is not a master candidate (it survives the drill).
    let worker = names
        .get(3)
        .or_else(|| names.get(2))
        .cloned()
        .context("no worker")?;
    let mount = dir.join(&worker).join("mnt");
    if !mount_answers(&mount, Duration::from_secs(60)) {
        bail!(
            "{}'s MooseFS mount at {} does not accept writes within 60 s; see {}/{worker}/",
            worker,
            mount.display(),
            dir.display()
        );
    }
    let drill_dir = mount.join("drills");
    std::fs::create_dir_all(&drill_dir).with_context(|| {
        format!(
            "creating {} on MooseFS (is the worker's mount up?)",
            drill_dir.display()
        )
    })?;
    // MooseFS's default goal (2 copies) keeps every chunk on two chunkservers, so a killed node
    // never takes the only copy with it. Goal 3 on this 3-chunkserver lab was measured to be
    // worse: every write chain then includes the dead chunkserver, and the client waits for its
    // timeout (first write 14 s after the kill instead of ~4 s).
    let file = drill_dir.join(format!(
        "{drill}-{}-{}",
        state.system,
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    ));
    std::fs::create_dir_all(&file).with_context(|| format!("creating {}", file.display()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(WriterLog::default()));
    let raw_samples = Arc::new(Mutex::new(Vec::new()));
    let mut running = Running {
        stop: Arc::clone(&stop),
        threads: Vec::new(),
    };
    {
        let (f, s, l) = (file.clone(), Arc::clone(&stop), Arc::clone(&log));
        running
            .threads
            .push(std::thread::spawn(move || writer(f, s, l)));
        let (n, s, sp) = (names.clone(), Arc::clone(&stop), Arc::clone(&raw_samples));
        running
            .threads
            .push(std::thread::spawn(move || monitor(n, s, sp)));
    }
    // Steady writes first.
    let warm = Instant::now();
    let acked = |log: &Mutex<WriterLog>| log.lock().map(|l| l.acked.len()).unwrap_or(0);
    while acked(&log) < 20 && warm.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if acked(&log) < 20 {
        bail!(
            "the writer could not write to {} before the drill",
            file.display()
        );
    }
    let fault = inject(dir, &state, drill, &old_leader, li)?;
    let fault_at = fault.at;
    let fault_wall = wall_now() - fault_at.elapsed().as_secs_f64();
    // Wait for the first acknowledged write after the fault, then a few more seconds of writes.
    // A write in flight at the fault counts when it is acknowledged more than IN_FLIGHT_GRACE
    // after it (the old master can no longer have answered it); one acknowledged sooner may be
    // the old master's last answer still on its way.
    let first_after = |log: &Mutex<WriterLog>| {
        log.lock().ok().and_then(|l| {
            l.acked
                .iter()
                .find(|(_, started, acked)| {
                    *started > fault_at || acked.duration_since(fault_at) > IN_FLIGHT_GRACE
                })
                .map(|(_, _, acked)| acked.duration_since(fault_at))
        })
    };
    while first_after(&log).is_none() && fault_at.elapsed() < WRITE_TIMEOUT {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(SETTLE);
    let end = Instant::now();
    running.finish();
    let first = first_after(&log);
    let new_leader = super::system_leader(dir, &state);
    // Verify: every acknowledged record is in the file.
    let (acked_list, write_errors, attempts) = log
        .lock()
        .map(|l| (l.acked.clone(), l.errors, l.failed.clone()))
        .unwrap_or_default();
    let seqs: Vec<u64> = acked_list.iter().map(|(s, _, _)| *s).collect();
    let Readback { lost, unverified } = read_back(&file, &seqs, VERIFY_TIMEOUT);
    // Bring back what the drill took away, for the next drill.
    if fault.restart {
        super::restart_node(dir, &old_leader)
            .with_context(|| format!("starting {old_leader} again"))?;
    }
    if fault.restart_keepalived {
        super::baseline::start_keepalived(dir, &old_leader)?;
    }
    let rel = |t: Instant| -> i64 {
        if t >= fault_at {
            t.duration_since(fault_at).as_millis() as i64
        } else {
            -(fault_at.duration_since(t).as_millis() as i64)
        }
    };
    let samples: Vec<Sample> = raw_samples
        .lock()
        .map(|s| {
            s.iter()
                .map(|(t, vip, masters)| Sample {
                    at_ms: rel(*t),
                    vip: *vip,
                    masters: *masters,
                })
                .collect()
        })
        .unwrap_or_default();
    let mut writes: Vec<WritePoint> = acked_list
        .iter()
        .map(|(_, s, a)| WritePoint {
            at_ms: rel(*s),
            took_ms: Some(a.duration_since(*s).as_millis() as u64),
        })
        .chain(attempts.iter().map(|s| WritePoint {
            at_ms: rel(*s),
            took_ms: None,
        }))
        .collect();
    writes.sort_by_key(|w| w.at_ms);
    // The longest time without an acknowledgement, from a second before the fault to the end.
    let from = fault_at
        .checked_sub(Duration::from_secs(1))
        .unwrap_or(fault_at);
    let mut acks: Vec<Instant> = acked_list
        .iter()
        .map(|(_, _, a)| *a)
        .filter(|a| *a >= from)
        .collect();
    acks.sort();
    let mut max_gap = Duration::ZERO;
    let mut prev = from;
    for a in acks.iter().chain(std::iter::once(&end)) {
        max_gap = max_gap.max(a.duration_since(prev));
        prev = *a;
    }
    let window: Vec<Sample> = samples
        .iter()
        .copied()
        .filter(|s| s.at_ms >= -1000)
        .collect();
    let vip_two = time_where(&window, |s| s.vip.count_ones() > 1);
    let masters_two = time_where(&window, |s| s.masters.count_ones() > 1);
    let split = time_where(&window, |s| {
        s.vip.count_ones() > 1 || s.masters.count_ones() > 1
    });
    let moves = failovers(&window);
    let mut tl = vec![Mark {
        at_ms: 0,
        node: old_leader.clone(),
        what: fault.what.clone(),
    }];
    if let Some(h) = fault.healed {
        tl.push(Mark {
            at_ms: rel(h),
            node: old_leader.clone(),
            what: "fault healed".into(),
        });
    }
    if state.system != super::SYSTEM_KEEPALIVED {
        tl.extend(timeline(dir, &names, &old_leader, fault_wall));
    }
    tl.extend(sample_marks(&window, &names));
    if let Some(f) = first {
        tl.push(Mark {
            at_ms: f.as_millis() as i64,
            node: worker.clone(),
            what: "first acknowledged write".into(),
        });
    }
    tl.sort_by_key(|m| m.at_ms);
    let round2 = |x: f64| (x * 100.0).round() / 100.0;
    Ok(DrillReport {
        drill: drill.as_str().to_string(),
        system: state.system.clone(),
        first_write_ms: first.map(|d| d.as_millis() as u64),
        max_gap_ms: max_gap.as_millis() as u64,
        lost,
        unverified,
        split_brain_s: round2(split),
        vip_on_two_s: round2(vip_two),
        masters_on_two_s: round2(masters_two),
        failovers: moves,
        false_failovers: if drill.expects_no_failover() {
            moves
        } else {
            0
        },
        acknowledged: acked_list.len() as u64,
        write_errors,
        leader_before: old_leader,
        leader_after: new_leader,
        fault_ms: fault
            .healed
            .map_or(0, |h| h.duration_since(fault_at).as_millis() as u64),
        timeline: tl,
        samples,
        writes,
        nodes: names,
    })
}

/// Whether writes to `mount` succeed three times in a row (a second apart) within `timeout`: a
/// worker's first mount may still be replaced just after the rack turned healthy. Each try runs
/// on its own thread, so a request stuck on a mount being replaced cannot hang the drill.
fn mount_answers(mount: &Path, timeout: Duration) -> bool {
    let start = Instant::now();
    let mut in_a_row = 0;
    while start.elapsed() < timeout {
        let (tx, rx) = std::sync::mpsc::channel();
        let probe = mount.join(".mooseherd-probe");
        std::thread::spawn(move || {
            let ok = std::fs::write(&probe, b"ok").is_ok();
            let _ = tx.send(ok);
        });
        if rx.recv_timeout(Duration::from_secs(3)).unwrap_or(false) {
            in_a_row += 1;
            if in_a_row >= 3 {
                return true;
            }
        } else {
            in_a_row = 0;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    false
}

/// How long the verifier waits for the file system to answer before it calls the records it
/// could not read `unverified`.
pub const VERIFY_TIMEOUT: Duration = Duration::from_secs(60);

/// What reading the acknowledged records back found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Readback {
    pub lost: u64,
    pub unverified: u64,
}

/// Reads every acknowledged record back from `dir` (`rec-NNNNNNNN` holding its number). A
/// record is lost only when the file system answers and it is missing or wrong; one that cannot
/// be read (no master answering, EIO, a hung mount) is retried until `timeout` and then counted
/// as unverified. The reads run on a thread of their own, so a hung mount cannot hang the drill.
pub fn read_back(dir: &std::path::Path, seqs: &[u64], timeout: Duration) -> Readback {
    let (tx, rx) = std::sync::mpsc::channel();
    let (dir, seqs_owned) = (dir.to_path_buf(), seqs.to_vec());
    let deadline = Instant::now() + timeout;
    std::thread::spawn(move || {
        for seq in seqs_owned {
            let path = dir.join(format!("rec-{seq:08}"));
            let verdict = loop {
                match std::fs::read_to_string(&path) {
                    Ok(t) => break Some(t.trim() == seq.to_string()),
                    // The directory answers (the writer created the file through it): a missing
                    // record is a real loss.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        if std::fs::read_dir(&dir).is_ok() {
                            break Some(false);
                        }
                    }
                    Err(_) => {}
                }
                if Instant::now() >= deadline {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(500));
            };
            if tx.send(verdict).is_err() {
                return;
            }
        }
    });
    let mut r = Readback::default();
    let mut seen = 0usize;
    while seen < seqs.len() {
        let left = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(1);
        match rx.recv_timeout(left) {
            Ok(Some(true)) => {}
            Ok(Some(false)) => r.lost += 1,
            Ok(None) => r.unverified += 1,
            // The reader hangs in the file system: the rest cannot be told.
            Err(_) => {
                r.unverified += (seqs.len() - seen) as u64;
                break;
            }
        }
        seen += 1;
    }
    r
}

impl DrillReport {
    /// Whether the drill passed: no acknowledged write lost, no split-brain time, a write within
    /// [`WRITE_TIMEOUT`], and no failover in a drill where no node failed. `lab drill` exits 1
    /// otherwise.
    pub fn passed(&self) -> bool {
        self.lost == 0
            && self.unverified == 0
            && self.split_brain_s <= 0.0
            && self.first_write_ms.is_some()
            && self.false_failovers == 0
    }
}

/// Prints the report for a person.
pub fn print(r: &DrillReport) {
    println!(
        "drill {} ({}): leader {} -> {}",
        r.drill,
        r.system,
        r.leader_before,
        r.leader_after.as_deref().unwrap_or("none")
    );
    for m in &r.timeline {
        println!(
            "  {:>+8.3} s  {:<5} {}",
            m.at_ms as f64 / 1000.0,
            m.node,
            m.what
        );
    }
    match r.first_write_ms {
        Some(ms) => println!(
            "first acknowledged write {:.2} s after the fault; longest pause in the writes {:.2} s",
            ms as f64 / 1000.0,
            r.max_gap_ms as f64 / 1000.0
        ),
        None => println!(
            "no acknowledged write within {} s of the fault",
            WRITE_TIMEOUT.as_secs()
        ),
    }
    println!(
        "acknowledged writes: {}, lost: {}, unverified: {}, split-brain: {:.2} s (VIP on two nodes {:.2} s, two masters {:.2} s), failovers: {}{}",
        r.acknowledged,
        r.lost,
        r.unverified,
        r.split_brain_s,
        r.vip_on_two_s,
        r.masters_on_two_s,
        r.failovers,
        if expects_no_failover(&r.drill) {
            format!(" (false: {})", r.false_failovers)
        } else {
            String::new()
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_back_tells_lost_from_unverified() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("rec-00000001"), "1\n").unwrap();
        std::fs::write(d.join("rec-00000002"), "x\n").unwrap();
        // 3 is missing. 4 cannot be read (a directory: EISDIR, not "not found").
        std::fs::create_dir(d.join("rec-00000004")).unwrap();
        let r = read_back(d, &[1, 2, 3, 4], Duration::from_millis(600));
        assert_eq!(
            r,
            Readback {
                lost: 2,
                unverified: 1
            }
        );
    }

    fn smp(at_ms: i64, vip: u32, masters: u32) -> Sample {
        Sample {
            at_ms,
            vip,
            masters,
        }
    }

    #[test]
    fn split_brain_time_and_failovers_come_from_the_samples() {
        // pi1 (bit 0) serves, is cut off, pi2 (bit 1) takes over; for 200 ms both have the VIP.
        let s = vec![
            smp(-100, 0b01, 0b01),
            smp(0, 0b01, 0b01),
            smp(100, 0b11, 0b01),
            smp(300, 0b10, 0b00),
            smp(400, 0b10, 0b10),
            smp(500, 0b10, 0b10),
        ];
        assert!((time_where(&s, |x| x.vip.count_ones() > 1) - 0.2).abs() < 1e-9);
        assert_eq!(time_where(&s, |x| x.masters.count_ones() > 1), 0.0);
        assert!(time_where(&[], |_| true).is_sign_positive());
        assert_eq!(failovers(&s), 1);
        // Back to pi1, and a moment with no master does not count as a move.
        let mut back = s.clone();
        back.extend([smp(600, 0, 0), smp(700, 0b01, 0b01)]);
        assert_eq!(failovers(&back), 2);
        let names = vec!["pi1".to_string(), "pi2".to_string()];
        let marks = sample_marks(&s, &names);
        assert!(
            marks
                .iter()
                .any(|m| m.node == "pi2" && m.what.starts_with("+ VIP") && m.at_ms == 100)
        );
        assert!(
            marks
                .iter()
                .any(|m| m.node == "pi1" && m.what.starts_with("- mfsmaster") && m.at_ms == 300)
        );
    }

    #[test]
    fn the_chart_draws_lanes_writes_and_the_fault() {
        let r = DrillReport {
            drill: "kill-leader".into(),
            system: "mooseherd".into(),
            first_write_ms: Some(4000),
            max_gap_ms: 4100,
            lost: 0,
            unverified: 0,
            split_brain_s: 0.0,
            vip_on_two_s: 0.0,
            masters_on_two_s: 0.0,
            failovers: 1,
            false_failovers: 0,
            acknowledged: 3,
            write_errors: 1,
            leader_before: "pi1".into(),
            leader_after: Some("pi2".into()),
            fault_ms: 0,
            timeline: Vec::new(),
            samples: vec![
                smp(-1000, 1, 1),
                smp(0, 0, 0),
                smp(3800, 2, 2),
                smp(6000, 2, 2),
            ],
            writes: vec![
                WritePoint {
                    at_ms: -500,
                    took_ms: Some(20),
                },
                WritePoint {
                    at_ms: 1000,
                    took_ms: None,
                },
                WritePoint {
                    at_ms: 4000,
                    took_ms: Some(30),
                },
            ],
            nodes: vec!["pi1".into(), "pi2".into(), "pi<3>".into()],
        };
        let svg = crate::lab::chart::render(&r);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<circle").count(), 2, "{svg}");
        assert!(
            svg.contains("fill=\"#d33\""),
            "a failed write is drawn in red"
        );
        assert!(svg.contains("pi&lt;3&gt;"), "names are escaped");
        assert!(svg.contains("first acknowledged write after the fault 4.00 s"));
    }

    #[test]
    fn parses_tracing_timestamps() {
        let a = parse_ts("2026-11-25T09:28:04.628874Z").expect("ts");
        let b = parse_ts("2026-11-25T09:28:05.128874Z").expect("ts");
        assert!((b - a - 0.5).abs() < 1e-6);
        assert_eq!(parse_ts("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_ts("1970-01-02T00:00:01.5Z"), Some(86_401.5));
        assert_eq!(parse_ts("junk"), None);
    }
}
