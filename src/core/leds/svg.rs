//! The README picture of the LED patterns: the documented states and their SVG rendering.

use std::time::Duration;

use super::{Frame, LAMP_TEST, Panel, Pattern, RackView};
use crate::core::{Instant, NodeId};

/// The states of the README picture: (name, view).
pub fn documented_states() -> Vec<(&'static str, Pattern)> {
    let healthy = RackView {
        leader_known: true,
        quorum: true,
        ..RackView::default()
    };
    vec![
        ("healthy follower", healthy.pattern()),
        (
            "leader",
            RackView {
                leader: true,
                ..healthy
            }
            .pattern(),
        ),
        (
            "degraded (follower)",
            RackView {
                degraded: true,
                ..healthy
            }
            .pattern(),
        ),
        (
            "degraded (leader)",
            RackView {
                degraded: true,
                leader: true,
                ..healthy
            }
            .pattern(),
        ),
        (
            "failover in progress",
            RackView {
                leader_known: false,
                ..healthy
            }
            .pattern(),
        ),
        (
            "fenced / no quorum",
            RackView {
                quorum: false,
                ..healthy
            }
            .pattern(),
        ),
        (
            "needs a person",
            RackView {
                needs_person: true,
                ..healthy
            }
            .pattern(),
        ),
        (
            "maintenance",
            RackView {
                maintenance: true,
                ..healthy
            }
            .pattern(),
        ),
    ]
}

/// An SVG picture of the documented patterns (plus the lamp test and node number 3): one strip
/// per state, three rows (green, amber, red), 4 s of time left to right.
pub fn render_svg() -> String {
    use std::fmt::Write;
    const SPAN_MS: u64 = 4000;
    const STEP_MS: u64 = 20;
    const PX_PER_STEP: u64 = 2;
    const ROW: u64 = 12;
    const LABEL_W: u64 = 170;
    let colours = ["#1db954", "#ffb000", "#e0245e"];
    type FrameAt = Box<dyn Fn(Duration) -> Frame>;
    let mut strips: Vec<(String, FrameAt)> = Vec::new();
    let healthy = RackView {
        leader_known: true,
        quorum: true,
        ..RackView::default()
    };
    let lamp = Panel::new(Instant::from_millis(0), NodeId(0));
    strips.push((
        "lamp test, then healthy".into(),
        Box::new(move |d| lamp.show(&healthy, Instant::from_millis(0) + d).frame),
    ));
    let mut number = Panel::new(Instant::from_millis(0), NodeId(2));
    number.blink_number(Instant::from_millis(0) + LAMP_TEST);
    strips.push((
        "node number 3 (short press)".into(),
        Box::new(move |d| {
            number
                .show(&healthy, Instant::from_millis(0) + LAMP_TEST + d)
                .frame
        }),
    ));
    for (name, p) in documented_states() {
        strips.push((name.into(), Box::new(move |d| p.frame(d))));
    }
    let width = LABEL_W + SPAN_MS / STEP_MS * PX_PER_STEP + 10;
    let strip_h = ROW * 3 + 10;
    let height = strips.len() as u64 * strip_h + 30;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"11\">"
    );
    let _ = writeln!(
        s,
        "<rect width=\"{width}\" height=\"{height}\" fill=\"#ffffff\"/>"
    );
    for sec in 0..=SPAN_MS / 1000 {
        let x = LABEL_W + sec * 1000 / STEP_MS * PX_PER_STEP;
        let _ = writeln!(
            s,
            "<line x1=\"{x}\" y1=\"0\" x2=\"{x}\" y2=\"{}\" stroke=\"#cccccc\"/><text x=\"{}\" y=\"{}\" fill=\"#555555\">{sec} s</text>",
            height - 20,
            x + 2,
            height - 6
        );
    }
    for (i, (name, frame_at)) in strips.iter().enumerate() {
        let y0 = i as u64 * strip_h + 4;
        let _ = writeln!(s, "<text x=\"4\" y=\"{}\">{name}</text>", y0 + ROW * 2 - 2);
        for (row, colour) in colours.iter().enumerate() {
            let y = y0 + row as u64 * ROW;
            let _ = writeln!(
                s,
                "<rect x=\"{LABEL_W}\" y=\"{y}\" width=\"{}\" height=\"{}\" fill=\"#222222\"/>",
                SPAN_MS / STEP_MS * PX_PER_STEP,
                ROW - 2
            );
            // Runs of lit steps become one rectangle each.
            let mut run: Option<u64> = None;
            for step in 0..=SPAN_MS / STEP_MS {
                let lit = step < SPAN_MS / STEP_MS && {
                    let f = frame_at(Duration::from_millis(step * STEP_MS));
                    [f.green, f.amber, f.red][row]
                };
                match (lit, run) {
                    (true, None) => run = Some(step),
                    (false, Some(from)) => {
                        let _ = writeln!(
                            s,
                            "<rect x=\"{}\" y=\"{y}\" width=\"{}\" height=\"{}\" fill=\"{colour}\"/>",
                            LABEL_W + from * PX_PER_STEP,
                            (step - from) * PX_PER_STEP,
                            ROW - 2
                        );
                        run = None;
                    }
                    _ => {}
                }
            }
        }
    }
    s.push_str("</svg>\n");
    s
}
