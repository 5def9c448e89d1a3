//! The lab's network: one namespace per node plus a "switch" namespace holding a bridge, joined by
//! veth pairs. Addresses exist only inside these namespaces (10.213.0.0/24); the host's own
//! interfaces are never touched. Built with iproute2 (`ip`), which every lab machine has.

use std::net::Ipv4Addr;
use std::process::Command;

use anyhow::{Context, bail};

/// Prefix of every namespace the lab creates (used to clean up after a crash).
pub const NS_PREFIX: &str = "mhlab-";
/// The switch namespace with the bridge.
pub const SWITCH_NS: &str = "mhlab-sw";
/// The lab subnet (inside the namespaces only).
pub const SUBNET: [u8; 3] = [10, 213, 0];
/// The VIP of the lab rack.
pub const VIP_HOST: u8 = 50;

/// The namespace of node `name`.
pub fn ns(name: &str) -> String {
    format!("{NS_PREFIX}{name}")
}

/// The address of the `i`-th node (0-based).
pub fn node_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(
        SUBNET[0],
        SUBNET[1],
        SUBNET[2],
        11 + u8::try_from(i).unwrap_or(200),
    )
}

pub fn vip() -> Ipv4Addr {
    Ipv4Addr::new(SUBNET[0], SUBNET[1], SUBNET[2], VIP_HOST)
}

/// Runs `ip ARGS`, failing with its stderr.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running `ip` (install iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Namespaces that exist now with the lab's prefix.
pub fn lab_namespaces() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output();
    let Ok(out) = out else { return Vec::new() };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(NS_PREFIX))
        .map(String::from)
        .collect()
}

/// Creates the switch and one namespace per node (`names[i]` gets `node_addr(i)` on `eth0`).
pub fn create(names: &[String]) -> anyhow::Result<()> {
    ip(&["netns", "add", SWITCH_NS])?;
    ip(&["-n", SWITCH_NS, "link", "set", "lo", "up"])?;
    ip(&["-n", SWITCH_NS, "link", "add", "br0", "type", "bridge"])?;
    // No STP, no forwarding delay: the lab's links are up at once.
    ip(&[
        "-n",
        SWITCH_NS,
        "link",
        "set",
        "br0",
        "type",
        "bridge",
        "forward_delay",
        "0",
        "stp_state",
        "0",
    ])?;
    ip(&["-n", SWITCH_NS, "link", "set", "br0", "up"])?;
    for (i, name) in names.iter().enumerate() {
        let node_ns = ns(name);
        let port = format!("p{i}");
        ip(&["netns", "add", &node_ns])?;
        ip(&["-n", &node_ns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n", SWITCH_NS, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
            &node_ns,
        ])?;
        ip(&["-n", SWITCH_NS, "link", "set", &port, "master", "br0"])?;
        ip(&["-n", SWITCH_NS, "link", "set", &port, "up"])?;
        ip(&[
            "-n",
            &node_ns,
            "addr",
            "add",
            &format!("{}/24", node_addr(i)),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &node_ns, "link", "set", "eth0", "up"])?;
    }
    Ok(())
}

/// Deletes every lab namespace (their veths go with them).
pub fn destroy() -> Vec<String> {
    let mut errors = Vec::new();
    for n in lab_namespaces() {
        if let Err(e) = ip(&["netns", "del", &n]) {
            errors.push(e.to_string());
        }
    }
    errors
}
