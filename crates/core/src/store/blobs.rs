//! The blob store: pack files on disk plus the in-memory map
//! chunk id -> location, built at open from the packs' indexes.
//!
//! Locking: `index` (RwLock) guards the map and pack table; `writer`
//! (Mutex) guards the open pack. Hashing and compression happen before
//! either is taken; a blob is appended and then inserted into the map while
//! holding `writer`, so two threads never store the same id twice.

use super::codec;
use super::crypto::StoreCrypto;
use super::error::{Result, StoreError};
use super::id::ChunkId;
use super::pack::{self, BlobKind, Entry, PackWriter, PACK_EXT};
use super::quarantine;
use std::cell::RefCell;
use std::collections::hash_map::Entry as Entry_;
use std::collections::{BTreeMap, HashMap, HashSet};
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
    /// This process wrote the blob or has read it back intact: a write of
    /// the same content may reuse it without reading it first.
    pub checked: bool,
}

impl Loc {
    fn same_place(&self, other: &Loc) -> bool {
        self.pack == other.pack && self.offset == other.offset
    }
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
    /// The copy of each blob that reads use (never a quarantined one).
    pub map: HashMap<ChunkId, Loc>,
    /// Further copies (gc or racing writers leave duplicates): used when
    /// the copy in `map` turns out damaged or its pack goes away.
    spare: HashMap<ChunkId, Vec<Loc>>,
    pub packs: Vec<Option<PackSlot>>,
    by_name: HashMap<String, u32>,
    /// Quarantined copies by pack name (see [`super::quarantine`]).
    pub bad: HashMap<String, HashSet<ChunkId>>,
    /// `.pack` files whose index cannot be read, with the reason: their
    /// blobs are unknown, the rest of the store works without them.
    pub unreadable: BTreeMap<String, String>,
}

impl Index {
    fn add_pack(&mut self, slot: PackSlot) -> u32 {
        let num = self.packs.len() as u32;
        self.by_name.insert(slot.name.clone(), num);
        self.packs.push(Some(slot));
        num
    }

    fn is_bad(&self, pack: u32, id: &ChunkId) -> bool {
        let name = match self.packs.get(pack as usize) {
            Some(Some(slot)) => &slot.name,
            _ => return false,
        };
        self.bad.get(name).is_some_and(|ids| ids.contains(id))
    }

    fn add_entry(&mut self, pack: u32, e: &Entry, checked: bool) {
        if self.is_bad(pack, &e.id) {
            return;
        }
        let loc = Loc {
            pack,
            offset: e.offset,
            len: e.len,
            raw_len: e.raw_len,
            kind: e.kind,
            compressed: e.compressed,
            checked,
        };
        match self.map.entry(e.id) {
            Entry_::Vacant(v) => {
                v.insert(loc);
            }
            Entry_::Occupied(_) => self.spare.entry(e.id).or_default().push(loc),
        }
    }

    /// Removes the copy at `loc` of blob `id`; a spare copy takes its place.
    fn remove_copy(&mut self, id: &ChunkId, loc: &Loc) {
        if let Some(spares) = self.spare.get_mut(id) {
            spares.retain(|s| !s.same_place(loc));
        }
        if self.map.get(id).is_some_and(|m| m.same_place(loc)) {
            self.map.remove(id);
            self.promote_spare(id);
        }
    }

    fn promote_spare(&mut self, id: &ChunkId) {
        if let Some(spares) = self.spare.get_mut(id) {
            if let Some(next) = spares.pop() {
                self.map.insert(*id, next);
            }
            if spares.is_empty() {
                self.spare.remove(id);
            }
        }
    }

