//! The transfer pipeline: copies a plan's extents from one image to another
//! with several segments in flight, computing the volume checksum on the way.
//!
//! Workers take segments in order from a shared counter; each reads its
//! segment, hashes its checksum blocks and writes it, so reads, hashing,
//! compression (inside the store) and writes overlap across workers. The
//! collector puts block digests back in volume order.

use super::buffers::{Buffers, TransferBuffers};
use super::collect::{Collector, Digests};
use super::plan::{Segment, Segments, TransferPlan, SEGMENT};
use super::unchanged::{changed_pieces, unchanged_ranges, TargetDigests};
use super::zero::runs;
use crate::checksum::{block_digest, zero_block_digest, CHECKSUM_BLOCK};
use crate::image::{Extent, ExtentKind, Image, ImageError, Result};
use crate::iobuf::IoBuf;
use crate::progress::{cancelled, Progress};
use crate::zero::is_zero;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// How to write the target.
#[derive(Debug, Clone, Copy)]
pub struct CopyOptions<'b> {
    pub threads: usize,
    /// The target reads as zeros everywhere (new or empty): zeros are skipped.
    pub target_is_zero: bool,
    /// Read the target first and write only what differs.
    pub compare_target: bool,
    /// Return the digests of every checksum block the plan touches, even
    /// when it does not cover the volume (incremental transfers).
    pub block_digests: bool,
    /// A pool shared with other transfers that bounds the segment buffers
    /// in flight (the service's); without one the transfer has its own of
    /// [`OWN_BUFFER_BYTES`].
    pub buffers: Option<&'b TransferBuffers>,
}

impl Default for CopyOptions<'_> {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        CopyOptions {
            threads: cores + 1,
            target_is_zero: false,
            compare_target: false,
            block_digests: false,
            buffers: None,
        }
    }
}

/// The segment buffers of a transfer without a shared pool: 16 segments
/// in flight, whatever the queue depth (deeper queues serve small reads
/// and writes, which use small buffers: [`SMALL_WINDOW`]).
pub const OWN_BUFFER_BYTES: u64 = 16 * SEGMENT;

/// A segment reading at most this much uses its worker's own small buffer
/// instead of a segment buffer from the pool: the scattered small changes
/// of an incremental keep every queue slot busy while a worker's resident
/// memory stays small (64 workers hold 16 MiB).
const SMALL_WINDOW: u64 = 256 * 1024;

/// What a transfer did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CopyStats {
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Set when the plan covered the whole volume.
    pub checksum: Option<String>,
    /// For a plan that does not cover the volume, with `block_digests`: the
    /// digests of the blocks it touched, by block offset, ascending. (A
    /// whole volume's digests go to a sink instead: see [`copy_to_sink`].)
    pub digests: Vec<(u64, [u8; 32])>,
}

/// Receives a transfer's block digests in volume order, a segment at a time.
pub type DigestSink<'s> = dyn FnMut(&[(u64, [u8; 32])]) -> Result<()> + Send + 's;

#[derive(Default)]
struct Counters {
    read: AtomicU64,
    written: AtomicU64,
}

struct Job<'a> {
    src: &'a dyn Image,
    dst: &'a dyn Image,
    opts: CopyOptions<'a>,
    unit: u64,
    size: u64,
    hash: bool,
    counters: Counters,
    progress: &'a dyn Progress,
    /// What the target holds: unchanged blocks are not written.
    held: Option<&'a dyn TargetDigests>,
    /// Lends the buffers of segments that read more than [`SMALL_WINDOW`].
    pool: &'a TransferBuffers,
}

/// Copies `plan` from `src` to `dst`. The first error stops every worker.
pub fn copy(
    src: &dyn Image,
    dst: &dyn Image,
    plan: &TransferPlan,
    opts: CopyOptions<'_>,
    progress: &dyn Progress,
) -> Result<CopyStats> {
    copy_to_sink(src, dst, plan, opts, progress, None)
}

