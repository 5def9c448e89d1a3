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

/// `openssl passwd -6 -salt abc hunter2`.
const SHA512: &str =
    "$6$abc$Vj2wJVDQ/WRK2sVlmhZ2pGmoYHdN0PRsFHjexxCFrH2mvUoJmNGGqx6ydTYX4mHZgqiP4XMB8P1ZIyaOdyNhx0";

#[test]
fn plain_passwords_are_refused() {
    let f = Path::new("root-password-hash");
    assert_eq!(
        password_hash(f, &format!("{SHA512}\n")).as_deref(),
        Ok(SHA512)
    );
    for good in [
        "$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7",
        "$2b$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
        "$6$rounds=5000$abc$Vj2wJVDQ/WRK2sVlmhZ2pGmoYHdN0PRsFHjexxCFrH2mvUoJmNGGq",
        "$1$abc$0123456789abcdefghijkl",
    ] {
        assert!(password_hash(f, good).is_ok(), "{good}");
    }
    for bad in [
        "hunter2",
        "$6$a b",
        "$",
        "$$$",
        "$6$$hash0123456789abcdef",
        "$6$abc$",
        "$6$abc$def",
        "!",
        "*",
        "abJnggxhB/yWI",
        "$6$abc$Vj2wJVDQ/WRK2sVlmhZ2pGmoYHdN0PRsFHje\u{0}xxCFrH2",
        "$6$abc$Vj2wJVDQ/WRK2sVlmhZ2pGmoYHdN0PRsFHje\u{1b}[2J",
        "$6$abc$Vj2wJVDQ/WRK2sVlmhZ2pGmoYHdN0PRsFHje\u{7}",
        "$6$abc$Vj2wJVDQ/WRK2sVlmhZ2pGmoYHdN0PRsFHje:0:0",
        "$6$abc$Vj2wJVDQ/WRK2sVlmhZ2pGmoYHdN0PRsFHje\nroot::0",
        "$6$abc$Vj2wJVDQ/WRK2sVlmhZ2pGmoYHdN0PRsFHjeé",
    ] {
        assert!(password_hash(f, bad).is_err(), "{bad:?}");
    }
}

mod crypt_shape {
    use super::super::is_crypt_hash;
    use proptest::prelude::*;

    /// The shape, said another way: only `$`, the crypt alphabet, `=` and `,`; 3 or 4 `$`-separated
    /// non-empty fields after a leading `$`; `=` and `,` only in a 4-field hash's second field.
    fn looks_like_crypt(s: &str) -> bool {
        let fields: Vec<&str> = s.split('$').collect();
        let n = fields.len();
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"$./=,".contains(&b))
            && fields[0].is_empty()
            && (n == 4 || n == 5)
            && fields[1..].iter().all(|f| !f.is_empty())
            && fields
                .iter()
                .enumerate()
                .all(|(i, f)| (n == 5 && i == 2) || !f.contains(['=', ',']))
    }

    fn well_formed() -> impl Strategy<Value = String> {
        (
            "[a-z0-9]{1,8}",
            proptest::option::of("[./0-9A-Za-z=,]{1,20}"),
            "[./0-9A-Za-z]{1,32}",
            "[./0-9A-Za-z]{16,90}",
        )
            .prop_map(|(id, params, salt, hash)| match params {
                Some(p) => format!("${id}${p}${salt}${hash}"),
                None => format!("${id}${salt}${hash}"),
            })
    }

    proptest! {
        #[test]
        fn nothing_but_the_crypt_shape_passes(s in any::<String>()) {
            if is_crypt_hash(&s) {
                prop_assert!(looks_like_crypt(&s), "{s:?}");
            }
        }

        #[test]
        fn well_formed_hashes_pass(h in well_formed()) {
            prop_assert!(is_crypt_hash(&h), "{h:?}");
        }

        #[test]
        fn one_foreign_character_anywhere_is_refused(
            h in well_formed(),
            at in any::<prop::sample::Index>(),
            c in any::<char>().prop_filter("outside the shape's alphabet", |c| {
                !c.is_ascii_alphanumeric() && !"$./=,".contains(*c)
            }),
        ) {
            let mut s = h.clone();
            let pos = at.index(h.len() + 1);
            s.insert(pos, c);
            prop_assert!(!is_crypt_hash(&s), "{s:?}");
        }
    }
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
    std::fs::write(
        boot.join("mooseherd/root-password-hash"),
        format!("{SHA512}\n"),
    )
    .expect("w");
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
    assert!(read("etc/shadow").starts_with(&format!("root:{SHA512}:")));
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

