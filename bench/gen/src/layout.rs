//! Where the data goes in a base image: the image is cut into 1-4 MiB pieces
//! aligned to 4 KiB, and pieces picked in random order are made random data
//! until 40% of the image is, then text until 20% is; the rest stay holes.
//!
//! Filling quotas in a random order (instead of flipping a coin per piece)
//! keeps the proportions within one piece of the target at any size while the
//! positions stay scattered.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub const BLOCK: u64 = 4096;
const MIN_PIECE_BLOCKS: u64 = (1 << 20) / BLOCK;
const MAX_PIECE_BLOCKS: u64 = (4 << 20) / BLOCK;
/// Share of the image filled with random data, in percent.
pub const RANDOM_PERCENT: u64 = 40;
/// Share of the image filled with text, in percent.
pub const TEXT_PERCENT: u64 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Random,
    Text,
    Hole,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece {
    pub offset: u64,
    pub len: u64,
    pub kind: Kind,
}

/// The layout of a `size`-byte image for `seed`, in ascending offset order.
pub fn plan(size: u64, seed: u64) -> Vec<Piece> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut pieces = cut(size, &mut rng);
    let mut order: Vec<usize> = (0..pieces.len()).collect();
    order.shuffle(&mut rng);
    let mut quota = [
        (Kind::Random, size / 100 * RANDOM_PERCENT),
        (Kind::Text, size / 100 * TEXT_PERCENT),
    ];
    for index in order {
        pieces[index].kind = take_quota(&mut quota, pieces[index].len);
    }
    pieces
}

/// Cuts `0..size` into consecutive holes of 1-4 MiB (the last may be shorter).
fn cut(size: u64, rng: &mut ChaCha8Rng) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut offset = 0;
    while offset < size {
        let len = (rng.gen_range(MIN_PIECE_BLOCKS..=MAX_PIECE_BLOCKS) * BLOCK).min(size - offset);
        pieces.push(Piece {
            offset,
            len,
            kind: Kind::Hole,
        });
        offset += len;
    }
    pieces
}

/// The first kind whose quota is not yet met (charging `len` to it), or a hole.
fn take_quota(quota: &mut [(Kind, u64)], len: u64) -> Kind {
    match quota.iter_mut().find(|(_, left)| *left > 0) {
        Some((kind, left)) => {
            *left = left.saturating_sub(len);
            *kind
        }
        None => Kind::Hole,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes_of(pieces: &[Piece], kind: Kind) -> u64 {
        pieces
            .iter()
            .filter(|p| p.kind == kind)
            .map(|p| p.len)
            .sum()
    }

    #[test]
    fn pieces_tile_the_image_aligned_and_sized() {
        let size = (1 << 30) + 12345;
        let pieces = plan(size, 3);
        let mut expect = 0;
        for p in &pieces {
            assert_eq!(p.offset, expect);
            assert_eq!(p.offset % BLOCK, 0);
            let last = p.offset + p.len == size;
            assert!(last || (1 << 20..=4 << 20).contains(&p.len), "{p:?}");
            assert!(last || p.len % BLOCK == 0, "{p:?}");
            expect += p.len;
        }
        assert_eq!(expect, size);
    }

    #[test]
    fn proportions_are_within_one_piece_of_the_target() {
        for (size, seed) in [(64 << 20, 1), (1 << 30, 2), (4 << 30, 3)] {
            let pieces = plan(size, seed);
            let random = bytes_of(&pieces, Kind::Random);
            let text = bytes_of(&pieces, Kind::Text);
            let tolerance = MAX_PIECE_BLOCKS * BLOCK;
            assert!(
                random.abs_diff(size / 100 * 40) <= tolerance,
                "{random} of {size}"
            );
            assert!(
                text.abs_diff(size / 100 * 20) <= tolerance,
                "{text} of {size}"
            );
        }
    }

    #[test]
    fn data_is_scattered_over_the_whole_image() {
        let size = 4 << 30;
        let pieces = plan(size, 1);
        let data_in_last_half = pieces
            .iter()
            .filter(|p| p.kind != Kind::Hole && p.offset >= size / 2)
            .map(|p| p.len)
            .sum::<u64>();
        // About half of the 60% data lands in each half of the image.
        let share = data_in_last_half as f64 / (size as f64 * 0.6);
        assert!((0.4..0.6).contains(&share), "{share}");
    }

    #[test]
    fn same_seed_same_plan_other_seed_other_plan() {
        assert_eq!(plan(256 << 20, 5), plan(256 << 20, 5));
        assert_ne!(plan(256 << 20, 5), plan(256 << 20, 6));
    }

    #[test]
    fn tiny_and_empty_images_are_planned() {
        assert!(plan(0, 1).is_empty());
        let tiny = plan(10_000, 1);
        assert_eq!(tiny.len(), 1);
        assert_eq!(tiny[0].len, 10_000);
    }
}
