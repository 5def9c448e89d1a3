//! Failover drills on the lab rack, with a writer, a verifier, a split-brain monitor and a
//! timeline.
//!
//! - The **writer** appends numbered records to a file on a worker's mfsmount, each followed by
//!   fsync; a record counts as acknowledged when fsync returned. It keeps writing through the drill.
//! - The **monitor** checks every 50 ms how many namespaces have the VIP configured and how many
//!   mfsmasters accept connections; time with two of either is split-brain time.
//! - The **verifier** reads the file back afterwards: every acknowledged record must be there.
//! - The **timeline** comes from the agents' JSON logs (the decisions, with their timestamps).

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde::Serialize;

use super::{LabState, has_vip, kill_node, leader, load, net, start_agent, wait_healthy};

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

/// What `mooseherd lab drill --json` prints.
#[derive(Debug, Clone, Serialize)]
pub struct DrillReport {
    pub drill: String,
    /// From the fault to the first acknowledged write after it.
    pub first_write_ms: Option<u64>,
    /// Acknowledged records missing when read back.
    pub lost: u64,
    /// Seconds during which two namespaces had the VIP or two mfsmasters accepted connections.
    pub split_brain_s: f64,
    pub acknowledged: u64,
    pub leader_before: String,
    pub leader_after: Option<String>,
    pub timeline: Vec<Mark>,
}

/// Shared between the writer thread and the drill.
#[derive(Default)]
struct WriterLog {
    /// Acknowledged records: sequence number, when the write started, when fsync returned.
    acked: Vec<(u64, Instant, Instant)>,
    errors: u64,
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
            }
        }
        seq += 1;
        std::thread::sleep(Duration::from_millis(if ok { 20 } else { 100 }));
    }
}

/// Split-brain monitor: runs in the switch namespace (it can reach every node).
fn monitor(names: Vec<String>, stop: Arc<AtomicBool>, split: Arc<Mutex<Duration>>) {
    let Ok(ns) = std::fs::File::open(format!("/run/netns/{}", net::SWITCH_NS)) else {
        return;
    };
    if nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
        return;
    }
    let tick = Duration::from_millis(50);
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        let vips = names.iter().filter(|n| has_vip(n)).count();
        let masters = (0..names.len())
            .filter(|i| {
                TcpStream::connect_timeout(
                    &SocketAddr::from((net::node_addr(*i), MASTER_CLIENT_PORT)),
                    Duration::from_millis(30),
                )
                .is_ok()
            })
            .count();
        let spent = t0.elapsed().max(tick);
        if (vips > 1 || masters > 1)
            && let Ok(mut s) = split.lock()
        {
            *s += spent;
        }
        if let Some(rest) = tick.checked_sub(t0.elapsed()) {
            std::thread::sleep(rest);
        }
    }
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

