//! MooseFS metadata on this host's disk: the newest change the changelogs hold, where replaying
//! this node's own metadata would end, and `mfsmaster restore`.

use std::path::Path;
use std::time::Duration;

use crate::host::mfs;

/// The change versions of every changelog in `dir` (each file's last run).
fn changelog_runs(dir: &Path) -> std::io::Result<Vec<Vec<u64>>> {
    Ok(std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(mfs::changelog_name))
        .filter_map(|e| mfs::changelog_versions(&e.path()).ok())
        .collect())
}

/// The newest change any changelog in `dir` holds.
pub(super) fn newest_change(dir: &Path) -> Option<u64> {
    changelog_runs(dir)
        .ok()?
        .iter()
        .filter_map(|v| v.last().copied())
        .max()
}

/// The last change `mfsmaster -a` would reach from `dir`'s own metadata file (`file_version`)
/// and changelogs.
pub(super) fn own_replay_end(dir: &Path, file_version: u64) -> Result<u64, String> {
    let logs = changelog_runs(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let (next, _) = mfs::replay_end(file_version, &logs).map_err(|e| e.to_string())?;
    Ok(next.saturating_sub(1))
}

/// `mfsmaster -c CONFIG restore`: replays the data directory's metadata and changelogs into a
/// new `metadata.mfs` and exits. Output is appended to `log`. Bounded: killed after 5 minutes
/// (a Pi replays about a million files a minute).
pub(super) fn restore_metadata(config: &Path, log: &Path) -> Result<Duration, String> {
    let started = std::time::Instant::now();
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let err = out
        .try_clone()
        .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
    let mut child = std::process::Command::new("mfsmaster")
        .arg("-c")
        .arg(config)
        .arg("restore")
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot run mfsmaster: {e}"))?;
    loop {
        match child.try_wait() {
            Ok(Some(st)) if st.success() => return Ok(started.elapsed()),
            Ok(Some(st)) => {
                return Err(format!(
                    "mfsmaster restore exited with {st} (see {})",
                    log.display()
                ));
            }
            Ok(None) if started.elapsed() > Duration::from_secs(300) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("mfsmaster restore did not finish in 300 s".into());
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for mfsmaster restore: {e}")),
        }
    }
}
