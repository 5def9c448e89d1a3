//! `mooseherd leds`: the status LED patterns, drawn.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum LedsCommand {
    /// Draw the LED patterns (lamp test, node number, every rack state) as one SVG picture:
    /// three rows per state (green, amber, red), four seconds left to right.
    Render {
        /// Write the SVG here instead of to standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Runs one `leds` subcommand.
pub fn run(cmd: LedsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LedsCommand::Render { out } => {
            let svg = mooseherd::core::leds::render_svg();
            match out {
                Some(p) => {
                    std::fs::write(&p, svg).with_context(|| format!("writing {}", p.display()))?
                }
                None => print!("{svg}"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
