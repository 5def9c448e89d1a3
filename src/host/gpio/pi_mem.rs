//! The `rppal` backend: GPIO registers through `/dev/gpiomem`, for the Pi 3 and 4 (and CM4) on
//! kernels whose character device is missing or unusable. Pins go back to inputs when the agent
//! stops. The model is detected by rppal; on anything that is not a Pi it fails with a clear error.

use rppal::gpio::{InputPin, OutputPin};

use super::{Gpio, GpioError, busy_hint};
use crate::config::Board;
use crate::core::leds::Frame;

struct Out {
    pin: OutputPin,
    active_low: bool,
}

pub struct RppalGpio {
    leds: [Option<Out>; 3],
    button: Option<(InputPin, bool)>,
}

fn claim(e: rppal::gpio::Error, what: String) -> GpioError {
    let detail = e.to_string();
    GpioError::Claim {
        backend: "rppal",
        what,
        hint: busy_hint(&detail),
        detail,
    }
}

fn pin_u8(pin: u32) -> Result<u8, GpioError> {
    u8::try_from(pin).map_err(|_| GpioError::Other {
        backend: "rppal",
        detail: format!("GPIO {pin} is out of range"),
    })
}

impl RppalGpio {
    pub fn open(board: &Board) -> Result<Self, GpioError> {
        if board.green.is_none()
            && board.amber.is_none()
            && board.red.is_none()
            && board.button.is_none()
        {
            return Err(GpioError::NoPins(board.name.clone()));
        }
        let gpio = rppal::gpio::Gpio::new().map_err(|e| GpioError::Other {
            backend: "rppal",
            detail: format!("{e} (rppal needs a Raspberry Pi 3/4 with /dev/gpiomem)"),
        })?;
        let mut leds: [Option<Out>; 3] = [None, None, None];
        for (slot, (led, name)) in leds.iter_mut().zip(
            [board.green, board.amber, board.red]
                .iter()
                .zip(["green", "amber", "red"]),
        ) {
            if let Some(l) = led {
                let p = gpio
                    .get(pin_u8(l.pin)?)
                    .map_err(|e| claim(e, format!("{name} LED (GPIO {})", l.pin)))?;
                let mut pin = if l.active_low {
                    p.into_output_high()
                } else {
                    p.into_output_low()
                };
                pin.set_reset_on_drop(true);
                *slot = Some(Out {
                    pin,
                    active_low: l.active_low,
                });
            }
        }
        let button = match board.button {
            Some(b) => {
                let p = gpio
                    .get(pin_u8(b.pin)?)
                    .map_err(|e| claim(e, format!("button (GPIO {})", b.pin)))?;
                let pin = if b.pull_up {
                    p.into_input_pullup()
                } else {
                    p.into_input()
                };
                Some((pin, b.active_low))
            }
            None => None,
        };
        Ok(RppalGpio { leds, button })
    }
}

impl Gpio for RppalGpio {
    fn name(&self) -> String {
        "rppal /dev/gpiomem".into()
    }

    fn set(&mut self, frame: Frame) -> Result<(), GpioError> {
        for (out, on) in self
            .leds
            .iter_mut()
            .zip([frame.green, frame.amber, frame.red])
        {
            if let Some(o) = out {
                if on != o.active_low {
                    o.pin.set_high();
                } else {
                    o.pin.set_low();
                }
            }
        }
        Ok(())
    }

    fn has_button(&self) -> bool {
        self.button.is_some()
    }

    fn button(&mut self) -> Result<bool, GpioError> {
        Ok(match &self.button {
            Some((pin, active_low)) => pin.is_low() == *active_low,
            None => false,
        })
    }
}
