//! The virtual IP driver: puts the cluster's VIP on an interface of the network namespace the
//! agent runs in, takes it off, reads it back, and announces it with gratuitous ARP.
//!
//! It is the effect behind the plan's `VipUp` / `VipDown` actions (see `core::plan`). The VIP is
//! always added with a **kernel lifetime** (`IFA_CACHEINFO`, valid = preferred = `valid_s`
//! seconds): the kernel deletes the address by itself when the lifetime runs out, so a frozen or
//! dead agent loses its VIP before its lease can end (the plan keeps `valid_s` below the lease by
//! [`KERNEL_VIP_SLACK`](crate::core::plan::KERNEL_VIP_SLACK)). Refreshing is an `RTM_NEWADDR` with
//! `NLM_F_REPLACE` carrying a new lifetime, exactly like `ip addr replace ... valid_lft N`.
//!
//! Blocking by design: the host driver runs on its own thread. Address work goes through the
//! `rtnetlink` crate (pinned exactly: its API churns) on a small current-thread tokio runtime owned
//! by the driver; gratuitous ARP goes out on an `AF_PACKET` socket. Both sockets are opened in
//! [`VipDriver::new`], so they belong to the network namespace of the thread that calls it, and
//! every operation afterwards acts on that namespace, whichever thread calls it.
//!
//! Every operation checks its result by reading the address back: a driver that says "VIP up"
//! has seen the kernel report it, with a finite lifetime.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use futures_util::TryStreamExt;
use ipnet::Ipv4Net;
use nix::sys::socket::{
    AddressFamily, LinkAddr, MsgFlags, SockFlag, SockType, SockaddrLike, bind, send, socket,
};
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage, CacheInfo};
use rtnetlink::packet_route::link::LinkAttribute;

/// How long one netlink request may take before the driver gives up on it.
pub const NETLINK_TIMEOUT: Duration = Duration::from_secs(2);
/// The kernel's "forever" lifetime; never used for the VIP (it would disable the dead-man switch).
const INFINITY_LIFE_TIME: u32 = u32::MAX;
const ETH_P_ARP: u16 = 0x0806;
const ETH_P_IP: u16 = 0x0800;
/// Length of an Ethernet + ARP frame for IPv4 over Ethernet.
pub const GARP_FRAME_LEN: usize = 42;

/// What went wrong with the VIP. Every variant names the interface and, where it applies, the
/// VIP, so the log line alone tells a person what to look at.
#[derive(Debug, thiserror::Error)]
pub enum VipError {
    /// The interface is not in this network namespace.
    #[error(
        "interface `{interface}` does not exist in this network namespace (check `interface` in the rack file and `ip link`)"
    )]
    NoInterface { interface: String },
    /// The interface has no 6-byte hardware address (not Ethernet-like): no gratuitous ARP.
    #[error(
        "interface `{interface}` has no Ethernet hardware address, so gratuitous ARP cannot be sent on it"
    )]
    NoMac { interface: String },
    /// The kernel refused a netlink request (the cause carries the errno).
    #[error("VIP {vip} on `{interface}`: {op}: netlink: {cause}")]
    Netlink {
        interface: String,
        vip: Ipv4Net,
        op: &'static str,
        cause: rtnetlink::Error,
    },
    /// The kernel did not answer within [`NETLINK_TIMEOUT`].
    #[error(
        "VIP {vip} on `{interface}`: {op}: no answer from the kernel within {:?}",
        NETLINK_TIMEOUT
    )]
    Timeout {
        interface: String,
        vip: Ipv4Net,
        op: &'static str,
    },
    /// A socket or the runtime could not be set up, or sending failed.
    #[error("VIP {vip} on `{interface}`: {op}: {cause}")]
    Io {
        interface: String,
        vip: Ipv4Net,
        op: &'static str,
        cause: std::io::Error,
    },
    /// The kernel accepted the request, but reading the address back shows another state.
    #[error("VIP {vip} on `{interface}`: read-back after {op}: {detail}")]
    Verify {
        interface: String,
        vip: Ipv4Net,
        op: &'static str,
        detail: String,
    },
    /// `up` was asked for a lifetime of 0 or "forever".
    #[error(
        "VIP {vip} on `{interface}`: lifetime of {valid_s} s refused: it must be 1 s or more and finite (the kernel lifetime is the VIP's dead-man switch)"
    )]
    Lifetime {
        interface: String,
        vip: Ipv4Net,
        valid_s: u32,
    },
}

