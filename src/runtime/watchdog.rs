//! When the agent may ping the systemd watchdog. The pings come from the main loop itself, so a
//! loop that is stuck stops them; on top of that, the loop stops them while the host thread has
//! not answered a command for [`HOST_STUCK`] (a driver hung in the kernel, on a dead USB disk,
//! ...): systemd then kills the agent's whole cgroup, mfsmaster and the VIP holder included, which
//! is the fencing that thread could not do, and starts it again.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The host thread may take this long for one command (stopping mfsmaster waits for its stop
/// deadline; nothing legitimate takes longer).
pub const HOST_STUCK: Duration = Duration::from_secs(30);

/// Commands in flight to the host thread, oldest first.
#[derive(Debug, Default)]
pub struct LoopHealth {
    outstanding: VecDeque<Instant>,
}

/// Kept when the host thread is stuck and the loop keeps asking.
const MAX_TRACKED: usize = 64;

impl LoopHealth {
    /// A command went to the host thread.
    pub fn sent(&mut self, now: Instant) {
        if self.outstanding.len() < MAX_TRACKED {
            self.outstanding.push_back(now);
        }
    }

    /// The host thread answered one command (it answers in order).
    pub fn answered(&mut self) {
        self.outstanding.pop_front();
    }

    /// `Err(why)` while the watchdog must not be pinged.
    pub fn check(&self, now: Instant) -> Result<(), String> {
        match self.outstanding.front() {
            Some(&t) if now.saturating_duration_since(t) > HOST_STUCK => Err(format!(
                "the host driver has not answered for {} s (stuck in a system call?)",
                now.saturating_duration_since(t).as_secs()
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_thread_that_stops_answering_stops_the_pings() {
        let t0 = Instant::now();
        let mut h = LoopHealth::default();
        h.sent(t0);
        assert!(h.check(t0 + Duration::from_secs(5)).is_ok());
        h.answered();
        for i in 0..200 {
            h.sent(t0 + Duration::from_secs(i));
        }
        let e = h.check(t0 + Duration::from_secs(31));
        assert!(e.is_err_and(|e| e.contains("not answered for 31 s")));
        h.answered();
        assert!(h.check(t0 + Duration::from_secs(31)).is_ok());
    }
}
