//! A worker's mfsmount after a failover: its TCP connection to the old master may be stuck.
//!
//! When the old master vanished without closing its connections (a partition, a frozen or
//! powered-off node), a request mfsmount had in flight sits in TCP retransmission with
//! exponential back-off: the next retransmission, which the new VIP owner would answer with a
//! reset, may come seconds after the new master is up (measured in the lab's partition drill:
//! first write 2.1 s after the VIP moved, against 0.3 s after a kill, where the kernel reset the
//! connection at once). The same holds for a write in flight to a chunkserver on the node that
//! was cut off. So when a new leader is elected, a worker waits until the master at the VIP
//! accepts connections, and then destroys (`ss -K`, the kernel's SOCK_DESTROY) those of its
//! connections to masters and chunkservers that are retransmitting, or that lead to a node seen
//! down (a request waiting there for an answer is not retransmitting: measured, it waited 125 s
//! once); mfsmount reconnects at once
//! and asks the new master for a new chunk chain. A connection that is not retransmitting is
//! left alone. Chunkservers and metaloggers reach the master at the VIP too, and their
//! connections to the old master are stuck the same way (the new master cannot place a chunk
//! until the chunkservers have registered with it): every node does this, whatever its roles.
//!
//! The same holds the other way round whenever a member is declared down, leader change or not
//! ([`member_down`]). The master keeps a chunkserver that went silent in its list until its
//! connection times out (`MATOCS_TIMEOUT`, 10 s, and MooseFS 3.0 refuses less), placing new
//! chunks on it and holding the clients' writes to its chunks meanwhile: measured in the lab's
//! flap drill, a chunkserver whose link went down for 2 s right after a failover stopped every
//! write for 10.0 s. So every node destroys its MooseFS connections (ports 9419-9422, either
//! end) to a member as soon as the membership declares it down: the master drops its
//! chunkserver at once and hands out chains without it, a mount's write to it fails at once and
//! is retried on a new chain, and the chunkserver registers again when it is back (its agent is
//! alive, so it refutes the verdict within a second of its return). A false verdict costs one
//! chunkserver re-registration, never data: it is what MooseFS itself does 10 s later.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long after a leader change a worker keeps looking.
const WATCH: Duration = Duration::from_secs(15);
const STEP: Duration = Duration::from_millis(100);

/// Whether an `ss -tni` info line shows a connection in retransmission (data unacknowledged and
/// the retransmission timer backed off, or retransmissions counted).
pub fn is_stuck(info: &str) -> bool {
    info.split_whitespace().any(|w| {
        w.starts_with("backoff:")
            || w.strip_prefix("retrans:")
                .and_then(|r| r.split('/').next())
                .is_some_and(|n| n != "0")
    })
}

