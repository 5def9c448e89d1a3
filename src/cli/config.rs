//! The rack file and its companions: `check-config`, `boards` and `keygen`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use mooseherd::config::{self, Catalog, HostChecks, Rack, Role, Severity};

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// The keyring file (default: /etc/mooseherd/keyring).
    #[arg(default_value = mooseherd::wire::keyring::DEFAULT_KEYRING_PATH)]
    path: PathBuf,
    /// Append a new key that opens frames but does not seal yet (rotation step 1).
    #[arg(long, conflicts_with_all = ["promote", "remove"])]
    add: bool,
    /// Make key ID the sealing key (rotation step 2).
    #[arg(long, value_name = "ID", conflicts_with = "remove")]
    promote: Option<u8>,
    /// Remove key ID (rotation step 3; the last key cannot be removed).
    #[arg(long, value_name = "ID")]
    remove: Option<u8>,
}

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// Rack file to check (defaults to --config).
    file: Option<PathBuf>,
    /// Skip checks that need the Pi itself (keyring present and private): for editing the rack
    /// file on a workstation before copying it to the boot partition.
    #[arg(long)]
    no_host_checks: bool,
    /// Print the validated rack (or the diagnostics) as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub struct BoardsArgs {
    /// Show this board's pins instead of listing all boards.
    name: Option<String>,
    /// Directory of extra or replacement board files.
    #[arg(long, default_value = config::board::DEFAULT_OVERRIDE_DIR)]
    boards_dir: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// `mooseherd check-config`: `file` is the positional FILE, else `--config`.
pub fn check_config(config: PathBuf, args: CheckConfigArgs) -> anyhow::Result<ExitCode> {
    let file = args.file.unwrap_or(config);
    let (file, json) = (file.as_path(), args.json);
    let host = if args.no_host_checks {
        HostChecks::NONE
    } else {
        HostChecks::ALL
    };
    match Rack::load(file, host) {
        Ok((rack, warnings)) => {
            if json {
                let v = serde_json::json!({"valid": true, "rack": rack, "diagnostics": warnings});
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for w in &warnings {
                    println!("{w}");
                }
                print_summary(&rack);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(config::ConfigError::Invalid(diags)) => {
            if json {
                let v = serde_json::json!({"valid": false, "diagnostics": diags});
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for d in &diags {
                    println!("{d}");
                }
                let errors = diags
                    .iter()
                    .filter(|d| d.severity == Severity::Error)
                    .count();
                eprintln!(
                    "{}: {errors} error(s); the rack file is not valid",
                    file.display()
                );
            }
            Ok(ExitCode::FAILURE)
        }
        Err(e) => Err(e).context("check-config"),
    }
}

fn print_summary(rack: &Rack) {
    let c = &rack.cluster;
    println!(
        "{}: rack `{}` is valid: {} nodes, {} voters (quorum {}), VIP {} on {}, replication {}",
        rack.source.display(),
        c.name,
        rack.nodes.len(),
        rack.voters().count(),
        rack.quorum(),
        c.vip,
        c.interface,
        c.replication.as_str()
    );
    println!(
        "  lease {} ms (renewed every {} ms), fencing budget {} ms, drift bound {} ppm, gossip on UDP {}",
        c.lease_ms,
        c.lease_ms / 3,
        c.fence_budget_ms,
        c.max_drift_ppm,
        c.gossip_port
    );
    println!(
        "  {:<12} {:<16} {:<28} {:<6} {:<6} {:>4}",
        "NODE", "ADDR", "ROLES", "BOARD", "VOTER", "PRIO"
    );
    for n in &rack.nodes {
        let roles: Vec<&str> = n.roles.iter().map(|r| r.as_str()).collect();
        println!(
            "  {:<12} {:<16} {:<28} {:<6} {:<6} {:>4}",
            n.name,
            n.addr.to_string(),
            roles.join(","),
            n.board,
            if n.voter { "yes" } else { "-" },
            if n.has(Role::Master) {
                n.priority.to_string()
            } else {
                "-".into()
            }
        );
    }
}

/// `mooseherd boards [NAME]`.
pub fn boards(args: &BoardsArgs) -> anyhow::Result<ExitCode> {
    let cat = Catalog::load(Some(&args.boards_dir)).context("loading boards")?;
    match &args.name {
        None => {
            if args.json {
                let all: Vec<_> = cat.iter().collect();
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                println!("{:<6} {:<34} {:<18} SOURCE", "BOARD", "MODEL", "GPIO CHIP");
                for b in cat.iter() {
                    println!(
                        "{:<6} {:<34} {:<18} {}",
                        b.name, b.model, b.gpio_chip, b.source
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(name) => {
            let Some(b) = cat.get(name) else {
                anyhow::bail!(
                    "no board named `{name}` (known: {})",
                    cat.names().join(", ")
                );
            };
            if args.json {
                println!("{}", serde_json::to_string_pretty(b)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{} — {} ({})", b.name, b.model, b.source);
            println!(
                "  gpio chip      {} ({} header lines)",
                b.gpio_chip, b.header_lines
            );
            for (label, led) in [
                ("green LED", b.green),
                ("amber LED", b.amber),
                ("red LED", b.red),
            ] {
                match led {
                    Some(l) => println!(
                        "  {label:<14} GPIO{}{}",
                        l.pin,
                        if l.active_low { " (active-low)" } else { "" }
                    ),
                    None => println!("  {label:<14} none"),
                }
            }
            match b.button {
                Some(p) => println!(
                    "  button         GPIO{}{}{}",
                    p.pin,
                    if p.active_low { " (active-low)" } else { "" },
                    if p.pull_up { " with pull-up" } else { "" }
                ),
                None => println!("  button         none"),
            }
            println!(
                "  on-board LEDs  act={} pwr={}",
                b.onboard.act.as_deref().unwrap_or("-"),
                b.onboard.pwr.as_deref().unwrap_or("-")
            );
            println!("  reserved pins  {:?}", b.reserved);
            println!("  watchdog max   {} s", b.watchdog_max_s);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `mooseherd keygen`: a new keyring, or one rotation step.
pub fn keygen(args: &KeygenArgs) -> anyhow::Result<ExitCode> {
    use mooseherd::wire::keyring;
    let p = &args.path;
    if args.add {
        let id = keyring::add_key(p).map_err(|e| anyhow::anyhow!("{e}"))?;
        println!(
            "{}: added key {id} (opens frames; still sealing with the old key). Next, on every node: mooseherd keygen {} --promote {id}",
            p.display(),
            p.display()
        );
    } else if let Some(id) = args.promote {
        keyring::promote_key(p, id).map_err(|e| anyhow::anyhow!("{e}"))?;
        println!(
            "{}: key {id} now seals. When every node seals with it, remove the old key with --remove",
            p.display()
        );
    } else if let Some(id) = args.remove {
        keyring::remove_key(p, id).map_err(|e| anyhow::anyhow!("{e}"))?;
        println!("{}: removed key {id}", p.display());
    } else {
        let id = keyring::keygen(p).map_err(|e| anyhow::anyhow!("{e}"))?;
        println!(
            "{}: new keyring with key {id} (mode 0600). Copy this same file to every node of the rack.",
            p.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
