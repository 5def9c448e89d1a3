//! `mooseherd bench failover`: every drill, N times, against mooseherd and against the
//! keepalived baseline on the same lab rack, in one run; a table of both side by side, a JSON
//! report, and one timeline chart per system and drill.
//!
//! The figure of a drill is the time from the fault to the first acknowledged write for the
//! drills with one event (kill, crash, freeze, partition, switchover), and the longest pause in
//! the writes for the drills that last (flap, lossy, starve). A drill with no acknowledged write
//! within [`WRITE_TIMEOUT`] counts as that timeout in the percentiles, and is counted apart.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::lab::drill::{self, Drill, DrillReport, WRITE_TIMEOUT};
use crate::lab::{self, SYSTEM_KEEPALIVED, SYSTEM_MOOSEHERD};

/// Options of `bench failover`.
#[derive(Debug, Clone)]
pub struct FailoverOptions {
    pub dir: PathBuf,
    pub runs: usize,
    /// Runs of kill-leader and partition-leader (the issue asks for at least 20 of each).
    pub runs_leader_lost: Option<usize>,
    pub drills: Vec<Drill>,
    pub systems: Vec<String>,
    /// Where the timeline charts go (one per system and drill: the first run).
    pub charts: Option<PathBuf>,
    /// How mooseherd's lab replicates the master's metadata: `shared-dir` or `metalogger`
    /// (the keepalived baseline always hands a shared data directory over).
    pub replication: String,
    /// MooseFS major releases to run every system on, one lab after the other (empty: the
    /// newest available, as `lab up`).
    pub moosefs: Vec<u8>,
}

/// One system's figures for one drill.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DrillStats {
    pub runs: usize,
    /// What p50/p99 measure: `first_write` or `longest_pause`.
    pub measure: String,
    pub p50_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
    /// Runs with no acknowledged write within the timeout.
    pub timeouts: usize,
    /// Acknowledged records proven missing.
    pub lost: u64,
    /// Acknowledged records that could not be read back (neither kept nor lost).
    pub unverified: u64,
    pub split_brain_s: f64,
    pub vip_on_two_s: f64,
    pub masters_on_two_s: f64,
    /// Runs with any split-brain time.
    pub split_brain_runs: usize,
    pub failovers: u32,
    pub false_failovers: u32,
    pub acknowledged: u64,
    /// Runs that could not be carried out (the error), and lab restarts needed before a run.
    pub errors: Vec<String>,
    pub lab_restarts: usize,
    /// Every run's figure, in order (ms; the timeout for none).
    pub each_ms: Vec<u64>,
}

/// The JSON report: `{"replication": BACKEND, "mooseherd": {DRILL: stats}, "keepalived": {...}}`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FailoverReport {
    /// mooseherd's replication backend in this run.
    pub replication: String,
    /// The MooseFS releases run ("3.0.117"). With more than one, each system's key carries its
    /// release: `mooseherd@4.57.5`.
    pub moosefs: Vec<String>,
    #[serde(flatten)]
    pub systems: BTreeMap<String, BTreeMap<String, DrillStats>>,
}

/// Nearest-rank percentile of sorted `v`.
fn percentile(v: &[u64], p: f64) -> u64 {
    crate::percentile::nearest_rank(v, p).unwrap_or(0)
}

/// Adds run `r` to `st`.
fn add(st: &mut DrillStats, r: &DrillReport) {
    let ms = if drill::measures_pause(&r.drill) {
        Some(r.max_gap_ms)
    } else {
        r.first_write_ms
    };
    st.runs += 1;
    st.timeouts += usize::from(ms.is_none());
    st.each_ms
        .push(ms.unwrap_or(WRITE_TIMEOUT.as_millis() as u64));
    st.lost += r.lost;
    st.unverified += r.unverified;
    st.split_brain_s += r.split_brain_s;
    st.vip_on_two_s += r.vip_on_two_s;
    st.masters_on_two_s += r.masters_on_two_s;
    st.split_brain_runs += usize::from(r.split_brain_s > 0.0);
    st.failovers += r.failovers;
    st.false_failovers += r.false_failovers;
    st.acknowledged += r.acknowledged;
    let mut sorted = st.each_ms.clone();
    sorted.sort_unstable();
    st.p50_ms = percentile(&sorted, 50.0);
    st.p99_ms = percentile(&sorted, 99.0);
    st.max_ms = sorted.last().copied().unwrap_or(0);
    let round2 = |x: f64| (x * 100.0).round() / 100.0;
    st.split_brain_s = round2(st.split_brain_s);
    st.vip_on_two_s = round2(st.vip_on_two_s);
    st.masters_on_two_s = round2(st.masters_on_two_s);
}

