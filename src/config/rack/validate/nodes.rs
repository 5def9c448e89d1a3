//! Checks of each `[[node]]` and of the rack as a whole (voters, master candidates, DRBD's
//! two-node limit, chunkservers).

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use toml::Spanned;

use super::cluster::metrics_listen;
use super::{host_path, valid_ifname, valid_mac, valid_name};
use crate::config::board::Catalog;
use crate::config::diag::{Diagnostics, shown, suggestion};
use crate::config::rack::schema::{
    DEFAULT_DISK_MOUNT, Drbd, DrbdVersion, Node, ROLES, RawCluster, RawNode, Replication, Role,
};
use crate::node_id::NodeId;

/// What the node checks need from the `[cluster]` checks.
#[derive(Clone, Copy)]
pub(super) struct Context<'a> {
    pub cluster: &'a RawCluster,
    pub cspan: &'a Range<usize>,
    pub at: &'a dyn Fn(Range<usize>) -> Range<usize>,
    pub vip: Option<Ipv4Net>,
    pub replication: Option<Replication>,
    pub cluster_metrics: Option<SocketAddr>,
}

/// Names and addresses of the nodes checked so far (each must be unique).
#[derive(Default)]
struct Seen {
    names: BTreeMap<String, Range<usize>>,
    addrs: BTreeMap<Ipv4Addr, String>,
}

/// Checks every node, in file order; `None` if there are more than node ids can number.
pub(super) fn nodes(
    raw: Vec<Spanned<RawNode>>,
    cx: &Context<'_>,
    d: &mut Diagnostics<'_>,
) -> Option<Vec<(Range<usize>, Node)>> {
    let c = cx.cluster;
    let cspan = cx.cspan;
    let catalog = match Catalog::load(Some(c.boards_dir.get_ref())) {
        Ok(cat) => cat,
        Err(e) => {
            d.error(
                (cx.at)(c.boards_dir.span()),
                format!(
                    "boards_dir {}: {e}",
                    shown(&c.boards_dir.get_ref().to_string_lossy())
                ),
            );
            Catalog::embedded()
        }
    };
    if raw.is_empty() {
        d.error(cspan.clone(), "the rack has no [[node]] entries");
    }
    if raw.len() > usize::from(u16::MAX) {
        d.error(cspan.clone(), "too many nodes");
        return None;
    }
    let mut seen = Seen::default();
    Some(
        raw.into_iter()
            .enumerate()
            .map(|(i, n)| node(i, n, cx, &catalog, &mut seen, d))
            .collect(),
    )
}

