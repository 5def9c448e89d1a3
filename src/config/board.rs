//! Board files: which GPIO chip, LED and button pins, on-board LEDs and watchdog limit a Pi model has.
//!
//! The four boards of `boards/` are embedded in the binary; a directory of `*.toml` files (default
//! `/etc/mooseherd/boards`) can add boards or replace embedded ones by name, for a rack with a
//! custom HAT. Every board is validated: pins on the 40-pin header, none used twice, none of the
//! reserved pins (HAT EEPROM, serial console).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::diag::{Diagnostic, Diagnostics};
use super::parse::parse_toml;

/// The boards that ship inside the binary (file name, contents).
pub const EMBEDDED: &[(&str, &str)] = &[
    ("pi3b.toml", include_str!("../../boards/pi3b.toml")),
    ("pi4b.toml", include_str!("../../boards/pi4b.toml")),
    ("pi5.toml", include_str!("../../boards/pi5.toml")),
    ("cm4.toml", include_str!("../../boards/cm4.toml")),
];

/// Where board overrides are looked for when the rack file names no other place.
pub const DEFAULT_OVERRIDE_DIR: &str = "/etc/mooseherd/boards";

const TOP_KEYS: &[&str] = &[
    "name",
    "model",
    "gpio_chip",
    "header_lines",
    "watchdog_max_s",
    "reserved",
    "leds",
    "button",
    "onboard",
];
const LED_NAMES: &[&str] = &["green", "amber", "red"];
const PIN_KEYS: &[&str] = &["pin", "active_low"];
const BUTTON_KEYS: &[&str] = &["pin", "active_low", "pull_up"];
const ONBOARD_KEYS: &[&str] = &["act", "pwr"];

fn known_keys(path: &[String]) -> &'static [&'static str] {
    match path {
        [] => TOP_KEYS,
        [t] if t == "leds" => LED_NAMES,
        [t, _] if t == "leds" => PIN_KEYS,
        [t] if t == "button" => BUTTON_KEYS,
        [t] if t == "onboard" => ONBOARD_KEYS,
        _ => &[],
    }
}

#[derive(Debug, Deserialize)]
struct RawBoard {
    name: Spanned<String>,
    model: String,
    gpio_chip: String,
    header_lines: Spanned<u32>,
    watchdog_max_s: Spanned<u32>,
    #[serde(default)]
    reserved: Vec<Spanned<u32>>,
    #[serde(default)]
    leds: RawLeds,
    button: Option<RawButton>,
    #[serde(default)]
    onboard: Onboard,
}

#[derive(Debug, Default, Deserialize)]
struct RawLeds {
    green: Option<RawPin>,
    amber: Option<RawPin>,
    red: Option<RawPin>,
}

#[derive(Debug, Deserialize)]
struct RawPin {
    pin: Spanned<u32>,
    #[serde(default)]
    active_low: bool,
}

#[derive(Debug, Deserialize)]
struct RawButton {
    pin: Spanned<u32>,
    #[serde(default = "yes")]
    active_low: bool,
    #[serde(default = "yes")]
    pull_up: bool,
}

fn yes() -> bool {
    true
}

/// An output pin driving a status LED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LedPin {
    pub pin: u32,
    pub active_low: bool,
}

/// The input pin of the switchover button.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ButtonPin {
    pub pin: u32,
    pub active_low: bool,
    pub pull_up: bool,
}

/// Names of the on-board LEDs under `/sys/class/leds`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Onboard {
    pub act: Option<String>,
    pub pwr: Option<String>,
}

/// A validated board description.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Board {
    pub name: String,
    pub model: String,
    /// Label of the GPIO character device (stable across kernels, unlike the chip number).
    pub gpio_chip: String,
    pub header_lines: u32,
    pub watchdog_max_s: u32,
    pub reserved: Vec<u32>,
    pub green: Option<LedPin>,
    pub amber: Option<LedPin>,
    pub red: Option<LedPin>,
    pub button: Option<ButtonPin>,
    pub onboard: Onboard,
    /// Where it came from: `embedded` or the override file's path.
    pub source: String,
}

