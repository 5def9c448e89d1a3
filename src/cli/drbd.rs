//! `mooseherd drbd`: the resource file mooseherd generates, and the handlers DRBD calls (which
//! ask the local agent whether this node holds the lease).

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use mooseherd::config::{HostChecks, Rack};
use mooseherd::runtime::control::Request;

use super::SocketArgs;

#[derive(Debug, Subcommand)]
pub enum DrbdCommand {
    /// Print the DRBD resource file for this rack (`/etc/drbd.d/<resource>.res`); the agent
    /// writes the same file.
    ResourceFile,
    /// DRBD's fence-peer handler (the resource file names it). Asks the local agent whether this
    /// node holds the lease: yes -> exit 7 (the peer is fenced by the lease; DRBD outdates it and
    /// resumes IO), no or no answer -> exit 1 (DRBD keeps IO frozen and does not promote).
    FencePeer(DrbdHandlerArgs),
    /// DRBD's after-resync-target (8.4) / unfence-peer (9) handler: mooseherd sets no fencing
    /// constraints outside DRBD, so it only logs and exits 0.
    UnfencePeer(DrbdHandlerArgs),
}

#[derive(Debug, Args)]
pub struct DrbdHandlerArgs {
    #[command(flatten)]
    socket: SocketArgs,
}

/// Runs one `drbd` subcommand.
pub fn run(config: &Path, cmd: &DrbdCommand) -> anyhow::Result<ExitCode> {
    use mooseherd::host::drbd;
    // DRBD passes the resource and peer in the environment (drbd.conf(5), "handlers"). They are
    // only logged, never decide anything (the answer comes from the agent's lease): control
    // characters are escaped and the length capped, so a value cannot forge kernel log lines.
    let env = |k: &str| {
        std::env::var(k).map_or_else(
            |_| "?".into(),
            |v| {
                v.chars()
                    .take(64)
                    .flat_map(char::escape_debug)
                    .collect::<String>()
            },
        )
    };
    match cmd {
        DrbdCommand::ResourceFile => {
            let (rack, _) = Rack::load(config, HostChecks::NONE)?;
            print!("{}", drbd::resource_file(&rack)?);
            Ok(ExitCode::SUCCESS)
        }
        DrbdCommand::FencePeer(args) => {
            let view = match args.socket.call(config, &Request::Status) {
                Ok(resp) => resp
                    .status
                    .map_or(drbd::LeaseView::Unknown, |s| drbd::lease_view(&s.agent)),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "fence-peer: cannot ask the agent");
                    drbd::LeaseView::Unknown
                }
            };
            let answer = drbd::fence_peer_decision(view);
            let line = format!(
                "mooseherd drbd fence-peer: resource {} peer {}: exit {}: {}",
                env("DRBD_RESOURCE"),
                env("DRBD_PEER_ADDRESS"),
                answer.exit_code,
                answer.reason
            );
            eprintln!("{line}");
            // DRBD 8.4 logs only the exit code and drops the handler's output: the reason goes
            // to the kernel log beside DRBD's own lines (best effort).
            if let Ok(mut kmsg) = std::fs::OpenOptions::new().write(true).open("/dev/kmsg") {
                use std::io::Write as _;
                let _ = writeln!(kmsg, "{line}");
            }
            tracing::info!(
                resource = %env("DRBD_RESOURCE"),
                exit_code = answer.exit_code,
                reason = %answer.reason,
                "fence-peer"
            );
            Ok(ExitCode::from(u8::try_from(answer.exit_code).unwrap_or(1)))
        }
        DrbdCommand::UnfencePeer(_) => {
            eprintln!(
                "mooseherd drbd unfence-peer: resource {}: nothing to remove",
                env("DRBD_RESOURCE")
            );
            Ok(ExitCode::from(
                u8::try_from(drbd::UNFENCE_PEER_EXIT).unwrap_or(0),
            ))
        }
    }
}
