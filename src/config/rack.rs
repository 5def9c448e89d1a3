//! The rack file: one TOML file, the same on every Pi, that names the cluster and its nodes.
//!
//! Parsing keeps the position of every value so validation can say `FILE:LINE:COL` for each
//! mistake, and validation goes on after the first problem so a person sees all of them at once.
//! The result is a [`Rack`]: typed, checked, and with nodes numbered by their order in the file
//! (that number is the node's [`NodeId`] on the wire, so every Pi must carry the same file; the
//! rack's [`Rack::fingerprint`] lets agents notice when they do not).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::board::{self, Catalog};
use super::diag::{Diagnostic, Diagnostics, Severity, suggestion};
use super::parse::parse_toml;
use crate::core::NodeId;

/// Default UDP port of gossip and lease traffic.
pub const DEFAULT_GOSSIP_PORT: u16 = 9470;
/// Shortest lease accepted: below this, scheduling noise on a Pi eats the margins.
pub const MIN_LEASE_MS: u64 = 1000;

pub const CLUSTER_KEYS: &[&str] = &[
    "name",
    "vip",
    "interface",
    "lease_ms",
    "fence_budget_ms",
    "max_drift_ppm",
    "keyring",
    "replication",
    "gossip_port",
    "state_dir",
    "mount_path",
    "shared_dir",
    "boards_dir",
    "control_socket",
    "metrics_listen",
];
pub const NODE_KEYS: &[&str] = &[
    "name",
    "addr",
    "roles",
    "board",
    "voter",
    "priority",
    "interface",
    "mac",
    "drbd_disk",
    "meta_dir",
    "chunk_dirs",
    "mount_path",
    "disk",
    "disk_mount",
    "format",
    "metrics_listen",
];
pub const DRBD_KEYS: &[&str] = &["resource", "device", "port", "version"];
pub const PROVISIONER_KEYS: &[&str] = &["enabled", "name", "kubeconfig", "root"];
const TOP_KEYS: &[&str] = &["cluster", "node", "drbd", "provisioner"];
pub const ROLES: &[&str] = &["master", "chunkserver", "worker"];
pub const REPLICATIONS: &[&str] = &["drbd", "metalogger", "shared-dir"];

fn known_keys(path: &[String]) -> &'static [&'static str] {
    match path {
        [] => TOP_KEYS,
        [t] if t == "cluster" => CLUSTER_KEYS,
        [t] if t == "node" => NODE_KEYS,
        [t] if t == "drbd" => DRBD_KEYS,
        [t] if t == "provisioner" => PROVISIONER_KEYS,
        _ => &[],
    }
}

#[derive(Debug, Deserialize)]
struct RawRack {
    cluster: Spanned<RawCluster>,
    #[serde(default)]
    node: Vec<Spanned<RawNode>>,
    drbd: Option<Spanned<RawDrbd>>,
    provisioner: Option<Spanned<RawProvisioner>>,
}

#[derive(Debug, Deserialize)]
struct RawProvisioner {
    #[serde(default)]
    enabled: bool,
    #[serde(default = "default_provisioner_name")]
    name: Spanned<String>,
    #[serde(default = "default_kubeconfig")]
    kubeconfig: Spanned<PathBuf>,
    #[serde(default = "default_provisioner_root")]
    root: Spanned<String>,
}

fn default_provisioner_name() -> Spanned<String> {
    sp(crate::provisioner::DEFAULT_NAME.into())
}
fn default_kubeconfig() -> Spanned<PathBuf> {
    sp(crate::provisioner::DEFAULT_KUBECONFIG.into())
}
fn default_provisioner_root() -> Spanned<String> {
    sp("volumes".into())
}