/// [`copy`], handing every block digest, in volume order, to `sink`.
pub fn copy_to_sink<'s>(
    src: &dyn Image,
    dst: &dyn Image,
    plan: &TransferPlan,
    opts: CopyOptions<'_>,
    progress: &dyn Progress,
    sink: Option<&'s mut DigestSink<'s>>,
) -> Result<CopyStats> {
    run_copy(src, dst, plan, opts, progress, sink, None)
}

/// [`copy`] with `block_digests`, onto a target that holds `held`: checksum
/// blocks whose digest did not change are not written.
pub fn copy_changed(
    src: &dyn Image,
    dst: &dyn Image,
    plan: &TransferPlan,
    opts: CopyOptions<'_>,
    progress: &dyn Progress,
    held: &dyn TargetDigests,
) -> Result<CopyStats> {
    let opts = CopyOptions {
        block_digests: true,
        ..opts
    };
    run_copy(src, dst, plan, opts, progress, None, Some(held))
}

/// [`copy_to_sink`] onto a target that holds `held`: checksum blocks whose
/// digest did not change are not written (a whole-volume plan of a source
/// without snapshots, continuing its chain).
pub fn copy_changed_to_sink<'s>(
    src: &dyn Image,
    dst: &dyn Image,
    plan: &TransferPlan,
    opts: CopyOptions<'_>,
    progress: &dyn Progress,
    sink: &'s mut DigestSink<'s>,
    held: &dyn TargetDigests,
) -> Result<CopyStats> {
    run_copy(src, dst, plan, opts, progress, Some(sink), Some(held))
}

fn run_copy<'s>(
    src: &dyn Image,
    dst: &dyn Image,
    plan: &TransferPlan,
    opts: CopyOptions<'_>,
    progress: &dyn Progress,
    sink: Option<&'s mut DigestSink<'s>>,
    held: Option<&dyn TargetDigests>,
) -> Result<CopyStats> {
    let depth = src.queue_depth().max(dst.queue_depth());
    let opts = CopyOptions {
        threads: opts.threads.max(depth),
        ..opts
    };
    let own_pool;
    let pool = match opts.buffers {
        Some(shared) => shared,
        None => {
            own_pool = TransferBuffers::with_bytes(OWN_BUFFER_BYTES);
            &own_pool
        }
    };
    let job = Job {
        src,
        dst,
        opts,
        pool,
        unit: dst.io_granularity().max(1),
        size: plan.size,
        hash: plan.covers_volume || opts.block_digests || sink.is_some(),
        counters: Counters::default(),
        progress,
        held,
    };
    let collector = Collector::new(plan.covers_volume.then_some(plan.size), sink);
    let (checksum, digests) = run_workers(&job, plan.segments(), collector)?;
    Ok(CopyStats {
        bytes_read: job.counters.read.into_inner(),
        bytes_written: job.counters.written.into_inner(),
        checksum,
        digests,
    })
}

