//! Changed extents via `rbd_diff_iterate2`, hybrid when fast-diff is usable.
//!
//! An exact diff (`whole_object=0`) is byte-precise but, on Pacific, costs a
//! `list_snaps` per object of the whole range (12 s per TiB). A whole-object
//! diff reads the fast-diff object map (0.18 s per TiB) but reports whole
//! 4 MiB objects. So when fast-diff is enabled and valid we first find the
//! changed objects with a whole-object pass, then run the exact pass only on
//! those objects' ranges. Objects gone at the end point (`exists=0`) are
//! reported as zero extents straight from the first pass.
//!
//! Work proceeds in windows of whole object sets (64 GiB for whole-object
//! passes, 1 GiB for exact ones) so memory stays bounded and extents can be
//! sorted (librbd's order is per object, which is not image order for striped
//! images) before the visitor sees them.
//!
//! Each exact pass is one synchronous call that waits at least one OSD round
//! trip, so the exact passes of a batch of pieces (the changed objects'
//! ranges, or slices of a window) run on several threads at once, as many as
//! the image's queue depth; their extents are then visited in image order.
//! librbd's diff is safe to run concurrently on one handle: it only reads
//! the image context under its locks.

use std::ffi::CString;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use blockback_core::image::{Extent, ExtentKind, ExtentVisitor, Image, ImageError, Result};

use crate::cluster::cstr;
use crate::error::from_errno;
use crate::ffi::{Errno, RbdHandle};
use crate::image::RbdImage;
use crate::pool::features::FAST_DIFF;
use crate::spec::require_name;

/// librbd.h RBD_FLAG_OBJECT_MAP_INVALID | RBD_FLAG_FAST_DIFF_INVALID: the
/// flags (of HEAD or of a snapshot) that say its object map cannot be
/// trusted.
pub(crate) const MAP_INVALID: u64 = 1 | 2;

/// Window of an exact pass (memory: its extents); rounded up to whole object sets.
const EXACT_WINDOW: u64 = 1 << 30;

/// Window of a whole-object pass: at most 16384 4-MiB objects, and few
/// enough calls that a TiB costs 16 object-map reads, not 1024.
const COARSE_WINDOW: u64 = 64 << 30;

/// An exact pass over a window without fast-diff is cut into slices of this
/// many object sets, run concurrently.
const SLICE_SETS: u64 = 16;

/// Pieces whose exact passes run concurrently before their extents are
/// visited (bounds the extents held in memory).
const BATCH: usize = 256;

pub(crate) fn changed_extents(
    img: &RbdImage,
    from_snap: Option<&str>,
    range: Range<u64>,
    visit: &mut ExtentVisitor<'_>,
) -> Result<()> {
    let from = from_snap.map(|s| snap_cstring(img, s)).transpose()?;
    let end = range.end.min(img.size()?);
    if range.start >= end {
        return Ok(());
    }
    let set = object_set_size(&*img.handle()?).map_err(|e| img.err(e))?;
    let walker = Walker {
        img,
        from: from.as_deref(),
        from_name: from_snap,
        exact_window: round_up(EXACT_WINDOW, set),
        threads: exact_passes_in_flight(img.queue_depth),
    };
    if !fast_diff_usable(&*img.handle()?).map_err(|e| img.err(e))? {
        let slices = windows(range.start..end, set.saturating_mul(SLICE_SETS));
        return walker.exact_pieces(slices.map(Item::Exact), visit);
    }
    for window in windows(range.start..end, round_up(COARSE_WINDOW, set)) {
        let objects = walker.pass(window, true)?;
        // One piece per object set of a changed run: the changed objects'
        // exact passes go concurrently, not one after another.
        let items = objects.into_iter().flat_map(|object| match object.kind {
            ExtentKind::Zero => vec![Item::Report(object)],
            ExtentKind::Data => windows(object.offset..object.end(), set)
                .map(Item::Exact)
                .collect(),
        });
        walker.exact_pieces(items, visit)?;
    }
    Ok(())
}

/// Exact passes run at once for an image of queue depth `depth`: four per
/// slot, at most 256. A pass holds only the extents it finds, no data, so
/// unlike reads and writes its depth costs no memory; each waits one round
/// trip (`list_snaps` of one object).
fn exact_passes_in_flight(depth: usize) -> usize {
    depth.saturating_mul(4).clamp(1, 256)
}

