//! How often the agent answers a stale frame with a sync frame. An authentic frame that echoes a
//! stale incarnation of ours (sent before one of us restarted, or recorded and replayed by
//! someone on the network) is answered with a sync frame ([`crate::wire::Opened::NeedsSync`]).
//! One answer per peer is enough to resynchronise it, so the agent sends at most one per peer per
//! [`SYNC_INTERVAL`]: a flood of replayed frames costs a peer one small frame a second, not one
//! per frame. Pure: the caller passes the time.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::core::NodeId;

/// At most one sync answer per peer within this time.
pub const SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// When each peer last got a sync answer.
#[derive(Debug, Default)]
pub struct SyncLimit {
    last: BTreeMap<NodeId, Instant>,
    /// Answers not sent because of the limit (for the debug log).
    suppressed: u64,
}

impl SyncLimit {
    /// Whether a sync answer to `peer` may go out at `now`; if so, it counts as sent.
    pub fn allow(&mut self, peer: NodeId, now: Instant) -> bool {
        match self.last.get(&peer) {
            Some(&t) if now.saturating_duration_since(t) < SYNC_INTERVAL => {
                self.suppressed = self.suppressed.saturating_add(1);
                false
            }
            _ => {
                self.last.insert(peer, now);
                true
            }
        }
    }

    /// Sync answers not sent so far because of the limit.
    pub fn suppressed(&self) -> u64 {
        self.suppressed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_answer_per_peer_per_second_whatever_the_flood() {
        let mut l = SyncLimit::default();
        let t0 = Instant::now();
        let (a, b) = (NodeId(1), NodeId(2));
        // 1000 stale frames from `a` within 0.999 s: one answer.
        let answered = (0..1000)
            .filter(|i| l.allow(a, t0 + Duration::from_micros(i * 999)))
            .count();
        assert_eq!(answered, 1);
        assert_eq!(l.suppressed(), 999);
        // Another peer has a budget of its own.
        assert!(l.allow(b, t0 + Duration::from_millis(10)));
        // A second later `a` is answered again (a lost sync frame is repaired).
        assert!(l.allow(a, t0 + SYNC_INTERVAL));
        assert!(!l.allow(a, t0 + SYNC_INTERVAL + Duration::from_millis(1)));
    }
}
