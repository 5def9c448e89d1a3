//! Scenario tests of the lease machine on a perfect network with one shared clock.

use std::collections::BTreeSet;
use std::time::Duration;

use super::*;
use crate::core::{Instant, Machine, NodeId};

const D: Duration = Duration::from_millis(3000);

/// Three voters, all master candidates, on a perfect network with instant delivery and one
/// shared clock; `down` nodes neither send nor receive.
struct Rack {
    nodes: Vec<LeaseMachine>,
    down: BTreeSet<usize>,
    now: Instant,
}

impl Rack {
    fn new(prios: &[u8]) -> Self {
        let ids: Vec<NodeId> = (0..prios.len() as u16).map(NodeId).collect();
        let now = Instant::from_millis(0);
        let mut nodes: Vec<LeaseMachine> = ids
            .iter()
            .map(|id| {
                LeaseMachine::new(
                    *id,
                    &ids,
                    true,
                    LeaseConfig::new(D, Duration::from_millis(1000), 10_000),
                    LeaseDurable::default(),
                    u64::from(id.0),
                    now,
                )
            })
            .collect();
        for (n, p) in nodes.iter_mut().zip(prios) {
            n.set_eligibility(
                now,
                Eligibility {
                    eligible: true,
                    priority: *p,
                    reason: "test".into(),
                },
            );
        }
        Rack {
            nodes,
            down: BTreeSet::new(),
            now,
        }
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += Duration::from_millis(10);
            for i in 0..self.nodes.len() {
                if !self.down.contains(&i) {
                    self.nodes[i].handle_timeout(self.now);
                }
            }
            self.deliver();
        }
    }

    fn deliver(&mut self) {
        loop {
            let mut any = false;
            for i in 0..self.nodes.len() {
                while let Some(t) = self.nodes[i].poll_transmit() {
                    any = true;
                    let to = usize::from(t.to.0);
                    if std::env::var("LEASE_TRACE").is_ok() {
                        eprintln!("{} n{i} -> n{to} {:?}", self.now, t.msg);
                    }
                    if !self.down.contains(&i) && !self.down.contains(&to) {
                        self.nodes[to].handle_message(self.now, NodeId(i as u16), t.msg);
                    }
                }
                while let Some(ev) = self.nodes[i].poll_event() {
                    if std::env::var("LEASE_TRACE").is_ok() {
                        eprintln!("{} n{i} {ev:?}", self.now);
                    }
                }
            }
            if !any {
                break;
            }
        }
    }

    fn holders(&self) -> Vec<(usize, u64)> {
        self.nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.down.contains(i))
            .filter_map(|(i, n)| n.holds(self.now).map(|e| (i, e)))
            .collect()
    }
}

/// What one voter answers `from` (draining its output).
fn answer(v: &mut LeaseMachine, now: Instant, from: u16, msg: LeaseMsg) -> Vec<LeaseMsg> {
    v.handle_message(now, NodeId(from), msg);
    std::iter::from_fn(|| v.poll_transmit())
        .filter(|t| t.to == NodeId(from))
        .map(|t| t.msg)
        .collect()
}

