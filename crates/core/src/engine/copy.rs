//! The transfer pipeline: copies a plan's extents from one image to another
//! with several segments in flight, computing the volume checksum on the way.
//!
//! Workers take segments in order from a shared counter; each reads its
//! segment, hashes its checksum blocks and writes it, so reads, hashing,
//! compression (inside the store) and writes overlap across workers. The
//! collector puts block digests back in volume order.

use super::plan::{Segment, TransferPlan, SEGMENT};
use super::zero::{is_zero, runs};
use crate::checksum::{block_digest, zero_block_digest, VolumeChecksum, CHECKSUM_BLOCK};
use crate::image::{Extent, ExtentKind, Image, ImageError, Result};
use crate::progress::Progress;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

/// How to write the target.
#[derive(Debug, Clone, Copy)]
pub struct CopyOptions {
    pub threads: usize,
    /// The target reads as zeros everywhere (new or empty): zeros are skipped.
    pub target_is_zero: bool,
    /// Read the target first and write only what differs.
    pub compare_target: bool,
}

impl Default for CopyOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        CopyOptions {
            threads: cores + 1,
            target_is_zero: false,
            compare_target: false,
        }
    }
}

/// What a transfer did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CopyStats {
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Set when the plan covered the whole volume.
    pub checksum: Option<String>,
}

#[derive(Default)]
struct Counters {
    read: AtomicU64,
    written: AtomicU64,
}

struct Job<'a> {
    src: &'a dyn Image,
    dst: &'a dyn Image,
    opts: CopyOptions,
    unit: u64,
    size: u64,
    hash: bool,
    counters: Counters,
    progress: &'a dyn Progress,
}

/// Copies `plan` from `src` to `dst`. The first error stops every worker.
pub fn copy(
    src: &dyn Image,
    dst: &dyn Image,
    plan: &TransferPlan,
    opts: CopyOptions,
    progress: &dyn Progress,
) -> Result<CopyStats> {
    let segments = plan.segments();
    let depth = src.queue_depth().max(dst.queue_depth());
    let opts = CopyOptions {
        threads: opts.threads.max(depth),
        ..opts
    };
    let job = Job {
        src,
        dst,
        opts,
        unit: dst.io_granularity().max(1),
        size: plan.size,
        hash: plan.covers_volume,
        counters: Counters::default(),
        progress,
    };
    let digests = run_workers(&job, &segments)?;
    let checksum = plan
        .covers_volume
        .then(|| ordered_checksum(plan.size, digests))
        .flatten();
    Ok(CopyStats {
        bytes_read: job.counters.read.into_inner(),
        bytes_written: job.counters.written.into_inner(),
        checksum,
    })
}

