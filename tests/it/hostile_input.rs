//! Careless and hostile files and numbers: each is refused with a message that names the place
//! and the cause, promptly (a FIFO never hangs), and nothing is written outside where it belongs.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mooseherd::config::{ConfigError, HostChecks, Rack, Severity};
use mooseherd::runtime::control::ControlError;

use crate::config_errors::GOOD;
use crate::harness::BIN;

fn errors(src: &str) -> Vec<String> {
    match Rack::parse(src, Path::new("rack.toml"), HostChecks::NONE) {
        Ok(_) => Vec::new(),
        Err(e) => e
            .diagnostics()
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(ToString::to_string)
            .collect(),
    }
}

fn cluster_with(extra: &str) -> String {
    GOOD.replace(
        "replication = \"metalogger\"\n",
        &format!("replication = \"metalogger\"\n{extra}\n"),
    )
}

fn expect_one(src: &str, at: &str, needle: &str) {
    let e = errors(src);
    assert!(
        e.iter()
            .any(|e| e.starts_with(&format!("rack.toml:{at}: error: ")) && e.contains(needle)),
        "want {at} {needle:?}, got {e:#?}"
    );
}

#[test]
fn paths_that_climb_out_are_refused_with_key_and_line() {
    expect_one(
        &GOOD.replacen("\"/srv/chunks\"", "\"/../../etc\"", 1),
        "12:15",
        "chunk_dirs = \"/../../etc\" of node `a` has a `..` component",
    );
    expect_one(
        &cluster_with("state_dir = \"/var/../../x\""),
        "5:13",
        "state_dir = \"/var/../../x\" of [cluster] has a `..` component",
    );
    expect_one(
        &cluster_with("keyring = \"keyring\""),
        "5:11",
        "keyring = \"keyring\" of [cluster] is not an absolute path",
    );
    expect_one(
        &GOOD.replacen("voter = true\n", "voter = true\nmeta_dir = \"mfs\"\n", 1),
        "12:12",
        "meta_dir = \"mfs\" of node `a` is not an absolute path",
    );
}

#[test]
fn lease_numbers_have_bounds() {
    expect_one(
        &cluster_with("lease_ms = 9223372036854775807"),
        "5:12",
        "above the maximum of 60000 ms",
    );
    expect_one(
        &cluster_with("lease_ms = 60001"),
        "5:12",
        "above the maximum",
    );
    expect_one(
        &cluster_with("lease_ms = 5000\nfence_budget_ms = 9223372036854775807"),
        "6:19",
        "is not shorter than lease_ms = 5000",
    );
    expect_one(
        &cluster_with("max_drift_ppm = 0"),
        "5:17",
        "max_drift_ppm = 0 claims",
    );
    assert!(errors(&cluster_with("lease_ms = 60000")).is_empty());
}

#[test]
fn long_values_are_cut_in_messages() {
    let huge = "x".repeat(200_000);
    let e = errors(&GOOD.replacen("board = \"pi4b\"", &format!("board = \"{huge}\""), 1));
    assert!(!e.is_empty());
    assert!(
        e.iter().all(|e| e.len() < 2000),
        "a message echoes the whole value"
    );
    assert!(e.iter().any(|e| e.contains("xxx…")), "{e:?}");
    let e = errors(&cluster_with(&format!("lease_ms = \"{huge}\"")));
    assert!(e.iter().all(|e| e.len() < 2000));
}

#[test]
fn invalid_utf8_in_a_rack_file_has_a_line_and_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("rack.toml");
    let mut bytes = GOOD.as_bytes().to_vec();
    let at = GOOD.find("lab").expect("name");
    bytes[at + 1] = 0xff;
    std::fs::write(&f, bytes).expect("write");
    match Rack::load(&f, HostChecks::NONE) {
        Err(ConfigError::Invalid(d)) => {
            assert_eq!((d[0].line, d[0].col), (2, 10), "{}", d[0]);
            assert!(d[0].message.contains("not UTF-8"), "{}", d[0]);
        }
        other => panic!("{other:?}"),
    }
}

