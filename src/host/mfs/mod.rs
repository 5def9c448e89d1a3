//! MooseFS daemons as the agent's host thread drives them: configuration files written from
//! explicit fields, `mfsmaster` / `mfschunkserver` / `mfsmetalogger` run in the foreground as
//! supervised children, readiness probed over TCP, stops by the child's own PID with a deadline,
//! and the metalogger takeover that turns a standby's metalogger files into a master data
//! directory. Every call returns quickly (spawn, signal, one short TCP probe) except
//! [`Daemon::stop`], which blocks up to the deadline it is given, and [`metalogger_takeover`],
//! which copies the metalogger's files once per promotion.
//!
//! # MooseFS 3.0 and 4.x
//! Checked against the upstream sources of 3.0.117 and 4.59.2, and run on 3.0.117 and 4.57.5 /
//! 4.58.1 (the lab's `--moosefs 4`); where they differ, [`ReleaseTraits`] says so:
//! - Flags `-c CFG`, `-f` (foreground), `-a` (recover from changelogs), `-t`, `-x`, `-i`, `-u`,
//!   `-n` and the `start` action are the same. `-d` is NOT: in 3.0 it is a deprecated alias of
//!   `-f`, in 4.x it allows `DANGEROUS_*` options. This module never passes `-d`. 4.x adds `-e`
//!   (Pro only). Always use the `start` action: `restart` (the default action when none is
//!   given) and `stop` SIGTERM whatever PID the lock file names, which on a shared data
//!   directory can be another node's master.
//! - The lock is an `fcntl` lock on `DATA_PATH/.mfsmaster.lock` in both; a second `start` exits
//!   with status 1 and prints `can't start: lockfile is already locked by another process` in
//!   both (4.x also logs it to syslog). [`StartFailure::LockHeld`] detects it.
//! - Metadata files have the same names and format in both: `metadata.mfs` (clean stop),
//!   `metadata.mfs.back[.N]`, `changelog.N.mfs`, header `MFSM 2.0` + version (u64 BE) + metaid
//!   (u64 BE), trailer `[MFS EOF MARKER]`; a new filesystem is the 8 bytes `MFSM NEW` (both ship
//!   it as `/var/lib/mfs/metadata.mfs.empty`). The metalogger keeps `metadata_ml.mfs.back[.N]`,
//!   `changelog_ml.N.mfs` and `changelog_ml_back.{0,1}.mfs` in both, and `mfsmaster -a` reads
//!   every file named `metadata*` and all three changelog name patterns in both, so a takeover
//!   keeps the metalogger's names.
//! - 4.x refuses a start WITHOUT `-a` when `metadata_ml.mfs.back` or `metadata.mfs.back` in the
//!   data directory is newer than `metadata.mfs` (or has another metaid), or when `metadata.mfs`
//!   is `MFSM NEW` while a backup exists; 3.0 only checks `metadata.mfs.back`. After a takeover
//!   the agent starts with `-a` anyway (the plan asks `recover` for every non-DRBD backend).
//! - Config keys written here exist with the same meaning in both. 4.x warns when a key is
//!   defined twice (each is written once), drops `LIMIT_GLIBC_MALLOC_ARENAS` (not written), and
//!   deprecates `mingoal/maxgoal` in exports (not written). `CHUNKS_LOOP_MIN_TIME` is clamped to
//!   at least 60 s by both.
//!
//! # Measured here (3.0.117, 2 cores, namespaces; `cargo test --lib host::mfs -- --nocapture`)
//! Master start on an empty filesystem ~0.1 s, `-a` after kill -9 ~0.2 s (up to 1.7 s while
//! other tests start masters on the same 2 cores); clean stop (SIGTERM to exit) 2.3-3.0 s.
//! After a new master is ready, clients wait for mfsmount's fixed 2 s reconnect loop and for
//! chunkservers to re-register (`MASTER_RECONNECTION_DELAY`, default 5 s: set to 1 here, which
//! brought the first read after `-a` from 11.8 s to 1.8 s).

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the Debian/upstream packages install as a new, empty filesystem.
pub const EMPTY_METADATA_PATH: &str = "/var/lib/mfs/metadata.mfs.empty";
/// The content of that file in 3.0 and 4.x alike: written directly when the file is absent.
pub const EMPTY_METADATA: &[u8; 8] = b"MFSM NEW";
/// The master's lock file inside `DATA_PATH` (3.0 and 4.x).
pub const MASTER_LOCK_FILE: &str = ".mfsmaster.lock";
/// The metalogger's newest metadata file.
pub const METALOGGER_METADATA: &str = "metadata_ml.mfs.back";
/// Where [`metalogger_takeover`] moves the data directory's previous metadata files.
pub const PRE_TAKEOVER_DIR: &str = "pre-takeover";

const EOF_MARKER: &[u8; 16] = b"[MFS EOF MARKER]";
/// mfsmaster's merger treats an id jump of this size or more inside one file as garbage.
const MAX_ID_HOLE: u64 = 10_000;
/// How much of a daemon's log a failure diagnosis reads (from its end).
const LOG_TAIL: u64 = 64 * 1024;
/// How long a SIGKILLed daemon is waited for. One blocked in the kernel (IO that DRBD froze, a
/// dead FUSE mount) outlives SIGKILL; it is left to be reaped later.
const KILL_REAP: Duration = Duration::from_secs(2);

/// Errors of the MooseFS drivers.
#[derive(Debug, thiserror::Error)]
pub enum MfsError {
    #[error("{what} {path}: {cause}")]
    Io {
        what: &'static str,
        path: PathBuf,
        cause: io::Error,
    },
    #[error("cannot run {program}: {cause}")]
    Spawn { program: String, cause: io::Error },
    #[error("unrecognised version output from {program}: {output:?}")]
    Version { program: String, output: String },
    #[error("config value for {key} contains a line break or is empty")]
    BadConfigValue { key: String },
    #[error("{path}: not usable MooseFS metadata ({reason})")]
    BadMetadata { path: PathBuf, reason: &'static str },
    #[error(
        "metalogger metadata has metaid {metalogger:016X} but the data directory holds metaid \
         {data:016X}: another filesystem"
    )]
    MetaIdMismatch { data: u64, metalogger: u64 },
    #[error(
        "changelogs have a hole: metadata file at version {file_version}, change {missing} is \
         missing, next change found is {next}"
    )]
    ChangelogGap {
        file_version: u64,
        missing: u64,
        next: u64,
    },
    #[error("signal to pid {pid}: {cause}")]
    Signal { pid: u32, cause: nix::Error },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> MfsError + 'a {
    move |source| MfsError::Io {
        what,
        path: path.to_owned(),
        cause: source,
    }
}

mod config;
mod daemon;
mod metadata;
mod version;

pub use config::*;
pub use daemon::*;
pub use metadata::*;
pub use version::*;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod lab_tests;
