//! A drill's timeline as an SVG picture a person can read: for each node, when it had the VIP
//! and when it ran an mfsmaster accepting connections (from the split-brain monitor), and below,
//! every write of the writer with how long it took (log scale; failed writes in red).

use std::fmt::Write as _;

use super::drill::DrillReport;

const LEFT: f64 = 70.0;
const WIDTH: f64 = 820.0;
const LANE: f64 = 26.0;
const PLOT: f64 = 150.0;

/// Escapes text for SVG.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The SVG of report `r`.
pub fn render(r: &DrillReport) -> String {
    let t0 = r
        .samples
        .first()
        .map_or(-1000, |s| s.at_ms)
        .clamp(-3000, -500);
    let t1 = r.samples.last().map_or(10_000, |s| s.at_ms).max(t0 + 1000);
    let x = |ms: i64| LEFT + (ms - t0) as f64 / (t1 - t0) as f64 * WIDTH;
    let lanes_h = LANE * r.nodes.len() as f64;
    let top = 46.0;
    let plot_top = top + lanes_h + 30.0;
    let height = plot_top + PLOT + 40.0;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" font-family="sans-serif" font-size="11">
<rect width="100%" height="100%" fill="white"/>
"#,
        w = LEFT + WIDTH + 20.0
    );
    let first = r
        .first_write_ms
        .map_or("none within the timeout".to_string(), |ms| {
            format!("{:.2} s", ms as f64 / 1000.0)
        });
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="16" font-size="13" font-weight="bold">{} - {}: first acknowledged write after the fault {first}, longest pause {:.2} s, lost {}, split brain {:.2} s</text>"#,
        esc(&r.system),
        esc(&r.drill),
        r.max_gap_ms as f64 / 1000.0,
        r.lost,
        r.split_brain_s
    );
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="32" fill="#555">blue: VIP configured on the node; green: its mfsmaster runs and accepts connections (sampled every 100 ms); red line: fault; grey line: healed</text>"##
    );
    // Lanes.
    for (i, n) in r.nodes.iter().enumerate() {
        let y = top + LANE * i as f64;
        let _ = writeln!(
            s,
            r##"<text x="8" y="{}">{}</text><line x1="{LEFT}" x2="{}" y1="{}" y2="{}" stroke="#eee"/>"##,
            y + 15.0,
            esc(n),
            LEFT + WIDTH,
            y + LANE,
            y + LANE
        );
        for (mask, off, colour) in [(0, 3.0, "#3b6fd4"), (1, 13.0, "#2e9e4f")] {
            let bit = 1u32 << i;
            let mut open: Option<i64> = None;
            let on = |smp: &super::drill::Sample| {
                if mask == 0 {
                    smp.vip & bit != 0
                } else {
                    smp.masters & bit != 0
                }
            };
            for smp in &r.samples {
                match (open, on(smp)) {
                    (None, true) => open = Some(smp.at_ms),
                    (Some(a), false) => {
                        let _ = writeln!(
                            s,
                            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="9" fill="{colour}"/>"#,
                            x(a),
                            y + off,
                            (x(smp.at_ms) - x(a)).max(1.0)
                        );
                        open = None;
                    }
                    _ => {}
                }
            }
            if let Some(a) = open {
                let _ = writeln!(
                    s,
                    r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="9" fill="{colour}"/>"#,
                    x(a),
                    y + off,
                    (x(t1) - x(a)).max(1.0)
                );
            }
        }
    }
    // Write latencies, log scale from 1 ms to 100 s.
    let ly = |ms: f64| {
        let v = ms.clamp(1.0, 100_000.0).log10() / 5.0;
        plot_top + PLOT - v * PLOT
    };
    for (ms, label) in [
        (1.0, "1 ms"),
        (10.0, "10 ms"),
        (100.0, "0.1 s"),
        (1000.0, "1 s"),
        (10_000.0, "10 s"),
        (100_000.0, "100 s"),
    ] {
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#eee"/><text x="8" y="{:.1}" fill="#555">{label}</text>"##,
            LEFT + WIDTH,
            ly(ms),
            ly(ms),
            ly(ms) + 4.0
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="{:.1}" fill="#555">each write (create + write + fsync of one file through a worker's mfsmount), placed at its start, by how long it took; red: failed</text>"##,
        plot_top - 8.0
    );
    for w in &r.writes {
        if w.at_ms < t0 || w.at_ms > t1 {
            continue;
        }
        match w.took_ms {
            Some(ms) => {
                let _ = writeln!(
                    s,
                    r##"<circle cx="{:.1}" cy="{:.1}" r="1.6" fill="#333"/>"##,
                    x(w.at_ms),
                    ly(ms as f64)
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    r##"<rect x="{:.1}" y="{:.1}" width="2" height="6" fill="#d33"/>"##,
                    x(w.at_ms),
                    plot_top + PLOT - 6.0
                );
            }
        }
    }
    // Time axis, fault and heal lines.
    let axis_y = plot_top + PLOT + 14.0;
    let step = if t1 - t0 > 40_000 { 10_000 } else { 2_000 };
    let mut t = (t0 / step) * step;
    while t <= t1 {
        if t >= t0 {
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{axis_y}" text-anchor="middle" fill="#555">{} s</text>"##,
                x(t),
                t / 1000
            );
        }
        t += step;
    }
    let bottom = plot_top + PLOT;
    let _ = writeln!(
        s,
        r##"<line x1="{:.1}" x2="{:.1}" y1="{top}" y2="{bottom}" stroke="#d33" stroke-dasharray="4 3"/>"##,
        x(0),
        x(0)
    );
    if r.fault_ms > 0 {
        let h = r.fault_ms as i64;
        let _ = writeln!(
            s,
            r##"<line x1="{:.1}" x2="{:.1}" y1="{top}" y2="{bottom}" stroke="#888" stroke-dasharray="4 3"/>"##,
            x(h),
            x(h)
        );
    }
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="{:.1}" fill="#555">seconds after the fault</text>"##,
        axis_y + 16.0
    );
    s.push_str("</svg>\n");
    s
}