/// Whether anything may have changed since `from_snap`: with fast-diff,
/// whole-object passes (each reads the object maps once), stopped at the
/// first object one reports; otherwise the exact diff, stopped at its
/// first extent.
///
/// The answer costs librbd about 0.7 us of CPU per object however little
/// changed (0.18-0.2 s for a TiB, with or without network latency), so a
/// large image is cut into one window per core, passes run at once, and
/// the first to find a change stops the others.
pub(crate) fn changed_since(img: &RbdImage, from_snap: &str) -> Result<bool> {
    if let Some(answer) = crate::objectmap::changed_since(img, from_snap)? {
        return Ok(answer);
    }
    if !fast_diff_usable(&*img.handle()?).map_err(|e| img.err(e))? {
        return blockback_core::image::any_extent(img, Some(from_snap), |_| true);
    }
    let from = snap_cstring(img, from_snap)?;
    let end = img.size()?;
    if end == 0 {
        return Ok(false);
    }
    let found = AtomicBool::new(false);
    let windows = changed_since_windows(end);
    let step = end.div_ceil(windows).max(1);
    let pass = |start: u64| {
        let len = step.min(end - start);
        let walk =
            img.handle()?
                .diff_iterate(Some(&from), start, len, true, &mut |offset, len, _| {
                    if len > 0 && offset < end {
                        found.store(true, Ordering::Relaxed);
                    }
                    !found.load(Ordering::Relaxed)
                });
        match walk {
            Err(e) if e.0 == libc::ECANCELED && found.load(Ordering::Relaxed) => Ok(()),
            Err(e) => Err(diff_error(img, Some(from_snap), e)),
            Ok(()) => Ok(()),
        }
    };
    let starts: Vec<u64> = (0..end).step_by(step as usize).collect();
    std::thread::scope(|s| {
        let others: Vec<_> = starts[1..]
            .iter()
            .map(|&at| s.spawn(move || pass(at)))
            .collect();
        let mut result = pass(starts[0]);
        for other in others {
            result = result.and(joined(other));
        }
        result
    })?;
    Ok(found.into_inner())
}

/// What a scoped thread returned; its panic goes on in the joining thread.
pub(crate) fn joined<T>(t: std::thread::ScopedJoinHandle<'_, T>) -> T {
    t.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Windows of at least [`CHANGED_SINCE_WINDOW`], at most one per core.
fn changed_since_windows(size: u64) -> u64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    (size / CHANGED_SINCE_WINDOW).clamp(1, cores)
}

/// Below this much image a second pass costs more (its own object map
/// reads, a thread) than the CPU it shares: 16384 objects, ~11 ms.
const CHANGED_SINCE_WINDOW: u64 = 64 << 30;

/// One step of a diff, in image order.
enum Item {
    /// Known already (an object gone at the end point): reported as it is.
    Report(Extent),
    /// A range to run an exact pass on.
    Exact(Range<u64>),
}

fn snap_cstring(img: &RbdImage, snap: &str) -> Result<CString> {
    let what = format!("snapshot {}/{}@{snap}", img.pool(), img.name());
    require_name("snapshot", snap, || what.clone())?;
    cstr(snap, &what)
}

pub(crate) fn fast_diff_usable(h: &RbdHandle) -> std::result::Result<bool, Errno> {
    Ok(h.features()? & FAST_DIFF != 0 && h.flags()? & MAP_INVALID == 0)
}

/// Object size x stripe count: the unit that maps to a fixed set of objects.
fn object_set_size(h: &RbdHandle) -> std::result::Result<u64, Errno> {
    let layout = h.layout()?;
    Ok(layout
        .object_size
        .max(1)
        .saturating_mul(layout.stripe_count.max(1)))
}

/// `n` rounded up to a multiple of `unit`.
fn round_up(n: u64, unit: u64) -> u64 {
    n.div_ceil(unit).max(1).saturating_mul(unit)
}

/// `range` cut at multiples of `window`, so object sets are never split.
fn windows(range: Range<u64>, window: u64) -> impl Iterator<Item = Range<u64>> {
    let mut pos = range.start;
    std::iter::from_fn(move || {
        if pos >= range.end {
            return None;
        }
        let next = (pos / window + 1).saturating_mul(window).min(range.end);
        let w = pos..next;
        pos = next;
        Some(w)
    })
}

