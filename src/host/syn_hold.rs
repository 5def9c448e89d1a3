//! Holding clients' connects while this node's mfsmaster restarts.
//!
//! When mfsmaster dies, its clients see the connection close and reconnect at once. With nobody
//! listening the kernel answers their SYN with a reset, the connect fails, and mfsmount sleeps
//! 2 s before it tries again; its pending request retries fall at 1.8 s and 3.0 s, so a crashed
//! master that the agent restarts within a second still costs its clients ~3 s. If the reset is
//! never sent, the client's connect waits instead (mfsmount gives it 2 s), the kernel resends the
//! SYN after 1 s, and a master that listens again by then accepts it: the client is back ~1 s
//! after the crash.
//!
//! So a master candidate of a rack with `hold_master_connects = true` installs one nftables rule in its own network namespace: drop the
//! resets this node sends from the master ports (9419-9421) that answer a SYN which found no
//! listener: the flow's first packet (`ct original packets 1`), answered with RST+ACK (a reset
//! answering a segment that carried an ACK has no ACK of its own). Everything else passes, in
//! particular the reset that tells a peer still sending on an old connection (picked up by
//! conntrack mid-stream, after the VIP moved here) that it is gone: dropping that one kept
//! clients on dead connections until a partition healed. It needs conntrack accounting
//! (`net.netfilter.nf_conntrack_acct = 1`, set here); without it the rule matches nothing. The
//! cost: while this node runs no master, a client that connects here waits for its connect
//! timeout instead of being refused, which only matters to a client that still sends to this
//! node although the VIP moved away (its retried SYN then reaches the new owner of the VIP), and
//! when the whole agent dies (its daemons die with it) while the node stays up: the rule stays,
//! so the clients' first reconnect waits 2 s for nothing instead of failing at once (the lab's
//! kill-leader drill: ~7 s to the first write instead of ~4 s). Hence off by default.

use std::io::Write;
use std::process::{Command, Stdio};

/// The nftables table the agent owns (replaced whole when installed).
pub const TABLE: &str = "mooseherd";

/// The ruleset for `ports` (`nft -f` input): creates or replaces the table.
pub fn ruleset(ports: &[u16]) -> String {
    let ports = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "table inet {TABLE}\n\
         delete table inet {TABLE}\n\
         table inet {TABLE} {{\n\
         \tchain hold_master_connects {{\n\
         \t\ttype filter hook output priority 0; policy accept;\n\
         \t\ttcp sport {{ {ports} }} tcp flags & (rst | ack) == rst | ack ct original packets 1 counter drop\n\
         \t}}\n\
         }}\n"
    )
}

/// Installs (or replaces) the rule in this process's network namespace and turns conntrack
/// accounting on. An error says what failed; the agent runs on without the rule.
pub fn install(ports: &[u16]) -> Result<(), String> {
    let mut child = Command::new("nft")
        .arg("-f")
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run nft (package nftables): {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(ruleset(ports).as_bytes())
            .map_err(|e| format!("cannot write to nft: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("waiting for nft: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "nft -f failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let acct = "/proc/sys/net/netfilter/nf_conntrack_acct";
    std::fs::write(acct, "1").map_err(|e| {
        format!("cannot turn conntrack accounting on ({acct}: {e}): the rule will match nothing")
    })
}

/// Removes the table if an earlier start installed it (the option was turned off since);
/// silent when there is none or `nft` is missing.
pub fn remove() {
    let _ = Command::new("nft")
        .args(["delete", "table", "inet", TABLE])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ruleset_replaces_the_table_and_drops_only_first_packet_resets() {
        let r = ruleset(&[9419, 9420, 9421]);
        assert!(
            r.starts_with("table inet mooseherd\ndelete table inet mooseherd\n"),
            "{r}"
        );
        assert!(
            r.contains(
                "tcp sport { 9419, 9420, 9421 } tcp flags & (rst | ack) == rst | ack ct original packets 1 counter drop"
            ),
            "{r}"
        );
        assert!(r.contains("hook output"), "{r}");
    }
}