/// Runs drill `name` on the lab at `dir`.
pub fn run(dir: &Path, name: &str) -> anyhow::Result<DrillReport> {
    super::require_root()?;
    let state: LabState = load(dir)?;
    let names = state.nodes.clone();
    wait_healthy(dir, &names, Duration::from_secs(30))
        .context("the lab rack is not healthy before the drill")?;
    let (old_leader, _) = leader(dir, &names).context("no leader")?;
    // Write through a worker that is not a master candidate (it survives the drill).
    let worker = names
        .get(3)
        .or_else(|| names.get(2))
        .cloned()
        .context("no worker")?;
    let mount = dir.join(&worker).join("mnt");
    if !mount_answers(&mount, Duration::from_secs(60)) {
        bail!(
            "{}'s MooseFS mount at {} does not accept writes within 60 s; see {}/{worker}/agent.log",
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
        "{name}-{}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    ));
    std::fs::create_dir_all(&file).with_context(|| format!("creating {}", file.display()))?;
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(WriterLog::default()));
    let split = Arc::new(Mutex::new(Duration::ZERO));
    let w = {
        let (f, s, l) = (file.clone(), Arc::clone(&stop), Arc::clone(&log));
        std::thread::spawn(move || writer(f, s, l))
    };
    let m = {
        let (n, s, sp) = (names.clone(), Arc::clone(&stop), Arc::clone(&split));
        std::thread::spawn(move || monitor(n, s, sp))
    };
    // Steady writes first.
    let warm = Instant::now();
    while log.lock().map(|l| l.acked.len()).unwrap_or(0) < 20
        && warm.elapsed() < Duration::from_secs(20)
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    if log.lock().map(|l| l.acked.len()).unwrap_or(0) < 20 {
        stop.store(true, Ordering::Relaxed);
        let _ = w.join();
        let _ = m.join();
        bail!(
            "the writer could not write to {} before the drill",
            file.display()
        );
    }
    match name {
        "kill-leader" => {
            let pids = kill_node(&old_leader);
            // The fault counts from when every killed process is dead: a write that started
            // while the signals were on their way could still be acknowledged by the old master.
            let t0 = Instant::now();
            while pids.iter().any(|p| alive(*p)) && t0.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        other => bail!("unknown drill `{other}` (available: kill-leader)"),
    }
    let fault_at = Instant::now();
    let fault_wall = wall_now();
    // Wait for the first acknowledged write after the fault, then a few more seconds of writes.
    let first = loop {
        let first = log.lock().ok().and_then(|l| {
            l.acked
                .iter()
                .find(|(_, started, _)| *started > fault_at)
                .map(|(_, _, acked)| acked.duration_since(fault_at))
        });
        if first.is_some() || fault_at.elapsed() > Duration::from_secs(90) {
            break first;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let _ = w.join();
    let _ = m.join();
    let new_leader = leader(dir, &names).map(|l| l.0);
    // Verify: every acknowledged record is in the file.
    let acked: Vec<u64> = log
        .lock()
        .map(|l| l.acked.iter().map(|(s, _, _)| *s).collect())
        .unwrap_or_default();
    let present: BTreeSet<u64> = acked
        .iter()
        .copied()
        .filter(|seq| {
            std::fs::read_to_string(file.join(format!("rec-{seq:08}")))
                .is_ok_and(|t| t.trim() == seq.to_string())
        })
        .collect();
    let lost = acked.iter().filter(|s| !present.contains(s)).count() as u64;
    // Bring the killed node back for the next drill.
    if let Ok(pid) = start_agent(dir, &old_leader, "linux") {
        let mut st = state.clone();
        st.agents.insert(old_leader.clone(), pid);
        let _ = std::fs::write(super::lab_file(dir), serde_json::to_string_pretty(&st)?);
    }
    let mut tl = vec![Mark {
        at_ms: 0,
        node: old_leader.clone(),
        what: "killed (agent and daemons, SIGKILL)".into(),
    }];
    tl.extend(timeline(dir, &names, &old_leader, fault_wall));
    if let Some(f) = first {
        tl.push(Mark {
            at_ms: f.as_millis() as i64,
            node: worker.clone(),
            what: "first acknowledged write".into(),
        });
        tl.sort_by_key(|m| m.at_ms);
    }
    let split_s = split.lock().map(|d| d.as_secs_f64()).unwrap_or(0.0);
    Ok(DrillReport {
        drill: name.to_string(),
        first_write_ms: first.map(|d| d.as_millis() as u64),
        lost,
        split_brain_s: (split_s * 100.0).round() / 100.0,
        acknowledged: acked.len() as u64,
        leader_before: old_leader,
        leader_after: new_leader,
        timeline: tl,
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

/// Prints the report for a person.
pub fn print(r: &DrillReport) {
    println!(
        "drill {}: {} killed; new leader {}",
        r.drill,
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
            "first acknowledged write {:.2} s after the fault",
            ms as f64 / 1000.0
        ),
        None => println!("no acknowledged write within 90 s of the fault"),
    }
    println!(
        "acknowledged writes: {}, lost: {}, split-brain: {:.2} s",
        r.acknowledged, r.lost, r.split_brain_s
    );
}

/// Whether process `pid` still runs (a zombie has exited: nobody reaps orphans in some containers).
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X')),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
