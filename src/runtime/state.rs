//! The agent's durable state: the highest lease epochs it granted and stood for. Written once per
//! election (never per renewal: SD cards wear out), atomically and durably
//! ([`crate::atomic_file::write_atomic`]), and always before any message that depends on it is
//! sent. It is read with the bounded reader (a regular file of at most 1 MiB).

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::core::lease::LeaseDurable;

/// Where the durable lease state lives.
pub struct StateFile {
    path: PathBuf,
    last: LeaseDurable,
}

impl StateFile {
    /// Opens (or starts) the state file in `dir`, creating the directory (mode 0700).
    pub fn open(dir: &Path) -> anyhow::Result<(Self, LeaseDurable)> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("creating state directory {}", dir.display()))?;
        let path = dir.join("lease.json");
        use crate::bounded_read::{Links, MAX_CONFIG_BYTES, ReadError, read_regular};
        let durable = match read_regular(&path, MAX_CONFIG_BYTES, Links::Follow) {
            Ok((bytes, _)) => serde_json::from_slice(&bytes).with_context(|| {
                format!("{} is corrupt; it holds the highest lease epochs this node took part in. Move it away only if no other node can hold a lease it granted (stop every agent first)", path.display())
            })?,
            Err(ReadError::NotFound) => LeaseDurable::default(),
            Err(e) => anyhow::bail!("state file {} {e}", path.display()),
        };
        Ok((
            Self {
                path,
                last: durable,
            },
            durable,
        ))
    }

    /// Writes `d` if it changed. Must succeed before anything depending on it is sent.
    pub fn store(&mut self, d: LeaseDurable) -> anyhow::Result<()> {
        if d == self.last {
            return Ok(());
        }
        let text = serde_json::to_string(&d)?;
        crate::atomic_file::write_atomic(&self.path, text.as_bytes(), 0o600, None)
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.last = d;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_a_restart_and_corruption_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut f, d) = StateFile::open(dir.path()).expect("open");
        assert_eq!(d, LeaseDurable::default());
        f.store(LeaseDurable {
            granted: 3,
            stood: 4,
        })
        .expect("store");
        let (_, d) = StateFile::open(dir.path()).expect("reopen");
        assert_eq!(
            d,
            LeaseDurable {
                granted: 3,
                stood: 4
            }
        );
        std::fs::write(dir.path().join("lease.json"), "{garbage").expect("write");
        let err = StateFile::open(dir.path())
            .err()
            .expect("corrupt")
            .to_string();
        assert!(err.contains("lease.json is corrupt"), "{err}");
    }

    #[test]
    fn a_state_file_that_is_no_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("lease.json")).expect("mkdir");
        let err = StateFile::open(dir.path()).err().expect("a directory");
        assert!(
            err.to_string()
                .ends_with("lease.json is a directory, not a regular file"),
            "{err}"
        );
    }
}
