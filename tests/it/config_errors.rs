//! Every kind of rack-file mistake gives a `FILE:LINE:COL` diagnostic at the right place, and no
//! input makes the parser panic.

use std::path::Path;

use mooseherd::config::{ConfigError, HostChecks, Rack, Severity};
use proptest::prelude::*;

/// A valid three-node rack that the tests edit (also used by `hostile_input`).
pub(crate) const GOOD: &str = r#"[cluster]
name = "lab"
vip = "10.0.0.50/24"
replication = "metalogger"

[[node]]
name = "a"
addr = "10.0.0.1"
roles = ["master", "chunkserver"]
board = "pi4b"
voter = true
chunk_dirs = ["/srv/chunks"]

[[node]]
name = "b"
addr = "10.0.0.2"
roles = ["master", "chunkserver"]
board = "pi4b"
voter = true
chunk_dirs = ["/srv/chunks"]

[[node]]
name = "c"
addr = "10.0.0.3"
roles = ["worker"]
board = "pi5"
voter = true
"#;

fn check(src: &str) -> Result<Vec<String>, Vec<String>> {
    match Rack::parse(src, Path::new("rack.toml"), HostChecks::NONE) {
        Ok((_, warnings)) => Ok(warnings.iter().map(ToString::to_string).collect()),
        Err(ConfigError::Invalid(d)) => Err(d
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .map(ToString::to_string)
            .collect()),
        Err(e) => panic!("unexpected {e}"),
    }
}

/// Applies `edit` to the good rack and expects exactly one error, at `line:col`, containing `needle`.
fn expect_error(edit: impl Fn(&str) -> String, line: usize, col: usize, needle: &str) {
    let src = edit(GOOD);
    let errors = check(&src).expect_err(&format!(
        "expected an error containing {needle:?} in:\n{src}"
    ));
    let prefix = format!("rack.toml:{line}:{col}: error: ");
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with(&prefix) && e.contains(needle)),
        "wanted `{prefix}...{needle}...`, got:\n{}",
        errors.join("\n")
    );
}

#[test]
fn the_good_rack_is_valid() {
    assert_eq!(check(GOOD), Ok(vec![]));
}

#[test]
fn shipped_example_is_valid() {
    let (rack, warnings) =
        Rack::load(Path::new("examples/rack.toml"), HostChecks::NONE).expect("example is valid");
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(rack.nodes.len(), 5);
    assert_eq!(rack.quorum(), 2);
}

#[test]
fn toml_syntax_error() {
    expect_error(
        |s| s.replace("name = \"lab\"", "name = \"lab"),
        2,
        12,
        "invalid TOML",
    );
}

#[test]
fn unknown_key_in_cluster_with_suggestion() {
    expect_error(
        |s| {
            s.replace(
                "replication = \"metalogger\"",
                "replication = \"metalogger\"\nlease = 3000",
            )
        },
        5,
        1,
        "unknown key `lease` in [cluster]",
    );
    let errors = check(&GOOD.replace("vip =", "lease_msx = 1\nvip =")).expect_err("invalid");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("did you mean `lease_ms`?")),
        "{errors:?}"
    );
}

#[test]
fn every_unknown_key_is_reported_at_once() {
    let src = GOOD
        .replace("voter = true\nchunk_dirs", "votr = true\nchunk_dirs")
        .replace("board = \"pi5\"", "board = \"pi5\"\ncolour = \"red\"");
    let errors = check(&src).expect_err("invalid");
    assert!(
        errors
            .iter()
            .any(|e| e.contains("`votr`") && e.contains("did you mean `voter`")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("rack.toml:27:1:") && e.contains("`colour`")),
        "{errors:?}"
    );
}

#[test]
fn wrong_type() {
    expect_error(
        |s| s.replace("replication", "lease_ms = \"3s\"\nreplication"),
        4,
        12,
        "invalid type",
    );
}

#[test]
fn missing_required_field() {
    expect_error(
        |s| s.replace("vip = \"10.0.0.50/24\"\n", ""),
        1,
        1,
        "missing field `vip`",
    );
}

#[test]
fn duplicate_node_name() {
    expect_error(
        |s| s.replace("name = \"b\"", "name = \"a\""),
        15,
        8,
        "node name `a` is used twice",
    );
}

