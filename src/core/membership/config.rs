//! Membership timings and budgets, with defaults tuned for a small wired LAN of Raspberry Pis
//! and for mooseherd's goals (N = 50: every live member marks a crashed node Down within 3 s at
//! p99, at most 1 KB/s sent per node including 56 bytes of framing per message, and no false Down
//! under 20 % loss with 200 ms jitter; N = 1000: a metadata change reaches everyone within 2 s).
//!
//! # The arithmetic behind the defaults (see [`MembershipConfig::for_rack`])
//! - **Detection** = wait until someone probes the dead node + one probe round + suspicion
//!   timeout + spreading `Down`. With N - 1 probers each visiting every member once per round in
//!   its own shuffled order, the chance that nobody probes a given node during `t` is about
//!   `exp(-t / probe_interval)`, so the p99 wait is `4.6 * probe_interval` = 0.92 s at 200 ms.
//!   The probe round (direct 60 ms, then indirect until the next tick) adds 0.2 s. The other
//!   probers keep failing on the dead node at about one per probe interval, so after ~0.6 s the
//!   3 expected confirmations have arrived and the timeout is at its minimum
//!   (0.5 s * log10(50) = 0.85 s). `Down` then spreads by push gossip (fanout 2 every 200 ms)
//!   plus piggybacking in ~0.4-0.6 s. Total p99 ≈ 0.92 + 0.2 + 0.85..1.4 + 0.5 < 3 s
//!   (measured with the in-test driver: p50 1.5 s, p99 2.1 s over 100 crashes).
//! - **Bandwidth** when nothing changes: one Ping out and, on average, one Ack out per probe
//!   interval, each ~6 bytes of postcard + 56 bytes of frame: 2 * 62 B / 0.2 s = 620 B/s
//!   (measured 590 B/s). Full-state anti-entropy (~40 B per member with metadata, push and
//!   reply) once per `max(30 s, N * 1 s)`: ~80 B/s at N = 50. News costs at most
//!   `retransmit_limit` copies of each update per node (8 at N = 50), mostly riding on pings;
//!   push gossip (2 messages per 200 ms) only runs while there is news.
//! - **No false Down**: a suspected live node hears of it at once (the prober tells it directly,
//!   and every ping to a suspect carries the suspicion) and refutes; the refutation has the
//!   whole suspicion timeout (>= 0.85 s at N = 50, 3.4 s without confirmations) to spread. At
//!   20 % loss a probe fails only if the ping or ack and all 4 indirect paths (4 packets each)
//!   fail: 0.36 * 0.59^4 ≈ 4 %, and a minimum timeout needs 4 independent failures at the same
//!   incarnation. Round trips beyond the probe timeout (jitter) stretch every timing by
//!   `rto / probe_timeout` (a TCP-style estimate of the probe round trip), and evidence of this
//!   node's own slowness by the Local Health Multiplier, together at most 9x.
//! - **Convergence at N = 1000**: push gossip informs ~3x more nodes per 200 ms round
//!   (log3(1000) ≈ 6.3 rounds) while piggybacking on 5 pings/s and their acks adds push-pull;
//!   measured 0.8 s on a loss-free LAN.

use std::time::Duration;

/// Membership timings and budgets. Build with [`MembershipConfig::for_rack`] and adjust.
#[derive(Debug, Clone, PartialEq)]
pub struct MembershipConfig {
    /// Time between two probes (one member probed per interval), scaled by `LHM + 1`.
    pub probe_interval: Duration,
    /// How long to wait for a direct Ack before asking helpers, scaled by `LHM + 1`. Helpers send
    /// a Nack after the same (their own) timeout. Must leave room for the indirect round in the
    /// probe interval: at most a third of it.
    pub probe_timeout: Duration,
    /// How many helpers probe on our behalf when the direct probe times out (SWIM's k).
    pub indirect_probes: usize,
    /// Suspicion timeout once `suspicion_confirmations` members confirmed (Lifeguard's min).
    pub suspicion_min: Duration,
    /// Suspicion timeout with no confirmation (Lifeguard's max).
    pub suspicion_max: Duration,
    /// Independent confirmations after which the timeout is `suspicion_min` (Lifeguard's K;
    /// capped at N - 2 because the accuser and the suspect cannot confirm).
    pub suspicion_confirmations: u32,
    /// Ceiling of the Local Health Multiplier (timings stretch up to `max + 1` times).
    pub max_local_health: u8,
    /// While there is news, push it to `gossip_fanout` random members this often.
    pub gossip_interval: Duration,
    /// Members pushed to per gossip round.
    pub gossip_fanout: usize,
    /// How many times each update is sent by each node (SWIM's lambda * log N).
    pub retransmit_limit: u32,
    /// Updates piggybacked per message at most (at most 127).
    pub max_piggyback: usize,
    /// Postcard payload bytes per message at most. The frame limit is 1400 bytes including
    /// 56 bytes of framing; 1300 leaves margin.
    pub max_message_bytes: usize,
    /// Anti-entropy: push the full view to one random member (which replies with its own) this
    /// often. Repairs news whose retransmissions were all lost.
    pub sync_interval: Duration,
    /// At start, ask this many random members for their full view, so that a restarted node
    /// learns what the rack thinks of it (and refutes) and everyone's metadata at once.
    pub startup_sync_peers: usize,
    /// Probe one random Down member every this many probe ticks (0 = never), so that a rebooted
    /// node whose own startup messages were lost is noticed. Scaled as `max(4, n / 5)` so that
    /// the whole rack sends about 5 such pings per probe interval.
    pub down_probe_every: u32,
}

