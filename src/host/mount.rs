//! The MooseFS client mount a node keeps (for the provisioner and local users): `mfsmount` run in
//! the foreground as a supervised child (we keep its PID, see it die, and signal only it),
//! a health check that cannot hang the host thread (`statfs` in a helper thread with a timeout),
//! lazy unmount of a dead FUSE mount, and remount.
//!
//! Why foreground (`-f`): a daemonised mfsmount forks away and we would lose its PID; with `-f`
//! the process we spawned is the FUSE server, so "process gone" is known at once and a stop
//! never signals someone else's mount. `-o mfsdelayedinit` (default on) makes the mount appear
//! at once even when the master is not up yet; mfsmount connects in the background and
//! reconnects by itself after a failover. In a lab, the mount runs in a node's network
//! namespace through `nsenter --net=` (see [`super::mfs::command_in_netns`]), so the mount stays
//! visible in the caller's mount namespace.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant as StdInstant};

use nix::errno::Errno;
use nix::mount::{MntFlags, umount2};

use super::mfs::{Daemon, DaemonSpec, DaemonStatus, MfsError};

/// Errors of the mount driver.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error(transparent)]
    Mfs(#[from] MfsError),
    #[error("create mountpoint {path}: {source}")]
    Mountpoint { path: PathBuf, source: io::Error },
    #[error("{path} is still mounted (unmount it first)")]
    Busy { path: PathBuf },
    #[error("umount {path}: {source}")]
    Umount { path: PathBuf, source: Errno },
}

/// What a health check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountHealth {
    /// Mounted, our mfsmount runs, and the file system answers `statfs`.
    Healthy,
    /// No mount at the mountpoint.
    NotMounted,
    /// Our mfsmount process has exited (the mount, if still listed, is dead).
    ProcessGone,
    /// `ENOTCONN`: "Transport endpoint is not connected" (the FUSE server died).
    Disconnected,
    /// `statfs` did not answer within the timeout (master unreachable, or a hung mount).
    Hung,
    /// `statfs` failed otherwise.
    Failed(String),
}

/// One MooseFS client mount.
#[derive(Debug)]
pub struct MfsMount {
    pub mountpoint: PathBuf,
    /// The master to mount from: the VIP.
    pub master_host: String,
    /// The master's client port (9421).
    pub master_port: u16,
    /// Network namespace file to run mfsmount in (lab); `None` = the agent's own.
    pub netns: Option<PathBuf>,
    /// Pass `-o mfsdelayedinit` (mount at once, connect in the background).
    pub delayed_init: bool,
    /// More `-o` options, verbatim.
    pub options: Vec<String>,
    /// mfsmount's stdout and stderr are appended here.
    pub log: PathBuf,
    process: Option<Daemon>,
    /// Set while a `stat` probe thread is still out (a hung mount): no second one is started.
    probe_busy: Arc<AtomicBool>,
}

