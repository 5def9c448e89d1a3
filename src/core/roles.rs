//! Role logic that is not the lease itself: who may stand for master (with a reason a person can
//! read in the log), and how fast a supervised daemon (chunkserver, mount, master) is restarted.
//! Pure functions of observations; the lease machine takes the result as its `Eligibility`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Instant;
use super::lease::Eligibility;
use super::membership::MooseFsVersion;

/// Metadata memory mfsmaster needs: ~350 MiB per million files (measured by MooseFS users;
/// measured here), never less than a base for its hash tables.
pub const MIB_PER_MILLION_FILES: u64 = 350;
pub const MASTER_BASE_MIB: u64 = 256;

/// How current this node's copy of the metadata is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaState {
    /// DRBD: disk state UpToDate (synchronous replication: nothing is missing).
    UpToDate,
    /// DRBD resyncing, Inconsistent or Outdated: must not become primary.
    Syncing,
    Outdated,
    /// No disk attached.
    Diskless,
    /// Metalogger / shared directory: this copy has metadata `version` of filesystem `metaid`.
    Version {
        metaid: u64,
        version: u64,
    },
    /// Not known yet.
    Unknown,
}

/// Local health readings that matter for standing as master.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Health {
    /// The firmware reports undervoltage now (get_throttled bit 0).
    pub undervoltage: bool,
    /// The CPU is throttled now (thermal or power; bits 1-3).
    pub throttled: bool,
    pub mem_available_mib: u64,
    /// A person put the node in maintenance (button hold or `mooseherd maintenance on`).
    pub maintenance: bool,
}

/// Memory mfsmaster needs for `files` files.
pub fn master_ram_mib(files: u64) -> u64 {
    (files.saturating_mul(MIB_PER_MILLION_FILES) / 1_000_000).max(MASTER_BASE_MIB)
}

/// Whether this node may stand, and why, given its health, its replica, the newest replica any
/// candidate reported (`newest`: metaid and version, metalogger backends), the number of files,
/// and its MooseFS release beside the newest any master candidate runs (`moosefs`).
pub fn eligibility(
    priority: u8,
    health: &Health,
    replica: ReplicaState,
    newest: Option<(u64, u64)>,
    files: u64,
    moosefs: (MooseFsVersion, MooseFsVersion),
) -> Eligibility {
    let no = |reason: String| Eligibility {
        eligible: false,
        priority,
        reason,
    };
    if health.maintenance {
        return no("maintenance".into());
    }
    if health.undervoltage {
        return no("undervoltage (check the power supply)".into());
    }
    if health.throttled {
        return no("CPU throttled (heat or power)".into());
    }
    // MooseFS reads the metadata of an older major release, never of a newer one: a 3.0 master
    // taking over from 4.x would fail to start (or worse, half-start), so mixed majors never
    // half-work: the older ones stand down until they are upgraded.
    let (own_mfs, newest_mfs) = moosefs;
    if own_mfs.is_known() && newest_mfs.major() > own_mfs.major() {
        return no(format!(
            "MooseFS {own_mfs} here, another master candidate runs {newest_mfs}: a {} master \
             cannot load metadata a {} master wrote (upgrade MooseFS on this node)",
            own_mfs.major(),
            newest_mfs.major()
        ));
    }
    let replica_ok = match replica {
        ReplicaState::UpToDate => "UpToDate".to_string(),
        ReplicaState::Version { metaid, version } => match newest {
            Some((_, v)) if metaid == 0 => {
                return no(format!(
                    "no metadata yet (its metalogger has not downloaded any; the rack has version {v})"
                ));
            }
            None if metaid == 0 => "no metadata anywhere (a new filesystem)".to_string(),
            Some((id, _)) if id != metaid => {
                return no(format!(
                    "metadata belongs to another filesystem (metaid {metaid:x}, rack has {id:x})"
                ));
            }
            Some((_, v)) if v > version => {
                return no(format!("metadata version {version} is behind {v}"));
            }
            _ => format!("metadata version {version}"),
        },
        ReplicaState::Syncing => return no("replica is syncing".into()),
        ReplicaState::Outdated => return no("replica is Outdated".into()),
        ReplicaState::Diskless => return no("no metadata disk".into()),
        ReplicaState::Unknown => return no("replica state not known yet".into()),
    };
    let need = master_ram_mib(files);
    if health.mem_available_mib < need {
        return no(format!(
            "{} MiB available, mfsmaster needs {need} MiB for {files} files",
            health.mem_available_mib
        ));
    }
    Eligibility {
        eligible: true,
        priority,
        reason: format!(
            "{replica_ok}, {:.1} GiB free",
            health.mem_available_mib as f64 / 1024.0
        ),
    }
}

/// Restart back-off for a supervised daemon or mount: 0.5 s doubling to 30 s, forgiven once the
/// daemon stayed up for a minute. A start refused because the old master still holds the lock is
/// just another failure: it is retried, never given up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restarter {
    failures: u32,
    next_start: Instant,
    up_since: Option<Instant>,
}

impl Restarter {
    pub const FIRST: Duration = Duration::from_millis(500);
    pub const MAX: Duration = Duration::from_secs(30);
    pub const FORGIVE_AFTER: Duration = Duration::from_secs(60);

