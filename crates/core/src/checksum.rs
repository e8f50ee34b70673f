//! The checksum of a whole logical volume.
//!
//! Defined as BLAKE3 over the concatenated BLAKE3 digests of consecutive
//! 32 KiB blocks of the volume (the last block may be short). Block digests
//! can be computed in parallel while data is transferred, a hole costs one
//! precomputed digest instead of hashing its zeros, and the local store
//! derives chunk ids from the same digests (its default chunk is one block),
//! so each byte is hashed once. Printed as `blake3-32k:<hex>`.

/// Size of the blocks whose digests make up the volume checksum.
pub const CHECKSUM_BLOCK: u64 = 32 * 1024;

const PREFIX: &str = "blake3-32k:";

/// Digest of one block of the volume.
pub fn block_digest(data: &[u8]) -> [u8; 32] {
    *blake3::hash(data).as_bytes()
}

/// Digest of a block of `len` zero bytes (cached for full blocks).
pub fn zero_block_digest(len: u64) -> [u8; 32] {
    static FULL: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    if len == CHECKSUM_BLOCK {
        return *FULL.get_or_init(|| block_digest(&vec![0u8; CHECKSUM_BLOCK as usize]));
    }
    block_digest(&vec![0u8; len as usize])
}

/// Accumulates block digests, in volume order, into the volume checksum.
#[derive(Debug)]
pub struct VolumeChecksum {
    hasher: blake3::Hasher,
    size: u64,
    covered: u64,
}

impl VolumeChecksum {
    pub fn new(size: u64) -> Self {
        VolumeChecksum {
            hasher: blake3::Hasher::new(),
            size,
            covered: 0,
        }
    }

    /// Bytes of the volume covered so far.
    pub fn covered(&self) -> u64 {
        self.covered
    }

    /// Adds the digest of the next block.
    pub fn push(&mut self, digest: &[u8; 32]) {
        self.hasher.update(digest);
        self.covered = (self.covered + CHECKSUM_BLOCK).min(self.size);
    }

    /// Adds `len` bytes of zeros, which must start at a block boundary.
    pub fn push_zeros(&mut self, len: u64) {
        let end = self.covered + len;
        while self.covered < end {
            let block = CHECKSUM_BLOCK.min(self.size - self.covered);
            self.push(&zero_block_digest(block));
        }
    }

    /// The final checksum; `None` if not every byte was covered.
    pub fn finish(self) -> Option<String> {
        (self.covered == self.size).then(|| format!("{PREFIX}{}", self.hasher.finalize().to_hex()))
    }
}

/// The digests of every block of a volume, in order: what an incremental
/// backup needs from its parent to compute its own volume checksum while
/// transferring only the changed blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDigests {
    size: u64,
    digests: Vec<[u8; 32]>,
}

impl BlockDigests {
    /// The digests of a volume of `size` zero bytes.
    pub fn zeroed(size: u64) -> Self {
        let mut digests = vec![zero_block_digest(CHECKSUM_BLOCK); block_count(size)];
        if let Some(last) = digests.last_mut() {
            *last = zero_block_digest(size - (block_count(size) as u64 - 1) * CHECKSUM_BLOCK);
        }
        BlockDigests { size, digests }
    }

    /// From a complete list, or `None` when it does not cover `size` exactly.
    pub fn from_vec(size: u64, digests: Vec<[u8; 32]>) -> Option<Self> {
        (digests.len() == block_count(size)).then_some(BlockDigests { size, digests })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Replaces the digest of the block starting at `offset` (ignored when
    /// `offset` is not a block start inside the volume).
    pub fn set(&mut self, offset: u64, digest: [u8; 32]) {
        if offset.is_multiple_of(CHECKSUM_BLOCK) {
            if let Some(slot) = self.digests.get_mut((offset / CHECKSUM_BLOCK) as usize) {
                *slot = digest;
            }
        }
    }

    /// Changes the volume size. New blocks read as zeros; the caller must
    /// set the block holding `min(old, new)` size again when that block was
    /// or becomes partial, since its digest covered a different length.
    pub fn resize(&mut self, size: u64) {
        let tail = zero_block_digest(CHECKSUM_BLOCK);
        self.digests.resize(block_count(size), tail);
        if size > self.size && !size.is_multiple_of(CHECKSUM_BLOCK) {
            let last_len = size % CHECKSUM_BLOCK;
            if let Some(last) = self.digests.last_mut() {
                if (size - last_len) >= self.size.next_multiple_of(CHECKSUM_BLOCK) {
                    *last = zero_block_digest(last_len);
                }
            }
        }
        self.size = size;
    }

    /// The volume checksum these digests make.
    pub fn checksum(&self) -> String {
        let mut hasher = blake3::Hasher::new();
        self.digests.iter().for_each(|d| {
            hasher.update(d);
        });
        format!("{PREFIX}{}", hasher.finalize().to_hex())
    }

    /// The digests, concatenated.
    pub fn as_bytes(&self) -> impl Iterator<Item = &[u8; 32]> {
        self.digests.iter()
    }
}

/// Blocks in a volume of `size` bytes.
pub fn block_count(size: u64) -> usize {
    size.div_ceil(CHECKSUM_BLOCK) as usize
}

/// Checksum of an in-memory volume (tests and small images).
pub fn checksum_of(data: &[u8]) -> String {
    let mut sum = VolumeChecksum::new(data.len() as u64);
    for block in data.chunks(CHECKSUM_BLOCK as usize) {
        sum.push(&block_digest(block));
    }
    sum.finish().expect("every block was pushed")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeros_pushed_as_holes_equal_zeros_hashed() {
        let data = vec![0u8; 3 * CHECKSUM_BLOCK as usize + 100];
        let mut sum = VolumeChecksum::new(data.len() as u64);
        sum.push_zeros(data.len() as u64);
        assert_eq!(sum.finish().unwrap(), checksum_of(&data));
    }

    #[test]
    fn incomplete_coverage_has_no_checksum() {
        let mut sum = VolumeChecksum::new(2 * CHECKSUM_BLOCK);
        sum.push(&zero_block_digest(CHECKSUM_BLOCK));
        assert!(sum.finish().is_none());
    }

    #[test]
    fn block_digests_follow_changes_and_growth() {
        let mut data = vec![0u8; 2 * CHECKSUM_BLOCK as usize + 10];
        let mut digests = BlockDigests::zeroed(data.len() as u64);
        assert_eq!(digests.checksum(), checksum_of(&data));
        data[5] = 1;
        digests.set(0, block_digest(&data[..CHECKSUM_BLOCK as usize]));
        assert_eq!(digests.checksum(), checksum_of(&data));
        // Growth: the old partial last block must be set again by the caller.
        data.resize(5 * CHECKSUM_BLOCK as usize + 3, 0);
        digests.resize(data.len() as u64);
        let b = CHECKSUM_BLOCK as usize;
        digests.set(2 * CHECKSUM_BLOCK, block_digest(&data[2 * b..3 * b]));
        assert_eq!(digests.checksum(), checksum_of(&data));
        data.truncate(b + 7);
        digests.resize(data.len() as u64);
        digests.set(CHECKSUM_BLOCK, block_digest(&data[b..]));
        assert_eq!(digests.checksum(), checksum_of(&data));
    }

    #[test]
    fn one_changed_byte_changes_the_checksum() {
        let mut data = vec![7u8; 200_000];
        let before = checksum_of(&data);
        data[150_000] ^= 1;
        assert_ne!(before, checksum_of(&data));
    }
}
