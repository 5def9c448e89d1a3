//! First boot (and every boot after it): turns a freshly flashed image into a node of the rack.
//!
//! The user edits only the boot partition (FAT, readable from any computer): `mooseherd/rack.toml`,
//! the gossip `mooseherd/keyring`, and a way to log in (`mooseherd/authorized_keys` for root, or a
//! crypt hash in `mooseherd/root-password-hash`). On every boot `mooseherd firstboot` (run by
//! `mooseherd-firstboot.service`, before the agent and sshd):
//!
//! 1. creates ssh host keys if the image has none (images must not share them),
//! 2. installs the login keys or password hash (the image has no default password),
//! 3. validates and installs the rack file and keyring into `/etc/mooseherd`,
//! 4. finds its own `[[node]]` by MAC address, else by an address it already has, else by hostname,
//! 5. sets the hostname and adds the node's address to its interface (systemd-networkd),
//! 6. mounts the data disk, creating a filesystem only with an explicit `format = true`,
//! 7. makes sure the agent is enabled.
//!
//! Every step compares what is there with what should be and changes only the difference, so a
//! second run changes nothing. This module holds the decisions (pure, unit-tested); [`apply`] carries
//! them out on a root directory.

pub mod apply;
pub mod tree;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::config::Rack;
use crate::config::rack::Node;

/// The label mooseherd gives a data disk it formats; a disk with it is never formatted again.
pub const DISK_LABEL: &str = "mooseherd";
/// Marks the fstab line first boot manages.
pub const FSTAB_MARK: &str = "# mooseherd data disk";
/// Filesystems a chunkserver may use as they are, without `format = true`.
pub const USABLE_FS: &[&str] = &["ext4", "xfs", "btrfs"];

/// What this machine is, as far as finding its node goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalFacts {
    /// (interface, MAC in lowercase) of every interface except loopback.
    pub macs: Vec<(String, String)>,
    /// IPv4 addresses the machine already has.
    pub addrs: Vec<Ipv4Addr>,
    /// The hostname in /etc/hostname (empty if none).
    pub hostname: String,
}

/// How a node was recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    Mac { iface: String, mac: String },
    Addr(Ipv4Addr),
    Hostname,
}

impl std::fmt::Display for Match {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Match::Mac { iface, mac } => write!(f, "MAC {mac} of {iface}"),
            Match::Addr(a) => write!(f, "address {a}"),
            Match::Hostname => write!(f, "hostname"),
        }
    }
}

/// What can stop first boot.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FirstbootError {
    #[error(
        "no [[node]] in {rack} matches this machine (MACs: {macs}; addresses: {addrs}; hostname: `{hostname}`): add `mac = \"…\"` to this Pi's [[node]] (see `ip link`), or give it one of the node names as hostname"
    )]
    NotFound {
        rack: String,
        macs: String,
        addrs: String,
        hostname: String,
    },
    #[error(
        "MAC {mac} is listed for both `{first}` and `{second}` in {rack}: each Pi needs its own MAC"
    )]
    Ambiguous {
        rack: String,
        mac: String,
        first: String,
        second: String,
    },
    #[error(
        "root password hash in {file} is not a crypt(3) hash of the form `$ID$SALT$HASH` or `$ID$PARAMS$SALT$HASH` (letters, digits, `.` and `/`; e.g. from `openssl passwd -6` or `mkpasswd`), on one line; refusing to store it in /etc/shadow"
    )]
    BadPasswordHash { file: String },
}

/// Finds this machine's node: MAC first (stable across reflashing and DHCP), then an address the
/// machine already has (a DHCP reservation), then the hostname.
pub fn find_node<'a>(rack: &'a Rack, me: &LocalFacts) -> Result<(&'a Node, Match), FirstbootError> {
    let mut by_mac: Option<(&Node, Match)> = None;
    for node in &rack.nodes {
        let Some(want) = &node.mac else { continue };
        let want = want.to_ascii_lowercase();
        if let Some((iface, mac)) = me.macs.iter().find(|(_, m)| *m == want) {
            if let Some((first, _)) = &by_mac {
                return Err(FirstbootError::Ambiguous {
                    rack: rack.source.display().to_string(),
                    mac: mac.clone(),
                    first: first.name.clone(),
                    second: node.name.clone(),
                });
            }
            by_mac = Some((
                node,
                Match::Mac {
                    iface: iface.clone(),
                    mac: mac.clone(),
                },
            ));
        }
    }
    if let Some(found) = by_mac {
        return Ok(found);
    }
    if let Some(node) = rack.nodes.iter().find(|n| me.addrs.contains(&n.addr)) {
        return Ok((node, Match::Addr(node.addr)));
    }
    if let Some(node) = rack.node_by_name(me.hostname.trim()) {
        return Ok((node, Match::Hostname));
    }
    let list = |v: Vec<String>| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    Err(FirstbootError::NotFound {
        rack: rack.source.display().to_string(),
        macs: list(me.macs.iter().map(|(i, m)| format!("{i} {m}")).collect()),
        addrs: list(me.addrs.iter().map(ToString::to_string).collect()),
        hostname: me.hostname.trim().to_string(),
    })
}