#[derive(Debug, Deserialize)]
struct RawCluster {
    name: Spanned<String>,
    vip: Spanned<String>,
    #[serde(default = "default_interface")]
    interface: Spanned<String>,
    #[serde(default = "default_lease")]
    lease_ms: Spanned<u64>,
    #[serde(default = "default_fence")]
    fence_budget_ms: Spanned<u64>,
    #[serde(default = "default_drift")]
    max_drift_ppm: Spanned<u64>,
    #[serde(default = "default_keyring")]
    keyring: Spanned<PathBuf>,
    replication: Spanned<String>,
    #[serde(default = "default_port")]
    gossip_port: Spanned<u16>,
    #[serde(default = "default_state_dir")]
    state_dir: PathBuf,
    #[serde(default = "default_mount")]
    mount_path: PathBuf,
    shared_dir: Option<Spanned<PathBuf>>,
    #[serde(default = "default_boards_dir")]
    boards_dir: PathBuf,
    #[serde(default = "default_control")]
    control_socket: PathBuf,
    metrics_listen: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
struct RawNode {
    name: Spanned<String>,
    addr: Spanned<String>,
    roles: Spanned<Vec<Spanned<String>>>,
    board: Spanned<String>,
    #[serde(default)]
    voter: bool,
    #[serde(default = "default_priority")]
    priority: Spanned<u32>,
    interface: Option<Spanned<String>>,
    mac: Option<Spanned<String>>,
    drbd_disk: Option<PathBuf>,
    #[serde(default = "default_meta_dir")]
    meta_dir: PathBuf,
    #[serde(default)]
    chunk_dirs: Vec<PathBuf>,
    mount_path: Option<Spanned<PathBuf>>,
    disk: Option<Spanned<PathBuf>>,
    disk_mount: Option<Spanned<PathBuf>>,
    format: Option<Spanned<bool>>,
    metrics_listen: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
struct RawDrbd {
    #[serde(default = "default_drbd_resource")]
    resource: String,
    #[serde(default = "default_drbd_device")]
    device: PathBuf,
    #[serde(default = "default_drbd_port")]
    port: u16,
    #[serde(default = "default_drbd_version")]
    version: Spanned<String>,
}

fn sp<T>(v: T) -> Spanned<T> {
    Spanned::new(0..0, v)
}
fn default_interface() -> Spanned<String> {
    sp("eth0".into())
}
fn default_lease() -> Spanned<u64> {
    sp(3000)
}
fn default_fence() -> Spanned<u64> {
    sp(1000)
}
fn default_drift() -> Spanned<u64> {
    sp(10_000)
}
fn default_keyring() -> Spanned<PathBuf> {
    sp("/etc/mooseherd/keyring".into())
}
fn default_port() -> Spanned<u16> {
    sp(DEFAULT_GOSSIP_PORT)
}
fn default_state_dir() -> PathBuf {
    "/var/lib/mooseherd".into()
}
fn default_mount() -> PathBuf {
    "/mnt/moosefs".into()
}
fn default_boards_dir() -> PathBuf {
    board::DEFAULT_OVERRIDE_DIR.into()
}
fn default_control() -> PathBuf {
    "/run/mooseherd/control".into()
}
fn default_priority() -> Spanned<u32> {
    sp(100)
}
fn default_meta_dir() -> PathBuf {
    "/var/lib/mfs".into()
}
/// Where first boot mounts a node's data disk unless `disk_mount` says otherwise.
pub const DEFAULT_DISK_MOUNT: &str = "/mnt/usb";
fn default_drbd_resource() -> String {
    "mfsmeta".into()
}
fn default_drbd_device() -> PathBuf {
    "/dev/drbd0".into()
}
fn default_drbd_port() -> u16 {
    7789
}
fn default_drbd_version() -> Spanned<String> {
    sp("8.4".into())
}

/// What a node does in the rack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A master candidate: runs mfsmaster while it holds the lease, keeps a replica otherwise.
    Master,
    /// Runs mfschunkserver on its disk.
    Chunkserver,
    /// Keeps mfsmount mounted for pods.
    Worker,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Chunkserver => "chunkserver",
            Role::Worker => "worker",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "master" => Some(Role::Master),
            "chunkserver" => Some(Role::Chunkserver),
            "worker" => Some(Role::Worker),
            _ => None,
        }
    }
}

/// How the master's metadata reaches the standbys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Replication {
    /// DRBD replicates the metadata block device (production).
    Drbd,
    /// Standbys run mfsmetalogger; asynchronous (a small loss window).
    Metalogger,
    /// One directory shared by all candidates. Lab only: stands in for a dual-attached disk.
    SharedDir,
}

impl Replication {
    pub fn as_str(self) -> &'static str {
        match self {
            Replication::Drbd => "drbd",
            Replication::Metalogger => "metalogger",
            Replication::SharedDir => "shared-dir",
        }
    }
}

/// DRBD kernel module generation: 8.4 (mainline kernels, no quorum) or 9 (out of tree, quorum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum DrbdVersion {
    V84,
    V9,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drbd {
    pub resource: String,
    pub device: PathBuf,
    pub port: u16,
    pub version: DrbdVersion,
}

/// The `[provisioner]` table, checked (defaults when absent: disabled).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Provisioner {
    pub enabled: bool,
    /// The provisioner name StorageClasses give (`mooseherd.io/moosefs`).
    pub name: String,
    pub kubeconfig: PathBuf,
    /// The volumes' directory, relative to the MooseFS mount (`mount_path`).
    pub root: String,
}