fn run_workers(job: &Job<'_>, segments: &[Segment]) -> Result<BTreeMap<u64, Vec<[u8; 32]>>> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<ImageError>> = Mutex::new(None);
    let digests = Mutex::new(BTreeMap::new());
    std::thread::scope(|scope| {
        for _ in 0..job.opts.threads.max(1) {
            scope.spawn(|| {
                let mut bufs = Buffers::default();
                while !failed.load(Ordering::Relaxed) {
                    let Some(seg) = segments.get(next.fetch_add(1, Ordering::Relaxed)) else {
                        break;
                    };
                    match copy_segment(job, seg, &mut bufs) {
                        Ok(d) => {
                            if job.hash {
                                lock(&digests).insert(seg.offset, d);
                            }
                        }
                        Err(e) => {
                            failed.store(true, Ordering::Relaxed);
                            lock(&first_error).get_or_insert(e);
                        }
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(digests.into_inner().unwrap_or_else(|p| p.into_inner())),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn ordered_checksum(size: u64, digests: BTreeMap<u64, Vec<[u8; 32]>>) -> Option<String> {
    let mut sum = VolumeChecksum::new(size);
    for (_, blocks) in digests {
        blocks.iter().for_each(|d| sum.push(d));
    }
    sum.finish()
}

#[derive(Default)]
struct Buffers {
    data: Vec<u8>,
    target: Vec<u8>,
}

/// Reads, hashes and writes one segment; returns its block digests.
fn copy_segment(job: &Job<'_>, seg: &Segment, bufs: &mut Buffers) -> Result<Vec<[u8; 32]>> {
    let span = seg.span() as usize;
    bufs.data.resize(SEGMENT as usize, 0);
    let buf = &mut bufs.data[..span];
    for part in &seg.parts {
        let rel = (part.offset - seg.offset) as usize..(part.end() - seg.offset) as usize;
        match part.kind {
            ExtentKind::Data => job.src.read_at(part.offset, &mut buf[rel])?,
            ExtentKind::Zero => zero_block_edges(&mut buf[rel], part.offset),
        }
    }
    let digests = if job.hash {
        segment_digests(seg, buf)
    } else {
        Vec::new()
    };
    for part in &seg.parts {
        let rel = (part.offset - seg.offset) as usize..(part.end() - seg.offset) as usize;
        match part.kind {
            ExtentKind::Data => {
                job.counters.read.fetch_add(part.len, Ordering::Relaxed);
                let hashed = Hashed {
                    base: seg.offset,
                    digests: &digests,
                };
                write_data(job, part.offset, &buf[rel], &hashed, &mut bufs.target)?;
            }
            ExtentKind::Zero => write_zero(job, *part, &mut bufs.target)?,
        }
        job.progress.advance(part.len);
    }
    Ok(digests)
}

/// Zeroes the parts of a zero extent that share a checksum block with data:
/// blocks lying wholly inside zero extents are never hashed (they get the
/// precomputed zero digest) nor written, so their bytes need no clearing.
fn zero_block_edges(buf: &mut [u8], offset: u64) {
    let block = CHECKSUM_BLOCK as usize;
    let head = ((block - (offset % CHECKSUM_BLOCK) as usize) % block).min(buf.len());
    let tail_start = head + (buf.len() - head) / block * block;
    buf[..head].fill(0);
    buf[tail_start..].fill(0);
}

/// Checksum block digests of a segment whose parts cover it entirely.
fn segment_digests(seg: &Segment, buf: &[u8]) -> Vec<[u8; 32]> {
    buf.chunks(CHECKSUM_BLOCK as usize)
        .enumerate()
        .map(|(i, block)| {
            let start = seg.offset + i as u64 * CHECKSUM_BLOCK;
            if only_zero_parts(seg, start, block.len() as u64) {
                zero_block_digest(block.len() as u64)
            } else {
                block_digest(block)
            }
        })
        .collect()
}

fn only_zero_parts(seg: &Segment, start: u64, len: u64) -> bool {
    seg.parts
        .iter()
        .filter(|p| p.offset < start + len && p.end() > start)
        .all(|p| p.kind == ExtentKind::Zero)
}

/// Checksum block digests of a segment starting at `base` (empty when the
/// transfer computes no checksum).
struct Hashed<'d> {
    base: u64,
    digests: &'d [[u8; 32]],
}

impl Hashed<'_> {
    /// The digests of the blocks `at..at+len` covers, if `at` starts a block.
    fn of(&self, at: u64, len: usize) -> Option<&[[u8; 32]]> {
        if self.digests.is_empty() || !at.is_multiple_of(CHECKSUM_BLOCK) {
            return None;
        }
        let first = ((at - self.base) / CHECKSUM_BLOCK) as usize;
        let count = (len as u64).div_ceil(CHECKSUM_BLOCK) as usize;
        self.digests.get(first..first + count)
    }
}

/// Writes data, turning whole zero units into zeroing (or nothing).
fn write_data(
    job: &Job<'_>,
    offset: u64,
    data: &[u8],
    hashed: &Hashed<'_>,
    target: &mut Vec<u8>,
) -> Result<()> {
    if job.opts.compare_target {
        return write_differences(job, offset, data, target);
    }
    for run in runs(data, offset, job.unit) {
        let at = offset + run.start as u64;
        let bytes = &data[run.start..run.start + run.len];
        if !run.zero {
            match hashed.of(at, run.len) {
                Some(digests) => job.dst.write_digested(at, bytes, digests)?,
                None => job.dst.write_at(at, bytes)?,
            }
            job.counters
                .written
                .fetch_add(run.len as u64, Ordering::Relaxed);
        } else if !job.opts.target_is_zero {
            job.dst.write_zeroes(at, run.len as u64)?;
        }
    }
    Ok(())
}

fn write_zero(job: &Job<'_>, part: Extent, target: &mut Vec<u8>) -> Result<()> {
    if job.opts.target_is_zero {
        return Ok(());
    }
    if !job.opts.compare_target {
        return job.dst.write_zeroes(part.offset, part.len);
    }
    let zeros = vec![0u8; part.len as usize];
    write_differences(job, part.offset, &zeros, target)
}

/// Reads the target range and rewrites only the units that differ.
fn write_differences(job: &Job<'_>, offset: u64, data: &[u8], target: &mut Vec<u8>) -> Result<()> {
    let readable = job
        .dst
        .size()?
        .min(job.size)
        .saturating_sub(offset)
        .min(data.len() as u64);
    target.clear();
    target.resize(data.len(), 0);
    job.dst.read_at(offset, &mut target[..readable as usize])?;
    let unit = job.unit.max(4096);
    let mut pos = 0usize;
    while pos < data.len() {
        let end =
            (((offset + pos as u64) / unit + 1) * unit - offset).min(data.len() as u64) as usize;
        if data[pos..end] != target[pos..end] || pos as u64 >= readable {
            write_unit(job, offset + pos as u64, &data[pos..end])?;
        }
        pos = end;
    }
    Ok(())
}

fn write_unit(job: &Job<'_>, at: u64, bytes: &[u8]) -> Result<()> {
    if is_zero(bytes) {
        return job.dst.write_zeroes(at, bytes.len() as u64);
    }
    job.counters
        .written
        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    job.dst.write_at(at, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::checksum_of;
    use crate::image::file::FileImage;
    use crate::progress::NoProgress;

    fn image_with(
        dir: &std::path::Path,
        name: &str,
        size: u64,
        writes: &[(u64, &[u8])],
    ) -> FileImage {
        let img = FileImage::create(dir.join(name), size).unwrap();
        for (off, data) in writes {
            img.write_at(*off, data).unwrap();
        }
        img
    }

    fn contents(img: &FileImage) -> Vec<u8> {
        let mut buf = vec![0u8; img.size().unwrap() as usize];
        img.read_at(0, &mut buf).unwrap();
        buf
    }

    #[test]
    fn full_copy_is_exact_and_its_checksum_matches_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let size = 3 * SEGMENT + 12345;
        let data: Vec<u8> = (0..700_000u32).map(|i| (i * 7 % 251) as u8 + 1).collect();
        let src = image_with(
            dir.path(),
            "src",
            size,
            &[(100, &data), (2 * SEGMENT - 5, &data[..9999])],
        );
        let dst = FileImage::create(dir.path().join("dst"), size).unwrap();
        let plan = TransferPlan::full(&src).unwrap();
        let opts = CopyOptions {
            target_is_zero: true,
            ..CopyOptions::default()
        };
        let stats = copy(&src, &dst, &plan, opts, &NoProgress).unwrap();
        let expected = contents(&src);
        assert_eq!(contents(&dst), expected);
        assert_eq!(
            stats.checksum.as_deref(),
            Some(checksum_of(&expected).as_str())
        );
    }

    #[test]
    fn compare_mode_rewrites_only_differing_units_and_zeroes_stale_data() {
        let dir = tempfile::tempdir().unwrap();
        let size = 2 * SEGMENT;
        let ones = vec![1u8; 8192];
        let src = image_with(dir.path(), "src", size, &[(0, &ones)]);
        let dst = image_with(
            dir.path(),
            "dst",
            size,
            &[(0, &ones), (SEGMENT + 4096, &ones)],
        );
        let plan = TransferPlan::full(&src).unwrap();
        let opts = CopyOptions {
            compare_target: true,
            ..CopyOptions::default()
        };
        let stats = copy(&src, &dst, &plan, opts, &NoProgress).unwrap();
        assert_eq!(stats.bytes_written, 0, "equal data is not rewritten");
        assert_eq!(
            contents(&dst),
            contents(&src),
            "stale data beyond is zeroed"
        );
    }

    #[test]
    fn digested_writes_store_the_same_chunks_as_plain_writes() {
        use crate::checksum::block_digest;
        use crate::image::Pool;
        use crate::store::LocalStore;
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::init(&dir.path().join("s"), Default::default()).unwrap();
        let block = CHECKSUM_BLOCK as usize;
        let data: Vec<u8> = (0..4 * block as u32).map(|i| (i % 253) as u8 + 1).collect();
        let digests: Vec<[u8; 32]> = data.chunks(block).map(block_digest).collect();
        store.create("a", data.len() as u64).unwrap();
        store.create("b", data.len() as u64).unwrap();
        let (a, b) = (store.open("a").unwrap(), store.open("b").unwrap());
        a.write_digested(0, &data, &digests).unwrap();
        b.write_at(0, &data).unwrap();
        a.flush().unwrap();
        b.flush().unwrap();
        let stats = store.stats().unwrap();
        assert_eq!(stats.chunks, 4, "both images share the same four chunks");
        let mut back = vec![0u8; data.len()];
        a.read_at(0, &mut back).unwrap();
        assert_eq!(back, data);
    }
}
