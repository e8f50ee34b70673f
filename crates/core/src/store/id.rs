//! Chunk and page ids: the keyed BLAKE3 hash of the plain BLAKE3 digest of
//! the raw (uncompressed) content.
//!
//! Hashing the digest instead of the content lets a writer that already
//! hashed a chunk for the volume checksum (whose blocks are chunk-sized by
//! default) hand over that digest: each byte is hashed once per backup.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// The id of a chunk or index page. The all-zero id is the null entry (a
/// hole, or an all-hole subtree); a real keyed hash is never all zeros in
/// practice (probability 2^-256).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct ChunkId(pub [u8; 32]);

impl ChunkId {
    pub const NULL: ChunkId = ChunkId([0; 32]);

    /// The id of `data` under the store key.
    pub fn of(key: &[u8; 32], data: &[u8]) -> Self {
        Self::from_digest(key, blake3::hash(data).as_bytes())
    }

    /// The id of content whose plain BLAKE3 digest is `digest`.
    pub fn from_digest(key: &[u8; 32], digest: &[u8; 32]) -> Self {
        ChunkId(*blake3::keyed_hash(key, digest).as_bytes())
    }

    pub fn is_null(&self) -> bool {
        self.0 == [0; 32]
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(ChunkId(out))
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({})", self.to_hex())
    }
}

impl Serialize for ChunkId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for ChunkId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ChunkId::from_hex(&s).ok_or_else(|| serde::de::Error::custom("bad chunk id"))
    }
}