impl Default for Provisioner {
    fn default() -> Self {
        Provisioner {
            enabled: false,
            name: crate::provisioner::DEFAULT_NAME.into(),
            kubeconfig: crate::provisioner::DEFAULT_KUBECONFIG.into(),
            root: "volumes".into(),
        }
    }
}

/// The `[cluster]` table, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cluster {
    pub name: String,
    pub vip: Ipv4Net,
    pub interface: String,
    pub lease_ms: u64,
    pub fence_budget_ms: u64,
    pub max_drift_ppm: u64,
    pub keyring: PathBuf,
    pub replication: Replication,
    pub gossip_port: u16,
    pub state_dir: PathBuf,
    pub mount_path: PathBuf,
    pub shared_dir: Option<PathBuf>,
    pub boards_dir: PathBuf,
    pub control_socket: PathBuf,
    /// Where the Prometheus endpoint listens (`None`: off).
    pub metrics_listen: Option<SocketAddr>,
}

/// One `[[node]]`, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    pub id: NodeId,
    pub name: String,
    pub addr: Ipv4Addr,
    pub roles: Vec<Role>,
    pub board: String,
    pub voter: bool,
    pub priority: u8,
    pub interface: String,
    pub mac: Option<String>,
    pub drbd_disk: Option<PathBuf>,
    pub meta_dir: PathBuf,
    pub chunk_dirs: Vec<PathBuf>,
    /// Where this worker mounts MooseFS (the cluster's `mount_path` unless overridden).
    pub mount_path: PathBuf,
    /// The data disk (e.g. `/dev/sda`) first boot prepares and mounts at `disk_mount`.
    pub disk: Option<PathBuf>,
    /// Where the data disk is mounted (`/mnt/usb` by default).
    pub disk_mount: PathBuf,
    /// Explicit consent to create a filesystem on `disk` if it does not already carry mooseherd's.
    pub format: bool,
    /// Where this node's Prometheus endpoint listens (the cluster's unless overridden; `None`: off).
    pub metrics_listen: Option<SocketAddr>,
}

impl Node {
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

/// A validated rack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rack {
    pub source: PathBuf,
    pub cluster: Cluster,
    pub nodes: Vec<Node>,
    pub drbd: Option<Drbd>,
    pub provisioner: Provisioner,
}

/// Errors loading a rack file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read rack file {file}: {source}")]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
}

impl ConfigError {
    /// The diagnostics (errors and warnings) behind an invalid file; empty for a read error.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Invalid(d) => d,
            ConfigError::Read { .. } => &[],
        }
    }
}

/// Which checks need the machine the rack runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostChecks {
    /// Check that the keyring exists, is readable, and is private.
    pub keyring: bool,
}

impl HostChecks {
    pub const ALL: Self = Self { keyring: true };
    pub const NONE: Self = Self { keyring: false };
}

impl Rack {
    /// Reads and validates a rack file. `Ok` carries the warnings.
    pub fn load(path: &Path, host: HostChecks) -> Result<(Rack, Vec<Diagnostic>), ConfigError> {
        let src = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        Self::parse(&src, path, host)
    }

    /// Validates rack file contents; `path` is only used in messages and to resolve relative paths.
    pub fn parse(
        src: &str,
        path: &Path,
        host: HostChecks,
    ) -> Result<(Rack, Vec<Diagnostic>), ConfigError> {
        let mut diags = Diagnostics::new(path, src);
        let rack = parse_toml::<RawRack>(src, &mut diags, &known_keys)
            .and_then(|raw| validate(raw, path, host, &mut diags));
        let found = diags.into_sorted();
        match rack {
            Some(r) if !found.iter().any(|d| d.severity == Severity::Error) => Ok((r, found)),
            _ => Err(ConfigError::Invalid(found)),
        }
    }

    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(usize::from(id.0))
    }

    pub fn node_by_name(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }

    pub fn voters(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.voter)
    }

    /// Number of voters that makes a majority.
    pub fn quorum(&self) -> usize {
        self.voters().count() / 2 + 1
    }

    /// A stable 64-bit digest of what agents must agree on (names, addresses, roles, voters, lease
    /// timing, VIP). Carried in gossip so an agent with a different rack file is noticed.
    pub fn fingerprint(&self) -> u64 {
        let mut h = Fnv64::new();
        h.write(self.cluster.name.as_bytes());
        h.write(self.cluster.vip.to_string().as_bytes());
        h.write(&self.cluster.lease_ms.to_le_bytes());
        h.write(&self.cluster.max_drift_ppm.to_le_bytes());
        for n in &self.nodes {
            h.write(n.name.as_bytes());
            h.write(&n.addr.octets());
            for r in &n.roles {
                h.write(r.as_str().as_bytes());
            }
            h.write(&[u8::from(n.voter), n.priority]);
        }
        h.finish()
    }
}

