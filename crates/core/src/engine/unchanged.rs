//! Leaving alone what the target already holds.
//!
//! An incremental writes into its chain's base, whose HEAD the chain check
//! proved equal to the parent backup; the parent's block digests say what
//! that HEAD holds. A checksum block whose new digest equals the parent's
//! is unchanged, so none of it is written -- typically the parts of an RBD
//! object created since the last snapshot that were never written, which
//! the exact diff reports (the object is new) though they read as zeros
//! before and after.

use super::copy::CopyStats;
use super::error::EngineResult;
use super::{Engine, TransferPlan};
use crate::checksum::CHECKSUM_BLOCK;
use crate::image::{Extent, Image, Result};
use std::ops::Range;

/// What the target holds before the copy, by checksum block.
pub trait TargetDigests: Sync {
    /// The digests of the `count` blocks from block `first` on, as the new
    /// volume's blocks would hash; `None` where unknown.
    fn blocks(&self, first: u64, count: usize) -> Result<Vec<Option<[u8; 32]>>>;
}

impl Engine<'_> {
    /// Writes again, from `source`, what `target` holds but the store
    /// knows to be bad (quarantined, in an unreadable pack): an incremental
    /// leaves everything it does not copy as the base holds it, and must
    /// not publish a snapshot that points at bad data. Free while the
    /// store knows no damage.
    pub(super) fn rewrite_known_damage(
        &self,
        label: &str,
        source: &dyn Image,
        target: &dyn Image,
        stats: &mut CopyStats,
    ) -> EngineResult<()> {
        let damaged = target.known_damage()?;
        if damaged.is_empty() {
            return Ok(());
        }
        let plan = TransferPlan {
            size: target.size()?,
            extents: damaged,
            covers_volume: false,
        };
        self.progress.note(&format!(
            "{} bytes of {} are known damaged in the store: written again from the source",
            plan.data_bytes(),
            target.describe()
        ));
        let again = self.run_copy(label, source, target, &plan, self.copy)?;
        stats.bytes_read += again.bytes_read;
        stats.bytes_written += again.bytes_written;
        Ok(())
    }
}

/// The byte ranges (ascending, clipped to `size`) of the blocks in
/// `digests` (block offset and new digest, ascending) that `target`
/// already holds.
pub(super) fn unchanged_ranges(
    target: &dyn TargetDigests,
    digests: &[(u64, [u8; 32])],
    size: u64,
) -> Result<Vec<Range<u64>>> {
    let (Some(first), Some(last)) = (digests.first(), digests.last()) else {
        return Ok(Vec::new());
    };
    let first_block = first.0 / CHECKSUM_BLOCK;
    let count = (last.0 / CHECKSUM_BLOCK - first_block + 1) as usize;
    let held = target.blocks(first_block, count)?;
    Ok(digests
        .iter()
        .filter(|(offset, digest)| {
            let index = (offset / CHECKSUM_BLOCK - first_block) as usize;
            held.get(index).copied().flatten() == Some(*digest)
        })
        .map(|(offset, _)| *offset..(offset + CHECKSUM_BLOCK).min(size))
        .collect())
}

/// The pieces of `part` outside the `unchanged` ranges (ascending).
pub(super) fn changed_pieces(part: Extent, unchanged: &[Range<u64>]) -> Vec<Extent> {
    let mut pieces = Vec::new();
    let mut pos = part.offset;
    for skip in unchanged {
        if skip.end <= pos || skip.start >= part.end() {
            continue;
        }
        if skip.start > pos {
            pieces.push(Extent {
                offset: pos,
                len: skip.start - pos,
                kind: part.kind,
            });
        }
        pos = skip.end.min(part.end());
    }
    if pos < part.end() {
        pieces.push(Extent {
            offset: pos,
            len: part.end() - pos,
            kind: part.kind,
        });
    }
    pieces
}

#[cfg(test)]
// Lists of byte ranges, some with one range: not mistaken `vec![0..n]`.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;

    const B: u64 = CHECKSUM_BLOCK;

    struct Held(Vec<Option<[u8; 32]>>);

    impl TargetDigests for Held {
        fn blocks(&self, first: u64, count: usize) -> Result<Vec<Option<[u8; 32]>>> {
            Ok(self.0[first as usize..first as usize + count].to_vec())
        }
    }

    #[test]
    fn only_blocks_with_equal_digests_are_unchanged() {
        let held = Held(vec![Some([1; 32]), Some([2; 32]), None, Some([4; 32])]);
        let digests = [(B, [2; 32]), (2 * B, [3; 32]), (3 * B, [5; 32])];
        let got = unchanged_ranges(&held, &digests, 4 * B).unwrap();
        assert_eq!(got, [B..2 * B]);
        let last = unchanged_ranges(&held, &[(3 * B, [4; 32])], 3 * B + 100).unwrap();
        assert_eq!(last, [3 * B..3 * B + 100]);
    }

    #[test]
    fn pieces_leave_out_the_unchanged_ranges() {
        let part = Extent::data(100, 4 * B);
        let unchanged = [0..B, 2 * B..3 * B, 10 * B..11 * B];
        assert_eq!(
            changed_pieces(part, &unchanged),
            [Extent::data(B, B), Extent::data(3 * B, 4 * B + 100 - 3 * B)]
        );
        assert_eq!(changed_pieces(part, &[]), [part]);
        assert!(changed_pieces(part, &[0..5 * B]).is_empty());
        let zero = Extent::zero(B, B);
        assert_eq!(changed_pieces(zero, &[0..B]), [zero]);
    }
}
