//! The blob store: pack files on disk plus the in-memory map
//! chunk id -> location, built at open from the packs' indexes.
//!
//! Locking: `index` (RwLock) guards the map and pack table; `writer`
//! (Mutex) guards the open pack. Hashing and compression happen before
//! either is taken; a blob is appended and then inserted into the map while
//! holding `writer`, so two threads never store the same id twice.

use super::codec;
use super::error::{Result, StoreError};
use super::id::ChunkId;
use super::pack::{self, BlobKind, Entry, PackWriter, PACK_EXT};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};

/// Packs are sealed once they reach this size.
pub const PACK_TARGET: u64 = 64 << 20;

/// Where a blob lives.
#[derive(Debug, Clone, Copy)]
pub struct Loc {
    pub pack: u32,
    pub offset: u64,
    pub len: u32,
    pub raw_len: u32,
    pub kind: BlobKind,
    pub compressed: bool,
}

/// One pack known to this process.
pub struct PackSlot {
    pub name: String,
    pub file: Arc<File>,
    /// Bytes of the pack file (of blobs only while it is being written).
    pub bytes: u64,
    pub sealed: bool,
}

#[derive(Default)]
pub struct Index {
    pub map: HashMap<ChunkId, Loc>,
    pub packs: Vec<Option<PackSlot>>,
    by_name: HashMap<String, u32>,
}

impl Index {
    fn add_pack(&mut self, slot: PackSlot) -> u32 {
        let num = self.packs.len() as u32;
        self.by_name.insert(slot.name.clone(), num);
        self.packs.push(Some(slot));
        num
    }

    fn add_entry(&mut self, pack: u32, e: &Entry) {
        let loc = Loc {
            pack,
            offset: e.offset,
            len: e.len,
            raw_len: e.raw_len,
            kind: e.kind,
            compressed: e.compressed,
        };
        self.map.entry(e.id).or_insert(loc);
    }

    /// Forgets pack `num` and every map entry pointing into it.
    pub fn drop_pack(&mut self, num: u32) {
        if let Some(Some(slot)) = self.packs.get_mut(num as usize).map(Option::take) {
            self.by_name.remove(&slot.name);
        }
        self.map.retain(|_, loc| loc.pack != num);
    }

    pub fn pack_name(&self, num: u32) -> String {
        match self.packs.get(num as usize) {
            Some(Some(slot)) => slot.name.clone(),
            _ => format!("#{num}"),
        }
    }
}

/// A blob as stored (compressed or raw).
struct Blob<'a> {
    id: ChunkId,
    kind: BlobKind,
    stored: &'a [u8],
    raw_len: u32,
    compressed: bool,
}

pub struct Blobs {
    dir: PathBuf,
    key: [u8; 32],
    level: i32,
    index: RwLock<Index>,
    writer: Mutex<Option<(u32, PackWriter)>>,
    /// Read-held by a thread sealing a full pack outside the writer lock;
    /// `seal` write-locks it to wait for those. Order: writer, inflight.
    inflight: RwLock<()>,
    /// Set when a background seal failed: flushes must fail from then on.
    failed_seal: Mutex<Option<String>>,
    /// Seal packs at this size ([`PACK_TARGET`]; tests lower it).
    pub pack_target: AtomicU64,
    /// Held by gc while it rewrites the map, so that a concurrent refresh
    /// does not renumber packs under it.
    maint: Mutex<()>,
}

