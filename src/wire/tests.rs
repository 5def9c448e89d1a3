//! Stories the wire must get right: delivery, every rejection, tampering, replays across
//! restarts of either side, and key rotation.

use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use super::header::{HEADER_LEN, Header};
use super::*;

const RACK: u64 = 0x5EED_0000_CAFE_F00D;
const NODES: u16 = 3;
const OLD: [u8; 32] = [0x11; 32];
const NEW: [u8; 32] = [0x22; 32];

fn n(i: u16) -> NodeId {
    NodeId(i)
}

fn keys(ks: &[(u8, [u8; 32])]) -> Keyring {
    Keyring::from_keys(ks).unwrap()
}

fn ep(me: u16, incarnation: u64) -> Endpoint {
    Endpoint::new(n(me), NODES, RACK, keys(&[(0, OLD)]), incarnation).unwrap()
}

/// Runs the sync exchange both ways so that each side echoes the other's incarnation.
fn handshake(a: &mut Endpoint, b: &mut Endpoint) {
    let first = a.seal_sync(b.me()).unwrap();
    let Ok(Opened::NeedsSync { reply, .. }) = b.open(&first) else {
        panic!("a fresh peer must ask for sync");
    };
    assert_eq!(a.open(&reply), Ok(Opened::Synced { from: b.me() }));
    let second = a.seal_sync(b.me()).unwrap();
    assert_eq!(b.open(&second), Ok(Opened::Synced { from: a.me() }));
    assert_eq!(a.peer_incarnation(b.me()), Some(b.incarnation()));
    assert_eq!(b.peer_incarnation(a.me()), Some(a.incarnation()));
}

fn delivered(from: NodeId, payload: &[u8]) -> Result<Opened, Reject> {
    Ok(Opened::Delivered {
        from,
        payload: payload.to_vec(),
    })
}

