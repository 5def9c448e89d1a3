//! The rack file's schema: the raw, position-carrying form serde reads (with every default), and
//! the checked types the rest of the program uses. Kept apart from the checks so that what a
//! rack file may contain can be read in one place.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::super::board;
use crate::node_id::NodeId;

/// Default UDP port of gossip and lease traffic.
pub const DEFAULT_GOSSIP_PORT: u16 = 9470;
/// The default provisioner name.
pub const DEFAULT_PROVISIONER_NAME: &str = "mooseherd.io/moosefs";
/// The default kubeconfig of an agent on the host.
pub const DEFAULT_KUBECONFIG: &str = "/etc/mooseherd/kubeconfig";

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
    "hold_master_connects",
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

pub(super) fn known_keys(path: &[String]) -> &'static [&'static str] {
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
pub(super) struct RawRack {
    pub(super) cluster: Spanned<RawCluster>,
    #[serde(default)]
    pub(super) node: Vec<Spanned<RawNode>>,
    pub(super) drbd: Option<Spanned<RawDrbd>>,
    pub(super) provisioner: Option<Spanned<RawProvisioner>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawProvisioner {
    #[serde(default)]
    pub(super) enabled: bool,
    #[serde(default = "default_provisioner_name")]
    pub(super) name: Spanned<String>,
    #[serde(default = "default_kubeconfig")]
    pub(super) kubeconfig: Spanned<PathBuf>,
    #[serde(default = "default_provisioner_root")]
    pub(super) root: Spanned<String>,
}

fn default_provisioner_name() -> Spanned<String> {
    sp(DEFAULT_PROVISIONER_NAME.into())
}
fn default_kubeconfig() -> Spanned<PathBuf> {
    sp(DEFAULT_KUBECONFIG.into())
}
fn default_provisioner_root() -> Spanned<String> {
    sp("volumes".into())
}

#[derive(Debug, Deserialize)]
pub(super) struct RawCluster {
    pub(super) name: Spanned<String>,
    pub(super) vip: Spanned<String>,
    #[serde(default = "default_interface")]
    pub(super) interface: Spanned<String>,
    #[serde(default = "default_lease")]
    pub(super) lease_ms: Spanned<u64>,
    #[serde(default = "default_fence")]
    pub(super) fence_budget_ms: Spanned<u64>,
    #[serde(default = "default_drift")]
    pub(super) max_drift_ppm: Spanned<u64>,
    #[serde(default = "default_keyring")]
    pub(super) keyring: Spanned<PathBuf>,
    pub(super) replication: Spanned<String>,
    #[serde(default = "default_port")]
    pub(super) gossip_port: Spanned<u16>,
    #[serde(default = "default_state_dir")]
    pub(super) state_dir: Spanned<PathBuf>,
    #[serde(default = "default_mount")]
    pub(super) mount_path: Spanned<PathBuf>,
    pub(super) shared_dir: Option<Spanned<PathBuf>>,
    #[serde(default = "default_boards_dir")]
    pub(super) boards_dir: Spanned<PathBuf>,
    #[serde(default = "default_control")]
    pub(super) control_socket: Spanned<PathBuf>,
    pub(super) metrics_listen: Option<Spanned<String>>,
    #[serde(default = "default_true")]
    pub(super) hold_master_connects: bool,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawNode {
    pub(super) name: Spanned<String>,
    pub(super) addr: Spanned<String>,
    pub(super) roles: Spanned<Vec<Spanned<String>>>,
    pub(super) board: Spanned<String>,
    #[serde(default)]
    pub(super) voter: bool,
    #[serde(default = "default_priority")]
    pub(super) priority: Spanned<u32>,
    pub(super) interface: Option<Spanned<String>>,
    pub(super) mac: Option<Spanned<String>>,
    pub(super) drbd_disk: Option<Spanned<PathBuf>>,
    #[serde(default = "default_meta_dir")]
    pub(super) meta_dir: Spanned<PathBuf>,
    #[serde(default)]
    pub(super) chunk_dirs: Vec<Spanned<PathBuf>>,
    pub(super) mount_path: Option<Spanned<PathBuf>>,
    pub(super) disk: Option<Spanned<PathBuf>>,
    pub(super) disk_mount: Option<Spanned<PathBuf>>,
    pub(super) format: Option<Spanned<bool>>,
    pub(super) metrics_listen: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
pub(super) struct RawDrbd {
    #[serde(default = "default_drbd_resource")]
    pub(super) resource: String,
    #[serde(default = "default_drbd_device")]
    pub(super) device: PathBuf,
    #[serde(default = "default_drbd_port")]
    pub(super) port: u16,
    #[serde(default = "default_drbd_version")]
    pub(super) version: Spanned<String>,
}

fn sp<T>(v: T) -> Spanned<T> {
    Spanned::new(0..0, v)
}
fn default_true() -> bool {
    true
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
fn default_state_dir() -> Spanned<PathBuf> {
    sp("/var/lib/mooseherd".into())
}
fn default_mount() -> Spanned<PathBuf> {
    sp("/mnt/moosefs".into())
}
fn default_boards_dir() -> Spanned<PathBuf> {
    sp(board::DEFAULT_OVERRIDE_DIR.into())
}
fn default_control() -> Spanned<PathBuf> {
    sp("/run/mooseherd/control".into())
}
fn default_priority() -> Spanned<u32> {
    sp(100)
}
fn default_meta_dir() -> Spanned<PathBuf> {
    sp("/var/lib/mfs".into())
}
/// Where first boot mounts a node's data disk unless `disk_mount` says otherwise.
pub const DEFAULT_DISK_MOUNT: &str = "/mnt/usb";
pub(super) fn default_drbd_resource() -> String {
    "mfsmeta".into()
}
pub(super) fn default_drbd_device() -> PathBuf {
    "/dev/drbd0".into()
}
pub(super) fn default_drbd_port() -> u16 {
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
    pub(super) fn parse(s: &str) -> Option<Self> {
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
            name: DEFAULT_PROVISIONER_NAME.into(),
            kubeconfig: DEFAULT_KUBECONFIG.into(),
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
    /// Master candidates keep clients' connects to a restarting mfsmaster waiting instead of
    /// refused (`host::syn_hold`): a crashed master's clients are back in ~1 s instead of ~3 s.
    /// On by default; the rule dies with the agent.
    pub hold_master_connects: bool,
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
