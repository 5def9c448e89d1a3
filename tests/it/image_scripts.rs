//! The image scripts on small images built here, loop-free and without root: `image/assemble.sh`
//! lays out an image like Raspberry Pi OS's (MBR, FAT32 at 4 MiB, ext4 after it), then
//! `image/customise` injects mooseherd twice and `image/check.sh` and `e2fsck` check the result.
//! (The full `image/build` needs a Debian arm64 root filesystem: a slow tier, see README.)
//! Needs fdisk, dosfstools, mtools and e2fsprogs (scripts/setup.sh).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{have_tools, missing_tools};

/// What the image scripts and these tests run (scripts/setup.sh installs them).
const TOOLS: &[&str] = &[
    "sfdisk",
    "fdisk",
    "mkfs.vfat",
    "mkfs.ext4",
    "mcopy",
    "mmd",
    "mdir",
    "mtype",
    "mlabel",
    "debugfs",
    "dumpe2fs",
    "e2fsck",
];

/// Skips the calling test unless every tool in [`TOOLS`] is installed.
macro_rules! need_tools {
    () => {
        skip_unless!(
            have_tools(TOOLS),
            "{} not installed (scripts/setup.sh installs fdisk, dosfstools, mtools and e2fsprogs)",
            missing_tools(TOOLS).join(", ")
        );
    };
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let out = cmd.output().unwrap_or_else(|e| panic!("{shown}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{shown} failed:\n{text}");
    text
}

/// A fake aarch64 ELF (the header fields the scripts check) with some payload.
fn fake_binary(dir: &Path) -> PathBuf {
    let mut b = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0];
    b.resize(18, 0);
    b.extend_from_slice(&[0xb7, 0x00]);
    b.extend((0..200_000u32).map(|i| (i % 251) as u8));
    let p = dir.join("mooseherd");
    std::fs::write(&p, b).expect("write binary");
    p
}

/// A tiny image in Raspberry Pi OS's layout: boot files on FAT, /etc/fstab naming /boot/firmware.
fn raspios_like(dir: &Path, boot_at: &str) -> PathBuf {
    let root = dir.join("root");
    let boot = dir.join("boot");
    std::fs::create_dir_all(root.join("etc/systemd/system")).expect("mkdir");
    std::fs::create_dir_all(root.join("usr/bin")).expect("mkdir");
    std::fs::create_dir_all(&boot).expect("mkdir");
    std::fs::write(
        root.join("etc/fstab"),
        format!(
            "proc /proc proc defaults 0 0\nPARTUUID=1234-01 {boot_at} vfat defaults 0 2\nPARTUUID=1234-02 / ext4 defaults,noatime 0 1\n"
        ),
    )
    .expect("fstab");
    std::fs::write(boot.join("config.txt"), "arm_64bit=1\n").expect("config");
    std::fs::write(
        boot.join("cmdline.txt"),
        "console=serial0 root=PARTUUID=1234-02\n",
    )
    .expect("cmdline");
    let img = dir.join("raspios.img");
    run(Command::new(repo().join("image/assemble.sh"))
        .arg(&root)
        .arg(&boot)
        .arg(&img)
        .args(["64", "16"]));
    img
}