#[test]
fn a_voter_that_gave_the_epoch_to_a_loser_grants_the_winners_renewals() {
    let ids: Vec<NodeId> = (0..3).map(NodeId).collect();
    let cfg = LeaseConfig::new(D, Duration::from_millis(1000), 10_000);
    let t0 = Instant::from_millis(0);
    let mut v = LeaseMachine::new(NodeId(2), &ids, false, cfg, LeaseDurable::default(), 7, t0);
    let req = |epoch, renew| LeaseMsg::Request {
        epoch,
        round: 1,
        renew,
    };
    let granted = |m: &[LeaseMsg]| matches!(m, [LeaseMsg::Grant { .. }]);
    // A duel for epoch 1: n1 asks first and gets this voter; n0 wins with the others.
    assert!(granted(&answer(&mut v, t0, 1, req(1, false))));
    assert!(!granted(&answer(&mut v, t0, 0, req(1, false))));
    // n1 lost (its release was lost too): the promise moves to n0, whose renewals prove it
    // won epoch 1; n1 can no longer be granted it.
    let t1 = t0 + Duration::from_millis(800);
    assert!(granted(&answer(&mut v, t1, 0, req(1, true))));
    assert!(!granted(&answer(&mut v, t1, 1, req(1, false))));
    // Its promise lapses (loss): a renewal of the same epoch is still granted.
    let t2 = t1 + D + Duration::from_millis(10);
    assert!(granted(&answer(&mut v, t2, 0, req(1, true))));
    // Once it granted a newer epoch, the old one is never renewed again.
    let t3 = t2 + D + Duration::from_millis(10);
    assert!(granted(&answer(&mut v, t3, 1, req(2, false))));
    let t4 = t3 + D + Duration::from_millis(10);
    assert!(matches!(
        answer(&mut v, t4, 0, req(1, true)).as_slice(),
        [LeaseMsg::Reject {
            why: RejectReason::StaleEpoch,
            ..
        }]
    ));
}

#[test]
fn highest_priority_is_elected_at_first_start_and_keeps_renewing() {
    let mut r = Rack::new(&[100, 200, 150]);
    r.run_for(Duration::from_millis(500));
    assert_eq!(r.holders(), vec![(1, 1)]);
    r.run_for(Duration::from_secs(20));
    assert_eq!(
        r.holders(),
        vec![(1, 1)],
        "renewals keep the same holder and epoch"
    );
}

#[test]
fn holder_lost_then_another_is_elected_with_a_higher_epoch() {
    let mut r = Rack::new(&[100, 200, 150]);
    r.run_for(Duration::from_secs(5));
    assert_eq!(r.holders(), vec![(1, 1)]);
    r.down.insert(1);
    let lost_at = r.now;
    let mut elected = None;
    for _ in 0..1000 {
        r.run_for(Duration::from_millis(10));
        if let Some((i, e)) = r.holders().first().copied() {
            elected = Some((i, e, r.now.saturating_since(lost_at)));
            break;
        }
    }
    let (i, e, after) = elected.expect("a new holder");
    assert_eq!((i, e), (2, 2), "next priority, next epoch");
    assert!(after <= D + Duration::from_millis(700), "took {after:?}");
}

#[test]
fn switchover_hands_over_after_fencing_without_waiting_for_the_lease() {
    let mut r = Rack::new(&[100, 200, 150]);
    r.run_for(Duration::from_secs(5));
    let t = r.now;
    assert!(r.nodes[1].request_switchover(t, Some(NodeId(0))));
    assert_eq!(
        r.nodes[1].leader_epoch(t),
        None,
        "acting leader stops at once"
    );
    r.run_for(Duration::from_millis(100));
    assert_eq!(
        r.holders().len(),
        1,
        "still believes until fenced: nobody else may hold yet"
    );
    let t = r.now;
    r.nodes[1].fenced(t, 1);
    r.deliver();
    r.run_for(Duration::from_millis(200));
    assert_eq!(
        r.holders(),
        vec![(0, 2)],
        "the chosen node holds within 200 ms"
    );
}

#[test]
fn holder_fences_before_its_lease_ends_when_cut_off() {
    let mut r = Rack::new(&[100, 200, 150]);
    r.run_for(Duration::from_secs(5));
    let end = r.nodes[1].lease_end().expect("holder");
    r.down.insert(0);
    r.down.insert(2);
    let mut stepped = None;
    for _ in 0..500 {
        let now = r.now + Duration::from_millis(10);
        r.now = now;
        r.nodes[1].handle_timeout(now);
        while let Some(ev) = r.nodes[1].poll_event() {
            if let LeaseEvent::StepDown { reason, .. } = ev {
                stepped = Some((now, reason));
            }
        }
        while r.nodes[1].poll_transmit().is_some() {}
        if stepped.is_some() {
            break;
        }
    }
    let (at, reason) = stepped.expect("stepped down");
    assert_eq!(reason, StepDownReason::RenewalFailed);
    assert!(
        at + Duration::from_millis(990) <= end,
        "fencing starts a full budget before the end"
    );
    assert_eq!(r.nodes[1].leader_epoch(at), None);
}