#[test]
fn a_rack_path_with_dotdot_creates_nothing_outside_the_root() {
    let t = tree();
    let escape = format!(
        "/../../{}",
        t._dir.path().file_name().expect("name").to_string_lossy()
    );
    let outside = t._dir.path().join("escaped");
    std::fs::write(
        t.boot.join("mooseherd/rack.toml"),
        RACK.replace("\"/var/lib/mfschunks\"", &format!("\"{escape}/escaped\"")),
    )
    .expect("w");
    let r = run_all(&opts(&t, facts(&[], &[], "pi2")));
    assert!(!outside.exists(), "created {}", outside.display());
    assert!(
        r.errors
            .iter()
            .any(|e| e.contains("chunk_dirs") && e.contains("`..`")),
        "{r:?}"
    );
}

#[test]
fn symlinks_in_the_root_are_not_followed() {
    let t = tree();
    let outside = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(outside.path(), t.root.join("etc/mooseherd")).expect("link");
    std::fs::create_dir_all(t.root.join("var/lib")).expect("mkdir");
    std::os::unix::fs::symlink(outside.path(), t.root.join("var/lib/mfschunks")).expect("link");
    let r = run_all(&opts(&t, facts(&[], &[], "pi2")));
    assert_eq!(
        std::fs::read_dir(outside.path()).expect("ls").count(),
        0,
        "wrote through a link: {r:?}"
    );
    assert!(
        r.errors
            .iter()
            .any(|e| e.contains("etc/mooseherd is a symbolic link")),
        "{r:?}"
    );
    assert!(
        r.errors
            .iter()
            .any(|e| e.contains("mfschunks is a symbolic link")),
        "{r:?}"
    );
}

#[test]
fn a_symlinked_authorized_keys_on_the_boot_partition_is_refused() {
    let t = tree();
    let secret = t._dir.path().join("id_ed25519");
    std::fs::write(&secret, "PRIVATE KEY\n").expect("w");
    let keys = t.boot.join("mooseherd/authorized_keys");
    std::fs::remove_file(&keys).expect("rm");
    std::os::unix::fs::symlink(&secret, &keys).expect("link");
    let r = run_all(&opts(&t, facts(&[], &[], "pi2")));
    assert!(!t.root.join("root/.ssh/authorized_keys").exists(), "{r:?}");
    assert!(
        r.errors
            .iter()
            .any(|e| e.contains("authorized_keys is a symbolic link")),
        "{r:?}"
    );
}

#[test]
fn the_shadow_file_keeps_its_group() {
    use std::os::unix::fs::MetadataExt;
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED: needs root to chown");
        return;
    }
    let t = tree();
    let shadow = t.root.join("etc/shadow");
    std::os::unix::fs::chown(&shadow, Some(0), Some(42)).expect("chown");
    let r = run_all(&opts(&t, facts(&[], &[], "pi2")));
    assert!(r.changed.iter().any(|c| c == "root password"), "{r:?}");
    let m = std::fs::metadata(&shadow).expect("shadow");
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (0, 42, 0o640));
}

#[test]
fn a_hash_with_control_characters_never_reaches_shadow() {
    let t = tree();
    std::fs::write(
        t.boot.join("mooseherd/root-password-hash"),
        format!("{SHA512}\u{1b}]0;owned\u{7}\n"),
    )
    .expect("w");
    let r = run_all(&opts(&t, facts(&[], &[], "pi2")));
    assert!(
        r.errors.iter().any(|e| e.contains("not a crypt(3) hash")),
        "{r:?}"
    );
    let shadow = std::fs::read_to_string(t.root.join("etc/shadow")).expect("r");
    assert_eq!(shadow, "root:*:19000:0:99999:7:::\n");
}
