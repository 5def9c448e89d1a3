//! Real agents on loopback: membership over the authenticated wire, the quorum lease, and the
//! control socket. Each rack takes a loopback network and port of its own (`harness::Net`), so
//! tests can run in parallel; every process is killed when the test ends, pass or fail.

use std::net::UdpSocket;
use std::process::Command;
use std::time::{Duration, Instant};

use mooseherd::core::NodeId;
use mooseherd::core::agent::AgentMsg;
use mooseherd::core::lease::LeaseMsg;
use mooseherd::wire::{Endpoint, Keyring, Opened};

use crate::harness::{BIN, TestRack, slack, tail};

impl TestRack {
    /// The state `observer` has for member `name`.
    fn member_state(&self, observer: &str, name: &str) -> Option<String> {
        let s = self.status(observer)?;
        let id = self.names.iter().position(|n| n == name)?;
        s["agent"]["members"]
            .as_array()?
            .iter()
            .find(|m| m["id"] == id)?
            .get("state")?
            .as_str()
            .map(String::from)
    }

    fn keyring(&self) -> Keyring {
        Keyring::load(&self.dir.path().join("keyring")).expect("keyring")
    }

    fn fingerprint(&self) -> u64 {
        let (rack, _) =
            mooseherd::config::Rack::load(&self.rack(), mooseherd::config::HostChecks::NONE)
                .expect("rack");
        rack.fingerprint()
    }
}

#[test]
fn membership_sees_kill_freeze_and_recovery_and_counts_bad_frames() {
    let mut r = TestRack::new(&[
        ("n1", "\"master\", \"chunkserver\"", true, 200),
        ("n2", "\"master\", \"chunkserver\"", true, 150),
        ("n3", "\"worker\"", true, 100),
        ("n4", "\"worker\"", false, 100),
        ("ghost", "\"worker\"", false, 100),
    ]);
    for n in ["n1", "n2", "n3", "n4"] {
        r.start(n);
    }
    let s = slack();
    r.wait("all four alive at n1", Duration::from_secs(10) * s, |r| {
        ["n2", "n3", "n4"]
            .iter()
            .all(|m| r.member_state("n1", m).as_deref() == Some("alive"))
    });

    // SIGKILL one, SIGSTOP another: the others notice within the configured bounds. Detection is
    // ~2 s on an idle machine; Lifeguard stretches suspicion (at most 2 s at 5 nodes) by up to 9x
    // when the observers themselves are slow, so the bound is ~20 s on a starved machine.
    r.kill("n4");
    r.signal("n3", "-STOP");
    let took = r.wait(
        "n4 down and n3 suspect or down at n1 and n2",
        Duration::from_secs(25) * s,
        |r| {
            ["n1", "n2"].iter().all(|o| {
                r.member_state(o, "n4").as_deref() == Some("down")
                    && matches!(r.member_state(o, "n3").as_deref(), Some("suspect" | "down"))
            })
        },
    );
    eprintln!("detected kill and freeze in {took:?}");

    // Back again: restart and SIGCONT.
    r.start("n4");
    r.signal("n3", "-CONT");
    r.wait(
        "n3 and n4 alive again at n1 and n2",
        Duration::from_secs(10) * s,
        |r| {
            ["n1", "n2"].iter().all(|o| {
                ["n3", "n4"]
                    .iter()
                    .all(|m| r.member_state(o, m).as_deref() == Some("alive"))
            })
        },
    );

    // A frame sealed with a key the rack does not have.
    let n1 = r.addr("n1");
    let stranger = Keyring::from_keys(&[(9, [7u8; 32])]).expect("keyring");
    let mut bad = Endpoint::new(NodeId(4), 5, r.fingerprint(), stranger, 42).expect("endpoint");
    let sock = UdpSocket::bind(r.addr("ghost")).expect("bind ghost");
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let frame = bad
        .seal_msg(NodeId(0), &AgentMsg::Lease(LeaseMsg::Query { round: 1 }))
        .expect("seal");
    sock.send_to(&frame, n1).expect("send");

    // A genuine frame from the (not running) ghost node, synced, delivered, then replayed.
    let mut ghost =
        Endpoint::new(NodeId(4), 5, r.fingerprint(), r.keyring(), 77).expect("endpoint");
    let first = ghost
        .seal_msg(NodeId(0), &AgentMsg::Lease(LeaseMsg::Query { round: 1 }))
        .expect("seal");
    sock.send_to(&first, n1).expect("send");
    let mut buf = [0u8; 2048];
    let mut synced = false;
    for _ in 0..10 {
        let Ok((len, _)) = sock.recv_from(&mut buf) else {
            break;
        };
        if matches!(ghost.open(&buf[..len]), Ok(Opened::Synced { .. })) {
            synced = true;
            break;
        }
    }
    assert!(synced, "n1 answers an unsynced frame with a sync frame");
    let good = ghost
        .seal_msg(NodeId(0), &AgentMsg::Lease(LeaseMsg::Query { round: 2 }))
        .expect("seal");
    sock.send_to(&good, n1).expect("send");
    sock.send_to(&good, n1).expect("replay");
    r.wait(
        "rejects counted in status --json",
        Duration::from_secs(5),
        |r| {
            r.status("n1").is_some_and(|s| {
                s["wire"]["rejects"]["unknown_key"].as_u64() >= Some(1)
                    && s["wire"]["rejects"]["replayed"].as_u64() >= Some(1)
            })
        },
    );
}

