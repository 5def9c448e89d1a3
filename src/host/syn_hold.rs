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
//! So a master candidate (unless the rack sets `hold_master_connects = false`) installs one
//! nftables rule in its own network namespace: drop the resets this node sends from the master
//! ports (9419-9421) that answer a SYN which found no listener: the flow's first packet
//! (`ct original packets 1`), answered with RST+ACK (a reset answering a segment that carried an
//! ACK has no ACK of its own). Everything else passes, in particular the reset that tells a peer
//! still sending on an old connection (picked up by conntrack mid-stream, after the VIP moved
//! here) that it is gone: dropping that one kept clients on dead connections until a partition
//! healed. It needs conntrack accounting (`net.netfilter.nf_conntrack_acct = 1`, set here);
//! without it the rule matches nothing.
//!
//! The rule must not outlive the agent: when the whole agent dies (its daemons die with it) while
//! the node stays up, a kept rule would make the clients' first reconnect to the VIP still on this
//! node wait 2 s for nothing instead of failing at once (the lab's kill-leader drill: ~7 s to the
//! first write instead of ~4 s). So the table carries nftables' `owner` flag and is created by an
//! `nft -i` child whose standard input is a pipe from the agent: the kernel deletes an owned table
//! when the netlink socket that created it closes, `nft -i` exits at the end of its input, and the
//! pipe's end closes with the agent however the agent dies (SIGKILL included).

use std::io::Write;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

/// The nftables table the agent owns.
pub const TABLE: &str = "mooseherd";

/// How long `install` waits for the table to appear.
const INSTALL_WAIT: Duration = Duration::from_secs(2);

/// The commands (one per line, as `nft -i` reads them) that create the owned table for `ports`.
pub fn commands(ports: &[u16]) -> String {
    let ports = ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "add table inet {TABLE} {{ flags owner; }}\n\
         add chain inet {TABLE} hold_master_connects {{ type filter hook output priority 0; policy accept; }}\n\
         add rule inet {TABLE} hold_master_connects tcp sport {{ {ports} }} tcp flags & (rst | ack) == rst | ack ct original packets 1 counter drop\n"
    )
}

/// The installed rule: alive as long as this value (and the agent) is.
pub struct SynHold {
    nft: Child,
    /// Kept open: closing it ends `nft -i`, and with it the table.
    stdin: Option<ChildStdin>,
}

impl SynHold {
    /// Installs the rule in this process's network namespace and turns conntrack accounting on.
    /// An error says what failed; the agent runs on without the rule.
    pub fn install(ports: &[u16]) -> Result<Self, String> {
        // A table of this name left by an earlier version (not owned, so it outlived its agent)
        // would make the owned one fail to be created.
        remove();
        let mut nft = Command::new("nft")
            .arg("-i")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run nft (package nftables): {e}"))?;
        let mut stdin = nft.stdin.take();
        let mut hold = Self { nft, stdin: None };
        if let Some(s) = stdin.as_mut() {
            s.write_all(commands(ports).as_bytes())
                .and_then(|()| s.flush())
                .map_err(|e| format!("cannot write to nft -i: {e}"))?;
        }
        hold.stdin = stdin;
        let start = Instant::now();
        loop {
            if installed() {
                break;
            }
            if let Ok(Some(status)) = hold.nft.try_wait() {
                return Err(format!(
                    "nft -i exited ({status}) before the table was created"
                ));
            }
            if start.elapsed() > INSTALL_WAIT {
                return Err(format!(
                    "nft -i did not create table inet {TABLE} within {} s (a kernel without \
                     owned tables, before 5.12?)",
                    INSTALL_WAIT.as_secs()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let acct = "/proc/sys/net/netfilter/nf_conntrack_acct";
        std::fs::write(acct, "1").map_err(|e| {
            format!(
                "cannot turn conntrack accounting on ({acct}: {e}): the rule will match nothing"
            )
        })?;
        Ok(hold)
    }

    /// Whether the `nft -i` child (and so the table) still lives.
    pub fn alive(&mut self) -> bool {
        matches!(self.nft.try_wait(), Ok(None))
    }
}

impl Drop for SynHold {
    fn drop(&mut self) {
        // End of input: nft exits and the kernel deletes the table with its socket.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            if !matches!(self.nft.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.nft.kill();
        let _ = self.nft.wait();
    }
}

/// Whether this namespace has the owned table.
fn installed() -> bool {
    Command::new("nft")
        .args(["list", "table", "inet", TABLE])
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("owner"))
}

/// Removes a table of this name that is not owned by a live agent (one left by an earlier
/// version, or the option was turned off since); silent when there is none or `nft` is missing.
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
    fn the_commands_create_an_owned_table_that_drops_only_first_packet_resets() {
        let r = commands(&[9419, 9420, 9421]);
        assert!(
            r.starts_with("add table inet mooseherd { flags owner; }\n"),
            "{r}"
        );
        assert!(
            r.contains(
                "tcp sport { 9419, 9420, 9421 } tcp flags & (rst | ack) == rst | ack ct original packets 1 counter drop"
            ),
            "{r}"
        );
        assert!(r.contains("hook output"), "{r}");
        assert_eq!(
            r.lines().count(),
            3,
            "nft -i reads one command per line: {r}"
        );
    }

    /// Runs `f` on a thread of its own in a fresh network namespace (gone with the thread and
    /// the processes it started).
    fn in_new_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        if !nix::unistd::geteuid().is_root() {
            return crate::test_support::cannot_run("syn_hold", "needs root (a network namespace)");
        }
        if Command::new("nft").arg("--version").output().is_err() {
            return crate::test_support::cannot_run("syn_hold", "no nft (package nftables)");
        }
        std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare netns");
            f()
        })
        .join()
        .ok()
    }

    #[test]
    fn the_table_lives_exactly_as_long_as_its_holder() {
        let Some((during, after, retaken)) = in_new_netns(|| {
            let hold = SynHold::install(&[9419, 9420, 9421]).expect("install");
            let during = installed();
            drop(hold);
            let after = installed();
            let again = SynHold::install(&[9421]).map(|mut h| h.alive());
            (during, after, again)
        }) else {
            return;
        };
        assert!(during, "the table is there while its holder lives");
        assert!(!after, "the table went with its holder");
        assert_eq!(retaken, Ok(true), "a later start installs it again");
    }
}