/// Checks one node.
fn node(
    i: usize,
    n: Spanned<RawNode>,
    cx: &Context<'_>,
    catalog: &Catalog,
    seen: &mut Seen,
    d: &mut Diagnostics<'_>,
) -> (Range<usize>, Node) {
    let Context {
        cluster: c,
        at,
        vip,
        replication,
        cluster_metrics,
        ..
    } = *cx;
    let Seen { names, addrs } = seen;
    let nspan = n.span();
    let n = n.into_inner();
    let name = n.name.get_ref().clone();
    let nm = shown(&name);
    if !valid_name(&name) {
        d.error(n.name.span(), format!("node name `{nm}` must be 1-63 lowercase letters, digits or `-` (it becomes a hostname)"));
    }
    if names.insert(name.clone(), n.name.span()).is_some() {
        d.error(n.name.span(), format!("node name `{nm}` is used twice"));
    }
    let addr = match n.addr.get_ref().parse::<Ipv4Addr>() {
        Ok(a) => {
            if let Some(other) = addrs.insert(a, name.clone()) {
                d.error(
                    n.addr.span(),
                    format!("addr {a} of `{nm}` is already the address of `{other}`"),
                );
            }
            if let Some(v) = vip {
                if a == v.addr() {
                    d.error(
                        n.addr.span(),
                        format!(
                            "addr {a} of `{nm}` is the VIP; the VIP must be an address no node owns"
                        ),
                    );
                } else if !v.contains(&a) {
                    d.error(
                            n.addr.span(),
                            format!("addr {a} of `{nm}` is not in the VIP's subnet {}: the VIP moves between nodes on one L2 subnet", v.trunc()),
                        );
                }
            }
            Some(a)
        }
        Err(_) => {
            d.error(
                n.addr.span(),
                format!(
                    "addr `{}` of `{nm}` is not an IPv4 address (e.g. `192.168.1.11`, no prefix)",
                    shown(n.addr.get_ref())
                ),
            );
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
                    shown(r.get_ref()),
                    ROLES.join(", "),
                    suggestion(r.get_ref(), ROLES)
                ),
            ),
        }
    }
    if n.roles.get_ref().is_empty() {
        d.error(n.roles.span(), format!("node `{nm}` has no roles (valid: {}); a voter-only Pi still needs one, e.g. \"worker\"", ROLES.join(", ")));
    }
    roles.sort();
    if catalog.get(n.board.get_ref()).is_none() {
        let known = catalog.names();
        d.error(
            n.board.span(),
            format!(
                "unknown board `{}` (known: {}; add your own in {}){}",
                shown(n.board.get_ref()),
                known.join(", "),
                c.boards_dir.get_ref().display(),
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
                    shown(iface.get_ref())
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
                    shown(mac.get_ref())
                ),
            );
        }
    }
    if roles.contains(&Role::Master)
        && replication == Some(Replication::Drbd)
        && n.drbd_disk.is_none()
    {
        d.error(nspan.clone(), format!("master candidate `{nm}` needs `drbd_disk` (the backing block device, e.g. \"/dev/sda2\") because replication is \"drbd\""));
    }
    let place = format!("node `{nm}`");
    let node_at = |s: Range<usize>| {
        if s.is_empty() && s.start == 0 {
            nspan.clone()
        } else {
            s
        }
    };
    host_path(&n.meta_dir, "meta_dir", &place, &node_at, d);
    for (key, p) in [
        ("mount_path", &n.mount_path),
        ("disk_mount", &n.disk_mount),
        ("drbd_disk", &n.drbd_disk),
    ] {
        if let Some(p) = p {
            host_path(p, key, &place, &node_at, d);
        }
    }
    for dir in &n.chunk_dirs {
        host_path(dir, "chunk_dirs", &place, &node_at, d);
    }
    let disk_mount = n
        .disk_mount
        .clone()
        .map_or_else(|| PathBuf::from(DEFAULT_DISK_MOUNT), Spanned::into_inner);
    if let Some(disk) = &n.disk
        && !disk.get_ref().starts_with("/dev/")
    {
        d.error(
                disk.span(),
                format!(
                    "disk `{}` of `{nm}` must be a block device under /dev, e.g. \"/dev/sda\" (or a stable /dev/disk/by-id/... path)",
                    shown(&disk.get_ref().to_string_lossy())
                ),
            );
    }
    if let Some(f) = &n.format
        && *f.get_ref()
        && n.disk.is_none()
    {
        d.error(
                f.span(),
                format!("format = true on `{nm}` but it has no `disk`: name the data disk to format, e.g. disk = \"/dev/sda\""),
            );
    }
    if n.disk.is_some() {
        for dir in n.chunk_dirs.iter().map(Spanned::get_ref) {
            if dir.is_absolute() && !dir.starts_with(&disk_mount) {
                d.warning(
                        nspan.clone(),
                        format!(
                            "chunk dir `{}` of `{nm}` is not under disk_mount {}: chunks would go to the SD card",
                            dir.display(),
                            disk_mount.display()
                        ),
                    );
            }
        }
    }
    if roles.contains(&Role::Chunkserver) && n.chunk_dirs.is_empty() {
        d.error(nspan.clone(), format!("chunkserver `{nm}` needs `chunk_dirs` (directories on its data disk, e.g. [\"/mnt/usb/mfschunks\"])"));
    }
    (
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
            drbd_disk: n.drbd_disk.map(Spanned::into_inner),
            meta_dir: n.meta_dir.into_inner(),
            chunk_dirs: n.chunk_dirs.into_iter().map(Spanned::into_inner).collect(),
            mount_path: n
                .mount_path
                .map_or_else(|| c.mount_path.get_ref().clone(), Spanned::into_inner),
            disk: n.disk.map(Spanned::into_inner),
            disk_mount,
            format: n.format.is_some_and(|f| *f.get_ref()),
            metrics_listen: match &n.metrics_listen {
                Some(m) => metrics_listen(m, &format!("node `{}`", n.name.get_ref()), &|r| r, d),
                None => cluster_metrics,
            },
        },
    )
}

/// Checks what only the whole rack shows: voters, master candidates, chunkservers.
pub(super) fn whole_rack(
    nodes: &[(Range<usize>, Node)],
    cspan: &Range<usize>,
    replication: Option<Replication>,
    drbd: Option<&Drbd>,
    d: &mut Diagnostics<'_>,
) {
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
            && drbd.is_some_and(|x| x.version == DrbdVersion::V84)
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
}
