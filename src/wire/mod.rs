//! Authenticated UDP framing for gossip and lease messages.
//!
//! Every datagram an agent sends is one frame: a fixed 40-byte plaintext [`header`] followed by the
//! XChaCha20-Poly1305 ciphertext of a postcard-encoded payload (the header is the AEAD associated
//! data, so it cannot be altered either). This module is pure: [`Endpoint`] turns payloads into
//! frames and frames back into payloads; the runtime owns the socket and sends the bytes.
//!
//! # What a receiver accepts
//! A frame is delivered only if it is well formed, names this rack (fingerprint of the rack file),
//! comes from another node of the rack, is addressed to this node, was sealed with a key of our
//! [`Keyring`], authenticates, **echoes our current incarnation**, and its counter passes the
//! replay window of the sender's incarnation. Everything else is dropped with a [`Reject`] reason
//! and counted in [`RejectCounts`] (for `mooseherd status --json` and Prometheus); no input panics.
//!
//! # Replay protection without writing to disk
//! Each agent picks a random, non-zero *incarnation* at start ([`fresh_incarnation`]) and counts
//! the frames it seals from 1. The nonce is `sender ‖ incarnation ‖ counter`, so it never repeats
//! under a key. Each frame also carries `echo`, the receiver's incarnation as last seen by the
//! sender. A receiver delivers only frames whose echo is its own current incarnation, so frames
//! recorded before it restarted can never be replayed into it, and nothing is stored on disk
//! (SD cards wear out). Within its life, a receiver keeps a 128-counter sliding window per sender
//! incarnation (for the last [`MAX_TRACKED_INCARNATIONS`] incarnations of each sender).
//!
//! A frame that authenticates but echoes a stale or zero incarnation is *unsynced*: its payload is
//! not delivered, and [`Endpoint::open`] returns [`Opened::NeedsSync`] with a ready-made *sync
//! frame* (empty payload, echoing the sender's incarnation) that the runtime sends back. When the
//! sender opens it, it learns our incarnation and its next frames are delivered: one round trip
//! after either side restarts. Send replies to the address of the node in the rack file, never to
//! the datagram's source address (which anyone can forge), and rate-limit them per peer (the
//! agent sends at most one per peer per second, `runtime::sync_limit`): sync frames are smaller
//! than any frame that can trigger them, but replayed frames can come as fast as anyone sends.
//!
//! Which incarnation of a peer we echo is the incarnation of the most recent synced frame we
//! accepted from it. A replayed old frame can never be *delivered* twice (its incarnation's window
//! remembers it), and the sync exchange repairs a confused echo in one round trip, so the protocol
//! has no state an attacker can wedge.
//!
//! # Keys and zero-downtime rotation
//! The [`Keyring`] file (`/etc/mooseherd/keyring`, mode 0600, identical on every node) lists keys
//! as `<id> <64 hex chars>`; the first key seals, every key opens. To rotate (see
//! `docs/keyring.md`), do each step on every node before starting the next:
//! 1. **add**: [`add_key`] on one machine appends a new key after the old one; copy that file to
//!    every node and reload the agents. Everyone still seals with the old key and can open both.
//! 2. **promote**: [`promote_key`] moves the new key first; copy to every node, reload. Nodes
//!    switch one by one; all of them can open both keys throughout.
//! 3. **remove**: [`remove_key`] drops the old key; copy to every node, reload.

pub mod header;
pub mod keyring;
pub mod window;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use chacha20poly1305::aead::AeadInOut;
use chacha20poly1305::{Tag, XNonce};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::core::NodeId;
use header::{HEADER_LEN, Header, VERSION};
pub use keyring::{
    DEFAULT_KEYRING_PATH, KEY_LEN, Keyring, KeyringError, add_key, keygen, promote_key, remove_key,
};
use window::{ReplayWindow, Stale};

