//! The lab rack with real MooseFS in network namespaces: comes up healthy; the button switches
//! the master over; every failover drill runs once (the short version of `bench failover`) with
//! no acknowledged write lost, no split brain and no false failover; a killed worker mount is
//! remounted; a killed chunkserver is restarted; the keepalived baseline comes up and runs a
//! drill; MooseFS 3.0 (Debian's packages) keeps a kill-leader drill of its own, while the rest
//! runs on MooseFS 4 (`scripts/moosefs.sh build`). Needs root, the MooseFS and keepalived packages
//! (`scripts/setup.sh`) and the MooseFS 4 build; runs on x86_64 only (an emulated agent would
//! only slow the drill).
//! Everything is torn down at the end, pass or fail.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::harness::{BIN, is_root, wait_until};

struct Lab {
    dir: PathBuf,
}

impl Lab {
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new(BIN)
            .arg("lab")
            .args(args)
            .arg("--dir")
            .arg(&self.dir)
            .output()
            .expect("run mooseherd lab")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // `lab down` also removes `mhlab-*` namespaces it finds by name: a test whose `lab up`
        // was refused because another lab runs must not take that lab down.
        if !self.dir.join("lab.json").exists() {
            return;
        }
        let _ = Command::new(BIN)
            .args(["lab", "down", "--dir"])
            .arg(&self.dir)
            .output();
    }
}

/// Whether `scripts/moosefs.sh build` made a MooseFS 4 for the lab (`lab up --moosefs 4`).
fn moosefs4_built() -> bool {
    mooseherd::lab::moosefs4_dirs()[0]
        .join("mfsmaster")
        .is_file()
}

/// A 5-node shared-dir lab on MooseFS `major` ("3" or "4"), checked with `lab exec pi1 --
/// mfsmaster -v`, whose output must start with `expect`.
fn up_on_moosefs(major: &str, expect: &str) -> (tempfile::TempDir, Lab) {
    let (base, lab) = up(&["--replication", "shared-dir", "--moosefs", major]);
    let v = master_version(&lab, "pi1");
    assert!(v.starts_with(expect), "lab exec pi1 -- mfsmaster -v: {v}");
    (base, lab)
}

/// `lab exec NODE -- mfsmaster -v` in `lab`: the release the lab's nodes run.
fn master_version(lab: &Lab, node: &str) -> String {
    let out = Command::new(BIN)
        .args(["lab", "exec", "--dir"])
        .arg(&lab.dir)
        .args([node, "--", "mfsmaster", "-v"])
        .output()
        .expect("run mooseherd lab exec");
    String::from_utf8_lossy(&out.stdout).to_string()
}

fn pids_matching(pattern: &str) -> Vec<u32> {
    let out = Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .expect("pgrep");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn wait(what: &str, timeout: Duration, f: impl Fn() -> bool) -> Duration {
    wait_until(what, timeout, Duration::from_millis(200), f, String::new)
}

/// A 5-node lab rack in a temporary directory, up and healthy (`extra`: more `lab up` arguments).
fn up(extra: &[&str]) -> (tempfile::TempDir, Lab) {
    let base = tempfile::tempdir().expect("tempdir");
    // The MooseFS daemons run as `mfs`: the lab directory's parents must be traversable.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let lab = Lab {
        dir: base.path().join("lab"),
    };
    let mut args = vec!["up", "--nodes", "5"];
    args.extend_from_slice(extra);
    let up = lab.run(&args);
    let text =
        String::from_utf8_lossy(&up.stdout).to_string() + &String::from_utf8_lossy(&up.stderr);
    assert!(
        up.status.success() && text.contains("healthy after"),
        "lab up:\n{text}"
    );
    (base, lab)
}

fn can_write(dir: &Path) -> bool {
    std::fs::write(dir.join("probe.txt"), b"ok").is_ok()
}

