//! Carries out first boot on a root directory: `/` on the Pi, or a directory in tests and for
//! preparing an unpacked image. Steps that act on the running machine (hostname syscall, probing
//! and mounting the data disk, starting the agent) run only when the root is `/` and are reported
//! as skipped otherwise. Each file is written only when its contents or mode differ (atomically,
//! keeping its owner), so a second run reports no change. Every path, from the rack file or our
//! own, is confined to the root, and symbolic links inside the root or the boot partition are
//! refused, never followed ([`Tree`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::tree::{Tree, TreeError};
use super::{AUTHORIZED_KEYS, KEYRING, PASSWORD_HASH, RACK};
use super::{
    BootFiles, DISK_LABEL, DiskAction, DiskProbe, LocalFacts, disk_decision, find_node, fstab_line,
    fstab_with, hosts_with, network_file, parse_blkid, password_hash, shadow_with,
};
use crate::config::{HostChecks, Rack};

/// Where the agent's unit is installed by the image and by `image/customise`.
pub const UNIT: &str = "etc/systemd/system/mooseherd.service";
/// Its enable link.
pub const UNIT_LINK: &str = "etc/systemd/system/multi-user.target.wants/mooseherd.service";

#[derive(Debug, Clone)]
pub struct Options {
    /// The root file system to set up (`/` on the Pi).
    pub root: PathBuf,
    /// The mounted boot partition (`/boot/firmware`).
    pub boot: PathBuf,
    /// How long to wait for a network interface to appear (udev loads its driver).
    pub wait_for_interfaces: Duration,
    /// Use these facts instead of reading the machine's interfaces (tests, `--root` preparation).
    pub facts: Option<LocalFacts>,
}

/// The two trees a run works on: the root it prepares and the boot partition it reads.
struct Trees {
    root: Tree,
    boot: Tree,
}

impl Trees {
    fn live(&self) -> bool {
        self.root.is_live()
    }
}

/// What a run did: changes made, notes (skipped or nothing to do), and errors (the run went on
/// with the other steps; the exit status is non-zero when there are any). `mooseherd firstboot`
/// prints it; the steps are also logged at debug level.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub node: Option<String>,
    pub changed: Vec<String>,
    pub notes: Vec<String>,
    pub errors: Vec<String>,
}

impl Report {
    fn change(&mut self, s: impl Into<String>) {
        let s = s.into();
        tracing::debug!(step = %s, "first boot: changed");
        self.changed.push(s);
    }
    fn note(&mut self, s: impl Into<String>) {
        let s = s.into();
        tracing::debug!(step = %s, "first boot");
        self.notes.push(s);
    }
    fn error(&mut self, s: impl Into<String>) {
        let s = s.into();
        tracing::debug!(problem = %s, "first boot: error");
        self.errors.push(s);
    }
}

