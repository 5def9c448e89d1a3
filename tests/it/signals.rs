//! What a running agent does with the signals systemd or a person may send, and with hostile
//! input on its sockets: SIGHUP re-reads the keyring (a bad file keeps the old one), SIGUSR1 and
//! SIGUSR2 are ignored, a control request that is not UTF-8 gets an error answer, and a flood of
//! stale frames gets at most one sync frame per peer per second.

use std::io::{BufRead, BufReader, Write};
use std::net::UdpSocket;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use mooseherd::core::NodeId;
use mooseherd::core::agent::AgentMsg;
use mooseherd::core::lease::LeaseMsg;
use mooseherd::wire::{Endpoint, Keyring, Opened};

use crate::harness::{TestRack, slack};

fn fingerprint(r: &TestRack) -> u64 {
    let (rack, _) = mooseherd::config::Rack::load(&r.rack(), mooseherd::config::HostChecks::NONE)
        .expect("rack");
    rack.fingerprint()
}

fn query(round: u64) -> AgentMsg {
    AgentMsg::Lease(LeaseMsg::Query { round })
}

/// Sends `frame` to `to` and reads for `within`: how many answers `me` opens as sync frames.
fn syncs_after(
    sock: &UdpSocket,
    me: &mut Endpoint,
    frames: &[Vec<u8>],
    to: std::net::SocketAddr,
    within: Duration,
) -> usize {
    for f in frames {
        sock.send_to(f, to).expect("send");
    }
    let end = Instant::now() + within;
    let mut buf = [0u8; 2048];
    let mut synced = 0;
    while Instant::now() < end {
        let Ok((len, _)) = sock.recv_from(&mut buf) else {
            continue;
        };
        if matches!(me.open(&buf[..len]), Ok(Opened::Synced { .. })) {
            synced += 1;
        }
    }
    synced
}

fn still_running(r: &mut TestRack, name: &str) -> bool {
    r.procs
        .get_mut(name)
        .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
}

#[test]
fn sighup_reloads_the_keyring_and_no_other_signal_kills_the_agent() {
    let mut r = TestRack::new(&[
        ("n1", "\"master\", \"chunkserver\"", true, 200),
        ("ghost", "\"worker\"", false, 100),
    ]);
    r.start("n1");
    let s = slack();
    r.wait(
        "n1 answers on its control socket",
        Duration::from_secs(10) * s,
        |r| r.status("n1").is_some(),
    );

    // The ghost node (played by the test) seals with a new key 7 and opens the rack's key 0.
    let ring = r.dir.path().join("keyring");
    let original = std::fs::read_to_string(&ring).expect("keyring");
    let key7 = format!("7 {}\n", "5a".repeat(32));
    let ghost_keys = Keyring::parse(&format!("{key7}{original}"), &ring).expect("ghost keyring");
    assert_eq!(ghost_keys.sealing_id(), 7);
    let mut ghost = Endpoint::new(NodeId(1), 2, fingerprint(&r), ghost_keys, 99).expect("endpoint");
    let sock = UdpSocket::bind(r.addr("ghost")).expect("bind ghost");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let n1 = r.addr("n1");

    let f = ghost.seal_msg(NodeId(0), &query(1)).expect("seal");
    assert_eq!(
        syncs_after(&sock, &mut ghost, &[f], n1, Duration::from_secs(1)),
        0,
        "n1 must not open frames sealed with a key it does not have yet"
    );

    // A broken keyring file: the reload is refused, the agent runs on with its old keys.
    std::fs::write(&ring, "7 not-hex\n").expect("write keyring");
    r.signal("n1", "-HUP");
    r.wait(
        "the failed reload in n1's log",
        Duration::from_secs(5) * s,
        |r| {
            r.log("n1")
                .contains("keyring reload failed, keeping the old keyring")
        },
    );
    assert!(still_running(&mut r, "n1"), "SIGHUP killed the agent");
    assert!(r.status("n1").is_some());

    // Key 7 added (as `keygen --add` would): SIGHUP puts it in use at once.
    std::fs::write(&ring, format!("{original}{key7}")).expect("write keyring");
    r.signal("n1", "-HUP");
    r.wait("the reload in n1's log", Duration::from_secs(5) * s, |r| {
        r.log("n1").contains("keys added: 7; removed: none")
    });
    let f = ghost.seal_msg(NodeId(0), &query(2)).expect("seal");
    assert_eq!(
        syncs_after(&sock, &mut ghost, &[f], n1, Duration::from_secs(2) * s),
        1,
        "after the reload n1 opens key 7 and answers with a sync frame\n{}",
        r.log("n1")
    );

    // A flood of stale frames (a fresh incarnation n1 never synced with, as after a restart or a
    // replay): one sync frame a second, not one per frame.
    std::thread::sleep(Duration::from_millis(1100));
    let keys = Keyring::parse(&original, &ring).expect("keyring");
    let mut stale = Endpoint::new(NodeId(1), 2, fingerprint(&r), keys, 1234).expect("endpoint");
    let flood: Vec<Vec<u8>> = (0..40)
        .map(|i| stale.seal_msg(NodeId(0), &query(10 + i)).expect("seal"))
        .collect();
    for f in &flood {
        sock.send_to(f, n1).expect("send");
    }
    // Count the answers until 0.9 s after the first (a second may only come a second later).
    let end = Instant::now() + Duration::from_secs(5) * s;
    let mut first: Option<Instant> = None;
    let mut answered = 0;
    let mut buf = [0u8; 2048];
    while Instant::now() < first.map_or(end, |t| t + Duration::from_millis(900)) {
        if let Ok((len, _)) = sock.recv_from(&mut buf)
            && matches!(stale.open(&buf[..len]), Ok(Opened::Synced { .. }))
        {
            answered += 1;
            first.get_or_insert_with(Instant::now);
        }
    }
    assert_eq!(answered, 1, "sync answers to 40 stale frames sent at once");

    // SIGUSR1, SIGUSR2 and SIGTSTP: logged, nothing else (the agent is not stopped either).
    for (sig, name) in [
        ("-USR1", "SIGUSR1"),
        ("-USR2", "SIGUSR2"),
        ("-TSTP", "SIGTSTP"),
    ] {
        r.signal("n1", sig);
        r.wait(
            &format!("{name} in n1's log"),
            Duration::from_secs(5) * s,
            |r| r.log("n1").contains(&format!("{name} received: ignored")),
        );
    }
    assert!(still_running(&mut r, "n1"), "a signal killed the agent");
    assert!(r.status("n1").is_some());

    // A control request that is not UTF-8 gets an error answer, not a closed connection.
    let mut c = UnixStream::connect(r.socket("n1")).expect("connect");
    c.set_read_timeout(Some(Duration::from_secs(5) * s))
        .expect("timeout");
    c.write_all(b"{\"cmd\":\"st\xffatus\"}\n").expect("write");
    let mut answer = String::new();
    BufReader::new(&c).read_line(&mut answer).expect("answer");
    let v: serde_json::Value = serde_json::from_str(&answer).expect("JSON answer");
    assert_eq!(v["ok"], false);
    assert!(
        v["error"].as_str().unwrap_or("").contains("not UTF-8"),
        "{answer}"
    );
    assert!(still_running(&mut r, "n1"));
}