/// The interface as the kernel knows it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Link {
    index: u32,
    mac: Option<[u8; 6]>,
}

/// One instance of the VIP's address found on the interface.
#[derive(Debug, Clone)]
struct Found {
    msg: AddressMessage,
    prefix_len: u8,
    /// Remaining valid lifetime in whole seconds as the kernel reports it (`u32::MAX`: forever).
    valid_s: u32,
}

/// Drives the VIP of one interface in the current network namespace.
pub struct VipDriver {
    interface: String,
    vip: Ipv4Net,
    rt: tokio::runtime::Runtime,
    handle: rtnetlink::Handle,
    /// Send-only packet socket (protocol 0: it receives nothing) for gratuitous ARP.
    packet: OwnedFd,
    link: Link,
}

impl std::fmt::Debug for VipDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VipDriver")
            .field("interface", &self.interface)
            .field("vip", &self.vip)
            .field("link", &self.link)
            .finish_non_exhaustive()
    }
}

impl VipDriver {
    /// Opens the netlink and packet sockets in the calling thread's network namespace and looks
    /// the interface up. Fails with [`VipError::NoInterface`] if it does not exist there. Needs
    /// `CAP_NET_ADMIN` and `CAP_NET_RAW`.
    pub fn new(interface: &str, vip: Ipv4Net) -> Result<Self, VipError> {
        let io = |op: &'static str| {
            let interface = interface.to_string();
            move |cause: std::io::Error| VipError::Io {
                interface,
                vip,
                op,
                cause,
            }
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io("starting the netlink runtime"))?;
        let (conn, handle, _) = {
            let _ctx = rt.enter(); // the netlink socket registers with this runtime's reactor
            rtnetlink::new_connection().map_err(io("opening a netlink socket"))?
        };
        rt.spawn(conn);
        let packet = socket(
            AddressFamily::Packet,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            None,
        )
        .map_err(|e| io("opening a packet socket for gratuitous ARP")(e.into()))?;
        let mut d = VipDriver {
            interface: interface.to_string(),
            vip,
            rt,
            handle,
            packet,
            link: Link {
                index: 0,
                mac: None,
            },
        };
        d.link = d.lookup_link()?;
        Ok(d)
    }

    /// The interface this driver acts on.
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The VIP (address and prefix) this driver puts up.
    pub fn vip(&self) -> Ipv4Net {
        self.vip
    }

    /// Adds the VIP, or refreshes it if present, with a kernel lifetime of `valid_s` seconds
    /// (valid = preferred). The kernel removes it by itself at most
    /// [`KERNEL_VIP_SLACK`](crate::core::plan::KERNEL_VIP_SLACK) after the lifetime unless `up` is
    /// called again. Instances of the same address with another prefix length are removed first,
    /// so no copy without a lifetime stays behind. Returns once the kernel reports the address
    /// with a finite lifetime of at most `valid_s`.
    pub fn up(&mut self, valid_s: u32) -> Result<(), VipError> {
        if valid_s == 0 || valid_s == INFINITY_LIFE_TIME {
            return Err(VipError::Lifetime {
                interface: self.interface.clone(),
                vip: self.vip,
                valid_s,
            });
        }
        self.link = self.lookup_link()?;
        for f in self.find()? {
            if f.prefix_len != self.vip.prefix_len() {
                self.delete(f.msg, "removing the VIP with a stale prefix length")?;
            }
        }
        let mut req = self
            .handle
            .address()
            .add(
                self.link.index,
                IpAddr::V4(self.vip.addr()),
                self.vip.prefix_len(),
            )
            .replace();
        let mut ci = CacheInfo::default();
        ci.ifa_valid = valid_s;
        ci.ifa_preferred = valid_s;
        req.message_mut()
            .attributes
            .push(AddressAttribute::CacheInfo(ci));
        self.run("adding the VIP", req.execute())?;
        match self
            .find()?
            .iter()
            .find(|f| f.prefix_len == self.vip.prefix_len())
        {
            None => Err(self.verify("up", "the kernel does not list the address".into())),
            Some(f) if f.valid_s > valid_s => Err(self.verify(
                "up",
                format!(
                    "the kernel reports a lifetime of {} s, more than the {valid_s} s asked for",
                    life(f.valid_s)
                ),
            )),
            Some(_) => Ok(()),
        }
    }

    /// Removes the VIP (every instance of its address on the interface) if present; absent is
    /// fine. Returns once the kernel no longer lists it.
    pub fn down(&mut self) -> Result<(), VipError> {
        self.link = self.lookup_link()?;
        for f in self.find()? {
            match self.delete(f.msg, "removing the VIP") {
                Ok(()) => {}
                // Expired by its lifetime between the dump and the delete: that is "down" too.
                Err(VipError::Netlink {
                    cause: rtnetlink::Error::NetlinkError(ref m),
                    ..
                }) if m.raw_code().abs() == libc::EADDRNOTAVAIL => {}
                Err(e) => return Err(e),
            }
        }
        if self.find()?.is_empty() {
            Ok(())
        } else {
            Err(self.verify("down", "the kernel still lists the address".into()))
        }
    }

    /// Whether the VIP is on the interface now, and its remaining valid lifetime as the kernel
    /// reports it: whole seconds, rounded so it is never less than the true remaining time
    /// (`Duration::MAX` if someone added it without a lifetime). If several instances exist
    /// (other prefix lengths), the longest-lived counts.
    pub fn state(&self) -> Result<Option<Duration>, VipError> {
        let found = self.find()?;
        Ok(found.iter().map(|f| f.valid_s).max().map(|s| {
            if s == INFINITY_LIFE_TIME {
                Duration::MAX
            } else {
                Duration::from_secs(u64::from(s))
            }
        }))
    }

    /// Sends `count` gratuitous ARP requests for the VIP from the interface's MAC, `spacing`
    /// apart (blocking: run it on a thread of its own). See [`Announcer::announce`].
    pub fn announce(&self, count: u32, spacing: Duration) -> Result<(), VipError> {
        self.announcer()?.announce(count, spacing)
    }

    /// A handle that sends gratuitous ARP for the VIP on its own, to be moved to another thread
    /// (the driver stays free for `up`/`down` meanwhile). Uses the interface's MAC as of the last
    /// `new`/`up`/`down`.
    pub fn announcer(&self) -> Result<Announcer, VipError> {
        let mac = self.link.mac.ok_or_else(|| VipError::NoMac {
            interface: self.interface.clone(),
        })?;
        let fd = self.packet.try_clone().map_err(|cause| VipError::Io {
            interface: self.interface.clone(),
            vip: self.vip,
            op: "duplicating the packet socket",
            cause,
        })?;
        Ok(Announcer {
            fd,
            ifindex: self.link.index,
            mac,
            interface: self.interface.clone(),
            vip: self.vip,
        })
    }

    fn verify(&self, op: &'static str, detail: String) -> VipError {
        VipError::Verify {
            interface: self.interface.clone(),
            vip: self.vip,
            op,
            detail,
        }
    }

    /// Runs one netlink future to completion with [`NETLINK_TIMEOUT`].
    fn run<T>(
        &self,
        op: &'static str,
        fut: impl Future<Output = Result<T, rtnetlink::Error>>,
    ) -> Result<T, VipError> {
        match self
            .rt
            .block_on(async { tokio::time::timeout(NETLINK_TIMEOUT, fut).await })
        {
            Ok(r) => r.map_err(|cause| VipError::Netlink {
                interface: self.interface.clone(),
                vip: self.vip,
                op,
                cause,
            }),
            Err(_) => Err(VipError::Timeout {
                interface: self.interface.clone(),
                vip: self.vip,
                op,
            }),
        }
    }

    fn lookup_link(&self) -> Result<Link, VipError> {
        let req = self.handle.link().get().match_name(self.interface.clone());
        let msgs = self.run(
            "looking up the interface",
            req.execute().try_collect::<Vec<_>>(),
        );
        let msgs = match msgs {
            Ok(m) => m,
            Err(VipError::Netlink {
                cause: rtnetlink::Error::NetlinkError(ref m),
                ..
            }) if m.raw_code().abs() == libc::ENODEV => Vec::new(),
            Err(e) => return Err(e),
        };
        let msg = msgs
            .into_iter()
            .next()
            .ok_or_else(|| VipError::NoInterface {
                interface: self.interface.clone(),
            })?;
        let mac = msg.attributes.iter().find_map(|a| match a {
            LinkAttribute::Address(b) => <[u8; 6]>::try_from(b.as_slice()).ok(),
            _ => None,
        });
        Ok(Link {
            index: msg.header.index,
            mac,
        })
    }

    /// Every instance of the VIP's address on the interface.
    fn find(&self) -> Result<Vec<Found>, VipError> {
        let req = self
            .handle
            .address()
            .get()
            .set_link_index_filter(self.link.index)
            .set_address_filter(IpAddr::V4(self.vip.addr()));
        let msgs = self.run("reading addresses", req.execute().try_collect::<Vec<_>>())?;
        Ok(msgs
            .into_iter()
            .map(|msg| {
                let valid_s = msg
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        AddressAttribute::CacheInfo(c) => Some(c.ifa_valid),
                        _ => None,
                    })
                    .unwrap_or(INFINITY_LIFE_TIME);
                Found {
                    prefix_len: msg.header.prefix_len,
                    valid_s,
                    msg,
                }
            })
            .collect())
    }

    fn delete(&self, msg: AddressMessage, op: &'static str) -> Result<(), VipError> {
        self.run(op, self.handle.address().del(msg).execute())
    }
}

