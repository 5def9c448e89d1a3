//! The faults the drills inject into the lab rack, each with the call that undoes it.
//!
//! - processes of a node (found by their network namespace): signals (kill, stop, continue);
//! - the node's port on the lab switch: detached from the bridge (a silent partition: the link
//!   stays up, nothing passes) or set down (carrier loss, as when a cable is pulled);
//! - packet loss: an nftables table in each node's namespace dropping a share of what leaves
//!   `eth0` (`numgen random`); this kernel has no netem;
//! - CPU starvation: a cgroup v1 `cpu` group with a CFS quota.
//!
//! Every fault is undone by a guard's `Drop` too, so a drill that fails half-way leaves no
//! partition, loss rule or squeezed process behind.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, bail};

use super::net;

/// A process of the lab: PID and command name (`/proc/PID/comm`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    pub comm: String,
}

/// The inode of node `name`'s network namespace (`/run/netns/mhlab-NAME`).
pub fn netns_inode(name: &str) -> Option<u64> {
    std::fs::metadata(format!("/run/netns/{}", net::ns(name)))
        .ok()
        .map(|m| m.ino())
}

/// The network namespace inode of process `pid`.
pub fn proc_netns(pid: u32) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    let s = link.to_string_lossy();
    s.strip_prefix("net:[")?.strip_suffix(']')?.parse().ok()
}

pub use crate::host::sys::all_pids;

/// Whether process `pid` still runs (a zombie has exited: nobody reaps orphans in some
/// containers).
pub fn alive(pid: u32) -> bool {
    proc_state(pid).is_some_and(|s| s != 'Z' && s != 'X')
}

/// Waits until every process in `pids` is gone (at most `limit`).
pub fn wait_dead(pids: &[u32], limit: std::time::Duration) {
    let t0 = std::time::Instant::now();
    while pids.iter().any(|p| alive(*p)) && t0.elapsed() < limit {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Every live process whose network namespace is `inode`.
pub fn procs_in_netns(inode: u64) -> Vec<Proc> {
    all_pids()
        .into_iter()
        .filter(|pid| proc_netns(*pid) == Some(inode))
        .filter(|pid| alive(*pid))
        .filter_map(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            Some(Proc {
                pid,
                comm: comm.trim().to_string(),
            })
        })
        .collect()
}

/// Node `name`'s processes whose command is one of `comms` (all of them when `comms` is empty).
pub fn procs(name: &str, comms: &[&str]) -> Vec<Proc> {
    netns_inode(name)
        .map(procs_in_netns)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| comms.is_empty() || comms.contains(&p.comm.as_str()))
        .collect()
}

/// The state letter of process `pid` (`R`, `S`, `T` stopped, `Z` zombie, ...).
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.chars().next()
}

/// Sends `sig` to every process in `procs`.
pub fn signal(procs: &[Proc], sig: nix::sys::signal::Signal) {
    for p in procs {
        if let Ok(pid) = i32::try_from(p.pid) {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig);
        }
    }
}

/// The switch port of node index `i` (`p{i}` in the switch namespace).
fn port(i: usize) -> String {
    format!("p{i}")
}

/// A silent partition of node `i`: its port leaves the bridge; its link stays up.
pub struct Partition(usize);

impl Partition {
    pub fn start(i: usize) -> anyhow::Result<Self> {
        net::ip(&["-n", net::SWITCH_NS, "link", "set", &port(i), "nomaster"])?;
        Ok(Self(i))
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        let _ = net::ip(&[
            "-n",
            net::SWITCH_NS,
            "link",
            "set",
            &port(self.0),
            "master",
            "br0",
        ]);
    }
}

/// Sets node `i`'s port down (the node sees carrier loss) or up.
pub fn set_link(i: usize, up: bool) -> anyhow::Result<()> {
    net::ip(&[
        "-n",
        net::SWITCH_NS,
        "link",
        "set",
        &port(i),
        if up { "up" } else { "down" },
    ])
}

/// A link that is up again when dropped (the flap drill).
pub struct LinkGuard(pub usize);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        let _ = set_link(self.0, true);
    }
}

