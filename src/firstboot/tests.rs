use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use super::apply::{Options, run_all};
use super::*;
use crate::config::{HostChecks, Rack};

const RACK: &str = r#"
[cluster]
name = "pirack"
vip = "192.168.1.50/24"
replication = "metalogger"

[[node]]
name = "pi1"
addr = "192.168.1.11"
roles = ["master", "chunkserver"]
board = "pi4b"
voter = true
mac = "DC:A6:32:00:00:01"
chunk_dirs = ["/mnt/usb/mfschunks"]
disk = "/dev/sda"
format = true

[[node]]
name = "pi2"
addr = "192.168.1.12"
roles = ["master", "chunkserver"]
board = "pi4b"
voter = true
chunk_dirs = ["/var/lib/mfschunks"]

[[node]]
name = "pi3"
addr = "192.168.1.13"
roles = ["worker"]
board = "pi5"
voter = true
"#;

fn rack() -> Rack {
    match Rack::parse(RACK, Path::new("rack.toml"), HostChecks::NONE) {
        Ok((r, _)) => r,
        Err(e) => panic!("test rack invalid: {e}"),
    }
}

fn facts(macs: &[(&str, &str)], addrs: &[Ipv4Addr], hostname: &str) -> LocalFacts {
    LocalFacts {
        macs: macs
            .iter()
            .map(|(i, m)| (i.to_string(), m.to_string()))
            .collect(),
        addrs: addrs.to_vec(),
        hostname: hostname.into(),
    }
}

#[test]
fn finds_node_by_mac_case_insensitively_before_address_and_hostname() {
    let rack = rack();
    let me = facts(
        &[("eth0", "dc:a6:32:00:00:01")],
        &[Ipv4Addr::new(192, 168, 1, 12)],
        "pi3",
    );
    let (node, how) = find_node(&rack, &me).expect("found");
    assert_eq!(node.name, "pi1");
    assert!(matches!(how, Match::Mac { .. }));
}

#[test]
fn finds_node_by_address_then_hostname() {
    let rack = rack();
    let me = facts(
        &[("eth0", "02:00:00:00:00:09")],
        &[Ipv4Addr::new(192, 168, 1, 12)],
        "pi3",
    );
    let (node, how) = find_node(&rack, &me).expect("found");
    assert_eq!(
        (node.name.as_str(), how),
        ("pi2", Match::Addr(Ipv4Addr::new(192, 168, 1, 12)))
    );
    let me = facts(&[("eth0", "02:00:00:00:00:09")], &[], "pi3\n");
    let (node, how) = find_node(&rack, &me).expect("found");
    assert_eq!((node.name.as_str(), how), ("pi3", Match::Hostname));
}

#[test]
fn unknown_machine_gets_an_error_that_says_what_it_saw_and_how_to_fix_it() {
    let rack = rack();
    let me = facts(&[("eth0", "02:00:00:00:00:09")], &[], "raspberrypi");
    let err = find_node(&rack, &me).expect_err("no match").to_string();
    assert!(err.contains("eth0 02:00:00:00:00:09"), "{err}");
    assert!(err.contains("raspberrypi"), "{err}");
    assert!(err.contains("mac = "), "{err}");
}

#[test]
fn same_mac_on_two_nodes_is_refused() {
    let text = RACK.replace(
        "voter = true\nchunk_dirs = [\"/var/lib/mfschunks\"]",
        "voter = true\nmac = \"dc:a6:32:00:00:01\"\nchunk_dirs = [\"/var/lib/mfschunks\"]",
    );
    assert_ne!(text, RACK);
    let (rack, _) = Rack::parse(&text, Path::new("r.toml"), HostChecks::NONE).expect("valid");
    let me = facts(&[("eth0", "dc:a6:32:00:00:01")], &[], "");
    assert!(matches!(
        find_node(&rack, &me),
        Err(FirstbootError::Ambiguous { .. })
    ));
}

#[test]
fn blkid_output_is_parsed() {
    assert_eq!(parse_blkid(""), DiskProbe::Blank);
    assert_eq!(
        parse_blkid("DEVNAME=/dev/sda\nPTUUID=1234\nPTTYPE=dos\n"),
        DiskProbe::Partitioned {
            pttype: "dos".into()
        }
    );
    assert_eq!(
        parse_blkid("DEVNAME=/dev/sda\nLABEL=mooseherd\nUUID=ab-cd\nTYPE=ext4\nUSAGE=filesystem\n"),
        DiskProbe::Filesystem {
            fstype: "ext4".into(),
            label: Some("mooseherd".into()),
            uuid: Some("ab-cd".into())
        }
    );
}

fn fs(fstype: &str, label: Option<&str>) -> DiskProbe {
    DiskProbe::Filesystem {
        fstype: fstype.into(),
        label: label.map(Into::into),
        uuid: Some("u-1".into()),
    }
}

