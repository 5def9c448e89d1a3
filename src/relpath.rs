//! Paths relative to a root, every component checked. A leaf module: the rack file checks its
//! `[provisioner] root` with [`RelPath::parse`], and the provisioner expands and uses these paths;
//! the rack file checks its absolute host paths with [`check_host_path`], and first boot places
//! them under the root it prepares with [`under_root`]; neither side depends on the other for it.
//! Pure: no filesystem access.

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// Longest component (Linux `NAME_MAX`).
pub const MAX_COMPONENT: usize = 255;
/// Longest relative path accepted (well under `PATH_MAX` once the mount path is prefixed).
pub const MAX_PATH: usize = 1024;

/// A path relative to the provisioner's root whose every component passed [`check_component`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelPath(Vec<String>);

impl RelPath {
    /// Parses a stored relative path (`a/b/c`), checking it as the provisioner's pattern expansion would have.
    pub fn parse(s: &str) -> Result<RelPath, PathError> {
        if s.is_empty() {
            return Err(PathError::Empty);
        }
        if s.starts_with('/') {
            return Err(PathError::Absolute(s.to_string()));
        }
        if s.len() > MAX_PATH {
            return Err(PathError::TooLong(s.len()));
        }
        let parts = s
            .split('/')
            .map(|c| check_component(c).map(|()| c.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RelPath(parts))
    }

    /// A path from components the caller has already passed through [`check_component`].
    pub(crate) fn from_checked(components: Vec<String>) -> RelPath {
        RelPath(components)
    }

    pub fn components(&self) -> &[String] {
        &self.0
    }

    /// The last component (the volume directory's own name).
    pub fn leaf(&self) -> &str {
        self.0.last().map_or("", String::as_str)
    }

    /// `root/a/b/c`.
    pub fn under(&self, root: &Path) -> PathBuf {
        let mut p = root.to_path_buf();
        for c in &self.0 {
            p.push(c);
        }
        p
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join("/"))
    }
}

/// Why a pattern or a value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path pattern is empty")]
    Empty,
    #[error("`{0}` is absolute; pathPattern is relative to the provisioner's root")]
    Absolute(String),
    #[error("empty path component (`//` or a trailing `/`) in `{0}`")]
    EmptyComponent(String),
    #[error("path component `{0}` starts with `.` (`.`, `..` and hidden names are refused)")]
    Dot(String),
    #[error("path component {0:?} contains `/`, NUL or a control character")]
    BadChar(String),
    #[error("path component of {0} bytes is longer than {MAX_COMPONENT}")]
    ComponentTooLong(usize),
    #[error("the path is {0} bytes, longer than {MAX_PATH}")]
    TooLong(usize),
    #[error("unterminated `${{` in pathPattern `{0}`")]
    Unterminated(String),
    #[error(
        "unknown variable `${{{0}}}` in pathPattern (known: namespace, pvc, pvc.uid, pv, annotations.KEY, labels.KEY)"
    )]
    UnknownVariable(String),
    #[error("pathPattern uses `${{{0}}}` but the claim has no such annotation or label")]
    Missing(String),
    #[error(
        "`${{{0}}}` is empty for this claim: an empty value would let claims share a directory"
    )]
    EmptyValue(String),
    #[error("pathPattern `{pattern}` cannot give every claim a directory of its own: {why}")]
    NotUnique { pattern: String, why: String },
}

/// Checks one final path component.
pub fn check_component(c: &str) -> Result<(), PathError> {
    if c.is_empty() {
        return Err(PathError::EmptyComponent(c.to_string()));
    }
    if c.len() > MAX_COMPONENT {
        return Err(PathError::ComponentTooLong(c.len()));
    }
    if c.starts_with('.') {
        return Err(PathError::Dot(c.to_string()));
    }
    if c.chars().any(|ch| ch == '/' || ch.is_control()) {
        return Err(PathError::BadChar(c.to_string()));
    }
    Ok(())
}

/// Why an absolute host path from the rack file (`state_dir`, `chunk_dirs`, ...) was refused.
/// The messages do not repeat the path: the caller names it (shortened if need be).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostPathError {
    #[error("is not an absolute path (it must start with `/`)")]
    NotAbsolute,
    #[error("has a `..` component; write the path without it")]
    ParentDir,
    #[error("contains a control character")]
    ControlChar,
}

/// Checks a host path: absolute, no `..` component, no control character. `.` components and
/// repeated `/` are harmless and allowed.
pub fn check_host_path(p: &Path) -> Result<(), HostPathError> {
    if !p.is_absolute() {
        return Err(HostPathError::NotAbsolute);
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(HostPathError::ParentDir);
    }
    if p.to_string_lossy().chars().any(char::is_control) {
        return Err(HostPathError::ControlChar);
    }
    Ok(())
}

/// `abs` (a host path passing [`check_host_path`]) placed under `root`: `/etc/x` under `/mnt`
/// is `/mnt/etc/x`. Lexical only: the caller must not follow symbolic links below `root`.
pub fn under_root(root: &Path, abs: &Path) -> Result<PathBuf, HostPathError> {
    check_host_path(abs)?;
    let mut p = root.to_path_buf();
    for c in abs.components() {
        if let Component::Normal(part) = c {
            p.push(part);
        }
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn host_paths_under_a_root() {
        let root = Path::new("/mnt/img");
        assert_eq!(
            under_root(root, Path::new("/etc//./x")),
            Ok(PathBuf::from("/mnt/img/etc/x"))
        );
        assert_eq!(
            under_root(root, Path::new("/../../x")),
            Err(HostPathError::ParentDir)
        );
        assert_eq!(
            under_root(root, Path::new("etc/x")),
            Err(HostPathError::NotAbsolute)
        );
        assert_eq!(
            check_host_path(Path::new("/a\nb")),
            Err(HostPathError::ControlChar)
        );
    }

    proptest! {
        /// Whatever the rack file says, an accepted path stays under the root.
        #[test]
        fn an_accepted_path_never_leaves_the_root(parts in proptest::collection::vec(
            prop_oneof![Just("..".to_string()), Just(".".to_string()), Just(String::new()), "[a-z./]{1,6}"],
            0..8,
        ), leading_slash in any::<bool>()) {
            let text = format!("{}{}", if leading_slash { "/" } else { "" }, parts.join("/"));
            let root = Path::new("/srv/root");
            if let Ok(p) = under_root(root, Path::new(&text)) {
                prop_assert!(p.starts_with(root));
                prop_assert!(p.components().all(|c| c != Component::ParentDir));
                prop_assert!(!text.split('/').any(|c| c == ".."));
            }
        }
    }
}