/// Parses and validates one board file. Diagnostics go to `diags`.
pub fn parse_board(src: &str, source: &str, diags: &mut Diagnostics<'_>) -> Option<Board> {
    let raw: RawBoard = parse_toml(src, diags, &known_keys)?;
    let before = diags.has_errors();
    if raw.header_lines.get_ref() == &0 || *raw.header_lines.get_ref() > 64 {
        diags.error(
            raw.header_lines.span(),
            format!(
                "header_lines = {} is not a GPIO count a Pi header has (1..=64)",
                raw.header_lines.get_ref()
            ),
        );
    }
    let wd = *raw.watchdog_max_s.get_ref();
    if !(1..=300).contains(&wd) {
        diags.error(
            raw.watchdog_max_s.span(),
            format!("watchdog_max_s = {wd} is outside 1..=300 seconds"),
        );
    }
    if raw.name.get_ref().is_empty()
        || !raw
            .name
            .get_ref()
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        diags.error(
            raw.name.span(),
            "board name must be letters, digits, `-` or `_`",
        );
    }
    let reserved: Vec<u32> = raw.reserved.iter().map(|r| *r.get_ref()).collect();
    let lines = *raw.header_lines.get_ref();
    let mut used: BTreeMap<u32, String> = BTreeMap::new();
    let mut check_pin = |pin: &Spanned<u32>, what: String, diags: &mut Diagnostics<'_>| {
        let p = *pin.get_ref();
        if p >= lines {
            diags.error(
                pin.span(),
                format!(
                    "{what}: pin {p} is not on the header (valid: 0..={})",
                    lines.saturating_sub(1)
                ),
            );
        } else if reserved.contains(&p) {
            diags.error(
                pin.span(),
                format!("{what}: pin {p} is reserved on this board (reserved: {reserved:?})"),
            );
        } else if let Some(other) = used.get(&p) {
            diags.error(
                pin.span(),
                format!("{what}: pin {p} is already used by {other}"),
            );
        } else {
            used.insert(p, what);
        }
    };
    let mut led = |name: &str, raw: &Option<RawPin>, diags: &mut Diagnostics<'_>| {
        raw.as_ref().map(|p| {
            check_pin(&p.pin, format!("leds.{name}"), diags);
            LedPin {
                pin: *p.pin.get_ref(),
                active_low: p.active_low,
            }
        })
    };
    let green = led("green", &raw.leds.green, diags);
    let amber = led("amber", &raw.leds.amber, diags);
    let red = led("red", &raw.leds.red, diags);
    if let Some(b) = &raw.button {
        check_pin(&b.pin, "button".to_string(), diags);
    }
    if diags.has_errors() && !before {
        return None;
    }
    Some(Board {
        name: raw.name.into_inner(),
        model: raw.model,
        gpio_chip: raw.gpio_chip,
        header_lines: lines,
        watchdog_max_s: wd,
        reserved,
        green,
        amber,
        red,
        button: raw.button.map(|b| ButtonPin {
            pin: *b.pin.get_ref(),
            active_low: b.active_low,
            pull_up: b.pull_up,
        }),
        onboard: raw.onboard,
        source: source.to_string(),
    })
}

/// Errors loading the board catalogue.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error("cannot read board directory {}: {cause}", dir.display())]
    ReadDir { dir: PathBuf, cause: std::io::Error },
    #[error("cannot read board file {}: it {cause}", file.display())]
    ReadFile {
        file: PathBuf,
        cause: crate::bounded_read::ReadError,
    },
    #[error("invalid board file(s):\n{}", .0.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
}

/// All boards known to this binary, by name.
#[derive(Debug, Clone)]
pub struct Catalog {
    boards: BTreeMap<String, Board>,
}

impl Catalog {
    /// The embedded boards only.
    pub fn embedded() -> Self {
        let mut boards = BTreeMap::new();
        for (file, src) in EMBEDDED {
            let path = PathBuf::from(format!("boards/{file}"));
            let mut diags = Diagnostics::new(&path, src);
            // The embedded files are checked by a test; a broken one is a build defect.
            if let Some(b) = parse_board(src, "embedded", &mut diags) {
                boards.insert(b.name.clone(), b);
            }
        }
        Self { boards }
    }