fn synced_pair() -> (Endpoint, Endpoint) {
    let (mut a, mut b) = (ep(0, 1001), ep(1, 2002));
    handshake(&mut a, &mut b);
    (a, b)
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Msg {
    Ping { seq: u32 },
    Gossip(Vec<u16>),
}

#[test]
fn payload_round_trips_both_ways_after_one_sync() {
    let (mut a, mut b) = synced_pair();
    let f = a.seal(n(1), b"hello").unwrap();
    assert_eq!(f.len(), HEADER_LEN + 5 + TAG_LEN);
    assert_eq!(b.open(&f), delivered(n(0), b"hello"));
    let f = b.seal_msg(n(0), &Msg::Gossip(vec![1, 2])).unwrap();
    assert_eq!(
        a.open_msg::<Msg>(&f),
        Ok(Opened::Delivered {
            from: n(1),
            payload: Msg::Gossip(vec![1, 2])
        })
    );
    assert_eq!(b.rejects().total(), 1); // the handshake's first frame was unsynced
    assert_eq!(b.stats().delivered, 1);
}

#[test]
fn first_contact_takes_one_round_trip_and_delivers_nothing_unsynced() {
    let (mut a, mut b) = (ep(0, 7), ep(1, 8));
    let f = a.seal(n(1), b"early").unwrap();
    let Ok(Opened::NeedsSync { from, reply }) = b.open(&f) else {
        panic!("unsynced frame must not be delivered");
    };
    assert_eq!(from, n(0));
    assert_eq!(reply.len(), MIN_FRAME);
    assert_eq!(a.open(&reply), Ok(Opened::Synced { from: n(1) }));
    // a now echoes b: its frames are delivered.
    let f = a.seal(n(1), b"now").unwrap();
    assert_eq!(b.open(&f), delivered(n(0), b"now"));
    // And b learned a from that synced frame: its frames are delivered too.
    let f = b.seal(n(0), b"back").unwrap();
    assert_eq!(a.open(&f), delivered(n(1), b"back"));
    assert_eq!(b.rejects().unsynced, 1);
}

#[test]
fn every_reject_reason_is_returned_and_counted() {
    let (mut a, mut b) = synced_pair();
    let good = a.seal(n(1), b"x").unwrap();
    let mut expect = *b.rejects(); // the handshake counted one unsynced frame
    let mut check = |b: &mut Endpoint, frame: &[u8], reason: Reject| {
        assert_eq!(b.open(frame), Err(reason), "{reason:?}");
        expect.count(reason);
        assert_eq!(*b.rejects(), expect);
    };
    let tweak = |at: usize, v: u8| {
        let mut f = good.clone();
        f[at] = v;
        f
    };

    check(&mut b, &good[..MIN_FRAME - 1], Reject::TooShort);
    check(&mut b, &[0u8; MAX_FRAME + 1], Reject::TooLong);
    check(&mut b, &tweak(0, b'X'), Reject::BadMagic);
    check(&mut b, &tweak(2, 2), Reject::UnsupportedVersion);
    let mut other_rack = Endpoint::new(n(0), NODES, RACK + 1, keys(&[(0, OLD)]), 5).unwrap();
    check(
        &mut b,
        &other_rack.seal(n(1), b"x").unwrap(),
        Reject::RackMismatch,
    );
    let mut outsider = Endpoint::new(n(3), 4, RACK, keys(&[(0, OLD)]), 5).unwrap();
    check(
        &mut b,
        &outsider.seal(n(1), b"x").unwrap(),
        Reject::UnknownSender,
    );
    check(&mut b, &tweak(4, 1), Reject::UnknownSender); // claims to come from b itself
    check(&mut b, &a.seal(n(2), b"x").unwrap(), Reject::Misdirected);
    check(&mut b, &tweak(3, 9), Reject::UnknownKey);
    let mut wrong_key = Endpoint::new(n(0), NODES, RACK, keys(&[(0, NEW)]), 5).unwrap();
    check(
        &mut b,
        &wrong_key.seal(n(1), b"x").unwrap(),
        Reject::AuthFailed,
    );
    let last = good.len() - 1;
    check(&mut b, &tweak(last, good[last] ^ 1), Reject::AuthFailed);

    assert_eq!(b.open(&good), delivered(n(0), b"x"));
    check(&mut b, &good, Reject::Replayed);
    let old = a.seal(n(1), b"old").unwrap();
    for _ in 0..window::WINDOW {
        a.seal(n(2), b"to someone else").unwrap();
    }
    let fresh = a.seal(n(1), b"fresh").unwrap();
    assert_eq!(b.open(&fresh), delivered(n(0), b"fresh"));
    check(&mut b, &old, Reject::TooOld);

    let not_a_u8 = a.seal(n(1), &[0xff, 0xff]).unwrap();
    assert_eq!(b.open_msg::<u8>(&not_a_u8), Err(Reject::Decode));
    expect.count(Reject::Decode);
    let trailing = a.seal_msg(n(1), &(7u8, 8u8)).unwrap();
    assert_eq!(b.open_msg::<u8>(&trailing), Err(Reject::Decode));
    expect.count(Reject::Decode);
    assert_eq!(*b.rejects(), expect);
    assert_eq!(b.stats().delivered, 2);

    let mut restarted = ep(1, 9999);
    assert!(matches!(
        restarted.open(&a.seal(n(1), b"x").unwrap()),
        Ok(Opened::NeedsSync { .. })
    ));
    assert_eq!(restarted.rejects().unsynced, 1);
    let json = serde_json::to_value(b.stats()).unwrap();
    assert_eq!(json["rejects"]["auth_failed"], 2);
}

#[test]
fn seal_refuses_oversized_empty_and_misaddressed_payloads() {
    let (mut a, mut b) = synced_pair();
    let max = a.seal(n(1), &[7u8; MAX_PAYLOAD]).unwrap();
    assert_eq!(max.len(), MAX_FRAME);
    assert_eq!(b.open(&max), delivered(n(0), &[7u8; MAX_PAYLOAD]));
    assert!(matches!(
        a.seal(n(1), &[7u8; MAX_PAYLOAD + 1]),
        Err(WireError::PayloadTooLarge {
            len: 1345,
            max: 1344
        })
    ));
    assert!(matches!(a.seal(n(1), &[]), Err(WireError::EmptyPayload)));
    assert!(matches!(
        a.seal(n(0), b"x"),
        Err(WireError::BadDestination { .. })
    ));
    assert!(matches!(
        a.seal(n(3), b"x"),
        Err(WireError::BadDestination { .. })
    ));
    assert!(matches!(
        encode(&vec![0u8; MAX_PAYLOAD]),
        Err(WireError::PayloadTooLarge { .. })
    ));
    assert!(matches!(
        Endpoint::new(n(0), NODES, RACK, keys(&[(0, OLD)]), 0),
        Err(WireError::ZeroIncarnation)
    ));
    assert!(matches!(
        Endpoint::new(n(3), NODES, RACK, keys(&[(0, OLD)]), 1),
        Err(WireError::NotInRack { .. })
    ));
}

#[test]
fn out_of_order_frames_in_the_window_are_delivered_once() {
    let (mut a, mut b) = synced_pair();
    let frames: Vec<Vec<u8>> = (0u8..20).map(|i| a.seal(n(1), &[i]).unwrap()).collect();
    let order = [
        5, 3, 19, 0, 1, 2, 18, 4, 6, 7, 8, 9, 10, 17, 11, 12, 13, 14, 15, 16,
    ];
    for i in order {
        assert_eq!(b.open(&frames[i]), delivered(n(0), &[i as u8]));
        assert_eq!(b.open(&frames[i]), Err(Reject::Replayed));
    }
    for f in &frames {
        assert_eq!(b.open(f), Err(Reject::Replayed));
    }
}

#[test]
fn receiver_restart_never_delivers_frames_recorded_before_it() {
    let (mut a, mut b) = synced_pair();
    let recorded: Vec<Vec<u8>> = (0u8..5).map(|i| a.seal(n(1), &[i]).unwrap()).collect();
    assert_eq!(b.open(&recorded[0]), delivered(n(0), &[0]));

    let mut b = ep(1, 3003); // b restarts: same id, new incarnation, no memory.
    for f in &recorded {
        assert!(matches!(b.open(f), Ok(Opened::NeedsSync { .. })));
    }
    // The live sender resyncs in one round trip...
    let f = a.seal(n(1), b"live").unwrap();
    let Ok(Opened::NeedsSync { reply, .. }) = b.open(&f) else {
        panic!("stale echo must ask for sync");
    };
    assert_eq!(a.open(&reply), Ok(Opened::Synced { from: n(1) }));
    assert_eq!(a.peer_incarnation(n(1)), Some(3003));
    let f = a.seal(n(1), b"after").unwrap();
    assert_eq!(b.open(&f), delivered(n(0), b"after"));
    // ...and the recordings stay dead.
    for f in &recorded {
        assert!(!matches!(b.open(f), Ok(Opened::Delivered { .. })));
    }
    assert_eq!(b.stats().delivered, 1);
}

#[test]
fn sender_restart_resyncs_and_old_frames_are_not_redelivered() {
    let (mut a, mut b) = synced_pair();
    let before: Vec<Vec<u8>> = (0u8..5).map(|i| a.seal(n(1), &[i]).unwrap()).collect();
    for (i, f) in before.iter().enumerate() {
        assert_eq!(b.open(f), delivered(n(0), &[i as u8]));
    }

    let mut a = ep(0, 4004); // a restarts.
    // b still echoes the old incarnation: a asks for sync instead of delivering.
    let f = b.seal(n(0), b"to old a").unwrap();
    let Ok(Opened::NeedsSync { reply, .. }) = a.open(&f) else {
        panic!("a restarted: b's echo is stale");
    };
    // The sync reply is a synced frame from a's new incarnation: b switches to it.
    assert_eq!(b.open(&reply), Ok(Opened::Synced { from: n(0) }));
    assert_eq!(b.peer_incarnation(n(0)), Some(4004));
    let f = b.seal(n(0), b"to new a").unwrap();
    assert_eq!(a.open(&f), delivered(n(1), b"to new a"));
    let f = a.seal(n(1), b"from new a").unwrap();
    assert_eq!(b.open(&f), delivered(n(0), b"from new a"));
    // Replays of the old incarnation's frames are refused and do not move b's echo.
    for f in &before {
        assert_eq!(b.open(f), Err(Reject::Replayed));
    }
    assert_eq!(b.peer_incarnation(n(0)), Some(4004));
}

#[test]
fn sender_restart_first_frame_asks_for_sync() {
    let (a, mut b) = synced_pair();
    drop(a);
    let mut a = ep(0, 5005);
    let f = a.seal(n(1), b"hi, I restarted").unwrap();
    let Ok(Opened::NeedsSync { reply, .. }) = b.open(&f) else {
        panic!("echo 0 must not be delivered");
    };
    assert_eq!(a.open(&reply), Ok(Opened::Synced { from: n(1) }));
    let f = a.seal(n(1), b"again").unwrap();
    assert_eq!(b.open(&f), delivered(n(0), b"again"));
}

/// A frame of an old sender incarnation that b never received (an attacker held it back)
/// is delivered once if it shows up late, and b's echo recovers in one round trip: nothing an
/// attacker replays can wedge the pair.
#[test]
fn late_frame_of_old_incarnation_cannot_wedge_the_pair() {
    let (mut a, mut b) = synced_pair();
    let held_back = a.seal(n(1), b"held").unwrap();
    let mut a = ep(0, 6006);
    handshake(&mut a, &mut b);
    assert_eq!(b.open(&held_back), delivered(n(0), b"held"));
    assert_eq!(b.open(&held_back), Err(Reject::Replayed));
    // b now echoes the old incarnation; a asks for sync, and b follows the live one again.
    let f = b.seal(n(0), b"1").unwrap();
    let Ok(Opened::NeedsSync { reply, .. }) = a.open(&f) else {
        panic!("stale echo");
    };
    assert_eq!(b.open(&reply), Ok(Opened::Synced { from: n(0) }));
    let f = b.seal(n(0), b"2").unwrap();
    assert_eq!(a.open(&f), delivered(n(1), b"2"));
}

#[test]
fn sync_replies_terminate() {
    // Sync frames answer only unsynced frames; a synced sync frame asks for nothing.
    let (mut a, mut b) = (ep(0, 11), ep(1, 12));
    let mut frame = a.seal_sync(n(1)).unwrap();
    let mut to_b = true;
    let mut hops = 0;
    loop {
        let r = if to_b { b.open(&frame) } else { a.open(&frame) };
        match r {
            Ok(Opened::NeedsSync { reply, .. }) => frame = reply,
            Ok(Opened::Synced { .. }) => break,
            other => panic!("{other:?}"),
        }
        to_b = !to_b;
        hops += 1;
        assert!(hops < 4, "sync ping-pong");
    }
}

/// Each rotation step, done on one node before the other, keeps both directions working.
#[test]
fn key_rotation_steps_keep_both_directions_working() {
    let (mut a, mut b) = synced_pair();
    type Keys<'a> = &'a [(u8, [u8; 32])];
    let steps: [(Keys, Keys); 6] = [
        (&[(0, OLD), (1, NEW)], &[(0, OLD)]),           // add: a first
        (&[(0, OLD), (1, NEW)], &[(0, OLD), (1, NEW)]), // add: everywhere
        (&[(1, NEW), (0, OLD)], &[(0, OLD), (1, NEW)]), // promote: a first
        (&[(1, NEW), (0, OLD)], &[(1, NEW), (0, OLD)]), // promote: everywhere
        (&[(1, NEW)], &[(1, NEW), (0, OLD)]),           // remove: a first
        (&[(1, NEW)], &[(1, NEW)]),                     // remove: everywhere
    ];
    for (i, (ka, kb)) in steps.iter().enumerate() {
        a.set_keyring(keys(ka));
        b.set_keyring(keys(kb));
        let f = a.seal(n(1), b"a->b").unwrap();
        assert_eq!(b.open(&f), delivered(n(0), b"a->b"), "step {i}");
        let f = b.seal(n(0), b"b->a").unwrap();
        assert_eq!(a.open(&f), delivered(n(1), b"b->a"), "step {i}");
    }
}

/// Promoting on a node before every node has the new key breaks its frames: the order of the
/// procedure matters.
#[test]
fn promoting_before_everyone_has_the_key_is_refused_by_the_others() {
    let (mut a, mut b) = synced_pair();
    a.set_keyring(keys(&[(1, NEW), (0, OLD)]));
    let f = a.seal(n(1), b"a->b").unwrap();
    assert_eq!(b.open(&f), Err(Reject::UnknownKey));
    let f = b.seal(n(0), b"b->a").unwrap();
    assert_eq!(a.open(&f), delivered(n(1), b"b->a"));
}

#[test]
fn encode_decode_round_trip_and_strictness() {
    let m = Msg::Ping { seq: 300 };
    let bytes = encode(&m).unwrap();
    assert_eq!(decode::<Msg>(&bytes).unwrap(), m);
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(matches!(
        decode::<Msg>(&longer),
        Err(DecodeError::TrailingBytes(1))
    ));
    assert!(decode::<Msg>(&[9]).is_err());
}

#[test]
fn header_layout_is_the_documented_one() {
    let (mut a, _) = synced_pair();
    let f = a.seal(n(1), b"z").unwrap();
    let h = Header::from_bytes(f[..HEADER_LEN].try_into().unwrap()).unwrap();
    assert_eq!(h.sender, n(0));
    assert_eq!(h.receiver, n(1));
    assert_eq!(h.rack, RACK);
    assert_eq!(h.sender_incarnation, 1001);
    assert_eq!(h.echo, 2002);
    assert_eq!(h.key_id, 0);
    assert_eq!(&f[..3], b"MH\x01");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Flipping any bits of any single byte of a valid frame never delivers a payload, and the
    /// rejection changes no state: the original frame is still delivered afterwards.
    #[test]
    fn tampering_any_byte_never_delivers(len in 1usize..64, at in any::<prop::sample::Index>(), xor in 1u8..=255) {
        let (mut a, mut b) = synced_pair();
        let payload = vec![0x5a; len];
        let f = a.seal(n(1), &payload).unwrap();
        let mut bad = f.clone();
        let i = at.index(bad.len());
        bad[i] ^= xor;
        prop_assert!(b.open(&bad).is_err());
        prop_assert_eq!(b.open(&f), delivered(n(0), &payload));
    }

    /// Arbitrary bytes (also behind a plausible header) never panic and never deliver.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1500), keep_header in any::<bool>()) {
        let (mut a, mut b) = synced_pair();
        let mut frame = bytes;
        if keep_header {
            let good = a.seal(n(1), b"x").unwrap();
            let k = HEADER_LEN.min(frame.len());
            frame[..k].copy_from_slice(&good[..k]);
        }
        let r = b.open(&frame);
        let was_delivered = matches!(r, Ok(Opened::Delivered { .. }));
        prop_assert!(!was_delivered);
        let _ = b.open_msg::<Msg>(&frame);
        let _ = decode::<Msg>(&frame);
        let _ = decode::<(u64, Vec<u16>, String)>(&frame);
    }

    /// Any delivery order of a burst within the window delivers each frame exactly once.
    #[test]
    fn shuffled_burst_is_delivered_exactly_once(order in Just((0u8..40).collect::<Vec<_>>()).prop_shuffle(), dups in proptest::collection::vec(0usize..40, 0..20)) {
        let (mut a, mut b) = synced_pair();
        let frames: Vec<Vec<u8>> = (0u8..40).map(|i| a.seal(n(1), &[i]).unwrap()).collect();
        let mut got = Vec::new();
        for (k, i) in order.iter().enumerate() {
            if let Ok(Opened::Delivered { payload, .. }) = b.open(&frames[usize::from(*i)]) {
                got.push(payload[0]);
            }
            if let Some(&d) = dups.get(k)
                && got.contains(&(d as u8))
            {
                prop_assert_eq!(b.open(&frames[d]), Err(Reject::Replayed));
            }
        }
        got.sort_unstable();
        prop_assert_eq!(got, (0u8..40).collect::<Vec<_>>());
    }
}