/// A new lab rack of `system` on MooseFS `moosefs` (removing whatever lab is there).
fn fresh_lab(o: &FailoverOptions, system: &str, moosefs: Option<u8>) -> anyhow::Result<()> {
    if lab::lab_file(&o.dir).exists() || !lab::net::lab_namespaces().is_empty() {
        lab::down(&o.dir, false)?;
    }
    lab::up(&lab::UpOptions {
        dir: o.dir.clone(),
        nodes: 5,
        replication: if system == SYSTEM_MOOSEHERD {
            o.replication.clone()
        } else {
            "shared-dir".into()
        },
        host: "linux".into(),
        system: system.into(),
        moosefs,
    })
}

/// Runs the benchmark. Progress goes to standard error, one line a run.
pub fn failover(o: &FailoverOptions) -> anyhow::Result<FailoverReport> {
    lab::require_root()?;
    for s in &o.systems {
        anyhow::ensure!(
            [SYSTEM_MOOSEHERD, SYSTEM_KEEPALIVED].contains(&s.as_str()),
            "unknown system `{s}` (mooseherd, keepalived)"
        );
    }
    if let Some(c) = &o.charts {
        std::fs::create_dir_all(c).with_context(|| format!("creating {}", c.display()))?;
    }
    anyhow::ensure!(
        ["shared-dir", "metalogger"].contains(&o.replication.as_str()),
        "unknown replication `{}` (shared-dir, metalogger)",
        o.replication
    );
    let mut report = FailoverReport {
        replication: o.replication.clone(),
        ..FailoverReport::default()
    };
    let majors: Vec<Option<u8>> = if o.moosefs.is_empty() {
        vec![None]
    } else {
        o.moosefs.iter().copied().map(Some).collect()
    };
    // Each release is checked before the first lab starts: a missing build fails at once.
    let mut releases = Vec::new();
    for &m in &majors {
        releases.push(lab::choose_moosefs(m)?.1.code().to_string());
    }
    report.moosefs = releases.clone();
    let runs_of = majors
        .iter()
        .zip(&releases)
        .flat_map(|(m, rel)| o.systems.iter().map(move |s| (*m, rel.clone(), s.clone())));
    for (major, release, system) in runs_of {
        let key = if majors.len() > 1 {
            format!("{system}@{release}")
        } else {
            system.clone()
        };
        let lab_up = || fresh_lab(o, &system, major);
        lab_up().with_context(|| format!("starting the {key} lab rack"))?;
        let system = &key;
        let per = report.systems.entry(key.clone()).or_default();
        for &d in &o.drills {
            let st = per.entry(d.to_string()).or_insert_with(|| DrillStats {
                measure: if d.measures_pause() {
                    "longest_pause".into()
                } else {
                    "first_write".into()
                },
                ..DrillStats::default()
            });
            let runs = match o.runs_leader_lost {
                Some(n) if d.loses_leader() => n,
                _ => o.runs,
            };
            for i in 0..runs {
                let state = lab::load(&o.dir)?;
                // A rack left without a master by the previous run is restarted, as its
                // operator would have to; the run is counted.
                if lab::wait_system_healthy(&o.dir, &state, Duration::from_secs(60)).is_err() {
                    eprintln!(
                        "bench failover: {system} rack not healthy before {d} run {}: restarting it",
                        i + 1
                    );
                    st.lab_restarts += 1;
                    lab_up()?;
                }
                match drill::run(&o.dir, d) {
                    Ok(r) => {
                        eprintln!(
                            "bench failover: {system:<10} {d:<16} run {:>2}/{runs}: first write {}, longest pause {:.2} s, lost {}, unverified {}, split brain {:.2} s, failovers {}",
                            i + 1,
                            r.first_write_ms
                                .map_or("none".into(), |ms| format!("{:.2} s", ms as f64 / 1000.0)),
                            r.max_gap_ms as f64 / 1000.0,
                            r.lost,
                            r.unverified,
                            r.split_brain_s,
                            r.failovers
                        );
                        if i == 0
                            && let Some(c) = &o.charts
                        {
                            let p = c.join(format!("failover-{system}-{d}.svg"));
                            std::fs::write(&p, lab::chart::render(&r))
                                .with_context(|| format!("writing {}", p.display()))?;
                        }
                        add(st, &r);
                    }
                    Err(e) => {
                        eprintln!("bench failover: {system} {d} run {}: {e:#}", i + 1);
                        st.errors.push(format!("run {}: {e:#}", i + 1));
                    }
                }
            }
        }
        lab::down(&o.dir, false)?;
    }
    Ok(report)
}