#[test]
fn duplicate_node_address() {
    expect_error(
        |s| s.replace("addr = \"10.0.0.2\"", "addr = \"10.0.0.1\""),
        16,
        8,
        "already the address of `a`",
    );
}

#[test]
fn unknown_role_with_suggestion() {
    expect_error(
        |s| s.replace("roles = [\"worker\"]", "roles = [\"wrker\"]"),
        25,
        10,
        "unknown role `wrker` (valid: master, chunkserver, worker); did you mean `worker`?",
    );
}

#[test]
fn unknown_board() {
    expect_error(
        |s| s.replace("board = \"pi5\"", "board = \"pi6\""),
        26,
        9,
        "unknown board `pi6`",
    );
}

#[test]
fn vip_outside_node_subnet() {
    expect_error(
        |s| s.replace("addr = \"10.0.0.3\"", "addr = \"10.0.1.3\""),
        24,
        8,
        "is not in the VIP's subnet 10.0.0.0/24",
    );
}

#[test]
fn vip_equal_to_node_address() {
    expect_error(
        |s| s.replace("addr = \"10.0.0.3\"", "addr = \"10.0.0.50\""),
        24,
        8,
        "is the VIP",
    );
}

#[test]
fn vip_without_prefix_or_malformed() {
    expect_error(
        |s| s.replace("10.0.0.50/24", "10.0.0.50"),
        3,
        7,
        "add the subnet prefix",
    );
    expect_error(|s| s.replace("10.0.0.50/24", "fd00::50/64"), 3, 7, "IPv6");
    expect_error(
        |s| s.replace("10.0.0.50/24", "10.0.0.255/24"),
        3,
        7,
        "broadcast address",
    );
}

#[test]
fn no_voter_is_an_error_even_voters_a_warning() {
    let src = GOOD.replace("voter = true", "voter = false");
    let errors = check(&src).expect_err("invalid");
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("rack.toml:1:1:") && e.contains("no node has `voter = true`")),
        "{errors:?}"
    );
    let src = GOOD.replacen("voter = true", "voter = false", 1);
    let warnings = check(&src).expect("valid with a warning");
    assert!(
        warnings.iter().any(|w| w.contains("warning: 2 voters")),
        "{warnings:?}"
    );
}

#[test]
fn drbd_master_without_disk() {
    expect_error(
        |s| s.replace("\"metalogger\"", "\"drbd\""),
        6,
        1,
        "needs `drbd_disk`",
    );
}

#[test]
fn shared_dir_without_directory() {
    expect_error(
        |s| s.replace("\"metalogger\"", "\"shared-dir\""),
        4,
        15,
        "needs `shared_dir`",
    );
}

#[test]
fn unknown_replication() {
    expect_error(
        |s| s.replace("\"metalogger\"", "\"metaloger\""),
        4,
        15,
        "did you mean `metalogger`?",
    );
}

#[test]
fn lease_too_short_for_fencing_budget() {
    expect_error(
        |s| {
            s.replace(
                "replication",
                "lease_ms = 1500\nfence_budget_ms = 1000\nreplication",
            )
        },
        4,
        12,
        "too short for fence_budget_ms = 1000",
    );
    expect_error(
        |s| s.replace("replication", "lease_ms = 200\nreplication"),
        4,
        12,
        "below the minimum",
    );
}

#[test]
fn chunkserver_without_chunk_dirs() {
    expect_error(
        |s| s.replacen("chunk_dirs = [\"/srv/chunks\"]\n", "", 1),
        6,
        1,
        "needs `chunk_dirs`",
    );
}

#[test]
fn node_without_roles_and_bad_names() {
    expect_error(
        |s| s.replace("roles = [\"worker\"]", "roles = []"),
        25,
        9,
        "has no roles",
    );
    expect_error(
        |s| s.replace("name = \"c\"", "name = \"Pi_3\""),
        23,
        8,
        "node name `Pi_3`",
    );
    expect_error(
        |s| s.replace("name = \"lab\"", "name = \"../x\""),
        2,
        8,
        "cluster name",
    );
}

