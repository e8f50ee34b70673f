//! A copy-on-write view: a read-only `base` (a backup) under a writable
//! `top` of the same size (an overlay file, a new RBD image, a live
//! restore's target). A [`BlockMap`] says which blocks live in the top:
//! reads of the others come from the base; the first write to a block
//! copies the block from the base into the top (when the write does not
//! cover it whole) and marks it. The base is never written.
//!
//! Crash safety: the map is persisted through a [`MapStore`] on `flush`
//! -- the bits are taken first, then the top is flushed, then the bits are
//! saved -- so a persisted bit always describes data that is durable in
//! the top. A block written but not yet persisted reads from the base
//! again after a crash, as unflushed writes may be lost on any disk.

use super::{check_range, Extent, ExtentVisitor, Image, ImageError, Result, Snapshots};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Locks that serialise copy-ups of one block (`block % STRIPES`).
const STRIPES: usize = 64;

/// One bit per block: the block lives in the top.
pub struct BlockMap {
    size: u64,
    block: u64,
    words: Vec<AtomicU64>,
}

impl BlockMap {
    /// An empty map of an image of `size` bytes in blocks of `block` bytes.
    pub fn new(size: u64, block: u64) -> BlockMap {
        assert!(block > 0, "a block map needs a block size");
        let blocks = size.div_ceil(block);
        BlockMap {
            size,
            block,
            words: (0..blocks.div_ceil(64))
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }

    /// A map saved by [`Self::encode`]; `None` when the bytes do not fit
    /// an image of this size and block size.
    pub fn decode(size: u64, block: u64, bytes: &[u8]) -> Option<BlockMap> {
        let map = BlockMap::new(size, block);
        if block == 0 || bytes.len() != map.words.len() * 8 {
            return None;
        }
        for (word, chunk) in map.words.iter().zip(bytes.chunks_exact(8)) {
            let mut a = [0u8; 8];
            a.copy_from_slice(chunk);
            word.store(u64::from_le_bytes(a), Ordering::Relaxed);
        }
        let extra = map.words.len() as u64 * 64 - map.blocks();
        if extra > 0 {
            let last = map.words.last()?.load(Ordering::Relaxed);
            if last >> (64 - extra) != 0 {
                return None;
            }
        }
        Some(map)
    }

    pub fn encode(&self) -> Vec<u8> {
        self.words
            .iter()
            .flat_map(|w| w.load(Ordering::Acquire).to_le_bytes())
            .collect()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn block_size(&self) -> u64 {
        self.block
    }

    pub fn blocks(&self) -> u64 {
        self.size.div_ceil(self.block)
    }

    /// The byte range of block `i`.
    pub fn range(&self, i: u64) -> Range<u64> {
        let start = i * self.block;
        start..(start + self.block).min(self.size)
    }

    pub fn is_set(&self, i: u64) -> bool {
        let bit = 1u64 << (i % 64);
        self.words[(i / 64) as usize].load(Ordering::Acquire) & bit != 0
    }

    /// Marks block `i`; true when it was not marked before.
    pub fn set(&self, i: u64) -> bool {
        let bit = 1u64 << (i % 64);
        self.words[(i / 64) as usize].fetch_or(bit, Ordering::AcqRel) & bit == 0
    }

    pub fn count(&self) -> u64 {
        self.words
            .iter()
            .map(|w| u64::from(w.load(Ordering::Relaxed).count_ones()))
            .sum()
    }

    pub fn is_complete(&self) -> bool {
        self.count() == self.blocks()
    }
}

/// Where a [`CowImage`] persists its map.
pub trait MapStore: Send + Sync {
    /// Saves the encoded map atomically (all of it or the previous one).
    fn save(&self, map: &[u8]) -> Result<()>;
}

/// A map kept in a file beside an overlay file: written to a temp file,
/// synced and renamed.
pub struct FileMapStore {
    path: PathBuf,
}

impl FileMapStore {
    pub fn new(path: impl Into<PathBuf>) -> FileMapStore {
        FileMapStore { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The saved map, or `None` when there is no file.
    pub fn load(&self) -> Result<Option<Vec<u8>>> {
        match std::fs::read(&self.path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ImageError::from_io(self.path.display().to_string(), e)),
        }
    }
}

impl MapStore for FileMapStore {
    fn save(&self, map: &[u8]) -> Result<()> {
        let what = || self.path.display().to_string();
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let mut tmp =
            tempfile::NamedTempFile::new_in(dir).map_err(|e| ImageError::from_io(what(), e))?;
        std::io::Write::write_all(&mut tmp, map).map_err(|e| ImageError::from_io(what(), e))?;
        tmp.as_file()
            .sync_all()
            .map_err(|e| ImageError::from_io(what(), e))?;
        tmp.persist(&self.path)
            .map_err(|e| ImageError::from_io(what(), e.error))?;
        Ok(())
    }
}

/// The copy-on-write view (see the module docs).
pub struct CowImage {
    base: Arc<dyn Image>,
    top: Arc<dyn Image>,
    map: BlockMap,
    /// The top read as zeros where no bit is set when this view began
    /// (a new image): copy-ups of all-zero blocks then write nothing.
    top_starts_zero: bool,
    stripes: Vec<Mutex<()>>,
    store: Option<Box<dyn MapStore>>,
    dirty: AtomicBool,
    /// One save at a time, so an older map never overwrites a newer one.
    saving: Mutex<()>,
}

impl CowImage {
    /// `map` must describe `base`'s size; `top` must be at least as large.
    pub fn new(
        base: Arc<dyn Image>,
        top: Arc<dyn Image>,
        map: BlockMap,
        top_starts_zero: bool,
        store: Option<Box<dyn MapStore>>,
    ) -> Result<CowImage> {
        let size = base.size()?;
        let top_size = top.size()?;
        if map.size() != size || top_size < size {
            return Err(ImageError::Invalid {
                what: top.describe(),
                why: format!(
                    "a copy-on-write layer of {top_size} bytes (map of {}) cannot hold {} ({size} bytes)",
                    map.size(),
                    base.describe()
                ),
            });
        }
        Ok(CowImage {
            base,
            top,
            map,
            top_starts_zero,
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            store,
            dirty: AtomicBool::new(false),
            saving: Mutex::new(()),
        })
    }

    pub fn map(&self) -> &BlockMap {
        &self.map
    }

    pub fn base(&self) -> &Arc<dyn Image> {
        &self.base
    }

    pub fn top(&self) -> &Arc<dyn Image> {
        &self.top
    }

    /// Copies block `i` into the top unless it is there; `has_data` false
    /// says the base holds no data there (a hole), which then costs no
    /// read. Returns the bytes copied.
    pub fn fill(&self, i: u64, has_data: bool) -> Result<u64> {
        if self.map.is_set(i) {
            return Ok(0);
        }
        let _stripe = self.lock(i);
        if self.map.is_set(i) {
            return Ok(0);
        }
        let range = self.map.range(i);
        let len = range.end - range.start;
        if has_data {
            let mut buf = vec![0u8; len as usize];
            self.base.read_at(range.start, &mut buf)?;
            self.put_block(range.start, &buf)?;
        } else if !self.top_starts_zero {
            self.top.write_zeroes(range.start, len)?;
        }
        self.mark(i);
        Ok(if has_data { len } else { 0 })
    }

    /// Saves the map: the bits set now, once the top has made their data
    /// durable.
    pub fn save_map(&self) -> Result<()> {
        let _one = self.saving.lock().unwrap_or_else(|p| p.into_inner());
        let dirty = self.dirty.swap(false, Ordering::AcqRel);
        let bits = self.map.encode();
        let flushed = self.top.flush();
        let saved = match (&self.store, dirty) {
            (Some(store), true) => flushed.and_then(|()| store.save(&bits)),
            _ => flushed,
        };
        if saved.is_err() && dirty {
            self.dirty.store(true, Ordering::Release);
        }
        saved
    }

    fn mark(&self, i: u64) {
        if self.map.set(i) {
            self.dirty.store(true, Ordering::Release);
        }
    }

    fn lock(&self, i: u64) -> std::sync::MutexGuard<'_, ()> {
        self.stripes[(i % STRIPES as u64) as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Writes a whole block into the top, skipping zeros the top already
    /// reads.
    fn put_block(&self, offset: u64, data: &[u8]) -> Result<()> {
        if self.top_starts_zero && data.iter().all(|&b| b == 0) {
            return Ok(());
        }
        self.top.write_at(offset, data)
    }

    /// Applies `op` to the part `range` of block `i` (unmarked): copies
    /// the rest of the block up first unless `range` covers it.
    fn copy_up(&self, i: u64, range: Range<u64>, op: &dyn Fn() -> Result<()>) -> Result<()> {
        let _stripe = self.lock(i);
        if !self.map.is_set(i) {
            let block = self.map.range(i);
            if block != range {
                let mut buf = vec![0u8; (block.end - block.start) as usize];
                self.base.read_at(block.start, &mut buf)?;
                self.put_block(block.start, &buf)?;
            }
        }
        op()?;
        self.mark(i);
        Ok(())
    }

    /// Runs `op(range, in_top)` over maximal runs of blocks of one state
    /// within `offset..offset+len`.
    fn runs(
        &self,
        offset: u64,
        len: u64,
        op: &mut dyn FnMut(Range<u64>, bool) -> Result<()>,
    ) -> Result<()> {
        let end = offset + len;
        let mut at = offset;
        while at < end {
            let state = self.map.is_set(at / self.map.block);
            let mut stop = at;
            while stop < end && self.map.is_set(stop / self.map.block) == state {
                stop = ((stop / self.map.block) + 1) * self.map.block;
            }
            let stop = stop.min(end);
            op(at..stop, state)?;
            at = stop;
        }
        Ok(())
    }

    /// Runs `op(i, range)` for each block `i` touched by `offset..offset+len`.
    fn per_block(
        &self,
        offset: u64,
        len: u64,
        op: &mut dyn FnMut(u64, Range<u64>) -> Result<()>,
    ) -> Result<()> {
        let end = offset + len;
        let mut at = offset;
        while at < end {
            let i = at / self.map.block;
            let stop = self.map.range(i).end.min(end);
            op(i, at..stop)?;
            at = stop;
        }
        Ok(())
    }
}

impl Image for CowImage {
    fn describe(&self) -> String {
        format!(
            "{} (copy-on-write into {})",
            self.base.describe(),
            self.top.describe()
        )
    }

    fn size(&self) -> Result<u64> {
        Ok(self.map.size())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        check_range(
            &|| self.describe(),
            offset,
            buf.len() as u64,
            self.map.size(),
        )?;
        self.runs(offset, buf.len() as u64, &mut |r, in_top| {
            let part = &mut buf[(r.start - offset) as usize..(r.end - offset) as usize];
            if in_top {
                self.top.read_at(r.start, part)
            } else {
                self.base.read_at(r.start, part)
            }
        })
    }

    fn changed_extents(
        &self,
        from_snap: Option<&str>,
        range: Range<u64>,
        visit: &mut ExtentVisitor<'_>,
    ) -> Result<()> {
        if from_snap.is_some() {
            return Err(ImageError::Unsupported {
                what: self.describe(),
                op: "changed extents since a snapshot",
            });
        }
        let end = range.end.min(self.map.size());
        if range.start >= end {
            return Ok(());
        }
        self.runs(range.start, end - range.start, &mut |r, in_top| {
            let layer = if in_top { &self.top } else { &self.base };
            layer.changed_extents(None, r.clone(), &mut |e: Extent| {
                let start = e.offset.max(r.start);
                let stop = e.end().min(r.end);
                if start < stop {
                    visit(Extent {
                        offset: start,
                        len: stop - start,
                        kind: e.kind,
                    })?;
                }
                Ok(())
            })
        })
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        check_range(
            &|| self.describe(),
            offset,
            data.len() as u64,
            self.map.size(),
        )?;
        self.per_block(offset, data.len() as u64, &mut |i, r| {
            let part = &data[(r.start - offset) as usize..(r.end - offset) as usize];
            let write = || self.top.write_at(r.start, part);
            if self.map.is_set(i) {
                write()
            } else {
                self.copy_up(i, r.clone(), &write)
            }
        })
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> Result<()> {
        check_range(&|| self.describe(), offset, len, self.map.size())?;
        self.per_block(offset, len, &mut |i, r| {
            let zero = || self.top.write_zeroes(r.start, r.end - r.start);
            if self.map.is_set(i) {
                zero()
            } else {
                self.copy_up(i, r.clone(), &zero)
            }
        })
    }

    fn flush(&self) -> Result<()> {
        self.save_map()
    }

    fn resize(&self, _size: u64) -> Result<()> {
        Err(ImageError::Unsupported {
            what: self.describe(),
            op: "resize",
        })
    }

    fn snapshots(&self) -> Option<&dyn Snapshots> {
        None
    }

    fn io_granularity(&self) -> u64 {
        self.top.io_granularity()
    }

    fn queue_depth(&self) -> usize {
        self.base.queue_depth().max(self.top.queue_depth())
    }
}

#[cfg(test)]
mod tests;