/// Runs a command; its stderr goes into the error.
fn run(cmd: &mut Command) -> Result<String, String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{shown} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// The machine's interfaces and addresses, waiting (bounded) for a non-loopback interface.
fn local_facts(root: &Tree, wait: Duration) -> LocalFacts {
    let hostname = root
        .read_text(Path::new("/etc/hostname"))
        .ok()
        .flatten()
        .unwrap_or_default();
    let deadline = Instant::now() + wait;
    loop {
        let mut macs = Vec::new();
        if let Ok(dir) = std::fs::read_dir("/sys/class/net") {
            for e in dir.flatten() {
                let iface = e.file_name().to_string_lossy().into_owned();
                let Ok(mac) = std::fs::read_to_string(e.path().join("address")) else {
                    continue;
                };
                let mac = mac.trim().to_ascii_lowercase();
                if iface != "lo" && mac.len() == 17 && mac != "00:00:00:00:00:00" {
                    macs.push((iface, mac));
                }
            }
        }
        macs.sort();
        let mut addrs = Vec::new();
        if let Ok(ifs) = nix::ifaddrs::getifaddrs() {
            for i in ifs {
                if let Some(a) = i.address.as_ref().and_then(|a| a.as_sockaddr_in()) {
                    addrs.push(a.ip());
                }
            }
        }
        if !macs.is_empty() || Instant::now() >= deadline {
            return LocalFacts {
                macs,
                addrs,
                hostname: hostname.trim().to_string(),
            };
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Runs every first-boot step; see the module documentation of [`super`].
pub fn run_all(opts: &Options) -> Report {
    let mut r = Report::default();
    let root = match Tree::new(&opts.root) {
        Ok(root) => root,
        Err(e) => {
            r.error(format!("the root to prepare: {e}"));
            return r;
        }
    };
    ssh_host_keys(&root, &mut r);
    let trees = match Tree::new(&opts.boot) {
        Ok(boot) => Trees { root, boot },
        Err(e) => {
            r.error(format!("the boot partition: {e}"));
            return r;
        }
    };
    let boot = BootFiles {
        dir: trees.boot.top().to_path_buf(),
    };
    login(&trees, &mut r);
    let Some(rack) = install_rack(&trees, &boot, &mut r) else {
        return r;
    };
    let facts = opts
        .facts
        .clone()
        .unwrap_or_else(|| local_facts(&trees.root, opts.wait_for_interfaces));
    let node = match find_node(&rack, &facts) {
        Ok((node, how)) => {
            r.note(format!("this is node `{}` (found by {how})", node.name));
            r.node = Some(node.name.clone());
            node.clone()
        }
        Err(e) => {
            r.error(e.to_string());
            return r;
        }
    };
    hostname(&trees, &node.name, &mut r);
    let net = network_file(&rack, &node);
    step(
        &mut r,
        "network address",
        trees.root.put(
            Path::new("/etc/systemd/network/10-mooseherd.network"),
            net.as_bytes(),
            0o644,
        ),
    );
    let disk_ready = data_disk(&trees, &node, &mut r);
    if disk_ready {
        chunk_dirs(&trees, &node, &mut r);
    }
    enable_agent(&trees, &mut r);
    r
}

fn step(r: &mut Report, what: &str, res: Result<bool, TreeError>) {
    match res {
        Ok(true) => r.change(what),
        Ok(false) => {}
        Err(e) => r.error(format!("{what}: {e}")),
    }
}

/// A file of the boot partition (`mooseherd/...`), read without following links.
fn boot_file(t: &Trees, name: &str) -> Result<Option<Vec<u8>>, TreeError> {
    t.boot.read(&Path::new("/").join(name))
}

fn ssh_host_keys(root: &Tree, r: &mut Report) {
    let dir = match root.path(Path::new("/etc/ssh")) {
        Ok(dir) => dir,
        Err(e) => {
            r.error(format!("ssh host keys: {e}"));
            return;
        }
    };
    let has_keys = std::fs::read_dir(&dir).is_ok_and(|d| {
        d.flatten().any(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("ssh_host_") && n.ends_with("_key")
        })
    });
    if has_keys || !dir.is_dir() {
        return;
    }
    // `-f PREFIX` makes -A write under another root (the keys then say root@THIS-host in their
    // comment, which is harmless).
    let prefix = root.top().display().to_string();
    match run(Command::new("ssh-keygen").args(["-A", "-f", &prefix])) {
        Ok(_) => r.change("ssh host keys created"),
        Err(e) => r.error(format!("ssh host keys: {e}")),
    }
}

fn login(opts: &Trees, r: &mut Report) {
    let mut way = false;
    let boot = BootFiles {
        dir: opts.boot.top().to_path_buf(),
    };
    match boot_file(opts, AUTHORIZED_KEYS) {
        Ok(Some(keys)) => {
            way = true;
            let dir = Path::new("/root/.ssh");
            let made = opts.root.create_dir_all(dir, 0o700).and_then(|(full, _)| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&full, std::fs::Permissions::from_mode(0o700))
                    .map_err(|cause| TreeError::Io { path: full, cause })
            });
            if let Err(e) = made {
                r.error(e.to_string());
            }
            step(
                r,
                "root's ssh authorized_keys",
                opts.root.put(&dir.join("authorized_keys"), &keys, 0o600),
            );
        }
        Ok(None) => {}
        Err(e) => r.error(e.to_string()),
    }
    match boot_file(opts, PASSWORD_HASH) {
        // Not UTF-8: refused as not a hash, like any other byte the crypt alphabet lacks.
        Ok(Some(bytes)) => match password_hash(
            &boot.password_hash(),
            std::str::from_utf8(&bytes).unwrap_or("\u{0}"),
        ) {
            Ok(hash) => {
                way = true;
                let shadow = Path::new("/etc/shadow");
                match opts.root.read_text(shadow) {
                    Ok(Some(old)) => match shadow_with(&old, "root", &hash) {
                        // The mode of Debian's shadow; the owner and group (root:shadow) are kept.
                        Some(new) => step(
                            r,
                            "root password",
                            opts.root.put(shadow, new.as_bytes(), 0o640),
                        ),
                        None => r.error(format!("{}: no line for root", shadow.display())),
                    },
                    Ok(None) => r.error(format!("{} does not exist", shadow.display())),
                    Err(e) => r.error(e.to_string()),
                }
            }
            Err(e) => r.error(e.to_string()),
        },
        Ok(None) => {}
        Err(e) => r.error(e.to_string()),
    }
    let installed = opts
        .root
        .path(Path::new("/root/.ssh/authorized_keys"))
        .is_ok_and(|p| p.exists());
    if !way && !installed {
        r.note(format!(
            "no way to log in yet: put an ssh public key in {} or a crypt hash (`openssl passwd -6`) in {}",
            boot.authorized_keys().display(),
            boot.password_hash().display()
        ));
    }
}

