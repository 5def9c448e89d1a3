//! `mooseherd drbd …`: the resource file for the shipped example rack, and the fence-peer handler's
//! answer when no agent can vouch for the lease (DRBD must keep IO frozen: exit 1, not 3..=7).
//! The handler against a real DRBD kernel is the slow tier `image/test-drbd`.

use std::process::Command;

fn mooseherd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mooseherd"))
}

#[test]
fn resource_file_for_the_example_rack() {
    let out = mooseherd()
        .args(["drbd", "resource-file", "--config"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/rack.toml"))
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("resource mfsmeta {"), "{text}");
    assert!(text.contains("fencing resource-and-stonith;"), "{text}");
    assert!(
        text.contains("fence-peer \"/usr/bin/mooseherd drbd fence-peer\";"),
        "{text}"
    );
}

#[test]
fn fence_peer_without_a_reachable_agent_keeps_io_frozen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = mooseherd()
        .args(["drbd", "fence-peer", "--socket"])
        .arg(dir.path().join("no-agent"))
        .env("DRBD_RESOURCE", "mfsmeta")
        .env("DRBD_PEER_ADDRESS", "192.168.1.12")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("resource mfsmeta peer 192.168.1.12: exit 1"),
        "{err}"
    );
    assert!(err.contains("keep IO frozen"), "{err}");
}

#[test]
fn unfence_peer_succeeds() {
    let out = mooseherd()
        .args(["drbd", "unfence-peer"])
        .env("DRBD_RESOURCE", "mfsmeta")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(0));
}
