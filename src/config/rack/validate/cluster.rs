//! Checks of the `[cluster]` table's own values: the cluster's name, its VIP and interface, the
//! keyring and the metrics endpoint.

use std::net::{Ipv4Addr, SocketAddr};
use std::ops::Range;
use std::path::Path;

use ipnet::Ipv4Net;
use toml::Spanned;

use super::{host_path, valid_ifname, valid_name};
use crate::config::diag::{Diagnostics, shown};
use crate::config::rack::schema::RawCluster;

/// Checks the cluster's name, VIP and interface; returns the VIP if it parses.
pub(super) fn identity(
    c: &RawCluster,
    at: &dyn Fn(Range<usize>) -> Range<usize>,
    d: &mut Diagnostics<'_>,
) -> Option<Ipv4Net> {
    if !valid_name(c.name.get_ref()) {
        d.error(
            c.name.span(),
            format!(
                "cluster name `{}` must be 1-63 lowercase letters, digits or `-` (it names files and the DRBD resource)",
                shown(c.name.get_ref())
            ),
        );
    }

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
                format!("vip `{}` is not valid: {hint}", shown(c.vip.get_ref())),
            );
            None
        }
    };

    if !valid_ifname(c.interface.get_ref()) {
        d.error(
            at(c.interface.span()),
            format!(
                "interface `{}` is not a Linux interface name (1-15 characters, no `/` or spaces)",
                shown(c.interface.get_ref())
            ),
        );
    }

    vip
}

/// Checks the cluster's host paths (see [`host_path`]).
pub(super) fn paths(
    c: &RawCluster,
    at: &dyn Fn(Range<usize>) -> Range<usize>,
    d: &mut Diagnostics<'_>,
) {
    for (key, p) in [
        ("keyring", &c.keyring),
        ("state_dir", &c.state_dir),
        ("mount_path", &c.mount_path),
        ("boards_dir", &c.boards_dir),
        ("control_socket", &c.control_socket),
    ] {
        host_path(p, key, "[cluster]", at, d);
    }
    if let Some(s) = &c.shared_dir {
        host_path(s, "shared_dir", "[cluster]", at, d);
    }
}

/// The Prometheus endpoint's default port (on 127.0.0.1).
pub const DEFAULT_METRICS_PORT: u16 = 9464;

/// Checks a `metrics_listen` value: `ADDRESS:PORT` or `off`. A non-loopback address is allowed
/// with a warning (the endpoint has no authentication).
pub(super) fn metrics_listen(
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
                format!("metrics_listen = \"{}\" in {place} is not ADDRESS:PORT (e.g. \"127.0.0.1:{DEFAULT_METRICS_PORT}\") or \"off\"", shown(text)),
            );
            None
        }
    }
}

/// Checks that the keyring exists, is a regular file the agent can read (bounded: a FIFO or a
/// device is refused, not opened for good), and is private.
pub(super) fn check_keyring(path: &Path, span: Range<usize>, d: &mut Diagnostics<'_>) {
    use crate::bounded_read::{Links, MAX_CONFIG_BYTES, ReadError, read_regular};
    use std::os::unix::fs::PermissionsExt;
    let shown_path = shown(&path.to_string_lossy());
    match read_regular(path, MAX_CONFIG_BYTES, Links::Follow) {
        Ok((_, meta)) => {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                d.error(span, format!("keyring {shown_path} has mode {mode:04o}: others could read the gossip keys; run `chmod 600 {shown_path}`"));
            }
        }
        Err(ReadError::NotFound) => d.error(
            span,
            format!("keyring {shown_path} does not exist; create it with `mooseherd keygen {shown_path}` and copy it to every node (or check on a workstation with --no-host-checks)"),
        ),
        Err(e) => d.error(span, format!("keyring {shown_path} cannot be used: it {e}")),
    }
}
