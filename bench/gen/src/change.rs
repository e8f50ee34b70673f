//! `bench-gen change`: overwrites an image in place with scattered random
//! writes, the way a running VM dirties its disk, and accounts for the bytes
//! changed (the union of the written ranges, since writes may overlap).

use std::fs::File;
use std::io::{self, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::Path;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::content::Content;
use crate::layout::BLOCK;
use crate::rbd_diff::DiffWriter;

const MAX_WRITE_BLOCKS: u64 = (1 << 20) / BLOCK;
/// Stream of the content rng, so contents do not reuse the plan's numbers.
const CONTENT_STREAM: u64 = 2;

/// What a change did, for the `changed_bytes=` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangeSummary {
    pub writes: u64,
    pub written_bytes: u64,
    /// Bytes in the union of the written ranges.
    pub changed_bytes: u64,
}

/// Writes of 4 KiB-1 MiB at 4 KiB-aligned offsets, uniform over the image,
/// until they total at least `percent` of `size`.
pub fn plan(size: u64, percent: f64, seed: u64) -> io::Result<Vec<Range<u64>>> {
    let blocks = size / BLOCK;
    if blocks == 0 || !(0.0..=100.0).contains(&percent) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot change {percent}% of a {size}-byte image (needs 4 KiB and 0-100%)"),
        ));
    }
    let target = (size as f64 * percent / 100.0) as u64;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut writes = Vec::new();
    let mut total = 0;
    while total < target {
        let len = rng.gen_range(1..=MAX_WRITE_BLOCKS.min(blocks));
        let start = rng.gen_range(0..=blocks - len);
        writes.push(start * BLOCK..(start + len) * BLOCK);
        total += len * BLOCK;
    }
    Ok(writes)
}

/// Applies [`plan`] to the file at `path` with fresh random data; with
/// `diff`, also writes the same change there as an `rbd diff v1` stream.
pub fn apply(
    path: &Path,
    percent: f64,
    seed: u64,
    diff: Option<&mut dyn Write>,
) -> io::Result<ChangeSummary> {
    let file = File::options().write(true).open(path)?;
    let size = file.metadata()?.len();
    let writes = plan(size, percent, seed)?;
    let mut diff = diff.map(|out| DiffWriter::new(out, size)).transpose()?;
    let mut content = Content::new(seed, CONTENT_STREAM);
    let mut buf = vec![0u8; (MAX_WRITE_BLOCKS * BLOCK) as usize];
    for range in &writes {
        let chunk = &mut buf[..(range.end - range.start) as usize];
        content.fill_random(chunk);
        file.write_all_at(chunk, range.start)?;
        if let Some(diff) = diff.as_mut() {
            diff.write(range.start, chunk)?;
        }
    }
    diff.map(DiffWriter::finish).transpose()?;
    Ok(ChangeSummary {
        writes: writes.len() as u64,
        written_bytes: writes.iter().map(|r| r.end - r.start).sum(),
        changed_bytes: union_len(writes),
    })
}

/// The number of bytes covered by at least one of `ranges`.
pub fn union_len(mut ranges: Vec<Range<u64>>) -> u64 {
    ranges.sort_unstable_by_key(|r| r.start);
    let mut total = 0;
    let mut covered_to = 0;
    for r in ranges {
        let start = r.start.max(covered_to);
        if r.end > start {
            total += r.end - start;
            covered_to = r.end;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::write_base;

    #[test]
    fn union_counts_overlaps_once() {
        assert_eq!(union_len(vec![]), 0);
        assert_eq!(union_len(vec![0..10, 20..30]), 20);
        assert_eq!(union_len(vec![20..30, 0..25]), 30);
        assert_eq!(union_len(vec![0..100, 10..20, 50..60]), 100);
        assert_eq!(union_len(vec![0..10, 10..20]), 20);
    }

    #[test]
    fn writes_are_aligned_sized_and_in_bounds() {
        let size = (256 << 20) + 100;
        let writes = plan(size, 5.0, 9).unwrap();
        let total: u64 = writes.iter().map(|r| r.end - r.start).sum();
        assert!(total >= size / 20 && total < size / 20 + (1 << 20));
        for r in &writes {
            assert_eq!(r.start % BLOCK, 0);
            assert!((BLOCK..=1 << 20).contains(&(r.end - r.start)));
            assert_eq!((r.end - r.start) % BLOCK, 0);
            assert!(r.end <= size);
        }
    }

    #[test]
    fn writes_are_spread_over_the_image() {
        let size = 4 << 30;
        let writes = plan(size, 2.0, 2).unwrap();
        let in_last_half = writes.iter().filter(|r| r.start >= size / 2).count();
        let share = in_last_half as f64 / writes.len() as f64;
        assert!((0.35..0.65).contains(&share), "{share} of {}", writes.len());
    }

    #[test]
    fn rejects_images_below_one_block_and_bad_percentages() {
        assert!(plan(4095, 2.0, 1).is_err());
        assert!(plan(1 << 20, 101.0, 1).is_err());
        assert!(plan(1 << 20, -1.0, 1).is_err());
        assert!(plan(1 << 20, f64::NAN, 1).is_err());
    }

    #[test]
    fn changed_bytes_equal_the_blocks_that_really_differ() {
        let dir = tempfile::tempdir().unwrap();
        let (orig, changed) = (dir.path().join("v1"), dir.path().join("v2"));
        write_base(&orig, 32 << 20, 1).unwrap();
        std::fs::copy(&orig, &changed).unwrap();
        let summary = apply(&changed, 10.0, 2, None).unwrap();
        let (a, b) = (
            std::fs::read(&orig).unwrap(),
            std::fs::read(&changed).unwrap(),
        );
        let differing = a
            .chunks(BLOCK as usize)
            .zip(b.chunks(BLOCK as usize))
            .filter(|(x, y)| x != y)
            .count() as u64;
        // Fresh random 4 KiB blocks never equal what they overwrite.
        assert_eq!(differing * BLOCK, summary.changed_bytes);
        assert!(summary.changed_bytes <= summary.written_bytes);
        assert!(summary.written_bytes >= (32 << 20) / 10);
        assert_eq!(a.len(), b.len());
    }

    #[test]
    fn same_seed_same_change() {
        let dir = tempfile::tempdir().unwrap();
        let [a, b] = ["a", "b"].map(|n| dir.path().join(n));
        for path in [&a, &b] {
            write_base(path, 16 << 20, 1).unwrap();
            apply(path, 5.0, 4, None).unwrap();
        }
        assert!(std::fs::read(&a).unwrap() == std::fs::read(&b).unwrap());
    }

    #[test]
    fn the_rbd_diff_stream_makes_the_same_change() {
        let dir = tempfile::tempdir().unwrap();
        let (orig, changed) = (dir.path().join("v1"), dir.path().join("v2"));
        write_base(&orig, 16 << 20, 1).unwrap();
        std::fs::copy(&orig, &changed).unwrap();
        let mut stream = Vec::new();
        apply(&changed, 5.0, 3, Some(&mut stream)).unwrap();
        let mut image = std::fs::read(&orig).unwrap();
        crate::rbd_diff::tests::apply(&stream, &mut image);
        assert!(image == std::fs::read(&changed).unwrap());
    }
}
