//! GPIO backends for the status LEDs and the button, behind one trait ([`Gpio`]):
//! - `gpiocdev`: the GPIO character device (`/dev/gpiochipN`, found by the board's chip label);
//!   works on every Pi with a kernel >= 5.10 and is the only way on the Pi 5 (RP1);
//! - `rppal`: register access through `/dev/gpiomem` (Pi 3/4 and CM4 with older kernels);
//! - `sysfs`: the on-board LEDs under `/sys/class/leds` (ACT shows green, PWR shows amber or red),
//!   for a Pi without a LED HAT; no button;
//! - `sim`: records every change in `DIR/leds.jsonl` and reads the button from the file
//!   `DIR/button` (`1` = pressed), for the lab and the tests.
//!
//! The agent opens one backend at start (`--gpio`, default `auto`); when it cannot (no chip, a pin
//! held by another program, not a Pi) it logs why and runs without LEDs.

pub mod cdev;
pub mod pi_mem;
pub mod sim;
pub mod sysfs;

use std::path::PathBuf;

use crate::config::Board;
use crate::core::leds::Frame;

/// Why a backend cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum GpioError {
    #[error(
        "no GPIO chip labelled `{label}` (board `{board}`); chips found: {found} (is this the right board in the rack file?)"
    )]
    NoChip {
        label: String,
        board: String,
        found: String,
    },
    #[error("{backend}: cannot claim {what}: {detail}{hint}")]
    Claim {
        backend: &'static str,
        what: String,
        detail: String,
        hint: &'static str,
    },
    #[error("board `{0}` has no status LEDs or button pins")]
    NoPins(String),
    #[error("board `{board}` names no on-board LED that exists under {dir}")]
    NoOnboard { board: String, dir: PathBuf },
    #[error("{what}: {cause}")]
    Io { what: String, cause: std::io::Error },
    #[error("{backend}: {detail}")]
    Other {
        backend: &'static str,
        detail: String,
    },
    #[error(
        "unknown GPIO backend `{0}` (auto, none, gpiocdev, rppal, sysfs, or sim:DIR for the lab)"
    )]
    UnknownSpec(String),
}

impl GpioError {
    pub(crate) fn io(what: impl Into<String>, cause: std::io::Error) -> Self {
        GpioError::Io {
            what: what.into(),
            cause,
        }
    }
}

/// The hint for a pin another program holds.
pub(crate) fn busy_hint(detail: &str) -> &'static str {
    if detail.to_ascii_lowercase().contains("busy") {
        " (another program holds the line: `gpioinfo` shows its consumer; stop it or change the pin in the board file)"
    } else {
        ""
    }
}

/// LEDs and button of one node.
pub trait Gpio: Send {
    /// What it drives, for logs and status (`gpiocdev /dev/gpiochip0 (pinctrl-rp1)`).
    fn name(&self) -> String;
    /// Light the LEDs as `frame` says (LEDs the board lacks are skipped).
    fn set(&mut self, frame: Frame) -> Result<(), GpioError>;
    /// Whether a button is wired.
    fn has_button(&self) -> bool;
    /// The button's level now: true = pressed (after the board's active-low inversion).
    fn button(&mut self) -> Result<bool, GpioError>;
}

/// Which backend `--gpio` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpioSpec {
    /// gpiocdev if the board's chip exists, else the on-board LEDs if they exist, else none.
    Auto,
    None,
    Cdev,
    Rppal,
    Sysfs,
    Sim(PathBuf),
}

impl std::str::FromStr for GpioSpec {
    type Err = GpioError;
    fn from_str(s: &str) -> Result<Self, GpioError> {
        Ok(match s {
            "auto" => GpioSpec::Auto,
            "none" => GpioSpec::None,
            "gpiocdev" => GpioSpec::Cdev,
            "rppal" => GpioSpec::Rppal,
            "sysfs" => GpioSpec::Sysfs,
            _ => match s.strip_prefix("sim:") {
                Some(dir) if !dir.is_empty() => GpioSpec::Sim(PathBuf::from(dir)),
                _ => return Err(GpioError::UnknownSpec(s.to_string())),
            },
        })
    }
}

/// Opens the backend `spec` asks for on `board`. `Ok(None)` means "no LEDs" (`none`, or `auto`
/// on a machine without the board's chip or on-board LEDs).
pub fn open(spec: &GpioSpec, board: &Board) -> Result<Option<Box<dyn Gpio>>, GpioError> {
    let has_pins = board.green.is_some()
        || board.amber.is_some()
        || board.red.is_some()
        || board.button.is_some();
    match spec {
        GpioSpec::None => Ok(None),
        GpioSpec::Sim(dir) => Ok(Some(Box::new(sim::SimGpio::open(dir, board)?))),
        GpioSpec::Cdev => Ok(Some(Box::new(cdev::CdevGpio::open(board)?))),
        GpioSpec::Rppal => Ok(Some(Box::new(pi_mem::RppalGpio::open(board)?))),
        GpioSpec::Sysfs => Ok(Some(Box::new(sysfs::SysfsLeds::open(
            std::path::Path::new(sysfs::LEDS_DIR),
            board,
        )?))),
        GpioSpec::Auto => {
            if has_pins {
                match cdev::CdevGpio::open(board) {
                    Ok(g) => return Ok(Some(Box::new(g))),
                    // A chip that exists but refuses a pin is worth reporting; a missing chip
                    // just means "not this kind of machine": try the on-board LEDs.
                    Err(GpioError::NoChip { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            match sysfs::SysfsLeds::open(std::path::Path::new(sysfs::LEDS_DIR), board) {
                Ok(g) => Ok(Some(Box::new(g))),
                Err(GpioError::NoOnboard { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_unknown_ones_are_named() {
        assert_eq!("auto".parse::<GpioSpec>().ok(), Some(GpioSpec::Auto));
        assert_eq!(
            "sim:/tmp/x".parse::<GpioSpec>().ok(),
            Some(GpioSpec::Sim("/tmp/x".into()))
        );
        let e = "gpiod".parse::<GpioSpec>().err().map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("gpiocdev")));
    }

    #[test]
    fn a_missing_chip_is_a_clear_error_and_auto_runs_without_leds() {
        let board = crate::config::Catalog::embedded()
            .get("pi5")
            .cloned()
            .expect("pi5");
        if std::path::Path::new("/dev/gpiochip0").exists() {
            return; // a real GPIO machine: nothing to assert about absence
        }
        let e = cdev::CdevGpio::open(&board).err().map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains("pinctrl-rp1")),
            "{e:?}"
        );
        if !std::path::Path::new(sysfs::LEDS_DIR).exists() {
            assert!(matches!(open(&GpioSpec::Auto, &board), Ok(None)));
        }
    }
}
