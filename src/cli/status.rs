//! `mooseherd status`: the local agent's view of the rack, as a table (with the status LEDs
//! drawn as symbols) or as JSON.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use mooseherd::runtime::control::{self, Request, StatusReport};

use super::SocketArgs;

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    socket: SocketArgs,
    /// Print the agent's full status as JSON.
    #[arg(long)]
    json: bool,
    /// Redraw every SECONDS (default 1) until interrupted.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "1")]
    watch: Option<f64>,
    /// Colour the LEDs column: `auto` (when standard output is a terminal), `always`, `never`.
    #[arg(long, default_value = "auto", value_parser = ["auto", "always", "never"])]
    color: String,
}

/// `mooseherd status`: once, or redrawn every `--watch` seconds.
pub fn run(config: &Path, args: &StatusArgs) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let path = args.socket.path(config);
    let colour = match args.color.as_str() {
        "always" => true,
        "never" => false,
        _ => std::io::stdout().is_terminal(),
    };
    let interval = match args.watch {
        Some(s) if !(0.1..=3600.0).contains(&s) => {
            anyhow::bail!("--watch {s}: give an interval between 0.1 and 3600 seconds")
        }
        Some(s) => Some(std::time::Duration::from_secs_f64(s)),
        None => None,
    };
    loop {
        let text = match control::call_blocking(&path, &Request::Status, None)
            .map_err(anyhow::Error::from)
        {
            Ok(resp) => match resp.status {
                Some(report) if args.json => serde_json::to_string_pretty(&report)? + "\n",
                Some(report) => render_status(&report, colour),
                None => {
                    let e = resp
                        .error
                        .unwrap_or_else(|| "the agent sent no status".into());
                    if interval.is_none() {
                        anyhow::bail!("{e}");
                    }
                    format!("mooseherd: {e}\n")
                }
            },
            Err(e) if interval.is_none() => return Err(e),
            Err(e) => format!("mooseherd: {e:#}\n"),
        };
        let Some(every) = interval else {
            print!("{text}");
            return Ok(ExitCode::SUCCESS);
        };
        // Clear the screen and redraw (Ctrl-C ends it).
        print!("\x1b[H\x1b[2J{text}");
        use std::io::Write;
        let _ = std::io::stdout().flush();
        std::thread::sleep(every);
    }
}

/// The LEDs of a node as three symbols (● steady, ◉ double blink, ◐ slow, ✱ fast, · off),
/// coloured with ANSI escapes when `colour`.
fn render_leds(p: &mooseherd::core::leds::Pattern, colour: bool) -> String {
    use mooseherd::core::leds::Blink;
    let mut out = String::new();
    for (b, code) in [(p.green, "32"), (p.amber, "33"), (p.red, "31")] {
        let sym = match b {
            Blink::Off => "·",
            Blink::Steady => "●",
            Blink::DoubleBlink => "◉",
            Blink::Slow => "◐",
            Blink::Fast => "✱",
        };
        if colour && b != Blink::Off {
            out.push_str(&format!("\x1b[1;{code}m{sym}\x1b[0m"));
        } else {
            out.push_str(sym);
        }
    }
    out
}

fn render_status(r: &StatusReport, colour: bool) -> String {
    use std::fmt::Write;
    let name = |id| r.name_of(id);
    let a = &r.agent;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "rack `{}` as seen from {} (host driver: {}, up {} s, mooseherd {})",
        r.rack, r.node, r.host, r.uptime_s, r.version
    );
    let leader = a.leader.map(name).unwrap_or_else(|| "none".into());
    let left = a
        .lease_left_ms
        .map(|ms| format!(", lease {:.1} s left", ms as f64 / 1000.0))
        .unwrap_or_default();
    let _ = writeln!(out, "leader: {leader}, epoch {}{left}", a.epoch);
    let _ = writeln!(
        out,
        "this node: {:?}, {} ({})",
        a.role,
        if a.eligible {
            "eligible"
        } else {
            "not eligible"
        },
        a.eligibility
    );
    if let Some(l) = &r.leds {
        let _ = writeln!(
            out,
            "LEDs: {} {} (backend: {})",
            render_leds(&l.pattern, colour),
            l.indication.label(),
            l.backend
        );
    }
    let _ = writeln!(
        out,
        "{:<10} {:<8} {:>4} {:<26} {:<14} {:<10} {:<12} LEDS",
        "NODE", "STATE", "INC", "ROLES", "LEASE VIEW", "REPLICA", "HEALTH"
    );
    for m in &a.members {
        let (roles, lease, replica, health) = match &m.meta {
            Some(meta) => {
                use mooseherd::core::membership::Roles;
                let mut roles = Vec::new();
                for (role, n) in [
                    (Roles::MASTER, "master"),
                    (Roles::CHUNKSERVER, "chunkserver"),
                    (Roles::WORKER, "worker"),
                    (Roles::VOTER, "voter"),
                ] {
                    if meta.roles.contains(role) {
                        roles.push(n);
                    }
                }
                let lease = match meta.lease.holder {
                    Some(h) => format!("{} @{}", name(h), meta.lease.epoch),
                    None => format!("- @{}", meta.lease.epoch),
                };
                let health = if meta.health.0 == 0 {
                    "ok".to_string()
                } else {
                    format!("flags {:#x}", meta.health.0)
                };
                (
                    roles.join(","),
                    lease,
                    format!("{:?}", meta.replica.state).to_lowercase(),
                    health,
                )
            }
            None => ("?".into(), "?".into(), "?".into(), "?".into()),
        };
        let me = if name(m.id) == r.node { "*" } else { "" };
        // This node's LEDs exactly; the others' judged from their gossip (their own view of the
        // rack is not gossiped).
        let leds = match &r.leds {
            Some(l) if m.id == a.node => {
                format!(
                    "{} {}",
                    render_leds(&l.pattern, colour),
                    l.indication.label()
                )
            }
            Some(l) => {
                use mooseherd::core::leds::RackView;
                match RackView::of_member(m.state, m.meta.as_ref(), &l.view, a.leader, m.id) {
                    Some(v) => format!(
                        "{} {}",
                        render_leds(&v.pattern(), colour),
                        v.indication().label()
                    ),
                    None => "··· unknown".into(),
                }
            }
            None => "-".into(),
        };
        let _ = writeln!(
            out,
            "{:<10} {:<8} {:>4} {:<26} {:<14} {:<10} {:<12} {leds}",
            format!("{}{me}", name(m.id)),
            m.state.as_str(),
            m.incarnation,
            roles,
            lease,
            replica,
            health
        );
    }
    let w = &r.wire;
    let _ = writeln!(
        out,
        "frames: {} sealed, {} delivered, {} rejected ({})",
        w.sealed,
        w.delivered,
        w.rejects.total(),
        serde_json::to_value(w.rejects)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .map(|o| o
                .into_iter()
                .filter(|(_, v)| v.as_u64().unwrap_or(0) > 0)
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", "))
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "none".into())
    );
    out
}
