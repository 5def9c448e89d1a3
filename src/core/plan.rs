//! The plan: from what this node should be (desired) and what its host is (observed) to the next
//! actions, in a safe order. Pure: the host drivers carry the actions out and report back what they
//! observe, and the plan is asked again. Nothing here waits; a step whose prerequisite is not met
//! yet simply yields no action until an observation says it is.
//!
//! Order, and why:
//! - **Promote** (this node holds the lease for epoch `e`): replica primary -> metadata mounted ->
//!   `mfsmaster` started (`-a` after an unclean stop) -> wait until it accepts connections -> VIP up
//!   with a kernel lifetime + gratuitous ARP -> provisioner. Clients and chunkservers only find the
//!   master through the VIP, so the VIP comes last: nobody is sent to a master that is not ready.
//! - **Demote / fence**: provisioner stopped -> VIP down -> `mfsmaster` stopped (SIGTERM, deadline,
//!   SIGKILL) -> metadata unmounted -> replica secondary. The VIP goes first so no client reaches a
//!   master that is about to stop; the replica last, so the metadata is complete when it is handed on.
//!
//! The VIP carries a kernel lifetime (`valid_lft`, whole seconds) shorter than the lease, refreshed
//! while the lease is renewed. If the agent is frozen or dies, the kernel itself removes the VIP
//! before the lease can run out: the VIP invariant does not depend on the agent being scheduled.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Instant;

/// How long after `valid_lft` expires the kernel may still hold the address: its expiry work is
/// rounded up to whole seconds (measured here: a 2 s lifetime was removed after 2.46 s).
pub const KERNEL_VIP_SLACK: Duration = Duration::from_millis(1250);

/// What this node should be right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Desired {
    /// Hold the master for `epoch`; the lease (as this node believes it) ends at `lease_end`.
    Leader { epoch: u64, lease_end: Instant },
    /// Not the master: fenced, keeping the replica current if this is a master candidate.
    Standby,
}

/// The state of mfsmaster on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MasterState {
    Stopped,
    /// Started, not yet accepting connections.
    Starting,
    /// Accepting connections.
    Ready,
    /// Asked to stop, not yet gone.
    Stopping,
}

/// The replica of the metadata on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicaRole {
    /// DRBD primary, or the metadata taken over from the metalogger/shared directory.
    Primary,
    /// DRBD secondary, or following as a metalogger.
    Secondary,
}

/// What the host drivers last observed (for the master role).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    pub replica: ReplicaRole,
    pub meta_mounted: bool,
    pub master: MasterState,
    /// mfsmaster's last stop was unclean (killed, crashed): start it with `-a`.
    pub master_unclean: bool,
    /// The VIP is configured here, with its kernel deadline (this node's clock).
    pub vip_until: Option<Instant>,
    pub provisioner: bool,
    /// A metalogger runs here (metalogger backend standbys).
    pub metalogger: bool,
    /// mfschunkserver runs here (chunkserver role).
    #[serde(default)]
    pub chunkserver_running: bool,
    /// mfsmount is mounted and answers (worker role).
    #[serde(default)]
    pub mount_healthy: bool,
}

impl Observed {
    /// A freshly started node: nothing running, nothing held.
    pub const IDLE: Observed = Observed {
        replica: ReplicaRole::Secondary,
        meta_mounted: false,
        master: MasterState::Stopped,
        master_unclean: false,
        vip_until: None,
        provisioner: false,
        metalogger: false,
        chunkserver_running: false,
        mount_healthy: false,
    };

    /// Fenced: nothing of the master role is active here, so another node may promote.
    pub fn is_fenced(&self, now: Instant) -> bool {
        self.vip_until.is_none_or(|u| u <= now)
            && matches!(self.master, MasterState::Stopped)
            && self.replica == ReplicaRole::Secondary
            && !self.meta_mounted
            && !self.provisioner
    }
}