fn run_workers(
    job: &Job<'_>,
    segments: Segments<'_>,
    collector: Collector<'_>,
) -> Result<(Option<String>, Digests)> {
    // Numbered as handed out: the collector puts digests back in this order.
    let next = Mutex::new(segments.enumerate());
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<ImageError>> = Mutex::new(None);
    let collector = Mutex::new(collector);
    std::thread::scope(|scope| {
        for _ in 0..job.opts.threads.max(1) {
            scope.spawn(|| {
                let mut own = Buffers::default();
                while !failed.load(Ordering::Relaxed) {
                    let Some((index, seg)) = lock(&next).next() else {
                        break;
                    };
                    let result = match job.progress.is_cancelled() {
                        true => Err(cancelled(&job.dst.describe())),
                        false => copy_segment(job, &seg, &mut own),
                    };
                    let result = result.and_then(|d| match job.hash {
                        true => lock(&collector).add(index, d),
                        false => Ok(()),
                    });
                    if let Err(e) = result {
                        failed.store(true, Ordering::Relaxed);
                        lock(&first_error).get_or_insert(e);
                    }
                }
            });
        }
    });
    match first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err(e),
        None => Ok(collector
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .finish()),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Reads, hashes and writes one segment; returns the digests of the
/// checksum blocks it touches (none when not hashing). `own`: the worker's
/// small buffer, for segments that read little.
fn copy_segment(job: &Job<'_>, seg: &Segment, own: &mut Buffers) -> Result<Digests> {
    let blocks = match job.hash {
        true => touched_blocks(seg, job.size),
        false => Vec::new(),
    };
    let window = read_window(job, seg, &blocks);
    let mut lent = None;
    let (bufs, capacity) = match window.len <= SMALL_WINDOW {
        true => (own, SMALL_WINDOW),
        false => (&mut **lent.insert(job.pool.take()), SEGMENT),
    };
    if bufs.data.len() < capacity as usize {
        // Zeroed by the allocator (calloc: fresh pages, not written), so
        // only the parts a transfer reads into become resident.
        bufs.data = IoBuf::zeroed(capacity as usize);
    }
    let digests = match job.hash {
        true => read_blocks(job, &blocks, window.start, &mut bufs.data)?,
        false => {
            read_parts(job, seg, window.start, &mut bufs.data)?;
            Vec::new()
        }
    };
    let unchanged = match job.held {
        Some(held) => unchanged_ranges(held, &digests, job.size)?,
        None => Vec::new(),
    };
    for part in &seg.parts {
        for piece in changed_pieces(*part, &unchanged) {
            write_piece(job, window.start, piece, &digests, bufs)?;
        }
        job.progress.advance(part.len);
    }
    Ok(digests)
}

/// The bytes a segment reads, from the first to the last: its data parts,
/// or the checksum blocks they touch when hashing. Its buffer holds them
/// from `start`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Window {
    start: u64,
    len: u64,
}

fn read_window(job: &Job<'_>, seg: &Segment, blocks: &[TouchedBlock]) -> Window {
    let read: Vec<(u64, u64)> = match job.hash {
        true => blocks
            .iter()
            .filter(|b| !b.all_zero)
            .map(|b| (b.offset, b.end))
            .collect(),
        false => seg
            .parts
            .iter()
            .filter(|p| p.kind == ExtentKind::Data)
            .map(|p| (p.offset, p.end()))
            .collect(),
    };
    match (read.first(), read.last()) {
        (Some(first), Some(last)) => Window {
            start: first.0,
            len: last.1 - first.0,
        },
        _ => Window {
            start: seg.offset,
            len: 0,
        },
    }
}

fn write_piece(
    job: &Job<'_>,
    base: u64,
    piece: Extent,
    digests: &Digests,
    bufs: &mut Buffers,
) -> Result<()> {
    match piece.kind {
        ExtentKind::Data => {
            let rel = (piece.offset - base) as usize..(piece.end() - base) as usize;
            let hashed = Hashed { digests };
            write_data(
                job,
                piece.offset,
                &bufs.data[rel],
                &hashed,
                &mut bufs.target,
            )
        }
        ExtentKind::Zero => write_zero(job, piece, &mut bufs.target),
    }
}

/// Reads the data parts of a segment into `buf`, which starts at `base`
/// (not hashing).
fn read_parts(job: &Job<'_>, seg: &Segment, base: u64, buf: &mut [u8]) -> Result<()> {
    for part in seg.parts.iter().filter(|p| p.kind == ExtentKind::Data) {
        let rel = (part.offset - base) as usize..(part.end() - base) as usize;
        job.src.read_at(part.offset, &mut buf[rel])?;
        job.counters.read.fetch_add(part.len, Ordering::Relaxed);
    }
    Ok(())
}