#[test]
fn a_disk_is_formatted_only_with_consent_and_never_twice() {
    let rack = rack();
    let mut node = rack.node_by_name("pi1").expect("pi1").clone();
    // format = true
    assert!(matches!(
        disk_decision(&node, &DiskProbe::Blank),
        DiskAction::Format { .. }
    ));
    assert!(matches!(
        disk_decision(&node, &fs("vfat", Some("USBSTICK"))),
        DiskAction::Format { .. }
    ));
    assert!(matches!(
        disk_decision(
            &node,
            &DiskProbe::Partitioned {
                pttype: "gpt".into()
            }
        ),
        DiskAction::Format { .. }
    ));
    // Ours already: mounted, not formatted again, even with format = true (every boot).
    assert_eq!(
        disk_decision(&node, &fs("ext4", Some(DISK_LABEL))),
        DiskAction::Mount {
            fstype: "ext4".into(),
            uuid: "u-1".into()
        }
    );
    // Without consent: never formatted.
    node.format = false;
    for probe in [
        DiskProbe::Blank,
        fs("vfat", Some("USBSTICK")),
        fs("ntfs", None),
        DiskProbe::Partitioned {
            pttype: "dos".into(),
        },
        DiskProbe::Missing,
    ] {
        let a = disk_decision(&node, &probe);
        assert!(matches!(a, DiskAction::Refuse { .. }), "{probe:?} -> {a:?}");
    }
    // A usable filesystem the user made is mounted as it is.
    assert!(matches!(
        disk_decision(&node, &fs("xfs", Some("data"))),
        DiskAction::Mount { .. }
    ));
    // Missing disk with consent: still nothing to format.
    node.format = true;
    assert!(matches!(
        disk_decision(&node, &DiskProbe::Missing),
        DiskAction::Refuse { .. }
    ));
    node.disk = None;
    assert_eq!(disk_decision(&node, &DiskProbe::Blank), DiskAction::Nothing);
}

#[test]
fn hosts_fstab_and_shadow_edits_are_idempotent() {
    let hosts = "127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n::1\tlocalhost\n";
    let once = hosts_with(hosts, "pi1");
    assert_eq!(
        once,
        "127.0.0.1\tlocalhost\n127.0.1.1\tpi1\n::1\tlocalhost\n"
    );
    assert_eq!(hosts_with(&once, "pi1"), once);
    assert!(hosts_with("127.0.0.1 localhost\n", "pi2").ends_with("127.0.1.1\tpi2\n"));

    let fstab = "proc /proc proc defaults 0 0\n";
    let line = fstab_line("u-1", "ext4", Path::new("/mnt/usb"));
    let once = fstab_with(fstab, &line);
    assert!(once.contains("UUID=u-1\t/mnt/usb\text4\t"), "{once}");
    assert!(once.contains("nofail"));
    assert_eq!(fstab_with(&once, &line), once);
    let other = fstab_with(&once, &fstab_line("u-2", "ext4", Path::new("/mnt/usb")));
    assert!(!other.contains("u-1") && other.contains("u-2"), "{other}");

    let shadow = "root:*:19000:0:99999:7:::\nmfs:!:19000::::::\n";
    let new = shadow_with(shadow, "root", "$6$salt$hash").expect("root line");
    assert_eq!(
        new,
        "root:$6$salt$hash:19000:0:99999:7:::\nmfs:!:19000::::::\n"
    );
    assert_eq!(
        shadow_with(&new, "root", "$6$salt$hash").as_deref(),
        Some(new.as_str())
    );
    assert_eq!(shadow_with(shadow, "nobody", "$6$x"), None);
}

#[test]
fn plain_passwords_are_refused() {
    let f = Path::new("root-password-hash");
    assert!(password_hash(f, "$6$abc$def\n").is_ok());
    assert!(password_hash(f, "hunter2").is_err());
    assert!(password_hash(f, "$6$a b").is_err());
}

#[test]
fn network_file_gives_the_rack_address_with_the_vip_prefix() {
    let rack = rack();
    let node = rack.node_by_name("pi2").expect("pi2");
    let f = network_file(&rack, node);
    assert!(f.contains("Name=eth0\n"), "{f}");
    assert!(f.contains("Address=192.168.1.12/24\n"), "{f}");
}

struct Tree {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    boot: std::path::PathBuf,
}

