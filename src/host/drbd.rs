//! DRBD, the production replication backend: the resource file mooseherd generates from the rack
//! file, the `drbdadm`/`drbdsetup` commands the host driver runs, the parser of
//! `drbdsetup status --json`, and mooseherd's answer when DRBD 8.4 calls it as `fence-peer`
//! handler.
//!
//! DRBD is the second line of defence behind the lease. Mainline kernels ship DRBD
//! 8.4, which has no quorum: there, `fencing resource-and-stonith` makes a primary that loses its
//! peer freeze IO and ask its `fence-peer` handler, which is mooseherd, and mooseherd lets IO go
//! on only on the node that holds the lease ([`fence_peer_decision`]). With DRBD 9 the generated
//! file also turns on quorum (`quorum majority; on-no-quorum io-error;`).
//!
//! Nothing here touches the kernel: this machine has no DRBD module, so the file generation is
//! checked with `drbdadm dump` (drbd-utils 9.22 parses without a module) and the parsers with
//! recorded outputs. The driver that runs the commands is proven on a real kernel in a VM tier.

use std::fmt::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;

use crate::config::rack::{DrbdVersion, Rack, Role};
use crate::core::roles::ReplicaState;

/// The mooseherd binary DRBD calls as handler (the packages install it here).
pub const HANDLER_BIN: &str = "/usr/bin/mooseherd";

/// Exit code of the fence-peer handler meaning "peer was STONITHed": DRBD marks the peer's disk
/// Outdated and resumes IO (drbd 8.4 `conn_try_outdate_peer`, case 7).
pub const FENCE_PEER_STONITHED: i32 = 7;
/// Exit code of the fence-peer handler meaning "could not fence": any code outside 3..=7 is
/// "helper broken" to DRBD, which then keeps IO frozen (resource-and-stonith) and refuses to
/// promote a disconnected secondary. 1 is what crm-fence-peer uses for the same purpose.
pub const FENCE_PEER_REFUSED: i32 = 1;

/// Why DRBD configuration or output could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum DrbdError {
    /// The rack does not use DRBD.
    #[error("the rack has no [drbd] table (replication is not \"drbd\")")]
    NotConfigured,
    /// The rack cannot be expressed as a DRBD resource (the detail says why).
    #[error("DRBD resource `{resource}`: {detail}")]
    Config { resource: String, detail: String },
    /// `drbdsetup status --json` printed something that is not its JSON.
    #[error("cannot parse `drbdsetup status --json` output: {0}")]
    Json(serde_json::Error),
    /// The status lists no resource (not up) or several.
    #[error("`drbdsetup status --json` lists {count} resources, expected exactly one")]
    ResourceCount { count: usize },
    /// `drbdadm role` printed no known role.
    #[error("cannot parse `drbdadm role` output {0:?}")]
    Role(String),
    /// /proc/drbd has no line for the device's minor: the resource is not up (`drbdadm up`).
    #[error("/proc/drbd shows no device {minor} (is the resource up? `drbdadm up RESOURCE`)")]
    NotUp { minor: u32 },
    /// A line of /proc/drbd this parser cannot read.
    #[error("cannot parse /proc/drbd line {0:?}")]
    ProcLine(String),
}

// By hand rather than `#[from]`, which would also make the error a `source` that `{:#}` prints
// a second time after the message.
impl From<serde_json::Error> for DrbdError {
    fn from(e: serde_json::Error) -> Self {
        DrbdError::Json(e)
    }
}

/// A value that goes into the resource file verbatim: must not be able to end a statement or a
/// section, or start a comment or a string.
fn check_word(resource: &str, what: &str, v: &str) -> Result<(), DrbdError> {
    let bad = v.is_empty()
        || v.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, ';' | '{' | '}' | '"' | '#' | '\\')
        });
    if bad {
        return Err(DrbdError::Config {
            resource: resource.into(),
            detail: format!(
                "{what} {v:?} cannot go into a DRBD resource file (empty, or contains spaces, quotes, `;`, `{{`, `}}` or `#`)"
            ),
        });
    }
    Ok(())
}

fn path_word(resource: &str, what: &str, p: &Path) -> Result<String, DrbdError> {
    let s = p.to_str().ok_or_else(|| DrbdError::Config {
        resource: resource.into(),
        detail: format!("{what} {} is not UTF-8", p.display()),
    })?;
    check_word(resource, what, s)?;
    Ok(s.to_string())
}

/// Net options of both versions. DRBD's defaults notice a silent peer only after `ping-int` 10 s,
/// while the lease hands the master over within a few seconds: the new leader's promotion would
/// wait for DRBD (measured in the VM tier: 4-12 s). 2 s pings answered within 1 s, and 1.5 s for a
/// write's ack (`timeout` must stay below `ping-int`), keep DRBD's view within the lease's.
/// After a partition both sides may have written (the old primary's handler allowed it while it
/// still held the lease): on reconnection the one that is Secondary, i.e. not the lease holder,
/// gives up its changes (`discard-secondary`); with no primary, a side without changes syncs
/// from the other; two primaries are left disconnected for a person.
const NET_TIMING: &str = "    ping-int 2;\n    ping-timeout 10;\n    timeout 15;\n    connect-int 2;\n    after-sb-0pri discard-zero-changes;\n    after-sb-1pri discard-secondary;\n    after-sb-2pri disconnect;\n";

/// One DRBD node of the resource: a master candidate with its backing disk.
struct Peer {
    name: String,
    addr: String,
    disk: String,
}