/// Largest frame sent or accepted: fits a UDP datagram on any usual path without fragmentation.
pub const MAX_FRAME: usize = 1400;
/// Size of the Poly1305 authentication tag at the end of every frame.
pub const TAG_LEN: usize = 16;
/// Largest payload [`Endpoint::seal`] accepts (encoded message size).
pub const MAX_PAYLOAD: usize = MAX_FRAME - HEADER_LEN - TAG_LEN;
/// Smallest well-formed frame: a sync frame (header + tag, empty payload).
pub const MIN_FRAME: usize = HEADER_LEN + TAG_LEN;
/// How many incarnations of one sender keep a replay window at a receiver (most recent first).
/// A sender would have to restart this many times within one life of the receiver before
/// frames of its oldest incarnation could be replayed.
pub const MAX_TRACKED_INCARNATIONS: usize = 16;

/// Why sealing or encoding a message failed. These are bugs or misuse on the sending side.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The payload does not fit one frame.
    #[error("payload of {len} bytes exceeds the {max}-byte frame payload limit")]
    PayloadTooLarge {
        /// Payload size.
        len: usize,
        /// [`MAX_PAYLOAD`].
        max: usize,
    },
    /// Empty payloads are reserved for sync frames.
    #[error("empty payload (reserved for sync frames)")]
    EmptyPayload,
    /// The destination is not another node of the rack.
    #[error("cannot send to {to}: not another node of this {nodes}-node rack")]
    BadDestination {
        /// The destination asked for.
        to: NodeId,
        /// Nodes in the rack.
        nodes: u16,
    },
    /// `me` is not a node of the rack.
    #[error("node {me} is not in this {nodes}-node rack")]
    NotInRack {
        /// This node.
        me: NodeId,
        /// Nodes in the rack.
        nodes: u16,
    },
    /// Incarnation 0 means "unknown" on the wire.
    #[error("incarnation must not be 0")]
    ZeroIncarnation,
    /// This incarnation sealed 2^64 - 1 frames (cannot happen in practice).
    #[error("frame counter exhausted: restart the agent")]
    CounterExhausted,
    /// The AEAD refused to seal (cannot happen for frames within size limits).
    #[error("sealing failed")]
    Seal,
    /// postcard could not encode the message (the cause is in the message, not also a source
    /// that `{:#}` would print twice).
    #[error("cannot encode message: {0}")]
    Encode(postcard::Error),
}

impl From<postcard::Error> for WireError {
    fn from(e: postcard::Error) -> Self {
        WireError::Encode(e)
    }
}

/// Why a received frame was dropped. Each variant has a counter in [`RejectCounts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Reject {
    /// Shorter than a header plus a tag.
    #[error("frame too short")]
    TooShort,
    /// Longer than [`MAX_FRAME`].
    #[error("frame too long")]
    TooLong,
    /// Does not start with `MH`: not a mooseherd frame.
    #[error("bad magic")]
    BadMagic,
    /// A frame format version this build does not speak (a newer or older agent).
    #[error("unsupported frame version")]
    UnsupportedVersion,
    /// Sent by an agent with a different rack file.
    #[error("rack fingerprint mismatch")]
    RackMismatch,
    /// The sender id is outside the rack, or is our own id.
    #[error("unknown sender")]
    UnknownSender,
    /// Addressed to another node.
    #[error("addressed to another node")]
    Misdirected,
    /// Sealed with a key id our keyring does not have.
    #[error("unknown key id")]
    UnknownKey,
    /// The tag did not verify: forged, corrupted, or a different key with the same id.
    #[error("authentication failed")]
    AuthFailed,
    /// A counter already accepted from this sender incarnation.
    #[error("replayed frame")]
    Replayed,
    /// A counter below the replay window: too old to tell.
    #[error("frame too old")]
    TooOld,
    /// Authenticated and delivered, but the payload did not decode (counted by
    /// [`Endpoint::open_msg`]).
    #[error("payload did not decode")]
    Decode,
}