impl MfsMount {
    /// A mount of `master_host:master_port` at `mountpoint`, logging beside it
    /// (`MOUNTPOINT.mfsmount.log`).
    pub fn new(mountpoint: impl Into<PathBuf>, master_host: &str, master_port: u16) -> Self {
        let mountpoint: PathBuf = mountpoint.into();
        let mut log = mountpoint.clone().into_os_string();
        log.push(".mfsmount.log");
        Self {
            mountpoint,
            master_host: master_host.into(),
            master_port,
            netns: None,
            delayed_init: true,
            options: Vec::new(),
            log: log.into(),
            process: None,
            probe_busy: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The spec `mount()` runs: `mfsmount MOUNTPOINT -f -H HOST -P PORT [-o mfsdelayedinit]`.
    pub fn spec(&self) -> DaemonSpec {
        let mut args = vec![
            self.mountpoint.clone().into_os_string(),
            "-f".into(),
            "-H".into(),
            self.master_host.clone().into(),
            "-P".into(),
            self.master_port.to_string().into(),
        ];
        let mut opts: Vec<String> = Vec::new();
        if self.delayed_init {
            opts.push("mfsdelayedinit".into());
        }
        opts.extend(self.options.iter().cloned());
        if !opts.is_empty() {
            args.push("-o".into());
            args.push(opts.join(",").into());
        }
        DaemonSpec {
            program: "mfsmount".into(),
            args,
            netns: self.netns.clone(),
            log: self.log.clone(),
            probe: None,
        }
    }

    /// Spawns mfsmount and returns at once (the mount appears within milliseconds; see
    /// [`MfsMount::wait_mounted`]). Refuses when something is mounted there already: a dead
    /// mount must be [`MfsMount::lazy_unmount`]ed first.
    pub fn mount(&mut self) -> Result<(), MountError> {
        if self.is_mounted() {
            return Err(MountError::Busy {
                path: self.mountpoint.clone(),
            });
        }
        std::fs::create_dir_all(&self.mountpoint).map_err(|source| MountError::Mountpoint {
            path: self.mountpoint.clone(),
            source,
        })?;
        if let Some(mut old) = self.process.take() {
            old.kill_now();
        }
        self.process = Some(Daemon::spawn(self.spec())?);
        Ok(())
    }

    /// Polls until the mount is listed, our process exits, or `timeout` passes.
    pub fn wait_mounted(&mut self, timeout: Duration) -> bool {
        let until = StdInstant::now() + timeout;
        loop {
            if self.is_mounted() {
                return true;
            }
            let gone = self
                .process
                .as_mut()
                .is_none_or(|p| p.status() != DaemonStatus::Running);
            if gone || StdInstant::now() >= until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether a FUSE file system is mounted at the mountpoint (from `/proc/self/mountinfo`).
    pub fn is_mounted(&self) -> bool {
        let target = normalise(&self.mountpoint);
        std::fs::read_to_string("/proc/self/mountinfo")
            .map(|m| fuse_mounted_at(&m, &target))
            .unwrap_or(false)
    }

    /// Our mfsmount's PID while it runs.
    pub fn pid(&mut self) -> Option<u32> {
        let p = self.process.as_mut()?;
        (p.status() == DaemonStatus::Running).then(|| p.pid())
    }

    /// Checks the mount without ever blocking longer than `timeout`.
    pub fn health(&mut self, timeout: Duration) -> MountHealth {
        if let Some(p) = self.process.as_mut()
            && p.status() != DaemonStatus::Running
        {
            return MountHealth::ProcessGone;
        }
        if !self.is_mounted() {
            return MountHealth::NotMounted;
        }
        if self.process.is_none() {
            // Mounted by someone else (or left over by a previous agent): not ours to vouch for.
            return MountHealth::ProcessGone;
        }
        match stat_with_timeout(&self.mountpoint, timeout, &self.probe_busy) {
            None => MountHealth::Hung,
            Some(Ok(())) => MountHealth::Healthy,
            Some(Err(e)) if e.raw_os_error() == Some(Errno::ENOTCONN as i32) => {
                MountHealth::Disconnected
            }
            Some(Err(e)) => MountHealth::Failed(e.to_string()),
        }
    }

    /// [`MfsMount::health`] is Healthy.
    pub fn is_healthy(&mut self, timeout: Duration) -> bool {
        self.health(timeout) == MountHealth::Healthy
    }

    /// `umount2(MNT_DETACH)`: detaches the mount even when dead or busy. Returns whether
    /// something was mounted there.
    pub fn lazy_unmount(&mut self) -> Result<bool, MountError> {
        match umount2(&self.mountpoint, MntFlags::MNT_DETACH) {
            Ok(()) => Ok(true),
            Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(false),
            Err(source) => Err(MountError::Umount {
                path: self.mountpoint.clone(),
                source,
            }),
        }
    }

    /// Stops our mfsmount (SIGTERM: FUSE unmounts cleanly; SIGKILL after `deadline`), then
    /// detaches whatever is left.
    pub fn unmount(&mut self, deadline: Duration) -> Result<(), MountError> {
        if let Some(mut p) = self.process.take() {
            p.stop(deadline)?;
        }
        self.lazy_unmount()?;
        Ok(())
    }

    /// Kills our mfsmount if it still runs, detaches the mount, and mounts again.
    pub fn remount(&mut self) -> Result<(), MountError> {
        if let Some(mut p) = self.process.take() {
            p.kill_now();
        }
        self.lazy_unmount()?;
        self.mount()
    }
}

impl Drop for MfsMount {
    fn drop(&mut self) {
        if let Some(mut p) = self.process.take() {
            p.kill_now();
        }
        let _ = self.lazy_unmount();
    }
}

/// `statfs` in a helper thread; `None` on timeout (or while an earlier probe is still stuck: a
/// hung FUSE call can block its thread for minutes, and we never pile up more than one).
fn stat_with_timeout(
    path: &Path,
    timeout: Duration,
    busy: &Arc<AtomicBool>,
) -> Option<io::Result<()>> {
    if busy.swap(true, Ordering::AcqRel) {
        return None;
    }
    let (tx, rx) = mpsc::channel();
    let (path, busy2) = (path.to_owned(), Arc::clone(busy));
    std::thread::spawn(move || {
        // statfs, not stat: the kernel answers stat of the root from its attribute cache for up
        // to a second after the FUSE server died, while statfs always asks mfsmount (which asks
        // the master), so it sees ENOTCONN at once and a lost master as a timeout.
        let r = nix::sys::statfs::statfs(&path)
            .map(drop)
            .map_err(|e| io::Error::from_raw_os_error(e as i32));
        busy2.store(false, Ordering::Release);
        let _ = tx.send(r);
    });
    rx.recv_timeout(timeout).ok()
}

/// An absolute, `..`-free form of `p` without touching the mount itself (canonicalising a dead
/// FUSE mountpoint fails with ENOTCONN): canonicalise the parent, append the name.
fn normalise(p: &Path) -> PathBuf {
    match (p.parent(), p.file_name()) {
        (Some(parent), Some(name)) => parent
            .canonicalize()
            .map(|c| c.join(name))
            .unwrap_or_else(|_| p.to_owned()),
        _ => p.to_owned(),
    }
}

/// Whether `mountinfo` lists a `fuse*` mount at `target` (octal escapes like `\040` decoded).
fn fuse_mounted_at(mountinfo: &str, target: &Path) -> bool {
    mountinfo.lines().any(|line| {
        let mut halves = line.splitn(2, " - ");
        let (Some(left), Some(right)) = (halves.next(), halves.next()) else {
            return false;
        };
        let mp = left.split(' ').nth(4).map(unescape);
        let fstype = right.split(' ').next().unwrap_or("");
        fstype.starts_with("fuse") && mp.as_deref() == Some(target.as_os_str().as_encoded_bytes())
    })
}

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_fuse_mounts_in_mountinfo() {
        let mi = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
                  88 30 0:50 / /tmp/a\\040b rw,relatime - fuse mfs#10.0.0.1:9421 rw,user_id=0\n\
                  89 30 0:51 / /tmp/c rw,relatime - tmpfs tmpfs rw\n";
        assert!(fuse_mounted_at(mi, Path::new("/tmp/a b")));
        assert!(!fuse_mounted_at(mi, Path::new("/tmp/c")));
        assert!(!fuse_mounted_at(mi, Path::new("/tmp/a")));
    }

    #[test]
    fn builds_the_mfsmount_command() {
        let mut m = MfsMount::new("/mnt/mfs", "10.0.0.100", 9421);
        m.options.push("mfscachemode=DIRECT".into());
        let s = m.spec();
        let args: Vec<String> = s.args.iter().map(|a| a.to_string_lossy().into()).collect();
        assert_eq!(
            args,
            [
                "/mnt/mfs",
                "-f",
                "-H",
                "10.0.0.100",
                "-P",
                "9421",
                "-o",
                "mfsdelayedinit,mfscachemode=DIRECT"
            ]
        );
        assert_eq!(s.log, PathBuf::from("/mnt/mfs.mfsmount.log"));
    }

    #[test]
    fn unmounting_nothing_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = MfsMount::new(dir.path().join("mnt"), "10.0.0.1", 9421);
        assert!(!m.is_mounted());
        assert_eq!(
            m.health(Duration::from_millis(100)),
            MountHealth::NotMounted
        );
        if nix::unistd::geteuid().is_root() {
            assert!(!m.lazy_unmount().unwrap());
        }
    }
}