/// The resource file (`/etc/drbd.d/<resource>.res`) for the rack's `[drbd]` table, the same on
/// every master candidate. Only master candidates take part (they hold `drbd_disk`); the node
/// order of the rack file gives DRBD 9 node ids, so every node must carry the same rack file.
///
/// - 8.4: protocol C, `disk { fencing resource-and-stonith; }`, mooseherd as `fence-peer` and
///   `after-resync-target` handlers, two `on` sections (8.4 replicates between two nodes).
/// - 9: the same handlers (`unfence-peer` instead of `after-resync-target`), `net { protocol C;
///   fencing resource-and-stonith; }`, `options { quorum majority; on-no-quorum io-error; ... }`,
///   `auto-promote no` (only the lease promotes), `on` sections with `node-id`, and a
///   `connection-mesh`. Quorum needs at least three nodes: with two, a lost peer would stop IO on
///   the survivor, so fewer than three candidates is an error (use 8.4 for two).
pub fn resource_file(rack: &Rack) -> Result<String, DrbdError> {
    let drbd = rack.drbd.as_ref().ok_or(DrbdError::NotConfigured)?;
    let res = drbd.resource.as_str();
    check_word(res, "resource name", res)?;
    let device = path_word(res, "device", &drbd.device)?;
    let port = drbd.port;
    let mut peers = Vec::new();
    for n in rack.nodes.iter().filter(|n| n.has(Role::Master)) {
        let disk = n.drbd_disk.as_deref().ok_or_else(|| DrbdError::Config {
            resource: res.into(),
            detail: format!("master candidate `{}` has no drbd_disk", n.name),
        })?;
        check_word(res, "node name", &n.name)?;
        peers.push(Peer {
            name: n.name.clone(),
            addr: format!("{}:{port}", n.addr),
            disk: path_word(res, &format!("drbd_disk of `{}`", n.name), disk)?,
        });
    }
    let err = |detail: String| DrbdError::Config {
        resource: res.into(),
        detail,
    };
    match drbd.version {
        DrbdVersion::V84 if peers.len() != 2 => {
            return Err(err(format!(
                "DRBD 8.4 replicates between exactly two nodes; the rack has {} master candidates",
                peers.len()
            )));
        }
        DrbdVersion::V9 if peers.len() < 3 => {
            return Err(err(format!(
                "DRBD 9 quorum needs at least three nodes (with two, losing one stops IO on the other); the rack has {} master candidates: use version \"8.4\"",
                peers.len()
            )));
        }
        DrbdVersion::V9 if peers.len() > 32 => {
            return Err(err(format!(
                "DRBD 9 has node ids 0..31; the rack has {} master candidates",
                peers.len()
            )));
        }
        _ => {}
    }

    let mut f = String::new();
    // `write!` into a String cannot fail; the results are ignored on purpose.
    let _ = writeln!(
        f,
        "# Generated by mooseherd from {}; do not edit: change the rack file instead.",
        rack.source.display()
    );
    let _ = writeln!(f, "resource {res} {{");
    match drbd.version {
        DrbdVersion::V84 => {
            let _ = writeln!(f, "  net {{\n    protocol C;\n{NET_TIMING}  }}");
            // 8.4: fencing is a disk option. A disconnected primary freezes IO and asks mooseherd.
            f.push_str("  disk {\n    fencing resource-and-stonith;\n  }\n");
            let _ = writeln!(
                f,
                "  handlers {{\n    fence-peer \"{HANDLER_BIN} drbd fence-peer\";\n    after-resync-target \"{HANDLER_BIN} drbd unfence-peer\";\n  }}"
            );
            for p in &peers {
                let _ = writeln!(
                    f,
                    "  on {} {{\n    device {device};\n    disk {};\n    address {};\n    meta-disk internal;\n  }}",
                    p.name, p.disk, p.addr
                );
            }
        }
        DrbdVersion::V9 => {
            f.push_str(
                "  options {\n    auto-promote no;\n    quorum majority;\n    on-no-quorum io-error;\n    on-no-data-accessible io-error;\n  }\n",
            );
            // 9: fencing is a net option.
            let _ = writeln!(
                f,
                "  net {{\n    protocol C;\n    fencing resource-and-stonith;\n{NET_TIMING}  }}"
            );
            let _ = writeln!(
                f,
                "  handlers {{\n    fence-peer \"{HANDLER_BIN} drbd fence-peer\";\n    unfence-peer \"{HANDLER_BIN} drbd unfence-peer\";\n  }}"
            );
            for (id, p) in peers.iter().enumerate() {
                let _ = writeln!(
                    f,
                    "  on {} {{\n    node-id {id};\n    address {};\n    volume 0 {{\n      device {device};\n      disk {};\n      meta-disk internal;\n    }}\n  }}",
                    p.name, p.addr, p.disk
                );
            }
            let hosts: Vec<&str> = peers.iter().map(|p| p.name.as_str()).collect();
            let _ = writeln!(
                f,
                "  connection-mesh {{\n    hosts {};\n  }}",
                hosts.join(" ")
            );
        }
    }
    f.push_str("}\n");
    Ok(f)
}

/// One DRBD command line, ready to run or to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrbdCommand {
    /// `drbdadm` or `drbdsetup`.
    pub program: &'static str,
    pub args: Vec<String>,
}

impl DrbdCommand {
    fn adm(verb: &str, resource: &str) -> Self {
        DrbdCommand {
            program: "drbdadm",
            args: vec![verb.into(), resource.into()],
        }
    }

    /// `drbdadm up RES`: attach the disk and connect to the peers (as Secondary).
    pub fn up(resource: &str) -> Self {
        Self::adm("up", resource)
    }

    /// `drbdadm primary RES`: promote; DRBD refuses if the disk is not UpToDate or, while
    /// disconnected, if the fence-peer handler does not allow it.
    pub fn primary(resource: &str) -> Self {
        Self::adm("primary", resource)
    }

    /// `drbdadm secondary RES`: demote (the metadata must be unmounted first).
    pub fn secondary(resource: &str) -> Self {
        Self::adm("secondary", resource)
    }

    /// `drbdadm role RES`: `Primary`, `Secondary` (8.4 prints `local/peer`, e.g.
    /// `Primary/Unknown`); see [`parse_role`].
    pub fn role(resource: &str) -> Self {
        Self::adm("role", resource)
    }

    /// `drbdadm resume-io RES`: lets frozen IO go on (fails it if the disk is gone). Needed by a
    /// node that lost the lease while its IO is frozen by fencing, before it can demote.
    pub fn resume_io(resource: &str) -> Self {
        Self::adm("resume-io", resource)
    }

    /// `drbdadm adjust RES`: brings the resource to its configured state (attaches a detached
    /// disk, connects); used to rejoin after a forced detach.
    pub fn adjust(resource: &str) -> Self {
        Self::adm("adjust", resource)
    }