/// How many frames were dropped, by reason, plus the unsynced ones (authenticated but not
/// delivered because they echoed a stale incarnation; answered with a sync frame).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RejectCounts {
    /// [`Reject::TooShort`].
    pub too_short: u64,
    /// [`Reject::TooLong`].
    pub too_long: u64,
    /// [`Reject::BadMagic`].
    pub bad_magic: u64,
    /// [`Reject::UnsupportedVersion`].
    pub unsupported_version: u64,
    /// [`Reject::RackMismatch`].
    pub rack_mismatch: u64,
    /// [`Reject::UnknownSender`].
    pub unknown_sender: u64,
    /// [`Reject::Misdirected`].
    pub misdirected: u64,
    /// [`Reject::UnknownKey`].
    pub unknown_key: u64,
    /// [`Reject::AuthFailed`].
    pub auth_failed: u64,
    /// [`Reject::Replayed`].
    pub replayed: u64,
    /// [`Reject::TooOld`].
    pub too_old: u64,
    /// [`Reject::Decode`].
    pub decode: u64,
    /// Authenticated frames not delivered because their echo was stale ([`Opened::NeedsSync`]).
    pub unsynced: u64,
}

impl RejectCounts {
    /// Adds one to the counter of `reason`.
    pub fn count(&mut self, reason: Reject) {
        let c = match reason {
            Reject::TooShort => &mut self.too_short,
            Reject::TooLong => &mut self.too_long,
            Reject::BadMagic => &mut self.bad_magic,
            Reject::UnsupportedVersion => &mut self.unsupported_version,
            Reject::RackMismatch => &mut self.rack_mismatch,
            Reject::UnknownSender => &mut self.unknown_sender,
            Reject::Misdirected => &mut self.misdirected,
            Reject::UnknownKey => &mut self.unknown_key,
            Reject::AuthFailed => &mut self.auth_failed,
            Reject::Replayed => &mut self.replayed,
            Reject::TooOld => &mut self.too_old,
            Reject::Decode => &mut self.decode,
        };
        *c = c.saturating_add(1);
    }

    /// The counter of `reason`.
    pub fn get(&self, reason: Reject) -> u64 {
        match reason {
            Reject::TooShort => self.too_short,
            Reject::TooLong => self.too_long,
            Reject::BadMagic => self.bad_magic,
            Reject::UnsupportedVersion => self.unsupported_version,
            Reject::RackMismatch => self.rack_mismatch,
            Reject::UnknownSender => self.unknown_sender,
            Reject::Misdirected => self.misdirected,
            Reject::UnknownKey => self.unknown_key,
            Reject::AuthFailed => self.auth_failed,
            Reject::Replayed => self.replayed,
            Reject::TooOld => self.too_old,
            Reject::Decode => self.decode,
        }
    }

    /// All dropped frames, unsynced included.
    pub fn total(&self) -> u64 {
        [
            self.too_short,
            self.too_long,
            self.bad_magic,
            self.unsupported_version,
            self.rack_mismatch,
            self.unknown_sender,
            self.misdirected,
            self.unknown_key,
            self.auth_failed,
            self.replayed,
            self.too_old,
            self.decode,
            self.unsynced,
        ]
        .iter()
        .fold(0u64, |a, b| a.saturating_add(*b))
    }
}

/// Traffic counters of an [`Endpoint`] (serialized into status and metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct WireStats {
    /// Frames sealed, sync frames included.
    pub sealed: u64,
    /// Payloads delivered to the caller.
    pub delivered: u64,
    /// Sync frames accepted (they carry no payload).
    pub syncs_accepted: u64,
    /// Dropped frames by reason.
    pub rejects: RejectCounts,
}

