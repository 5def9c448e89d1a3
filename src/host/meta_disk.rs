//! The DRBD metadata disk of a master candidate: the host steps of the `drbd` backend.
//!
//! The plan (`core::plan`) promotes with `ReplicaPrimary` -> `MountMeta` -> `StartMaster` and
//! fences with `StopMaster` -> `UnmountMeta` -> `ReplicaSecondary`; this driver carries out the
//! DRBD and mount steps and reads back what the kernel says (`/proc/drbd` on 8.4, `drbdsetup
//! status --json` on 9), never what it last did: an agent restarted on a node whose DRBD is still
//! primary and mounted sees that and fences.
//!
//! The subtle case is a fenced primary whose IO DRBD froze (`fencing resource-and-stonith`, and
//! mooseherd's fence-peer handler refused because this node no longer holds the lease). Its
//! unmount would wait for that IO forever. The driver then drops the backing disk
//! (`detach --force`) and resumes IO, which fails the frozen writes instead of letting them reach
//! this node's disk: the old primary never writes after it lost the lease. `ReplicaSecondary`
//! re-attaches the disk afterwards; DRBD's after-split-brain policy (`discard-secondary`, see
//! [`super::drbd`]) makes it sync from the new primary.
//!
//! The resource must be up (`drbdadm up`, Debian's `drbd.service`) and its device must carry an
//! ext4 filesystem, made once when the rack is set up (README, "The DRBD metadata disk").

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::mount_table;

use super::drbd::{self, DrbdCommand, DrbdError, DrbdStatus};
use crate::config::rack::{Drbd, DrbdVersion};

/// How long one drbdadm call may take. drbdadm gives each of its drbdsetup calls 5 s (more under
/// emulation); a promotion that waits for the fence-peer handler takes a few seconds.
const COMMAND_DEADLINE: Duration = Duration::from_secs(20);
/// How long an unmount may take before it is reported as failed (it is retried).
const UNMOUNT_DEADLINE: Duration = Duration::from_secs(15);
/// How long an unmount that finds files still open (EBUSY) is retried before it fails (the
/// runtime tries the action again).
const BUSY_DEADLINE: Duration = Duration::from_secs(3);

/// Why a step on the DRBD metadata disk failed.
#[derive(Debug, thiserror::Error)]
pub enum MetaDiskError {
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("`{command}` did not finish within {secs} s (killed)")]
    Timeout { command: String, secs: u64 },
    #[error("cannot run `{command}`: {cause}")]
    Spawn {
        command: String,
        cause: std::io::Error,
    },
    #[error("cannot read {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("DRBD device {device}: {detail}")]
    Device { device: String, detail: String },
    #[error("cannot mount {device} (ext4) on {mountpoint}: {cause}")]
    Mount {
        device: String,
        mountpoint: String,
        cause: nix::Error,
    },
    #[error("cannot unmount {mountpoint}: {detail}")]
    Unmount { mountpoint: String, detail: String },
    #[error(transparent)]
    Drbd(#[from] DrbdError),
}

/// The DRBD resource holding mfsmaster's data directory, mounted at `mountpoint` while this
/// node leads.
#[derive(Debug, Clone)]
pub struct MetaDisk {
    resource: String,
    device: PathBuf,
    version: DrbdVersion,
    mountpoint: PathBuf,
}