    /// Quarantines the copies of `marks` (pack name -> ids) in the map.
    fn apply_marks(&mut self, marks: HashMap<String, HashSet<ChunkId>>) {
        for (pack, ids) in marks {
            let num = self.by_name.get(&pack).copied();
            for id in ids {
                let fresh = self.bad.entry(pack.clone()).or_default().insert(id);
                if let (true, Some(num)) = (fresh, num) {
                    let copies = self.map.get(&id).into_iter();
                    let spares = self.spare.get(&id).into_iter().flatten();
                    let here: Vec<Loc> = copies
                        .chain(spares)
                        .filter(|l| l.pack == num)
                        .copied()
                        .collect();
                    here.iter().for_each(|loc| self.remove_copy(&id, loc));
                }
            }
        }
    }

    /// Forgets pack `num` and every copy in it (spares elsewhere take over).
    pub fn drop_pack(&mut self, num: u32) {
        if let Some(Some(slot)) = self.packs.get_mut(num as usize).map(Option::take) {
            self.by_name.remove(&slot.name);
            self.bad.remove(&slot.name);
        }
        self.spare.retain(|_, spares| {
            spares.retain(|l| l.pack != num);
            !spares.is_empty()
        });
        let gone: Vec<ChunkId> = self
            .map
            .iter()
            .filter(|(_, l)| l.pack == num)
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            self.map.remove(&id);
            self.promote_spare(&id);
        }
    }

    /// Ids whose only known copies are quarantined.
    pub fn lost_ids(&self) -> HashSet<ChunkId> {
        self.bad
            .values()
            .flatten()
            .filter(|id| !self.map.contains_key(id))
            .copied()
            .collect()
    }

    /// True when some blob may have no usable copy: a quarantined copy
    /// without an intact one, or a pack whose blobs are unknown.
    pub fn knows_damage(&self) -> bool {
        !self.unreadable.is_empty()
            || (self.bad.values().flatten()).any(|id| !self.map.contains_key(id))
    }

    pub fn pack_number(&self, name: &str) -> Option<u32> {
        self.by_name.get(name).copied()
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
    /// Seals blobs and pack indexes in an encrypted store.
    crypto: Option<Arc<StoreCrypto>>,
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
    /// Packs this process sealed: what a failed backup may have left.
    own: Mutex<Vec<String>>,
}

