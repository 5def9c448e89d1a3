//! The virtual IP: added and removed with rtnetlink, always with a kernel lifetime (`valid_lft`),
//! then announced with gratuitous ARP on a packet socket.
//!
//! The lifetime is the dead-man switch of the VIP: the kernel deletes the address by itself when
//! it runs out (measured here: a 2 s lifetime was gone 2.46 s later), so a leader whose agent is
//! frozen or dead loses the VIP before its lease can end. The agent refreshes it with every lease
//! renewal (`core::plan::vip_lifetime`).
//!
//! It works in the network namespace of the calling thread (the lab runs each agent with
//! `nsenter --net`); interface index and MAC come from netlink, not /sys (which shows the host's).

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage, CacheInfo};
use rtnetlink::packet_route::link::LinkAttribute;

/// What went wrong with the VIP, naming the interface and address.
#[derive(Debug, thiserror::Error)]
pub enum VipError {
    #[error("cannot open a netlink socket: {0}")]
    Netlink(std::io::Error),
    #[error("interface `{0}` does not exist in this network namespace (check `interface` in the rack file)")]
    NoInterface(String),
    #[error("{what} {vip} on {iface}: {error}")]
    Request { what: &'static str, vip: Ipv4Net, iface: String, error: String },
    #[error("{vip} on {iface}: {what}")]
    Verify { what: String, vip: Ipv4Net, iface: String },
    #[error("gratuitous ARP for {vip} on {iface}: {error}")]
    Arp { vip: Ipv4Net, iface: String, error: std::io::Error },
}

/// The VIP on one interface.
pub struct VipDriver {
    iface: String,
    vip: Ipv4Net,
    index: u32,
    mac: [u8; 6],
    rt: tokio::runtime::Runtime,
    handle: rtnetlink::Handle,
}

impl std::fmt::Debug for VipDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VipDriver").field("iface", &self.iface).field("vip", &self.vip).field("index", &self.index).finish()
    }
}

