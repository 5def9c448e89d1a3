//! Volume directories on MooseFS, behind [`MooseFs`]. [`MfsRoot`] is the real one: directory
//! operations with `openat`/`mkdirat`/`renameat` relative to an open root, never following a
//! symlink (`O_NOFOLLOW` at every step), and the MooseFS tools (`mfssetquota`, `mfssetgoal`,
//! `mfssetsclass`, `mfssettrashtime`, `mfsmakesnapshot`) for what only MooseFS does.
//!
//! Calls block (a FUSE mount, child processes): the controller runs them on tokio's blocking pool.
//!
//! Layout under the root: volume directories at their [`RelPath`]; released volumes archived in
//! `.archive/<leaf>.<pv>` (a name no pattern can produce: components never start with `.`);
//! `.owners/<pv>` records the path of a volume directory being made until its PV exists.
//!
//! # A directory is never handed to a second claim
//! [`MooseFs::create`] and [`MooseFs::snapshot`] make a *new* directory: one that exists already
//! (kept by `onDelete: retain`, made by hand, another volume's) is refused with
//! [`FsError::Taken`], never reused, re-owned or given a new quota. To stay idempotent (a retry
//! or a new leader repeats a half-done provisioning), the volume's name is written to
//! `.owners/<pv>` *before* the directory is made: an existing directory is accepted only when
//! that record names it. The record is written only while the directory does not exist, so it
//! can never claim a directory made by someone else; it is dropped ([`MooseFs::forget`]) once
//! the PV, which records the path from then on, exists.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, renameat};
use nix::sys::stat::{Mode, fchmod, fstatat, mkdirat};
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, unlinkat};

use super::params::{Quota, QuotaKind, QuotaMode};
use super::path::{RelPath, check_component};
use crate::host::mfs::{MfsVersion, ReleaseTraits};

/// The archive directory under the root.
pub const ARCHIVE: &str = ".archive";
/// Records of volume directories being made, by PV name (see the module docs).
pub const OWNERS: &str = ".owners";

/// Owner and permissions of a new volume directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirSpec {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// MooseFS attributes of a volume directory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attrs {
    pub goal: Option<u8>,
    pub storage_class: Option<String>,
    pub trash_time: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("{op} {path}: {errno}")]
    Sys {
        op: &'static str,
        path: String,
        errno: Errno,
    },
    #[error("{path} is a symlink or not a directory: refused (symlinks are never followed)")]
    NotADirectory { path: String },
    #[error("{path} does not exist")]
    Missing { path: String },
    #[error("{path} already exists")]
    Exists { path: String },
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("`{name}` cannot be a volume's name in {OWNERS}")]
    BadVolumeName { name: String },
    #[error(
        "{path} already exists and was not made for this claim: an existing directory is never given to a new claim (a retained volume or one made by hand: move it away, or use another name)"
    )]
    Taken { path: String },
    #[error("`{cmd}` failed: {detail}")]
    Tool { cmd: String, detail: String },
}

/// What the provisioner does to directories. Paths are relative to the provisioner's root.
pub trait MooseFs: Send + Sync {
    /// The root on this host (under the MooseFS mount).
    fn root(&self) -> &Path;
    /// Makes `rel` the new directory of the volume `owner` (its PV name), with any missing
    /// parents (0755), then sets owner and mode on it. A directory that exists already is
    /// [`FsError::Taken`] unless an earlier attempt for the same `owner` made it (see the
    /// module docs): retries and restarts are idempotent, and no claim inherits another's data.
    fn create(&self, rel: &RelPath, spec: DirSpec, owner: &str) -> Result<(), FsError>;
    /// Whether the directory exists (a symlink there is an error, not a "yes").
    fn exists(&self, rel: &RelPath) -> Result<bool, FsError>;
    fn set_quota(&self, rel: &RelPath, quota: &Quota) -> Result<(), FsError>;
    fn set_attrs(&self, rel: &RelPath, attrs: &Attrs) -> Result<(), FsError>;
    /// A copy-on-write snapshot of `src` at `dst` for the volume `owner` (its parents are
    /// created); `dst` must not exist, unless an earlier attempt for `owner` made it (then
    /// nothing is done), as for [`MooseFs::create`].
    fn snapshot(&self, src: &RelPath, dst: &RelPath, owner: &str) -> Result<(), FsError>;
    /// Drops the record that `owner`'s directory is being made (its PV exists now).
    fn forget(&self, owner: &str) -> Result<(), FsError>;
    /// Moves the directory into the archive as `<leaf>.<tag>`; returns the archive path.
    fn archive(&self, rel: &RelPath, tag: &str) -> Result<PathBuf, FsError>;
    /// The archive path of `rel` archived with `tag`, if that happened already.
    fn archived(&self, rel: &RelPath, tag: &str) -> Result<Option<PathBuf>, FsError>;
    /// Removes an archived directory and everything in it (never following symlinks).
    fn purge_archived(&self, rel: &RelPath, tag: &str) -> Result<(), FsError>;
    /// Removes the directory and everything in it (never following symlinks).
    fn remove(&self, rel: &RelPath) -> Result<(), FsError>;
}