/// This node's connections to MooseFS masters (ports 9419 metaloggers, 9420 chunkservers, 9421
/// clients) and chunkservers (9422) that are retransmitting, or whose peer is on a node seen
/// down (`down`: a connection waiting for an answer from there is not retransmitting, and may
/// wait for minutes): (local, peer) addresses as `ss` prints them.
fn stuck_connections(down: &[IpAddr]) -> Vec<(String, String)> {
    let out = Command::new("ss")
        .args(["-tniH", "state", "established"])
        .args([
            "(", "dport", "=", ":9419", "or", "dport", "=", ":9420", "or", "dport", "=", ":9421",
            "or", "dport", "=", ":9422", ")",
        ])
        .output();
    let Ok(out) = out else {
        return Vec::new();
    };
    // Each connection is two lines: addresses, then the indented TCP info.
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let lines: Vec<&str> = text.lines().collect();
    let mut stuck = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let addr = lines[i];
        let info = lines.get(i + 1).copied().unwrap_or_default();
        if info.starts_with(char::is_whitespace) {
            // "0 0 10.213.0.13:52110 10.213.0.50:9421": local and peer are the 3rd and 4th words.
            let mut w = addr.split_whitespace().skip(2);
            if let (Some(local), Some(peer)) = (w.next(), w.next()) {
                let to_down = peer
                    .rsplit_once(':')
                    .and_then(|(h, _)| h.parse::<IpAddr>().ok())
                    .is_some_and(|ip| down.contains(&ip));
                if to_down || is_stuck(info) {
                    stuck.push((local.to_string(), peer.to_string()));
                }
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    stuck
}

/// Destroys the connection from `local` to `peer`.
fn destroy(local: &str, peer: &str) -> bool {
    let (Some((lhost, lport)), Some((phost, pport))) =
        (local.rsplit_once(':'), peer.rsplit_once(':'))
    else {
        return false;
    };
    Command::new("ss")
        .args([
            "-K",
            "state",
            "established",
            "dst",
            phost,
            "dport",
            "=",
            &format!(":{pport}"),
        ])
        .args(["src", lhost, "sport", "=", &format!(":{lport}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The `ss` filter for MooseFS's ports (9419 metaloggers, 9420 chunkservers, 9421 clients at the
/// master; 9422 clients and chunkservers at a chunkserver) at either end of a connection.
const MFS_PORTS: [&str; 33] = [
    "(", "sport", "=", ":9419", "or", "sport", "=", ":9420", "or", "sport", "=", ":9421", "or",
    "sport", "=", ":9422", "or", "dport", "=", ":9419", "or", "dport", "=", ":9420", "or", "dport",
    "=", ":9421", "or", "dport", "=", ":9422", ")",
];

/// A member at `addr` was declared down: destroys, on a thread of its own, this node's
/// established MooseFS connections with it (see the module's documentation). Returns at once.
pub fn member_down(addr: IpAddr) {
    let spawned = std::thread::Builder::new()
        .name("member-down-reset".into())
        .spawn(move || {
            let out = Command::new("ss")
                .args(["-K", "-tnH", "state", "established", "dst", &addr.to_string()])
                .args(MFS_PORTS)
                .output();
            match out {
                Ok(o) if o.status.success() => {
                    let n = String::from_utf8_lossy(&o.stdout).lines().count();
                    if n > 0 {
                        tracing::info!(
                            member = %addr,
                            "reset {n} MooseFS connection(s) with a member declared down: the master drops its chunkserver now instead of after its 10 s timeout, and writes to it are retried elsewhere"
                        );
                    }
                }
                Ok(o) => tracing::warn!(
                    "cannot reset the MooseFS connections with {addr} (declared down): ss -K: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                Err(e) => tracing::warn!(
                    "cannot reset the MooseFS connections with {addr} (declared down): ss: {e}"
                ),
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot reset the connections with a member declared down: {e}");
    }
}

/// Watches, on its own thread, for the master at `vip:port` to accept connections after a
/// leader change, then resets this node's retransmitting connections to masters and
/// chunkservers (the old master, and chunkservers cut off with it), twice a second apart.
/// Returns at once.
pub fn after_leader_change(epoch: u64, vip: Ipv4Addr, port: u16, down: Vec<IpAddr>) {
    let spawned = std::thread::Builder::new()
        .name("client-reset".into())
        .spawn(move || {
            let start = Instant::now();
            let addr = SocketAddr::V4(SocketAddrV4::new(vip, port));
            while start.elapsed() < WATCH {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    for pass in 0..2 {
                        if pass > 0 {
                            std::thread::sleep(Duration::from_secs(1));
                        }
                        let stuck = stuck_connections(&down);
                        let reset: Vec<&String> = stuck
                            .iter()
                            .filter(|(l, p)| destroy(l, p))
                            .map(|(_, p)| p)
                            .collect();
                        if !reset.is_empty() {
                            tracing::info!(
                                epoch,
                                "reset stuck connection(s) to {reset:?} ({:?} after the leader change, the master at {addr} answers): mfsmount reconnects at once",
                                start.elapsed()
                            );
                        }
                    }
                    return;
                }
                std::thread::sleep(STEP);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot watch the mount's connections after the leader change: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_retransmitting_connections() {
        assert!(is_stuck(
            "\t cubic wscale:7,7 rto:1600 backoff:3 rtt:0.05/0.025 unacked:1 retrans:1/4"
        ));
        assert!(is_stuck("\t cubic rto:408 retrans:1/1 unacked:1"));
        assert!(!is_stuck(
            "\t cubic wscale:7,7 rto:204 rtt:0.04/0.02 ato:40 mss:1448 bytes_acked:120 retrans:0/2"
        ));
        assert!(!is_stuck("\t cubic rto:204 rtt:0.1/0.05"));
    }
}