#[test]
fn no_master_candidate() {
    expect_error(
        |s| s.replace("[\"master\", \"chunkserver\"]", "[\"chunkserver\"]"),
        1,
        1,
        "no node has the `master` role",
    );
}

#[test]
fn bad_mac_and_priority() {
    expect_error(
        |s| s.replace("board = \"pi5\"", "board = \"pi5\"\nmac = \"zz:00\""),
        27,
        7,
        "is not a MAC address",
    );
    expect_error(
        |s| s.replacen("voter = true", "voter = true\npriority = 300", 1),
        12,
        12,
        "priority 300",
    );
}

#[test]
fn unreadable_keyring_is_an_error_on_the_host() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ring = dir.path().join("keyring");
    let src = GOOD.replace(
        "replication",
        &format!("keyring = \"{}\"\nreplication", ring.display()),
    );
    let err =
        Rack::parse(&src, Path::new("rack.toml"), HostChecks::ALL).expect_err("missing keyring");
    assert!(
        err.to_string().contains("rack.toml:4:11: error: keyring")
            && err.to_string().contains("mooseherd keygen"),
        "{err}"
    );
    std::fs::write(&ring, "0 00\n").expect("write");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&ring, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let err =
        Rack::parse(&src, Path::new("rack.toml"), HostChecks::ALL).expect_err("public keyring");
    assert!(err.to_string().contains("chmod 600"), "{err}");
    std::fs::set_permissions(&ring, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    Rack::parse(&src, Path::new("rack.toml"), HostChecks::ALL).expect("private keyring is fine");
}

#[test]
fn fingerprint_changes_with_the_rack() {
    let (a, _) = Rack::parse(GOOD, Path::new("r"), HostChecks::NONE).expect("valid");
    let (b, _) = Rack::parse(
        &GOOD.replace("10.0.0.3", "10.0.0.4"),
        Path::new("r"),
        HostChecks::NONE,
    )
    .expect("valid");
    assert_ne!(a.fingerprint(), b.fingerprint());
    assert_eq!(a.fingerprint(), a.clone().fingerprint());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, .. ProptestConfig::default() })]

    /// Arbitrary text never panics and an invalid file always has at least one error.
    #[test]
    fn random_text_never_panics(s in "\\PC{0,400}") {
        if let Err(ConfigError::Invalid(d)) = Rack::parse(&s, Path::new("r"), HostChecks::NONE) {
            prop_assert!(d.iter().any(|d| d.severity == Severity::Error));
        }
    }

    /// Mutating one line of a valid rack never panics, and every diagnostic points inside the file.
    #[test]
    fn mutated_racks_never_panic(line in 0usize..30, junk in "[ -~]{0,24}") {
        let mut lines: Vec<String> = GOOD.lines().map(String::from).collect();
        let i = line % lines.len();
        lines[i] = junk;
        let src = lines.join("\n");
        if let Err(ConfigError::Invalid(d)) = Rack::parse(&src, Path::new("r"), HostChecks::NONE) {
            for d in d {
                prop_assert!(d.line >= 1 && d.line <= src.lines().count() + 1, "{d}");
            }
        }
    }

    /// Random but structurally plausible TOML values in every field never panic.
    #[test]
    fn random_field_values_never_panic(
        field in prop::sample::select(vec!["name", "vip", "addr", "board", "roles", "lease_ms", "priority", "chunk_dirs"]),
        value in prop_oneof![
            Just("\"\"".to_string()), Just("-1".to_string()), Just("18446744073709551615".to_string()),
            Just("[]".to_string()), Just("{}".to_string()), Just("true".to_string()), Just("1.5".to_string()),
            "\"[ -~]{0,20}\"".prop_map(|s| s.replace('\\', "")),
        ],
    ) {
        let src = GOOD.lines().map(|l| if l.starts_with(&format!("{field} =")) { format!("{field} = {value}") } else { l.to_string() }).collect::<Vec<_>>().join("\n");
        let _ = Rack::parse(&src, Path::new("r"), HostChecks::NONE);
    }
}