/// What an accepted frame means for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened<P = Vec<u8>> {
    /// A payload from `from`, authentic and fresh: hand it to the protocol.
    Delivered {
        /// The sending node.
        from: NodeId,
        /// The payload (raw bytes from [`Endpoint::open`], a message from [`Endpoint::open_msg`]).
        payload: P,
    },
    /// A sync frame from `from`: we now echo its incarnation. Nothing to deliver.
    Synced {
        /// The sending node.
        from: NodeId,
    },
    /// An authentic frame from `from` that echoed a stale incarnation of ours (one of us
    /// restarted). Its payload is NOT delivered; send `reply` (a sync frame) to `from`'s address
    /// in the rack file, so its next frames are delivered.
    NeedsSync {
        /// The sending node.
        from: NodeId,
        /// The sync frame to send back.
        reply: Vec<u8>,
    },
}

/// What this node knows about one peer.
#[derive(Debug, Clone, Default)]
struct Peer {
    /// The peer's incarnation we echo: that of the latest synced frame accepted (0 = unknown).
    current: u64,
    /// Replay windows of its incarnations, most recently used first.
    windows: Vec<(u64, ReplayWindow)>,
}

impl Peer {
    fn window(&self, incarnation: u64) -> Option<&ReplayWindow> {
        self.windows
            .iter()
            .find(|(i, _)| *i == incarnation)
            .map(|(_, w)| w)
    }

    /// Records an accepted synced frame (after authentication).
    fn accept(&mut self, incarnation: u64, counter: u64) {
        match self.windows.iter().position(|(i, _)| *i == incarnation) {
            Some(at) => {
                self.windows[at].1.accept(counter);
                self.windows[..=at].rotate_right(1);
            }
            None => {
                self.windows
                    .insert(0, (incarnation, ReplayWindow::starting_at(counter)));
                self.windows.truncate(MAX_TRACKED_INCARNATIONS);
            }
        }
        self.current = incarnation;
    }
}

/// One node's end of the authenticated wire: seals frames for peers and opens frames from them.
/// Pure state, no IO: the runtime passes bytes in and sends the bytes that come out.
#[derive(Debug)]
pub struct Endpoint {
    me: NodeId,
    nodes: u16,
    rack: u64,
    keyring: Keyring,
    incarnation: u64,
    counter: u64,
    peers: BTreeMap<NodeId, Peer>,
    stats: WireStats,
}

/// A random non-zero incarnation for an agent start, from the operating system's randomness.
pub fn fresh_incarnation() -> Result<u64, getrandom::Error> {
    loop {
        let v = getrandom::u64()?;
        if v != 0 {
            return Ok(v);
        }
    }
}

impl Endpoint {
    /// The endpoint of node `me` in a rack of `nodes` nodes whose rack file has fingerprint
    /// `rack` (`config::Rack::fingerprint`), with this start's random `incarnation`
    /// ([`fresh_incarnation`]; never reuse one).
    pub fn new(
        me: NodeId,
        nodes: u16,
        rack: u64,
        keyring: Keyring,
        incarnation: u64,
    ) -> Result<Endpoint, WireError> {
        if me.0 >= nodes {
            return Err(WireError::NotInRack { me, nodes });
        }
        if incarnation == 0 {
            return Err(WireError::ZeroIncarnation);
        }
        Ok(Endpoint {
            me,
            nodes,
            rack,
            keyring,
            incarnation,
            counter: 0,
            peers: BTreeMap::new(),
            stats: WireStats::default(),
        })
    }

    /// This node's id.
    pub fn me(&self) -> NodeId {
        self.me
    }

    /// This start's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// The incarnation of `peer` that our frames echo, if we have synced with it.
    pub fn peer_incarnation(&self, peer: NodeId) -> Option<u64> {
        self.peers.get(&peer).map(|p| p.current).filter(|i| *i != 0)
    }

    /// Replaces the keyring (after the file changed during a rotation). Frame counters continue,
    /// so nonces stay unique.
    pub fn set_keyring(&mut self, keyring: Keyring) {
        self.keyring = keyring;
    }

    /// The keyring in use.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Counters of dropped frames, by reason.
    pub fn rejects(&self) -> &RejectCounts {
        &self.stats.rejects
    }