/// The real implementation on a mounted MooseFS.
pub struct MfsRoot {
    root: PathBuf,
    /// Where the `mfs*` tools are (default: found on PATH).
    tools: Option<PathBuf>,
    /// How the client tools' MooseFS release differs (found on first use by `mfsmount -V`).
    release: std::sync::OnceLock<&'static ReleaseTraits>,
}

fn sys(op: &'static str, path: &Path, errno: Errno) -> FsError {
    FsError::Sys {
        op,
        path: path.display().to_string(),
        errno,
    }
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

impl MfsRoot {
    /// The root directory must exist (it is created by the agent under the mount).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        MfsRoot {
            root: root.into(),
            tools: None,
            release: std::sync::OnceLock::new(),
        }
    }

    fn open_root(&self) -> Result<OwnedFd, FsError> {
        nix::fcntl::open(&self.root, DIR_FLAGS, Mode::empty()).map_err(|e| match e {
            Errno::ENOENT => FsError::Missing {
                path: self.root.display().to_string(),
            },
            Errno::ELOOP | Errno::ENOTDIR => FsError::NotADirectory {
                path: self.root.display().to_string(),
            },
            e => sys("open", &self.root, e),
        })
    }

    /// Opens `dir/name` as a directory without following a symlink.
    fn open_at(&self, dir: &OwnedFd, name: &str, shown: &Path) -> Result<OwnedFd, FsError> {
        openat(dir.as_fd(), name, DIR_FLAGS, Mode::empty()).map_err(|e| match e {
            Errno::ENOENT => FsError::Missing {
                path: shown.display().to_string(),
            },
            Errno::ELOOP | Errno::ENOTDIR => FsError::NotADirectory {
                path: shown.display().to_string(),
            },
            e => sys("open", shown, e),
        })
    }

    /// Walks `comps` from the root; with `create`, makes missing directories (mode 0755 for
    /// parents, `leaf_mode` for the last). Returns the fd of the last directory.
    fn walk(&self, comps: &[String], create: Option<u32>) -> Result<(OwnedFd, bool), FsError> {
        let mut fd = self.open_root()?;
        let mut shown = self.root.clone();
        let mut created = false;
        for (i, c) in comps.iter().enumerate() {
            shown.push(c);
            if let Some(leaf_mode) = create {
                let mode = if i + 1 == comps.len() {
                    leaf_mode
                } else {
                    0o755
                };
                match mkdirat(fd.as_fd(), c.as_str(), Mode::from_bits_truncate(mode)) {
                    Ok(()) => created = i + 1 == comps.len(),
                    Err(Errno::EEXIST) => {}
                    Err(e) => return Err(sys("mkdir", &shown, e)),
                }
            }
            fd = self.open_at(&fd, c, &shown)?;
        }
        Ok((fd, created))
    }

    /// Opens the parent of `rel`, creating missing parents (0755).
    fn walk_parents(&self, rel: &RelPath) -> Result<OwnedFd, FsError> {
        let comps = rel.components();
        Ok(self
            .walk(&comps[..comps.len().saturating_sub(1)], Some(0o755))?
            .0)
    }

    fn parent_of(&self, rel: &RelPath) -> Result<OwnedFd, FsError> {
        let comps = rel.components();
        Ok(self.walk(&comps[..comps.len().saturating_sub(1)], None)?.0)
    }

    fn tool(&self, name: &str) -> PathBuf {
        self.tools
            .as_ref()
            .map_or_else(|| PathBuf::from(name), |d| d.join(name))
    }

    /// The release of the client tools (taken as 3.0 when mfsmount is missing: every tool call
    /// then fails with its own clear error anyway).
    fn release(&self) -> &'static ReleaseTraits {
        self.release.get_or_init(|| {
            MfsVersion::client(&self.tool("mfsmount"))
                .map(MfsVersion::traits)
                .unwrap_or(ReleaseTraits::of(3))
        })
    }

    /// `goal` copies of every chunk under `path`. MooseFS 4 names goals as storage classes, of
    /// which a new 4.x filesystem has none called `2`: the class (`goal` copies on any
    /// chunkservers) is made the first time it is missing.
    fn set_goal(&self, goal: u8, path: &str) -> Result<(), FsError> {
        let g = goal.to_string();
        if !self.release().goal_is_storage_class {
            return self.run("mfssetgoal", &["-r", &g, path]).map(|_| ());
        }
        if self.run("mfssetsclass", &["-r", &g, path]).is_ok() {
            return Ok(());
        }
        let root = self.root.to_string_lossy().into_owned();
        // Another provisioner may make it at the same time: only the retry's result counts.
        let _ = self.run("mfscreatesclass", &["-M", &root, "-K", &g, &g]);
        self.run("mfssetsclass", &["-r", &g, path]).map(|_| ())
    }

    fn run(&self, name: &str, args: &[&str]) -> Result<String, FsError> {
        let cmd = format!("{name} {}", args.join(" "));
        let out = Command::new(self.tool(name))
            .args(args)
            .output()
            .map_err(|e| FsError::Tool {
                cmd: cmd.clone(),
                detail: format!("cannot run it: {e} (install moosefs-client)"),
            })?;
        if !out.status.success() {
            let mut detail = String::from_utf8_lossy(&out.stderr).trim().to_string();
            if detail.is_empty() {
                detail = String::from_utf8_lossy(&out.stdout).trim().to_string();
            }
            return Err(FsError::Tool {
                cmd,
                detail: format!("{}: {detail}", out.status),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The checked path of an existing volume directory, as a string for the tools. Walking it
    /// first refuses symlinks anywhere on the way.
    fn checked(&self, rel: &RelPath) -> Result<String, FsError> {
        self.walk(rel.components(), None)?;
        Ok(rel.under(&self.root).to_string_lossy().into_owned())
    }

    /// The path recorded for `owner` in `.owners`, if any (an unreadable record is none).
    fn recorded(&self, owner: &str) -> Result<Option<String>, FsError> {
        check_volume_name(owner)?;
        let dir = match self.walk(&[OWNERS.to_string()], None) {
            Ok((fd, _)) => fd,
            Err(FsError::Missing { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let shown = self.root.join(OWNERS).join(owner);
        let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = match openat(dir.as_fd(), owner, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => return Ok(None),
            Err(e) => return Err(sys("open", &shown, e)),
        };
        let mut text = String::new();
        std::fs::File::from(fd)
            .take(crate::relpath::MAX_PATH as u64 + 1)
            .read_to_string(&mut text)
            .map_err(|source| FsError::Io {
                op: "read",
                path: shown.display().to_string(),
                source,
            })?;
        Ok(Some(text.trim_end().to_string()))
    }

    /// Records that `rel` is being made for `owner`.
    fn record(&self, owner: &str, rel: &RelPath) -> Result<(), FsError> {
        check_volume_name(owner)?;
        let (dir, _) = self.walk(&[OWNERS.to_string()], Some(0o700))?;
        let shown = self.root.join(OWNERS).join(owner);
        let flags = OFlag::O_WRONLY
            | OFlag::O_CREAT
            | OFlag::O_TRUNC
            | OFlag::O_NOFOLLOW
            | OFlag::O_CLOEXEC;
        let fd = openat(dir.as_fd(), owner, flags, Mode::from_bits_truncate(0o600))
            .map_err(|e| sys("create", &shown, e))?;
        let mut f = std::fs::File::from(fd);
        f.write_all(format!("{rel}\n").as_bytes())
            .and_then(|()| f.sync_all())
            .map_err(|source| FsError::Io {
                op: "write",
                path: shown.display().to_string(),
                source,
            })
    }

    /// Brings `rel` into being for `owner` with `make` (which fails with [`FsError::Exists`]
    /// when the directory is there already), under the rule of the module docs.
    fn make_new(
        &self,
        rel: &RelPath,
        owner: &str,
        make: impl FnOnce() -> Result<(), FsError>,
    ) -> Result<(), FsError> {
        let taken = || FsError::Taken {
            path: rel.under(&self.root).display().to_string(),
        };
        if self.recorded(owner)?.as_deref() == Some(rel.to_string().as_str()) {
            if self.exists(rel)? {
                tracing::debug!(%rel, owner, "made by an earlier attempt for the same volume");
                return Ok(());
            }
            return make();
        }
        if self.exists(rel)? {
            return Err(taken());
        }
        self.record(owner, rel)?;
        match make() {
            Err(FsError::Exists { .. }) => {
                // Made by someone else between the look and the mkdir: not ours.
                let _ = self.forget(owner);
                Err(taken())
            }
            r => r,
        }
    }
}

/// A volume's (PV's) name must be a plain file name to name its note in [`OWNERS`].
fn check_volume_name(name: &str) -> Result<(), FsError> {
    check_component(name).map_err(|_| FsError::BadVolumeName {
        name: name.to_string(),
    })
}

/// Removes everything inside the directory `fd` (depth first, no symlink followed).
fn clear_dir(fd: &OwnedFd, shown: &Path, depth: usize) -> Result<(), FsError> {
    if depth > 4096 {
        return Err(sys("remove (too deep)", shown, Errno::ELOOP));
    }
    let dup = nix::unistd::dup(fd.as_fd()).map_err(|e| sys("dup", shown, e))?;
    let mut dir = nix::dir::Dir::from_fd(dup).map_err(|e| sys("opendir", shown, e))?;
    let names: Vec<std::ffi::CString> = dir
        .iter()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect();
    for n in names {
        let p = shown.join(n.to_string_lossy().as_ref());
        let st = fstatat(fd.as_fd(), n.as_c_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| sys("stat", &p, e))?;
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            let sub = openat(fd.as_fd(), n.as_c_str(), DIR_FLAGS, Mode::empty())
                .map_err(|e| sys("open", &p, e))?;
            clear_dir(&sub, &p, depth + 1)?;
            unlinkat(fd.as_fd(), n.as_c_str(), UnlinkatFlags::RemoveDir)
                .map_err(|e| sys("rmdir", &p, e))?;
        } else {
            unlinkat(fd.as_fd(), n.as_c_str(), UnlinkatFlags::NoRemoveDir)
                .map_err(|e| sys("unlink", &p, e))?;
        }
    }
    Ok(())
}

fn quota_args(q: &Quota) -> Vec<String> {
    let hard = q.mode == QuotaMode::Hard;
    let flag = |soft: &str, hard_f: &str| if hard { hard_f } else { soft }.to_string();
    let mut a = Vec::new();
    if let (QuotaMode::Soft, Some(g)) = (q.mode, &q.grace) {
        a.push("-p".into());
        a.push(g.clone());
    }
    a.push(match q.kind {
        QuotaKind::Size => flag("-s", "-S"),
        QuotaKind::Length => flag("-l", "-L"),
        QuotaKind::RealSize => flag("-r", "-R"),
    });
    a.push(q.bytes.to_string());
    if let Some(i) = q.inodes {
        a.push(flag("-i", "-I"));
        a.push(i.to_string());
    }
    a
}

impl MooseFs for MfsRoot {
    fn root(&self) -> &Path {
        &self.root
    }

    fn create(&self, rel: &RelPath, spec: DirSpec, owner: &str) -> Result<(), FsError> {
        let shown = rel.under(&self.root);
        self.make_new(rel, owner, || {
            let parent = self.walk_parents(rel)?;
            match mkdirat(
                parent.as_fd(),
                rel.leaf(),
                Mode::from_bits_truncate(spec.mode & 0o777),
            ) {
                Ok(()) => Ok(()),
                Err(Errno::EEXIST) => Err(FsError::Exists {
                    path: shown.display().to_string(),
                }),
                Err(e) => Err(sys("mkdir", &shown, e)),
            }
        })?;
        let fd = self.walk(rel.components(), None)?.0;
        fchown(
            fd.as_fd(),
            Some(Uid::from_raw(spec.uid)),
            Some(Gid::from_raw(spec.gid)),
        )
        .map_err(|e| sys("chown", &shown, e))?;
        // After chown (which clears set-id bits), and with the full mode (umask does not apply).
        fchmod(fd.as_fd(), Mode::from_bits_truncate(spec.mode))
            .map_err(|e| sys("chmod", &shown, e))?;
        let _ = fd.as_raw_fd();
        Ok(())
    }

    fn exists(&self, rel: &RelPath) -> Result<bool, FsError> {
        match self.walk(rel.components(), None) {
            Ok(_) => Ok(true),
            Err(FsError::Missing { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn set_quota(&self, rel: &RelPath, quota: &Quota) -> Result<(), FsError> {
        let p = self.checked(rel)?;
        if quota.mode == QuotaMode::None {
            return Ok(());
        }
        let args = quota_args(quota);
        let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
        a.push(&p);
        self.run("mfssetquota", &a).map(|_| ())
    }

    fn set_attrs(&self, rel: &RelPath, attrs: &Attrs) -> Result<(), FsError> {
        let p = self.checked(rel)?;
        if let Some(g) = attrs.goal {
            self.set_goal(g, &p)?;
        }
        if let Some(sc) = &attrs.storage_class {
            self.run("mfssetsclass", &["-r", sc, &p])?;
        }
        if let Some(t) = attrs.trash_time {
            self.run("mfssettrashtime", &["-r", &t.to_string(), &p])?;
        }
        Ok(())
    }

    fn snapshot(&self, src: &RelPath, dst: &RelPath, owner: &str) -> Result<(), FsError> {
        let s = self.checked(src)?;
        self.make_new(dst, owner, || {
            self.walk_parents(dst)?;
            if self.exists(dst)? {
                return Err(FsError::Exists {
                    path: dst.under(&self.root).display().to_string(),
                });
            }
            let d = dst.under(&self.root).to_string_lossy().into_owned();
            self.run("mfsmakesnapshot", &[&s, &d]).map(|_| ())
        })
    }

    fn forget(&self, owner: &str) -> Result<(), FsError> {
        if check_component(owner).is_err() {
            return Ok(());
        }
        let dir = match self.walk(&[OWNERS.to_string()], None) {
            Ok((fd, _)) => fd,
            Err(FsError::Missing { .. }) => return Ok(()),
            Err(e) => return Err(e),
        };
        match unlinkat(dir.as_fd(), owner, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(Errno::ENOENT) => Ok(()),
            Err(e) => Err(sys("unlink", &self.root.join(OWNERS).join(owner), e)),
        }
    }

    fn archive(&self, rel: &RelPath, tag: &str) -> Result<PathBuf, FsError> {
        let parent = self.parent_of(rel)?;
        // The leaf must be a real directory (not a symlink planted there).
        self.open_at(&parent, rel.leaf(), &rel.under(&self.root))?;
        let (archive, _) = self.walk(&[ARCHIVE.to_string()], Some(0o700))?;
        let name = format!("{}.{tag}", rel.leaf());
        let to = self.root.join(ARCHIVE).join(&name);
        renameat(parent.as_fd(), rel.leaf(), archive.as_fd(), name.as_str()).map_err(|e| {
            if matches!(e, Errno::EEXIST | Errno::ENOTEMPTY) {
                FsError::Exists {
                    path: to.display().to_string(),
                }
            } else {
                sys("rename", &rel.under(&self.root), e)
            }
        })?;
        Ok(to)
    }

    fn archived(&self, rel: &RelPath, tag: &str) -> Result<Option<PathBuf>, FsError> {
        let name = format!("{}.{tag}", rel.leaf());
        let to = self.root.join(ARCHIVE).join(&name);
        match self.walk(&[ARCHIVE.to_string(), name], None) {
            Ok(_) => Ok(Some(to)),
            Err(FsError::Missing { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn purge_archived(&self, rel: &RelPath, tag: &str) -> Result<(), FsError> {
        let name = format!("{}.{tag}", rel.leaf());
        let parent = self.walk(&[ARCHIVE.to_string()], None)?.0;
        let shown = self.root.join(ARCHIVE).join(&name);
        let fd = match self.open_at(&parent, &name, &shown) {
            Err(FsError::Missing { .. }) => return Ok(()),
            r => r?,
        };
        clear_dir(&fd, &shown, 0)?;
        unlinkat(parent.as_fd(), name.as_str(), UnlinkatFlags::RemoveDir)
            .map_err(|e| sys("rmdir", &shown, e))
    }

    fn remove(&self, rel: &RelPath) -> Result<(), FsError> {
        let parent = self.parent_of(rel)?;
        let shown = rel.under(&self.root);
        let fd = self.open_at(&parent, rel.leaf(), &shown)?;
        clear_dir(&fd, &shown, 0)?;
        unlinkat(parent.as_fd(), rel.leaf(), UnlinkatFlags::RemoveDir)
            .map_err(|e| sys("rmdir", &shown, e))
    }
}

#[cfg(test)]
mod tests {
    //! Directory operations on a plain directory (the `mfs*` tools are tested against a real
    //! mount in tests/provisioner.rs).
    use super::*;
    use std::os::unix::fs::{PermissionsExt, symlink};

    fn rel(s: &str) -> RelPath {
        RelPath::parse(s).unwrap()
    }

    #[test]
    fn creates_nested_dirs_idempotently_with_owner_and_mode() {
        let t = tempfile::tempdir().unwrap();
        let fs = MfsRoot::new(t.path());
        let spec = DirSpec {
            uid: 0,
            gid: 0,
            mode: 0o2750,
        };
        fs.create(&rel("a/b/c"), spec, "pvc-1").unwrap();
        fs.create(&rel("a/b/c"), spec, "pvc-1").unwrap();
        let m = std::fs::metadata(t.path().join("a/b/c")).unwrap();
        assert!(m.is_dir());
        if nix::unistd::geteuid().is_root() {
            assert_eq!(m.permissions().mode() & 0o7777, 0o2750);
        }
        assert!(fs.exists(&rel("a/b/c")).unwrap());
        assert!(!fs.exists(&rel("a/x")).unwrap());
    }

    #[test]
    fn an_existing_directory_is_never_given_to_another_volume() {
        let t = tempfile::tempdir().unwrap();
        let fs = MfsRoot::new(t.path());
        let spec = DirSpec {
            uid: 0,
            gid: 0,
            mode: 0o700,
        };
        // A directory kept from an earlier claim (onDelete: retain), with its data.
        std::fs::create_dir_all(t.path().join("ns/db")).unwrap();
        std::fs::write(t.path().join("ns/db/secret"), b"old data").unwrap();
        let mode = |p: &str| {
            std::fs::metadata(t.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        let before = mode("ns/db");
        assert!(matches!(
            fs.create(&rel("ns/db"), spec, "pvc-new"),
            Err(FsError::Taken { .. })
        ));
        assert_eq!(
            mode("ns/db"),
            before,
            "re-moded a directory it did not make"
        );
        assert!(fs.recorded("pvc-new").unwrap().is_none());
        // The volume that made a directory gets it again (a retry); another does not.
        fs.create(&rel("ns/fresh"), spec, "pvc-a").unwrap();
        fs.create(&rel("ns/fresh"), spec, "pvc-a").unwrap();
        assert!(matches!(
            fs.create(&rel("ns/fresh"), spec, "pvc-b"),
            Err(FsError::Taken { .. })
        ));
        // Once its PV exists the record goes, and the directory is nobody's to take.
        fs.forget("pvc-a").unwrap();
        fs.forget("pvc-a").unwrap();
        assert!(matches!(
            fs.create(&rel("ns/fresh"), spec, "pvc-a"),
            Err(FsError::Taken { .. })
        ));
        // A record for a path that is not there yet (stopped before the mkdir): made now.
        fs.record("pvc-c", &rel("ns/later")).unwrap();
        fs.create(&rel("ns/later"), spec, "pvc-c").unwrap();
        assert!(t.path().join("ns/later").is_dir());
    }

    #[test]
    fn symlinks_are_never_followed() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir(&root).unwrap();
        symlink(outside.path(), root.join("evil")).unwrap();
        let fs = MfsRoot::new(&root);
        let spec = DirSpec {
            uid: 0,
            gid: 0,
            mode: 0o755,
        };
        assert!(matches!(
            fs.create(&rel("evil/x"), spec, "pvc-1"),
            Err(FsError::NotADirectory { .. })
        ));
        assert!(matches!(
            fs.create(&rel("evil"), spec, "pvc-1"),
            Err(FsError::NotADirectory { .. })
        ));
        assert!(fs.exists(&rel("evil")).is_err());
        assert!(fs.remove(&rel("evil")).is_err());
        assert!(fs.archive(&rel("evil"), "pv").is_err());
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        // A root that is itself a symlink is refused too.
        let fs2 = MfsRoot::new(root.join("evil"));
        assert!(fs2.create(&rel("x"), spec, "pvc-1").is_err());
    }

    #[test]
    fn archive_and_remove() {
        let t = tempfile::tempdir().unwrap();
        let fs = MfsRoot::new(t.path());
        let spec = DirSpec {
            uid: 0,
            gid: 0,
            mode: 0o755,
        };
        fs.create(&rel("ns/vol"), spec, "pvc-1").unwrap();
        std::fs::write(t.path().join("ns/vol/data"), b"x").unwrap();
        let to = fs.archive(&rel("ns/vol"), "pvc-1").unwrap();
        assert_eq!(to, t.path().join(".archive/vol.pvc-1"));
        assert!(to.join("data").exists());
        assert!(!fs.exists(&rel("ns/vol")).unwrap());
        assert!(matches!(
            fs.archive(&rel("ns/vol"), "pvc-1"),
            Err(FsError::Missing { .. })
        ));

        fs.create(&rel("gone/sub/deeper"), spec, "pvc-1").unwrap();
        std::fs::write(t.path().join("gone/sub/f"), b"x").unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("keep"), b"x").unwrap();
        symlink(outside.path(), t.path().join("gone/link")).unwrap();
        fs.remove(&rel("gone")).unwrap();
        assert!(!t.path().join("gone").exists());
        assert!(outside.path().join("keep").exists(), "followed a symlink");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Random patterns and claim values, with a symlink to the outside planted in the root:
        /// whatever is created lands strictly under the root, and nothing appears outside it.
        #[test]
        fn random_names_never_create_outside_the_root(
            pattern in "[a-z/.${}]{0,16}|\\$\\{annotations\\.k\\}(/\\$\\{pvc\\})?|evil/\\$\\{pvc\\}",
            value in "\\PC{0,10}|\\.\\.|\\.\\./x|/etc|evil",
            pvc in "[a-z0-9.\\-]{1,10}",
        ) {
            let t = tempfile::tempdir().unwrap();
            let outside = t.path().join("outside");
            let root = t.path().join("root");
            std::fs::create_dir_all(&outside).unwrap();
            std::fs::create_dir_all(&root).unwrap();
            symlink(&outside, root.join("evil")).unwrap();
            let mut a = std::collections::BTreeMap::new();
            a.insert("k".to_string(), value);
            let vars = crate::provisioner::path::Vars {
                namespace: "ns", pvc: &pvc, uid: "u", pv: "pv", annotations: Some(&a), labels: None,
            };
            let fs = MfsRoot::new(&root);
            if let Ok(e) = crate::provisioner::path::expand(&pattern, &vars) {
                let _ = fs.create(&e.path, DirSpec { uid: 0, gid: 0, mode: 0o755 }, "pvc-1");
            }
            proptest::prop_assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
            let mut top: Vec<_> = std::fs::read_dir(t.path()).unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
            top.sort();
            proptest::prop_assert_eq!(top, vec!["outside".to_string(), "root".to_string()]);
        }
    }

    #[test]
    fn quota_arguments() {
        let q = Quota {
            mode: QuotaMode::Hard,
            kind: QuotaKind::Size,
            bytes: 1024,
            inodes: Some(10),
            grace: None,
        };
        assert_eq!(quota_args(&q), ["-S", "1024", "-I", "10"]);
        let q = Quota {
            mode: QuotaMode::Soft,
            kind: QuotaKind::Length,
            grace: Some("7d".into()),
            inodes: None,
            ..q
        };
        assert_eq!(quota_args(&q), ["-p", "7d", "-l", "1024"]);
    }
}