struct Walker<'a> {
    img: &'a RbdImage,
    from: Option<&'a std::ffi::CStr>,
    from_name: Option<&'a str>,
    exact_window: u64,
    /// Exact passes in flight at once.
    threads: usize,
}

impl Walker<'_> {
    /// Runs the exact passes of `items` (each within one exact window)
    /// concurrently, a batch at a time, and visits everything in order.
    fn exact_pieces(
        &self,
        items: impl Iterator<Item = Item>,
        visit: &mut ExtentVisitor<'_>,
    ) -> Result<()> {
        let mut items = items.flat_map(|item| match item {
            Item::Exact(r) => windows(r, self.exact_window).map(Item::Exact).collect(),
            report => vec![report],
        });
        loop {
            let batch: Vec<Item> = items.by_ref().take(BATCH).collect();
            if batch.is_empty() {
                return Ok(());
            }
            let mut found = self.run_batch(&batch)?.into_iter();
            for item in batch {
                match item {
                    Item::Report(extent) => visit(extent)?,
                    Item::Exact(_) => {
                        for extent in found.next().unwrap_or_default() {
                            visit(extent)?;
                        }
                    }
                }
            }
        }
    }

    /// The extents of every exact item of `batch`, in order.
    fn run_batch(&self, batch: &[Item]) -> Result<Vec<Vec<Extent>>> {
        let ranges: Vec<Range<u64>> = batch
            .iter()
            .filter_map(|i| match i {
                Item::Exact(r) => Some(r.clone()),
                Item::Report(_) => None,
            })
            .collect();
        concurrently(&ranges, self.threads, &|r| self.pass(r, false))
    }

    /// One `rbd_diff_iterate2` pass over `range`, sorted and merged.
    fn pass(&self, range: Range<u64>, whole_object: bool) -> Result<Vec<Extent>> {
        let mut found = Vec::new();
        let mut record = |offset: u64, len: u64, exists: bool| {
            let kind = if exists {
                ExtentKind::Data
            } else {
                ExtentKind::Zero
            };
            found.push(Extent { offset, len, kind });
            true
        };
        self.img
            .handle()?
            .diff_iterate(
                self.from,
                range.start,
                range.end - range.start,
                whole_object,
                &mut record,
            )
            .map_err(|e| self.error(e))?;
        Ok(normalize(clip(found, &range)))
    }

    fn error(&self, e: Errno) -> ImageError {
        diff_error(self.img, self.from_name, e)
    }
}

/// A diff's failure: ENOENT names the snapshot it started from.
fn diff_error(img: &RbdImage, from_name: Option<&str>, e: Errno) -> ImageError {
    match (e.0, from_name) {
        (libc::ENOENT, Some(s)) => ImageError::NotFound {
            what: format!("snapshot {}/{}@{s}", img.pool(), img.name()),
        },
        _ => from_errno(e, format!("diff of {}", img.describe())),
    }
}

/// `f` of every range, in order, run on up to `threads` threads; the first
/// error stops the others from starting new ranges and is returned once
/// every running call has returned.
fn concurrently<T: Default + Send>(
    ranges: &[Range<u64>],
    threads: usize,
    f: &(dyn Fn(Range<u64>) -> Result<T> + Sync),
) -> Result<Vec<T>> {
    let results: Vec<Mutex<T>> = ranges.iter().map(|_| Mutex::default()).collect();
    let (next, failed) = (AtomicUsize::new(0), AtomicBool::new(false));
    let first_error: Mutex<Option<ImageError>> = Mutex::new(None);
    let work = || {
        while !failed.load(Ordering::Relaxed) {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(range) = ranges.get(i) else { break };
            match f(range.clone()) {
                Ok(found) => *lock(&results[i]) = found,
                Err(e) => {
                    failed.store(true, Ordering::Relaxed);
                    lock(&first_error).get_or_insert(e);
                }
            }
        }
    };
    match threads.min(ranges.len()) {
        0 => {}
        1 => work(),
        n => std::thread::scope(|s| {
            for _ in 0..n {
                s.spawn(work);
            }
        }),
    }
    if let Some(e) = lock(&first_error).take() {
        return Err(e);
    }
    Ok(results
        .into_iter()
        .map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner()))
        .collect())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Drops what lies outside `range` (whole-object passes may overhang).