    /// All traffic counters.
    pub fn stats(&self) -> &WireStats {
        &self.stats
    }

    /// Seals `payload` (an encoded message, 1 to [`MAX_PAYLOAD`] bytes) into a frame for `to`.
    pub fn seal(&mut self, to: NodeId, payload: &[u8]) -> Result<Vec<u8>, WireError> {
        if payload.is_empty() {
            return Err(WireError::EmptyPayload);
        }
        self.check_destination(to)?;
        let echo = self.peers.get(&to).map_or(0, |p| p.current);
        self.seal_frame(to, echo, payload)
    }

    /// Encodes `msg` with postcard and seals it for `to`.
    pub fn seal_msg<T: Serialize>(&mut self, to: NodeId, msg: &T) -> Result<Vec<u8>, WireError> {
        let payload = encode(msg)?;
        self.seal(to, &payload)
    }

    /// A sync frame for `to` (empty payload): tells `to` our incarnation. The runtime may send
    /// these at start to every peer to sync before the first real message.
    pub fn seal_sync(&mut self, to: NodeId) -> Result<Vec<u8>, WireError> {
        self.check_destination(to)?;
        let echo = self.peers.get(&to).map_or(0, |p| p.current);
        self.seal_frame(to, echo, &[])
    }

    fn check_destination(&self, to: NodeId) -> Result<(), WireError> {
        if to.0 >= self.nodes || to == self.me {
            return Err(WireError::BadDestination {
                to,
                nodes: self.nodes,
            });
        }
        Ok(())
    }