impl MembershipConfig {
    /// Defaults for a wired LAN rack of `n` nodes (see the module documentation for the
    /// arithmetic). Values that depend on `n`: suspicion timeouts grow with `log10 n`, the
    /// retransmit limit is `6 * ceil(log10(n + 1))` (with 4, about one metadata change in 200 at
    /// N=50 missed a node, which then waited for anti-entropy: convergence p99 7.6 s; with 6 it is
    /// 0.6 s at the same bytes per second), the anti-entropy interval is
    /// `max(30 s, n * 1 s)` so that its bytes per second stay flat, and the expected
    /// confirmations are capped at `n - 2`.
    pub fn for_rack(n: usize) -> Self {
        let n = n.max(1);
        let log_n = (n as f64).log10().max(1.0);
        let suspicion_min = Duration::from_secs_f64(0.5 * log_n);
        let retransmit_limit = 6 * ((n as f64 + 1.0).log10().ceil().max(1.0) as u32);
        MembershipConfig {
            probe_interval: Duration::from_millis(200),
            probe_timeout: Duration::from_millis(60),
            indirect_probes: 4,
            suspicion_min,
            suspicion_max: suspicion_min * 4,
            suspicion_confirmations: 3.min(u32::try_from(n.saturating_sub(2)).unwrap_or(3)),
            max_local_health: 8,
            gossip_interval: Duration::from_millis(200),
            gossip_fanout: 2,
            retransmit_limit,
            max_piggyback: 32,
            max_message_bytes: 1300,
            sync_interval: Duration::from_secs(30).max(Duration::from_secs(n as u64)),
            startup_sync_peers: 2,
            down_probe_every: u32::try_from((n / 5).max(4)).unwrap_or(u32::MAX),
        }
    }

    /// A copy with out-of-range values brought into range (never fails: membership must run).
    pub(crate) fn normalized(&self) -> Self {
        let mut c = self.clone();
        c.probe_interval = c.probe_interval.max(Duration::from_millis(1));
        c.probe_timeout = c
            .probe_timeout
            .max(Duration::from_micros(100))
            .min(c.probe_interval / 3);
        c.suspicion_min = c.suspicion_min.max(Duration::from_millis(1));
        c.suspicion_max = c.suspicion_max.max(c.suspicion_min);
        c.gossip_interval = c.gossip_interval.max(Duration::from_millis(1));
        c.retransmit_limit = c.retransmit_limit.max(1);
        c.max_piggyback = c.max_piggyback.clamp(1, 127);
        c.max_message_bytes = c.max_message_bytes.max(64);
        c.sync_interval = c.sync_interval.max(Duration::from_millis(100));
        c
    }
}

impl Default for MembershipConfig {
    /// [`MembershipConfig::for_rack`] for a 5-node rack.
    fn default() -> Self {
        MembershipConfig::for_rack(5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_with_rack_size() {
        let small = MembershipConfig::for_rack(5);
        assert_eq!(small.suspicion_min, Duration::from_millis(500));
        assert_eq!(small.suspicion_max, Duration::from_secs(2));
        assert_eq!(small.retransmit_limit, 6);
        assert_eq!(small.suspicion_confirmations, 3);
        let fifty = MembershipConfig::for_rack(50);
        assert_eq!(fifty.retransmit_limit, 12);
        assert_eq!(fifty.suspicion_min.as_millis(), 849);
        assert_eq!(fifty.sync_interval, Duration::from_secs(50));
        let big = MembershipConfig::for_rack(1000);
        assert_eq!(big.retransmit_limit, 24);
        assert_eq!(MembershipConfig::for_rack(3).suspicion_confirmations, 1);
        assert_eq!(MembershipConfig::for_rack(2).suspicion_confirmations, 0);
    }
}
