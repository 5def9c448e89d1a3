//! Checks of the `[provisioner]` table, and of the nodes it needs (workers that mount MooseFS
//! where volumes' hostPaths point).

use std::ops::Range;

use toml::Spanned;

use super::{fallback, host_path};
use crate::config::diag::Diagnostics;
use crate::config::rack::schema::{Node, Provisioner, RawCluster, RawProvisioner, Role};
use crate::relpath::RelPath;

/// Checks the `[provisioner]` table; disabled defaults when it is absent.
pub(super) fn provisioner(
    raw: Option<Spanned<RawProvisioner>>,
    nodes: &[(Range<usize>, Node)],
    c: &RawCluster,
    d: &mut Diagnostics<'_>,
) -> Provisioner {
    match raw {
        None => Provisioner::default(),
        Some(t) => {
            let tspan = t.span();
            let t = t.into_inner();
            let at = fallback(tspan);
            if !valid_provisioner_name(t.name.get_ref()) {
                d.error(at(t.name.span()), format!("provisioner name `{}` must look like `example.com/name` (a DNS subdomain, `/`, a name; at most 63 characters after the `/`)", t.name.get_ref()));
            }
            host_path(&t.kubeconfig, "kubeconfig", "[provisioner]", &at, d);
            if let Err(e) = RelPath::parse(t.root.get_ref()) {
                d.error(at(t.root.span()), format!("root `{}` must be a directory relative to mount_path, e.g. \"volumes\": {e}", t.root.get_ref()));
            }
            if t.enabled {
                for (nspan, n) in nodes {
                    if n.has(Role::Master) && !n.has(Role::Worker) {
                        d.error(nspan.clone(), format!("master candidate `{}` needs the `worker` role: the provisioner runs on the leader and creates volumes through its MooseFS mount", n.name));
                    }
                    if n.has(Role::Worker) && n.mount_path != *c.mount_path.get_ref() {
                        d.error(nspan.clone(), format!("worker `{}` mounts MooseFS at {} but volumes' hostPaths use the cluster's mount_path {}; with [provisioner] enabled every worker mounts at the same place", n.name, n.mount_path.display(), c.mount_path.get_ref().display()));
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
    }
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