fn life(s: u32) -> String {
    if s == INFINITY_LIFE_TIME {
        "forever".into()
    } else {
        s.to_string()
    }
}

/// Sends gratuitous ARP for the VIP; owns its own handle on the driver's packet socket, so it can
/// run on a thread of its own while the driver keeps working.
#[derive(Debug)]
pub struct Announcer {
    fd: OwnedFd,
    ifindex: u32,
    mac: [u8; 6],
    interface: String,
    vip: Ipv4Net,
}

impl Announcer {
    /// Sends `count` gratuitous ARP requests (sender IP = target IP = the VIP, sender MAC = the
    /// interface's, Ethernet broadcast), `spacing` apart, blocking meanwhile. Neighbours that
    /// already have an entry for the VIP (clients, chunkservers, the router) update it to this
    /// MAC at once instead of waiting for it to go stale (47 s measured without it).
    pub fn announce(&self, count: u32, spacing: Duration) -> Result<(), VipError> {
        let frame = garp_frame(self.mac, self.vip.addr());
        let err = |op: &'static str, e: nix::Error| VipError::Io {
            interface: self.interface.clone(),
            vip: self.vip,
            op,
            cause: e.into(),
        };
        // Binding with protocol 0 keeps the socket send-only: it never queues received frames.
        let addr = link_addr(self.ifindex, 0)
            .ok_or(nix::Error::EINVAL)
            .map_err(|e| err("addressing the interface", e))?;
        bind(self.fd.as_raw_fd(), &addr).map_err(|e| err("binding the packet socket", e))?;
        for i in 0..count {
            if i > 0 {
                std::thread::sleep(spacing);
            }
            let n = send(self.fd.as_raw_fd(), &frame, MsgFlags::empty())
                .map_err(|e| err("sending gratuitous ARP", e))?;
            if n != frame.len() {
                return Err(VipError::Io {
                    interface: self.interface.clone(),
                    vip: self.vip,
                    op: "sending gratuitous ARP",
                    cause: std::io::Error::other(format!(
                        "short write: {n} of {} bytes",
                        frame.len()
                    )),
                });
            }
        }
        Ok(())
    }
}

