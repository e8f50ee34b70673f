//! Image handles of the local store: HEAD (read-write or read-only) or a
//! snapshot (read-only).
//!
//! A read-write HEAD keeps its unpublished state in memory: the tree root
//! it started from (or last materialised) plus dirty leaf pages. `flush`
//! writes the changed pages, seals the open pack and only then publishes
//! `head.json`; nothing else publishes, so dropping a handle without flush
//! leaves the previous HEAD in place.

use super::core::Store;
use super::diff::{self, DiffError, TreeRef};
use super::error::StoreError;
use super::id::ChunkId;
use super::meta::{self, SnapRecord, Version};
use super::pack::BlobKind;
use super::tree::{self, FANOUT};
use crate::checksum::CHECKSUM_BLOCK;
use crate::image::{
    check_range, Extent, ExtentVisitor, Image, ImageError, ImageMetadata, Result, SnapshotInfo,
    Snapshots,
};
use crate::zero::is_zero;
use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Dirty leaves kept in memory before they are written out (32 KiB each):
/// bounds memory of a long backup between flushes to 64 MiB.
const DIRTY_LEAF_LIMIT: usize = 2048;

struct Head {
    size: u64,
    root: ChunkId,
    dirty: BTreeMap<u64, Vec<ChunkId>>,
    published: Version,
}

pub struct StoreImage {
    store: Arc<Store>,
    name: String,
    snap: Option<String>,
    writable: bool,
    /// A repair target: its data is stored, its version never published.
    scratch: bool,
    head: Mutex<Head>,
    /// Serialises read-modify-write of partial chunks.
    rmw: Mutex<()>,
    /// Held for the handle's lifetime (writers only): store shared lock and
    /// image exclusive lock.
    _locks: Vec<File>,
}

/// What a write puts into a chunk range.
#[derive(Clone, Copy)]
enum Src<'a> {
    Data(&'a [u8]),
    Zeros(usize),
}

impl Src<'_> {
    fn len(&self) -> usize {
        match self {
            Src::Data(d) => d.len(),
            Src::Zeros(n) => *n,
        }
    }
}

impl StoreImage {
    pub fn new(
        store: Arc<Store>,
        name: &str,
        snap: Option<&str>,
        version: Version,
        locks: Vec<File>,
    ) -> Self {
        StoreImage {
            store,
            name: name.to_string(),
            snap: snap.map(str::to_string),
            writable: !locks.is_empty(),
            scratch: false,
            head: Mutex::new(Head {
                size: version.size,
                root: version.root,
                dirty: BTreeMap::new(),
                published: version,
            }),
            rmw: Mutex::new(()),
            _locks: locks,
        }
    }

    /// A writable, empty version of `size` bytes that is never published:
    /// writing content into it stores whatever chunks and index pages the
    /// store lacks (or holds only damaged). `store_lock` keeps gc out.
    pub fn scratch(store: Arc<Store>, size: u64, store_lock: File) -> Self {
        let version = Version {
            size,
            root: ChunkId::NULL,
        };
        let mut img = StoreImage::new(store, "(repair)", None, version, vec![store_lock]);
        img.scratch = true;
        img
    }

    fn what(&self) -> String {
        match &self.snap {
            Some(s) => format!("{} {}@{}", self.store.describe(), self.name, s),
            None => format!("{} {}", self.store.describe(), self.name),
        }
    }

    fn err(&self, e: StoreError) -> ImageError {
        e.into_image(self.what())
    }

    fn lock(&self) -> MutexGuard<'_, Head> {
        self.head.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cs(&self) -> u64 {
        self.store.chunk_size
    }

    fn check_writable(&self) -> Result<()> {
        if self.writable {
            return Ok(());
        }
        Err(ImageError::ReadOnly { what: self.what() })
    }

    /// The id of chunk `idx` at this handle's point.
    fn entry(&self, idx: u64) -> Result<ChunkId> {
        let (root, levels) = {
            let head = self.lock();
            if let Some(leaf) = head.dirty.get(&(idx / FANOUT as u64)) {
                return Ok(leaf[(idx % FANOUT as u64) as usize]);
            }
            (head.root, self.store.levels_for_size(head.size))
        };
        tree::lookup(&*self.store, root, levels, idx).map_err(|e| self.err(e))
    }

