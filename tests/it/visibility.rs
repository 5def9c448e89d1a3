//! Rack visibility on real agents (loopback, `--host dry-run`): the status LEDs and the button
//! through the `sim` GPIO backend. Each rack takes a loopback network and ports of its own
//! (`harness::Net`); every process is killed when the test ends, pass or fail.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mooseherd::host::gpio::sim::{self, TimelineEntry};
use serde_json::Value;

use crate::harness::{BIN, Net, TestRack, slack, tail};

impl TestRack {
    fn indication(&self, name: &str) -> Option<String> {
        self.status(name)?["leds"]["indication"]
            .as_str()
            .map(String::from)
    }

    /// Holds `name`'s simulated button for `hold`.
    fn press(&self, name: &str, hold: Duration) {
        sim::press(&self.gpio(name), true).expect("press");
        std::thread::sleep(hold);
        sim::press(&self.gpio(name), false).expect("release");
    }
}

fn frames(dir: &Path) -> Vec<(bool, bool, bool)> {
    sim::read_timeline(dir)
        .iter()
        .map(|e: &TimelineEntry| (e.green, e.amber, e.red))
        .collect()
}

fn three_nodes() -> TestRack {
    TestRack::on(
        Net::take(),
        "",
        &[
            ("n1", "\"master\"", true, 200, ""),
            ("n2", "\"master\"", true, 150, ""),
            ("n3", "\"worker\"", true, 100, ""),
        ],
    )
    .with_sim_gpio()
}

#[test]
fn leds_show_lamp_test_and_roles_and_the_button_switches_over() {
    let mut r = three_nodes();
    for n in ["n1", "n2", "n3"] {
        r.start(n);
    }
    let s = slack();
    r.wait("a leader", Duration::from_secs(20) * s, |r| {
        r.leader().is_some()
    });
    let (leader, epoch) = r.leader().expect("leader");
    let other = if leader == "n1" { "n2" } else { "n1" };

    r.wait(
        "leader and follower LEDs",
        Duration::from_secs(10) * s,
        |r| {
            r.indication(&leader).as_deref() == Some("leader")
                && r.indication(other).as_deref() == Some("healthy-follower")
                && r.indication("n3").as_deref() == Some("healthy-follower")
        },
    );
    // The lamp test ran first: green, amber, red, then all three (an emulated agent may wake
    // late and skip a step, but it starts with green and ends with all three).
    let t = frames(&r.gpio(&leader));
    assert_eq!(t.first(), Some(&(true, false, false)), "{t:?}");
    assert!(t.iter().take(4).any(|f| *f == (true, true, true)), "{t:?}");
    if cfg!(target_arch = "x86_64") {
        assert_eq!(
            t.get(..4),
            Some(
                &[
                    (true, false, false),
                    (false, true, false),
                    (false, false, true),
                    (true, true, true)
                ][..]
            ),
            "{t:?}"
        );
    }
    // The leader's green LED double-blinks: on and off several times a second; a follower's is
    // steady.
    let before = sim::read_timeline(&r.gpio(&leader)).len();
    std::thread::sleep(Duration::from_millis(1500));
    let blinks = sim::read_timeline(&r.gpio(&leader))[before..]
        .iter()
        .filter(|e| e.green)
        .count();
    assert!(blinks >= 2, "leader's green LED did not blink ({blinks})");
    let last = *sim::read_timeline(&r.gpio("n3")).last().expect("n3 frames");
    assert!(last.green && !last.amber && !last.red, "{last:?}");

    // `status` shows the LEDs of every node, in colour when asked.
    let out = Command::new(BIN)
        .arg("--config")
        .arg(r.rack())
        .args(["status", "--color", "always", "--socket"])
        .arg(r.socket("n3"))
        .output()
        .expect("status");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("LEDS") && text.contains("\x1b[1;32m"),
        "{text}"
    );
    assert!(
        text.contains("leader") && text.contains("healthy"),
        "{text}"
    );

    // `status --watch` redraws until stopped.
    let mut watch = Command::new(BIN)
        .arg("--config")
        .arg(r.rack())
        .args(["status", "--watch", "0.2", "--color", "never", "--socket"])
        .arg(r.socket("n3"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("status --watch");
    std::thread::sleep(Duration::from_millis(1500) * s);
    let _ = watch.kill();
    let out = watch.wait_with_output().expect("watch output");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.matches("\x1b[H\x1b[2J").count() >= 2 && text.contains("LEDS"),
        "{text}"
    );

    // A short press blinks the node number.
    r.press("n3", Duration::from_millis(200));
    r.wait("n3 blinks its number", Duration::from_secs(5) * s, |r| {
        r.indication("n3").as_deref() == Some("node-number")
    });

    // Holding the leader's button for 3 s hands the master over.
    r.press(&leader, Duration::from_millis(3500));
    r.wait(
        "the other candidate leads",
        Duration::from_secs(15) * s,
        |r| r.leader().is_some_and(|(l, e)| l == other && e > epoch),
    );
    assert!(
        r.log(&leader).contains("button: switchover"),
        "{}",
        tail(&r.log(&leader), 20)
    );
    r.wait(
        "LEDs follow the new leader",
        Duration::from_secs(10) * s,
        |r| r.indication(other).as_deref() == Some("leader"),
    );

    // The same hold on a follower is refused, not acted on.
    r.press("n3", Duration::from_millis(3500));
    r.wait("the refusal is logged", Duration::from_secs(5) * s, |r| {
        r.log("n3").contains("switchover ignored")
    });
    assert_eq!(r.leader().map(|l| l.0).as_deref(), Some(other));
}