#[test]
fn voter_refuses_a_second_node_while_its_promise_lives() {
    let ids = [NodeId(0), NodeId(1), NodeId(2)];
    let cfg = LeaseConfig::new(D, Duration::from_millis(1000), 10_000);
    let mut v = LeaseMachine::new(
        NodeId(0),
        &ids,
        false,
        cfg,
        LeaseDurable::default(),
        1,
        Instant::ZERO,
    );
    let t = Instant::from_millis(10_000);
    v.handle_message(
        t,
        NodeId(1),
        LeaseMsg::Request {
            epoch: 1,
            round: 1,
            renew: false,
        },
    );
    assert!(matches!(
        v.poll_transmit(),
        Some(Transmit {
            msg: LeaseMsg::Grant { epoch: 1, .. },
            ..
        })
    ));
    v.handle_message(
        t + Duration::from_millis(100),
        NodeId(2),
        LeaseMsg::Request {
            epoch: 2,
            round: 1,
            renew: false,
        },
    );
    match v.poll_transmit() {
        Some(Transmit {
            msg:
                LeaseMsg::Reject {
                    why: RejectReason::Promised,
                    holder: Some(NodeId(1)),
                    remaining_ms,
                    ..
                },
            ..
        }) => assert_eq!(remaining_ms, 2900),
        other => panic!("{other:?}"),
    }
    // After the promise ends, a higher epoch is granted; a lower one never.
    v.handle_message(
        t + D,
        NodeId(2),
        LeaseMsg::Request {
            epoch: 1,
            round: 2,
            renew: false,
        },
    );
    assert!(matches!(
        v.poll_transmit(),
        Some(Transmit {
            msg: LeaseMsg::Reject {
                why: RejectReason::StaleEpoch,
                ..
            },
            ..
        })
    ));
    v.handle_message(
        t + D,
        NodeId(2),
        LeaseMsg::Request {
            epoch: 2,
            round: 3,
            renew: false,
        },
    );
    assert!(matches!(
        v.poll_transmit(),
        Some(Transmit {
            msg: LeaseMsg::Grant { epoch: 2, .. },
            ..
        })
    ));
    assert_eq!(v.durable().granted, 2);
}

#[test]
fn restarted_voter_is_silent_for_one_lease() {
    let ids = [NodeId(0), NodeId(1), NodeId(2)];
    let cfg = LeaseConfig::new(D, Duration::from_millis(1000), 10_000);
    let t = Instant::from_millis(50_000);
    let mut v = LeaseMachine::new(
        NodeId(0),
        &ids,
        false,
        cfg,
        LeaseDurable {
            granted: 4,
            stood: 0,
        },
        1,
        t,
    );
    v.handle_message(
        t + Duration::from_millis(3000),
        NodeId(1),
        LeaseMsg::Request {
            epoch: 5,
            round: 1,
            renew: false,
        },
    );
    assert!(matches!(
        v.poll_transmit(),
        Some(Transmit {
            msg: LeaseMsg::Reject {
                why: RejectReason::Restarting,
                ..
            },
            ..
        })
    ));
    v.handle_message(
        t + Duration::from_millis(3100),
        NodeId(1),
        LeaseMsg::Request {
            epoch: 5,
            round: 2,
            renew: false,
        },
    );
    assert!(matches!(
        v.poll_transmit(),
        Some(Transmit {
            msg: LeaseMsg::Grant { epoch: 5, .. },
            ..
        })
    ));
}

#[test]
fn belief_is_shorter_than_any_promise() {
    let cfg = LeaseConfig::new(D, Duration::from_millis(1000), 10_000);
    assert_eq!(cfg.belief(), Duration::from_millis(2940));
    assert!(cfg.restart_silence() > D);
}