    /// Embedded boards plus the `*.toml` files of `dir` (which replace embedded ones of the same
    /// name). A missing directory is fine (no overrides); an unreadable or invalid file is an error.
    pub fn load(dir: Option<&Path>) -> Result<Self, BoardError> {
        let mut cat = Self::embedded();
        let Some(dir) = dir else { return Ok(cat) };
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(cat),
            Err(source) => {
                return Err(BoardError::ReadDir {
                    dir: dir.to_path_buf(),
                    cause: source,
                });
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        let mut all = Vec::new();
        for file in files {
            use crate::bounded_read::{Links, MAX_CONFIG_BYTES, read_regular};
            let (bytes, _) =
                read_regular(&file, MAX_CONFIG_BYTES, Links::Follow).map_err(|cause| {
                    BoardError::ReadFile {
                        file: file.clone(),
                        cause,
                    }
                })?;
            let src = match super::diag::utf8_text(&file, &bytes) {
                Ok(src) => src,
                Err(d) => {
                    all.push(d);
                    continue;
                }
            };
            let mut diags = Diagnostics::new(&file, src);
            let board = parse_board(src, &file.display().to_string(), &mut diags);
            all.extend(diags.into_sorted());
            if let Some(b) = board {
                cat.boards.insert(b.name.clone(), b);
            }
        }
        if all
            .iter()
            .any(|d| d.severity == super::diag::Severity::Error)
        {
            return Err(BoardError::Invalid(all));
        }
        Ok(cat)
    }

    pub fn get(&self, name: &str) -> Option<&Board> {
        self.boards.get(name)
    }

    pub fn names(&self) -> Vec<&str> {
        self.boards.keys().map(String::as_str).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Board> {
        self.boards.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(src: &str) -> (Option<Board>, Vec<Diagnostic>) {
        let p = PathBuf::from("b.toml");
        let mut d = Diagnostics::new(&p, src);
        let b = parse_board(src, "test", &mut d);
        (b, d.into_sorted())
    }

    #[test]
    fn embedded_boards_are_valid() {
        for (file, src) in EMBEDDED {
            let (b, d) = check(src);
            assert!(d.is_empty(), "{file}: {d:?}");
            let b = b.expect("parsed");
            assert_eq!(format!("{}.toml", b.name), *file);
            assert_eq!(b.watchdog_max_s, 15);
        }
        assert_eq!(
            Catalog::embedded().names(),
            vec!["cm4", "pi3b", "pi4b", "pi5"]
        );
    }

    #[test]
    fn pi5_uses_the_rp1_chip() {
        let cat = Catalog::embedded();
        assert_eq!(
            cat.get("pi5").map(|b| b.gpio_chip.as_str()),
            Some("pinctrl-rp1")
        );
    }

    const BASE: &str = "name = \"x\"\nmodel = \"m\"\ngpio_chip = \"c\"\nheader_lines = 28\nwatchdog_max_s = 15\nreserved = [14, 15]\n";

    #[test]
    fn pin_used_twice_is_refused_at_its_place() {
        let src = format!("{BASE}[leds.green]\npin = 5\n[leds.red]\npin = 5\n");
        let (b, d) = check(&src);
        assert!(b.is_none());
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].line, 10);
        assert!(
            d[0].message.contains("already used by leds.green"),
            "{}",
            d[0].message
        );
    }

    #[test]
    fn reserved_and_out_of_range_pins_are_refused() {
        let src = format!("{BASE}[leds.green]\npin = 14\n[button]\npin = 40\n");
        let (_, d) = check(&src);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].message.contains("reserved"));
        assert!(d[1].message.contains("not on the header"));
    }

    #[test]
    fn unknown_led_and_key_are_named() {
        let src = format!("{BASE}[leds.blue]\npin = 5\n[button]\npin = 6\npullup = true\n");
        let (_, d) = check(&src);
        let msgs: Vec<&str> = d.iter().map(|d| d.message.as_str()).collect();
        assert!(
            msgs.iter().any(|m| m.contains("unknown key `blue`")),
            "{msgs:?}"
        );
        assert!(
            msgs.iter().any(|m| m.contains("did you mean `pull_up`")),
            "{msgs:?}"
        );
    }

    #[test]
    fn override_dir_replaces_and_adds() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("mine.toml"),
            format!("{BASE}[leds.green]\npin = 5\n").replace("\"x\"", "\"mine\""),
        )
        .expect("write");
        let cat = Catalog::load(Some(dir.path())).expect("load");
        assert!(cat.get("mine").is_some());
        assert!(cat.get("pi4b").is_some());
        std::fs::write(dir.path().join("bad.toml"), "name = 3").expect("write");
        assert!(matches!(
            Catalog::load(Some(dir.path())),
            Err(BoardError::Invalid(_))
        ));
    }

    #[test]
    fn a_board_file_that_is_no_file_or_no_text_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("hat.toml");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("fifo");
        let e = Catalog::load(Some(dir.path())).expect_err("a FIFO");
        assert_eq!(
            e.to_string(),
            format!(
                "cannot read board file {}: it is a FIFO, not a regular file",
                fifo.display()
            )
        );
        std::fs::remove_file(&fifo).expect("rm");
        std::fs::write(&fifo, b"name = \"a\"\nmodel = \"\xfe\"\n").expect("write");
        match Catalog::load(Some(dir.path())) {
            Err(BoardError::Invalid(d)) => assert_eq!((d[0].line, d[0].col), (2, 10)),
            other => panic!("{other:?}"),
        }
    }
}
