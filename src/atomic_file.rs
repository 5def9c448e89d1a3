//! Replacing a file atomically and durably: the one temp-file-and-rename writer of the crate, so
//! that a reader (a MooseFS daemon reading its config, the kernel reading `/etc/fstab`, the agent
//! reading its keyring or lease state) sees either the old file or the new one, never half of one,
//! and a power cut right after the call keeps the new one.
//!
//! The temporary file is created next to the target (a rename is only atomic within one
//! filesystem) with `O_EXCL` and `O_NOFOLLOW` and never with more permission bits than the final
//! mode (a secret is never readable by others, not even for a moment); it is written, given its
//! owner and mode, fsynced, renamed over the target, and the directory is fsynced.
//!
//! A symbolic link at `path` is replaced by the new file, not written through: callers that want
//! to write through a link resolve it first (`keygen` does).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Writes `contents` to `path` with permission bits `mode` (e.g. `0o600`) through a temporary
/// file and a rename, fsyncing the file and its directory. `owner` sets (uid, gid); without it a
/// regular file being replaced keeps its owner and group (`/etc/shadow` stays `root:shadow`), and
/// a new file belongs to the caller. The directory must exist.
pub fn write_atomic(
    path: &Path,
    contents: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let owner = owner.or_else(|| {
        fs::symlink_metadata(path)
            .ok()
            .filter(fs::Metadata::is_file)
            .map(|m| (m.uid(), m.gid()))
    });
    let (tmp, file) = create_temp(&dir, path, mode)?;
    let written = fill(&file, contents, mode, owner).and_then(|()| {
        drop(file);
        fs::rename(&tmp, path)
    });
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    File::open(&dir)?.sync_all()
}

/// Creates `.NAME.tmp-RANDOM` in `dir`, exclusively, with at most `mode`'s bits (the umask may
/// take some away; [`fill`] sets the exact mode before the file gets its name).
fn create_temp(dir: &Path, path: &Path, mode: u32) -> io::Result<(PathBuf, File)> {
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    let mut last = None;
    for _ in 0..8 {
        let mut suffix = [0u8; 6];
        getrandom::fill(&mut suffix).map_err(|e| io::Error::other(e.to_string()))?;
        let tmp = dir.join(format!(".{name}.tmp-{}", hex::encode(suffix)));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode & 0o777)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::other("no free temporary name")))
}

fn fill(mut file: &File, contents: &[u8], mode: u32, owner: Option<(u32, u32)>) -> io::Result<()> {
    file.write_all(contents)?;
    if let Some((uid, gid)) = owner {
        let meta = file.metadata()?;
        if (meta.uid(), meta.gid()) != (uid, gid) {
            std::os::unix::fs::fchown(file, Some(uid), Some(gid))?;
        }
    }
    // After fchown, which may clear set-id bits.
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.cfg");
        write_atomic(&p, b"one", 0o644, None).unwrap();
        assert_eq!(mode_of(&p), 0o644);
        write_atomic(&p, b"two", 0o600, None).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(mode_of(&p), 0o600);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_planted_temporary_is_neither_followed_nor_reused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let elsewhere = dir.path().join("elsewhere");
        fs::write(&elsewhere, b"untouched").unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.path().join(".f.tmp")).unwrap();
        write_atomic(&p, b"new", 0o600, None).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert_eq!(fs::read(&elsewhere).unwrap(), b"untouched");
    }

    #[test]
    fn a_replaced_file_keeps_its_owner_and_group() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED: needs root to chown");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("shadow");
        fs::write(&p, b"old").unwrap();
        std::os::unix::fs::chown(&p, Some(0), Some(42)).unwrap();
        write_atomic(&p, b"new", 0o640, None).unwrap();
        let m = fs::metadata(&p).unwrap();
        assert_eq!((m.uid(), m.gid(), mode_of(&p)), (0, 42, 0o640));
        write_atomic(&p, b"newer", 0o600, Some((7, 8))).unwrap();
        let m = fs::metadata(&p).unwrap();
        assert_eq!((m.uid(), m.gid()), (7, 8));
    }

    #[test]
    fn a_symlink_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, b"keep").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_atomic(&link, b"new", 0o600, None).unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"keep");
        assert!(fs::symlink_metadata(&link).unwrap().is_file());
    }
}