impl VipDriver {
    /// The VIP `vip` (address with the subnet prefix) on `iface`.
    pub fn new(iface: &str, vip: Ipv4Net) -> Result<Self, VipError> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(VipError::Netlink)?;
        let (handle, index, mac) = rt.block_on(async {
            let (conn, handle, _) = rtnetlink::new_connection().map_err(VipError::Netlink)?;
            tokio::spawn(conn);
            let mut links = handle.link().get().match_name(iface.to_string()).execute();
            let link = links.try_next().await.ok().flatten().ok_or_else(|| VipError::NoInterface(iface.to_string()))?;
            let mac = link
                .attributes
                .iter()
                .find_map(|a| match a {
                    LinkAttribute::Address(m) if m.len() == 6 => Some([m[0], m[1], m[2], m[3], m[4], m[5]]),
                    _ => None,
                })
                .unwrap_or([0; 6]);
            Ok::<_, VipError>((handle, link.header.index, mac))
        })?;
        Ok(Self { iface: iface.to_string(), vip, index, mac, rt, handle })
    }

    fn request_err(&self, what: &'static str, e: impl std::fmt::Display) -> VipError {
        VipError::Request { what, vip: self.vip, iface: self.iface.clone(), error: e.to_string() }
    }

    /// Our address as the kernel has it now, if present.
    fn find(&self) -> Result<Option<AddressMessage>, VipError> {
        let handle = self.handle.clone();
        let (index, addr) = (self.index, self.vip.addr());
        self.rt
            .block_on(async move {
                let mut s = handle.address().get().set_link_index_filter(index).execute();
                while let Some(m) = s.try_next().await? {
                    if m.attributes.iter().any(|a| matches!(a, AddressAttribute::Address(IpAddr::V4(a)) if *a == addr)) {
                        return Ok(Some(m));
                    }
                }
                Ok(None)
            })
            .map_err(|e: rtnetlink::Error| self.request_err("reading addresses for", e))
    }

    /// Adds the VIP, or replaces it, with a kernel lifetime of `valid_s` seconds; verifies it.
    pub fn up(&mut self, valid_s: u32) -> Result<(), VipError> {
        let mut req = self.handle.address().add(self.index, IpAddr::V4(self.vip.addr()), self.vip.prefix_len()).replace();
        let mut ci = CacheInfo::default();
        ci.ifa_valid = valid_s;
        ci.ifa_preferred = valid_s;
        req.message_mut().attributes.push(AddressAttribute::CacheInfo(ci));
        self.rt.block_on(req.execute()).map_err(|e| self.request_err("adding", e))?;
        match self.state()? {
            Some(left) if left <= Duration::from_secs(u64::from(valid_s)) => Ok(()),
            Some(left) => Err(VipError::Verify { what: format!("lifetime {left:?} is not the {valid_s} s asked for"), vip: self.vip, iface: self.iface.clone() }),
            None => Err(VipError::Verify { what: "not present after adding it".into(), vip: self.vip, iface: self.iface.clone() }),
        }
    }

    /// Removes the VIP if present; verifies it is gone.
    pub fn down(&mut self) -> Result<(), VipError> {
        if let Some(m) = self.find()? {
            let req = self.handle.address().del(m);
            if let Err(e) = self.rt.block_on(req.execute()) {
                // It may have expired between the read and the delete: only its absence matters.
                if self.find()?.is_some() {
                    return Err(self.request_err("removing", e));
                }
            }
        }
        match self.find()? {
            None => Ok(()),
            Some(_) => Err(VipError::Verify { what: "still present after removing it".into(), vip: self.vip, iface: self.iface.clone() }),
        }
    }

    /// Whether the VIP is configured, and its remaining valid lifetime.
    pub fn state(&self) -> Result<Option<Duration>, VipError> {
        Ok(self.find()?.map(|m| {
            m.attributes
                .iter()
                .find_map(|a| match a {
                    AddressAttribute::CacheInfo(ci) if ci.ifa_valid != u32::MAX => Some(Duration::from_secs(u64::from(ci.ifa_valid))),
                    _ => None,
                })
                // No lifetime (someone added it by hand): treat as "forever" but report it.
                .unwrap_or(Duration::from_secs(u64::from(u32::MAX)))
        }))
    }

    /// Sends `count` gratuitous ARP requests (sender = target = VIP, from this interface's MAC,
    /// to broadcast), `spacing` apart. Blocks; run it on its own thread.
    pub fn announce(&self, count: u32, spacing: Duration) -> Result<(), VipError> {
        let err = |error| VipError::Arp { vip: self.vip, iface: self.iface.clone(), error };
        let frame = garp_frame(self.mac, self.vip.addr());
        // SAFETY: plain socket(2); the descriptor is owned by `fd` below and closed by it.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from((libc::ETH_P_ARP as u16).to_be())) };
        if raw < 0 {
            return Err(err(std::io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh, valid descriptor that nothing else owns.
        let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
        // SAFETY: sockaddr_ll is plain old data; zeroed is a valid value before we fill it in.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = (libc::ETH_P_ARP as u16).to_be();
        addr.sll_ifindex = i32::try_from(self.index).unwrap_or(0);
        addr.sll_halen = 6;
        addr.sll_addr[..6].copy_from_slice(&[0xff; 6]);
        for i in 0..count {
            // SAFETY: the buffer and the address are valid for the lengths given.
            let sent = unsafe {
                libc::sendto(
                    std::os::fd::AsRawFd::as_raw_fd(&fd),
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&raw const addr).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
                )
            };
            if sent < 0 {
                return Err(err(std::io::Error::last_os_error()));
            }
            if i + 1 < count {
                std::thread::sleep(spacing);
            }
        }
        Ok(())
    }
}

/// A 42-byte Ethernet frame with a gratuitous ARP request for `ip` from `mac`.
pub fn garp_frame(mac: [u8; 6], ip: Ipv4Addr) -> [u8; 42] {
    let mut f = [0u8; 42];
    f[0..6].copy_from_slice(&[0xff; 6]); // destination: broadcast
    f[6..12].copy_from_slice(&mac); // source
    f[12..14].copy_from_slice(&0x0806u16.to_be_bytes()); // EtherType ARP
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // hardware: Ethernet
    f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol: IPv4
    f[18] = 6; // hardware address length
    f[19] = 4; // protocol address length
    f[20..22].copy_from_slice(&1u16.to_be_bytes()); // request
    f[22..28].copy_from_slice(&mac); // sender MAC
    f[28..32].copy_from_slice(&ip.octets()); // sender IP
    f[32..38].copy_from_slice(&[0; 6]); // target MAC: unknown
    f[38..42].copy_from_slice(&ip.octets()); // target IP = sender IP: gratuitous
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn garp_frame_layout() {
        let f = garp_frame([2, 0, 0, 0, 0, 1], Ipv4Addr::new(10, 0, 0, 50));
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[28..32], &[10, 0, 0, 50]);
        assert_eq!(&f[38..42], &[10, 0, 0, 50]);
        assert_eq!(&f[0..6], &[0xff; 6]);
    }

    /// A namespace pair joined by a veth, deleted on drop.
    struct Netns(Vec<String>);

    impl Drop for Netns {
        fn drop(&mut self) {
            for n in &self.0 {
                let _ = Command::new("ip").args(["netns", "del", n]).status();
            }
        }
    }

    fn ip(args: &[&str]) {
        let ok = Command::new("ip").args(args).status().map(|s| s.success()).unwrap_or(false);
        assert!(ok, "ip {}", args.join(" "));
    }

    /// Runs `f` on a thread inside namespace `ns`.
    fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{ns}");
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("netns file");
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("thread")
    }

    #[test]
    fn vip_up_refresh_down_expiry_and_arp_in_a_namespace() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root (network namespaces)");
            return;
        }
        let tag = std::process::id();
        let (a, b) = (format!("mhvip-a{tag}"), format!("mhvip-b{tag}"));
        let _guard = Netns(vec![a.clone(), b.clone()]);
        ip(&["netns", "add", &a]);
        ip(&["netns", "add", &b]);
        ip(&["-n", &a, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", &b]);
        ip(&["-n", &a, "addr", "add", "10.217.0.1/24", "dev", "eth0"]);
        ip(&["-n", &b, "addr", "add", "10.217.0.2/24", "dev", "eth0"]);
        ip(&["-n", &a, "link", "set", "eth0", "up"]);
        ip(&["-n", &b, "link", "set", "eth0", "up"]);
        // The peer cached the VIP at another MAC (the old master's): the announcement must move it.
        ip(&["-n", &b, "neigh", "add", "10.217.0.50", "lladdr", "02:00:00:00:00:99", "dev", "eth0", "nud", "stale"]);
        let vip: Ipv4Net = "10.217.0.50/24".parse().expect("vip");
        let (overshoot, lifetimes) = in_ns(&a, move || {
            assert!(matches!(VipDriver::new("nope0", vip), Err(VipError::NoInterface(_))));
            let mut d = VipDriver::new("eth0", vip).expect("driver");
            d.up(5).expect("up");
            let first = d.state().expect("state").expect("present");
            d.up(9).expect("refresh");
            let second = d.state().expect("state").expect("present");
            d.announce(3, Duration::from_millis(50)).expect("arp");
            d.down().expect("down");
            assert_eq!(d.state().expect("state"), None);
            d.down().expect("down when absent is fine");
            // The kernel's own expiry: the dead-man switch.
            d.up(1).expect("up 1 s");
            let t0 = std::time::Instant::now();
            while d.state().expect("state").is_some() && t0.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(20));
            }
            (t0.elapsed(), (first, second))
        });
        assert!(lifetimes.0 <= Duration::from_secs(5) && lifetimes.1 > Duration::from_secs(5), "{lifetimes:?}");
        eprintln!("a 1 s VIP lifetime was removed by the kernel after {overshoot:?}");
        assert!(overshoot < Duration::from_secs(1) + crate::core::plan::KERNEL_VIP_SLACK, "kernel expiry took {overshoot:?}");
        // The peer's cache now maps the VIP to our MAC.
        let out = Command::new("ip").args(["-n", &b, "neigh", "show", "10.217.0.50"]).output().expect("ip neigh");
        let neigh = String::from_utf8_lossy(&out.stdout).to_string();
        let link = Command::new("ip").args(["-n", &a, "-o", "link", "show", "eth0"]).output().expect("ip link");
        let link = String::from_utf8_lossy(&link.stdout).to_string();
        let mac = link.split("link/ether ").nth(1).and_then(|r| r.split_whitespace().next()).expect("mac").to_string();
        assert!(neigh.contains(&mac), "the peer still maps the VIP elsewhere: {neigh:?} (ours: {mac})");
    }
}