/// One step for the host drivers. Every action of the master role carries the epoch it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    ReplicaPrimary {
        epoch: u64,
    },
    MountMeta {
        epoch: u64,
    },
    StartMaster {
        epoch: u64,
        recover: bool,
    },
    /// Add (or refresh) the VIP with a kernel lifetime of `valid_s` seconds, then send gratuitous ARP
    /// (only when it was absent).
    VipUp {
        epoch: u64,
        valid_s: u32,
        announce: bool,
    },
    StartProvisioner {
        epoch: u64,
    },
    StopProvisioner,
    VipDown,
    StopMaster,
    UnmountMeta,
    ReplicaSecondary,
    StartMetalogger,
    StopMetalogger,
    /// Start mfschunkserver (MASTER_HOST = the VIP).
    StartChunkserver,
    /// (Re)mount MooseFS at the worker's mount path: lazy unmount of a dead mount, then mount.
    Remount,
}

/// The daemons a node keeps up whatever the lease says, and whether their back-off allows a
/// (re)start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Roles {
    pub chunkserver: bool,
    pub worker: bool,
    pub chunkserver_may_start: bool,
    pub mount_may_start: bool,
}

/// Actions that keep the chunkserver and worker roles up (independent of the lease; the
/// chunkserver and the mount find the master through the VIP).
pub fn role_actions(roles: &Roles, obs: &Observed) -> Vec<Action> {
    let mut a = Vec::new();
    if roles.chunkserver && !obs.chunkserver_running && roles.chunkserver_may_start {
        a.push(Action::StartChunkserver);
    }
    if roles.worker && !obs.mount_healthy && roles.mount_may_start {
        a.push(Action::Remount);
    }
    a
}

/// Which replication backend shapes the standby side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Drbd,
    Metalogger,
    SharedDir,
}

/// The VIP lifetime to set now, or `None` if the lease is too close to its end to (re)announce.
pub fn vip_lifetime(now: Instant, lease_end: Instant) -> Option<u32> {
    let left = lease_end.saturating_since(now);
    let usable = left.checked_sub(KERNEL_VIP_SLACK)?;
    let s = u32::try_from(usable.as_secs()).unwrap_or(u32::MAX);
    (s >= 1).then_some(s)
}