/// What low-level probing (`blkid -p`) found on the data disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskProbe {
    /// The device does not exist (not plugged in, or another name).
    Missing,
    /// No filesystem and no partition table: a blank disk.
    Blank,
    /// A partition table on the whole disk.
    Partitioned { pttype: String },
    /// A filesystem.
    Filesystem {
        fstype: String,
        label: Option<String>,
        uuid: Option<String>,
    },
}

/// Parses `blkid -p -o export DEV` output (KEY=value lines); empty output means blank.
pub fn parse_blkid(out: &str) -> DiskProbe {
    let get = |k: &str| {
        out.lines()
            .filter_map(|l| l.split_once('='))
            .find(|(key, _)| key.trim() == k)
            .map(|(_, v)| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    match (get("TYPE"), get("PTTYPE")) {
        (Some(fstype), _) => DiskProbe::Filesystem {
            fstype,
            label: get("LABEL"),
            uuid: get("UUID"),
        },
        (None, Some(pttype)) => DiskProbe::Partitioned { pttype },
        (None, None) => DiskProbe::Blank,
    }
}

/// What to do with the data disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskAction {
    /// The node has no `disk`.
    Nothing,
    /// Mount it (fstab line by UUID) as it is.
    Mount { fstype: String, uuid: String },
    /// Create an ext4 filesystem labelled [`DISK_LABEL`], then mount it.
    Format { reason: String },
    /// Leave the disk alone and say why (the agent's chunkserver will report the missing dirs).
    Refuse { reason: String },
}

/// The data disk decision. Never formats without `format = true`; never formats a disk that
/// already carries mooseherd's label (so a second boot does not erase the chunks of the first).
pub fn disk_decision(node: &Node, probe: &DiskProbe) -> DiskAction {
    let Some(disk) = &node.disk else {
        return DiskAction::Nothing;
    };
    let disk = disk.display();
    let consent = "set `format = true` on this node in rack.toml to let first boot erase it";
    match probe {
        DiskProbe::Missing => DiskAction::Refuse {
            reason: format!("disk {disk} is not there (plugged in? see `lsblk`)"),
        },
        DiskProbe::Filesystem {
            fstype,
            label,
            uuid,
        } => {
            let ours = label.as_deref() == Some(DISK_LABEL);
            match uuid {
                Some(uuid) if ours || (!node.format && USABLE_FS.contains(&fstype.as_str())) => {
                    DiskAction::Mount {
                        fstype: fstype.clone(),
                        uuid: uuid.clone(),
                    }
                }
                _ if node.format && !ours => DiskAction::Format {
                    reason: format!(
                        "format = true and {disk} holds {fstype} labelled `{}`, not mooseherd's",
                        label.as_deref().unwrap_or("")
                    ),
                },
                None => DiskAction::Refuse {
                    reason: format!("{fstype} on {disk} has no UUID to mount it by"),
                },
                Some(_) => DiskAction::Refuse {
                    reason: format!(
                        "disk {disk} holds a {fstype} filesystem, which MooseFS chunks cannot use (need {}); {consent}",
                        USABLE_FS.join("/")
                    ),
                },
            }
        }
        DiskProbe::Partitioned { pttype } if node.format => DiskAction::Format {
            reason: format!("format = true and {disk} has a {pttype} partition table"),
        },
        DiskProbe::Partitioned { pttype } => DiskAction::Refuse {
            reason: format!(
                "disk {disk} has a {pttype} partition table: name a partition instead (e.g. {disk}1), or {consent}"
            ),
        },
        DiskProbe::Blank if node.format => DiskAction::Format {
            reason: format!("format = true and {disk} is blank"),
        },
        DiskProbe::Blank => DiskAction::Refuse {
            reason: format!("disk {disk} has no filesystem; {consent}"),
        },
    }
}

/// `/etc/hosts` with `127.0.1.1 NAME` (Debian's convention for the own hostname), other lines kept.
pub fn hosts_with(old: &str, name: &str) -> String {
    let mut out = String::new();
    let mut done = false;
    for line in old.lines() {
        if line.split_whitespace().next() == Some("127.0.1.1") {
            if !done {
                out.push_str(&format!("127.0.1.1\t{name}\n"));
                done = true;
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !done {
        out.push_str(&format!("127.0.1.1\t{name}\n"));
    }
    out
}

/// `/etc/fstab` with the data disk's line (marked with [`FSTAB_MARK`]) set to `line`.
pub fn fstab_with(old: &str, line: &str) -> String {
    let mut out = String::new();
    let mut skip_next = false;
    for l in old.lines() {
        if skip_next {
            skip_next = false;
            continue;
        }
        if l.trim() == FSTAB_MARK {
            skip_next = true;
            continue;
        }
        out.push_str(l);
        out.push('\n');
    }
    out.push_str(FSTAB_MARK);
    out.push('\n');
    out.push_str(line);
    out.push('\n');
    out
}

/// The fstab line of the data disk: by UUID, `nofail` so a missing disk never blocks boot.
pub fn fstab_line(uuid: &str, fstype: &str, mount: &Path) -> String {
    format!(
        "UUID={uuid}\t{}\t{fstype}\tdefaults,noatime,nofail,x-systemd.device-timeout=30s\t0\t2",
        mount.display()
    )
}

/// `/etc/shadow` with `user`'s password hash replaced; `None` if the user has no line.
pub fn shadow_with(old: &str, user: &str, hash: &str) -> Option<String> {
    let mut found = false;
    let mut out = String::new();
    for line in old.lines() {
        let mut fields: Vec<&str> = line.split(':').collect();
        if fields.first() == Some(&user) && fields.len() >= 2 {
            fields[1] = hash;
            found = true;
            out.push_str(&fields.join(":"));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    found.then_some(out)
}

/// Checks a password hash from the boot partition: one line (a trailing line break is fine) in
/// the shape of a crypt(3) hash ([`is_crypt_hash`]), so nothing else reaches /etc/shadow.
pub fn password_hash(file: &Path, contents: &str) -> Result<String, FirstbootError> {
    let hash = contents.strip_suffix('\n').unwrap_or(contents);
    let hash = hash.strip_suffix('\r').unwrap_or(hash);
    if is_crypt_hash(hash) {
        Ok(hash.to_string())
    } else {
        Err(FirstbootError::BadPasswordHash {
            file: file.display().to_string(),
        })
    }
}

/// Longest hash accepted (sha512crypt with rounds is ~120 characters).
const MAX_HASH_LEN: usize = 512;
/// Shortest final (hash) field: MD5-crypt's 22 characters are the shortest of the modular formats.
const MIN_HASH_FIELD: usize = 16;

/// The crypt(3) alphabet of salts and hashes.
fn crypt_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '.' || c == '/'
}

/// Whether `s` has the shape of a modular crypt(3) hash: `$ID$SALT$HASH` or
/// `$ID$PARAMS$SALT$HASH`, with ID lowercase letters and digits (`1`, `5`, `6`, `2b`, `y`, `gy`,
/// `7`), SALT and HASH in the crypt alphabet `[./0-9A-Za-z]`, PARAMS also with `=` and `,`
/// (`rounds=5000`, yescrypt's `j9T`). Everything else is refused: control characters, `:`,
/// spaces, a bare `$`, locked forms (`!`, `*`), DES hashes and plain passwords.
pub fn is_crypt_hash(s: &str) -> bool {
    if s.len() > MAX_HASH_LEN {
        return false;
    }
    let Some(rest) = s.strip_prefix('$') else {
        return false;
    };
    let fields: Vec<&str> = rest.split('$').collect();
    let (id, params, salt, hash) = match fields[..] {
        [id, salt, hash] => (id, None, salt, hash),
        [id, params, salt, hash] => (id, Some(params), salt, hash),
        _ => return false,
    };
    let id_ok = (1..=8).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let params_ok = params
        .is_none_or(|p| !p.is_empty() && p.chars().all(|c| crypt_char(c) || c == '=' || c == ','));
    id_ok
        && params_ok
        && !salt.is_empty()
        && salt.chars().all(crypt_char)
        && hash.len() >= MIN_HASH_FIELD
        && hash.chars().all(crypt_char)
}

/// The systemd-networkd file that gives the node's interface its rack address (DHCP stays on
/// for the gateway and DNS).
pub fn network_file(rack: &Rack, node: &Node) -> String {
    format!(
        "# Written by mooseherd firstboot from the rack file: node `{}`.\n[Match]\nName={}\n\n[Network]\nDHCP=yes\nAddress={}/{}\n",
        node.name,
        node.interface,
        node.addr,
        rack.cluster.vip.prefix_len()
    )
}

/// Where the files first boot reads from the boot partition live.
#[derive(Debug, Clone)]
pub struct BootFiles {
    pub dir: PathBuf,
}

/// The rack file on the boot partition, relative to it.
pub const RACK: &str = "mooseherd/rack.toml";
/// The gossip keyring on the boot partition.
pub const KEYRING: &str = "mooseherd/keyring";
/// Root's ssh public keys on the boot partition.
pub const AUTHORIZED_KEYS: &str = "mooseherd/authorized_keys";
/// Root's crypt(3) password hash on the boot partition.
pub const PASSWORD_HASH: &str = "mooseherd/root-password-hash";

impl BootFiles {
    pub fn rack(&self) -> PathBuf {
        self.dir.join(RACK)
    }
    pub fn keyring(&self) -> PathBuf {
        self.dir.join(KEYRING)
    }
    pub fn authorized_keys(&self) -> PathBuf {
        self.dir.join(AUTHORIZED_KEYS)
    }
    pub fn password_hash(&self) -> PathBuf {
        self.dir.join(PASSWORD_HASH)
    }
}

#[cfg(test)]
mod tests;