/// The nftables table the loss rules live in (one per node namespace).
const LOSS_TABLE: &str = "mooseherd_lab_loss";

/// `percent` % of the packets leaving each node's `eth0` dropped, in every node's namespace.
pub struct Loss(Vec<String>);

impl Loss {
    pub fn start(names: &[String], percent: u8) -> anyhow::Result<Self> {
        if percent > 100 {
            bail!("loss of {percent} %: give 0 to 100");
        }
        let mut guard = Self(Vec::new());
        for n in names {
            let rules = format!(
                "table inet {LOSS_TABLE} {{\n  chain out {{\n    type filter hook output priority 0; policy accept;\n    oifname \"eth0\" numgen random mod 100 < {percent} drop\n  }}\n}}\n"
            );
            nft(&net::ns(n), &rules)
                .with_context(|| format!("adding the loss rule in {}", net::ns(n)))?;
            guard.0.push(n.clone());
        }
        Ok(guard)
    }
}

impl Drop for Loss {
    fn drop(&mut self) {
        for n in &self.0 {
            let _ = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &net::ns(n),
                    "nft",
                    "delete",
                    "table",
                    "inet",
                ])
                .arg(LOSS_TABLE)
                .output();
        }
    }
}

/// Loads nftables `rules` inside namespace `ns`.
fn nft(ns: &str, rules: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running nft (is nftables installed?)")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(rules.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("nft: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// Where cgroup v1's `cpu` controller is mounted (`/sys/fs/cgroup/cpu` or a joint mount).
fn cpu_cgroup_root() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let mut f = l.split_whitespace();
        let (_, point, kind, opts) = (f.next()?, f.next()?, f.next()?, f.next()?);
        (kind == "cgroup" && opts.split(',').any(|o| o == "cpu")).then(|| PathBuf::from(point))
    })
}

/// Processes squeezed to a share of one CPU (cgroup v1 CFS quota); moved back when dropped.
pub struct Starve {
    group: PathBuf,
    parent: PathBuf,
    pids: Vec<u32>,
}

impl Starve {
    /// Moves `procs` (every thread of each) into a group limited to `percent` % of a CPU.
    pub fn start(procs: &[Proc], percent: u32) -> anyhow::Result<Self> {
        let root = cpu_cgroup_root()
            .context("no cgroup v1 cpu controller is mounted (the starve drill needs it)")?;
        let group = root.join(format!("mooseherd-lab-starve-{}", std::process::id()));
        std::fs::create_dir_all(&group).with_context(|| format!("creating {}", group.display()))?;
        let period = 100_000u32;
        std::fs::write(group.join("cpu.cfs_period_us"), period.to_string())?;
        std::fs::write(
            group.join("cpu.cfs_quota_us"),
            (period / 100 * percent.clamp(1, 100)).to_string(),
        )?;
        let mut s = Self {
            group,
            parent: root,
            pids: Vec::new(),
        };
        for p in procs {
            // cgroup.procs moves the whole thread group.
            if std::fs::write(s.group.join("cgroup.procs"), p.pid.to_string()).is_ok() {
                s.pids.push(p.pid);
            }
        }
        Ok(s)
    }
}

impl Drop for Starve {
    fn drop(&mut self) {
        for pid in &self.pids {
            let _ = std::fs::write(self.parent.join("cgroup.procs"), pid.to_string());
        }
        // Any thread left (a process that forked meanwhile) goes back too, then the group goes.
        if let Ok(rest) = std::fs::read_to_string(self.group.join("cgroup.procs")) {
            for pid in rest.split_whitespace() {
                let _ = std::fs::write(self.parent.join("cgroup.procs"), pid);
            }
        }
        let _ = std::fs::remove_dir(&self.group);
    }
}

/// Processes stopped with SIGSTOP; continued when dropped.
pub struct Frozen(pub Vec<Proc>);

impl Frozen {
    pub fn start(procs: Vec<Proc>) -> Self {
        signal(&procs, nix::sys::signal::Signal::SIGSTOP);
        Self(procs)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal(&self.0, nix::sys::signal::Signal::SIGCONT);
    }
}