impl MetaDisk {
    pub fn new(drbd: &Drbd, mountpoint: &Path) -> Self {
        MetaDisk {
            resource: drbd.resource.clone(),
            device: drbd.device.clone(),
            version: drbd.version,
            mountpoint: mountpoint.to_path_buf(),
        }
    }

    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }

    /// The resource as the kernel sees it now.
    pub fn status(&self) -> Result<DrbdStatus, MetaDiskError> {
        match self.version {
            DrbdVersion::V84 => {
                let text = std::fs::read_to_string("/proc/drbd").map_err(|source| {
                    MetaDiskError::Read {
                        path: "/proc/drbd (is the drbd module loaded?)".into(),
                        cause: source,
                    }
                })?;
                Ok(drbd::parse_proc_drbd(&text, &self.resource, self.minor()?)?)
            }
            DrbdVersion::V9 => {
                let out = self.run(&DrbdCommand::status_json(&self.resource))?;
                Ok(drbd::parse_status(&out)?)
            }
        }
    }

    /// The device's minor number, from its device node.
    fn minor(&self) -> Result<u32, MetaDiskError> {
        let st = nix::sys::stat::stat(&self.device).map_err(|e| MetaDiskError::Device {
            device: self.device.display().to_string(),
            detail: format!("{e} (is the resource up?)"),
        })?;
        u32::try_from(nix::sys::stat::minor(st.st_rdev)).map_err(|_| MetaDiskError::Device {
            device: self.device.display().to_string(),
            detail: "minor number out of range".into(),
        })
    }

    /// Whether the metadata filesystem is mounted at the mount point.
    pub fn mounted(&self) -> Result<bool, MetaDiskError> {
        let text = std::fs::read_to_string(mount_table::MOUNTINFO).map_err(|source| {
            MetaDiskError::Read {
                path: mount_table::MOUNTINFO.into(),
                cause: source,
            }
        })?;
        Ok(is_mount_point(&text, &self.mountpoint))
    }

    /// Makes this node DRBD primary. DRBD refuses while the peer is primary and connected, when
    /// our disk is not UpToDate, or (peer lost) when the fence-peer handler does not allow it.
    pub fn promote(&self) -> Result<(), MetaDiskError> {
        if self.status()?.is_primary() {
            return Ok(());
        }
        let t0 = Instant::now();
        self.run(&DrbdCommand::primary(&self.resource))?;
        tracing::info!("DRBD {} primary in {:?}", self.resource, t0.elapsed());
        Ok(())
    }

    /// Mounts the DRBD device (ext4, journal replayed by the kernel after an unclean stop).
    pub fn mount(&self) -> Result<(), MetaDiskError> {
        if self.mounted()? {
            return Ok(());
        }
        std::fs::create_dir_all(&self.mountpoint).map_err(|source| MetaDiskError::Read {
            path: self.mountpoint.display().to_string(),
            cause: source,
        })?;
        let t0 = Instant::now();
        nix::mount::mount(
            Some(&self.device),
            &self.mountpoint,
            Some("ext4"),
            nix::mount::MsFlags::MS_NOATIME,
            None::<&str>,
        )
        .map_err(|source| MetaDiskError::Mount {
            device: self.device.display().to_string(),
            mountpoint: self.mountpoint.display().to_string(),
            cause: source,
        })?;
        tracing::info!(
            "metadata disk {} mounted on {} in {:?}",
            self.device.display(),
            self.mountpoint.display(),
            t0.elapsed()
        );
        Ok(())
    }

    /// Unmounts the metadata filesystem (mfsmaster is stopped). If DRBD froze IO meanwhile, the
    /// frozen writes are failed rather than written (see the module doc).
    pub fn unmount(&self) -> Result<(), MetaDiskError> {
        if !self.mounted()? {
            return Ok(());
        }
        let t0 = Instant::now();
        let mut done = self.spawn_unmount();
        let mut released = false;
        loop {
            match done.recv_timeout(Duration::from_millis(100)) {
                Ok(Ok(())) => break,
                // Files still open there: typically the metadata writer mfsmaster forked, killed
                // with it but stuck on IO that DRBD froze (released below), or a process that is
                // still exiting. Retried until BUSY_DEADLINE, then named in the error.
                Ok(Err(nix::errno::Errno::EBUSY)) => {
                    if t0.elapsed() > BUSY_DEADLINE {
                        return Err(self.unmount_error(format!(
                            "busy: still open by {}",
                            holders(&self.mountpoint).join(", ")
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                    done = self.spawn_unmount();
                }
                Ok(Err(e)) => return Err(self.unmount_error(e.to_string())),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(self.unmount_error("the unmount thread died".into()));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if !released && self.status().is_ok_and(|s| s.suspended) {
                self.fail_frozen_io()?;
                released = true;
            }
            if t0.elapsed() > UNMOUNT_DEADLINE {
                return Err(self.unmount_error(format!(
                    "still blocked after {} s",
                    UNMOUNT_DEADLINE.as_secs()
                )));
            }
        }
        tracing::info!(
            "metadata disk unmounted from {} in {:?}{}",
            self.mountpoint.display(),
            t0.elapsed(),
            if released {
                " (frozen IO failed, disk detached)"
            } else {
                ""
            }
        );
        Ok(())
    }

    /// umount(2) on its own thread: it can block in the kernel on frozen IO.
    fn spawn_unmount(&self) -> mpsc::Receiver<nix::Result<()>> {
        let (tx, rx) = mpsc::channel();
        let mp = self.mountpoint.clone();
        let spawned = std::thread::Builder::new()
            .name("umount-meta".into())
            .spawn(move || {
                let _ = tx.send(nix::mount::umount2(&mp, nix::mount::MntFlags::empty()));
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the unmount thread: {e}");
        }
        rx
    }

    fn unmount_error(&self, detail: String) -> MetaDiskError {
        MetaDiskError::Unmount {
            mountpoint: self.mountpoint.display().to_string(),
            detail,
        }
    }

    /// This node is fencing and DRBD holds its writes frozen: drop the backing disk, then resume
    /// IO, so the frozen writes fail instead of landing on a disk the new primary no longer
    /// replicates.
    pub fn fail_frozen_io(&self) -> Result<(), MetaDiskError> {
        tracing::warn!(
            "DRBD {}: IO frozen by fencing while this node fences; detaching the disk so the frozen writes fail",
            self.resource
        );
        self.run(&DrbdCommand::detach_force(&self.resource))?;
        self.run(&DrbdCommand::resume_io(&self.resource))?;
        Ok(())
    }

    /// Makes this node DRBD secondary (the metadata is unmounted), and re-attaches a disk that
    /// fencing detached so the replica can be brought current again.
    pub fn demote(&self) -> Result<(), MetaDiskError> {
        let s = self.status()?;
        if s.suspended {
            // Unmounted: nothing on this node can write any more.
            self.run(&DrbdCommand::resume_io(&self.resource))?;
        }
        if s.is_primary() {
            let t0 = Instant::now();
            self.run(&DrbdCommand::secondary(&self.resource))?;
            tracing::info!("DRBD {} secondary in {:?}", self.resource, t0.elapsed());
        }
        if s.disk == drbd::DiskState::Diskless {
            // Best effort: a failure leaves the node secondary and not eligible (Diskless).
            match self.run(&DrbdCommand::adjust(&self.resource)) {
                Ok(_) => tracing::info!("DRBD {}: disk attached again", self.resource),
                Err(e) => {
                    tracing::warn!("DRBD {}: cannot attach the disk again: {e}", self.resource)
                }
            }
        }
        Ok(())
    }

    /// Runs one DRBD command with a deadline; stdout on success.
    fn run(&self, cmd: &DrbdCommand) -> Result<String, MetaDiskError> {
        let mut c = cmd.command();
        c.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        run_with_deadline(c, &cmd.to_string(), COMMAND_DEADLINE)
    }
}

/// The processes with a file, directory or memory map open under `dir` ("PID (name)"), read from
/// /proc: named in the error of an unmount that stays busy.
fn holders(dir: &Path) -> Vec<String> {
    let under = |p: &Path| p.starts_with(dir);
    let mut out = Vec::new();
    for pid in super::sys::all_pids() {
        let base = PathBuf::from(format!("/proc/{pid}"));
        let links = ["cwd", "root"]
            .iter()
            .filter_map(|l| std::fs::read_link(base.join(l)).ok())
            .chain(
                std::fs::read_dir(base.join("fd"))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter_map(|f| std::fs::read_link(f.path()).ok()),
            );
        let maps = std::fs::read_to_string(base.join("maps")).unwrap_or_default();
        let holds = links.into_iter().any(|l| under(&l))
            || maps
                .lines()
                .filter_map(|l| l.split_whitespace().nth(5))
                .any(|p| under(Path::new(p)));
        if holds {
            let comm = std::fs::read_to_string(base.join("comm")).unwrap_or_default();
            out.push(format!("{pid} ({})", comm.trim()));
        }
    }
    if out.is_empty() {
        out.push("no process found (a mount below it, or a kernel user)".into());
    }
    out
}

/// Spawns `c` and waits at most `deadline` (then kills it).
fn run_with_deadline(
    mut c: Command,
    name: &str,
    deadline: Duration,
) -> Result<String, MetaDiskError> {
    let child = c.spawn().map_err(|source| MetaDiskError::Spawn {
        command: name.into(),
        cause: source,
    })?;
    let t0 = Instant::now();
    let mut child = child;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return collect(child, name),
            Ok(None) if t0.elapsed() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) | Err(_) => {
                if let Ok(pid) = i32::try_from(child.id()) {
                    let _ = nix::sys::signal::killpg(
                        nix::unistd::Pid::from_raw(pid),
                        nix::sys::signal::Signal::SIGKILL,
                    );
                }
                let _ = child.kill();
                let _ = child.wait();
                return Err(MetaDiskError::Timeout {
                    command: name.into(),
                    secs: deadline.as_secs(),
                });
            }
        }
    }
}

fn collect(child: Child, name: &str) -> Result<String, MetaDiskError> {
    let out = child
        .wait_with_output()
        .map_err(|source| MetaDiskError::Spawn {
            command: name.into(),
            cause: source,
        })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    Err(MetaDiskError::Command {
        command: name.into(),
        status: out.status.to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
    })
}

/// Whether `/proc/self/mountinfo` text lists `dir` as a mount point.
fn is_mount_point(mountinfo: &str, dir: &Path) -> bool {
    mount_table::is_mount_point(&mount_table::parse(mountinfo), dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
40 22 147:0 / /var/lib/mfs/drbd rw,noatime shared:20 - ext4 /dev/drbd0 rw
41 22 0:44 / /mnt/with\\040space rw - tmpfs tmpfs rw
";

    #[test]
    fn holders_names_the_processes_with_files_open_below_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let me = format!("{} (", std::process::id());
        assert!(!holders(dir.path()).iter().any(|h| h.starts_with(&me)));
        let _f = std::fs::File::create(dir.path().join("open")).unwrap();
        assert!(holders(dir.path()).iter().any(|h| h.starts_with(&me)));
    }

    #[test]
    fn mount_points_are_read_from_mountinfo() {
        assert!(is_mount_point(MOUNTINFO, Path::new("/var/lib/mfs/drbd")));
        assert!(is_mount_point(MOUNTINFO, Path::new("/mnt/with space")));
        assert!(!is_mount_point(MOUNTINFO, Path::new("/var/lib/mfs")));
        assert!(!is_mount_point("garbage\n\n1 2", Path::new("/")));
    }

    #[test]
    fn commands_that_hang_are_killed_and_failures_carry_stderr() {
        let mut sleep = Command::new("sleep");
        sleep.arg("5");
        let e = run_with_deadline(sleep, "sleep 5", Duration::from_millis(100)).unwrap_err();
        assert!(matches!(e, MetaDiskError::Timeout { .. }), "{e}");
        let mut c = Command::new("sh");
        c.args(["-c", "echo 'no such resource' >&2; exit 10"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let e = run_with_deadline(c, "drbdadm primary r", Duration::from_secs(5)).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("drbdadm primary r") && msg.contains("no such resource"),
            "{msg}"
        );
        let e = run_with_deadline(
            Command::new("/nonexistent/drbdadm"),
            "drbdadm up r",
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(matches!(e, MetaDiskError::Spawn { .. }), "{e}");
    }
}