fn tree() -> Tree {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root");
    let boot = dir.path().join("boot");
    for d in ["etc/systemd/system", "root"] {
        std::fs::create_dir_all(root.join(d)).expect("mkdir");
    }
    std::fs::create_dir_all(boot.join("mooseherd")).expect("mkdir");
    std::fs::write(root.join("etc/hosts"), "127.0.0.1\tlocalhost\n").expect("w");
    std::fs::write(root.join("etc/hostname"), "localhost\n").expect("w");
    std::fs::write(root.join("etc/shadow"), "root:*:19000:0:99999:7:::\n").expect("w");
    std::fs::write(
        root.join("etc/passwd"),
        format!(
            "root:x:0:0:root:/root:/bin/sh\nmfs:x:{}:{}::/var/lib/mfs:/usr/sbin/nologin\n",
            nix::unistd::getuid(),
            nix::unistd::getgid()
        ),
    )
    .expect("w");
    std::fs::write(root.join(apply::UNIT), "[Unit]\n").expect("w");
    std::fs::write(boot.join("mooseherd/rack.toml"), RACK).expect("w");
    std::fs::write(boot.join("mooseherd/keyring"), "k1 0123\n").expect("w");
    std::fs::write(
        boot.join("mooseherd/authorized_keys"),
        "ssh-ed25519 AAAA test\n",
    )
    .expect("w");
    std::fs::write(boot.join("mooseherd/root-password-hash"), "$6$s$h\n").expect("w");
    Tree {
        _dir: dir,
        root,
        boot,
    }
}

fn opts(t: &Tree, me: LocalFacts) -> Options {
    Options {
        root: t.root.clone(),
        boot: t.boot.clone(),
        wait_for_interfaces: Duration::ZERO,
        facts: Some(me),
    }
}

#[test]
fn first_boot_sets_up_a_root_and_a_second_run_changes_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let t = tree();
    let o = opts(&t, facts(&[], &[Ipv4Addr::new(192, 168, 1, 12)], ""));
    let r = run_all(&o);
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(r.node.as_deref(), Some("pi2"));
    let read = |p: &str| std::fs::read_to_string(t.root.join(p)).expect(p);
    assert_eq!(read("etc/hostname"), "pi2\n");
    assert!(read("etc/hosts").contains("127.0.1.1\tpi2"));
    assert_eq!(read("etc/mooseherd/rack.toml"), RACK);
    assert_eq!(read("root/.ssh/authorized_keys"), "ssh-ed25519 AAAA test\n");
    assert!(read("etc/shadow").starts_with("root:$6$s$h:"));
    assert!(read("etc/systemd/network/10-mooseherd.network").contains("Address=192.168.1.12/24"));
    let mode = |p: &str| {
        std::fs::metadata(t.root.join(p))
            .expect(p)
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("etc/mooseherd/keyring"), 0o600);
    assert_eq!(mode("root/.ssh/authorized_keys"), 0o600);
    assert_eq!(mode("root/.ssh"), 0o700);
    assert!(t.root.join("var/lib/mfschunks").is_dir());
    let link = std::fs::read_link(t.root.join(apply::UNIT_LINK)).expect("enabled");
    assert_eq!(link, Path::new("/").join(apply::UNIT));

    let again = run_all(&o);
    assert!(again.errors.is_empty(), "{again:?}");
    assert!(
        again.changed.is_empty(),
        "second run changed {:?}",
        again.changed
    );
}

#[test]
fn data_disk_is_left_alone_off_the_live_root() {
    let t = tree();
    let r = run_all(&opts(&t, facts(&[("eth0", "dc:a6:32:00:00:01")], &[], "")));
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!(r.node.as_deref(), Some("pi1"));
    assert!(r.notes.iter().any(|n| n.contains("skipped")), "{r:?}");
    assert!(!t.root.join("mnt/usb/mfschunks").exists());
}

#[test]
fn an_invalid_rack_file_is_not_installed_and_the_error_points_at_the_line() {
    let t = tree();
    std::fs::create_dir_all(t.root.join("etc/mooseherd")).expect("mkdir");
    std::fs::write(t.root.join("etc/mooseherd/rack.toml"), "old").expect("w");
    std::fs::write(
        t.boot.join("mooseherd/rack.toml"),
        RACK.replace("format = true", "format = \"yes\""),
    )
    .expect("w");
    let r = run_all(&opts(&t, facts(&[], &[], "pi1")));
    assert_eq!(r.node, None);
    let err = r.errors.join("\n");
    let want = format!("{}:", t.boot.join("mooseherd/rack.toml").display());
    assert!(
        err.contains(&want) && err.contains(":16:10: error"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(t.root.join("etc/mooseherd/rack.toml")).expect("r"),
        "old"
    );
    // Logging in still works: keys come before the rack.
    assert!(t.root.join("root/.ssh/authorized_keys").exists());
}

#[test]
fn a_rack_without_a_keyring_anywhere_is_an_error() {
    let t = tree();
    std::fs::remove_file(t.boot.join("mooseherd/keyring")).expect("rm");
    let r = run_all(&opts(&t, facts(&[], &[], "pi3")));
    assert!(r.errors.iter().any(|e| e.contains("keygen")), "{r:?}");
}
