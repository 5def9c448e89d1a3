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
//!
//! Killing mfsmount alone can leave its FUSE connection alive: mfsmount checks its own mountpoint
//! with `stat` from a thread of its own, and a SIGKILL while that call waits for an answer leaves
//! the thread in uninterruptible sleep, holding `/dev/fuse` (and so the connection) open, with
//! nobody left to answer. Every later `stat` there (our probe, a pod) hangs for good. So whenever we
//! kill our mfsmount we also abort its connection (`/sys/fs/fuse/connections/N/abort`, N = the
//! mount's device number), and a mount that is still coming up is given time
//! ([`STARTING_GRACE`]) before it counts as failed.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant as StdInstant};

use nix::errno::Errno;
use nix::mount::{MntFlags, umount2};

use super::mfs::{Daemon, DaemonSpec, DaemonStatus, MfsError};
use super::mount_table;

/// Errors of the mount driver.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error(transparent)]
    Mfs(#[from] MfsError),
    #[error("create mountpoint {path}: {cause}")]
    Mountpoint { path: PathBuf, cause: io::Error },
    #[error("{path} is still mounted (unmount it first)")]
    Busy { path: PathBuf },
    #[error("umount {path}: {cause}")]
    Umount { path: PathBuf, cause: Errno },
}

/// How long a started mfsmount may take to show up in the mount table before it counts as failed
/// (milliseconds on a Pi; seconds on a loaded or emulated machine).
pub const STARTING_GRACE: Duration = Duration::from_secs(10);

/// Where the kernel's fusectl file system lists FUSE connections.
const FUSE_CONNECTIONS: &str = "/sys/fs/fuse/connections";

/// What a health check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountHealth {
    /// Mounted, our mfsmount runs, and the file system answers `statfs`.
    Healthy,
    /// Our mfsmount was started less than [`STARTING_GRACE`] ago, runs, and has not mounted yet.
    Starting,
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
    /// When `process` was started.
    started_at: Option<StdInstant>,
    /// The FUSE connection (the mount's device number) of our mount, once it was seen mounted.
    connection: Option<u64>,
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
            started_at: None,
            connection: None,
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
            cause: source,
        })?;
        self.kill_server();
        self.process = Some(Daemon::spawn(self.spec())?);
        self.started_at = Some(StdInstant::now());
        Ok(())
    }

    /// SIGKILLs our mfsmount, if any, and aborts its FUSE connection, so no thread (its own, our
    /// probe's, a pod's) stays blocked on a mount nobody serves any more.
    fn kill_server(&mut self) {
        let Some(mut p) = self.process.take() else {
            return;
        };
        // The mount may have come up since we last looked.
        self.refresh_connection();
        let before = self.connection;
        if let Some(c) = before {
            abort_connection(c);
        }
        p.kill_now();
        // Killed between our look and its mount(2): abort that one too.
        self.refresh_connection();
        if let Some(c) = self.connection
            && Some(c) != before
        {
            abort_connection(c);
        }
        self.connection = None;
        self.started_at = None;
    }

    /// Notes the device number of the FUSE mount at the mountpoint while our mfsmount runs.
    fn refresh_connection(&mut self) {
        if let Some(dev) = self.mounted_device() {
            self.connection = Some(dev);
        }
    }

    /// The device number of the (top) FUSE mount at the mountpoint.
    fn mounted_device(&self) -> Option<u64> {
        let target = normalise(&self.mountpoint);
        std::fs::read_to_string(mount_table::MOUNTINFO)
            .ok()
            .and_then(|m| fuse_mount_at(&m, &target))
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
        self.mounted_device().is_some()
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
        let Some(dev) = self.mounted_device() else {
            let coming_up = self.process.is_some()
                && self
                    .started_at
                    .is_some_and(|t| t.elapsed() < STARTING_GRACE);
            return if coming_up {
                MountHealth::Starting
            } else {
                MountHealth::NotMounted
            };
        };
        if self.process.is_none() {
            // Mounted by someone else (or left over by a previous agent): not ours to vouch for.
            return MountHealth::ProcessGone;
        }
        self.connection = Some(dev);
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
                cause: source,
            }),
        }
    }

    /// Stops our mfsmount (SIGTERM: FUSE unmounts cleanly; SIGKILL after `deadline`), then
    /// detaches whatever is left.
    pub fn unmount(&mut self, deadline: Duration) -> Result<(), MountError> {
        self.refresh_connection();
        if let Some(mut p) = self.process.take() {
            let stopped = p.stop(deadline);
            // SIGKILLed after the deadline, or gone: a connection left over is aborted.
            if let Some(c) = self.connection.take() {
                abort_connection(c);
            }
            stopped?;
        }
        self.started_at = None;
        self.lazy_unmount()?;
        Ok(())
    }

    /// Kills our mfsmount if it still runs (aborting its FUSE connection), detaches the mount,
    /// and mounts again.
    pub fn remount(&mut self) -> Result<(), MountError> {
        self.kill_server();
        self.lazy_unmount()?;
        self.mount()
    }
}

impl Drop for MfsMount {
    fn drop(&mut self) {
        self.kill_server();
        let _ = self.lazy_unmount();
    }
}

/// Aborts FUSE connection `dev` (every request waiting on it fails at once; a no-op when the
/// connection is already gone). Mounts fusectl first where nothing did (systemd normally does).
fn abort_connection(dev: u64) {
    let dir = Path::new(FUSE_CONNECTIONS);
    let listed = |d: &Path| std::fs::read_dir(d).is_ok_and(|mut e| e.next().is_some());
    if !listed(dir) {
        let _ = nix::mount::mount(
            Some("fusectl"),
            dir,
            Some("fusectl"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        );
    }
    let abort = dir.join(dev.to_string()).join("abort");
    match std::fs::write(&abort, b"1") {
        Ok(()) => tracing::info!("aborted the FUSE connection of the killed mfsmount ({dev})"),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(
            "cannot abort FUSE connection {dev} ({}): {e}; threads waiting on the dead mount may hang",
            abort.display()
        ),
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

/// The device number (the kernel's `MAJOR << 20 | MINOR`, which names the FUSE connection) of the
/// last `fuse*` mount `mountinfo` lists at `target`.
fn fuse_mount_at(mountinfo: &str, target: &Path) -> Option<u64> {
    mount_table::parse(mountinfo)
        .into_iter()
        .rev()
        .find(|m| m.fstype.starts_with("fuse") && m.mount_point == target)
        .and_then(|m| m.device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_fuse_mounts_in_mountinfo() {
        let mi = "22 1 0:21 / /proc rw,nosuid - proc proc rw\n\
                  88 30 0:50 / /tmp/a\\040b rw,relatime - fuse mfs#10.0.0.1:9421 rw,user_id=0\n\
                  89 30 0:51 / /tmp/c rw,relatime - tmpfs tmpfs rw\n";
        assert_eq!(fuse_mount_at(mi, Path::new("/tmp/a b")), Some(50));
        assert_eq!(fuse_mount_at(mi, Path::new("/tmp/c")), None);
        assert_eq!(fuse_mount_at(mi, Path::new("/tmp/a")), None);
        // Stacked mounts: the top one (listed last) is the one a path reaches.
        let stacked = "88 30 0:50 / /m rw - fuse mfs#a rw\n90 88 1:7 / /m rw - fuse mfs#b rw\n";
        assert_eq!(fuse_mount_at(stacked, Path::new("/m")), Some((1 << 20) | 7));
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
