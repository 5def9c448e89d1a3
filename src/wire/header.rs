//! The fixed 40-byte plaintext header that starts every frame. It is not secret, but every byte of
//! it is authenticated (it is the AEAD associated data), so a receiver may read it to pick the key
//! and check the replay window before it spends time on decryption, and must not act on any of it
//! until the tag has been verified.

use crate::core::NodeId;

/// The two bytes every frame starts with.
pub const MAGIC: [u8; 2] = *b"MH";
/// The frame format version this build speaks.
pub const VERSION: u8 = 1;
/// Size of the header in bytes.
pub const HEADER_LEN: usize = 40;

/// Decoded header fields (little-endian on the wire).
///
/// Layout: `magic[2] | version u8 | key_id u8 | sender u16 | receiver u16 | rack u64 |
/// sender_incarnation u64 | echo u64 | counter u64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Format version (only [`VERSION`] is accepted).
    pub version: u8,
    /// Which keyring key sealed the payload.
    pub key_id: u8,
    /// The node that sealed the frame.
    pub sender: NodeId,
    /// The node the frame is for: a frame redirected to another node is refused.
    pub receiver: NodeId,
    /// Fingerprint of the sender's rack file.
    pub rack: u64,
    /// Random number the sender chose when it started (never 0).
    pub sender_incarnation: u64,
    /// The receiver's incarnation as last seen by the sender (0 = unknown).
    pub echo: u64,
    /// Per sender incarnation, strictly increasing over every frame it seals.
    pub counter: u64,
}

impl Header {
    /// Serializes the header.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..2].copy_from_slice(&MAGIC);
        b[2] = self.version;
        b[3] = self.key_id;
        b[4..6].copy_from_slice(&self.sender.0.to_le_bytes());
        b[6..8].copy_from_slice(&self.receiver.0.to_le_bytes());
        b[8..16].copy_from_slice(&self.rack.to_le_bytes());
        b[16..24].copy_from_slice(&self.sender_incarnation.to_le_bytes());
        b[24..32].copy_from_slice(&self.echo.to_le_bytes());
        b[32..40].copy_from_slice(&self.counter.to_le_bytes());
        b
    }

    /// Reads the header fields from the first [`HEADER_LEN`] bytes. Returns `None` when the
    /// magic does not match. The caller has checked the length.
    pub fn from_bytes(b: &[u8; HEADER_LEN]) -> Option<Header> {
        if b[0..2] != MAGIC {
            return None;
        }
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let u64_at = |i: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[i..i + 8]);
            u64::from_le_bytes(a)
        };
        Some(Header {
            version: b[2],
            key_id: b[3],
            sender: NodeId(u16_at(4)),
            receiver: NodeId(u16_at(6)),
            rack: u64_at(8),
            sender_incarnation: u64_at(16),
            echo: u64_at(24),
            counter: u64_at(32),
        })
    }

    /// The 24-byte XChaCha20 nonce: `sender ‖ sender_incarnation ‖ counter ‖ zeros`. Unique per
    /// key because the incarnation is random per start and the counter never repeats within it.
    pub fn nonce(&self) -> [u8; 24] {
        let mut n = [0u8; 24];
        n[0..2].copy_from_slice(&self.sender.0.to_le_bytes());
        n[2..10].copy_from_slice(&self.sender_incarnation.to_le_bytes());
        n[10..18].copy_from_slice(&self.counter.to_le_bytes());
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_is_40_bytes() {
        let h = Header {
            version: VERSION,
            key_id: 7,
            sender: NodeId(3),
            receiver: NodeId(65535),
            rack: 0x0102_0304_0506_0708,
            sender_incarnation: u64::MAX,
            echo: 0,
            counter: 42,
        };
        let b = h.to_bytes();
        assert_eq!(b.len(), 40);
        assert_eq!(&b[0..2], b"MH");
        assert_eq!(Header::from_bytes(&b), Some(h));
        let mut bad = b;
        bad[1] = b'X';
        assert_eq!(Header::from_bytes(&bad), None);
    }
}
