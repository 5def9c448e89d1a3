//! How one LED behaves over time ([`Blink`]), the three LEDs together ([`Pattern`]) and which
//! are lit at one moment ([`Frame`]): the timing layer under the panel.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How one LED behaves over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Blink {
    Off,
    Steady,
    /// Two 120 ms flashes every second.
    DoubleBlink,
    /// 0.5 Hz: one second on, one second off.
    Slow,
    /// 4 Hz.
    Fast,
}

impl Blink {
    /// Whether the LED is lit `phase` after the pattern's origin.
    pub fn lit(self, phase: Duration) -> bool {
        let ms = phase.as_millis() as u64;
        match self {
            Blink::Off => false,
            Blink::Steady => true,
            Blink::DoubleBlink => {
                let p = ms % 1000;
                p < 120 || (240..360).contains(&p)
            }
            Blink::Slow => ms % 2000 < 1000,
            Blink::Fast => ms % 250 < 125,
        }
    }

    /// The next moment (after `phase`) at which the LED changes, as a phase; `None` if never.
    pub fn next_edge(self, phase: Duration) -> Option<Duration> {
        let ms = phase.as_millis() as u64;
        let (period, edges): (u64, &[u64]) = match self {
            Blink::Off | Blink::Steady => return None,
            Blink::DoubleBlink => (1000, &[120, 240, 360, 1000]),
            Blink::Slow => (2000, &[1000, 2000]),
            Blink::Fast => (250, &[125, 250]),
        };
        let base = ms - ms % period;
        let p = ms % period;
        let e = edges.iter().find(|&&e| e > p).copied().unwrap_or(period);
        Some(Duration::from_millis(base + e))
    }
}

/// The three LEDs of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Pattern {
    pub green: Blink,
    pub amber: Blink,
    pub red: Blink,
}

impl Pattern {
    pub const OFF: Pattern = Pattern {
        green: Blink::Off,
        amber: Blink::Off,
        red: Blink::Off,
    };

    fn all(self) -> [Blink; 3] {
        [self.green, self.amber, self.red]
    }

    /// The lights at `phase`.
    pub fn frame(self, phase: Duration) -> Frame {
        Frame {
            green: self.green.lit(phase),
            amber: self.amber.lit(phase),
            red: self.red.lit(phase),
        }
    }

    /// The next phase at which any LED changes.
    pub fn next_edge(self, phase: Duration) -> Option<Duration> {
        self.all().iter().filter_map(|b| b.next_edge(phase)).min()
    }
}

/// Which LEDs are lit at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Frame {
    pub green: bool,
    pub amber: bool,
    pub red: bool,
}

impl Frame {
    pub const ALL: Frame = Frame {
        green: true,
        amber: true,
        red: true,
    };
}
