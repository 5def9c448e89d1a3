//! The dry-run host: performs nothing, logs every action the plan asks for, and reports the host
//! state as if each action had succeeded at once. `mooseherd agent --dry-run` uses it to show an
//! operator what the agent would do on a rack, and it is the host of agents on machines where the
//! real drivers cannot run yet.

use std::time::Duration;

use super::Host;
use crate::core::Instant;
use crate::core::plan::{Action, MasterState, Observed, ReplicaRole};

/// Records actions instead of performing them.
#[derive(Debug, Clone)]
pub struct DryRunHost {
    state: Observed,
    /// Every action executed, in order, with the time.
    pub log: Vec<(Instant, Action)>,
}

impl DryRunHost {
    pub fn new() -> Self {
        Self {
            state: Observed::IDLE,
            log: Vec::new(),
        }
    }
}

impl Default for DryRunHost {
    fn default() -> Self {
        Self::new()
    }
}

impl Host for DryRunHost {
    fn name(&self) -> &'static str {
        "dry-run"
    }

    fn observe(&mut self, now: Instant) -> Observed {
        if self.state.vip_until.is_some_and(|u| u <= now) {
            self.state.vip_until = None;
        }
        self.state
    }

    fn execute(&mut self, action: Action, now: Instant) -> Result<Observed, String> {
        tracing::info!("dry-run: would {}", describe(&action));
        self.log.push((now, action));
        let s = &mut self.state;
        match action {
            Action::ReplicaPrimary { .. } => s.replica = ReplicaRole::Primary,
            Action::MountMeta { .. } => s.meta_mounted = true,
            Action::StartMaster { .. } => {
                s.master = MasterState::Ready;
                s.master_unclean = false;
            }
            Action::VipUp { valid_s, .. } => {
                s.vip_until = Some(now + Duration::from_secs(u64::from(valid_s)))
            }
            Action::StartProvisioner { .. } => s.provisioner = true,
            Action::StopProvisioner => s.provisioner = false,
            Action::VipDown => s.vip_until = None,
            Action::StopMaster => s.master = MasterState::Stopped,
            Action::UnmountMeta => s.meta_mounted = false,
            Action::ReplicaSecondary => s.replica = ReplicaRole::Secondary,
            Action::StartMetalogger => s.metalogger = true,
            Action::StopMetalogger => s.metalogger = false,
            Action::StartChunkserver => s.chunkserver_running = true,
            Action::Remount => s.mount_healthy = true,
        }
        Ok(self.observe(now))
    }
}

/// One line a person understands.
pub fn describe(a: &Action) -> String {
    match *a {
        Action::ReplicaPrimary { epoch } => {
            format!("make the metadata replica primary (epoch {epoch})")
        }
        Action::MountMeta { epoch } => format!("mount the metadata disk (epoch {epoch})"),
        Action::StartMaster { epoch, recover } => format!(
            "start mfsmaster{} (epoch {epoch})",
            if recover { " -a" } else { "" }
        ),
        Action::VipUp {
            epoch,
            valid_s,
            announce,
        } => {
            format!(
                "{} the VIP with a {valid_s} s kernel lifetime{} (epoch {epoch})",
                if announce { "add" } else { "refresh" },
                if announce {
                    " and send gratuitous ARP"
                } else {
                    ""
                }
            )
        }
        Action::StartProvisioner { epoch } => format!("start the PVC provisioner (epoch {epoch})"),
        Action::StopProvisioner => "stop the PVC provisioner".into(),
        Action::VipDown => "remove the VIP".into(),
        Action::StopMaster => "stop mfsmaster (SIGTERM, then SIGKILL at the deadline)".into(),
        Action::UnmountMeta => "unmount the metadata disk".into(),
        Action::ReplicaSecondary => "make the metadata replica secondary".into(),
        Action::StartMetalogger => "start mfsmetalogger".into(),
        Action::StopMetalogger => "stop mfsmetalogger".into(),
        Action::StartChunkserver => "start mfschunkserver".into(),
        Action::Remount => "mount MooseFS for pods (lazy unmount of a dead mount first)".into(),
    }
}
