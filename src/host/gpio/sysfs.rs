//! The `sysfs` backend: the Pi's own LEDs under `/sys/class/leds` (names from the board's
//! `[onboard]`). ACT (green on the board) shows the green LED's pattern; PWR (red) shows red, or
//! amber when red is off. The kernel trigger (`mmc0`, `default-on`, ...) is set to `none` while the
//! agent runs and put back when it stops. No button.

use std::path::{Path, PathBuf};

use super::{Gpio, GpioError};
use crate::config::Board;
use crate::core::leds::Frame;

/// Where the kernel lists LEDs.
pub const LEDS_DIR: &str = "/sys/class/leds";

struct Led {
    dir: PathBuf,
    /// The trigger to put back.
    trigger: Option<String>,
    max: String,
    lit: Option<bool>,
}

pub struct SysfsLeds {
    act: Option<Led>,
    pwr: Option<Led>,
}

/// The selected trigger in a `trigger` file: `none [mmc0] timer` -> `mmc0`.
fn selected_trigger(s: &str) -> Option<String> {
    s.split_whitespace()
        .find_map(|t| t.strip_prefix('[').and_then(|t| t.strip_suffix(']')))
        .map(str::to_string)
}

impl Led {
    fn open(root: &Path, name: &str) -> Result<Option<Self>, GpioError> {
        let dir = root.join(name);
        if !dir.join("brightness").exists() {
            return Ok(None);
        }
        let trigger = std::fs::read_to_string(dir.join("trigger"))
            .ok()
            .and_then(|s| selected_trigger(&s));
        if trigger.as_deref().is_some_and(|t| t != "none") {
            std::fs::write(dir.join("trigger"), "none").map_err(|e| {
                GpioError::io(format!("setting {} to trigger none", dir.display()), e)
            })?;
        }
        let max = std::fs::read_to_string(dir.join("max_brightness"))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "1".into());
        Ok(Some(Led {
            dir,
            trigger,
            max,
            lit: None,
        }))
    }

    fn set(&mut self, on: bool) -> Result<(), GpioError> {
        if self.lit == Some(on) {
            return Ok(());
        }
        let v = if on { self.max.as_str() } else { "0" };
        std::fs::write(self.dir.join("brightness"), v)
            .map_err(|e| GpioError::io(format!("writing {}/brightness", self.dir.display()), e))?;
        self.lit = Some(on);
        Ok(())
    }
}

impl Drop for Led {
    fn drop(&mut self) {
        if let Some(t) = &self.trigger {
            let _ = std::fs::write(self.dir.join("trigger"), t);
        }
    }
}

impl SysfsLeds {
    /// Opens the board's on-board LEDs under `root` (normally [`LEDS_DIR`]).
    pub fn open(root: &Path, board: &Board) -> Result<Self, GpioError> {
        let open = |n: &Option<String>| match n {
            Some(n) => Led::open(root, n),
            None => Ok(None),
        };
        let act = open(&board.onboard.act)?;
        let pwr = open(&board.onboard.pwr)?;
        if act.is_none() && pwr.is_none() {
            return Err(GpioError::NoOnboard {
                board: board.name.clone(),
                dir: root.to_path_buf(),
            });
        }
        Ok(SysfsLeds { act, pwr })
    }
}

impl Gpio for SysfsLeds {
    fn name(&self) -> String {
        let names: Vec<String> = [&self.act, &self.pwr]
            .into_iter()
            .flatten()
            .map(|l| l.dir.display().to_string())
            .collect();
        format!("sysfs {}", names.join(" "))
    }

    fn set(&mut self, frame: Frame) -> Result<(), GpioError> {
        if let Some(l) = &mut self.act {
            l.set(frame.green)?;
        }
        if let Some(l) = &mut self.pwr {
            l.set(frame.red || frame.amber)?;
        }
        Ok(())
    }

    fn has_button(&self) -> bool {
        false
    }

    fn button(&mut self) -> Result<bool, GpioError> {
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_led(root: &Path, name: &str, trigger: &str) {
        let d = root.join(name);
        std::fs::create_dir_all(&d).expect("mkdir");
        std::fs::write(d.join("brightness"), "0").expect("write");
        std::fs::write(d.join("max_brightness"), "255").expect("write");
        std::fs::write(d.join("trigger"), trigger).expect("write");
    }

    #[test]
    fn drives_act_and_pwr_and_restores_the_trigger() {
        let root = tempfile::tempdir().expect("tempdir");
        fake_led(root.path(), "ACT", "none [mmc0] timer");
        fake_led(root.path(), "PWR", "none [default-on]");
        let board = crate::config::Catalog::embedded()
            .get("pi4b")
            .cloned()
            .expect("pi4b");
        let read =
            |n: &str, f: &str| std::fs::read_to_string(root.path().join(n).join(f)).expect("read");
        {
            let mut leds = SysfsLeds::open(root.path(), &board).expect("open");
            assert_eq!(read("ACT", "trigger"), "none");
            leds.set(Frame {
                green: true,
                amber: true,
                red: false,
            })
            .expect("set");
            assert_eq!(read("ACT", "brightness"), "255");
            assert_eq!(read("PWR", "brightness"), "255");
            leds.set(Frame::default()).expect("set");
            assert_eq!(read("PWR", "brightness"), "0");
        }
        assert_eq!(read("ACT", "trigger"), "mmc0");
        assert_eq!(read("PWR", "trigger"), "default-on");
    }

    #[test]
    fn no_onboard_leds_is_a_clear_error() {
        let root = tempfile::tempdir().expect("tempdir");
        let board = crate::config::Catalog::embedded()
            .get("pi5")
            .cloned()
            .expect("pi5");
        let e = SysfsLeds::open(root.path(), &board)
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("no on-board LED")));
    }
}
