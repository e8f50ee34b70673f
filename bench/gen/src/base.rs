//! `bench-gen base`: writes a sparse image following [`layout::plan`].
//!
//! Holes are never written: the file is sized with `set_len` and only data
//! pieces are written, each with one positional write of up to 4 MiB.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::content::Content;
use crate::layout::{self, Kind};

/// Stream of the content rng, so contents do not reuse the layout's numbers.
const CONTENT_STREAM: u64 = 1;

/// What a base image holds, for the summary line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BaseSummary {
    pub size: u64,
    pub random_bytes: u64,
    pub text_bytes: u64,
}

/// Creates (or truncates) `out` and writes the image for `size` and `seed`.
pub fn write_base(out: &Path, size: u64, seed: u64) -> io::Result<BaseSummary> {
    let file = File::create(out)?;
    file.set_len(size)?;
    let mut content = Content::new(seed, CONTENT_STREAM);
    let mut buf = Vec::new();
    let mut summary = BaseSummary {
        size,
        ..BaseSummary::default()
    };
    for piece in layout::plan(size, seed) {
        buf.resize(usize::try_from(piece.len).map_err(io::Error::other)?, 0);
        match piece.kind {
            Kind::Hole => continue,
            Kind::Random => {
                content.fill_random(&mut buf);
                summary.random_bytes += piece.len;
            }
            Kind::Text => {
                content.fill_text(&mut buf);
                summary.text_bytes += piece.len;
            }
        }
        file.write_all_at(&buf, piece.offset)?;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extents::data_extents;

    const SIZE: u64 = 48 << 20;

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let [a, b, c] = ["a", "b", "c"].map(|n| dir.path().join(n));
        write_base(&a, SIZE, 1).unwrap();
        write_base(&b, SIZE, 1).unwrap();
        write_base(&c, SIZE, 2).unwrap();
        let read = |p: &Path| std::fs::read(p).unwrap();
        assert_eq!(read(&a).len() as u64, SIZE);
        assert!(read(&a) == read(&b));
        assert!(read(&a) != read(&c));
    }

    #[test]
    fn file_holds_the_planned_data_and_holes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img");
        let summary = write_base(&path, SIZE, 3).unwrap();
        let file = File::open(&path).unwrap();
        let allocated: u64 = data_extents(&file)
            .unwrap()
            .iter()
            .map(|r| r.end - r.start)
            .sum();
        assert_eq!(allocated, summary.random_bytes + summary.text_bytes);
        let tolerance = 4 << 20;
        assert!(summary.random_bytes.abs_diff(SIZE * 4 / 10) <= tolerance);
        assert!(summary.text_bytes.abs_diff(SIZE * 2 / 10) <= tolerance);
        let bytes = std::fs::read(&path).unwrap();
        let zeros = bytes.iter().filter(|&&b| b == 0).count() as u64;
        // Holes read as zeros; random data adds about 1/256 of its length.
        assert!(zeros >= SIZE - allocated);
        assert!(zeros <= SIZE - allocated + summary.random_bytes / 128);
    }

    #[test]
    fn rewriting_replaces_a_larger_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img");
        write_base(&path, SIZE, 1).unwrap();
        write_base(&path, 8 << 20, 1).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8 << 20);
    }
}
