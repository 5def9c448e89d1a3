//! The drill's timeline: lines from the agents' JSON logs (their decisions, with timestamps)
//! placed relative to the fault.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// One line of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Mark {
    /// Milliseconds after the fault.
    pub at_ms: i64,
    pub node: String,
    pub what: String,
}
/// Seconds since the Unix epoch of an RFC 3339 UTC timestamp as tracing writes it
/// (`2026-11-25T09:28:04.628874Z`).
fn parse_ts(ts: &str) -> Option<f64> {
    let (date, time) = ts.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (h, mi, s) = (
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
    );
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + h * 3600.0 + mi * 60.0 + s)
}

/// Decisions worth a timeline line, by the text of the agents' log messages.
const MARKS: &[(&str, &str)] = &[
    ("member is down", "sees the old leader down"),
    ("standing for election", "stands for election"),
    ("elected:", "elected (holds the lease)"),
    ("make the metadata replica primary", "replica primary"),
    ("start mfsmaster", "starts mfsmaster"),
    ("mfsmaster is ready", "mfsmaster accepts connections"),
    ("add the VIP", "VIP up + gratuitous ARP"),
    ("stepping down", "steps down (fencing)"),
    ("fenced:", "fenced"),
];

pub(super) fn timeline(dir: &Path, names: &[String], skip: &str, fault_wall: f64) -> Vec<Mark> {
    let mut marks = Vec::new();
    for n in names.iter().filter(|n| *n != skip) {
        let Ok(text) = std::fs::read_to_string(dir.join(n).join("agent.log")) else {
            continue;
        };
        for line in text.lines() {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let Some(ts) = v["timestamp"].as_str().and_then(parse_ts) else {
                continue;
            };
            if ts < fault_wall - 0.5 || ts > fault_wall + 60.0 {
                continue;
            }
            let msg = v["fields"]["message"].as_str().unwrap_or_default();
            if let Some((_, what)) = MARKS.iter().find(|(needle, _)| msg.contains(needle)) {
                if *what == "sees the old leader down"
                    && v["fields"]["member"].as_str() != Some(skip)
                {
                    continue;
                }
                marks.push(Mark {
                    at_ms: ((ts - fault_wall) * 1000.0).round() as i64,
                    node: n.clone(),
                    what: what.to_string(),
                });
            }
        }
    }
    marks.sort_by_key(|m| m.at_ms);
    marks
}

pub(super) fn wall_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tracing_timestamps() {
        let a = parse_ts("2026-11-25T09:28:04.628874Z").expect("ts");
        let b = parse_ts("2026-11-25T09:28:05.128874Z").expect("ts");
        assert!((b - a - 0.5).abs() < 1e-6);
        assert_eq!(parse_ts("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_ts("1970-01-02T00:00:01.5Z"), Some(86_401.5));
        assert_eq!(parse_ts("junk"), None);
    }
}
