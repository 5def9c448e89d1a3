//! A directory tree first boot reads or writes, with every path confined to it: the root file
//! system it prepares (`/` on the Pi, an unpacked image otherwise) and the boot partition it reads.
//!
//! Paths come from the rack file (`/var/lib/mfschunks`) and from first boot itself (`/etc/shadow`);
//! each is placed under the tree with [`crate::relpath::under_root`] (absolute, no `..`), and every
//! component that already exists below the tree's top is checked not to be a symbolic link, so a
//! link in an image (`etc/mooseherd -> /etc`) or on the boot partition
//! (`mooseherd/authorized_keys -> /root/.ssh/id_ed25519`) is refused, never followed out of the
//! tree. The tree's own top is resolved once ([`Tree::new`]: absolute and canonical, so a relative
//! `--root` means the same directory for every step). The checks are lexical walks: first boot
//! runs alone at boot, before anything else could swap a directory for a link in between.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Component, Path, PathBuf};

use crate::bounded_read::{Links, MAX_CONFIG_BYTES, ReadError, read_regular};
use crate::relpath::{HostPathError, under_root};

/// Why a path in the tree was not used. Every message names the path.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    #[error("{}: {cause}", path.display())]
    Top { path: PathBuf, cause: io::Error },
    #[error("{} {reason}", path.display())]
    Outside {
        path: PathBuf,
        reason: HostPathError,
    },
    #[error(
        "{} is a symbolic link; refusing to follow it out of {} (replace it with the real file or directory)",
        path.display(),
        top.display()
    )]
    Symlink { path: PathBuf, top: PathBuf },
    #[error("{} is not a directory", path.display())]
    NotDir { path: PathBuf },
    #[error("{}: {cause}", path.display())]
    Io { path: PathBuf, cause: io::Error },
    #[error("{} {cause}", path.display())]
    Read { path: PathBuf, cause: ReadError },
}

/// A directory tree every path of which stays inside it.
#[derive(Debug, Clone)]
pub struct Tree {
    top: PathBuf,
}

impl Tree {
    /// The tree at `dir`, made absolute and canonical (it must exist and be a directory).
    pub fn new(dir: &Path) -> Result<Tree, TreeError> {
        let top = fs::canonicalize(dir).map_err(|cause| TreeError::Top {
            path: dir.to_path_buf(),
            cause,
        })?;
        if !top.is_dir() {
            return Err(TreeError::NotDir { path: top });
        }
        Ok(Tree { top })
    }

    /// The tree's top directory (absolute, canonical).
    pub fn top(&self) -> &Path {
        &self.top
    }

    /// Whether the tree is the running machine's `/`.
    pub fn is_live(&self) -> bool {
        self.top == Path::new("/")
    }

    /// `abs` inside the tree, after checking that no existing component below the top is a
    /// symbolic link (the last one included). Missing components are fine.
    pub fn path(&self, abs: &Path) -> Result<PathBuf, TreeError> {
        let full = under_root(&self.top, abs).map_err(|reason| TreeError::Outside {
            path: abs.to_path_buf(),
            reason,
        })?;
        let mut at = self.top.clone();
        for c in abs.components() {
            let Component::Normal(part) = c else { continue };
            at.push(part);
            match fs::symlink_metadata(&at) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(TreeError::Symlink {
                        path: at,
                        top: self.top.clone(),
                    });
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(cause) => return Err(TreeError::Io { path: at, cause }),
            }
        }
        Ok(full)
    }

    /// Creates the directory `abs` and its missing parents (new ones with `mode`), refusing
    /// symbolic links and non-directories on the way. Returns the path and whether it created
    /// the last directory.
    pub fn create_dir_all(&self, abs: &Path, mode: u32) -> Result<(PathBuf, bool), TreeError> {
        let full = self.path(abs)?;
        let mut at = self.top.clone();
        let mut created = false;
        for c in abs.components() {
            let Component::Normal(part) = c else { continue };
            at.push(part);
            created = false;
            match fs::symlink_metadata(&at) {
                Ok(m) if m.file_type().is_symlink() => {
                    return Err(TreeError::Symlink {
                        path: at,
                        top: self.top.clone(),
                    });
                }
                Ok(m) if m.is_dir() => {}
                Ok(_) => return Err(TreeError::NotDir { path: at }),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    match fs::DirBuilder::new().mode(mode).create(&at) {
                        Ok(()) => created = true,
                        // Created meanwhile: looked at again on the next run.
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        Err(cause) => return Err(TreeError::Io { path: at, cause }),
                    }
                }
                Err(cause) => return Err(TreeError::Io { path: at, cause }),
            }
        }
        Ok((full, created))
    }

    /// The regular file `abs` (at most 1 MiB, not a link), or `None` if it does not exist.
    pub fn read(&self, abs: &Path) -> Result<Option<Vec<u8>>, TreeError> {
        let path = self.path(abs)?;
        match read_regular(&path, MAX_CONFIG_BYTES, Links::Refuse) {
            Ok((bytes, _)) => Ok(Some(bytes)),
            Err(ReadError::NotFound) => Ok(None),
            Err(cause) => Err(TreeError::Read { path, cause }),
        }
    }

    /// [`Tree::read`] of a UTF-8 text file.
    pub fn read_text(&self, abs: &Path) -> Result<Option<String>, TreeError> {
        match self.read(abs)? {
            None => Ok(None),
            Some(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| TreeError::Io {
                    path: under_root(&self.top, abs).unwrap_or_default(),
                    cause: io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"),
                }),
        }
    }

    /// Writes `contents` with `mode` to `abs` unless it already has both (creating its parent
    /// directories, mode 0755); the file is replaced atomically and keeps its owner and group.
    /// Returns whether it changed.
    pub fn put(&self, abs: &Path, contents: &[u8], mode: u32) -> Result<bool, TreeError> {
        use std::os::unix::fs::PermissionsExt;
        if let Some(parent) = abs.parent() {
            self.create_dir_all(parent, 0o755)?;
        }
        let path = self.path(abs)?;
        let same_contents = self.read(abs)?.is_some_and(|old| old == contents);
        let same_mode =
            fs::symlink_metadata(&path).is_ok_and(|m| m.permissions().mode() & 0o7777 == mode);
        if same_contents && same_mode {
            return Ok(false);
        }
        crate::atomic_file::write_atomic(&path, contents, mode, None)
            .map_err(|cause| TreeError::Io { path, cause })?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_and_links_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("etc/mooseherd")).unwrap();
        let t = Tree::new(dir.path()).unwrap();
        assert!(matches!(
            t.path(Path::new("/../x")),
            Err(TreeError::Outside { .. })
        ));
        let e = t
            .put(Path::new("/etc/mooseherd/keyring"), b"k", 0o600)
            .unwrap_err();
        assert!(matches!(e, TreeError::Symlink { .. }), "{e}");
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        assert!(t.put(Path::new("/etc/other/f"), b"x", 0o644).unwrap());
        assert!(!t.put(Path::new("/etc/other/f"), b"x", 0o644).unwrap());
        let (p, created) = t.create_dir_all(Path::new("/a/b"), 0o755).unwrap();
        assert!(created && p.is_dir());
        assert!(!t.create_dir_all(Path::new("/a/b"), 0o755).unwrap().1);
    }

    #[test]
    fn a_relative_top_is_made_absolute() {
        let t = Tree::new(Path::new(".")).unwrap();
        assert!(t.top().is_absolute());
        assert_eq!(
            t.top(),
            std::env::current_dir().unwrap().canonicalize().unwrap()
        );
    }
}
