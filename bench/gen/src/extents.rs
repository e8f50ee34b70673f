//! The data/hole map of a file (`lseek` with `SEEK_DATA`/`SEEK_HOLE`) and the
//! comparison the benchmark uses to check that a restore kept the source's
//! sparseness.

use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::io::AsRawFd;

/// The allocated (data) extents of `file`, ascending and maximal.
pub fn data_extents(file: &File) -> io::Result<Vec<Range<u64>>> {
    let size = file.metadata()?.len();
    let mut extents = Vec::new();
    let mut offset = 0;
    while offset < size {
        let Some(start) = seek(file, offset, libc::SEEK_DATA)? else {
            break;
        };
        let end = seek(file, start, libc::SEEK_HOLE)?.unwrap_or(size);
        extents.push(start..end);
        offset = end;
    }
    Ok(extents)
}

/// `lseek(fd, offset, whence)`; `None` when there is no more data (ENXIO).
fn seek(file: &File, offset: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    let offset = libc::off_t::try_from(offset).map_err(io::Error::other)?;
    // SAFETY: lseek only reads its integer arguments; the fd is owned by `file`.
    let result = unsafe { libc::lseek(file.as_raw_fd(), offset, whence) };
    if result >= 0 {
        return Ok(Some(result as u64));
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::ENXIO) => Ok(None),
        _ => Err(err),
    }
}

/// How two data maps differ: the regions allocated in exactly one of them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LayoutDiff {
    pub diff_bytes: u64,
    pub diff_runs: u64,
    /// The longest contiguous region allocated in one map but not the other.
    pub max_run: u64,
}

/// Compares two ascending, non-overlapping extent lists.
pub fn compare(a: &[Range<u64>], b: &[Range<u64>]) -> LayoutDiff {
    let mut points: Vec<u64> = a.iter().chain(b).flat_map(|r| [r.start, r.end]).collect();
    points.sort_unstable();
    points.dedup();
    let mut diff = LayoutDiff::default();
    let mut run = 0;
    for window in points.windows(2) {
        let (lo, hi) = (window[0], window[1]);
        if covers(a, lo) != covers(b, lo) {
            run += hi - lo;
            diff.diff_bytes += hi - lo;
        } else {
            close_run(&mut diff, &mut run);
        }
    }
    close_run(&mut diff, &mut run);
    diff
}

fn close_run(diff: &mut LayoutDiff, run: &mut u64) {
    if *run > 0 {
        diff.diff_runs += 1;
        diff.max_run = diff.max_run.max(*run);
        *run = 0;
    }
}

/// Whether `offset` lies inside one of the sorted `extents`.
fn covers(extents: &[Range<u64>], offset: u64) -> bool {
    let after = extents.partition_point(|r| r.start <= offset);
    after > 0 && extents[after - 1].end > offset
}

#[cfg(test)]
// One-range slices are extent lists here, not attempts to build a range.
#[allow(clippy::single_range_in_vec_init)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn finds_data_and_holes_of_a_sparse_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = File::create(&path).unwrap();
        file.set_len(16 << 20).unwrap();
        file.write_all_at(&[1u8; 1 << 20], 1 << 20).unwrap();
        file.write_all_at(&[2u8; 4096], 8 << 20).unwrap();
        let extents = data_extents(&file).unwrap();
        assert_eq!(extents, vec![1 << 20..2 << 20, 8 << 20..(8 << 20) + 4096]);
    }

    #[test]
    fn data_at_the_end_and_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"").unwrap();
        assert!(data_extents(&File::open(&path).unwrap())
            .unwrap()
            .is_empty());
        std::fs::write(&path, b"hello").unwrap();
        assert_eq!(
            data_extents(&File::open(&path).unwrap()).unwrap(),
            vec![0..5]
        );
    }

    #[test]
    fn identical_maps_do_not_differ() {
        let map = vec![0..10, 20..30];
        assert_eq!(compare(&map, &map), LayoutDiff::default());
    }

    #[test]
    fn shifted_boundaries_and_filled_holes_are_measured() {
        let a = vec![100..200, 300..400];
        // Starts 10 late, ends 5 early, and a hole 150..160 appears.
        let b = vec![110..150, 160..200, 300..395];
        let diff = compare(&a, &b);
        assert_eq!(diff.diff_bytes, 10 + 10 + 5);
        assert_eq!(diff.diff_runs, 3);
        assert_eq!(diff.max_run, 10);
        // Merging two extents over a hole is one run as long as the hole.
        let merged = compare(&a, &[100..400]);
        assert_eq!(
            (merged.diff_bytes, merged.diff_runs, merged.max_run),
            (100, 1, 100)
        );
    }

    #[test]
    fn an_extent_missing_entirely_is_one_long_run() {
        let diff = compare(&[0..10, 50..90], &[0..10]);
        assert_eq!((diff.diff_bytes, diff.diff_runs, diff.max_run), (40, 1, 40));
    }
}
