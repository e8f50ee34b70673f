//! Changed extents between two trees: walk both, skipping equal subtrees by
//! id, so the cost is proportional to what changed, not to the image size.

use super::error::Result as StoreResult;
use super::id::ChunkId;
use super::tree::{self, Page, PageStore, FANOUT};
use crate::image::{Extent, ExtentKind, ExtentVisitor, ImageError};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Range;

/// One end of a diff: a tree root and its number of levels.
#[derive(Debug, Clone, Copy)]
pub struct TreeRef {
    pub root: ChunkId,
    pub levels: u32,
}

/// Pages of the store plus virtual pages made by lifting the shorter tree
/// (never written to disk).
struct Overlay<'a> {
    base: &'a dyn PageStore,
    key: [u8; 32],
    extra: RefCell<HashMap<ChunkId, Page>>,
}

impl PageStore for Overlay<'_> {
    fn load(&self, id: &ChunkId) -> StoreResult<Page> {
        if let Some(page) = self.extra.borrow().get(id) {
            return Ok(page.clone());
        }
        self.base.load(id)
    }

    fn store(&self, page: &[ChunkId]) -> StoreResult<ChunkId> {
        if page.iter().all(ChunkId::is_null) {
            return Ok(ChunkId::NULL);
        }
        let id = ChunkId::of(&self.key, &tree::page_to_bytes(page));
        self.extra.borrow_mut().insert(id, page.into());
        Ok(id)
    }
}

/// Errors of the diff: the store's, or the visitor's (passed through).
pub enum DiffError {
    Store(super::error::StoreError),
    Visit(ImageError),
}

impl From<super::error::StoreError> for DiffError {
    fn from(e: super::error::StoreError) -> Self {
        DiffError::Store(e)
    }
}

/// Merges adjacent extents of one kind and clips them to the range.
struct Emitter<'v, 'a> {
    chunk_size: u64,
    range: Range<u64>,
    pending: Option<Extent>,
    visit: &'v mut ExtentVisitor<'a>,
}

impl Emitter<'_, '_> {
    fn emit(&mut self, chunk: u64, kind: ExtentKind) -> Result<(), DiffError> {
        let start = (chunk * self.chunk_size).max(self.range.start);
        let end = ((chunk + 1) * self.chunk_size).min(self.range.end);
        if start >= end {
            return Ok(());
        }
        if let Some(p) = self.pending.as_mut() {
            if p.end() == start && p.kind == kind {
                p.len += end - start;
                return Ok(());
            }
        }
        self.finish()?;
        self.pending = Some(Extent {
            offset: start,
            len: end - start,
            kind,
        });
        Ok(())
    }

    fn finish(&mut self) -> Result<(), DiffError> {
        match self.pending.take() {
            Some(e) => (self.visit)(e).map_err(DiffError::Visit),
            None => Ok(()),
        }
    }
}

struct Walker<'v, 'a, 'p> {
    ps: &'p Overlay<'p>,
    chunks: Range<u64>,
    out: Emitter<'v, 'a>,
}

impl Walker<'_, '_, '_> {
    fn node(&mut self, a: ChunkId, b: ChunkId, level: u32, first: u64) -> Result<(), DiffError> {
        let span = tree::entry_span(level);
        let end = first + span * FANOUT as u64;
        if a == b || end <= self.chunks.start || first >= self.chunks.end {
            return Ok(());
        }
        let pa = self.load(&a)?;
        let pb = self.load(&b)?;
        let lo = self.chunks.start.saturating_sub(first) / span;
        let hi = (self.chunks.end - first).div_ceil(span).min(FANOUT as u64);
        for slot in lo as usize..hi as usize {
            let ca = pa.as_ref().map_or(ChunkId::NULL, |p| p[slot]);
            let cb = pb.as_ref().map_or(ChunkId::NULL, |p| p[slot]);
            let child = first + slot as u64 * span;
            if ca == cb {
                continue;
            }
            if level > 0 {
                self.node(ca, cb, level - 1, child)?;
            } else {
                let kind = if cb.is_null() {
                    ExtentKind::Zero
                } else {
                    ExtentKind::Data
                };
                self.out.emit(child, kind)?;
            }
        }
        Ok(())
    }

    fn load(&self, id: &ChunkId) -> Result<Option<Page>, DiffError> {
        if id.is_null() {
            return Ok(None);
        }
        Ok(Some(self.ps.load(id)?))
    }
}

/// Reports the extents of `range` (bytes, already clipped to the size of
/// `to`) that differ between `from` and `to`.
pub fn diff(
    ps: &dyn PageStore,
    key: [u8; 32],
    chunk_size: u64,
    from: TreeRef,
    to: TreeRef,
    range: Range<u64>,
    visit: &mut ExtentVisitor<'_>,
) -> Result<(), DiffError> {
    if range.start >= range.end {
        return Ok(());
    }
    let overlay = Overlay {
        base: ps,
        key,
        extra: RefCell::new(HashMap::new()),
    };
    let from_root = tree::reshape(&overlay, from.root, from.levels, to.levels)?;
    let chunks = range.start / chunk_size..range.end.div_ceil(chunk_size);
    let mut walker = Walker {
        ps: &overlay,
        chunks,
        out: Emitter {
            chunk_size,
            range,
            pending: None,
            visit,
        },
    };
    walker.node(from_root, to.root, to.levels - 1, 0)?;
    walker.out.finish()
}
