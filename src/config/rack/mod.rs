//! The rack file: one TOML file, the same on every Pi, that names the cluster and its nodes.
//!
//! Parsing keeps the position of every value so validation can say `FILE:LINE:COL` for each
//! mistake, and validation goes on after the first problem so a person sees all of them at once.
//! The result is a [`Rack`]: typed, checked, and with nodes numbered by their order in the file
//! (that number is the node's [`NodeId`] on the wire, so every Pi must carry the same file; the
//! rack's [`Rack::fingerprint`] lets agents notice when they do not).

mod schema;
mod validate;

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::diag::{Diagnostic, Diagnostics, Severity, utf8_text};
use super::parse::parse_toml;
use crate::fnv::Fnv1a;
use crate::node_id::NodeId;
use schema::{RawRack, known_keys};
use validate::validate;

pub use schema::{
    CLUSTER_KEYS, Cluster, DEFAULT_DISK_MOUNT, DEFAULT_GOSSIP_PORT, DEFAULT_KUBECONFIG,
    DEFAULT_PROVISIONER_NAME, DRBD_KEYS, Drbd, DrbdVersion, NODE_KEYS, Node, PROVISIONER_KEYS,
    Provisioner, REPLICATIONS, ROLES, Replication, Role,
};
pub use validate::{
    DEFAULT_METRICS_PORT, MAX_DRIFT_PPM, MAX_LEASE_MS, MIN_LEASE_MS, lease_slack_ms, min_lease_ms,
};

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
    #[error("cannot read rack file {}: it {cause}", file.display())]
    Read {
        file: PathBuf,
        cause: crate::bounded_read::ReadError,
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
    /// Reads (a regular file of at most 1 MiB, UTF-8) and validates a rack file. `Ok` carries
    /// the warnings.
    pub fn load(path: &Path, host: HostChecks) -> Result<(Rack, Vec<Diagnostic>), ConfigError> {
        use crate::bounded_read::{Links, MAX_CONFIG_BYTES, read_regular};
        let (bytes, _) = read_regular(path, MAX_CONFIG_BYTES, Links::Follow).map_err(|cause| {
            ConfigError::Read {
                file: path.to_path_buf(),
                cause,
            }
        })?;
        let src = utf8_text(path, &bytes).map_err(|d| ConfigError::Invalid(vec![d]))?;
        Self::parse(src, path, host)
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
        let mut h = Fnv1a::new();
        h.field(self.cluster.name.as_bytes());
        h.field(self.cluster.vip.to_string().as_bytes());
        h.field(&self.cluster.lease_ms.to_le_bytes());
        h.field(&self.cluster.max_drift_ppm.to_le_bytes());
        for n in &self.nodes {
            h.field(n.name.as_bytes());
            h.field(&n.addr.octets());
            for r in &n.roles {
                h.field(r.as_str().as_bytes());
            }
            h.field(&[u8::from(n.voter), n.priority]);
        }
        h.value()
    }
}