/// Reads every checksum block in `blocks` whole into `buf`, which starts
/// at `base`, and returns their digests. Blocks lying wholly inside zero
/// parts are neither read nor hashed (they get the precomputed zero
/// digest); a block only partly changed is read whole, since its digest
/// covers all of it.
fn read_blocks(
    job: &Job<'_>,
    blocks: &[TouchedBlock],
    base: u64,
    buf: &mut [u8],
) -> Result<Digests> {
    let mut i = 0;
    while i < blocks.len() {
        if blocks[i].all_zero {
            i += 1;
            continue;
        }
        let start = blocks[i].offset;
        let mut end = blocks[i].end;
        while i + 1 < blocks.len() && !blocks[i + 1].all_zero && blocks[i + 1].offset == end {
            i += 1;
            end = blocks[i].end;
        }
        let rel = (start - base) as usize..(end - base) as usize;
        job.src.read_at(start, &mut buf[rel])?;
        job.counters.read.fetch_add(end - start, Ordering::Relaxed);
        i += 1;
    }
    Ok(blocks
        .iter()
        .map(|b| {
            let digest = if b.all_zero {
                zero_block_digest(b.end - b.offset)
            } else {
                let rel = (b.offset - base) as usize..(b.end - base) as usize;
                block_digest(&buf[rel])
            };
            (b.offset, digest)
        })
        .collect())
}

/// A checksum block a segment touches.
#[derive(Debug, Clone, Copy, PartialEq)]
struct TouchedBlock {
    offset: u64,
    end: u64,
    /// Wholly covered by zero parts.
    all_zero: bool,
}

/// The checksum blocks (clipped to `size`) that `seg`'s parts touch, ascending.
fn touched_blocks(seg: &Segment, size: u64) -> Vec<TouchedBlock> {
    // Per block of the segment: bytes covered by zero parts, or None once
    // a data part touches it.
    let mut zero_cover: BTreeMap<u64, Option<u64>> = BTreeMap::new();
    for part in &seg.parts {
        let mut block = part.offset - part.offset % CHECKSUM_BLOCK;
        while block < part.end() {
            let overlap = part.end().min(block + CHECKSUM_BLOCK) - part.offset.max(block);
            let entry = zero_cover.entry(block).or_insert(Some(0));
            *entry = match (part.kind, *entry) {
                (ExtentKind::Zero, Some(covered)) => Some(covered + overlap),
                _ => None,
            };
            block += CHECKSUM_BLOCK;
        }
    }
    zero_cover
        .into_iter()
        .map(|(offset, cover)| {
            let end = (offset + CHECKSUM_BLOCK).min(size);
            TouchedBlock {
                offset,
                end,
                all_zero: cover == Some(end - offset),
            }
        })
        .collect()
}

/// The digests of the blocks a segment touched (empty when the transfer
/// computes none), for backends that reuse them.
struct Hashed<'d> {
    digests: &'d [(u64, [u8; 32])],
}

impl Hashed<'_> {
    /// The digests of the blocks `at..at+len` covers, if `at` starts a block
    /// and all of them were hashed.
    fn of(&self, at: u64, len: usize) -> Option<Vec<[u8; 32]>> {
        if self.digests.is_empty() || !at.is_multiple_of(CHECKSUM_BLOCK) {
            return None;
        }
        let first = self.digests.binary_search_by_key(&at, |d| d.0).ok()?;
        let count = (len as u64).div_ceil(CHECKSUM_BLOCK) as usize;
        let run = self.digests.get(first..first + count)?;
        let contiguous = run
            .iter()
            .enumerate()
            .all(|(i, d)| d.0 == at + i as u64 * CHECKSUM_BLOCK);
        contiguous.then(|| run.iter().map(|d| d.1).collect())
    }
}

