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
        // Found by the runtime at start (`moosefs::detect`).
        moosefs: Default::default(),
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

    #[test]
    fn a_master_candidate_with_an_older_moosefs_major_stands_down_and_the_rack_shows_degraded() {
        use crate::core::Machine;
        use crate::core::leds::RackView;
        use crate::core::membership::MooseFsVersion;
        let dir = std::path::Path::new("/tmp");
        let text = crate::lab::rack_toml(dir, &crate::lab::node_names(5), "shared-dir");
        let rack = Rack::parse(&text, std::path::Path::new("lab.toml"), HostChecks::NONE)
            .expect("lab rack")
            .0;
        let health = Health {
            mem_available_mib: 4000,
            ..Health::default()
        };
        // pi2 was upgraded to MooseFS 4; pi1 (higher priority) still runs 3.0.
        let mut agents: Vec<Agent> = rack
            .nodes
            .iter()
            .map(|n| {
                let mut spec = agent_spec(&rack, n.id);
                spec.moosefs = if n.name == "pi2" {
                    MooseFsVersion::new(4, 57, 5)
                } else {
                    MooseFsVersion::new(3, 0, 117)
                };
                let mut a = Agent::new(
                    spec,
                    LeaseDurable::default(),
                    Observed::IDLE,
                    u64::from(n.id.0) + 1,
                    Instant::from_millis(1),
                );
                a.set_health(Instant::from_millis(1), health, ReplicaState::UpToDate, 0);
                a
            })
            .collect();
        // Deliver every message at once, 10 ms steps, for 5 s.
        for step in 1..=500u64 {
            let now = Instant::from_millis(step * 10);
            let mut queue = Vec::new();
            for a in agents.iter_mut() {
                a.handle_timeout(now);
                while let Some(t) = a.poll_transmit() {
                    queue.push((a.id(), t));
                }
                while a.poll_event().is_some() {}
                while a.poll_action().is_some() {}
            }
            for (from, t) in queue {
                agents[usize::from(t.to.0)].handle_message(now, from, t.msg);
            }
        }
        let now = Instant::from_millis(5000);
        let pi1 = agents[0].status(now);
        assert!(!pi1.eligible, "{}", pi1.eligibility);
        assert!(
            pi1.eligibility.contains("MooseFS 3.0.117 here") && pi1.eligibility.contains("4.57.5"),
            "{}",
            pi1.eligibility
        );
        assert_eq!(pi1.moosefs_version, "3.0.117");
        let pi2 = agents[1].status(now);
        assert!(pi2.eligible, "{}", pi2.eligibility);
        let voters: Vec<crate::core::NodeId> = rack.voters().map(|n| n.id).collect();
        assert!(RackView::from_status(&pi1, &voters, false).degraded);
    }
}