#[test]
fn holding_ten_seconds_toggles_maintenance_and_the_leader_hands_over() {
    let mut r = three_nodes();
    for n in ["n1", "n2", "n3"] {
        r.start(n);
    }
    let s = slack();
    r.wait("a leader", Duration::from_secs(20) * s, |r| {
        r.leader().is_some()
    });
    let (leader, _) = r.leader().expect("leader");
    let other = if leader == "n1" { "n2" } else { "n1" };
    r.press(&leader, Duration::from_millis(10_500));
    r.wait("maintenance hands over", Duration::from_secs(15) * s, |r| {
        r.leader().is_some_and(|(l, _)| l == other)
            && r.indication(&leader).as_deref() == Some("maintenance")
    });
    let last = *sim::read_timeline(&r.gpio(&leader)).last().expect("frames");
    assert!(last.amber, "maintenance shows amber steady: {last:?}");
    // Again: maintenance off.
    r.press(&leader, Duration::from_millis(10_500));
    r.wait("maintenance off", Duration::from_secs(10) * s, |r| {
        r.indication(&leader).as_deref() == Some("healthy-follower")
    });
}

/// `GET /metrics` over plain TCP.
fn scrape(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.starts_with("HTTP/1.1 200").then_some(out)
}

/// The value of the first sample whose line starts with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_endpoint_is_scraped_from_real_agents() {
    let net = Net::take();
    let (tag, port, gossip) = (net.tag, net.tcp_port(), net.port);
    let listen = |i: u8| format!("metrics_listen = \"127.{tag}.0.{i}:{port}\"\n");
    let (l1, l2, l3) = (listen(1), listen(2), listen(3));
    let mut r = TestRack::on(
        net,
        "",
        &[
            ("n1", "\"master\"", true, 200, &l1),
            ("n2", "\"master\"", true, 150, &l2),
            ("n3", "\"worker\"", true, 100, &l3),
        ],
    )
    .with_sim_gpio();
    for n in ["n1", "n2", "n3"] {
        r.start(n);
    }
    let s = slack();
    r.wait("a leader", Duration::from_secs(20) * s, |r| {
        r.leader().is_some()
    });
    let (leader, _) = r.leader().expect("leader");
    let i = &leader[1..];
    let addr = |i: &str| format!("127.{tag}.0.{i}:{port}");
    r.wait("the leader's metrics", Duration::from_secs(10) * s, |_| {
        scrape(&addr(i)).is_some_and(|t| {
            sample(&t, &format!("mooseherd_leader{{node=\"{leader}\"}}")) == Some(1.0)
                && sample(
                    &t,
                    &format!("mooseherd_members{{node=\"{leader}\",state=\"alive\"}}"),
                ) == Some(3.0)
        })
    });
    let text = scrape(&addr(i)).expect("scrape");
    for family in [
        "mooseherd_lease_epoch",
        "mooseherd_lease_remaining_seconds",
        "mooseherd_elections_won_total",
        "mooseherd_host_actions_total",
        "mooseherd_host_action_duration_seconds_bucket",
        "mooseherd_frames_total",
        "mooseherd_frames_rejected_total",
        "mooseherd_agent_starts",
        "# EOF",
    ] {
        assert!(text.contains(family), "{family} missing:\n{text}");
    }
    assert!(sample(&text, "mooseherd_lease_epoch").is_some_and(|e| e >= 1.0));

    // Junk on the gossip port is rejected, and counted by reason.
    let sock = std::net::UdpSocket::bind(format!("127.{tag}.0.9:0")).expect("bind");
    for _ in 0..5 {
        sock.send_to(b"not a frame", format!("127.{tag}.0.3:{gossip}"))
            .expect("send");
    }
    r.wait("rejects counted at n3", Duration::from_secs(10) * s, |_| {
        scrape(&addr("3")).is_some_and(|t| {
            t.lines()
                .filter(|l| l.starts_with("mooseherd_frames_rejected_total"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>()
                >= 5.0
        })
    });

    // A switchover is a failover as the other nodes count it (once n3 knows the first leader).
    let leader_id: u64 = leader[1..].parse::<u64>().expect("nN") - 1;
    r.wait("n3 knows the leader", Duration::from_secs(10) * s, |r| {
        r.status("n3")
            .is_some_and(|st| st["agent"]["leader"].as_u64() == Some(leader_id))
    });
    let out = Command::new(BIN)
        .arg("--config")
        .arg(r.rack())
        .args(["switchover", "--socket"])
        .arg(r.socket(&leader))
        .output()
        .expect("switchover");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    r.wait(
        "n3 counts the failover",
        Duration::from_secs(15) * s,
        |_| {
            scrape(&addr("3")).is_some_and(|t| sample(&t, "mooseherd_failovers_total") == Some(1.0))
        },
    );
}

/// Datagrams received on `sock` within `for_`.
fn notifications(sock: &std::os::unix::net::UnixDatagram, for_: Duration) -> Vec<String> {
    let end = Instant::now() + for_;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        if left.is_zero() {
            break;
        }
        sock.set_read_timeout(Some(left)).expect("timeout");
        match sock.recv(&mut buf) {
            Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).to_string()),
            Err(_) => break,
        }
    }
    out
}