/// Validates the boot partition's rack file and installs it (with the keyring) in /etc.
fn install_rack(opts: &Trees, boot: &BootFiles, r: &mut Report) -> Option<Rack> {
    let installed = Path::new("/etc/mooseherd/rack.toml");
    let (bytes, source) = match boot_file(opts, RACK) {
        Ok(Some(b)) => (b, boot.rack()),
        Ok(None) => {
            r.note(format!(
                "{} does not exist; using the installed {}",
                boot.rack().display(),
                installed.display()
            ));
            match opts.root.read(installed) {
                Ok(Some(b)) => (b, opts.root.top().join("etc/mooseherd/rack.toml")),
                Ok(None) => {
                    r.error(format!(
                        "no rack file: write one to {} (see examples/rack.toml)",
                        boot.rack().display()
                    ));
                    return None;
                }
                Err(e) => {
                    r.error(e.to_string());
                    return None;
                }
            }
        }
        Err(e) => {
            r.error(e.to_string());
            return None;
        }
    };
    let parsed = match crate::config::diag::utf8_text(&source, &bytes) {
        Ok(src) => Rack::parse(src, &source, HostChecks::NONE),
        Err(d) => Err(crate::config::ConfigError::Invalid(vec![d])),
    };
    let rack = match parsed {
        Ok((rack, warnings)) => {
            for w in warnings {
                r.note(w.to_string());
            }
            rack
        }
        Err(e) => {
            r.error(format!(
                "{}\nthe rack file is not valid; the installed copy was left as it was",
                e
            ));
            return None;
        }
    };
    step(
        r,
        "rack file installed",
        opts.root.put(installed, &bytes, 0o644),
    );
    let keyring = &rack.cluster.keyring;
    match boot_file(opts, KEYRING) {
        Ok(Some(k)) => step(
            r,
            "gossip keyring installed",
            opts.root.put(keyring, &k, 0o600),
        ),
        Ok(None) => {
            let present = opts.root.path(keyring).is_ok_and(|p| p.exists());
            if !present {
                r.error(format!(
                    "no gossip keyring: the agent cannot start. Create one once with `mooseherd keygen keyring` and copy the same file to {} on every Pi",
                    boot.keyring().display()
                ));
            }
        }
        Err(e) => r.error(e.to_string()),
    }
    Some(rack)
}

fn hostname(opts: &Trees, name: &str, r: &mut Report) {
    step(
        r,
        "hostname",
        opts.root.put(
            Path::new("/etc/hostname"),
            format!("{name}\n").as_bytes(),
            0o644,
        ),
    );
    let hosts = Path::new("/etc/hosts");
    match opts.root.read_text(hosts) {
        Ok(old) => {
            let new = hosts_with(old.as_deref().unwrap_or("127.0.0.1\tlocalhost\n"), name);
            step(r, "/etc/hosts", opts.root.put(hosts, new.as_bytes(), 0o644));
        }
        Err(e) => r.error(e.to_string()),
    }
    if opts.live() {
        let now = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_default();
        if now != name {
            match nix::unistd::sethostname(name) {
                Ok(()) => r.change(format!("running hostname {now} -> {name}")),
                Err(e) => r.error(format!("sethostname {name}: {e}")),
            }
        }
    }
}