    /// `drbdadm detach --force RES`: drops the backing disk at once, so IO frozen by fencing can
    /// be failed (`resume-io` on a diskless device) instead of reaching this node's disk.
    pub fn detach_force(resource: &str) -> Self {
        DrbdCommand {
            program: "drbdadm",
            args: vec!["detach".into(), "--force".into(), resource.into()],
        }
    }

    /// `drbdsetup status RES --json` (DRBD 9 utilities); see [`parse_status`].
    pub fn status_json(resource: &str) -> Self {
        DrbdCommand {
            program: "drbdsetup",
            args: vec!["status".into(), resource.into(), "--json".into()],
        }
    }

    /// Reads the resource from `config` instead of /etc/drbd.conf (`drbdadm -c FILE`); no effect
    /// on `drbdsetup`, which does not read configuration files.
    pub fn with_config(mut self, config: &Path) -> Self {
        if self.program == "drbdadm" {
            self.args
                .splice(0..0, ["-c".to_string(), config.display().to_string()]);
        }
        self
    }

    /// The command to spawn.
    pub fn command(&self) -> Command {
        let mut c = Command::new(self.program);
        c.args(&self.args);
        c
    }
}

impl fmt::Display for DrbdCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.program)?;
        for a in &self.args {
            write!(f, " {a}")?;
        }
        Ok(())
    }
}

/// A DRBD role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrbdRole {
    Primary,
    Secondary,
    /// Not known (a disconnected peer).
    Unknown,
}

impl DrbdRole {
    fn parse(s: &str) -> Self {
        match s {
            "Primary" => DrbdRole::Primary,
            "Secondary" => DrbdRole::Secondary,
            _ => DrbdRole::Unknown,
        }
    }
}

/// Parses `drbdadm role RES` output: `Primary`, or 8.4's `Primary/Secondary` (local role first).
pub fn parse_role(out: &str) -> Result<DrbdRole, DrbdError> {
    let local = out.trim().split('/').next().unwrap_or_default();
    match DrbdRole::parse(local) {
        DrbdRole::Unknown => Err(DrbdError::Role(out.into())),
        r => Ok(r),
    }
}

/// A DRBD disk state (ours or a peer's), as DRBD names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskState {
    Diskless,
    Attaching,
    Detaching,
    Failed,
    Negotiating,
    /// Being synced to (or never synced): not a usable copy.
    Inconsistent,
    /// Consistent but known to miss writes the peer has.
    Outdated,
    /// A peer's disk we cannot see (disconnected).
    DUnknown,
    Consistent,
    UpToDate,
    /// A name this parser does not know (newer DRBD).
    Other(String),
}

impl DiskState {
    fn parse(s: &str) -> Self {
        match s {
            "Diskless" => DiskState::Diskless,
            "Attaching" => DiskState::Attaching,
            "Detaching" => DiskState::Detaching,
            "Failed" => DiskState::Failed,
            "Negotiating" => DiskState::Negotiating,
            "Inconsistent" => DiskState::Inconsistent,
            "Outdated" => DiskState::Outdated,
            "DUnknown" => DiskState::DUnknown,
            "Consistent" => DiskState::Consistent,
            "UpToDate" => DiskState::UpToDate,
            other => DiskState::Other(other.into()),
        }
    }

    /// Worse states rank lower (for a resource with several volumes, the worst counts).
    fn rank(&self) -> u8 {
        match self {
            DiskState::Other(_) | DiskState::DUnknown => 0,
            DiskState::Diskless | DiskState::Failed | DiskState::Detaching => 1,
            DiskState::Attaching | DiskState::Negotiating => 2,
            DiskState::Inconsistent => 3,
            DiskState::Outdated => 4,
            DiskState::Consistent => 5,
            DiskState::UpToDate => 6,
        }
    }

    fn worst(states: impl Iterator<Item = DiskState>) -> Option<DiskState> {
        states.min_by_key(DiskState::rank)
    }
}

/// One peer of the resource as this node sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerStatus {
    /// The peer's host name (from the resource file).
    pub name: String,
    pub node_id: Option<u32>,
    /// `Connected`, `Connecting`, `StandAlone`, `Disconnecting`, ...
    pub connection: String,
    pub role: DrbdRole,
    /// The peer's disk, `DUnknown` when not connected.
    pub disk: DiskState,
    /// `Established`, `SyncSource`, `SyncTarget`, ... (`None` when not connected).
    pub replication: Option<String>,
    /// Resync progress in percent while syncing.
    pub sync_done: Option<f64>,
}

impl PeerStatus {
    pub fn is_connected(&self) -> bool {
        self.connection == "Connected"
    }
}

/// This node's view of one DRBD resource, from `drbdsetup status RES --json`.
#[derive(Debug, Clone, PartialEq)]
pub struct DrbdStatus {
    pub resource: String,
    pub role: DrbdRole,
    /// IO is suspended (by fencing, quorum loss, or a person).
    pub suspended: bool,
    /// Our disk (the worst volume if there are several).
    pub disk: DiskState,
    /// DRBD 9 quorum: `Some(false)` means this partition lost it (IO fails or freezes).
    pub quorum: Option<bool>,
    pub peers: Vec<PeerStatus>,
}

impl DrbdStatus {
    /// How current this node's copy is, for eligibility: only UpToDate may stand.
    pub fn replica_state(&self) -> ReplicaState {
        match self.disk {
            DiskState::UpToDate => ReplicaState::UpToDate,
            DiskState::Inconsistent
            | DiskState::Consistent
            | DiskState::Attaching
            | DiskState::Negotiating => ReplicaState::Syncing,
            DiskState::Outdated => ReplicaState::Outdated,
            DiskState::Diskless | DiskState::Failed | DiskState::Detaching => {
                ReplicaState::Diskless
            }
            DiskState::DUnknown | DiskState::Other(_) => ReplicaState::Unknown,
        }
    }

    /// Whether this node is DRBD primary.
    pub fn is_primary(&self) -> bool {
        self.role == DrbdRole::Primary
    }
}

#[derive(Deserialize)]
struct JsonResource {
    name: String,
    role: String,
    #[serde(default)]
    suspended: bool,
    #[serde(default)]
    devices: Vec<JsonDevice>,
    #[serde(default)]
    connections: Vec<JsonConnection>,
}

#[derive(Deserialize)]
struct JsonDevice {
    #[serde(rename = "disk-state")]
    disk_state: String,
    quorum: Option<bool>,
}