    /// Points chunk `idx` at `id`; a no-op when it already does.
    fn set_entry(&self, idx: u64, id: ChunkId) -> Result<()> {
        let (leaf_no, slot) = (idx / FANOUT as u64, (idx % FANOUT as u64) as usize);
        let mut head = self.lock();
        if let Some(leaf) = head.dirty.get_mut(&leaf_no) {
            leaf[slot] = id;
            return Ok(());
        }
        let levels = self.store.levels_for_size(head.size);
        let leaf =
            tree::load_leaf(&*self.store, head.root, levels, leaf_no).map_err(|e| self.err(e))?;
        if leaf[slot] == id {
            return Ok(());
        }
        let mut leaf = leaf.to_vec();
        leaf[slot] = id;
        head.dirty.insert(leaf_no, leaf);
        if head.dirty.len() > DIRTY_LEAF_LIMIT {
            self.materialize(&mut head)?;
        }
        Ok(())
    }

    /// Makes every chunk of leaf `leaf_no` a hole.
    fn null_leaf(&self, leaf_no: u64) -> Result<()> {
        let mut head = self.lock();
        head.dirty.insert(leaf_no, tree::empty_page());
        if head.dirty.len() > DIRTY_LEAF_LIMIT {
            self.materialize(&mut head)?;
        }
        Ok(())
    }

    /// Writes the dirty leaves and their paths as pages (into the open
    /// pack, unpublished) and makes the result the in-memory root.
    fn materialize(&self, head: &mut Head) -> Result<()> {
        if head.dirty.is_empty() {
            return Ok(());
        }
        let levels = self.store.levels_for_size(head.size);
        head.root =
            tree::rebuild(&*self.store, head.root, levels, &head.dirty).map_err(|e| self.err(e))?;
        head.dirty.clear();
        Ok(())
    }

    /// Materialises, seals the open pack (fsync) and atomically publishes
    /// the HEAD record if it changed.
    fn publish(&self, head: &mut Head) -> Result<()> {
        self.materialize(head)?;
        self.store.blobs.seal().map_err(|e| self.err(e))?;
        if self.scratch {
            return Ok(());
        }
        let v = Version {
            size: head.size,
            root: head.root,
        };
        if v != head.published {
            self.store
                .records
                .write_head(&self.name, &v)
                .map_err(|e| self.err(e))?;
            head.published = v;
        }
        Ok(())
    }

    /// Stores one whole chunk (`raw.len() == chunk size`) at `idx`.
    fn store_chunk(&self, idx: u64, raw: &[u8]) -> Result<()> {
        self.store_chunk_digested(idx, raw, None)
    }

    /// Stores one whole chunk whose plain digest may already be known.
    ///
    /// Content that this version already has at `idx` is left alone without
    /// reading the stored copy back (an incremental rewrites mostly such
    /// chunks); a copy found damaged meanwhile is out of the map, so it is
    /// stored again. Content reused from elsewhere is checked by `put`.
    fn store_chunk_digested(&self, idx: u64, raw: &[u8], digest: Option<&[u8; 32]>) -> Result<()> {
        // All-zero chunks are stored as holes.
        let id = if is_zero(raw) {
            ChunkId::NULL
        } else {
            let key = self.store.blobs.key();
            let id = digest.map_or_else(|| ChunkId::of(key, raw), |d| ChunkId::from_digest(key, d));
            if self.entry(idx)? == id && self.store.blobs.contains(&id) {
                return Ok(());
            }
            self.store
                .blobs
                .put(id, BlobKind::Chunk, raw)
                .map_err(|e| self.err(e))?;
            id
        };
        self.set_entry(idx, id)
    }

    /// Reads chunk `idx` whole into `out` (zeros for a hole).
    fn read_chunk(&self, idx: u64, out: &mut [u8]) -> Result<()> {
        let id = self.entry(idx)?;
        if id.is_null() {
            out.fill(0);
            return Ok(());
        }
        self.store.blobs.get(&id, out).map_err(|e| self.err(e))
    }