thread_local! {
    static STORED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// A blob being sealed (encrypted stores).
    static SEALED: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
    /// Scratch for reading back a copy that a write would reuse.
    static CHECK: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl Blobs {
    /// Loads the indexes of every sealed pack in `dir`.
    pub fn open(
        dir: PathBuf,
        key: [u8; 32],
        level: i32,
        crypto: Option<Arc<StoreCrypto>>,
    ) -> Result<Self> {
        let blobs = Blobs {
            dir,
            key,
            level,
            crypto,
            index: RwLock::new(Index::default()),
            writer: Mutex::new(None),
            maint: Mutex::new(()),
            pack_target: AtomicU64::new(PACK_TARGET),
            inflight: RwLock::new(()),
            failed_seal: Mutex::new(None),
            own: Mutex::new(Vec::new()),
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
    /// Quarantine marks written by other processes are applied; a pack whose
    /// index cannot be read is remembered as unreadable, not an error.
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
        let marks = quarantine::load(&self.dir)?;
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
            {
                let old = self.read_index();
                fresh.bad = old.bad.clone();
                fresh.unreadable = old.unreadable.clone();
            }
            fresh.unreadable.retain(|name, _| names.contains(name));
            if let Some((num, w)) = writer.as_mut() {
                *num = fresh.add_pack(w.slot());
                w.entries()
                    .iter()
                    .for_each(|e| fresh.add_entry(*num, e, true));
            }
            *self.write_index() = fresh;
        }
        // Marks first, so that newly loaded packs skip their bad copies.
        self.write_index().apply_marks(marks);
        let known: HashSet<String> = {
            let index = self.read_index();
            let loaded = index.by_name.keys();
            loaded.chain(index.unreadable.keys()).cloned().collect()
        };
        for name in names.iter().filter(|n| !known.contains(*n)) {
            self.load_pack(name);
        }
        Ok(())
    }

    fn load_pack(&self, name: &str) {
        let path = self.dir.join(format!("{name}.{PACK_EXT}"));
        let (file, entries, bytes) = match pack::read_index(&path, self.crypto.as_deref()) {
            Ok(found) => found,
            // Deleted by a concurrent gc between listing and opening.
            Err(StoreError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return
            }
            Err(e) => {
                tracing::warn!("{e}: the store works without this pack");
                let why = match e {
                    StoreError::Corrupt { why, .. } => why,
                    other => other.to_string(),
                };
                self.write_index().unreadable.insert(name.to_string(), why);
                return;
            }
        };
        let mut index = self.write_index();
        let slot = PackSlot {
            name: name.to_string(),
            file: Arc::new(file),
            bytes,
            sealed: true,
        };
        let num = index.add_pack(slot);
        entries.iter().for_each(|e| index.add_entry(num, e, false));
    }

    /// Excludes [`Blobs::refresh`] while gc rewrites the map.
    pub fn maintenance(&self) -> MutexGuard<'_, ()> {
        self.maint.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn contains(&self, id: &ChunkId) -> bool {
        self.read_index().map.contains_key(id)
    }

    /// Stores `raw` under `id` unless the store already holds an intact
    /// copy. A copy this process has not written or read before is read
    /// back and checked first (a damaged one is quarantined and the blob
    /// stored again), so new data never points at a bad copy. Compression
    /// happens before any lock is taken.
    pub fn put(&self, id: ChunkId, kind: BlobKind, raw: &[u8]) -> Result<()> {
        if self.holds_intact(&id, raw.len()) {
            return Ok(());
        }
        let raw_len = raw.len() as u32;
        codec::encode(raw, self.level, |stored, compressed| match &self.crypto {
            None => self.append(id, kind, stored, raw_len, compressed),
            Some(crypto) => SEALED.with(|cell| {
                let mut sealed = cell.borrow_mut();
                sealed.clear();
                crypto.seal_blob(kind, &id, stored, &mut sealed)?;
                self.append(id, kind, &sealed, raw_len, compressed)
            }),
        })
        .map_err(|e| StoreError::io("zstd", e))?
    }

    /// True when the map has a copy of `id` that this process wrote or
    /// reads back intact now (damaged copies are quarantined on the way).
    fn holds_intact(&self, id: &ChunkId, raw_len: usize) -> bool {
        while let Some((loc, file)) = self.locate(id) {
            if loc.checked {
                return true;
            }
            let read = CHECK.with(|cell| {
                let mut buf = cell.borrow_mut();
                buf.resize(raw_len, 0);
                self.read_loc(id, &loc, &file, &mut buf)
            });
            match read {
                Ok(()) => {
                    let mut index = self.write_index();
                    if let Some(m) = index.map.get_mut(id).filter(|m| m.same_place(&loc)) {
                        m.checked = true;
                    }
                    return true;
                }
                Err(why) => self.quarantine(id, &loc, &why),
            }
        }
        false
    }

    /// Takes a damaged copy out of use, here and (by a durable mark) in
    /// every later process. On a read-only store the mark stays in memory.
    fn quarantine(&self, id: &ChunkId, loc: &Loc, why: &str) {
        let name = {
            let mut index = self.write_index();
            let name = index.pack_name(loc.pack);
            index.bad.entry(name.clone()).or_default().insert(*id);
            index.remove_copy(id, loc);
            name
        };
        tracing::warn!("blob {id} in pack {name} is damaged ({why}); quarantined");
        if let Err(e) = quarantine::mark(&self.dir, &name, id) {
            tracing::warn!("could not record the quarantine of blob {id}: {e}");
        }
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
            // Our own writes are known intact; gc's copies are as stored.
            index.add_entry(num, &entry, !relocate);
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
        let w = PackWriter::create(&self.dir, name, self.crypto.clone())?;
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
        self.own
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(name.clone());
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

    /// Drops the open pack unsealed: its blobs are in no published version
    /// (publishing seals first). For reclaiming a failed backup's data.
    pub fn abandon_open_pack(&self) -> Result<()> {
        let mut writer = self.lock_writer();
        let _sealed = self.inflight.write().unwrap_or_else(|p| p.into_inner());
        match writer.take() {
            Some((num, w)) => {
                self.write_index().drop_pack(num);
                w.discard()
            }
            None => Ok(()),
        }
    }

    /// Takes the names of the packs this process sealed (and forgets them).
    pub fn take_own_packs(&self) -> Vec<String> {
        std::mem::take(&mut *self.own.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Reads blob `id` into `out` (whose length must be its raw length),
    /// decompressing and verifying it against its id. A copy that fails is
    /// quarantined and the next copy, if any, is tried.
    pub fn get(&self, id: &ChunkId, out: &mut [u8]) -> Result<()> {
        let mut failed: Option<StoreError> = None;
        loop {
            let found = match self.locate(id) {
                Some(found) => Some(found),
                None if failed.is_none() => {
                    // Maybe written by another process since we opened.
                    self.refresh()?;
                    self.locate(id)
                }
                None => None,
            };
            let Some((loc, file)) = found else {
                return Err(failed.unwrap_or_else(|| self.missing(id)));
            };
            match self.read_loc(id, &loc, &file, out) {
                Ok(()) => return Ok(()),
                Err(why) => {
                    let pack = self.read_index().pack_name(loc.pack);
                    self.quarantine(id, &loc, &why);
                    failed = Some(StoreError::Corrupt {
                        what: format!("chunk {id} in pack {pack}"),
                        why,
                    });
                }
            }
        }
    }

    /// The error for a blob with no usable copy, saying what may explain it.
    fn missing(&self, id: &ChunkId) -> StoreError {
        let index = self.read_index();
        let mut why = match index.bad.iter().find(|(_, ids)| ids.contains(id)) {
            Some((pack, _)) => format!(
                "its copy in pack {pack} was found damaged (quarantined) and no intact copy is stored; \
                 back up the data again or run `verify --repair`"
            ),
            None => "missing from every pack of the store".to_string(),
        };
        if !index.unreadable.is_empty() {
            let names: Vec<&str> = index.unreadable.keys().map(String::as_str).collect();
            why.push_str(&format!(" (unreadable packs: {})", names.join(", ")));
        }
        StoreError::Corrupt {
            what: format!("blob {id}"),
            why,
        }
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
        match &self.crypto {
            Some(crypto) => self.read_sealed(crypto, id, loc, file, out)?,
            None if loc.compressed => STORED.with(|cell| {
                let mut buf = cell.borrow_mut();
                buf.resize(loc.len as usize, 0);
                file.read_exact_at(&mut buf, loc.offset)
                    .map_err(|e| format!("read: {e}"))?;
                codec::decode(&buf, out).map_err(|e| format!("decompress: {e}"))
            })?,
            None => file
                .read_exact_at(out, loc.offset)
                .map_err(|e| format!("read: {e}"))?,
        }
        if ChunkId::of(&self.key, out) != *id {
            return Err("content does not match its id (hash mismatch)".into());
        }
        Ok(())
    }

    /// Reads, authenticates and decrypts a sealed blob, then decompresses
    /// it (or copies it) into `out`.
    fn read_sealed(
        &self,
        crypto: &StoreCrypto,
        id: &ChunkId,
        loc: &Loc,
        file: &File,
        out: &mut [u8],
    ) -> Result<(), String> {
        STORED.with(|cell| {
            let mut buf = cell.borrow_mut();
            buf.resize(loc.len as usize, 0);
            file.read_exact_at(&mut buf, loc.offset)
                .map_err(|e| format!("read: {e}"))?;
            let plain = crypto.open_blob(loc.kind, id, &mut buf)?;
            if loc.compressed {
                return codec::decode(plain, out).map_err(|e| format!("decompress: {e}"));
            }
            if plain.len() != out.len() {
                return Err(format!("{} bytes stored for {}", plain.len(), out.len()));
            }
            out.copy_from_slice(plain);
            Ok(())
        })
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