#[test]
fn customise_injects_mooseherd_into_a_raspios_layout_image_idempotently() {
    need_tools!();
    let dir = tempfile::tempdir().expect("tempdir");
    let img = raspios_like(dir.path(), "/boot/firmware");
    let bin = fake_binary(dir.path());
    let keys = dir.path().join("keys");
    std::fs::write(&keys, "ssh-ed25519 AAAA test\n").expect("keys");
    for _ in 0..2 {
        let out = run(Command::new(repo().join("image/customise"))
            .arg(&img)
            .arg("--binary")
            .arg(&bin)
            .arg("--authorized-keys")
            .arg(&keys));
        assert!(out.contains("/boot/firmware"), "{out}");
        assert!(out.contains("no MooseFS"), "{out}");
    }
    let check = run(Command::new(repo().join("image/check.sh")).arg(&img));
    assert!(check.contains("enabled"), "{check}");
    // The root filesystem is consistent after debugfs's edits.
    let ext = format!("{}?offset={}", img.display(), (8192 + 64 * 2048) * 512);
    run(Command::new("e2fsck").args(["-f", "-n", &ext]));
    // The binary went in byte for byte, and the boot partition has the rack file and keys.
    let back = dir.path().join("back");
    run(Command::new("debugfs").args([
        "-R",
        &format!("dump /usr/bin/mooseherd {}", back.display()),
        &ext,
    ]));
    assert_eq!(
        std::fs::read(&back).expect("dumped"),
        std::fs::read(&bin).expect("bin")
    );
    let fat = format!("{}@@{}", img.display(), 8192 * 512);
    let rack = run(Command::new("mtype").env("MTOOLS_SKIP_CHECK", "1").args([
        "-i",
        &fat,
        "::/mooseherd/rack.toml",
    ]));
    assert!(rack.contains("[cluster]"), "{rack}");
    let keys_back = run(Command::new("mtype").env("MTOOLS_SKIP_CHECK", "1").args([
        "-i",
        &fat,
        "::/mooseherd/authorized_keys",
    ]));
    assert!(keys_back.contains("ssh-ed25519"), "{keys_back}");
}

#[test]
fn customise_follows_an_older_image_that_mounts_boot_at_slash_boot() {
    need_tools!();
    let dir = tempfile::tempdir().expect("tempdir");
    let img = raspios_like(dir.path(), "/boot");
    let bin = fake_binary(dir.path());
    let out = run(Command::new(repo().join("image/customise"))
        .arg(&img)
        .arg("--binary")
        .arg(&bin));
    assert!(out.contains("mounted at /boot on the Pi"), "{out}");
    let ext = format!("{}?offset={}", img.display(), (8192 + 64 * 2048) * 512);
    let unit = run(Command::new("debugfs").args([
        "-R",
        "cat /etc/systemd/system/mooseherd-firstboot.service",
        &ext,
    ]));
    assert!(unit.contains("firstboot --boot /boot\n"), "{unit}");
    assert!(!unit.contains("/boot/firmware"), "{unit}");
}

#[test]
fn customise_refuses_a_binary_for_the_wrong_machine_and_an_image_without_partitions() {
    need_tools!();
    let dir = tempfile::tempdir().expect("tempdir");
    let img = raspios_like(dir.path(), "/boot/firmware");
    let wrong = dir.path().join("x86");
    std::fs::write(
        &wrong,
        b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x3e\x00",
    )
    .expect("w");
    let out = Command::new(repo().join("image/customise"))
        .arg(&img)
        .arg("--binary")
        .arg(&wrong)
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an aarch64"));

    let blank = dir.path().join("blank.img");
    std::fs::write(&blank, vec![0u8; 1 << 20]).expect("w");
    let out = Command::new(repo().join("image/customise"))
        .arg(&blank)
        .arg("--binary")
        .arg(fake_binary(dir.path()))
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no FAT partition"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn assemble_lays_out_the_partitions_the_pi_boot_rom_reads() {
    need_tools!();
    let dir = tempfile::tempdir().expect("tempdir");
    let img = raspios_like(dir.path(), "/boot/firmware");
    let table = run(Command::new("sfdisk").arg("-d").arg(&img));
    let lines: Vec<&str> = table.lines().filter(|l| l.contains(" : start=")).collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(table.contains("label: dos"), "{table}");
    assert!(
        lines[0].contains("start=        8192")
            && lines[0].contains("type=c")
            && lines[0].contains("bootable"),
        "{table}"
    );
    assert!(lines[1].contains("type=83"), "{table}");
    let fat = format!("{}@@{}", img.display(), 8192 * 512);
    let label = run(Command::new("mlabel")
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-s", "-i", &fat, "::"]));
    assert!(label.contains("BOOT"), "{label}");
    let ext = format!("{}?offset={}", img.display(), (8192 + 64 * 2048) * 512);
    let sb = run(Command::new("dumpe2fs").args(["-h", &ext]));
    assert!(sb.contains("Filesystem volume name:   ROOT"), "{sb}");
}