thread_local! {
    static STORED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Blobs {
    /// Loads the indexes of every sealed pack in `dir`.
    pub fn open(dir: PathBuf, key: [u8; 32], level: i32) -> Result<Self> {
        let blobs = Blobs {
            dir,
            key,
            level,
            index: RwLock::new(Index::default()),
            writer: Mutex::new(None),
            maint: Mutex::new(()),
            pack_target: AtomicU64::new(PACK_TARGET),
            inflight: RwLock::new(()),
            failed_seal: Mutex::new(None),
        };
        blobs.refresh()?;
        Ok(blobs)
    }

    pub fn key(&self) -> &[u8; 32] {
        &self.key
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn read_index(&self) -> RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn write_index(&self) -> RwLockWriteGuard<'_, Index> {
        self.index.write().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_writer(&self) -> MutexGuard<'_, Option<(u32, PackWriter)>> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Brings the map up to date with the packs on disk: loads packs that
    /// appeared (written by another process) and, when packs disappeared
    /// (gc elsewhere), rebuilds the map from scratch so that no id points
    /// into a deleted pack and no surviving copy is missed. An open pack
    /// whose `.part` file was removed (by gc, while this process had no
    /// writer) is abandoned, so its blobs are stored again when needed.
    pub fn refresh(&self) -> Result<()> {
        let _maint = match self.maint.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            // This process's gc is rewriting the map; it is authoritative.
            Err(TryLockError::WouldBlock) => return Ok(()),
        };
        let mut writer = self.lock_writer();
        let _sealed = self.inflight.write().unwrap_or_else(|p| p.into_inner());
        if let Some((num, w)) = writer.as_ref() {
            if !w.part_exists() {
                self.write_index().drop_pack(*num);
                *writer = None;
            }
        }
        let names: HashSet<String> = list_packs(&self.dir)?.into_iter().collect();
        let rebuild = {
            let index = self.read_index();
            index
                .packs
                .iter()
                .flatten()
                .any(|slot| slot.sealed && !names.contains(&slot.name))
        };
        if rebuild {
            let mut fresh = Index::default();
            if let Some((num, w)) = writer.as_mut() {
                *num = fresh.add_pack(w.slot());
                w.entries().iter().for_each(|e| fresh.add_entry(*num, e));
            }
            *self.write_index() = fresh;
        }
        let known: HashSet<String> = self.read_index().by_name.keys().cloned().collect();
        for name in names.iter().filter(|n| !known.contains(*n)) {
            self.load_pack(name)?;
        }
        Ok(())
    }

    fn load_pack(&self, name: &str) -> Result<()> {
        let path = self.dir.join(format!("{name}.{PACK_EXT}"));
        let (file, entries, bytes) = match pack::read_index(&path) {
            Ok(found) => found,
            // Deleted by a concurrent gc between listing and opening.
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(())
            }
            Err(e) => return Err(e),
        };
        let mut index = self.write_index();
        let slot = PackSlot {
            name: name.to_string(),
            file: Arc::new(file),
            bytes,
            sealed: true,
        };
        let num = index.add_pack(slot);
        entries.iter().for_each(|e| index.add_entry(num, e));
        Ok(())
    }

    /// Excludes [`Blobs::refresh`] while gc rewrites the map.
    pub fn maintenance(&self) -> MutexGuard<'_, ()> {
        self.maint.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn contains(&self, id: &ChunkId) -> bool {
        self.read_index().map.contains_key(id)
    }

    /// Stores `raw` under `id` unless the store already has it. Compression
    /// happens before any lock is taken.
    pub fn put(&self, id: ChunkId, kind: BlobKind, raw: &[u8]) -> Result<()> {
        if self.contains(&id) {
            return Ok(());
        }
        let raw_len = raw.len() as u32;
        codec::encode(raw, self.level, |stored, compressed| {
            self.append(id, kind, stored, raw_len, compressed)
        })
        .map_err(|e| StoreError::io("zstd", e))?
    }

    /// Appends already-encoded bytes unless the id is already stored.
    fn append(
        &self,
        id: ChunkId,
        kind: BlobKind,
        stored: &[u8],
        raw_len: u32,
        compressed: bool,
    ) -> Result<()> {
        self.append_inner(
            Blob {
                id,
                kind,
                stored,
                raw_len,
                compressed,
            },
            false,
        )
    }

    /// Appends a copy of a stored blob and points the map at the copy (gc).
    pub fn relocate(
        &self,
        id: ChunkId,
        kind: BlobKind,
        stored: &[u8],
        raw_len: u32,
        compressed: bool,
    ) -> Result<()> {
        self.append_inner(
            Blob {
                id,
                kind,
                stored,
                raw_len,
                compressed,
            },
            true,
        )
    }

    fn append_inner(&self, b: Blob<'_>, relocate: bool) -> Result<()> {
        let mut writer = self.lock_writer();
        if !relocate && self.contains(&b.id) {
            return Ok(());
        }
        if writer.is_none() {
            *writer = Some(self.new_pack()?);
        }
        let Some((num, w)) = writer.as_mut() else {
            return Ok(());
        };
        let entry = w.append(b.id, b.kind, b.stored, b.raw_len, b.compressed)?;
        let (num, full) = (*num, w.len() >= self.pack_target.load(Ordering::Relaxed));
        {
            let mut index = self.write_index();
            if relocate {
                index.map.remove(&b.id);
            }
            index.add_entry(num, &entry);
            if let Some(Some(slot)) = index.packs.get_mut(num as usize) {
                slot.bytes = w.len();
            }
        }
        if full {
            // Seal outside the writer lock so that other threads keep
            // appending to a new pack during the fsync; `inflight` makes a
            // flush wait for this seal before it publishes anything.
            let taken = writer.take();
            let _sealing = self.inflight.read().unwrap_or_else(|p| p.into_inner());
            drop(writer);
            if let Some((num, w)) = taken {
                self.seal_pack(num, w)
                    .inspect_err(|e| *self.lock_failed() = Some(e.to_string()))?;
            }
        }
        Ok(())
    }

    fn new_pack(&self) -> Result<(u32, PackWriter)> {
        let name = uuid::Uuid::new_v4().simple().to_string();
        let w = PackWriter::create(&self.dir, name)?;
        Ok((self.write_index().add_pack(w.slot()), w))
    }

    fn lock_failed(&self) -> MutexGuard<'_, Option<String>> {
        self.failed_seal.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Seals the open pack, if any, and waits for packs being sealed by
    /// other threads: after this every blob in the map is in a durable,
    /// complete pack. Fails if an earlier background seal failed, since
    /// blobs the map knows may then not be durable.
    pub fn seal(&self) -> Result<()> {
        let mut writer = self.lock_writer();
        let _all = self.inflight.write().unwrap_or_else(|p| p.into_inner());
        if let Some(why) = self.lock_failed().clone() {
            return Err(StoreError::Io {
                what: format!("sealing a pack in {}", self.dir.display()),
                source: std::io::Error::other(why),
            });
        }
        match writer.take() {
            Some((num, w)) => self.seal_pack(num, w),
            None => Ok(()),
        }
    }

    fn seal_pack(&self, num: u32, w: PackWriter) -> Result<()> {
        if w.is_empty() {
            self.write_index().drop_pack(num);
            return w.discard();
        }
        let name = w.name.clone();
        let path = w.seal(&self.dir)?;
        let bytes = std::fs::metadata(&path)
            .map_err(|e| StoreError::io_path(&path, e))?
            .len();
        let mut index = self.write_index();
        // By name: the pack table may have been renumbered meanwhile.
        if let Some(num) = index.by_name.get(&name).copied() {
            if let Some(Some(slot)) = index.packs.get_mut(num as usize) {
                slot.sealed = true;
                slot.bytes = bytes;
            }
        }
        Ok(())
    }

    /// Reads blob `id` into `out` (whose length must be its raw length),
    /// decompressing and verifying it against its id.
    pub fn get(&self, id: &ChunkId, out: &mut [u8]) -> Result<()> {
        let found = self.locate(id);
        let (loc, file) = match found {
            Some(found) => found,
            None => {
                // Maybe written by another process since we opened.
                self.refresh()?;
                self.locate(id).ok_or_else(|| StoreError::Corrupt {
                    what: format!("blob {id}"),
                    why: "missing from every pack of the store".into(),
                })?
            }
        };
        self.read_loc(id, &loc, &file, out)
            .map_err(|why| StoreError::Corrupt {
                what: format!(
                    "chunk {id} in pack {}",
                    self.read_index().pack_name(loc.pack)
                ),
                why,
            })
    }

    fn locate(&self, id: &ChunkId) -> Option<(Loc, Arc<File>)> {
        let index = self.read_index();
        let loc = *index.map.get(id)?;
        let slot = index.packs.get(loc.pack as usize)?.as_ref()?;
        Some((loc, slot.file.clone()))
    }

    fn read_loc(&self, id: &ChunkId, loc: &Loc, file: &File, out: &mut [u8]) -> Result<(), String> {
        if out.len() != loc.raw_len as usize {
            return Err(format!(
                "stored raw length {} does not match the expected {}",
                loc.raw_len,
                out.len()
            ));
        }
        if loc.compressed {
            STORED.with(|cell| {
                let mut buf = cell.borrow_mut();
                buf.resize(loc.len as usize, 0);
                file.read_exact_at(&mut buf, loc.offset)
                    .map_err(|e| format!("read: {e}"))?;
                codec::decode(&buf, out).map_err(|e| format!("decompress: {e}"))
            })?;
        } else {
            file.read_exact_at(out, loc.offset)
                .map_err(|e| format!("read: {e}"))?;
        }
        if ChunkId::of(&self.key, out) != *id {
            return Err("content does not match its id (hash mismatch)".into());
        }
        Ok(())
    }

    /// Reads the stored (possibly compressed) bytes of a blob without
    /// decoding: gc copies them as they are.
    pub fn read_stored(&self, loc: &Loc, file: &File) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; loc.len as usize];
        file.read_exact_at(&mut buf, loc.offset)?;
        Ok(buf)
    }
}

/// Names (without extension) of the sealed packs in `dir`.
pub fn list_packs(dir: &Path) -> Result<Vec<String>> {
    let rd = std::fs::read_dir(dir).map_err(|e| StoreError::io_path(dir, e))?;
    let mut names = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| StoreError::io_path(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".pack") {
            names.push(stem.to_string());
        }
    }
    Ok(names)
}
