//! The installed MooseFS version, read from a daemon's `-v` output: the agent checks it once
//! and tells 3.0 from 4.x where their behaviour differs.

use std::path::Path;
use std::process::{Command, Stdio};

use super::MfsError;

/// The MooseFS release installed, from `mfsmaster -v` (`version: 3.0.117-1 ; build: 1341`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct MfsVersion {
    pub major: u16,
    pub minor: u16,
    pub patch: u16,
}

impl MfsVersion {
    /// Parses the output of `mfsmaster -v` (any daemon's `-v` prints the same form).
    pub fn parse(output: &str) -> Option<Self> {
        let rest = output.split("version:").nth(1)?.trim_start();
        let token = rest.split(|c: char| c.is_whitespace() || c == '-').next()?;
        let mut it = token.split('.').map(|p| p.parse::<u16>().ok());
        Some(Self {
            major: it.next()??,
            minor: it.next()??,
            patch: it.next().flatten().unwrap_or(0),
        })
    }

    /// Runs `PROGRAM -v` (a few milliseconds).
    pub fn detect(program: &Path) -> Result<Self, MfsError> {
        Self::detect_with(program, "-v")
    }

    /// The release of the MooseFS a node with these roles runs, from the first of its programs
    /// found on `PATH`: `mfsmaster -v` (master candidates), `mfschunkserver -v`, `mfsmount -V`.
    pub fn installed(master: bool, chunkserver: bool, worker: bool) -> Result<Self, MfsError> {
        let programs = [
            (master, "mfsmaster", "-v"),
            (chunkserver, "mfschunkserver", "-v"),
            (worker, "mfsmount", "-V"),
        ];
        let mut first_err = None;
        for (_, program, flag) in programs.into_iter().filter(|(on, ..)| *on) {
            match Self::detect_with(Path::new(program), flag) {
                Ok(v) => return Ok(v),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.unwrap_or(MfsError::Version {
            program: "(no MooseFS role)".into(),
            output: String::new(),
        }))
    }

    /// The release of the MooseFS client tools at `mfsmount` (`mfsmount -V`).
    pub fn client(mfsmount: &Path) -> Result<Self, MfsError> {
        Self::detect_with(mfsmount, "-V")
    }

    /// As the core gossips it.
    pub fn code(self) -> crate::core::membership::MooseFsVersion {
        crate::core::membership::MooseFsVersion::new(self.major, self.minor, self.patch)
    }

    fn detect_with(program: &Path, flag: &str) -> Result<Self, MfsError> {
        let out = Command::new(program)
            .arg(flag)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| MfsError::Spawn {
                program: program.display().to_string(),
                cause: source,
            })?;
        // mfsmount -V prints its version on stderr, the daemons on stdout.
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        Self::parse(&text).ok_or(MfsError::Version {
            program: program.display().to_string(),
            output: text,
        })
    }

    /// MooseFS 4.x (upstream packages) rather than 3.0 (Debian's).
    pub fn is_4x(self) -> bool {
        self.major >= 4
    }

    /// How this release differs where mooseherd drives it.
    pub fn traits(self) -> &'static ReleaseTraits {
        ReleaseTraits::of(self.major)
    }
}

/// Where MooseFS releases differ on the paths mooseherd drives: the one place the code asks.
/// Measured on 3.0.117 (Debian 12) and 4.57.5 / 4.58.1 (built by `scripts/moosefs.sh`) in the
/// lab; everything not listed here (daemon flags, config keys, ports 9419-9422, the lock file,
/// metadata and changelog formats, `mfsmaster -a` replaying an appended `UNLOCK`, the metalogger
/// takeover and `mfsmaster restore`, `mfssetquota`, `mfsmakesnapshot`, `mfssettrashtime`, the
/// client's reconnect timing) behaves the same.
///
/// A difference nothing here acts on, for whoever reads failover figures: a new master answers
/// "try again" to writes to chunks below their goal for its first 10 s on 3.0 (`starttime+10` in
/// chunks.c) and 5 s on 4.x (`main_start_time()+5`), so a write whose chunk lost a copy with the
/// old master's node waits that long after the new master starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReleaseTraits {
    /// `mfssetgoal N` is `mfssetsclass N`: storage class `N` must exist first. A 4.x filesystem
    /// starts with classes `2CP 3CP EC4+1 EC8+1` only (one started under 3.0 keeps `1`..`9`).
    pub goal_is_storage_class: bool,
}

impl ReleaseTraits {
    const V3: ReleaseTraits = ReleaseTraits {
        goal_is_storage_class: false,
    };
    const V4: ReleaseTraits = ReleaseTraits {
        goal_is_storage_class: true,
    };

    /// The row of major release `major` (anything before 4 is treated as 3.0, anything later
    /// as 4.x).
    pub fn of(major: u16) -> &'static ReleaseTraits {
        if major >= 4 { &Self::V4 } else { &Self::V3 }
    }
}