/// FNV-1a, 64 bit: stable across platforms and releases (unlike `DefaultHasher`).
#[derive(Debug, Clone, Copy)]
pub struct Fnv64(u64);

impl Fnv64 {
    pub fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    pub fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
        // Separator so ("ab","c") and ("a","bc") differ.
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
    }
    pub fn finish(&self) -> u64 {
        self.0
    }
}

impl Default for Fnv64 {
    fn default() -> Self {
        Self::new()
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn valid_ifname(s: &str) -> bool {
    !s.is_empty() && s.len() <= 15 && !s.contains('/') && !s.contains(char::is_whitespace)
}

fn valid_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

fn validate(raw: RawRack, path: &Path, host: HostChecks, d: &mut Diagnostics<'_>) -> Option<Rack> {
    let cspan = raw.cluster.span();
    let c = raw.cluster.into_inner();
    let at = |s: Range<usize>| {
        if s.is_empty() && s.start == 0 {
            cspan.clone()
        } else {
            s
        }
    };

    if !valid_name(c.name.get_ref()) {
        d.error(
            c.name.span(),
            format!(
                "cluster name `{}` must be 1-63 lowercase letters, digits or `-` (it names files and the DRBD resource)",
                c.name.get_ref()
            ),
        );
    }

    // VIP
    let vip = match c.vip.get_ref().parse::<Ipv4Net>() {
        Ok(v) => {
            if v.prefix_len() == 32 {
                d.error(
                    c.vip.span(),
                    format!("vip `{v}` has a /32 prefix; give the subnet of the interface, e.g. `{}/24`", v.addr()),
                );
            } else if v.prefix_len() < 31 && (v.addr() == v.network() || v.addr() == v.broadcast())
            {
                d.error(
                    c.vip.span(),
                    format!(
                        "vip `{v}` is the {} address of its subnet; pick a host address",
                        if v.addr() == v.network() {
                            "network"
                        } else {
                            "broadcast"
                        }
                    ),
                );
            }
            Some(v)
        }
        Err(_) => {
            let hint = if c.vip.get_ref().contains(':') {
                "IPv6 VIPs are not supported (gratuitous ARP is IPv4)"
            } else if c.vip.get_ref().parse::<Ipv4Addr>().is_ok() {
                "add the subnet prefix of the interface, e.g. `/24`"
            } else {
                "expected an IPv4 address with prefix, e.g. `192.168.1.50/24`"
            };
            d.error(
                c.vip.span(),
                format!("vip `{}` is not valid: {hint}", c.vip.get_ref()),
            );
            None
        }
    };

    if !valid_ifname(c.interface.get_ref()) {
        d.error(
            at(c.interface.span()),
            format!(
                "interface `{}` is not a Linux interface name (1-15 characters, no `/` or spaces)",
                c.interface.get_ref()
            ),
        );
    }

    // Replication
    let replication = match c.replication.get_ref().as_str() {
        "drbd" => Some(Replication::Drbd),
        "metalogger" => Some(Replication::Metalogger),
        "shared-dir" => Some(Replication::SharedDir),
        other => {
            d.error(
                c.replication.span(),
                format!(
                    "unknown replication `{other}` (valid: {}){}",
                    REPLICATIONS.join(", "),
                    suggestion(other, REPLICATIONS)
                ),
            );
            None
        }
    };
    if replication == Some(Replication::SharedDir) {
        match &c.shared_dir {
            None => d.error(
                c.replication.span(),
                "replication = \"shared-dir\" needs `shared_dir` in [cluster]: the directory every master candidate sees",
            ),
            Some(s) if !s.get_ref().is_absolute() => d.error(s.span(), "shared_dir must be an absolute path"),
            Some(_) => {}
        }
        d.warning(
            c.replication.span(),
            "replication = \"shared-dir\" is for the lab only: it stands in for a disk attached to every master candidate",
        );
    }
    let drbd = match (&replication, raw.drbd) {
        (Some(Replication::Drbd), Some(t)) => {
            let t = t.into_inner();
            let version = match t.version.get_ref().as_str() {
                "8.4" => Some(DrbdVersion::V84),
                "9" => Some(DrbdVersion::V9),
                other => {
                    d.error(at(t.version.span()), format!("drbd version `{other}` is not known (valid: \"8.4\" for mainline kernels, \"9\")"));
                    None
                }
            };
            version.map(|version| Drbd {
                resource: t.resource,
                device: t.device,
                port: t.port,
                version,
            })
        }
        (Some(Replication::Drbd), None) => Some(Drbd {
            resource: default_drbd_resource(),
            device: default_drbd_device(),
            port: default_drbd_port(),
            version: DrbdVersion::V84,
        }),
        (_, Some(t)) => {
            d.warning(t.span(), "[drbd] is ignored: replication is not \"drbd\"");
            None
        }
        (_, None) => None,
    };

    // Lease arithmetic: see ARCHITECTURE.md, "lease timing".
    let lease = *c.lease_ms.get_ref();
    let fence = *c.fence_budget_ms.get_ref();
    let drift = *c.max_drift_ppm.get_ref();
    if drift >= 100_000 {
        d.error(at(c.max_drift_ppm.span()), format!("max_drift_ppm = {drift} is over 10 %; real clocks drift far less (a Pi's crystal: ~50 ppm)"));
    }
    if lease < MIN_LEASE_MS {
        d.error(
            at(c.lease_ms.span()),
            format!("lease_ms = {lease} is below the minimum of {MIN_LEASE_MS} ms"),
        );
    } else if fence < 100 {
        d.error(at(c.fence_budget_ms.span()), format!("fence_budget_ms = {fence} is too short to drop the VIP and stop mfsmaster (at least 100)"));
    } else if let Some(slack) = lease_slack_ms(lease, fence, drift)
        && slack < 0
    {
        {
            d.error(
                at(c.lease_ms.span()),
                format!(
                    "lease_ms = {lease} is too short for fence_budget_ms = {fence}: a holder renews every lease/3 and must keep the whole fencing budget before its lease (less {} ppm drift) ends; use lease_ms >= {}",
                    drift,
                    min_lease_ms(fence, drift)
                ),
            );
        }
    }

    if host.keyring {
        check_keyring(c.keyring.get_ref(), at(c.keyring.span()), d);
    }

    let cluster_metrics = match &c.metrics_listen {
        Some(m) => metrics_listen(m, "[cluster]", &at, d),
        None => Some(SocketAddr::from(([127, 0, 0, 1], DEFAULT_METRICS_PORT))),
    };

    // Nodes
    let catalog = match Catalog::load(Some(&c.boards_dir)) {
        Ok(cat) => cat,
        Err(e) => {
            d.error(
                cspan.clone(),
                format!("boards_dir {}: {e}", c.boards_dir.display()),
            );
            Catalog::embedded()
        }
    };
    if raw.node.is_empty() {
        d.error(cspan.clone(), "the rack has no [[node]] entries");
    }
    if raw.node.len() > usize::from(u16::MAX) {
        d.error(cspan.clone(), "too many nodes");
        return None;
    }
    let mut names: BTreeMap<String, Range<usize>> = BTreeMap::new();
    let mut addrs: BTreeMap<Ipv4Addr, String> = BTreeMap::new();
    let mut nodes = Vec::new();
    for (i, n) in raw.node.into_iter().enumerate() {
        let nspan = n.span();
        let n = n.into_inner();
        let name = n.name.get_ref().clone();
        if !valid_name(&name) {
            d.error(n.name.span(), format!("node name `{name}` must be 1-63 lowercase letters, digits or `-` (it becomes a hostname)"));
        }
        if names.insert(name.clone(), n.name.span()).is_some() {
            d.error(n.name.span(), format!("node name `{name}` is used twice"));
        }
        let addr = match n.addr.get_ref().parse::<Ipv4Addr>() {
            Ok(a) => {
                if let Some(other) = addrs.insert(a, name.clone()) {
                    d.error(
                        n.addr.span(),
                        format!("addr {a} of `{name}` is already the address of `{other}`"),
                    );
                }
                if let Some(v) = vip {
                    if a == v.addr() {
                        d.error(n.addr.span(), format!("addr {a} of `{name}` is the VIP; the VIP must be an address no node owns"));
                    } else if !v.contains(&a) {
                        d.error(
                            n.addr.span(),
                            format!("addr {a} of `{name}` is not in the VIP's subnet {}: the VIP moves between nodes on one L2 subnet", v.trunc()),
                        );
                    }
                }
                Some(a)
            }
            Err(_) => {
                d.error(n.addr.span(), format!("addr `{}` of `{name}` is not an IPv4 address (e.g. `192.168.1.11`, no prefix)", n.addr.get_ref()));
                None
            }
        };
        let mut roles = Vec::new();
        for r in n.roles.get_ref() {
            match Role::parse(r.get_ref()) {
                Some(role) if roles.contains(&role) => {
                    d.warning(r.span(), format!("role `{}` is listed twice", r.get_ref()))
                }
                Some(role) => roles.push(role),
                None => d.error(
                    r.span(),
                    format!(
                        "unknown role `{}` (valid: {}){}",
                        r.get_ref(),
                        ROLES.join(", "),
                        suggestion(r.get_ref(), ROLES)
                    ),
                ),
            }
        }
        if n.roles.get_ref().is_empty() {
            d.error(n.roles.span(), format!("node `{name}` has no roles (valid: {}); a voter-only Pi still needs one, e.g. \"worker\"", ROLES.join(", ")));
        }
        roles.sort();
        if catalog.get(n.board.get_ref()).is_none() {
            let known = catalog.names();
            d.error(
                n.board.span(),
                format!(
                    "unknown board `{}` (known: {}; add your own in {}){}",
                    n.board.get_ref(),
                    known.join(", "),
                    c.boards_dir.display(),
                    suggestion(n.board.get_ref(), &known)
                ),
            );
        }
        let prio = *n.priority.get_ref();
        if prio > 255 {
            d.error(at(n.priority.span()), format!("priority {prio} is outside 0..=255 (higher stands first; 0 = never leader unless alone)"));
        }
        if let Some(iface) = &n.interface
            && !valid_ifname(iface.get_ref())
        {
            {
                d.error(
                    iface.span(),
                    format!(
                        "interface `{}` is not a Linux interface name",
                        iface.get_ref()
                    ),
                );
            }
        }
        if let Some(mac) = &n.mac
            && !valid_mac(mac.get_ref())
        {
            {
                d.error(
                    mac.span(),
                    format!(
                        "mac `{}` is not a MAC address like `dc:a6:32:01:02:03`",
                        mac.get_ref()
                    ),
                );
            }
        }
        if roles.contains(&Role::Master) {
            if replication == Some(Replication::Drbd) && n.drbd_disk.is_none() {
                d.error(nspan.clone(), format!("master candidate `{name}` needs `drbd_disk` (the backing block device, e.g. \"/dev/sda2\") because replication is \"drbd\""));
            }
            if !n.meta_dir.is_absolute() {
                d.error(
                    nspan.clone(),
                    format!("meta_dir of `{name}` must be an absolute path"),
                );
            }
        }
        if let Some(m) = &n.mount_path
            && !m.get_ref().is_absolute()
        {
            d.error(
                m.span(),
                format!("mount_path of `{name}` must be an absolute path"),
            );
        }
        let disk_mount = n
            .disk_mount
            .clone()
            .map_or_else(|| PathBuf::from(DEFAULT_DISK_MOUNT), Spanned::into_inner);
        if let Some(m) = &n.disk_mount
            && !m.get_ref().is_absolute()
        {
            d.error(
                m.span(),
                format!("disk_mount of `{name}` must be an absolute path, e.g. \"/mnt/usb\""),
            );
        }
        if let Some(disk) = &n.disk
            && !disk.get_ref().starts_with("/dev/")
        {
            d.error(
                disk.span(),
                format!(
                    "disk `{}` of `{name}` must be a block device under /dev, e.g. \"/dev/sda\" (or a stable /dev/disk/by-id/... path)",
                    disk.get_ref().display()
                ),
            );
        }
        if let Some(f) = &n.format
            && *f.get_ref()
            && n.disk.is_none()
        {
            d.error(
                f.span(),
                format!("format = true on `{name}` but it has no `disk`: name the data disk to format, e.g. disk = \"/dev/sda\""),
            );
        }
        if n.disk.is_some() {
            for dir in &n.chunk_dirs {
                if dir.is_absolute() && !dir.starts_with(&disk_mount) {
                    d.warning(
                        nspan.clone(),
                        format!(
                            "chunk dir `{}` of `{name}` is not under disk_mount {}: chunks would go to the SD card",
                            dir.display(),
                            disk_mount.display()
                        ),
                    );
                }
            }
        }
        if roles.contains(&Role::Chunkserver) {
            if n.chunk_dirs.is_empty() {
                d.error(nspan.clone(), format!("chunkserver `{name}` needs `chunk_dirs` (directories on its data disk, e.g. [\"/mnt/usb/mfschunks\"])"));
            }
            for dir in &n.chunk_dirs {
                if !dir.is_absolute() {
                    d.error(
                        nspan.clone(),
                        format!(
                            "chunk dir `{}` of `{name}` must be an absolute path",
                            dir.display()
                        ),
                    );
                }
            }
        }
        nodes.push((
            nspan,
            Node {
                id: NodeId(u16::try_from(i).unwrap_or(u16::MAX)),
                name,
                addr: addr.unwrap_or(Ipv4Addr::UNSPECIFIED),
                roles,
                board: n.board.into_inner(),
                voter: n.voter,
                priority: u8::try_from(prio).unwrap_or(u8::MAX),
                interface: n
                    .interface
                    .map_or_else(|| c.interface.get_ref().clone(), Spanned::into_inner),
                mac: n.mac.map(Spanned::into_inner),
                drbd_disk: n.drbd_disk,
                meta_dir: n.meta_dir,
                chunk_dirs: n.chunk_dirs,
                mount_path: n
                    .mount_path
                    .map_or_else(|| c.mount_path.clone(), Spanned::into_inner),
                disk: n.disk.map(Spanned::into_inner),
                disk_mount,
                format: n.format.is_some_and(|f| *f.get_ref()),
                metrics_listen: match &n.metrics_listen {
                    Some(m) => {
                        metrics_listen(m, &format!("node `{}`", n.name.get_ref()), &|r| r, d)
                    }
                    None => cluster_metrics,
                },
            },
        ));
    }

    // Whole-rack checks.
    let voters = nodes.iter().filter(|(_, n)| n.voter).count();
    let masters: Vec<&Node> = nodes
        .iter()
        .map(|(_, n)| n)
        .filter(|n| n.has(Role::Master))
        .collect();
    if !nodes.is_empty() {
        if voters == 0 {
            d.error(cspan.clone(), "no node has `voter = true`: the lease needs a majority of voters, so no leader could ever be elected; mark 3 (or 5) nodes as voters");
        } else if voters % 2 == 0 {
            d.warning(
                cspan.clone(),
                format!("{voters} voters: an even number tolerates no more failures than {} and can split evenly; use an odd number", voters - 1),
            );
        } else if voters == 1 {
            d.warning(
                cspan.clone(),
                "1 voter: if that node is down, no leader can be elected; use 3 voters",
            );
        }
        if masters.is_empty() {
            d.error(
                cspan.clone(),
                "no node has the `master` role: nothing can run mfsmaster",
            );
        } else if masters.len() == 1 {
            d.warning(cspan.clone(), "only one master candidate: the master cannot fail over; give a second node the `master` role");
        }
        if replication == Some(Replication::Drbd)
            && masters.len() > 2
            && drbd.as_ref().is_some_and(|x| x.version == DrbdVersion::V84)
        {
            let span = masters
                .get(2)
                .and_then(|m| nodes.iter().find(|(_, n)| n.id == m.id))
                .map_or(cspan.clone(), |(s, _)| s.clone());
            d.error(span, format!("{} master candidates, but DRBD 8.4 replicates between two nodes; keep two, or set [drbd] version = \"9\"", masters.len()));
        }
        if !nodes.iter().any(|(_, n)| n.has(Role::Chunkserver)) {
            d.warning(
                cspan.clone(),
                "no node has the `chunkserver` role: MooseFS will hold no data",
            );
        }
    }

    let provisioner = match raw.provisioner {
        None => Provisioner::default(),
        Some(t) => {
            let tspan = t.span();
            let t = t.into_inner();
            let at = |s: Range<usize>| {
                if s.is_empty() && s.start == 0 {
                    tspan.clone()
                } else {
                    s
                }
            };
            if !valid_provisioner_name(t.name.get_ref()) {
                d.error(at(t.name.span()), format!("provisioner name `{}` must look like `example.com/name` (a DNS subdomain, `/`, a name; at most 63 characters after the `/`)", t.name.get_ref()));
            }
            if !t.kubeconfig.get_ref().is_absolute() {
                d.error(
                    at(t.kubeconfig.span()),
                    "kubeconfig must be an absolute path",
                );
            }
            if let Err(e) = crate::provisioner::path::RelPath::parse(t.root.get_ref()) {
                d.error(at(t.root.span()), format!("root `{}` must be a directory relative to mount_path, e.g. \"volumes\": {e}", t.root.get_ref()));
            }
            if t.enabled {
                for (nspan, n) in &nodes {
                    if n.has(Role::Master) && !n.has(Role::Worker) {
                        d.error(nspan.clone(), format!("master candidate `{}` needs the `worker` role: the provisioner runs on the leader and creates volumes through its MooseFS mount", n.name));
                    }
                    if n.has(Role::Worker) && n.mount_path != c.mount_path {
                        d.error(nspan.clone(), format!("worker `{}` mounts MooseFS at {} but volumes' hostPaths use the cluster's mount_path {}; with [provisioner] enabled every worker mounts at the same place", n.name, n.mount_path.display(), c.mount_path.display()));
                    }
                }
            }
            Provisioner {
                enabled: t.enabled,
                name: t.name.into_inner(),
                kubeconfig: t.kubeconfig.into_inner(),
                root: t.root.into_inner(),
            }
        }
    };

    let _ = path;
    let cluster = Cluster {
        name: c.name.into_inner(),
        vip: vip.unwrap_or_default(),
        interface: c.interface.into_inner(),
        lease_ms: lease,
        fence_budget_ms: fence,
        max_drift_ppm: drift,
        keyring: c.keyring.into_inner(),
        replication: replication.unwrap_or(Replication::Metalogger),
        gossip_port: *c.gossip_port.get_ref(),
        state_dir: c.state_dir,
        mount_path: c.mount_path,
        shared_dir: c.shared_dir.map(Spanned::into_inner),
        boards_dir: c.boards_dir,
        control_socket: c.control_socket,
        metrics_listen: cluster_metrics,
    };
    Some(Rack {
        source: path.to_path_buf(),
        cluster,
        nodes: nodes.into_iter().map(|(_, n)| n).collect(),
        drbd,
        provisioner,
    })
}

/// `prefix/name`: a DNS subdomain, `/`, and 1-63 of letters, digits, `-`, `_`, `.`.
fn valid_provisioner_name(s: &str) -> bool {
    let Some((domain, name)) = s.split_once('/') else {
        return false;
    };
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(label)
        && !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The Prometheus endpoint's default port (on 127.0.0.1).
pub const DEFAULT_METRICS_PORT: u16 = 9464;

/// Checks a `metrics_listen` value: `ADDRESS:PORT` or `off`. A non-loopback address is allowed
/// with a warning (the endpoint has no authentication).
fn metrics_listen(
    v: &Spanned<String>,
    place: &str,
    at: &dyn Fn(Range<usize>) -> Range<usize>,
    d: &mut Diagnostics<'_>,
) -> Option<SocketAddr> {
    let text = v.get_ref();
    if text == "off" {
        return None;
    }
    match text.parse::<SocketAddr>() {
        Ok(a) => {
            if !a.ip().is_loopback() {
                d.warning(
                    at(v.span()),
                    format!("metrics_listen = \"{a}\" in {place}: the metrics endpoint has no authentication; anyone who reaches {a} can read the rack's state (keep it on 127.0.0.1 unless a firewall guards it)"),
                );
            }
            Some(a)
        }
        Err(_) => {
            d.error(
                at(v.span()),
                format!("metrics_listen = \"{text}\" in {place} is not ADDRESS:PORT (e.g. \"127.0.0.1:{DEFAULT_METRICS_PORT}\") or \"off\""),
            );
            None
        }
    }
}

/// Time a holder keeps in hand after fencing, in ms: the lease it may believe in (shortened by
/// the drift bound on both its clock and a voter's) minus one renewal period (lease/3, the worst
/// case in which a renewal was just missed) minus the fencing budget. Negative means the budget
/// cannot fit. `None` only on overflow.
pub fn lease_slack_ms(lease_ms: u64, fence_budget_ms: u64, drift_ppm: u64) -> Option<i64> {
    let believed =
        i64::try_from(lease_ms.checked_mul(1_000_000u64.checked_sub(2 * drift_ppm)?)? / 1_000_000)
            .ok()?;
    let renew = i64::try_from(lease_ms / 3).ok()?;
    Some(believed - renew - i64::try_from(fence_budget_ms).ok()?)
}

/// The smallest lease for a fencing budget and drift bound (rounded up to 100 ms).
pub fn min_lease_ms(fence_budget_ms: u64, drift_ppm: u64) -> u64 {
    let mut l = MIN_LEASE_MS;
    while lease_slack_ms(l, fence_budget_ms, drift_ppm).is_some_and(|s| s < 0) && l < 3_600_000 {
        l += 100;
    }
    l
}

fn check_keyring(path: &Path, span: Range<usize>, d: &mut Diagnostics<'_>) {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::File::open(path) {
        Ok(f) => {
            if let Ok(meta) = f.metadata() {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    d.error(span, format!("keyring {} has mode {mode:04o}: others could read the gossip keys; run `chmod 600 {}`", path.display(), path.display()));
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => d.error(
            span,
            format!("keyring {} does not exist; create it with `mooseherd keygen {}` and copy it to every node (or check on a workstation with --no-host-checks)", path.display(), path.display()),
        ),
        Err(e) => d.error(span, format!("keyring {} cannot be read: {e}", path.display())),
    }
}
