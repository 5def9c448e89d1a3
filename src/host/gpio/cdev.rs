//! The `gpiocdev` backend: the GPIO character device. The chip is found by its label (the board's
//! `gpio_chip`: `pinctrl-rp1` on the Pi 5, `pinctrl-bcm2711` on the Pi 4), because its number
//! changes between kernels. All lines are claimed in one request under the consumer name
//! `mooseherd`; the kernel gives them back when the agent exits, whatever the way.

use gpiocdev::Request;
use gpiocdev::line::{Bias, Value};

use super::{Gpio, GpioError, busy_hint};
use crate::config::Board;
use crate::config::board::LedPin;
use crate::core::leds::Frame;

pub struct CdevGpio {
    chip: String,
    label: String,
    req: Request,
    leds: [Option<u32>; 3],
    button: Option<u32>,
}

/// The path of the chip labelled `label`, or the labels there are.
fn find_chip(label: &str) -> Result<std::path::PathBuf, Vec<String>> {
    let mut found = Vec::new();
    for path in gpiocdev::chip::chips().unwrap_or_default() {
        let Ok(chip) = gpiocdev::chip::Chip::from_path(&path) else {
            continue;
        };
        let Ok(info) = chip.info() else { continue };
        if info.label == label {
            return Ok(path);
        }
        found.push(format!("{} ({})", path.display(), info.label));
    }
    Err(found)
}

impl CdevGpio {
    pub fn open(board: &Board) -> Result<Self, GpioError> {
        let path = find_chip(&board.gpio_chip).map_err(|found| GpioError::NoChip {
            label: board.gpio_chip.clone(),
            board: board.name.clone(),
            found: if found.is_empty() {
                "none (no /dev/gpiochip*)".into()
            } else {
                found.join(", ")
            },
        })?;
        let mut b = Request::builder();
        b.on_chip(&path).with_consumer("mooseherd");
        let leds = [board.green, board.amber, board.red];
        let mut what = Vec::new();
        for (led, name) in leds.iter().zip(["green", "amber", "red"]) {
            if let Some(LedPin { pin, active_low }) = led {
                b.with_line(*pin).as_output(Value::Inactive);
                if *active_low {
                    b.as_active_low();
                } else {
                    b.as_active_high();
                }
                what.push(format!("{name} LED (GPIO {pin})"));
            }
        }
        if let Some(btn) = board.button {
            b.with_line(btn.pin).as_input().with_bias(if btn.pull_up {
                Some(Bias::PullUp)
            } else {
                None
            });
            if btn.active_low {
                b.as_active_low();
            } else {
                b.as_active_high();
            }
            what.push(format!("button (GPIO {})", btn.pin));
        }
        if what.is_empty() {
            return Err(GpioError::NoPins(board.name.clone()));
        }
        let req = b.request().map_err(|e| {
            let detail = e.to_string();
            GpioError::Claim {
                backend: "gpiocdev",
                what: format!("{} on {}", what.join(", "), path.display()),
                hint: busy_hint(&detail),
                detail,
            }
        })?;
        Ok(CdevGpio {
            chip: path.display().to_string(),
            label: board.gpio_chip.clone(),
            req,
            leds: leds.map(|l| l.map(|p| p.pin)),
            button: board.button.map(|b| b.pin),
        })
    }
}

impl Gpio for CdevGpio {
    fn name(&self) -> String {
        format!("gpiocdev {} ({})", self.chip, self.label)
    }

    fn set(&mut self, frame: Frame) -> Result<(), GpioError> {
        for (pin, on) in self.leds.iter().zip([frame.green, frame.amber, frame.red]) {
            if let Some(pin) = pin {
                let v = if on { Value::Active } else { Value::Inactive };
                self.req.set_value(*pin, v).map_err(|e| GpioError::Other {
                    backend: "gpiocdev",
                    detail: format!("setting GPIO {pin}: {e}"),
                })?;
            }
        }
        Ok(())
    }

    fn has_button(&self) -> bool {
        self.button.is_some()
    }

    fn button(&mut self) -> Result<bool, GpioError> {
        let Some(pin) = self.button else {
            return Ok(false);
        };
        self.req
            .value(pin)
            .map(|v| v == Value::Active)
            .map_err(|e| GpioError::Other {
                backend: "gpiocdev",
                detail: format!("reading the button (GPIO {pin}): {e}"),
            })
    }
}