    /// Applies `src` at byte `within` of chunk `idx` of an image of `size`.
    fn write_piece(&self, idx: u64, within: usize, src: Src<'_>, size: u64) -> Result<()> {
        let cs = self.cs() as usize;
        let in_image = (size - idx * self.cs()).min(self.cs()) as usize;
        let whole = within == 0 && src.len() == in_image;
        match src {
            Src::Zeros(_) if whole => self.set_entry(idx, ChunkId::NULL),
            Src::Data(d) if whole && d.len() == cs => self.store_chunk(idx, d),
            _ => {
                let _guard = self.rmw.lock().unwrap_or_else(|p| p.into_inner());
                let mut buf = vec![0u8; cs];
                if !whole {
                    self.read_chunk(idx, &mut buf)?;
                }
                let dst = &mut buf[within..within + src.len()];
                match src {
                    Src::Data(d) => dst.copy_from_slice(d),
                    Src::Zeros(_) => dst.fill(0),
                }
                self.store_chunk(idx, &buf)
            }
        }
    }

    /// Splits `offset..offset+len` into per-chunk pieces and writes them.
    fn write_range(&self, offset: u64, src: Src<'_>) -> Result<()> {
        self.check_writable()?;
        let size = self.lock().size;
        check_range(&|| self.what(), offset, src.len() as u64, size)?;
        let cs = self.cs();
        let mut done = 0usize;
        while done < src.len() {
            let pos = offset + done as u64;
            let (idx, within) = (pos / cs, (pos % cs) as usize);
            let leaf_bytes = FANOUT * cs as usize;
            if matches!(src, Src::Zeros(_))
                && pos & (leaf_bytes as u64 - 1) == 0
                && src.len() - done >= leaf_bytes
            {
                // Zeroing a whole leaf: no per-chunk work.
                self.null_leaf(idx / FANOUT as u64)?;
                done += leaf_bytes;
                continue;
            }
            let n = (cs as usize - within).min(src.len() - done);
            let piece = match src {
                Src::Data(d) => Src::Data(&d[done..done + n]),
                Src::Zeros(_) => Src::Zeros(n),
            };
            self.write_piece(idx, within, piece, size)?;
            done += n;
        }
        Ok(())
    }

    fn snap_info(rec: &SnapRecord) -> SnapshotInfo {
        SnapshotInfo {
            name: rec.name.clone(),
            size: rec.size,
            timestamp: UNIX_EPOCH + Duration::from_nanos(rec.created_ns),
        }
    }

    /// The version a new snapshot records: this writer's state after a
    /// flush, or the published HEAD when this handle is not the writer.
    fn version_to_snapshot(&self) -> Result<Version> {
        if self.writable && self.snap.is_none() {
            let mut head = self.lock();
            self.publish(&mut head)?;
            return Ok(head.published);
        }
        self.store
            .records
            .read_head(&self.name)
            .map_err(|e| self.err(e))
    }

    /// Keeps gc out while a metadata record is written (gc removes
    /// dot-named temp files). Writers already hold the lock.
    fn metadata_lock(&self) -> Result<Option<File>> {
        if self.writable {
            return Ok(None);
        }
        self.store.require_writable().map_err(|e| self.err(e))?;
        let lock = super::lock::store_shared(&self.store.root).map_err(|e| self.err(e))?;
        Ok(Some(lock))
    }

