//! The shipped systemd unit is accepted by `systemd-analyze verify` and keeps the promises the
//! agent relies on (notify + watchdog within the Pi's hardware limit, restart forever, daemons die
//! with the agent, no private mount namespace).

use std::process::Command;

use crate::harness::have_tools;

const UNIT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/systemd/mooseherd.service"
));

fn setting(key: &str) -> Vec<&'static str> {
    UNIT.lines()
        .filter_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .collect()
}

#[test]
fn unit_keeps_its_promises() {
    assert_eq!(setting("Type"), ["notify"]);
    assert_eq!(setting("Restart"), ["always"]);
    assert_eq!(setting("KillMode"), ["control-group"]);
    // docs/keyring.md: `systemctl reload` re-reads the keyring, through SIGHUP.
    assert_eq!(setting("ExecReload"), ["/bin/kill -HUP $MAINPID"]);
    let wd: u32 = setting("WatchdogSec")[0]
        .parse()
        .expect("WatchdogSec is seconds");
    let catalog = mooseherd::config::Catalog::embedded();
    let hw = catalog
        .iter()
        .map(|b| b.watchdog_max_s)
        .min()
        .expect("boards");
    assert!(
        wd < hw,
        "software watchdog {wd}s must fire before the hardware one ({hw}s)"
    );
    for caps in ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_ADMIN"] {
        assert!(setting("CapabilityBoundingSet")[0].contains(caps), "{caps}");
    }
    for ns in [
        "ProtectSystem",
        "PrivateTmp",
        "ProtectHome",
        "PrivateDevices",
        "ReadWritePaths",
    ] {
        assert!(
            setting(ns).is_empty(),
            "{ns} would hide the agent's mounts from the host"
        );
    }
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    skip_unless!(
        have_tools(&["systemd-analyze"]),
        "systemd-analyze is missing: install the `systemd` package (scripts/setup.sh does)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    // verify checks that ExecStart binaries exist: point them at the binary under test.
    let bin = env!("CARGO_BIN_EXE_mooseherd");
    let unit = UNIT.replace("/usr/bin/mooseherd", bin);
    let path = dir.path().join("mooseherd.service");
    std::fs::write(&path, unit).expect("write unit");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Only lines about our unit matter: the host's own units may have unrelated complaints.
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("mooseherd.service"))
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify failed:\n{stderr}"
    );
}

#[test]
fn systemd_analyze_verify_accepts_the_firstboot_unit() {
    const FIRSTBOOT: &str = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/mooseherd-firstboot.service"
    ));
    // It must run before the agent and sshd (host keys), and never start a second agent.
    for want in [
        "Before=mooseherd.service ssh.service",
        "Type=oneshot",
        "ExecStart=/usr/bin/mooseherd firstboot --boot /boot/firmware",
    ] {
        assert!(FIRSTBOOT.contains(want), "firstboot unit lacks {want}");
    }
    skip_unless!(
        have_tools(&["systemd-analyze"]),
        "systemd-analyze is missing: install the `systemd` package (scripts/setup.sh does)"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = env!("CARGO_BIN_EXE_mooseherd");
    let path = dir.path().join("mooseherd-firstboot.service");
    std::fs::write(&path, FIRSTBOOT.replace("/usr/bin/mooseherd", bin)).expect("write unit");
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .env("SYSTEMD_LOG_LEVEL", "warning")
        .output()
        .expect("run systemd-analyze");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("mooseherd-firstboot"))
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify failed:\n{stderr}"
    );
}