/// Returns whether the chunk directories can be created (no data disk, or it is mounted).
fn data_disk(opts: &Trees, node: &crate::config::Node, r: &mut Report) -> bool {
    let Some(disk) = &node.disk else {
        return true;
    };
    if !opts.live() {
        r.note(format!(
            "data disk {}: skipped (not the live root)",
            disk.display()
        ));
        return false;
    }
    let probe = |disk: &Path| -> Result<DiskProbe, String> {
        if !disk.exists() {
            return Ok(DiskProbe::Missing);
        }
        let out = Command::new("blkid")
            .args(["-p", "-o", "export"])
            .arg(disk)
            .output()
            .map_err(|e| format!("cannot run blkid: {e}"))?;
        // blkid exits 2 when it finds nothing: a blank disk.
        match out.status.code() {
            Some(0) => Ok(parse_blkid(&String::from_utf8_lossy(&out.stdout))),
            Some(2) => Ok(DiskProbe::Blank),
            _ => Err(format!(
                "blkid -p {} failed: {}",
                disk.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    };
    let mut action = match probe(disk) {
        Ok(p) => disk_decision(node, &p),
        Err(e) => {
            r.error(e);
            return false;
        }
    };
    if let DiskAction::Format { reason } = &action {
        r.change(format!("formatting data disk {}: {reason}", disk.display()));
        let res = run(Command::new("wipefs").arg("-a").arg(disk)).and_then(|_| {
            run(Command::new("mkfs.ext4")
                .args(["-q", "-F", "-L", DISK_LABEL])
                .arg(disk))
        });
        if let Err(e) = res {
            r.error(e);
            return false;
        }
        action = match probe(disk) {
            Ok(p) => disk_decision(node, &p),
            Err(e) => {
                r.error(e);
                return false;
            }
        };
    }
    match action {
        DiskAction::Nothing => true,
        DiskAction::Refuse { reason } => {
            r.error(format!("data disk not used: {reason}"));
            false
        }
        DiskAction::Format { reason } => {
            r.error(format!(
                "data disk still needs formatting after mkfs: {reason}"
            ));
            false
        }
        DiskAction::Mount { fstype, uuid } => {
            let fstab = Path::new("/etc/fstab");
            let old = match opts.root.read_text(fstab) {
                Ok(old) => old.unwrap_or_default(),
                Err(e) => {
                    r.error(e.to_string());
                    return false;
                }
            };
            let new = fstab_with(&old, &fstab_line(&uuid, &fstype, &node.disk_mount));
            step(
                r,
                "/etc/fstab data disk",
                opts.root.put(fstab, new.as_bytes(), 0o644),
            );
            if let Err(e) = opts.root.create_dir_all(&node.disk_mount, 0o755) {
                r.error(e.to_string());
                return false;
            }
            let mounted = crate::host::mount_table::read()
                .is_ok_and(|m| crate::host::mount_table::is_mount_point(&m, &node.disk_mount));
            if mounted {
                return true;
            }
            match run(Command::new("mount").arg(&node.disk_mount)) {
                Ok(_) => {
                    r.change(format!(
                        "mounted data disk at {}",
                        node.disk_mount.display()
                    ));
                    true
                }
                Err(e) => {
                    r.error(e);
                    false
                }
            }
        }
    }
}

/// uid and gid of a user in ROOT/etc/passwd.
fn passwd_ids(root: &Tree, user: &str) -> Option<(u32, u32)> {
    let text = root.read_text(Path::new("/etc/passwd")).ok()??;
    text.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&user) && f.len() > 3)
            .then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
            .flatten()
    })
}

fn chunk_dirs(opts: &Trees, node: &crate::config::Node, r: &mut Report) {
    let owner = passwd_ids(&opts.root, "mfs");
    for dir in &node.chunk_dirs {
        let path = match opts.root.create_dir_all(dir, 0o755) {
            Ok((path, created)) => {
                if created {
                    r.change(format!("chunk dir {}", dir.display()));
                }
                path
            }
            Err(e) => {
                r.error(format!("chunk dir: {e}"));
                continue;
            }
        };
        // lchown: the walk above refused links, and a link made since is not followed either.
        if let Some((uid, gid)) = owner
            && let Err(e) = std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
        {
            r.error(format!("chown mfs {}: {e}", dir.display()));
        }
    }
}

fn enable_agent(opts: &Trees, r: &mut Report) {
    let unit = Path::new("/").join(UNIT);
    let link = Path::new("/").join(UNIT_LINK);
    if !opts.root.path(&unit).is_ok_and(|p| p.is_file()) {
        r.error(format!(
            "/{UNIT} is missing: this image has no mooseherd unit"
        ));
        return;
    }
    let full = match opts.root.path(&link) {
        Ok(full) => full,
        // The link itself is a symlink by design: that is not an error.
        Err(TreeError::Symlink { path, .. }) if path.ends_with(UNIT_LINK) => return,
        Err(e) => {
            r.error(format!("enable mooseherd.service: {e}"));
            return;
        }
    };
    if std::fs::symlink_metadata(&full).is_ok() {
        return;
    }
    let res = match link.parent() {
        Some(parent) => opts.root.create_dir_all(parent, 0o755).map(|_| ()),
        None => Ok(()),
    }
    .and_then(|()| {
        std::os::unix::fs::symlink(&unit, &full).map_err(|cause| TreeError::Io {
            path: full.clone(),
            cause,
        })
    });
    match res {
        Ok(()) => {
            r.change("mooseherd.service enabled");
            if opts.live() {
                // Enabled during boot: systemd learns of the link on reload; start it now.
                let started = run(Command::new("systemctl").arg("daemon-reload")).and_then(|_| {
                    run(Command::new("systemctl").args([
                        "start",
                        "--no-block",
                        "mooseherd.service",
                    ]))
                });
                if let Err(e) = started {
                    r.error(e);
                }
            }
        }
        Err(e) => r.error(format!("enable mooseherd.service: {e}")),
    }
}