/// Writes data, turning whole zero units into zeroing (or nothing).
fn write_data(
    job: &Job<'_>,
    offset: u64,
    data: &[u8],
    hashed: &Hashed<'_>,
    target: &mut IoBuf,
) -> Result<()> {
    if job.opts.compare_target {
        return write_differences(job, offset, data, target);
    }
    for run in runs(data, offset, job.unit) {
        let at = offset + run.start as u64;
        let bytes = &data[run.start..run.start + run.len];
        if !run.zero {
            match hashed.of(at, run.len) {
                Some(digests) => job.dst.write_digested(at, bytes, &digests)?,
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

fn write_zero(job: &Job<'_>, part: Extent, target: &mut IoBuf) -> Result<()> {
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
fn write_differences(job: &Job<'_>, offset: u64, data: &[u8], target: &mut IoBuf) -> Result<()> {
    let readable = job
        .dst
        .size()?
        .min(job.size)
        .saturating_sub(offset)
        .min(data.len() as u64);
    target.set_len(data.len());
    target[readable as usize..].fill(0);
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

    #[test]
    fn copies_sharing_a_pool_hold_no_more_buffers_than_its_limit() {
        let dir = tempfile::tempdir().unwrap();
        let size = 6 * SEGMENT;
        let data: Vec<u8> = (0..size as u32 / 3).map(|i| (i % 249) as u8 + 1).collect();
        let pool = TransferBuffers::with_bytes(2 * SEGMENT);
        let copies: Vec<_> = (0..3)
            .map(|i| {
                let name = format!("src{i}");
                let src = image_with(dir.path(), &name, size, &[(i * 1000, &data)]);
                let dst = FileImage::create(dir.path().join(format!("dst{i}")), size).unwrap();
                (src, dst)
            })
            .collect();
        std::thread::scope(|s| {
            for (src, dst) in &copies {
                let pool = &pool;
                s.spawn(move || {
                    let plan = TransferPlan::full(src).unwrap();
                    let opts = CopyOptions {
                        threads: 8,
                        target_is_zero: true,
                        buffers: Some(pool),
                        ..CopyOptions::default()
                    };
                    copy(src, dst, &plan, opts, &NoProgress).unwrap();
                });
            }
        });
        for (src, dst) in &copies {
            assert_eq!(contents(dst), contents(src));
        }
        assert!(
            (1..=2).contains(&pool.peak_lent()),
            "24 workers over 3 copies, at most 2 buffers at once: {}",
            pool.peak_lent()
        );
    }

    #[test]
    fn segments_that_read_little_use_no_pool_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let size = 8 * SEGMENT;
        let small: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8 + 1).collect();
        let big: Vec<u8> = vec![7; 3 * SEGMENT as usize / 2];
        // A small change at the end of each of six segments (a window of
        // two checksum blocks, far from the segment start), then one large.
        let mut writes: Vec<(u64, &[u8])> = (0..6)
            .map(|i| ((i + 1) * SEGMENT - 50_000, &small[..]))
            .collect();
        writes.push((6 * SEGMENT + 100, &big[..SEGMENT as usize - 200]));
        let src = image_with(dir.path(), "src", size, &writes);
        let dst = FileImage::create(dir.path().join("dst"), size).unwrap();
        let extents: Vec<Extent> = writes
            .iter()
            .map(|(at, d)| Extent::data(*at, d.len() as u64))
            .collect();
        let plan = TransferPlan {
            size,
            extents,
            covers_volume: false,
        };
        let pool = TransferBuffers::with_bytes(SEGMENT);
        let opts = CopyOptions {
            threads: 8,
            target_is_zero: true,
            block_digests: true,
            buffers: Some(&pool),
            ..CopyOptions::default()
        };
        let stats = copy(&src, &dst, &plan, opts, &NoProgress).unwrap();
        assert_eq!(contents(&dst), contents(&src));
        assert_eq!(
            pool.peak_lent(),
            1,
            "only the large change took a segment buffer"
        );
        let blocks_of = |at: u64, len: u64| {
            let first = at - at % CHECKSUM_BLOCK;
            (at + len).div_ceil(CHECKSUM_BLOCK) * CHECKSUM_BLOCK - first
        };
        let hashed: usize = writes
            .iter()
            .map(|(at, d)| (blocks_of(*at, d.len() as u64) / CHECKSUM_BLOCK) as usize)
            .sum();
        assert_eq!(
            stats.digests.len(),
            hashed,
            "every touched block hashed once"
        );
        for (at, digest) in &stats.digests {
            let mut block = vec![0u8; CHECKSUM_BLOCK as usize];
            src.read_at(*at, &mut block).unwrap();
            assert_eq!(*digest, block_digest(&block), "digest of the block at {at}");
        }
    }
}
