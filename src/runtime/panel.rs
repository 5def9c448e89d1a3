//! The front panel in the runtime: owns the GPIO backend, samples the button, asks the core
//! ([`crate::core::leds::Panel`], [`crate::core::button::Button`]) what to show and which gesture
//! was made, and lights the LEDs. Gestures go back to the agent loop, which acts on them through
//! the same agent calls as the control socket's `switchover` and `maintenance`.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::config::Board;
use crate::core::agent::AgentStatus;
use crate::core::button::{Button, Gesture, Hold};
use crate::core::leds::{Frame, Indication, Panel, Pattern, RackView, Show};
use crate::core::{Instant, NodeId};
use crate::host::gpio::{self, Gpio, GpioSpec};

/// Button sampling while nothing happens (a press is at least ~100 ms).
const BUTTON_IDLE_POLL: Duration = Duration::from_millis(50);
/// Button sampling while it is down or bouncing.
const BUTTON_BUSY_POLL: Duration = Duration::from_millis(10);

/// The LEDs as `mooseherd status` shows them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LedReport {
    /// The backend (`sim DIR`, `gpiocdev /dev/gpiochip0 (pinctrl-rp1)`, `none: why`).
    pub backend: String,
    pub indication: Indication,
    pub pattern: Pattern,
    pub frame: Frame,
    /// The rack as the LEDs judge it (used to show the other members' LEDs).
    pub view: RackView,
}

pub struct PanelDriver {
    gpio: Option<Box<dyn Gpio>>,
    backend: String,
    panel: Panel,
    button: Option<Button>,
    next_button_poll: Instant,
    voters: Vec<NodeId>,
    view: RackView,
    show: Option<Show>,
    lit: Option<Frame>,
    error_logged: bool,
}

impl PanelDriver {
    /// Opens the backend; on failure logs why and runs without LEDs (the agent must not stop
    /// because a LED HAT is missing).
    pub fn open(
        spec: &GpioSpec,
        board: Option<&Board>,
        me: NodeId,
        voters: Vec<NodeId>,
        now: Instant,
    ) -> Self {
        let (gpio, backend) = match board.map(|b| gpio::open(spec, b)) {
            None => (None, "none: the node's board is unknown".to_string()),
            Some(Ok(Some(g))) => {
                let name = g.name();
                info!("status LEDs: {name}");
                (Some(g), name)
            }
            Some(Ok(None)) => {
                info!("status LEDs: none found ({spec:?}); running without LEDs");
                (None, "none".to_string())
            }
            Some(Err(e)) => {
                warn!("status LEDs and button disabled: {e}");
                (None, format!("none: {e}"))
            }
        };
        let mut d = PanelDriver {
            button: None,
            gpio,
            backend,
            panel: Panel::new(now, me),
            next_button_poll: now,
            voters,
            view: RackView::default(),
            show: None,
            lit: None,
            error_logged: false,
        };
        if let Some(g) = d.gpio.as_mut().filter(|g| g.has_button()) {
            let level = g.button().unwrap_or(false);
            d.button = Some(Button::new(now, level));
        }
        d
    }

    fn failed(&mut self, e: gpio::GpioError) {
        if !self.error_logged {
            warn!("status LEDs: {e} (further errors not logged)");
            self.error_logged = true;
        }
    }

    /// Samples the button if due and returns a completed gesture.
    pub fn poll_button(&mut self, now: Instant) -> Option<Gesture> {
        let (Some(g), Some(b)) = (self.gpio.as_mut(), self.button.as_mut()) else {
            return None;
        };
        if now < self.next_button_poll {
            return None;
        }
        let level = match g.button() {
            Ok(l) => l,
            Err(e) => {
                self.failed(e);
                return None;
            }
        };
        let gesture = b.input(now, level);
        let busy = level || b.is_pressed();
        self.next_button_poll = now
            + if busy {
                BUTTON_BUSY_POLL
            } else {
                BUTTON_IDLE_POLL
            };
        self.panel.set_armed(b.held(now));
        if gesture == Some(Gesture::ShortPress) {
            self.panel.blink_number(now);
        }
        if let Some(h) = b
            .held(now)
            .filter(|h| matches!(h, Hold::Switchover | Hold::Maintenance))
        {
            tracing::debug!(?h, "button held");
        }
        gesture
    }

    /// Recomputes the lights for the agent's status and sets them if they changed.
    pub fn update(&mut self, now: Instant, status: &AgentStatus, host_trouble: bool) {
        if self.show.is_none() {
            // The lamp test starts with the first frame shown, not when the backend was opened
            // (a slow start must not eat its first steps).
            self.panel = Panel::new(now, status.node);
        }
        self.view = RackView::from_status(status, &self.voters, host_trouble);
        let show = self.panel.show(&self.view, now);
        if self.show.map(|s| s.indication) != Some(show.indication) {
            tracing::debug!(indication = ?show.indication, "status LEDs");
        }
        self.show = Some(show);
        if self.lit != Some(show.frame)
            && let Some(g) = self.gpio.as_mut()
        {
            match g.set(show.frame) {
                Ok(()) => self.lit = Some(show.frame),
                Err(e) => self.failed(e),
            }
        }
    }

    /// When the loop must come back (a LED edge or a button sample), if there is hardware.
    pub fn next_wake(&self, now: Instant) -> Option<Instant> {
        self.gpio.as_ref()?;
        let led = self.panel.next_change(&self.view, now);
        // Sampling is every 10 ms while the button is down or bouncing, so the samples also serve
        // the debounce end and the hold thresholds (`Button::poll_timeout`) to within 10 ms.
        let button = self.button.as_ref().map(|_| self.next_button_poll);
        [led, button].into_iter().flatten().min()
    }

    pub fn report(&self) -> Option<LedReport> {
        let s = self.show?;
        Some(LedReport {
            backend: self.backend.clone(),
            indication: s.indication,
            pattern: s.pattern,
            frame: s.frame,
            view: self.view,
        })
    }
}

/// Carries out a button gesture with the agent calls the control socket uses. Returns a line
/// for the log.
pub fn act(
    gesture: Gesture,
    agent: &mut crate::core::agent::Agent,
    now: Instant,
    maintenance: &mut bool,
    name_of: &dyn Fn(NodeId) -> String,
) {
    let epoch = agent.lease().highest_epoch();
    match gesture {
        Gesture::ShortPress => info!(epoch, "button: short press, blinking the node number"),
        Gesture::Switchover => {
            if agent.switchover(now, None) {
                info!(
                    epoch,
                    "button: switchover: stepping down and fencing, then handing over"
                );
            } else {
                let leader = agent
                    .status(now)
                    .leader
                    .map(name_of)
                    .unwrap_or_else(|| "unknown".into());
                warn!(
                    epoch,
                    "button: switchover ignored: this node is not the leader (the leader is {leader}; press its button)"
                );
            }
        }
        Gesture::Maintenance => {
            *maintenance = !*maintenance;
            agent.set_maintenance(now, *maintenance);
            info!(
                epoch,
                "button: maintenance {}",
                if *maintenance {
                    "on: not eligible (a leader hands over)"
                } else {
                    "off"
                }
            );
        }
    }
}