#[derive(Deserialize)]
struct JsonConnection {
    #[serde(default)]
    name: String,
    #[serde(rename = "peer-node-id")]
    peer_node_id: Option<u32>,
    #[serde(rename = "connection-state")]
    connection_state: String,
    #[serde(rename = "peer-role", default)]
    peer_role: String,
    #[serde(default)]
    peer_devices: Vec<JsonPeerDevice>,
}

#[derive(Deserialize)]
struct JsonPeerDevice {
    #[serde(rename = "replication-state")]
    replication_state: Option<String>,
    #[serde(rename = "peer-disk-state")]
    peer_disk_state: Option<String>,
    /// Resync progress (present while syncing).
    done: Option<f64>,
}

/// Parses `drbdsetup status RES --json` (a JSON array holding that one resource). Fields this
/// parser does not need are ignored, so newer utilities that add fields still parse.
pub fn parse_status(json: &str) -> Result<DrbdStatus, DrbdError> {
    let mut all: Vec<JsonResource> = serde_json::from_str(json)?;
    if all.len() != 1 {
        return Err(DrbdError::ResourceCount { count: all.len() });
    }
    let r = all.remove(0);
    let disk = DiskState::worst(r.devices.iter().map(|d| DiskState::parse(&d.disk_state)))
        .unwrap_or(DiskState::Diskless);
    let quorum = r
        .devices
        .iter()
        .filter_map(|d| d.quorum)
        .reduce(|a, b| a && b);
    let peers =
        r.connections
            .into_iter()
            .map(|c| {
                let pd =
                    DiskState::worst(c.peer_devices.iter().map(|d| {
                        DiskState::parse(d.peer_disk_state.as_deref().unwrap_or("DUnknown"))
                    }))
                    .unwrap_or(DiskState::DUnknown);
                let first = c.peer_devices.first();
                PeerStatus {
                    name: c.name,
                    node_id: c.peer_node_id,
                    connection: c.connection_state,
                    role: DrbdRole::parse(&c.peer_role),
                    disk: pd,
                    replication: first.and_then(|d| d.replication_state.clone()),
                    sync_done: first.and_then(|d| d.done),
                }
            })
            .collect();
    Ok(DrbdStatus {
        resource: r.name,
        role: DrbdRole::parse(&r.role),
        suspended: r.suspended,
        disk,
        quorum,
        peers,
    })
}

/// The connection states of DRBD 8.4 in which the peer is connected (replicating, syncing or
/// about to).
const CONNECTED_84: &[&str] = &[
    "Connected",
    "StartingSyncS",
    "StartingSyncT",
    "WFBitMapS",
    "WFBitMapT",
    "WFSyncUUID",
    "SyncSource",
    "SyncTarget",
    "PausedSyncS",
    "PausedSyncT",
    "VerifyS",
    "VerifyT",
    "Ahead",
    "Behind",
];

/// Parses DRBD 8.4's `/proc/drbd` for device `minor` into the same view as [`parse_status`]
/// (8.4's `drbdsetup` has no `status --json`). The device line reads
/// ` 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----`; the first flag is
/// `s` while IO is suspended (frozen by fencing). The peer has no name in /proc/drbd.
pub fn parse_proc_drbd(text: &str, resource: &str, minor: u32) -> Result<DrbdStatus, DrbdError> {
    let prefix = format!("{minor}:");
    let mut lines = text.lines();
    let line = lines
        .by_ref()
        .find(|l| l.trim_start().starts_with(&prefix))
        .ok_or(DrbdError::NotUp { minor })?;
    let mut cs = None;
    let mut ro = None;
    let mut ds = None;
    let mut flags = "";
    let tokens: Vec<&str> = line.trim_start()[prefix.len()..]
        .split_whitespace()
        .collect();
    for (i, t) in tokens.iter().enumerate() {
        if let Some(v) = t.strip_prefix("cs:") {
            cs = Some(v);
        } else if let Some(v) = t.strip_prefix("ro:") {
            ro = v.split_once('/');
        } else if let Some(v) = t.strip_prefix("ds:") {
            ds = v.split_once('/');
            // The protocol letter, then the flags.
            flags = tokens.get(i + 2).copied().unwrap_or("");
        }
    }
    let cs = cs.ok_or_else(|| DrbdError::ProcLine(line.into()))?;
    if cs == "Unconfigured" {
        return Err(DrbdError::NotUp { minor });
    }
    let (role, peer_role) = ro.ok_or_else(|| DrbdError::ProcLine(line.into()))?;
    let (disk, peer_disk) = ds.ok_or_else(|| DrbdError::ProcLine(line.into()))?;
    let connected = CONNECTED_84.contains(&cs);
    // The progress line follows the device line while syncing: `... sync'ed: 38.4% (...)`.
    let sync_done = lines
        .next()
        .filter(|_| cs.contains("Sync"))
        .into_iter()
        .chain(lines.take(2))
        .find_map(|l| {
            let rest = l.split("sync'ed:").nth(1)?;
            rest.trim_start()
                .split('%')
                .next()?
                .trim()
                .parse::<f64>()
                .ok()
        });
    Ok(DrbdStatus {
        resource: resource.into(),
        role: DrbdRole::parse(role),
        suspended: flags.starts_with('s'),
        disk: DiskState::parse(disk),
        quorum: None,
        peers: vec![PeerStatus {
            name: String::new(),
            node_id: None,
            connection: if connected {
                "Connected".into()
            } else {
                cs.into()
            },
            role: DrbdRole::parse(peer_role),
            disk: DiskState::parse(peer_disk),
            replication: connected.then(|| {
                if cs == "Connected" {
                    "Established".into()
                } else {
                    cs.into()
                }
            }),
            sync_done,
        }],
    })
}

/// What the local agent says about the lease when DRBD calls mooseherd as `fence-peer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseView {
    /// This node holds the lease for `epoch` (its own, unexpired belief).
    Held { epoch: u64 },
    /// Another node holds the lease for `epoch`, or nobody does (`holder` is `None`).
    NotHeld {
        epoch: u64,
        holder: Option<crate::core::NodeId>,
    },
    /// The agent could not be asked (not running, control socket unreachable).
    Unknown,
}

