//! The split-brain monitor of a drill: its samples of which nodes hold the VIP and run an
//! accepting mfsmaster, and what the drill report derives from them (split-brain time,
//! failovers, timeline lines).

use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Mark;
use crate::lab::{faults, net};

/// The mfsmaster port clients and chunkservers connect to.
const MASTER_CLIENT_PORT: u16 = 9421;
/// One look of the monitor at the rack: bit `i` set when node `i` has the VIP configured, or
/// runs an mfsmaster that is not stopped and accepts connections (tried inside its namespace,
/// so a partitioned node is seen too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// Milliseconds after the fault (negative before it).
    pub at_ms: i64,
    pub vip: u32,
    pub masters: u32,
}

/// The mfsmasters of the machine that are not stopped: their network namespace inodes.
fn running_masters() -> Vec<u64> {
    faults::all_pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "mfsmaster")
        })
        .filter(|pid| faults::proc_state(*pid).is_some_and(|s| !matches!(s, 'T' | 't' | 'Z' | 'X')))
        .filter_map(faults::proc_netns)
        .collect()
}

/// Split-brain monitor: every 100 ms, which nodes have the VIP and which run a master that
/// accepts connections. Runs on its own thread, which it moves between the nodes' namespaces.
pub(super) fn monitor(
    names: Vec<String>,
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<(Instant, u32, u32)>>>,
) {
    let nodes: Vec<(Option<std::fs::File>, Option<u64>)> = names
        .iter()
        .map(|n| {
            (
                std::fs::File::open(format!("/run/netns/{}", net::ns(n))).ok(),
                faults::netns_inode(n),
            )
        })
        .collect();
    let vip = std::net::IpAddr::V4(net::vip());
    let tick = Duration::from_millis(100);
    while !stop.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        let masters = running_masters();
        let (mut vips, mut writable) = (0u32, 0u32);
        for (i, (file, inode)) in nodes.iter().enumerate() {
            let Some(f) = file else { continue };
            if nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
                continue;
            }
            let has_vip = nix::ifaddrs::getifaddrs().is_ok_and(|mut a| {
                a.any(|ifa| {
                    ifa.address
                        .and_then(|s| s.as_sockaddr_in().map(|x| std::net::IpAddr::V4(x.ip())))
                        == Some(vip)
                })
            });
            if has_vip {
                vips |= 1 << i;
            }
            if inode.is_some_and(|ino| masters.contains(&ino))
                && TcpStream::connect_timeout(
                    &SocketAddr::from((net::node_addr(i), MASTER_CLIENT_PORT)),
                    Duration::from_millis(50),
                )
                .is_ok()
            {
                writable |= 1 << i;
            }
        }
        if let Ok(mut s) = samples.lock() {
            s.push((t0, vips, writable));
        }
        if let Some(rest) = tick.checked_sub(t0.elapsed()) {
            std::thread::sleep(rest);
        }
    }
}

/// Seconds during which `pred` held, from consecutive samples.
pub(super) fn time_where(samples: &[Sample], pred: impl Fn(&Sample) -> bool) -> f64 {
    samples
        .windows(2)
        .filter(|w| pred(&w[0]))
        .map(|w| (w[1].at_ms - w[0].at_ms) as f64 / 1000.0)
        .sum::<f64>()
        // An empty float sum is -0.0.
        + 0.0
}

/// How many times the master moved: the sole writable master became another node.
pub(super) fn failovers(samples: &[Sample]) -> u32 {
    let mut last: Option<u32> = None;
    let mut moves = 0;
    for s in samples {
        if s.masters.count_ones() == 1 {
            if last.is_some_and(|l| l != s.masters) {
                moves += 1;
            }
            last = Some(s.masters);
        }
    }
    moves
}

/// Timeline lines from the monitor: VIP and writable master appearing or going, per node.
pub(super) fn sample_marks(samples: &[Sample], names: &[String]) -> Vec<Mark> {
    let mut marks = Vec::new();
    for w in samples.windows(2) {
        for (i, n) in names.iter().enumerate() {
            let bit = 1u32 << i;
            for (before, after, what) in [
                (w[0].vip, w[1].vip, "VIP"),
                (w[0].masters, w[1].masters, "mfsmaster accepting"),
            ] {
                if before & bit != after & bit {
                    marks.push(Mark {
                        at_ms: w[1].at_ms,
                        node: n.clone(),
                        what: format!(
                            "{} {what} (monitor)",
                            if after & bit != 0 { "+" } else { "-" }
                        ),
                    });
                }
            }
        }
    }
    marks
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) fn smp(at_ms: i64, vip: u32, masters: u32) -> Sample {
        Sample {
            at_ms,
            vip,
            masters,
        }
    }

    #[test]
    fn split_brain_time_and_failovers_come_from_the_samples() {
        // pi1 (bit 0) serves, is cut off, pi2 (bit 1) takes over; for 200 ms both have the VIP.
        let s = vec![
            smp(-100, 0b01, 0b01),
            smp(0, 0b01, 0b01),
            smp(100, 0b11, 0b01),
            smp(300, 0b10, 0b00),
            smp(400, 0b10, 0b10),
            smp(500, 0b10, 0b10),
        ];
        assert!((time_where(&s, |x| x.vip.count_ones() > 1) - 0.2).abs() < 1e-9);
        assert_eq!(time_where(&s, |x| x.masters.count_ones() > 1), 0.0);
        assert!(time_where(&[], |_| true).is_sign_positive());
        assert_eq!(failovers(&s), 1);
        // Back to pi1, and a moment with no master does not count as a move.
        let mut back = s.clone();
        back.extend([smp(600, 0, 0), smp(700, 0b01, 0b01)]);
        assert_eq!(failovers(&back), 2);
        let names = vec!["pi1".to_string(), "pi2".to_string()];
        let marks = sample_marks(&s, &names);
        assert!(
            marks
                .iter()
                .any(|m| m.node == "pi2" && m.what.starts_with("+ VIP") && m.at_ms == 100)
        );
        assert!(
            marks
                .iter()
                .any(|m| m.node == "pi1" && m.what.starts_with("- mfsmaster") && m.at_ms == 300)
        );
    }
}