/// A `sockaddr_ll` for `ifindex`, `protocol` in host order (0: a send-only socket), Ethernet
/// broadcast as the hardware address. `None` only if the index does not fit the C type.
fn link_addr(ifindex: u32, protocol: u16) -> Option<LinkAddr> {
    let sll = libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as libc::sa_family_t,
        sll_protocol: protocol.to_be(),
        sll_ifindex: i32::try_from(ifindex).ok()?,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr: [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0],
    };
    let len = u32::try_from(std::mem::size_of::<libc::sockaddr_ll>()).ok()?;
    // SAFETY: `sll` is a fully initialised `sockaddr_ll` (the type `LinkAddr` wraps), `len` is its
    // exact size, and `from_raw` copies it before `sll` goes out of scope.
    unsafe { LinkAddr::from_raw(std::ptr::from_ref(&sll).cast::<libc::sockaddr>(), Some(len)) }
}

/// The 42-byte gratuitous ARP request for `ip` from `mac`: Ethernet broadcast, ARP request with
/// sender IP = target IP = `ip`, target MAC zero (RFC 5227 "ARP Announcement").
pub fn garp_frame(mac: [u8; 6], ip: Ipv4Addr) -> [u8; GARP_FRAME_LEN] {
    let mut f = [0u8; GARP_FRAME_LEN];
    f[0..6].copy_from_slice(&[0xff; 6]); // destination: broadcast
    f[6..12].copy_from_slice(&mac); // source
    f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
    f[14..16].copy_from_slice(&1u16.to_be_bytes()); // hardware type: Ethernet
    f[16..18].copy_from_slice(&ETH_P_IP.to_be_bytes()); // protocol type: IPv4
    f[18] = 6; // hardware address length
    f[19] = 4; // protocol address length
    f[20..22].copy_from_slice(&1u16.to_be_bytes()); // operation: request
    f[22..28].copy_from_slice(&mac); // sender hardware address
    f[28..32].copy_from_slice(&ip.octets()); // sender protocol address
    // 32..38: target hardware address, zero
    f[38..42].copy_from_slice(&ip.octets()); // target protocol address
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Instant;

    use nix::sched::{CloneFlags, setns};
    use nix::sys::socket::{recv, setsockopt, sockopt::ReceiveTimeout};
    use nix::sys::time::TimeVal;

    #[test]
    fn garp_frame_layout() {
        let mac = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
        let f = garp_frame(mac, Ipv4Addr::new(10, 1, 2, 3));
        assert_eq!(&f[0..6], &[0xff; 6]);
        assert_eq!(&f[6..12], &mac);
        assert_eq!(&f[12..22], &[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        assert_eq!(&f[22..28], &mac);
        assert_eq!(&f[28..32], &[10, 1, 2, 3]);
        assert_eq!(&f[32..38], &[0; 6]);
        assert_eq!(&f[38..42], &[10, 1, 2, 3]);
    }

    fn ip(args: &[&str]) -> Result<(), String> {
        let out = Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "ip {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    fn ip_out(args: &[&str]) -> String {
        let out = Command::new("ip").args(args).output().expect("ip runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Two network namespaces joined by a veth pair: `va` (10.213.k.1/24, where the driver runs)
    /// in `a`, `vb` (10.213.k.2/24, the neighbour, arp_accept on) in `b`. Dropping it deletes both
    /// namespaces (and with them the veth pair), also when a test panics.
    struct Lab {
        a: String,
        b: String,
        k: u32,
    }

    impl Lab {
        /// `None` (the test then skips, saying why) when not root or namespaces are unavailable.
        fn new() -> Option<Lab> {
            static NEXT: AtomicU32 = AtomicU32::new(0);
            if !nix::unistd::geteuid().is_root() {
                return crate::test_support::cannot_run(
                    "vip",
                    "needs root (network namespaces, CAP_NET_ADMIN)",
                );
            }
            let k = NEXT.fetch_add(1, Ordering::Relaxed);
            let pid = std::process::id();
            let lab = Lab {
                a: format!("mhvip-{pid}-{k}a"),
                b: format!("mhvip-{pid}-{k}b"),
                k,
            };
            if let Err(e) = ip(&["netns", "add", &lab.a]) {
                std::mem::forget(lab);
                return crate::test_support::cannot_run(
                    "vip",
                    &format!("cannot create a network namespace: {e}"),
                );
            }
            let setup = || -> Result<(), String> {
                ip(&["netns", "add", &lab.b])?;
                ip(&[
                    "-n", &lab.a, "link", "add", "va", "type", "veth", "peer", "name", "vb",
                ])?;
                ip(&["-n", &lab.a, "link", "set", "vb", "netns", &lab.b])?;
                ip(&[
                    "-n",
                    &lab.a,
                    "addr",
                    "add",
                    &format!("10.213.{k}.1/24"),
                    "dev",
                    "va",
                ])?;
                ip(&[
                    "-n",
                    &lab.b,
                    "addr",
                    "add",
                    &format!("10.213.{k}.2/24"),
                    "dev",
                    "vb",
                ])?;
                ip(&["-n", &lab.a, "link", "set", "va", "up"])?;
                ip(&["-n", &lab.b, "link", "set", "vb", "up"])?;
                ip(&[
                    "netns",
                    "exec",
                    &lab.b,
                    "sysctl",
                    "-q",
                    "-w",
                    "net.ipv4.conf.vb.arp_accept=1",
                ])
            };
            setup().expect("lab setup");
            Some(lab)
        }

        fn vip(&self) -> Ipv4Net {
            format!("10.213.{}.50/24", self.k).parse().expect("vip")
        }

        /// Runs `f` on a thread that entered namespace `ns`.
        fn run_in<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
            let path = format!("/run/netns/{ns}");
            std::thread::spawn(move || {
                let fd = std::fs::File::open(&path).expect("netns file");
                setns(&fd, CloneFlags::CLONE_NEWNET).expect("setns");
                f()
            })
            .join()
            .expect("namespace thread")
        }
    }

    impl Drop for Lab {
        fn drop(&mut self) {
            let _ = ip(&["netns", "del", &self.a]);
            let _ = ip(&["netns", "del", &self.b]);
        }
    }

    #[test]
    fn up_refresh_down_with_kernel_lifetimes() {
        let Some(lab) = Lab::new() else { return };
        let vip = lab.vip();
        let ns = lab.a.clone();
        Lab::run_in(&lab.a, move || {
            let mut d = VipDriver::new("va", vip).expect("driver");
            assert_eq!(d.state().expect("state"), None);
            d.up(3).expect("up");
            let left = d.state().expect("state").expect("present");
            assert!(
                left <= Duration::from_secs(3) && left >= Duration::from_secs(2),
                "{left:?}"
            );
            let shown = ip_out(&["-n", &ns, "-4", "addr", "show", "dev", "va"]);
            assert!(shown.contains(&vip.to_string()), "{shown}");
            assert!(
                shown.contains("valid_lft 3sec") || shown.contains("valid_lft 2sec"),
                "{shown}"
            );
            // Refresh extends...
            d.up(30).expect("refresh");
            let left = d.state().expect("state").expect("present");
            assert!(left >= Duration::from_secs(29), "{left:?}");
            // ...and may shorten too: the lifetime is whatever the plan says now.
            d.up(2).expect("shorten");
            let left = d.state().expect("state").expect("present");
            assert!(left <= Duration::from_secs(2), "{left:?}");
            d.down().expect("down");
            assert_eq!(d.state().expect("state"), None);
            d.down().expect("down when absent is fine");
            assert!(matches!(d.up(0), Err(VipError::Lifetime { .. })));
            assert!(matches!(d.up(u32::MAX), Err(VipError::Lifetime { .. })));
        });
    }

    #[test]
    fn a_permanent_copy_with_another_prefix_is_replaced() {
        let Some(lab) = Lab::new() else { return };
        let vip = lab.vip();
        let wide = format!("{}/16", vip.addr());
        ip(&["-n", &lab.a, "addr", "add", &wide, "dev", "va"]).expect("add /16");
        Lab::run_in(&lab.a, move || {
            let mut d = VipDriver::new("va", vip).expect("driver");
            assert_eq!(d.state().expect("state"), Some(Duration::MAX), "permanent");
            d.up(5).expect("up");
            let found = d.find().expect("find");
            assert_eq!(found.len(), 1, "{found:?}");
            assert_eq!(found[0].prefix_len, 24);
            assert!(found[0].valid_s <= 5);
        });
    }

    #[test]
    fn missing_interface_is_named() {
        let Some(lab) = Lab::new() else { return };
        let vip = lab.vip();
        let e = Lab::run_in(&lab.a, move || VipDriver::new("nosuch0", vip).unwrap_err());
        assert!(matches!(e, VipError::NoInterface { .. }), "{e:?}");
        assert!(e.to_string().contains("`nosuch0`"), "{e}");
    }

    /// The dead-man switch: with the agent doing nothing, the kernel removes the VIP itself.
    #[test]
    fn kernel_expires_the_vip_by_itself() {
        let Some(lab) = Lab::new() else { return };
        let vip = lab.vip();
        let samples = Lab::run_in(&lab.a, move || {
            let mut d = VipDriver::new("va", vip).expect("driver");
            let mut samples = Vec::new();
            for _ in 0..3 {
                d.up(1).expect("up");
                let t0 = Instant::now();
                while d.state().expect("state").is_some() {
                    assert!(t0.elapsed() < Duration::from_secs(4), "VIP never expired");
                    std::thread::sleep(Duration::from_millis(5));
                }
                samples.push(t0.elapsed());
            }
            samples
        });
        eprintln!("kernel VIP expiry with valid_lft 1 s: {samples:?}");
        for s in samples {
            assert!(s >= Duration::from_millis(900), "expired early: {s:?}");
            assert!(
                s <= Duration::from_secs(1) + crate::core::plan::KERNEL_VIP_SLACK,
                "overshoot beyond KERNEL_VIP_SLACK: {s:?}"
            );
        }
    }

    #[test]
    fn gratuitous_arp_reaches_the_neighbour() {
        let Some(lab) = Lab::new() else { return };
        let vip = lab.vip();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let b = lab.b.clone();
        let listener = std::thread::spawn(move || {
            Lab::run_in(&b, move || {
                let idx = nix::net::if_::if_nametoindex("vb").expect("vb");
                let fd = socket(
                    AddressFamily::Packet,
                    SockType::Raw,
                    SockFlag::SOCK_CLOEXEC,
                    None,
                )
                .expect("packet socket");
                bind(fd.as_raw_fd(), &link_addr(idx, ETH_P_ARP).expect("addr")).expect("bind");
                setsockopt(&fd, ReceiveTimeout, &TimeVal::new(0, 200_000)).expect("timeout");
                ready_tx.send(()).expect("ready");
                let mut got = Vec::new();
                let t0 = Instant::now();
                while got.len() < 3 && t0.elapsed() < Duration::from_secs(5) {
                    let mut buf = [0u8; 128];
                    if let Ok(n) = recv(fd.as_raw_fd(), &mut buf, MsgFlags::empty())
                        && n >= GARP_FRAME_LEN
                        && buf[28..32] == vip.addr().octets()
                    {
                        got.push((t0.elapsed(), buf[..GARP_FRAME_LEN].to_vec()));
                    }
                }
                got
            })
        });
        ready_rx.recv().expect("listener ready");
        let mac = Lab::run_in(&lab.a, move || {
            let mut d = VipDriver::new("va", vip).expect("driver");
            d.up(10).expect("up");
            let a = d.announcer().expect("announcer");
            std::thread::spawn(move || a.announce(3, Duration::from_millis(50)))
                .join()
                .expect("announcer thread")
                .expect("announce");
            d.link.mac.expect("mac")
        });
        let got = listener.join().expect("listener");
        assert_eq!(got.len(), 3, "received {} of 3 gratuitous ARPs", got.len());
        for (_, f) in &got {
            assert_eq!(f.as_slice(), garp_frame(mac, vip.addr()).as_slice());
        }
        let gaps: Vec<_> = got.windows(2).map(|w| w[1].0 - w[0].0).collect();
        assert!(
            gaps.iter().all(|g| *g >= Duration::from_millis(40)),
            "{gaps:?}"
        );
        let neigh = ip_out(&["-n", &lab.b, "neigh", "show", &vip.addr().to_string()]);
        let mac_s = mac
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        assert!(
            neigh.contains(&mac_s),
            "neighbour table of the peer: {neigh:?}, want {mac_s}"
        );
    }
}
