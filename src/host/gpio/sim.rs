//! The `sim` GPIO backend: no hardware. Every LED change is appended to `DIR/leds.jsonl` as
//! `{"t_ms":…,"green":…,"amber":…,"red":…}` (t_ms: wall clock, ms since the Unix epoch), and the
//! button is the file `DIR/button` (`1` or `pressed` = held; absent or anything else = released).
//! The lab gives every node one; tests press the button by writing the file. Past 4 MiB the
//! timeline moves to `leds.jsonl.1` (one old generation is kept).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Gpio, GpioError};
use crate::config::Board;
use crate::core::leds::Frame;

/// The timeline is rotated past this size.
const MAX_TIMELINE_BYTES: u64 = 4 * 1024 * 1024;

/// One line of `leds.jsonl`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEntry {
    pub t_ms: u64,
    pub green: bool,
    pub amber: bool,
    pub red: bool,
}

pub struct SimGpio {
    dir: PathBuf,
    log: std::fs::File,
    button: bool,
}

/// Path of the timeline in `dir`.
pub fn timeline_path(dir: &Path) -> PathBuf {
    dir.join("leds.jsonl")
}

/// Path of the button file in `dir`.
pub fn button_path(dir: &Path) -> PathBuf {
    dir.join("button")
}

/// Reads a timeline (unreadable lines are skipped: the agent may be writing the last one).
pub fn read_timeline(dir: &Path) -> Vec<TimelineEntry> {
    std::fs::read_to_string(timeline_path(dir))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Presses (`true`) or releases the simulated button of `dir`.
pub fn press(dir: &Path, pressed: bool) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let state: &[u8] = if pressed { b"1\n" } else { b"0\n" };
    crate::atomic_file::write_atomic(&button_path(dir), state, 0o644, None)
}

impl SimGpio {
    pub fn open(dir: &Path, board: &Board) -> Result<Self, GpioError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| GpioError::io(format!("creating {}", dir.display()), e))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(timeline_path(dir))
            .map_err(|e| GpioError::io(format!("opening {}", timeline_path(dir).display()), e))?;
        Ok(SimGpio {
            dir: dir.to_path_buf(),
            log,
            button: board.button.is_some(),
        })
    }
}

impl Gpio for SimGpio {
    fn name(&self) -> String {
        format!("sim {}", self.dir.display())
    }

    fn set(&mut self, frame: Frame) -> Result<(), GpioError> {
        let t_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let entry = TimelineEntry {
            t_ms,
            green: frame.green,
            amber: frame.amber,
            red: frame.red,
        };
        let mut line = serde_json::to_vec(&entry).map_err(|e| GpioError::Other {
            backend: "sim",
            detail: e.to_string(),
        })?;
        line.push(b'\n');
        // A leader's double blink is four lines a second: keep the file bounded (one old
        // generation, `leds.jsonl.1`).
        if self.log.metadata().map(|m| m.len()).unwrap_or(0) > MAX_TIMELINE_BYTES {
            let path = timeline_path(&self.dir);
            let _ = std::fs::rename(&path, self.dir.join("leds.jsonl.1"));
            self.log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .map_err(|e| GpioError::io(format!("opening {}", path.display()), e))?;
        }
        self.log.write_all(&line).map_err(|e| {
            GpioError::io(format!("writing {}", timeline_path(&self.dir).display()), e)
        })
    }

    fn has_button(&self) -> bool {
        self.button
    }

    fn button(&mut self) -> Result<bool, GpioError> {
        match std::fs::read_to_string(button_path(&self.dir)) {
            Ok(s) => Ok(matches!(s.trim(), "1" | "pressed")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(GpioError::io(
                format!("reading {}", button_path(&self.dir).display()),
                e,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_frames_and_reads_the_button() {
        let dir = tempfile::tempdir().expect("tempdir");
        let board = crate::config::Catalog::embedded()
            .get("pi4b")
            .cloned()
            .expect("pi4b");
        let mut g = SimGpio::open(dir.path(), &board).expect("open");
        assert!(g.has_button());
        assert!(!g.button().expect("read"));
        press(dir.path(), true).expect("press");
        assert!(g.button().expect("read"));
        g.set(Frame::ALL).expect("set");
        g.set(Frame::default()).expect("set");
        let t = read_timeline(dir.path());
        assert_eq!(t.len(), 2);
        assert!(t[0].green && t[0].amber && t[0].red);
        assert!(!t[1].green);
    }
}