    fn seal_frame(&mut self, to: NodeId, echo: u64, payload: &[u8]) -> Result<Vec<u8>, WireError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(WireError::PayloadTooLarge {
                len: payload.len(),
                max: MAX_PAYLOAD,
            });
        }
        let counter = self
            .counter
            .checked_add(1)
            .ok_or(WireError::CounterExhausted)?;
        let Some((key_id, cipher)) = self.keyring.sealing() else {
            return Err(WireError::Seal);
        };
        let header = Header {
            version: VERSION,
            key_id,
            sender: self.me,
            receiver: to,
            rack: self.rack,
            sender_incarnation: self.incarnation,
            echo,
            counter,
        };
        let aad = header.to_bytes();
        let mut frame = Vec::with_capacity(HEADER_LEN + payload.len() + TAG_LEN);
        frame.extend_from_slice(&aad);
        frame.extend_from_slice(payload);
        let nonce = XNonce::from(header.nonce());
        let tag = cipher
            .encrypt_inout_detached(&nonce, &aad, (&mut frame[HEADER_LEN..]).into())
            .map_err(|_| WireError::Seal)?;
        frame.extend_from_slice(&tag);
        // Commit the counter only once the frame exists: a counter value is never used twice.
        self.counter = counter;
        self.stats.sealed = self.stats.sealed.saturating_add(1);
        Ok(frame)
    }

    /// Opens a received datagram. Never panics, whatever the bytes; every rejection is counted.
    pub fn open(&mut self, frame: &[u8]) -> Result<Opened, Reject> {
        let result = self.open_inner(frame);
        match &result {
            Err(reason) => self.stats.rejects.count(*reason),
            Ok(Opened::Delivered { .. }) => {
                self.stats.delivered = self.stats.delivered.saturating_add(1);
            }
            Ok(Opened::Synced { .. }) => {
                self.stats.syncs_accepted = self.stats.syncs_accepted.saturating_add(1);
            }
            Ok(Opened::NeedsSync { .. }) => {
                self.stats.rejects.unsynced = self.stats.rejects.unsynced.saturating_add(1);
            }
        }
        result
    }

    /// [`Endpoint::open`], then decodes a delivered payload as `T` (a payload that does not
    /// decode is counted as [`Reject::Decode`]).
    pub fn open_msg<T: DeserializeOwned>(&mut self, frame: &[u8]) -> Result<Opened<T>, Reject> {
        Ok(match self.open(frame)? {
            Opened::Delivered { from, payload } => match decode(&payload) {
                Ok(msg) => Opened::Delivered { from, payload: msg },
                Err(_) => {
                    self.stats.delivered = self.stats.delivered.saturating_sub(1);
                    self.stats.rejects.count(Reject::Decode);
                    return Err(Reject::Decode);
                }
            },
            Opened::Synced { from } => Opened::Synced { from },
            Opened::NeedsSync { from, reply } => Opened::NeedsSync { from, reply },
        })
    }

    fn open_inner(&mut self, frame: &[u8]) -> Result<Opened, Reject> {
        if frame.len() < MIN_FRAME {
            return Err(Reject::TooShort);
        }
        if frame.len() > MAX_FRAME {
            return Err(Reject::TooLong);
        }
        let (head, rest) = frame.split_at(HEADER_LEN);
        let head: &[u8; HEADER_LEN] = head.try_into().map_err(|_| Reject::TooShort)?;
        let h = Header::from_bytes(head).ok_or(Reject::BadMagic)?;
        if h.version != VERSION {
            return Err(Reject::UnsupportedVersion);
        }
        if h.rack != self.rack {
            return Err(Reject::RackMismatch);
        }
        if h.sender.0 >= self.nodes || h.sender == self.me {
            return Err(Reject::UnknownSender);
        }
        if h.receiver != self.me {
            return Err(Reject::Misdirected);
        }
        let cipher = self.keyring.cipher(h.key_id).ok_or(Reject::UnknownKey)?;
        let synced = h.echo == self.incarnation;

        // Cheap replay checks before spending time on decryption (they change nothing).
        if synced
            && let Some(w) = self
                .peers
                .get(&h.sender)
                .and_then(|p| p.window(h.sender_incarnation))
        {
            w.check(h.counter).map_err(|s| match s {
                Stale::Duplicate => Reject::Replayed,
                Stale::BelowWindow => Reject::TooOld,
            })?;
        }

        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let tag = Tag::try_from(tag).map_err(|_| Reject::TooShort)?;
        let mut payload = ciphertext.to_vec();
        cipher
            .decrypt_inout_detached(
                &XNonce::from(h.nonce()),
                head,
                payload.as_mut_slice().into(),
                &tag,
            )
            .map_err(|_| Reject::AuthFailed)?;

        // Authentic from here on.
        if !synced {
            let reply = self
                .seal_frame(h.sender, h.sender_incarnation, &[])
                .map_err(|_| Reject::AuthFailed)?;
            return Ok(Opened::NeedsSync {
                from: h.sender,
                reply,
            });
        }
        self.peers
            .entry(h.sender)
            .or_default()
            .accept(h.sender_incarnation, h.counter);
        if payload.is_empty() {
            Ok(Opened::Synced { from: h.sender })
        } else {
            Ok(Opened::Delivered {
                from: h.sender,
                payload,
            })
        }
    }
}

/// Why a payload did not decode.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// postcard refused the bytes (in the message only, see [`WireError::Encode`]).
    #[error("cannot decode message: {0}")]
    Postcard(postcard::Error),
    /// The message decoded but bytes were left over.
    #[error("{0} unexpected bytes after the message")]
    TrailingBytes(usize),
}

impl From<postcard::Error> for DecodeError {
    fn from(e: postcard::Error) -> Self {
        DecodeError::Postcard(e)
    }
}

/// Encodes a message with postcard, refusing one larger than [`MAX_PAYLOAD`].
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, WireError> {
    let bytes = postcard::to_allocvec(msg)?;
    if bytes.len() > MAX_PAYLOAD {
        return Err(WireError::PayloadTooLarge {
            len: bytes.len(),
            max: MAX_PAYLOAD,
        });
    }
    Ok(bytes)
}

/// Decodes a postcard message; trailing bytes are an error (a message is exactly one value).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    let (msg, rest) = postcard::take_from_bytes(bytes)?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    Ok(msg)
}