    pub fn new() -> Self {
        Self {
            failures: 0,
            next_start: Instant::ZERO,
            up_since: None,
        }
    }

    /// May it be started now?
    pub fn may_start(&self, now: Instant) -> bool {
        now >= self.next_start
    }

    /// When it may next be started.
    pub fn next_start(&self) -> Instant {
        self.next_start
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// It was seen running (healthy) at `now`.
    pub fn running(&mut self, now: Instant) {
        let since = *self.up_since.get_or_insert(now);
        if now.saturating_since(since) >= Self::FORGIVE_AFTER {
            self.failures = 0;
        }
    }

    /// It exited or failed to start at `now`.
    pub fn failed(&mut self, now: Instant) {
        self.up_since = None;
        let shift = self.failures.min(6);
        let delay = (Self::FIRST * 2u32.pow(shift)).min(Self::MAX);
        self.failures = self.failures.saturating_add(1);
        self.next_start = now + delay;
    }
}

impl Default for Restarter {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOMFS: (MooseFsVersion, MooseFsVersion) =
        (MooseFsVersion::UNKNOWN, MooseFsVersion::UNKNOWN);

    fn healthy() -> Health {
        Health {
            mem_available_mib: 3200,
            ..Health::default()
        }
    }

    #[test]
    fn reasons_name_the_cause() {
        let e = eligibility(100, &healthy(), ReplicaState::UpToDate, None, 0, NOMFS);
        assert!(e.eligible);
        assert_eq!(e.reason, "UpToDate, 3.1 GiB free");
        let e = eligibility(
            100,
            &Health {
                undervoltage: true,
                ..healthy()
            },
            ReplicaState::UpToDate,
            None,
            0,
            NOMFS,
        );
        assert_eq!(
            (e.eligible, e.reason.as_str()),
            (false, "undervoltage (check the power supply)")
        );
        let e = eligibility(
            100,
            &Health {
                mem_available_mib: 300,
                ..healthy()
            },
            ReplicaState::UpToDate,
            None,
            2_000_000,
            NOMFS,
        );
        assert_eq!(
            e.reason,
            "300 MiB available, mfsmaster needs 700 MiB for 2000000 files"
        );
        let e = eligibility(
            100,
            &healthy(),
            ReplicaState::Version {
                metaid: 1,
                version: 10,
            },
            Some((1, 12)),
            0,
            NOMFS,
        );
        assert_eq!(e.reason, "metadata version 10 is behind 12");
        let e = eligibility(
            100,
            &healthy(),
            ReplicaState::Version {
                metaid: 1,
                version: 10,
            },
            Some((2, 9)),
            0,
            NOMFS,
        );
        assert!(!e.eligible && e.reason.contains("another filesystem"));
        assert!(
            !eligibility(
                100,
                &Health {
                    maintenance: true,
                    ..healthy()
                },
                ReplicaState::UpToDate,
                None,
                0,
                NOMFS
            )
            .eligible
        );
        assert!(!eligibility(100, &healthy(), ReplicaState::Syncing, None, 0, NOMFS).eligible);
    }

    #[test]
    fn an_older_moosefs_major_never_stands_beside_a_newer_one() {
        let v3 = MooseFsVersion::new(3, 0, 117);
        let v4 = MooseFsVersion::new(4, 57, 5);
        let up = ReplicaState::UpToDate;
        let e = eligibility(100, &healthy(), up, None, 0, (v3, v4));
        assert!(!e.eligible);
        assert_eq!(
            e.reason,
            "MooseFS 3.0.117 here, another master candidate runs 4.57.5: a 3 master cannot load \
             metadata a 4 master wrote (upgrade MooseFS on this node)"
        );
        // Newer minors of the same major, a newer node itself, and unknown versions stand.
        let v4_59 = MooseFsVersion::new(4, 59, 2);
        assert!(eligibility(100, &healthy(), up, None, 0, (v4, v4_59)).eligible);
        assert!(eligibility(100, &healthy(), up, None, 0, (v4, v4)).eligible);
        assert!(eligibility(100, &healthy(), up, None, 0, (MooseFsVersion::UNKNOWN, v4)).eligible);
        assert_eq!(v3.to_string(), "3.0.117");
        assert_eq!(MooseFsVersion::UNKNOWN.to_string(), "unknown");
        assert_eq!(MooseFsVersion::new(4, 300, 999).to_string(), "4.255.255");
    }

    #[test]
    fn restarts_back_off_and_are_forgiven() {
        let mut r = Restarter::new();
        let t0 = Instant::from_millis(1000);
        assert!(r.may_start(t0));
        r.failed(t0);
        assert!(!r.may_start(t0 + Duration::from_millis(499)));
        assert!(r.may_start(t0 + Duration::from_millis(500)));
        for _ in 0..10 {
            r.failed(t0);
        }
        assert_eq!(r.next_start(), t0 + Restarter::MAX);
        r.running(t0);
        r.running(t0 + Duration::from_secs(61));
        assert_eq!(r.failures(), 0);
    }
}