/// The fence-peer handler's answer: the exit code DRBD acts on, and a line for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FencePeerAnswer {
    pub exit_code: i32,
    pub reason: String,
}

/// mooseherd as DRBD's `fence-peer` handler (DRBD 8.4 has no quorum; see the module doc).
///
/// DRBD's exit codes (drbd 8.4 `conn_try_outdate_peer`): 3 peer is Inconsistent, 4 peer was
/// Outdated, 5 peer is down (accepted only if our disk is UpToDate), 6 peer is Primary (DRBD
/// outdates *our* disk), 7 peer was STONITHed; anything else means "handler broken" and DRBD
/// keeps IO frozen (resource-and-stonith) and does not promote a disconnected secondary.
///
/// - **Lease held → 7.** The lease is our STONITH: a majority granted it to us only after every
///   earlier promise ran out, and a holder that cannot renew fences itself (VIP, mfsmaster,
///   DRBD secondary) before its lease ends; a frozen old primary's own handler answers "refused",
///   so its IO stays frozen and it acknowledges no write. So the peer cannot be writing, and DRBD
///   may mark it Outdated and go on. 4 would claim we ran `drbdadm outdate` on the peer, which we
///   did not; 5 would be ignored unless our disk is UpToDate; 7 is the code the
///   resource-and-stonith policy is built around.
/// - **Lease not held, or unknown → 1 (refused).** IO stays frozen and no promotion happens:
///   without the lease this node may be the one that must stop. Not 6: that would outdate our
///   own disk, and if we were in fact the current copy (a holder whose renewal is late) the rack
///   could end with no UpToDate replica. A refusal is temporary: the lease loop either renews
///   (DRBD retries on the next disconnect/promotion) or fences this node.
pub fn fence_peer_decision(view: LeaseView) -> FencePeerAnswer {
    match view {
        LeaseView::Held { epoch } => FencePeerAnswer {
            exit_code: FENCE_PEER_STONITHED,
            reason: format!(
                "this node holds the lease (epoch {epoch}): the peer is fenced by the lease, continue as primary"
            ),
        },
        LeaseView::NotHeld { epoch, holder } => FencePeerAnswer {
            exit_code: FENCE_PEER_REFUSED,
            reason: match holder {
                Some(h) => format!(
                    "node {} holds the lease (epoch {epoch}), not this node: keep IO frozen",
                    h.0
                ),
                None => format!("nobody holds the lease (last epoch {epoch}): keep IO frozen"),
            },
        },
        LeaseView::Unknown => FencePeerAnswer {
            exit_code: FENCE_PEER_REFUSED,
            reason: "the mooseherd agent cannot be asked about the lease: keep IO frozen".into(),
        },
    }
}

/// What the local agent's status says about the lease: held when this node leads with time left
/// on its lease. A node that is fencing, or whose lease ran out, does not hold it.
pub fn lease_view(status: &crate::core::agent::AgentStatus) -> LeaseView {
    use crate::core::agent::NodeRole;
    let leads = status.role == NodeRole::Leader
        && status.leader == Some(status.node)
        && status.lease_left_ms.is_some_and(|ms| ms > 0);
    if leads {
        LeaseView::Held {
            epoch: status.epoch,
        }
    } else {
        LeaseView::NotHeld {
            epoch: status.epoch,
            holder: status.leader.filter(|l| *l != status.node),
        }
    }
}

/// The `after-resync-target` (8.4) / `unfence-peer` (9) handler's exit code: mooseherd sets no
/// fencing constraints outside DRBD, so there is nothing to remove.
pub const UNFENCE_PEER_EXIT: i32 = 0;

