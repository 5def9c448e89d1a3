//! Replacing a file atomically: the one temp-file-and-rename writer of the crate, so that a
//! reader (a MooseFS daemon reading its config, the kernel reading `/etc/fstab`, the agent
//! reading the simulated button) sees either the old file or the new one, never half of one.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The temporary file `write_atomic` writes before renaming it over `path`: `.NAME.tmp` in the
/// same directory (a rename is only atomic within one filesystem).
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Writes `contents` to `path` through a temporary file and a rename. With `mode`, the file has
/// those permission bits before it appears under its name. The directory must exist. No fsync:
/// callers that need the file to survive a power cut sync it and its directory themselves.
pub fn write_atomic(path: &Path, contents: &[u8], mode: Option<u32>) -> io::Result<()> {
    let tmp = temp_path(path);
    fs::write(&tmp, contents)?;
    if let Some(mode) = mode {
        fs::set_permissions(&tmp, fs::Permissions::from_mode(mode))?;
    }
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.cfg");
        write_atomic(&p, b"one", None).unwrap();
        write_atomic(&p, b"two", Some(0o600)).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(!temp_path(&p).exists());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
