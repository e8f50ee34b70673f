//! Byte-level constants of Ceph's stream formats (see docs/streams.md).

/// `rbd export-diff` / `rbd import-diff` banner; no length prefix.
pub const DIFF_V1_BANNER: &[u8; 12] = b"rbd diff v1\n";
/// The diff format used inside "rbd image v2" exports.
pub const DIFF_V2_BANNER: &[u8; 12] = b"rbd diff v2\n";
/// `rbd export --export-format 2` banner.
pub const IMAGE_V2_BANNER: &[u8; 13] = b"rbd image v2\n";
/// Separates the image v2 header from its diffs.
pub const IMAGE_DIFFS_V2_BANNER: &[u8; 19] = b"rbd image diffs v2\n";

/// Largest `w`/`z` record we write: one default RBD object.
pub const MAX_RECORD: u64 = 4 << 20;
/// rbd rejects longer snapshot names.
pub const MAX_SNAP_NAME: u64 = 4096;
/// Buffer size the operations wrap their plain `Read`/`Write` in: records
/// are made of many small fields.
pub const IO_BUFFER: usize = 1 << 20;
/// Granularity of zero-run detection inside data.
pub const ZERO_BLOCK: u64 = 4096;

/// Record tags of diff streams.
pub mod tag {
    pub const FROM_SNAP: u8 = b'f';
    pub const TO_SNAP: u8 = b't';
    pub const SIZE: u8 = b's';
    pub const WRITE: u8 = b'w';
    pub const ZERO: u8 = b'z';
    pub const END: u8 = b'e';
    /// v2 only: snapshot protection status.
    pub const PROTECTED: u8 = b'p';
}

/// Record tags of the "rbd image v2" header.
pub mod image_tag {
    pub const ORDER: u8 = b'O';
    pub const FEATURES: u8 = b'T';
    pub const STRIPE_UNIT: u8 = b'U';
    pub const STRIPE_COUNT: u8 = b'C';
    pub const META: u8 = b'M';
    pub const END: u8 = b'E';
}

/// Which diff dialect a stream uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffFormat {
    /// Fixed payloads, no lengths; what `rbd export-diff` writes.
    V1,
    /// Every record but `e` carries an le64 payload length.
    V2,
}

impl DiffFormat {
    pub fn banner(self) -> &'static [u8; 12] {
        match self {
            DiffFormat::V1 => DIFF_V1_BANNER,
            DiffFormat::V2 => DIFF_V2_BANNER,
        }
    }
}
