//! The rack file, translated for the agent core: the core knows node ids, roles and timings,
//! not the rack file's types, so the runtime builds its [`AgentSpec`] here.

use std::time::Duration;

use crate::config::{Rack, Replication, Role};
use crate::core::NodeId;
use crate::core::agent::{AgentSpec, agent_version};
use crate::core::lease::LeaseConfig;
use crate::core::membership::{MembershipConfig, Roles};
use crate::core::plan::Backend;

/// The spec of node `me` in `rack`.
pub fn agent_spec(rack: &Rack, me: NodeId) -> AgentSpec {
    let node = rack.node(me);
    let mut roles = Roles::default();
    if let Some(n) = node {
        for r in &n.roles {
            roles = roles
                | match r {
                    Role::Master => Roles::MASTER,
                    Role::Chunkserver => Roles::CHUNKSERVER,
                    Role::Worker => Roles::WORKER,
                };
        }
        if n.voter {
            roles = roles | Roles::VOTER;
        }
    }
    let c = &rack.cluster;
    AgentSpec {
        me,
        nodes: rack.nodes.iter().map(|n| n.id).collect(),
        voters: rack.voters().map(|n| n.id).collect(),
        roles,
        candidate: node.filter(|n| n.has(Role::Master)).map(|n| n.priority),
        backend: match c.replication {
            Replication::Drbd => Backend::Drbd,
            Replication::Metalogger => Backend::Metalogger,
            Replication::SharedDir => Backend::SharedDir,
        },
        lease: LeaseConfig::new(
            Duration::from_millis(c.lease_ms),
            Duration::from_millis(c.fence_budget_ms),
            c.max_drift_ppm,
        ),
        membership: MembershipConfig::for_rack(rack.nodes.len()),
        agent_version: agent_version(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HostChecks;
    use crate::core::Instant;
    use crate::core::agent::Agent;
    use crate::core::lease::LeaseDurable;
    use crate::core::plan::{Action, MasterState, Observed, ReplicaRole};
    use crate::core::roles::{Health, ReplicaState};

    /// A fresh agent for node `name` of the 5-node lab rack.
    fn lab_agent(name: &str) -> Agent {
        let dir = std::path::Path::new("/tmp");
        let text = crate::lab::rack_toml(dir, &crate::lab::node_names(5), "shared-dir");
        let rack = Rack::parse(&text, std::path::Path::new("lab.toml"), HostChecks::NONE)
            .expect("lab rack")
            .0;
        let node = rack.node_by_name(name).expect("lab node").id;
        Agent::new(
            agent_spec(&rack, node),
            LeaseDurable::default(),
            Observed::IDLE,
            1,
            Instant::from_millis(1),
        )
    }

    #[test]
    fn a_chunkserver_worker_starts_its_daemon_and_its_mount() {
        let mut a = lab_agent("pi3");
        a.set_health(
            Instant::from_millis(2),
            Health {
                mem_available_mib: 4000,
                ..Health::default()
            },
            ReplicaState::UpToDate,
            0,
        );
        assert_eq!(a.poll_action(), Some(Action::StartChunkserver));
        a.observe(
            Instant::from_millis(3),
            Observed {
                chunkserver_running: true,
                ..Observed::IDLE
            },
        );
        assert_eq!(a.poll_action(), None, "no mount before a leader is known");
        a.observe(
            Instant::from_millis(4),
            Observed {
                chunkserver_running: true,
                mount_healthy: true,
                ..Observed::IDLE
            },
        );
        assert_eq!(a.poll_action(), None);
    }

    #[test]
    fn a_running_master_does_not_count_its_own_memory_against_eligibility() {
        let mut a = lab_agent("pi1");
        let low = Health {
            mem_available_mib: 184,
            ..Health::default()
        };
        a.set_health(Instant::from_millis(2), low, ReplicaState::UpToDate, 0);
        assert!(
            !a.status(Instant::from_millis(2)).eligible,
            "184 MiB free is too little to start a master"
        );
        a.refresh(
            Instant::from_millis(3),
            Observed {
                replica: ReplicaRole::Primary,
                master: MasterState::Ready,
                ..Observed::IDLE
            },
        );
        a.set_health(Instant::from_millis(4), low, ReplicaState::UpToDate, 0);
        assert!(
            a.status(Instant::from_millis(4)).eligible,
            "the running master's memory is already spent"
        );
    }
}