/// Where the resource file goes: `/etc/drbd.d/<resource>.res`.
pub fn resource_path(resource: &str) -> PathBuf {
    PathBuf::from(format!("/etc/drbd.d/{resource}.res"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::rack::HostChecks;
    use crate::core::NodeId;

    fn rack84() -> Rack {
        let src = include_str!("../../examples/rack.toml");
        Rack::parse(src, Path::new("examples/rack.toml"), HostChecks::NONE)
            .expect("example rack")
            .0
    }

    fn rack9() -> Rack {
        let mut r = rack84();
        if let Some(d) = r.drbd.as_mut() {
            d.version = DrbdVersion::V9;
        }
        let pi3 = &mut r.nodes[2];
        pi3.roles.insert(0, Role::Master);
        pi3.drbd_disk = Some("/dev/sdb1".into());
        r
    }

    #[test]
    fn drbd84_resource_file() {
        let f = resource_file(&rack84()).expect("8.4 file");
        let want = "\
# Generated by mooseherd from examples/rack.toml; do not edit: change the rack file instead.
resource mfsmeta {
  net {
    protocol C;
    ping-int 2;
    ping-timeout 10;
    timeout 15;
    connect-int 2;
    after-sb-0pri discard-zero-changes;
    after-sb-1pri discard-secondary;
    after-sb-2pri disconnect;
  }
  disk {
    fencing resource-and-stonith;
  }
  handlers {
    fence-peer \"/usr/bin/mooseherd drbd fence-peer\";
    after-resync-target \"/usr/bin/mooseherd drbd unfence-peer\";
  }
  on pi1 {
    device /dev/drbd0;
    disk /dev/sda2;
    address 192.168.1.11:7789;
    meta-disk internal;
  }
  on pi2 {
    device /dev/drbd0;
    disk /dev/sda2;
    address 192.168.1.12:7789;
    meta-disk internal;
  }
}
";
        assert_eq!(f, want);
    }

    #[test]
    fn drbd9_resource_file() {
        let f = resource_file(&rack9()).expect("9 file");
        for needle in [
            "  options {\n    auto-promote no;\n    quorum majority;\n    on-no-quorum io-error;\n    on-no-data-accessible io-error;\n  }\n",
            "  net {\n    protocol C;\n    fencing resource-and-stonith;\n    ping-int 2;\n",
            "    unfence-peer \"/usr/bin/mooseherd drbd unfence-peer\";\n",
            "  on pi1 {\n    node-id 0;\n    address 192.168.1.11:7789;\n    volume 0 {\n      device /dev/drbd0;\n      disk /dev/sda2;\n      meta-disk internal;\n    }\n  }\n",
            "  on pi3 {\n    node-id 2;\n    address 192.168.1.13:7789;\n",
            "  connection-mesh {\n    hosts pi1 pi2 pi3;\n  }\n}\n",
        ] {
            assert!(f.contains(needle), "missing {needle:?} in\n{f}");
        }
    }

    #[test]
    fn refuses_what_drbd_cannot_do() {
        let mut r = rack9();
        r.nodes[2].roles.retain(|x| *x != Role::Master);
        let e = resource_file(&r).unwrap_err();
        assert!(e.to_string().contains("at least three nodes"), "{e}");
        let mut r = rack84();
        r.nodes[0].drbd_disk = Some("/dev/sda2; evil".into());
        let e = resource_file(&r).unwrap_err();
        assert!(e.to_string().contains("drbd_disk of `pi1`"), "{e}");
        let mut r = rack84();
        r.drbd = None;
        assert!(matches!(resource_file(&r), Err(DrbdError::NotConfigured)));
    }

    /// Runs `prog -c file dump mfsmeta` as host `pi1` (in a private UTS namespace, so this
    /// machine's host name is untouched: drbdadm only dumps resources that name this host).
    fn drbdadm_dump(prog: &str, text: &str) -> Option<std::process::Output> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP: drbdadm dump needs root (a UTS namespace with host name pi1)");
            return None;
        }
        if Command::new(prog).arg("--version").output().is_err() {
            eprintln!(
                "SKIP: {prog} not installed (apt-get install --no-install-recommends drbd-utils)"
            );
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("mfsmeta.res");
        std::fs::write(&file, text).expect("write");
        let out = Command::new("unshare")
            .args(["--uts", "sh", "-c", "hostname pi1 && exec \"$0\" \"$@\""])
            .arg(prog)
            .arg("-c")
            .arg(&file)
            .args(["dump", "mfsmeta"])
            .output()
            .expect("run unshare + drbdadm");
        Some(out)
    }

    /// drbd-utils 9.22 parses both files without a kernel module: `drbdadm` (9) and
    /// `/lib/drbd/drbdadm-84` (what `drbdadm` runs on an 8.4 kernel).
    #[test]
    fn drbdadm_accepts_the_generated_files() {
        let f84 = resource_file(&rack84()).expect("8.4");
        let f9 = resource_file(&rack9()).expect("9");
        for (prog, text) in [("/lib/drbd/drbdadm-84", &f84), ("drbdadm", &f9)] {
            let Some(out) = drbdadm_dump(prog, text) else {
                return;
            };
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "{prog} rejected:\n{text}\nstderr: {stderr}"
            );
            for needle in [
                "fencing          resource-and-stonith;",
                "fence-peer       \"/usr/bin/mooseherd drbd fence-peer\";",
                "protocol           C;",
                "on pi2 {",
            ] {
                assert!(
                    stdout.contains(needle),
                    "{prog} dump lacks {needle:?}:\n{stdout}"
                );
            }
        }
        // The check has teeth: the 8.4 parser rejects DRBD 9 syntax.
        if let Some(out) = drbdadm_dump("/lib/drbd/drbdadm-84", &f9) {
            assert!(!out.status.success(), "drbdadm-84 accepted a DRBD 9 file");
        }
    }

    #[test]
    fn commands() {
        assert_eq!(DrbdCommand::up("mfsmeta").to_string(), "drbdadm up mfsmeta");
        assert_eq!(
            DrbdCommand::primary("mfsmeta").to_string(),
            "drbdadm primary mfsmeta"
        );
        assert_eq!(
            DrbdCommand::secondary("mfsmeta")
                .with_config(Path::new("/run/x.res"))
                .to_string(),
            "drbdadm -c /run/x.res secondary mfsmeta"
        );
        assert_eq!(
            DrbdCommand::status_json("mfsmeta")
                .with_config(Path::new("/run/x.res"))
                .to_string(),
            "drbdsetup status mfsmeta --json"
        );
        assert_eq!(DrbdCommand::role("r").args, vec!["role", "r"]);
        let c = DrbdCommand::up("r").command();
        assert_eq!(c.get_program(), "drbdadm");
        assert_eq!(parse_role("Primary\n").expect("9"), DrbdRole::Primary);
        assert_eq!(
            parse_role("Secondary/Unknown\n").expect("8.4"),
            DrbdRole::Secondary
        );
        assert!(parse_role("huh").is_err());
    }

    /// Recorded shapes of `drbdsetup status mfsmeta --json` (drbd-utils 9.x, DRBD 9).
    const PRIMARY_CONNECTED: &str = r#"[
{
  "name": "mfsmeta",
  "node-id": 0,
  "role": "Primary",
  "suspended": false,
  "suspended-user": false,
  "suspended-no-data": false,
  "suspended-fencing": false,
  "suspended-quorum": false,
  "force-io-failures": false,
  "write-ordering": "flush",
  "devices": [
    {
      "volume": 0,
      "minor": 0,
      "disk-state": "UpToDate",
      "client": false,
      "open": true,
      "quorum": true,
      "size": 1048508,
      "read": 2213,
      "written": 18740,
      "al-writes": 12,
      "bm-writes": 0,
      "upper-pending": 0,
      "lower-pending": 0
    } ],
  "connections": [
    {
      "peer-node-id": 1,
      "name": "pi2",
      "connection-state": "Connected",
      "congested": false,
      "peer-role": "Secondary",
      "tls": false,
      "ap-in-flight": 0,
      "rs-in-flight": 0,
      "paths": [
        {
          "this_host": { "address": "192.168.1.11", "port": 7789, "family": "ipv4" },
          "remote_host": { "address": "192.168.1.12", "port": 7789, "family": "ipv4" },
          "established": true
        } ],
      "peer_devices": [
        {
          "volume": 0,
          "replication-state": "Established",
          "peer-disk-state": "UpToDate",
          "peer-client": false,
          "resync-suspended": "no",
          "received": 0,
          "sent": 18740,
          "out-of-sync": 0,
          "pending": 0,
          "unacked": 0,
          "has-sync-details": false,
          "has-online-verify-details": false,
          "percent-in-sync": 100.00
        } ]
    } ]
}
]
"#;

    const SECONDARY_SYNCING: &str = r#"[
{
  "name": "mfsmeta",
  "node-id": 1,
  "role": "Secondary",
  "suspended": false,
  "write-ordering": "flush",
  "devices": [
    {
      "volume": 0,
      "minor": 0,
      "disk-state": "Inconsistent",
      "client": false,
      "open": false,
      "quorum": true,
      "size": 1048508,
      "read": 0,
      "written": 402112,
      "al-writes": 0,
      "bm-writes": 3,
      "upper-pending": 0,
      "lower-pending": 2
    } ],
  "connections": [
    {
      "peer-node-id": 0,
      "name": "pi1",
      "connection-state": "Connected",
      "congested": false,
      "peer-role": "Primary",
      "ap-in-flight": 0,
      "rs-in-flight": 2048,
      "peer_devices": [
        {
          "volume": 0,
          "replication-state": "SyncTarget",
          "peer-disk-state": "UpToDate",
          "peer-client": false,
          "resync-suspended": "no",
          "received": 402112,
          "sent": 0,
          "out-of-sync": 646396,
          "pending": 0,
          "unacked": 1,
          "has-sync-details": true,
          "has-online-verify-details": false,
          "percent-in-sync": 38.35,
          "rs-total": 1048508,
          "rs-dt-start-ms": 8201,
          "rs-paused-ms": 0,
          "rs-dt0-ms": 8201,
          "rs-db0-sectors": 804224,
          "rs-dt1-ms": 8201,
          "rs-db1-sectors": 804224,
          "rs-failed": 0,
          "rs-same-csum": 0,
          "want": 0,
          "db-dt MiB-s": 49.04,
          "db0-dt0 MiB-s": 49.04,
          "db1-dt1 MiB-s": 49.04,
          "done": 38.35
        } ]
    } ]
}
]
"#;

    const PEER_DISCONNECTED: &str = r#"[
{
  "name": "mfsmeta",
  "node-id": 0,
  "role": "Primary",
  "suspended": true,
  "suspended-user": false,
  "suspended-no-data": false,
  "suspended-fencing": true,
  "suspended-quorum": false,
  "write-ordering": "flush",
  "devices": [
    {
      "volume": 0,
      "minor": 0,
      "disk-state": "UpToDate",
      "client": false,
      "quorum": true,
      "size": 1048508
    } ],
  "connections": [
    {
      "peer-node-id": 1,
      "name": "pi2",
      "connection-state": "Connecting",
      "congested": false,
      "peer-role": "Unknown",
      "peer_devices": [
        {
          "volume": 0,
          "replication-state": "Off",
          "peer-disk-state": "DUnknown",
          "peer-client": false,
          "resync-suspended": "no"
        } ]
    } ]
}
]
"#;

    const DISKLESS: &str = r#"[
{
  "name": "mfsmeta",
  "node-id": 1,
  "role": "Secondary",
  "suspended": false,
  "devices": [
    {
      "volume": 0,
      "minor": 0,
      "disk-state": "Diskless",
      "client": false,
      "quorum": true,
      "size": 0
    } ],
  "connections": [
    {
      "peer-node-id": 0,
      "name": "pi1",
      "connection-state": "Connected",
      "peer-role": "Primary",
      "peer_devices": [
        {
          "volume": 0,
          "replication-state": "Established",
          "peer-disk-state": "UpToDate"
        } ]
    },
    {
      "name": "pi3",
      "connection-state": "StandAlone"
    } ]
}
]
"#;

    #[test]
    fn status_primary_connected() {
        let s = parse_status(PRIMARY_CONNECTED).expect("parse");
        assert_eq!(s.resource, "mfsmeta");
        assert!(s.is_primary() && !s.suspended);
        assert_eq!(s.disk, DiskState::UpToDate);
        assert_eq!(s.quorum, Some(true));
        assert_eq!(s.replica_state(), ReplicaState::UpToDate);
        assert_eq!(
            s.peers,
            vec![PeerStatus {
                name: "pi2".into(),
                node_id: Some(1),
                connection: "Connected".into(),
                role: DrbdRole::Secondary,
                disk: DiskState::UpToDate,
                replication: Some("Established".into()),
                sync_done: None,
            }]
        );
        assert!(s.peers[0].is_connected());
    }

    #[test]
    fn status_secondary_syncing() {
        let s = parse_status(SECONDARY_SYNCING).expect("parse");
        assert_eq!(s.role, DrbdRole::Secondary);
        assert_eq!(s.disk, DiskState::Inconsistent);
        assert_eq!(s.replica_state(), ReplicaState::Syncing);
        let p = &s.peers[0];
        assert_eq!(p.role, DrbdRole::Primary);
        assert_eq!(p.replication.as_deref(), Some("SyncTarget"));
        assert_eq!(p.sync_done, Some(38.35));
    }

    #[test]
    fn status_disconnected_peer_with_io_frozen_by_fencing() {
        let s = parse_status(PEER_DISCONNECTED).expect("parse");
        assert!(s.is_primary() && s.suspended);
        assert_eq!(s.replica_state(), ReplicaState::UpToDate);
        let p = &s.peers[0];
        assert!(!p.is_connected());
        assert_eq!((p.role, &p.disk), (DrbdRole::Unknown, &DiskState::DUnknown));
    }

    #[test]
    fn status_diskless_and_a_standalone_peer() {
        let s = parse_status(DISKLESS).expect("parse");
        assert_eq!(s.disk, DiskState::Diskless);
        assert_eq!(s.replica_state(), ReplicaState::Diskless);
        assert_eq!(s.peers.len(), 2);
        let p = &s.peers[1];
        assert_eq!(p.name, "pi3");
        assert_eq!(p.node_id, None);
        assert_eq!(p.disk, DiskState::DUnknown);
        assert_eq!(p.replication, None);
    }

    #[test]
    fn status_errors() {
        assert!(matches!(
            parse_status("[]"),
            Err(DrbdError::ResourceCount { count: 0 })
        ));
        assert!(matches!(parse_status("not json"), Err(DrbdError::Json(_))));
        let two = format!(
            "[{},{}]",
            PRIMARY_CONNECTED
                .trim()
                .trim_start_matches('[')
                .trim_end_matches(']'),
            DISKLESS
                .trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
        );
        assert!(matches!(
            parse_status(&two),
            Err(DrbdError::ResourceCount { count: 2 })
        ));
        let odd = r#"[{"name":"r","role":"Secondary","devices":[{"disk-state":"Fancy9000"}]}]"#;
        let s = parse_status(odd).expect("unknown states still parse");
        assert_eq!(s.disk, DiskState::Other("Fancy9000".into()));
        assert_eq!(s.replica_state(), ReplicaState::Unknown);
    }

    const PROC_84: &str = "version: 8.4.11 (api:1/proto:86-101)
