//! The rack file's checks, one file per section of the file. Every check reports through
//! [`Diagnostics`] and goes on, so a person sees all mistakes at once; [`validate`] runs them in
//! a fixed order (the order of the messages for one position).

mod cluster;
mod lease;
mod nodes;
mod provisioner;
mod replication;

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::HostChecks;
use super::Rack;
use super::schema::{Cluster, RawRack, Replication};
use crate::config::diag::{Diagnostics, shown};
use crate::relpath::check_host_path;

pub use cluster::DEFAULT_METRICS_PORT;
pub use lease::{MAX_DRIFT_PPM, MAX_LEASE_MS, MIN_LEASE_MS, lease_slack_ms, min_lease_ms};

/// Checks a parsed rack file section by section and builds the [`Rack`] (`None` when the file
/// is too broken to build one; errors are in `d` either way).
pub(super) fn validate(
    raw: RawRack,
    path: &Path,
    host: HostChecks,
    d: &mut Diagnostics<'_>,
) -> Option<Rack> {
    let cspan = raw.cluster.span();
    let c = raw.cluster.into_inner();
    let at = fallback(cspan.clone());

    let vip = cluster::identity(&c, &at, d);
    let replication = replication::mode(&c, d);
    let drbd = replication::drbd(replication, raw.drbd, &at, d);
    lease::timing(&c, &at, d);
    cluster::paths(&c, &at, d);
    if host.keyring {
        cluster::check_keyring(c.keyring.get_ref(), at(c.keyring.span()), d);
    }
    let cluster_metrics = match &c.metrics_listen {
        Some(m) => cluster::metrics_listen(m, "[cluster]", &at, d),
        None => Some(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            DEFAULT_METRICS_PORT,
        ))),
    };

    let nodes = nodes::nodes(
        raw.node,
        &nodes::Context {
            cluster: &c,
            cspan: &cspan,
            at: &at,
            vip,
            replication,
            cluster_metrics,
        },
        d,
    )?;
    nodes::whole_rack(&nodes, &cspan, replication, drbd.as_ref(), d);
    let provisioner = provisioner::provisioner(raw.provisioner, &nodes, &c, d);

    let cluster = Cluster {
        name: c.name.into_inner(),
        vip: vip.unwrap_or_default(),
        interface: c.interface.into_inner(),
        lease_ms: *c.lease_ms.get_ref(),
        fence_budget_ms: *c.fence_budget_ms.get_ref(),
        max_drift_ppm: *c.max_drift_ppm.get_ref(),
        keyring: c.keyring.into_inner(),
        replication: replication.unwrap_or(Replication::Metalogger),
        gossip_port: *c.gossip_port.get_ref(),
        state_dir: c.state_dir.into_inner(),
        mount_path: c.mount_path.into_inner(),
        shared_dir: c.shared_dir.map(Spanned::into_inner),
        boards_dir: c.boards_dir.into_inner(),
        control_socket: c.control_socket.into_inner(),
        metrics_listen: cluster_metrics,
        hold_master_connects: c.hold_master_connects,
    };
    Some(Rack {
        source: path.to_path_buf(),
        cluster,
        nodes: nodes.into_iter().map(|(_, n)| n).collect(),
        drbd,
        provisioner,
    })
}

/// Maps the span of a value to itself, or, for a value the file left out (a default, whose span
/// is empty at 0), to the span of its table: the place to point at in a message.
fn fallback(table: Range<usize>) -> impl Fn(Range<usize>) -> Range<usize> {
    move |s| {
        if s.is_empty() && s.start == 0 {
            table.clone()
        } else {
            s
        }
    }
}

/// Checks a host path (`key` of `place`, e.g. "node `a`"): absolute, no `..`, no control
/// character, so that nothing built from it (first boot's files under its root, the agent's own)
/// lands outside where the key says. Returns whether it passed.
fn host_path(
    p: &Spanned<PathBuf>,
    key: &str,
    place: &str,
    at: &dyn Fn(Range<usize>) -> Range<usize>,
    d: &mut Diagnostics<'_>,
) -> bool {
    match check_host_path(p.get_ref()) {
        Ok(()) => true,
        Err(e) => {
            d.error(
                at(p.span()),
                format!(
                    "{key} = \"{}\" of {place} {e}",
                    shown(&p.get_ref().to_string_lossy())
                ),
            );
            false
        }
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