fn clip(extents: Vec<Extent>, range: &Range<u64>) -> Vec<Extent> {
    extents
        .into_iter()
        .filter_map(|e| {
            let start = e.offset.max(range.start);
            let end = e.end().min(range.end);
            (start < end).then(|| Extent {
                offset: start,
                len: end - start,
                kind: e.kind,
            })
        })
        .collect()
}

/// Sorts, merges touching extents of one kind, and trims overlaps (the
/// earlier extent wins; Data over Zero where they start together, since
/// reporting data is always safe).
pub(crate) fn normalize(mut extents: Vec<Extent>) -> Vec<Extent> {
    extents.sort_by_key(|e| (e.offset, e.kind == ExtentKind::Zero));
    let mut out: Vec<Extent> = Vec::with_capacity(extents.len());
    for mut e in extents {
        if let Some(last) = out.last_mut() {
            if e.offset <= last.end() && e.kind == last.kind {
                let end = last.end().max(e.end());
                last.len = end - last.offset;
                continue;
            }
            if e.offset < last.end() {
                if e.end() <= last.end() {
                    continue;
                }
                e.len = e.end() - last.end();
                e.offset = last.end();
            }
        }
        if e.len > 0 {
            out.push(e);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_passes_are_four_per_slot_within_bounds() {
        assert_eq!(exact_passes_in_flight(0), 1);
        assert_eq!(exact_passes_in_flight(16), 64);
        assert_eq!(exact_passes_in_flight(64), 256);
        assert_eq!(exact_passes_in_flight(usize::MAX), 256);
    }

    #[test]
    fn normalize_sorts_merges_and_trims() {
        let got = normalize(vec![
            Extent::data(100, 10),
            Extent::data(0, 10),
            Extent::data(10, 5),
            Extent::zero(50, 10),
            Extent::data(55, 10),
            Extent::data(104, 2),
        ]);
        assert_eq!(
            got,
            vec![
                Extent::data(0, 15),
                Extent::zero(50, 10),
                Extent::data(60, 5),
                Extent::data(100, 10),
            ]
        );
    }

    #[test]
    fn data_wins_over_zero_at_the_same_offset() {
        let got = normalize(vec![Extent::zero(0, 10), Extent::data(0, 4)]);
        assert_eq!(got, vec![Extent::data(0, 4), Extent::zero(4, 6)]);
    }

    #[test]
    fn windows_are_aligned_and_cover_the_range() {
        let w: Vec<_> = windows(5..25, 10).collect();
        assert_eq!(w, vec![5..10, 10..20, 20..25]);
        assert_eq!(windows(7..7, 10).count(), 0);
        assert_eq!(round_up(1 << 30, 3 << 20), 342 * (3 << 20));
    }

    #[test]
    fn concurrent_passes_keep_order_and_use_several_threads() {
        let ranges: Vec<Range<u64>> = (0..64u64).map(|i| i * 10..i * 10 + 10).collect();
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let got = concurrently(&ranges, 8, &|r| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(2));
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(vec![Extent::data(r.start, 1)])
        })
        .unwrap();
        let starts: Vec<u64> = got.iter().map(|v| v[0].offset).collect();
        assert_eq!(starts, (0..64u64).map(|i| i * 10).collect::<Vec<_>>());
        assert!(peak.load(Ordering::SeqCst) > 1, "passes ran one at a time");
        assert!(peak.load(Ordering::SeqCst) <= 8, "more than 8 in flight");
    }

    #[test]
    fn a_failed_pass_among_many_fails_the_diff_and_stops_the_rest() {
        let ranges: Vec<Range<u64>> = (0..1000u64).map(|i| i..i + 1).collect();
        let calls = AtomicUsize::new(0);
        let err = concurrently(&ranges, 8, &|r| -> Result<Vec<Extent>> {
            calls.fetch_add(1, Ordering::SeqCst);
            if r.start == 5 {
                return Err(ImageError::Backend {
                    what: "piece 5".into(),
                    msg: "injected".into(),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
            Ok(Vec::new())
        })
        .unwrap_err();
        assert!(err.to_string().contains("injected"), "{err}");
        let calls = calls.load(Ordering::SeqCst);
        assert!(calls < 100, "{calls} passes ran after the failure");
    }

    #[test]
    fn clip_drops_overhang() {
        let got = clip(vec![Extent::data(0, 100), Extent::zero(200, 5)], &(50..120));
        assert_eq!(got, vec![Extent::data(50, 50)]);
    }
}