srcversion: 211FB288A383ED945B83420
 0: cs:Connected ro:Primary/Secondary ds:UpToDate/UpToDate C r-----
    ns:1052 nr:0 dw:1052 dr:2217 al:3 bm:0 lo:0 pe:0 ua:0 ap:0 ep:1 wo:f oos:0
 1: cs:Unconfigured
";

    const PROC_84_FROZEN: &str = "version: 8.4.11 (api:1/proto:86-101)
 0: cs:WFConnection ro:Primary/Unknown ds:UpToDate/DUnknown C s-----
    ns:4 nr:0 dw:8 dr:2217 al:1 bm:1 lo:0 pe:1 ua:0 ap:1 ep:1 wo:f oos:4
";

    const PROC_84_SYNCING: &str = "version: 8.4.11 (api:1/proto:86-101)
 0: cs:SyncTarget ro:Secondary/Primary ds:Inconsistent/UpToDate C r-----
    ns:0 nr:41216 dw:41216 dr:0 al:0 bm:0 lo:1 pe:4 ua:1 ap:0 ep:1 wo:f oos:90084
\t[=====>..............] sync'ed: 31.5% (90084/131032)K
\tfinish: 0:00:02 speed: 41,216 (41,216) want: 41,000 K/sec
";

    #[test]
    fn proc_drbd_connected_primary() {
        let s = parse_proc_drbd(PROC_84, "mfsmeta", 0).expect("parse");
        assert!(s.is_primary() && !s.suspended);
        assert_eq!(s.disk, DiskState::UpToDate);
        assert_eq!(s.replica_state(), ReplicaState::UpToDate);
        let p = &s.peers[0];
        assert!(p.is_connected());
        assert_eq!(
            (p.role, &p.disk),
            (DrbdRole::Secondary, &DiskState::UpToDate)
        );
        assert_eq!(p.replication.as_deref(), Some("Established"));
        assert!(matches!(
            parse_proc_drbd(PROC_84, "mfsmeta", 1),
            Err(DrbdError::NotUp { minor: 1 })
        ));
        assert!(matches!(
            parse_proc_drbd(PROC_84, "mfsmeta", 2),
            Err(DrbdError::NotUp { minor: 2 })
        ));
    }

    #[test]
    fn proc_drbd_frozen_primary_without_its_peer() {
        let s = parse_proc_drbd(PROC_84_FROZEN, "mfsmeta", 0).expect("parse");
        assert!(s.is_primary() && s.suspended);
        let p = &s.peers[0];
        assert!(!p.is_connected());
        assert_eq!(p.connection, "WFConnection");
        assert_eq!((p.role, &p.disk), (DrbdRole::Unknown, &DiskState::DUnknown));
        assert_eq!(p.replication, None);
    }

    #[test]
    fn proc_drbd_syncing_and_bad_lines() {
        let s = parse_proc_drbd(PROC_84_SYNCING, "mfsmeta", 0).expect("parse");
        assert_eq!(s.replica_state(), ReplicaState::Syncing);
        let p = &s.peers[0];
        assert!(p.is_connected());
        assert_eq!(p.replication.as_deref(), Some("SyncTarget"));
        assert_eq!(p.sync_done, Some(31.5));
        for bad in [
            " 0: ro:Primary/Secondary",
            " 0: cs:Connected ds:UpToDate/UpToDate",
            " 0: cs:Connected ro:Primary",
        ] {
            assert!(
                matches!(parse_proc_drbd(bad, "r", 0), Err(DrbdError::ProcLine(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_proc_drbd("", "r", 0),
            Err(DrbdError::NotUp { .. })
        ));
    }

    #[test]
    fn fence_peer_continues_only_with_the_lease() {
        let held = fence_peer_decision(LeaseView::Held { epoch: 12 });
        assert_eq!(held.exit_code, 7);
        assert!(held.reason.contains("epoch 12"));
        let other = fence_peer_decision(LeaseView::NotHeld {
            epoch: 12,
            holder: Some(NodeId(1)),
        });
        assert_eq!(other.exit_code, FENCE_PEER_REFUSED);
        assert!(other.reason.contains("node 1 holds the lease"));
        let nobody = fence_peer_decision(LeaseView::NotHeld {
            epoch: 12,
            holder: None,
        });
        assert_eq!(nobody.exit_code, FENCE_PEER_REFUSED);
        assert_eq!(
            fence_peer_decision(LeaseView::Unknown).exit_code,
            FENCE_PEER_REFUSED
        );
        // A refusal must be a code DRBD treats as "helper broken": outside 3..=7.
        assert!(!(3..=7).contains(&FENCE_PEER_REFUSED));
    }

    #[test]
    fn lease_view_holds_only_for_a_leader_with_time_left() {
        use crate::core::agent::{AgentStatus, NodeRole};
        use crate::core::plan::Observed;
        let status = |role, leader: Option<u16>, left: Option<u64>| AgentStatus {
            node: NodeId(0),
            role,
            leader: leader.map(NodeId),
            epoch: 7,
            lease_left_ms: left,
            eligible: true,
            eligibility: String::new(),
            local_health_score: 100,
            host: Observed::IDLE,
            pending_action: None,
            moosefs_version: String::new(),
            members: Vec::new(),
        };
        assert_eq!(
            lease_view(&status(NodeRole::Leader, Some(0), Some(900))),
            LeaseView::Held { epoch: 7 }
        );
        for (role, leader, left, holder) in [
            (NodeRole::Leader, Some(0), Some(0), None),
            (NodeRole::Fencing, Some(0), Some(500), None),
            (NodeRole::Standby, Some(1), Some(500), Some(NodeId(1))),
            (NodeRole::Standby, None, None, None),
        ] {
            assert_eq!(
                lease_view(&status(role, leader, left)),
                LeaseView::NotHeld { epoch: 7, holder },
                "{role:?} {leader:?} {left:?}"
            );
        }
    }
}
