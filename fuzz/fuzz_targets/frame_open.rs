//! Fuzz target `frame_open`: whatever bytes arrive on the gossip port, the wire layer must
//! reject them cleanly (never panic) and never deliver a payload twice or a tampered one.
//!
//! Each input is used twice:
//! 1. raw: the bytes go straight into `Endpoint::open`, `open_msg` and `wire::decode` of a
//!    generic message type;
//! 2. scripted: the bytes drive two live endpoints (seal, deliver, replay, tamper, restart,
//!    sync, rotate keys), so the fuzzer also explores the authenticated paths and the replay
//!    windows, with invariants checked after every step.
#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use mooseherd::core::NodeId;
use mooseherd::wire::{self, Endpoint, Keyring, Opened};
use serde::{Deserialize, Serialize};

const RACK: u64 = 0x6d6f_6f73_6568_6572;
const NODES: u16 = 3;
const K0: [u8; 32] = [0x42; 32];
const K1: [u8; 32] = [0x24; 32];

/// A payload type shaped like real gossip: enums, strings, sequences, options, integers.
#[derive(Debug, Serialize, Deserialize)]
enum Msg {
    Ping {
        seq: u64,
        from: u16,
    },
    Ack {
        seq: u64,
        piggyback: Vec<Update>,
    },
    Lease {
        epoch: u64,
        holder: Option<u16>,
        ms: u32,
        note: String,
    },
    Raw(Vec<u8>),
}

#[derive(Debug, Serialize, Deserialize)]
struct Update {
    node: u16,
    incarnation: u64,
    state: u8,
    meta: Option<(String, i64)>,
}

fn keyring(ks: &[(u8, [u8; 32])]) -> Keyring {
    Keyring::from_keys(ks).expect("valid fixed keyring")
}

fn endpoint(me: u16, inc: u64) -> Endpoint {
    Endpoint::new(NodeId(me), NODES, RACK, keyring(&[(0, K0)]), inc).expect("valid endpoint")
}

/// Reads the script from the input.
struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
}

fn raw(data: &[u8]) {
    // Note: libFuzzer's comparison tracing sees the expected Poly1305 tag (the key is compiled
    // in), so it CAN build authentic frames from scratch: a delivery here is not a forgery.
    // What must hold is that an authentic frame is delivered at most once.
    let mut b = endpoint(1, 2);
    if let Ok(Opened::Delivered { .. }) = b.open(data) {
        assert!(b.open(data).is_err(), "frame delivered twice");
    }
    let _ = b.open_msg::<Msg>(data);
    let _ = wire::decode::<Msg>(data);
    let _ = wire::decode::<Update>(data);
    assert!(b.rejects().total() >= 1);
}

fn scripted(data: &[u8]) {
    let mut s = Script(data);
    let mut a = endpoint(0, 1);
    let mut b = endpoint(1, 2);
    let mut next_inc = 3u64;
    let mut recorded: Vec<Vec<u8>> = Vec::new();
    let mut delivered: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut steps = 0;
    let mut a_restarts = 0usize;
    while let Some(op) = s.byte() {
        steps += 1;
        if steps > 64 {
            break;
        }
        match op % 8 {
            0 => {
                let len = usize::from(s.byte().unwrap_or(1));
                let payload = s.bytes(len).to_vec();
                match a.seal(NodeId(1), &payload) {
                    Ok(f) => recorded.push(f),
                    Err(_) => assert!(payload.is_empty()),
                }
            }
            1 | 2 => {
                let Some(f) = pick(&mut s, &recorded) else {
                    continue;
                };
                let mut f = f.clone();
                let tampered = op % 8 == 2;
                if tampered {
                    let at = usize::from(s.byte().unwrap_or(0)) % f.len();
                    f[at] ^= s.byte().unwrap_or(1).max(1);
                }
                match b.open_msg::<Msg>(&f) {
                    Ok(Opened::Delivered { .. }) | Err(wire::Reject::Decode) => {
                        assert!(!tampered, "tampered frame delivered");
                        assert!(delivered.insert(f), "frame delivered twice");
                    }
                    Ok(Opened::Synced { .. }) => unreachable!("a never records sync frames"),
                    Ok(Opened::NeedsSync { reply, .. }) => {
                        assert!(!tampered, "tampered frame authenticated");
                        if s.byte().unwrap_or(0) & 1 == 1 {
                            let _ = a.open(&reply);
                        }
                    }
                    Err(_) => {}
                }
            }
            3 => {
                // b talks to a (sync or payload); a may answer.
                let f = if s.byte().unwrap_or(0) & 1 == 0 {
                    b.seal_sync(NodeId(0))
                } else {
                    b.seal_msg(NodeId(0), &Msg::Ping { seq: 1, from: 1 })
                };
                let f = f.expect("b can always seal to a");
                if let Ok(Opened::NeedsSync { reply, .. }) = a.open(&f) {
                    let _ = b.open(&reply);
                }
            }
            4 => {
                // Each b remembers the windows of MAX_TRACKED_INCARNATIONS incarnations of a;
                // beyond that, replays of the oldest are a documented limit, not a bug.
                if a_restarts + 2 >= wire::MAX_TRACKED_INCARNATIONS {
                    continue;
                }
                a_restarts += 1;
                a = endpoint(0, next_inc);
                next_inc += 1;
            }
            5 => {
                b = endpoint(1, next_inc);
                next_inc += 1;
                delivered.clear(); // a new life of b: the old one's deliveries are forgotten
                a_restarts = 0;
            }
            6 => {
                let f = a.seal_sync(NodeId(1)).expect("a can always seal to b");
                if let Ok(Opened::NeedsSync { reply, .. }) = b.open(&f) {
                    let _ = a.open(&reply);
                }
            }
            _ => {
                // Rotation steps: either side may hold [K0], [K0,K1], [K1,K0] or [K1].
                let sets: [&[(u8, [u8; 32])]; 4] = [
                    &[(0, K0)],
                    &[(0, K0), (1, K1)],
                    &[(1, K1), (0, K0)],
                    &[(1, K1)],
                ];
                let pick = s.byte().unwrap_or(0);
                let set = keyring(sets[usize::from(pick % 4)]);
                if pick & 4 == 0 {
                    a.set_keyring(set)
                } else {
                    b.set_keyring(set)
                }
            }
        }
    }
}

fn pick<'a>(s: &mut Script<'_>, v: &'a [Vec<u8>]) -> Option<&'a Vec<u8>> {
    if v.is_empty() {
        return None;
    }
    v.get(usize::from(s.byte().unwrap_or(0)) % v.len())
}

fuzz_target!(|data: &[u8]| {
    raw(data);
    scripted(data);
});