/// Runs drill `name` on `lab` and returns its JSON report.
fn drill(lab: &Lab, name: &str) -> serde_json::Value {
    let out = lab.run(&["drill", name, "--json"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let report: serde_json::Value = serde_json::from_str(text.trim()).unwrap_or_else(|e| {
        panic!(
            "{name}: {e}: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    eprintln!(
        "{name}: first write {} ms, longest pause {} ms, lost {}, split brain {} s, failovers {}",
        report["first_write_ms"],
        report["max_gap_ms"],
        report["lost"],
        report["split_brain_s"],
        report["failovers"]
    );
    report
}

/// The keepalived baseline comes up on the same lab and a drill runs against it: its figures
/// are measured (bench failover), not asserted, except that the drill works and its verifier
/// finds every acknowledged write.
#[test]
fn keepalived_baseline_runs_a_drill() {
    skip_unless!(
        is_root(),
        "the lab needs root (network namespaces, MooseFS daemons)"
    );
    let base = tempfile::tempdir().expect("tempdir");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let lab = Lab {
        dir: base.path().join("lab"),
    };
    let up = lab.run(&["baseline", "up"]);
    let text =
        String::from_utf8_lossy(&up.stdout).to_string() + &String::from_utf8_lossy(&up.stderr);
    assert!(
        up.status.success() && text.contains("healthy after"),
        "lab baseline up:\n{text}"
    );
    let status = String::from_utf8_lossy(&lab.run(&["status"]).stdout).to_string();
    assert!(status.contains("MASTER"), "{status}");
    let report = drill(&lab, "kill-leader");
    assert_eq!(report["system"], "keepalived", "{report}");
    assert_eq!(report["lost"], 0, "{report}");
    assert!(report["first_write_ms"].as_u64().is_some(), "{report}");
}

/// Part of the normal suite (scripts/test.sh runs as root).
#[test]
fn lab_rack_with_real_moosefs_survives_its_faults() {
    skip_unless!(
        is_root(),
        "the lab needs root (network namespaces, MooseFS daemons)"
    );
    skip_unless!(
        moosefs4_built(),
        "this lab runs MooseFS 4: build it once with `sudo scripts/moosefs.sh build` (~1-2 min)"
    );
    let (_base, lab) = up_on_moosefs("4", "version: 4.");
    let status = String::from_utf8_lossy(&lab.run(&["status"]).stdout).to_string();
    assert!(
        status.contains(" 4."),
        "lab status shows MooseFS 4:\n{status}"
    );

    // The leader's (simulated) button held 3.5 s: a switchover to the other candidate.
    let leader = || {
        let out = String::from_utf8_lossy(&lab.run(&["status"]).stdout).to_string();
        out.lines()
            .find(|l| l.split_whitespace().nth(2) == Some("leader"))
            .and_then(|l| l.split_whitespace().next())
            .map(str::to_string)
    };
    let first = leader().expect("a leader after lab up");
    let press = lab.run(&["button", &first, "--hold", "3.5"]);
    assert!(press.status.success(), "{press:?}");
    let took = wait(
        "a switchover by the button",
        Duration::from_secs(20),
        || leader().is_some_and(|l| l != first),
    );
    eprintln!(
        "button held 3.5 s on {first} -> {:?} leads {took:?} after release",
        leader()
    );
    let leds = std::fs::read_to_string(lab.dir.join(&first).join("gpio").join("leds.jsonl"))
        .unwrap_or_default();
    assert!(leds.lines().count() > 2, "{first}'s LED timeline: {leds}");
    // The drill waits for the rack to be healthy again (VIP on the new leader).

    // Every drill once (the short version of `bench failover`): writes resume, nothing
    // acknowledged is lost, never two VIPs or two masters, no failover without a failure.
    for &name in mooseherd::lab::drill::DRILLS {
        let report = drill(&lab, name);
        assert_eq!(report["lost"], 0, "{name}: {report}");
        assert_eq!(
            report["split_brain_s"].as_f64(),
            Some(0.0),
            "{name}: {report}"
        );
        assert_eq!(report["false_failovers"], 0, "{name}: {report}");
        assert!(
            report["first_write_ms"]
                .as_u64()
                .is_some_and(|ms| ms < 30_000),
            "{name}: {report}"
        );
        if ["kill-leader", "partition-leader", "switchover"].contains(&name) {
            assert_ne!(
                report["leader_before"], report["leader_after"],
                "{name}: {report}"
            );
        }
    }

    // A worker's mfsmount killed: the agent notices and remounts.
    let mnt = lab.dir.join("pi4").join("mnt");
    // mfsmount rewrites its command line to "mfsmount (mounted on: PATH)".
    let mounts = pids_matching(&format!("mfsmount.*{}", mnt.display()));
    assert!(!mounts.is_empty(), "pi4's mfsmount runs");
    for p in &mounts {
        let _ = Command::new("kill").args(["-9", &p.to_string()]).status();
    }
    let took = wait("pi4's mount to work again", Duration::from_secs(30), || {
        can_write(&mnt)
    });
    eprintln!("mfsmount killed -> remounted and writable after {took:?}");

    // A chunkserver killed: restarted with back-off.
    let pattern = format!("mfschunkserver -c {}", lab.dir.join("pi3").display());
    let before = pids_matching(&pattern);
    assert!(!before.is_empty(), "pi3's chunkserver runs");
    for p in &before {
        let _ = Command::new("kill").args(["-9", &p.to_string()]).status();
    }
    let took = wait(
        "pi3's chunkserver to run again",
        Duration::from_secs(30),
        || {
            let now = pids_matching(&pattern);
            !now.is_empty() && now.iter().all(|p| !before.contains(p))
        },
    );
    eprintln!("chunkserver killed -> restarted after {took:?}");
}

/// MooseFS 3.0 (Debian 12's packages) keeps one kill-leader drill: writes resume, nothing
/// acknowledged is lost, never two VIPs or two masters.
#[test]
fn lab_rack_on_moosefs_3_fails_over() {
    skip_unless!(
        is_root(),
        "the lab needs root (network namespaces, MooseFS daemons)"
    );
    let (_base, lab) = up_on_moosefs("3", "version: 3.0.");
    let report = drill(&lab, "kill-leader");
    eprintln!("kill-leader on MooseFS 3.0: {report}");
    assert_eq!(report["lost"], 0, "{report}");
    assert_eq!(report["split_brain_s"].as_f64(), Some(0.0), "{report}");
    // ~4 s typically; ~14 s when the write in flight had its chunk's second copy on the killed
    // node (MooseFS 3.0 refuses writes to such chunks for its first 10 s).
    assert!(
        report["first_write_ms"]
            .as_u64()
            .is_some_and(|ms| ms < 30_000),
        "{report}"
    );
    assert_ne!(report["leader_before"], report["leader_after"], "{report}");
}

/// The metalogger backend end to end, twice: the standby takes the newest changelogs from its
/// metalogger, then the master comes back on the node killed first, whose metalogger restarted
/// with it and must have downloaded the new master's metadata (it once could not: every second
/// failover stalled). Asynchronous, so writes acknowledged just before the kill may be lost: the
/// count is reported, not asserted to be zero; unreadable records are not.
#[test]
fn lab_rack_with_metaloggers_fails_over() {
    skip_unless!(
        is_root(),
        "the lab needs root (network namespaces, MooseFS daemons)"
    );
    // On MooseFS 3.0: on 4.58.1 this rack once came up with a leader but no VIP within 60 s
    // (a second try came up and failed over in 4.0 s); not understood yet.
    let (_base, lab) = up(&["--replication", "metalogger", "--moosefs", "3"]);
    let status = || String::from_utf8_lossy(&lab.run(&["status"]).stdout).to_string();
    let mut leaders = Vec::new();
    for round in 1..=2 {
        // The drill waits until the rack is healthy, the standby eligible: its metalogger
        // needs a moment to download the metadata after a (re)start.
        let drill = lab.run(&["drill", "kill-leader", "--json"]);
        let out = String::from_utf8_lossy(&drill.stdout).to_string();
        let report: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_else(|e| {
            panic!(
                "{e}: {out}\n{}\n{}",
                String::from_utf8_lossy(&drill.stderr),
                status()
            )
        });
        eprintln!("kill-leader (metalogger) round {round}: {report}");
        assert_eq!(report["split_brain_s"].as_f64(), Some(0.0), "{report}");
        // ~4-5 s typically; a write whose chunk had its second copy on the killed node waits
        // for the new master's refusal of chunks under their goal (10 s on MooseFS 3.0, 5 s on
        // 4.x): ~14 s in about 1 failover in 16 on 3.0. A stall of minutes (the replayed chunk lock, a standby without
        // metadata) stays a failure.
        assert!(
            report["first_write_ms"]
                .as_u64()
                .is_some_and(|ms| ms < 20_000),
            "{report}"
        );
        assert_eq!(report["unverified"].as_u64(), Some(0), "{report}");
        assert_ne!(report["leader_before"], report["leader_after"], "{report}");
        leaders.push(report["leader_after"].clone());
    }
    assert_ne!(
        leaders[0], leaders[1],
        "the second failover goes back to the first node"
    );
}
