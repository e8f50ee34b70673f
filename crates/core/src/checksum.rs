//! The checksum of a whole logical volume.
//!
//! Defined as BLAKE3 over the concatenated BLAKE3 digests of consecutive
//! 32 KiB blocks of the volume (the last block may be short). Block digests
//! can be computed in parallel while data is transferred, a hole costs one
//! precomputed digest instead of hashing its zeros, and the local store
//! derives chunk ids from the same digests (its default chunk is one block),
//! so each byte is hashed once. Printed as `blake3-32k:<hex>`.

use crate::zero::is_zero;

/// Size of the blocks whose digests make up the volume checksum.
pub const CHECKSUM_BLOCK: u64 = 32 * 1024;

const PREFIX: &str = "blake3-32k:";

/// Digest of one block of the volume.
pub fn block_digest(data: &[u8]) -> [u8; 32] {
    // Whole-object reads bring back the zeros between an object's data
    // (a quarter of a differential restore's reads in bench/differential.sh);
    // finding them is several times cheaper than hashing them.
    if data.len() as u64 == CHECKSUM_BLOCK && is_zero(data) {
        return zero_block_digest(CHECKSUM_BLOCK);
    }
    hash(data)
}

fn hash(data: &[u8]) -> [u8; 32] {
    *blake3::hash(data).as_bytes()
}

/// Digest of a block of `len` zero bytes (cached for full blocks).
pub fn zero_block_digest(len: u64) -> [u8; 32] {
    static FULL: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
    if len == CHECKSUM_BLOCK {
        return *FULL.get_or_init(|| hash(&vec![0u8; CHECKSUM_BLOCK as usize]));
    }
    hash(&vec![0u8; len as usize])
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

    /// Adds the digests of the next blocks, concatenated (`digests.len()`
    /// a multiple of 32): the same as pushing them one by one, hashed in
    /// one call (BLAKE3 then works on many chunks at once).
    pub fn push_digests(&mut self, digests: &[u8]) {
        debug_assert!(digests.len().is_multiple_of(32));
        self.hasher.update(digests);
        let blocks = (digests.len() / 32) as u64;
        self.covered = self
            .covered
            .saturating_add(blocks.saturating_mul(CHECKSUM_BLOCK))
            .min(self.size);
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
    fn digests_pushed_together_equal_digests_pushed_one_by_one() {
        let data: Vec<u8> = (0..5 * CHECKSUM_BLOCK as usize + 77)
            .map(|i| (i % 253) as u8)
            .collect();
        let digests: Vec<u8> = data
            .chunks(CHECKSUM_BLOCK as usize)
            .flat_map(block_digest)
            .collect();
        for split in [0, 32, 64, 96, 192] {
            let mut sum = VolumeChecksum::new(data.len() as u64);
            sum.push_digests(&digests[..split]);
            assert!(split == digests.len() || sum.covered() < data.len() as u64);
            sum.push_digests(&digests[split..]);
            assert_eq!(sum.finish().unwrap(), checksum_of(&data), "split {split}");
        }
    }

    #[test]
    fn a_block_digest_is_blake3_of_the_block_zero_or_not() {
        let mut block = vec![0u8; CHECKSUM_BLOCK as usize];
        let blake3_of = |b: &[u8]| *blake3::hash(b).as_bytes();
        assert_eq!(block_digest(&block), blake3_of(&block));
        block[CHECKSUM_BLOCK as usize - 1] = 1;
        assert_eq!(block_digest(&block), blake3_of(&block));
        assert_ne!(block_digest(&block), zero_block_digest(CHECKSUM_BLOCK));
        assert_eq!(block_digest(&[0u8; 100]), blake3_of(&[0u8; 100]));
    }

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
    fn one_changed_byte_changes_the_checksum() {
        let mut data = vec![7u8; 200_000];
        let before = checksum_of(&data);
        data[150_000] ^= 1;
        assert_ne!(before, checksum_of(&data));
    }
}