fn count(msgs: &[String], needle: &str) -> usize {
    msgs.iter()
        .filter(|m| m.lines().any(|l| l == needle))
        .count()
}

#[test]
fn sd_notify_ready_status_and_watchdog_pings_that_stop_with_the_loop() {
    let mut r = three_nodes();
    let path = r.dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).expect("bind notify socket");
    let p = path.display().to_string();
    // WATCHDOG_USEC = 1 s: the agent pings every 0.5 s.
    r.start_with("n1", &[("NOTIFY_SOCKET", &p), ("WATCHDOG_USEC", "1000000")]);
    r.start("n2");
    r.start("n3");
    let s = slack();
    let msgs = notifications(&sock, Duration::from_secs(4) * s);
    assert_eq!(count(&msgs, "READY=1"), 1, "{msgs:?}");
    assert!(count(&msgs, "WATCHDOG=1") >= 4, "{msgs:?}");
    assert!(
        msgs.iter()
            .any(|m| m.starts_with("STATUS=") && m.contains("epoch")),
        "{msgs:?}"
    );
    r.wait("a leader", Duration::from_secs(20) * s, |r| {
        r.leader().is_some()
    });
    let later = notifications(&sock, Duration::from_secs(1) * s);
    // STATUS carries the role and the epoch (sent when they change).
    let st = r.status("n1").expect("n1 status");
    let want = format!(
        "STATUS={}, epoch {},",
        st["agent"]["role"].as_str().unwrap_or("?"),
        st["agent"]["epoch"]
    );
    assert!(
        msgs.iter().chain(&later).any(|m| m.starts_with(&want)),
        "no {want} in {msgs:?} {later:?}"
    );

    // A stopped loop sends nothing (SIGSTOP freezes it like a hang would); it resumes after.
    let pid = r.procs.get("n1").expect("n1").id().to_string();
    let sig = |s: &str| {
        assert!(
            Command::new("kill")
                .args([s, &pid])
                .status()
                .expect("kill")
                .success()
        )
    };
    sig("-STOP");
    let _ = notifications(&sock, Duration::from_millis(100));
    let frozen = notifications(&sock, Duration::from_secs(2));
    sig("-CONT");
    assert_eq!(count(&frozen, "WATCHDOG=1"), 0, "{frozen:?}");
    let resumed = notifications(&sock, Duration::from_secs(2) * s);
    assert!(count(&resumed, "WATCHDOG=1") >= 2, "{resumed:?}");
}

#[test]
fn bench_footprint_reports_rss_cpu_and_binary_size() {
    let out = Command::new(BIN)
        .args(["bench", "footprint", "--duration-s", "2", "--json"])
        .output()
        .expect("bench footprint");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(v["rss_kb"].as_u64().is_some_and(|k| k > 0), "{v}");
    assert!(v["cpu_percent"].as_f64().is_some(), "{v}");
    assert!(v["binary_bytes"].as_u64().is_some_and(|b| b > 0), "{v}");
    assert_eq!(v["agents"].as_array().map(Vec::len), Some(3), "{v}");
}