/// `check-config` on `path`, which must finish within a few seconds.
fn check_config(args: &[&str]) -> (bool, String) {
    let start = Instant::now();
    let out = Command::new(BIN)
        .arg("check-config")
        .args(args)
        .output()
        .expect("run mooseherd");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "check-config hung"
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn check_config_refuses_special_files_promptly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("rack.toml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("fifo");
    let (ok, text) = check_config(&[fifo.to_str().expect("utf-8"), "--no-host-checks"]);
    assert!(!ok);
    assert!(text.contains("is a FIFO, not a regular file"), "{text}");
    let (ok, text) = check_config(&["/dev/zero", "--no-host-checks"]);
    assert!(!ok);
    assert!(text.contains("is a character device"), "{text}");
    let (ok, text) = check_config(&[dir.path().to_str().expect("utf-8"), "--no-host-checks"]);
    assert!(!ok);
    assert!(text.contains("is a directory"), "{text}");
}

#[test]
fn check_config_refuses_a_keyring_that_is_a_directory_or_a_fifo() {
    let dir = tempfile::tempdir().expect("tempdir");
    let keyring = dir.path().join("keyring");
    std::fs::create_dir(&keyring).expect("mkdir");
    let rack = dir.path().join("rack.toml");
    let src = cluster_with(&format!("keyring = \"{}\"", keyring.display()));
    std::fs::write(&rack, src).expect("write");
    let (ok, text) = check_config(&[rack.to_str().expect("utf-8")]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("is a directory, not a regular file"),
        "{text}"
    );
    std::fs::remove_dir(&keyring).expect("rmdir");
    nix::unistd::mkfifo(&keyring, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("fifo");
    let (ok, text) = check_config(&[rack.to_str().expect("utf-8")]);
    assert!(!ok, "{text}");
    assert!(text.contains("is a FIFO"), "{text}");
}

/// `{:#}` (how `main` prints errors) adds nothing to a message that already holds its cause.
fn printed_once(e: impl std::error::Error + Send + Sync + 'static) {
    let own = e.to_string();
    let chained = format!("{:#}", anyhow::Error::new(e));
    assert_eq!(chained, own, "the cause is printed twice");
}

#[test]
fn errors_print_their_cause_once() {
    printed_once(mooseherd::host::drbd::parse_status("not json").expect_err("not json"));
    printed_once(mooseherd::wire::decode::<u64>(&[]).expect_err("empty"));
}

#[test]
fn permission_denied_on_the_control_socket_says_so() {
    let e = ControlError::Connect {
        path: "/run/mooseherd/control".into(),
        source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
    };
    let shown = format!("{:#}", anyhow::Error::new(e));
    assert!(shown.contains("run as root"), "{shown}");
    assert!(!shown.contains("is `mooseherd agent` running"), "{shown}");
}

#[test]
fn firstboot_with_a_relative_root_prepares_that_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let boot = dir.path().join("boot");
    std::fs::create_dir_all(root.join("etc/systemd/system")).expect("mkdir");
    std::fs::create_dir_all(boot.join("mooseherd")).expect("mkdir");
    std::fs::write(
        root.join("etc/systemd/system/mooseherd.service"),
        "[Unit]\n",
    )
    .expect("w");
    std::fs::write(boot.join("mooseherd/rack.toml"), GOOD).expect("w");
    std::fs::write(boot.join("mooseherd/keyring"), "0 00\n").expect("w");
    let out = Command::new(BIN)
        .current_dir(dir.path())
        .args([
            "firstboot",
            "--root",
            "root",
            "--boot",
            "boot",
            "--node",
            "c",
        ])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        std::fs::read_to_string(root.join("etc/hostname")).expect("hostname"),
        "c\n"
    );
    let link = std::fs::read_link(
        root.join("etc/systemd/system/multi-user.target.wants/mooseherd.service"),
    )
    .expect("enabled");
    assert_eq!(link, Path::new("/etc/systemd/system/mooseherd.service"));
}