    fn tree_ref(&self, size: u64, root: ChunkId) -> TreeRef {
        TreeRef {
            root,
            levels: self.store.levels_for_size(size),
        }
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

impl Image for StoreImage {
    fn describe(&self) -> String {
        self.what()
    }

    fn size(&self) -> Result<u64> {
        Ok(self.lock().size)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let size = self.lock().size;
        check_range(&|| self.what(), offset, buf.len() as u64, size)?;
        let cs = self.cs();
        let mut done = 0usize;
        let mut tmp = Vec::new();
        while done < buf.len() {
            let pos = offset + done as u64;
            let (idx, within) = (pos / cs, (pos % cs) as usize);
            let n = (cs as usize - within).min(buf.len() - done);
            if n == cs as usize {
                self.read_chunk(idx, &mut buf[done..done + n])?;
            } else {
                tmp.resize(cs as usize, 0);
                self.read_chunk(idx, &mut tmp)?;
                buf[done..done + n].copy_from_slice(&tmp[within..within + n]);
            }
            done += n;
        }
        Ok(())
    }

    fn changed_extents(
        &self,
        from_snap: Option<&str>,
        range: Range<u64>,
        visit: &mut ExtentVisitor<'_>,
    ) -> Result<()> {
        let (size, root) = {
            let mut head = self.lock();
            self.materialize(&mut head)?;
            (head.size, head.root)
        };
        let from = match from_snap {
            Some(s) => {
                let rec = self.store.records.read_snap(&self.name, s);
                let rec = rec.map_err(|e| self.err(e))?;
                self.tree_ref(rec.size, rec.root)
            }
            None => self.tree_ref(0, ChunkId::NULL),
        };
        let range = range.start..range.end.min(size);
        let key = *self.store.blobs.key();
        let to = self.tree_ref(size, root);
        match diff::diff(&*self.store, key, self.cs(), from, to, range, visit) {
            Ok(()) => Ok(()),
            Err(DiffError::Visit(e)) => Err(e),
            Err(DiffError::Store(e)) => Err(self.err(e)),
        }
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.write_range(offset, Src::Data(data))
    }

    /// Whole chunks take their ids from the caller's digests when chunks
    /// and checksum blocks are the same size; anything else is a plain write.
    fn write_digested(&self, offset: u64, data: &[u8], digests: &[[u8; 32]]) -> Result<()> {
        let cs = self.cs();
        let usable = cs == CHECKSUM_BLOCK
            && offset & (cs - 1) == 0 // chunk sizes are powers of two
            && digests.len() as u64 == (data.len() as u64).div_ceil(cs);
        if !usable {
            return self.write_at(offset, data);
        }
        self.check_writable()?;
        let size = self.size()?;
        crate::image::check_range(&|| self.what(), offset, data.len() as u64, size)?;
        for (i, (chunk, digest)) in data.chunks(cs as usize).zip(digests).enumerate() {
            let at = offset + i as u64 * cs;
            if chunk.len() as u64 == cs {
                self.store_chunk_digested(at / cs, chunk, Some(digest))?;
            } else {
                self.write_at(at, chunk)?;
            }
        }
        Ok(())
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> Result<()> {
        let len = usize::try_from(len).map_err(|_| ImageError::Invalid {
            what: self.what(),
            why: "length too large".into(),
        })?;
        self.write_range(offset, Src::Zeros(len))
    }

    fn flush(&self) -> Result<()> {
        if !self.writable {
            return Ok(());
        }
        let mut head = self.lock();
        self.publish(&mut head)
    }

    fn resize(&self, new_size: u64) -> Result<()> {
        self.check_writable()?;
        let cs = self.cs();
        let old_size = self.lock().size;
        let tail = new_size % cs;
        if new_size < old_size && tail > 0 {
            // Zero the tail of the new last chunk so that growing later
            // reads zeros there.
            let tail_end = (new_size / cs + 1) * cs;
            self.write_zeroes(new_size, tail_end.min(old_size) - new_size)?;
        }
        let mut head = self.lock();
        self.materialize(&mut head)?;
        let (old_levels, new_levels) = (
            self.store.levels_for_size(head.size),
            self.store.levels_for_size(new_size),
        );
        let ps = &*self.store;
        let mut root = head.root;
        if new_size < head.size {
            root = tree::truncate(ps, root, old_levels, new_size.div_ceil(cs))
                .map_err(|e| self.err(e))?;
        }
        head.root = tree::reshape(ps, root, old_levels, new_levels).map_err(|e| self.err(e))?;
        head.size = new_size;
        self.publish(&mut head)
    }

    fn snapshots(&self) -> Option<&dyn Snapshots> {
        Some(self)
    }

    fn metadata(&self) -> Option<&dyn ImageMetadata> {
        Some(self)
    }

    /// Whole aligned chunks avoid read-modify-write.
    fn io_granularity(&self) -> u64 {
        self.cs()
    }

    /// Chunks are content-addressed: a rewrite of held data stores nothing
    /// and checks the copy it reuses (which heals a bad one).
    fn dedups_writes(&self) -> bool {
        true
    }

    /// The chunks of this point that have no usable copy. Free unless the
    /// store knows damage; then every page of the version is read.
    fn known_damage(&self) -> Result<Vec<Extent>> {
        if !self.store.blobs.read_index().knows_damage() {
            return Ok(Vec::new());
        }
        // Another process may have stored what we miss since we looked.
        self.store.blobs.refresh().map_err(|e| self.err(e))?;
        let (size, root) = {
            let mut head = self.lock();
            self.materialize(&mut head)?;
            (head.size, head.root)
        };
        let levels = self.store.levels_for_size(size);
        let usable = |id: &ChunkId| self.store.blobs.contains(id);
        let bad = tree::chunks_where(&*self.store, root, levels, &|id| !usable(id))
            .map_err(|e| self.err(e))?;
        let cs = self.cs();
        let mut out: Vec<Extent> = Vec::new();
        for idx in bad {
            let (start, end) = (idx * cs, ((idx + 1) * cs).min(size));
            match out.last_mut() {
                Some(last) if last.end() == start => last.len += end - start,
                _ => out.push(Extent::data(start, end - start)),
            }
        }
        Ok(out)
    }
}

/// Metadata belongs to the image: a handle at a snapshot reads HEAD's.
impl ImageMetadata for StoreImage {
    fn get(&self, key: &str) -> Result<Option<String>> {
        let meta = self
            .store
            .records
            .read_image_meta(&self.name)
            .map_err(|e| self.err(e))?;
        Ok(meta.get(key).cloned())
    }

    fn set(&self, key: &str, value: &str) -> Result<()> {
        self.check_writable()?;
        // The writer's exclusive image lock keeps other processes out;
        // `rmw` keeps this handle's threads from losing each other's keys.
        let _rmw = self.rmw.lock().unwrap_or_else(|p| p.into_inner());
        let mut meta = self
            .store
            .records
            .read_image_meta(&self.name)
            .map_err(|e| self.err(e))?;
        meta.insert(key.to_string(), value.to_string());
        self.store
            .records
            .write_image_meta(&self.name, &meta)
            .map_err(|e| self.err(e))
    }
}

impl Snapshots for StoreImage {
    fn list(&self) -> Result<Vec<SnapshotInfo>> {
        let snaps = self
            .store
            .records
            .list_snaps(&self.name)
            .map_err(|e| self.err(e))?;
        Ok(snaps.iter().map(Self::snap_info).collect())
    }

    fn create(&self, name: &str) -> Result<()> {
        meta::check_snap_name(name).map_err(|e| self.err(e))?;
        let snaps = self
            .store
            .records
            .list_snaps(&self.name)
            .map_err(|e| self.err(e))?;
        if snaps.iter().any(|s| s.name == name) {
            return Err(ImageError::Exists {
                what: format!("{} {}@{}", self.store.describe(), self.name, name),
            });
        }
        let _gc = self.metadata_lock()?;
        let v = self.version_to_snapshot()?;
        let last = snaps.last().map_or(0, |s| s.created_ns);
        let rec = SnapRecord {
            name: name.to_string(),
            size: v.size,
            root: v.root,
            created_ns: now_ns().max(last + 1),
        };
        self.store
            .records
            .write_snap(&self.name, &rec)
            .map_err(|e| self.err(e))
    }

    fn remove(&self, name: &str) -> Result<()> {
        let _gc = self.metadata_lock()?;
        meta::remove_snap(&self.store.root, &self.name, name).map_err(|e| self.err(e))
    }

    fn open_snapshot(&self, name: &str) -> Result<Box<dyn Image>> {
        let rec = self
            .store
            .records
            .read_snap(&self.name, name)
            .map_err(|e| self.err(e))?;
        let v = Version {
            size: rec.size,
            root: rec.root,
        };
        let img = StoreImage::new(self.store.clone(), &self.name, Some(name), v, Vec::new());
        Ok(Box::new(img))
    }

    fn rollback(&self, name: &str) -> Result<()> {
        let rec = self
            .store
            .records
            .read_snap(&self.name, name)
            .map_err(|e| self.err(e))?;
        let v = Version {
            size: rec.size,
            root: rec.root,
        };
        if self.writable && self.snap.is_none() {
            let mut head = self.lock();
            head.dirty.clear();
            head.root = v.root;
            head.size = v.size;
            return self.publish(&mut head);
        }
        // Not the writer: take the writer's locks for the moment of the change.
        self.store.require_writable().map_err(|e| self.err(e))?;
        let root = &self.store.root;
        let _store = super::lock::store_shared(root).map_err(|e| self.err(e))?;
        let _image = super::lock::image_exclusive(root, &self.name).map_err(|e| self.err(e))?;
        self.store
            .records
            .write_head(&self.name, &v)
            .map_err(|e| self.err(e))
    }
}
