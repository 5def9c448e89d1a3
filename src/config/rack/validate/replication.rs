//! Checks of how metadata is replicated: `replication` in `[cluster]` and the `[drbd]` table.

use std::ops::Range;

use toml::Spanned;

use crate::config::diag::{Diagnostics, suggestion};
use crate::config::rack::schema::{
    Drbd, DrbdVersion, REPLICATIONS, RawCluster, RawDrbd, Replication, default_drbd_device,
    default_drbd_port, default_drbd_resource,
};

/// Checks `replication` (and `shared_dir`, which `shared-dir` needs); `None` if unknown.
pub(super) fn mode(c: &RawCluster, d: &mut Diagnostics<'_>) -> Option<Replication> {
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
        // A given shared_dir is checked as a host path with the other paths of [cluster].
        if c.shared_dir.is_none() {
            d.error(
                c.replication.span(),
                "replication = \"shared-dir\" needs `shared_dir` in [cluster]: the directory every master candidate sees",
            );
        }
        d.warning(
            c.replication.span(),
            "replication = \"shared-dir\" is for the lab only: it stands in for a disk attached to every master candidate",
        );
    }
    replication
}

/// Checks the `[drbd]` table against the replication mode; DRBD's defaults when it is absent.
pub(super) fn drbd(
    replication: Option<Replication>,
    raw: Option<Spanned<RawDrbd>>,
    at: &dyn Fn(Range<usize>) -> Range<usize>,
    d: &mut Diagnostics<'_>,
) -> Option<Drbd> {
    match (&replication, raw) {
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
    }
}