/// The side-by-side table.
pub fn table(r: &FailoverReport) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "{:<17} {:<17} {:>4} {:>7} {:>7} {:>7} {:>7} {:>5} {:>7} {:>11} {:>7} {:>7} {:>9} {:>5} {:>6}\n",
        "drill",
        "system",
        "runs",
        "p50 s",
        "p99 s",
        "max s",
        "timeout",
        "lost",
        "unverif",
        "split-brain",
        "VIPx2",
        "mfsx2",
        "failovers",
        "false",
        "errors"
    ));
    let drills: Vec<String> = Drill::ALL
        .iter()
        .map(|d| d.to_string())
        .filter(|d| r.systems.values().any(|m| m.contains_key(d)))
        .collect();
    for d in drills {
        for (system, per) in &r.systems {
            if let Some(st) = per.get(&d) {
                s.push_str(&format!(
                    "{:<17} {:<17} {:>4} {:>7.2} {:>7.2} {:>7.2} {:>7} {:>5} {:>7} {:>9.2} s {:>7.2} {:>7.2} {:>9} {:>5} {:>6}\n",
                    format!(
                        "{d}{}",
                        if st.measure == "longest_pause" {
                            "*"
                        } else {
                            ""
                        }
                    ),
                    system,
                    st.runs,
                    st.p50_ms as f64 / 1000.0,
                    st.p99_ms as f64 / 1000.0,
                    st.max_ms as f64 / 1000.0,
                    st.timeouts,
                    st.lost,
                    st.unverified,
                    st.split_brain_s,
                    st.vip_on_two_s,
                    st.masters_on_two_s,
                    st.failovers,
                    st.false_failovers,
                    st.errors.len() + st.lab_restarts
                ));
            }
        }
        if let (Some(m), Some(k)) = (
            r.systems.get(SYSTEM_MOOSEHERD).and_then(|x| x.get(&d)),
            r.systems.get(SYSTEM_KEEPALIVED).and_then(|x| x.get(&d)),
        ) && m.p50_ms > 0
        {
            s.push_str(&format!(
                "{:<17} keepalived/mooseherd p50 = {:.2}x\n",
                "",
                k.p50_ms as f64 / m.p50_ms as f64
            ));
        }
    }
    s.push_str(&format!(
        "mooseherd replication: {}. p50/p99/max: fault -> first acknowledged write; * longest pause in the writes during the fault. \
         timeout: no write within {} s (counted as {} s). split-brain: total seconds with the VIP on two nodes \
         (VIPx2) or two mfsmasters accepting connections (mfsx2), summed over the runs. false: failovers where no \
         node failed. lost: acknowledged records proven missing; unverif: could not be read back. errors: runs \
         not carried out + rack restarts needed.\n",
        r.replication,
        WRITE_TIMEOUT.as_secs(),
        WRITE_TIMEOUT.as_secs()
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 50.0), 0);
        assert_eq!(percentile(&[1, 2, 3], 50.0), 2);
    }
}
