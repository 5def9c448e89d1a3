//! FNV-1a, 64 bit: the one non-cryptographic hash of the crate. It is stable across platforms and
//! releases (unlike `DefaultHasher`), so its values can be compared between agents (the rack
//! fingerprint) and between runs (the simulator's trace hash).

/// A running 64-bit FNV-1a hash. Implements [`std::fmt::Write`] so `write!(hash, "{:?}", msg)`
/// hashes a message's Debug form without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv1a {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;

    /// An empty hash.
    pub fn new() -> Self {
        Fnv1a(Self::OFFSET)
    }

    /// Mix in raw bytes.
    pub fn bytes(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(Self::PRIME);
        }
        self.0 = h;
    }

    /// Mix in a number (little-endian bytes).
    pub fn u64(&mut self, v: u64) {
        self.bytes(&v.to_le_bytes());
    }

    /// Mix in one field of a record: its bytes, then a `0xff` separator so that the fields
    /// ("ab", "c") and ("a", "bc") hash differently.
    pub fn field(&mut self, bytes: &[u8]) {
        self.bytes(bytes);
        self.bytes(&[0xff]);
    }

    /// The hash so far.
    pub fn value(&self) -> u64 {
        self.0
    }
}

impl std::fmt::Write for Fnv1a {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.bytes(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_reference_vector() {
        let mut h = Fnv1a::new();
        h.bytes(b"a");
        assert_eq!(h.value(), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn fields_are_separated() {
        let mut a = Fnv1a::new();
        a.field(b"ab");
        a.field(b"c");
        let mut b = Fnv1a::new();
        b.field(b"a");
        b.field(b"bc");
        assert_ne!(a.value(), b.value());
    }
}