#[test]
fn leader_killed_is_replaced_and_a_frozen_leader_fences_on_resume() {
    let mut r = TestRack::new(&[
        ("n1", "\"master\", \"chunkserver\"", true, 200),
        ("n2", "\"master\", \"chunkserver\"", true, 150),
        ("n3", "\"master\", \"worker\"", true, 100),
    ]);
    for n in ["n1", "n2", "n3"] {
        r.start(n);
    }
    let s = slack();
    r.wait("a leader", Duration::from_secs(10) * s, |r| {
        r.leader().is_some()
    });
    let (first, e1) = r.leader().expect("leader");

    // Kill the leader: another takes over with a higher epoch, and the status says so.
    r.kill(&first);
    let took = r.wait("a new leader", Duration::from_secs(8) * s, |r| {
        r.leader().is_some_and(|(n, _)| n != first)
    });
    let (second, e2) = r.leader().expect("leader");
    eprintln!("{first} killed -> {second} leads after {took:?}");
    assert!(e2 > e1, "epoch {e2} after {e1}");
    let st = r.status(&second).expect("status");
    assert!(
        st["agent"]["lease_left_ms"]
            .as_u64()
            .is_some_and(|ms| ms > 0 && ms <= 3000),
        "{}",
        st["agent"]
    );
    r.start(&first);
    r.wait(
        "the old leader back as a standby",
        Duration::from_secs(10) * s,
        |r| r.role(&first).as_deref() == Some("standby"),
    );

    // Freeze the leader past its lease (3 s): another takes over; on SIGCONT the old one must
    // never claim to lead, and must fence.
    r.signal(&second, "-STOP");
    r.wait(
        "a leader while the old one is frozen",
        Duration::from_secs(8) * s,
        |r| {
            r.procs
                .keys()
                .filter(|n| **n != second)
                .any(|n| r.role(n).as_deref() == Some("leader"))
        },
    );
    std::thread::sleep(Duration::from_secs(1));
    r.signal(&second, "-CONT");
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        assert_ne!(
            r.role(&second).as_deref(),
            Some("leader"),
            "a leader frozen past its lease must not act as leader after it resumes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = r.log(&second);
    assert!(
        log.contains("stepping down") && log.contains("fenced"),
        "{}",
        tail(&log, 20)
    );
    let leaders: Vec<_> = r
        .procs
        .keys()
        .filter(|n| r.role(n).as_deref() == Some("leader"))
        .cloned()
        .collect();
    assert_eq!(leaders.len(), 1, "exactly one leader: {leaders:?}");
}

#[test]
fn switchover_command_moves_the_lease_to_the_chosen_node() {
    let mut r = TestRack::new(&[
        ("n1", "\"master\"", true, 200),
        ("n2", "\"master\"", true, 150),
        ("n3", "\"worker\"", true, 100),
    ]);
    for n in ["n1", "n2", "n3"] {
        r.start(n);
    }
    let s = slack();
    r.wait("a leader", Duration::from_secs(10) * s, |r| {
        r.leader().is_some()
    });
    let (leader, _) = r.leader().expect("leader");
    let other = if leader == "n1" { "n2" } else { "n1" };
    // Asking a standby is refused with the leader's name.
    let out = Command::new(BIN)
        .arg("--config")
        .arg(r.rack())
        .args(["switchover", "--socket"])
        .arg(r.socket(other))
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not the leader"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(BIN)
        .arg("--config")
        .arg(r.rack())
        .args(["switchover", "--to", other, "--socket"])
        .arg(r.socket(&leader))
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let took = r.wait("the chosen node leads", Duration::from_secs(3) * s, |r| {
        r.role(other).as_deref() == Some("leader")
    });
    eprintln!("switchover {leader} -> {other} in {took:?}");
}
