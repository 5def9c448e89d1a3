//! `mooseherd lab`: a rack of real agents in network namespaces, and the failover drills on it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use mooseherd::lab::drill::Drill;

#[derive(Debug, Subcommand)]
pub enum LabCommand {
    /// Create the namespaces and the rack file, start one agent per node, wait until healthy.
    Up {
        /// Number of nodes (pi1 and pi2 are master candidates, the first three vote).
        #[arg(long, default_value_t = 5)]
        nodes: usize,
        /// How the master's metadata reaches the standby.
        #[arg(long, default_value = "shared-dir", value_parser = ["shared-dir", "metalogger"])]
        replication: String,
        /// Host driver of the agents: `linux` runs real MooseFS daemons and moves a real VIP;
        /// `dry-run` only logs what the agents would do.
        #[arg(long, default_value = "linux", value_parser = ["linux", "dry-run"])]
        host: String,
        /// MooseFS major release: 3 (Debian 12's packages) or 4 (built once by
        /// `scripts/moosefs.sh build`, kept in /var/cache/mooseherd-moosefs). Default: 4 when
        /// built, else 3.
        #[arg(long, value_parser = clap::value_parser!(u8).range(3..=4))]
        moosefs: Option<u8>,
        #[arg(long, default_value = mooseherd::lab::DEFAULT_DIR)]
        dir: PathBuf,
    },
    /// One line per node: agent, role, epoch, leader, VIP, members alive.
    Status {
        #[arg(long, default_value = mooseherd::lab::DEFAULT_DIR)]
        dir: PathBuf,
    },
    /// Hold a node's (simulated) front-panel button: under 3 s blinks the node number, 3 s
    /// switches the master over (on the leader), 10 s toggles maintenance.
    Button {
        node: String,
        /// How long to hold it, in seconds.
        #[arg(long, default_value_t = 0.3)]
        hold: f64,
        #[arg(long, default_value = mooseherd::lab::DEFAULT_DIR)]
        dir: PathBuf,
    },
    /// Restart a node's agent as `systemctl restart mooseherd` would (SIGTERM: a leader hands
    /// over), optionally on another MooseFS release: `lab restart pi2 --moosefs 4` upgrades one
    /// Pi of a 3.0 rack.
    Restart {
        node: String,
        /// MooseFS major release the node runs from now on: 3 or 4.
        #[arg(long, value_parser = clap::value_parser!(u8).range(3..=4))]
        moosefs: Option<u8>,
        #[arg(long, default_value = mooseherd::lab::DEFAULT_DIR)]
        dir: PathBuf,
    },
    /// Run a command in a node's network namespace: `mooseherd lab exec pi1 -- mfscli -SIN`.
    Exec {
        node: String,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
        /// The lab (for its MooseFS: the command finds the lab's MooseFS programs first).
        #[arg(long, default_value = mooseherd::lab::DEFAULT_DIR)]
        dir: PathBuf,
    },
    /// Run a failover drill on the lab's leader, with a writer (numbered fsync'd files through
    /// pi4's mfsmount), a verifier, a split-brain monitor and a timeline. Works on either lab
    /// (`lab up` or `lab baseline up`).
    ///
    /// kill-leader: SIGKILL every process of the leader's node. crash-mfsmaster: SIGKILL its
    /// mfsmaster only. freeze-leader: SIGSTOP the agent (or keepalived) and mfsmaster for 8 s.
    /// partition-leader: its switch port leaves the bridge for 10 s (link stays up).
    /// flap: its link goes down 2 s / up 2 s, 4 times. lossy: 20 % of the packets leaving every
    /// node dropped for 20 s (must cause no failover). starve: the agent (or keepalived) gets 3 %
    /// of a CPU for 20 s (no false failover). switchover: `mooseherd switchover` (or stopping
    /// keepalived on the master).
    ///
    /// Exit status 1 when a write was lost, the rack had split-brain time, no write came within
    /// 90 s, or a drill without a node failure failed over.
    Drill {
        #[arg(value_enum)]
        name: Drill,
        /// Print one JSON object: drill, first_write_ms, max_gap_ms, lost, split_brain_s, failovers, timeline.
        #[arg(long)]
        json: bool,
        /// Also draw the timeline (VIP, masters, write latency) as an SVG picture here.
        #[arg(long)]
        chart: Option<PathBuf>,
        #[arg(long, default_value = mooseherd::lab::DEFAULT_DIR)]
        dir: PathBuf,
    },
    /// The keepalived recipe mooseherd is measured against, on the same lab.
    #[command(subcommand)]
    Baseline(BaselineCommand),
    /// Stop everything the lab started and delete its namespaces and files.
    Down {
        /// Keep the lab directory (logs, data).
        #[arg(long)]
        keep: bool,
        #[arg(long, default_value = mooseherd::lab::DEFAULT_DIR)]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum BaselineCommand {
    /// A lab rack run by keepalived instead of mooseherd: keepalived 2.2 on pi1 and pi2
    /// (default VRRP timers, nopreempt, a vrrp_script checking mfsmaster) whose notify scripts
    /// start or stop mfsmaster on the shared directory; chunkservers on pi1-pi3 and mfsmount on
    /// pi3-pi5 pointed at the VIP. `lab status`, `lab drill` and `lab down` work on it.
    Up {
        #[arg(long, default_value_t = 5)]
        nodes: usize,
        /// MooseFS major release, as for `lab up`.
        #[arg(long, value_parser = clap::value_parser!(u8).range(3..=4))]
        moosefs: Option<u8>,
        #[arg(long, default_value = mooseherd::lab::DEFAULT_DIR)]
        dir: PathBuf,
    },
}

/// Runs one `lab` subcommand.
pub fn run(cmd: LabCommand) -> anyhow::Result<ExitCode> {
    use mooseherd::lab;
    match cmd {
        LabCommand::Up {
            nodes,
            replication,
            host,
            moosefs,
            dir,
        } => {
            lab::up(&lab::UpOptions {
                dir,
                nodes,
                replication,
                host,
                system: lab::SYSTEM_MOOSEHERD.into(),
                moosefs,
            })?;
        }
        LabCommand::Baseline(BaselineCommand::Up {
            nodes,
            moosefs,
            dir,
        }) => {
            lab::up(&lab::UpOptions {
                dir,
                nodes,
                replication: "shared-dir".into(),
                host: "linux".into(),
                system: lab::SYSTEM_KEEPALIVED.into(),
                moosefs,
            })?;
        }
        LabCommand::Status { dir } => lab::print_status(&dir)?,
        LabCommand::Button { node, hold, dir } => {
            if !(0.0..=60.0).contains(&hold) {
                anyhow::bail!("--hold {hold}: give 0 to 60 seconds");
            }
            lab::press_button(&dir, &node, std::time::Duration::from_secs_f64(hold))?;
        }
        LabCommand::Restart { node, moosefs, dir } => {
            lab::restart_agent(&dir, &node, moosefs)?;
            lab::print_status(&dir)?;
        }
        LabCommand::Exec { node, cmd, dir } => {
            let code = lab::exec(&dir, &node, &cmd)?;
            return Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)));
        }
        LabCommand::Drill {
            name,
            json,
            chart,
            dir,
        } => {
            let r = lab::drill::run(&dir, name)?;
            if let Some(p) = &chart {
                std::fs::write(p, lab::chart::render(&r))
                    .with_context(|| format!("writing {}", p.display()))?;
            }
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                lab::drill::print(&r);
            }
            if !r.passed() {
                return Ok(ExitCode::FAILURE);
            }
        }
        LabCommand::Down { keep, dir } => lab::down(&dir, keep)?,
    }
    Ok(ExitCode::SUCCESS)
}
