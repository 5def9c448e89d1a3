//! The agent's durable state: the highest lease epochs it granted and stood for. Written once per
//! election (never per renewal: SD cards wear out), atomically (temp file, fsync, rename, fsync
//! of the directory), and always before any message that depends on it is sent.

use std::io::Write;
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
        let durable = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| {
                format!("{} is corrupt; it holds the highest lease epochs this node took part in. Move it away only if no other node can hold a lease it granted (stop every agent first)", path.display())
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => LeaseDurable::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
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
        let tmp = self.path.with_extension("json.tmp");
        let text = serde_json::to_string(&d)?;
        {
            let mut f = std::fs::File::create(&tmp)
                .with_context(|| format!("writing {}", tmp.display()))?;
            f.write_all(text.as_bytes())?;
            f.sync_all()
                .with_context(|| format!("fsync {}", tmp.display()))?;
        }
        std::fs::rename(&tmp, &self.path)
            .with_context(|| format!("renaming to {}", self.path.display()))?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .with_context(|| format!("fsync {}", dir.display()))?;
        }
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
}