#[test]
fn provisioner_section() {
    let with = |body: &str| format!("{GOOD}\n[provisioner]\n{body}");
    // Defaults: disabled; enabling it needs every master candidate to be a worker too.
    let (rack, _) = Rack::parse(GOOD, Path::new("rack.toml"), HostChecks::NONE).unwrap();
    assert!(!rack.provisioner.enabled);
    assert_eq!(rack.provisioner.name, "mooseherd.io/moosefs");
    let workers = GOOD.replace(
        "[\"master\", \"chunkserver\"]",
        "[\"master\", \"chunkserver\", \"worker\"]",
    );
    let src = format!(
        "{workers}\n[provisioner]\nenabled = true\nname = \"example.com/mfs\"\nroot = \"k8s/volumes\"\n"
    );
    let (rack, _) = Rack::parse(&src, Path::new("rack.toml"), HostChecks::NONE).unwrap();
    assert!(rack.provisioner.enabled);
    assert_eq!(rack.provisioner.name, "example.com/mfs");
    assert_eq!(rack.provisioner.root, "k8s/volumes");
    expect_error(
        |_| with("enabled = true\n"),
        6,
        1,
        "needs the `worker` role",
    );
    expect_error(
        |_| with("name = \"moosefs\"\n"),
        30,
        8,
        "provisioner name `moosefs`",
    );
    expect_error(|_| with("root = \"../x\"\n"), 30, 8, "root `../x`");
    expect_error(|_| with("kubeconfig = \"kc\"\n"), 30, 14, "absolute path");
    expect_error(|_| with("nmae = \"x\"\n"), 30, 1, "nmae");
}

#[test]
fn format_without_a_disk() {
    expect_error(
        |s| s.replace("board = \"pi5\"", "board = \"pi5\"\nformat = true"),
        27,
        10,
        "format = true on `c` but it has no `disk`",
    );
}

#[test]
fn disk_must_be_a_device() {
    expect_error(
        |s| s.replace("board = \"pi5\"", "board = \"pi5\"\ndisk = \"sda\""),
        27,
        8,
        "must be a block device under /dev",
    );
    expect_error(
        |s| s.replace("board = \"pi5\"", "board = \"pi5\"\ndisk_mount = \"usb\""),
        27,
        14,
        "disk_mount = \"usb\" of node `c` is not an absolute path",
    );
}

#[test]
fn chunks_off_the_data_disk_are_a_warning() {
    let src = GOOD.replacen(
        "chunk_dirs = [\"/srv/chunks\"]",
        "chunk_dirs = [\"/srv/chunks\"]\ndisk = \"/dev/sda1\"\nformat = true",
        1,
    );
    let warnings = check(&src).expect("valid");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("not under disk_mount /mnt/usb")),
        "{warnings:?}"
    );
    let src = src.replacen("\"/srv/chunks\"", "\"/mnt/usb/chunks\"", 1);
    let warnings = check(&src).expect("valid");
    assert!(
        !warnings.iter().any(|w| w.contains("disk_mount")),
        "{warnings:?}"
    );
}

#[test]
fn bad_metrics_listen_is_named_at_its_place_and_public_ones_warn() {
    expect_error(
        |s| {
            s.replace(
                "replication = \"metalogger\"\n",
                "replication = \"metalogger\"\nmetrics_listen = \"localhost\"\n",
            )
        },
        5,
        18,
        "not ADDRESS:PORT",
    );
    expect_error(
        |s| {
            s.replace(
                "board = \"pi5\"\n",
                "board = \"pi5\"\nmetrics_listen = \"10.0.0.3\"\n",
            )
        },
        27,
        18,
        "in node `c` is not ADDRESS:PORT",
    );
    let src = GOOD.replace(
        "replication = \"metalogger\"\n",
        "replication = \"metalogger\"\nmetrics_listen = \"0.0.0.0:9464\"\n",
    );
    let warnings = check(&src).expect("valid");
    assert!(
        warnings.iter().any(|w| w.contains("no authentication")),
        "{warnings:?}"
    );
    let (rack, _) = Rack::parse(GOOD, Path::new("rack.toml"), HostChecks::NONE).expect("good");
    assert_eq!(
        rack.nodes[0]
            .metrics_listen
            .map(|a| a.to_string())
            .as_deref(),
        Some("127.0.0.1:9464")
    );
}
