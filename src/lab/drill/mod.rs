//! Failover drills on the lab rack, with a writer, a verifier, a split-brain monitor and a
//! timeline.
//!
//! - The **writer** appends numbered records to a file on a worker's mfsmount, each followed by
//!   fsync; a record counts as acknowledged when fsync returned. It keeps writing through the drill.
//! - The **monitor** checks every 50 ms how many namespaces have the VIP configured and how many
//!   mfsmasters accept connections; time with two of either is split-brain time.
//! - The **verifier** reads the file back afterwards: every acknowledged record must be there.
//! - The **timeline** comes from the agents' JSON logs (the decisions, with their timestamps).

mod inject;
mod monitor;
mod timeline;
mod verify;
mod writer;

pub use monitor::Sample;
pub use timeline::Mark;
pub use verify::{Readback, VERIFY_TIMEOUT, read_back};

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde::Serialize;

use super::{LabState, load};
use inject::inject;
use monitor::{failovers, monitor, sample_marks, time_where};
use timeline::{timeline, wall_now};
use writer::{WriterLog, writer};

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

/// A write in flight at the fault and acknowledged later than this after it counts as the
/// first write after the fault.
const IN_FLIGHT_GRACE: Duration = Duration::from_millis(250);
/// A drill whose first write after the fault took longer keeps the lab's logs and metadata.
const STALL_EVIDENCE: Duration = Duration::from_secs(60);

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
    let Readback {
        lost,
        unverified,
        lost_records,
    } = read_back(&file, &seqs, VERIFY_TIMEOUT);
    // A lost record, or no write for a minute (a stall of MooseFS's own, e.g. a replayed chunk
    // lock): the evidence is kept before the next drill replaces the lab.
    let stalled = first.is_none_or(|f| f > STALL_EVIDENCE);
    let evidence = if lost > 0 || stalled {
        keep_evidence(dir)
    } else {
        None
    };
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
    let mut gap_at = (from, from);
    let mut prev = from;
    for a in acks.iter().chain(std::iter::once(&end)) {
        if a.duration_since(prev) > max_gap {
            max_gap = a.duration_since(prev);
            gap_at = (prev, *a);
        }
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
    for (seq, what) in &lost_records {
        if let Some((_, started, acked)) = acked_list.iter().find(|(s, _, _)| s == seq) {
            tl.push(Mark {
                at_ms: rel(*acked),
                node: worker.clone(),
                what: format!(
                    "record {seq} (written from {} ms, acknowledged here) is lost: {what}{}",
                    rel(*started),
                    evidence
                        .as_ref()
                        .map(|e| format!("; logs and metadata kept in {}", e.display()))
                        .unwrap_or_default()
                ),
            });
        }
    }
    if let Some(e) = evidence.as_ref().filter(|_| lost_records.is_empty()) {
        tl.push(Mark {
            at_ms: first.map_or(0, |f| f.as_millis() as i64),
            node: worker.clone(),
            what: format!(
                "no write for over {} s: logs and metadata kept in {}",
                STALL_EVIDENCE.as_secs(),
                e.display()
            ),
        });
    }
    if !max_gap.is_zero() {
        tl.push(Mark {
            at_ms: rel(gap_at.0),
            node: worker.clone(),
            what: format!(
                "longest pause in acknowledged writes begins ({} ms)",
                max_gap.as_millis()
            ),
        });
        tl.push(Mark {
            at_ms: rel(gap_at.1),
            node: worker.clone(),
            what: if gap_at.1 == end {
                "longest pause ends with the drill".into()
            } else {
                "longest pause ends (acknowledged write)".into()
            },
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

/// A drill that lost an acknowledged write, or saw none for a minute, keeps the evidence before the next drill (or `lab
/// down`) replaces it: the agents' and daemons' logs and every node's metadata and changelogs,
/// copied to `DIR-lost-UNIXTIME` (no chunk data, nothing under a mount). Returns where, or `None` if the
/// copy failed (logged).
fn keep_evidence(dir: &Path) -> Option<std::path::PathBuf> {
    tracing::warn!(
        "an acknowledged write was lost, or writes stalled: keeping the lab's logs and metadata"
    );
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let to = std::path::PathBuf::from(format!("{}-lost-{stamp}", dir.display()));
    // `--one-file-system`: never into a worker's (maybe hung) FUSE mount.
    let status =
        std::fs::create_dir_all(&to).and_then(|()| {
            std::process::Command::new("sh")
            .arg("-c")
            .arg(
                "tar -C \"$1\" --one-file-system --exclude=./*/chunks --exclude='*.sock' -cf - . \
                 | tar -C \"$2\" -xf -",
            )
            .args(["keep-evidence", &dir.display().to_string(), &to.display().to_string()])
            .status()
        });
    match status {
        Ok(s) if s.success() => Some(to),
        other => {
            tracing::warn!(
                "cannot keep the evidence of a lost write in {}: {other:?}",
                to.display()
            );
            None
        }
    }
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
    use monitor::tests::smp;

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
}