/// The next actions to take. Empty when the host matches the desired state, or is waiting for an
/// observation (e.g. mfsmaster starting).
pub fn next_actions(
    desired: Desired,
    obs: &Observed,
    backend: Backend,
    now: Instant,
) -> Vec<Action> {
    let vip_live = obs.vip_until.is_some_and(|u| u > now);
    match desired {
        Desired::Standby => {
            // Demote, VIP first. Several independent steps may go out together, in this order.
            let mut a = Vec::new();
            if obs.provisioner {
                a.push(Action::StopProvisioner);
            }
            if vip_live {
                a.push(Action::VipDown);
            }
            if matches!(obs.master, MasterState::Starting | MasterState::Ready) {
                a.push(Action::StopMaster);
            }
            if !a.is_empty() {
                return a;
            }
            if obs.master != MasterState::Stopped {
                return a; // stopping: wait for it before touching the metadata
            }
            if obs.meta_mounted {
                return vec![Action::UnmountMeta];
            }
            if obs.replica == ReplicaRole::Primary {
                return vec![Action::ReplicaSecondary];
            }
            if backend == Backend::Metalogger && !obs.metalogger {
                return vec![Action::StartMetalogger];
            }
            a
        }
        Desired::Leader { epoch, lease_end } => {
            if obs.metalogger {
                return vec![Action::StopMetalogger];
            }
            if obs.replica != ReplicaRole::Primary {
                return vec![Action::ReplicaPrimary { epoch }];
            }
            if !obs.meta_mounted && backend == Backend::Drbd {
                return vec![Action::MountMeta { epoch }];
            }
            match obs.master {
                MasterState::Stopped => {
                    return vec![Action::StartMaster {
                        epoch,
                        // Always `-a`: with DRBD (as with the other backends) the metadata may
                        // come from a master that died on another node, which this node's
                        // `master_unclean` cannot know; `-a` on clean metadata starts normally.
                        recover: true,
                    }];
                }
                MasterState::Starting | MasterState::Stopping => return vec![],
                MasterState::Ready => {}
            }
            let mut a = Vec::new();
            if let Some(valid_s) = vip_lifetime(now, lease_end) {
                let target = now + Duration::from_secs(u64::from(valid_s));
                // Refresh whenever the deadline moves a quarter second or more: at every lease
                // renewal (each 3/4 s with the default lease) and between renewals while the
                // lease allows it, so the kernel's whole-second lifetime never runs out between
                // two renewals, even a late one. The host reports the deadline it set itself:
                // the kernel's reading is rounded up to whole seconds and looked fresh until the
                // address was gone (the VIP vanished for ~0.1 s every few seconds).
                let stale = obs
                    .vip_until
                    .is_none_or(|u| u + Duration::from_millis(250) < target);

                if !vip_live || stale {
                    a.push(Action::VipUp {
                        epoch,
                        valid_s,
                        announce: !vip_live,
                    });
                }
            }
            if vip_live && !obs.provisioner {
                a.push(Action::StartProvisioner { epoch });
            }
            a
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    /// Applies actions the way an ideal host would, for walking a plan to its end.
    fn apply(obs: &mut Observed, a: &Action, now: Instant) {
        match *a {
            Action::ReplicaPrimary { .. } => obs.replica = ReplicaRole::Primary,
            Action::MountMeta { .. } => obs.meta_mounted = true,
            Action::StartMaster { .. } => obs.master = MasterState::Ready,
            Action::VipUp { valid_s, .. } => {
                obs.vip_until = Some(now + Duration::from_secs(u64::from(valid_s)))
            }
            Action::StartProvisioner { .. } => obs.provisioner = true,
            Action::StopProvisioner => obs.provisioner = false,
            Action::VipDown => obs.vip_until = None,
            Action::StopMaster => obs.master = MasterState::Stopped,
            Action::UnmountMeta => obs.meta_mounted = false,
            Action::ReplicaSecondary => obs.replica = ReplicaRole::Secondary,
            Action::StartMetalogger => obs.metalogger = true,
            Action::StopMetalogger => obs.metalogger = false,
            Action::StartChunkserver => obs.chunkserver_running = true,
            Action::Remount => obs.mount_healthy = true,
        }
    }

    fn walk(desired: Desired, obs: &mut Observed, backend: Backend, now: Instant) -> Vec<Action> {
        let mut all = Vec::new();
        for _ in 0..20 {
            let next = next_actions(desired, obs, backend, now);
            if next.is_empty() {
                break;
            }
            for a in &next {
                apply(obs, a, now);
            }
            all.extend(next);
        }
        all
    }

    #[test]
    fn promote_order_puts_the_vip_after_a_ready_master() {
        let mut obs = Observed::IDLE;
        let d = Desired::Leader {
            epoch: 7,
            lease_end: t(12_940),
        };
        let steps = walk(d, &mut obs, Backend::Drbd, t(10_000));
        assert_eq!(
            steps,
            vec![
                Action::ReplicaPrimary { epoch: 7 },
                Action::MountMeta { epoch: 7 },
                Action::StartMaster {
                    epoch: 7,
                    recover: true
                },
                Action::VipUp {
                    epoch: 7,
                    valid_s: 1,
                    announce: true
                },
                Action::StartProvisioner { epoch: 7 },
            ]
        );
    }

    #[test]
    fn demote_puts_the_vip_first_and_the_replica_last() {
        let mut obs = Observed::IDLE;
        walk(
            Desired::Leader {
                epoch: 3,
                lease_end: t(12_940),
            },
            &mut obs,
            Backend::Drbd,
            t(10_000),
        );
        let steps = walk(Desired::Standby, &mut obs, Backend::Drbd, t(10_500));
        assert_eq!(
            steps,
            vec![
                Action::StopProvisioner,
                Action::VipDown,
                Action::StopMaster,
                Action::UnmountMeta,
                Action::ReplicaSecondary
            ]
        );
        assert!(obs.is_fenced(t(10_500)));
    }

    #[test]
    fn no_vip_while_the_master_starts_and_wait_for_a_stopping_master() {
        let mut obs = Observed {
            replica: ReplicaRole::Primary,
            meta_mounted: true,
            master: MasterState::Starting,
            ..Observed::IDLE
        };
        assert!(
            next_actions(
                Desired::Leader {
                    epoch: 1,
                    lease_end: t(5000)
                },
                &obs,
                Backend::Drbd,
                t(2000)
            )
            .is_empty()
        );
        obs.master = MasterState::Stopping;
        assert!(
            next_actions(Desired::Standby, &obs, Backend::Drbd, t(2000)).is_empty(),
            "unmounting under a stopping master would lose metadata"
        );
    }

    #[test]
    fn vip_lifetime_never_outlives_the_lease() {
        for left_ms in [0u64, 1000, 2249, 2250, 2900, 5000, 10_000] {
            let now = t(100_000);
            match vip_lifetime(now, now + Duration::from_millis(left_ms)) {
                Some(s) => assert!(
                    Duration::from_secs(u64::from(s)) + KERNEL_VIP_SLACK
                        <= Duration::from_millis(left_ms)
                ),
                None => assert!(left_ms < 2250),
            }
        }
    }

    #[test]
    fn vip_is_refreshed_as_the_lease_is_renewed_but_not_near_its_end() {
        let now = t(10_000);
        let obs = Observed {
            replica: ReplicaRole::Primary,
            meta_mounted: true,
            master: MasterState::Ready,
            vip_until: Some(t(10_400)),
            provisioner: true,
            ..Observed::IDLE
        };
        let a = next_actions(
            Desired::Leader {
                epoch: 2,
                lease_end: t(12_900),
            },
            &obs,
            Backend::Drbd,
            now,
        );
        assert_eq!(
            a,
            vec![Action::VipUp {
                epoch: 2,
                valid_s: 1,
                announce: false
            }]
        );
        let a = next_actions(
            Desired::Leader {
                epoch: 2,
                lease_end: t(11_900),
            },
            &obs,
            Backend::Drbd,
            now,
        );
        assert!(a.is_empty(), "too close to the lease end to extend the VIP");
    }

    #[test]
    fn role_daemons_restart_only_when_the_back_off_allows() {
        let obs = Observed::IDLE;
        let mut roles = Roles {
            chunkserver: true,
            worker: true,
            chunkserver_may_start: true,
            mount_may_start: false,
        };
        assert_eq!(role_actions(&roles, &obs), vec![Action::StartChunkserver]);
        roles.mount_may_start = true;
        assert_eq!(
            role_actions(&roles, &obs),
            vec![Action::StartChunkserver, Action::Remount]
        );
        let up = Observed {
            chunkserver_running: true,
            mount_healthy: true,
            ..obs
        };
        assert!(role_actions(&roles, &up).is_empty());
        assert!(
            role_actions(&Roles::default(), &obs).is_empty(),
            "no role, no daemon"
        );
    }

    #[test]
    fn metalogger_standby_runs_a_metalogger_and_stops_it_to_promote() {
        let mut obs = Observed::IDLE;
        assert_eq!(
            walk(Desired::Standby, &mut obs, Backend::Metalogger, t(0)),
            vec![Action::StartMetalogger]
        );
        let steps = walk(
            Desired::Leader {
                epoch: 1,
                lease_end: t(2940),
            },
            &mut obs,
            Backend::Metalogger,
            t(0),
        );
        assert_eq!(steps[0], Action::StopMetalogger);
        assert_eq!(
            steps[2],
            Action::StartMaster {
                epoch: 1,
                recover: true
            },
            "metalogger changelogs need -a"
        );
    }

    /// After a failover the new DRBD primary's disk holds the metadata of a master killed on the
    /// other node (after kill -9 mfsmaster must start with `-a`), while this node never
    /// ran a master itself, so its own `master_unclean` is false.
    #[test]
    fn a_drbd_standby_taking_over_starts_mfsmaster_with_recovery() {
        let mut obs = Observed::IDLE;
        assert!(!obs.master_unclean, "this node never ran a master");
        let steps = walk(
            Desired::Leader {
                epoch: 4,
                lease_end: t(2940),
            },
            &mut obs,
            Backend::Drbd,
            t(0),
        );
        assert_eq!(
            steps[2],
            Action::StartMaster {
                epoch: 4,
                recover: true
            }
        );
    }
}
