//! Garbage collection: mark every page and chunk reachable from any HEAD or
//! snapshot, delete packs with nothing live, repack packs that are mostly
//! dead (or small), writing the new pack durably before deleting the old.
//!
//! Runs under the exclusive store lock, so no writer (in any process) is
//! active. A kill at any point leaves the store consistent: a live blob is
//! always in at least one sealed pack, leftovers are collected next time.

use super::blobs::{Index, PACK_TARGET};
use super::core::Store;
use super::error::{Result, StoreError};
use super::id::ChunkId;
use super::pack::{self, PART_EXT};
use super::quarantine;
use super::tree::{self, Page, PageStore};
use crate::progress::Progress;
use serde::Serialize;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Packs smaller than this are merged into one when there are several.
const SMALL_PACK: u64 = PACK_TARGET / 8;

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct GcStats {
    pub live_blobs: u64,
    pub packs_before: u64,
    pub packs_deleted: u64,
    pub packs_repacked: u64,
    pub bytes_before: u64,
    pub bytes_freed: u64,
    /// Unsealed packs and temp files of crashed runs that were removed.
    pub leftovers_removed: u64,
    /// `.pack` files whose index cannot be read ("name: why"): never
    /// deleted, since what they hold is unknown.
    pub unreadable_packs: Vec<String>,
    /// Why packs were kept that would otherwise have been deleted or
    /// repacked (damaged index pages, quarantined blobs without a copy).
    pub kept: Vec<String>,
}

/// What gc does with one pack.
struct PackPlan {
    num: u32,
    bytes: u64,
    live: Vec<ChunkId>,
}

pub fn run(store: &Store, progress: &dyn Progress, wait: Duration) -> Result<GcStats> {
    let _lock = super::lock::store_exclusive(&store.root, wait)?;
    store.blobs.seal()?;
    store.blobs.refresh()?;
    let _maint = store.blobs.maintenance();
    let marked = mark(store, progress)?;
    let mut stats = GcStats {
        live_blobs: marked.live.len() as u64,
        ..GcStats::default()
    };
    let (delete, repack) = {
        let index = store.blobs.read_index();
        stats.unreadable_packs = (index.unreadable.iter())
            .map(|(name, why)| format!("{name}: {why}"))
            .collect();
        let keep = kept_packs(&index, &marked, &mut stats);
        plan(&index, &marked.live, &keep, &mut stats)
    };
    sweep(store, (delete, repack), progress, &mut stats)?;
    stats.leftovers_removed = remove_leftovers(store)?;
    Ok(stats)
}

/// What the mark phase found.
pub(super) struct Marked {
    /// Every page and chunk id reachable from a published version.
    pub live: HashSet<ChunkId>,
    /// Reachable pages that could not be read: what lies below is unknown.
    pub unreadable_pages: Vec<ChunkId>,
}

/// Loads pages for the walk; an unreadable page is noted and walked as
/// empty, so that one damaged page does not stop gc (it then deletes
/// nothing whose liveness that page might decide).
struct Tolerant<'a> {
    store: &'a Store,
    unreadable: RefCell<Vec<ChunkId>>,
}

impl PageStore for Tolerant<'_> {
    fn load(&self, id: &ChunkId) -> Result<Page> {
        match self.store.load(id) {
            Err(StoreError::Corrupt { .. }) => {
                self.unreadable.borrow_mut().push(*id);
                Ok(tree::empty_page().into())
            }
            other => other,
        }
    }

    fn store(&self, _page: &[ChunkId]) -> Result<ChunkId> {
        Err(StoreError::Invalid {
            what: "gc".into(),
            why: "does not write pages while marking".into(),
        })
    }
}

pub(super) fn mark(store: &Store, progress: &dyn Progress) -> Result<Marked> {
    let versions = store.all_versions()?;
    progress.begin("gc: mark", versions.len() as u64);
    let pages = Tolerant {
        store,
        unreadable: RefCell::new(Vec::new()),
    };
    let mut seen = HashSet::new();
    let mut chunks = HashSet::new();
    for v in &versions {
        let levels = v.levels(store.chunk_size);
        tree::walk(&pages, v.root, levels, &mut |p| seen.insert(*p), &mut |c| {
            chunks.insert(*c);
            Ok(())
        })?;
        progress.advance(1);
    }
    progress.end();
    chunks.extend(seen);
    Ok(Marked {
        live: chunks,
        unreadable_pages: pages.unreadable.into_inner(),
    })
}

/// Packs gc must leave as they are: all of them when a reachable page is
/// unreadable (any blob may be below it), else those holding the
/// quarantined copy of a live blob that has no intact copy (the damaged
/// bytes are all there is; `verify --repair` or a new backup replaces them).
fn kept_packs(index: &Index, marked: &Marked, stats: &mut GcStats) -> HashSet<u32> {
    if let Some(page) = marked.unreadable_pages.first() {
        stats.kept.push(format!(
            "every pack: {} reachable index page(s) cannot be read (e.g. {page}), so what \
             they reference is unknown; run `verify` to see the affected backups",
            marked.unreadable_pages.len()
        ));
        return index
            .packs
            .iter()
            .enumerate()
            .map(|(n, _)| n as u32)
            .collect();
    }
    let lost = index.lost_ids();
    let mut keep = HashSet::new();
    for (name, ids) in &index.bad {
        let live_lost = ids
            .iter()
            .filter(|id| lost.contains(*id) && marked.live.contains(*id));
        let count = live_lost.count();
        let num = index.pack_number(name);
        if let (true, Some(num)) = (count > 0, num) {
            keep.insert(num);
            stats.kept.push(format!(
                "pack {name}: holds the only (damaged) copy of {count} blob(s) still in use"
            ));
        }
    }
    keep
}

/// Splits the packs into (delete, repack); packs not listed stay.
fn plan(
    index: &Index,
    live: &HashSet<ChunkId>,
    keep: &HashSet<u32>,
    stats: &mut GcStats,
) -> (Vec<PackPlan>, Vec<PackPlan>) {
    let mut per_pack: HashMap<u32, Vec<ChunkId>> = HashMap::new();
    let mut live_bytes: HashMap<u32, u64> = HashMap::new();
    for (id, loc) in index.map.iter().filter(|(id, _)| live.contains(*id)) {
        per_pack.entry(loc.pack).or_default().push(*id);
        *live_bytes.entry(loc.pack).or_default() += u64::from(loc.len);
    }
    let (mut delete, mut repack, mut small) = (Vec::new(), Vec::new(), Vec::new());
    for (num, slot) in index.packs.iter().enumerate() {
        let Some(slot) = slot.as_ref().filter(|s| s.sealed) else {
            continue;
        };
        let num = num as u32;
        stats.packs_before += 1;
        stats.bytes_before += slot.bytes;
        let lb = live_bytes.get(&num).copied().unwrap_or(0);
        let p = PackPlan {
            num,
            bytes: slot.bytes,
            live: per_pack.remove(&num).unwrap_or_default(),
        };
        if keep.contains(&num) {
            continue;
        }
        if p.live.is_empty() {
            delete.push(p);
        } else if lb * 2 < slot.bytes {
            repack.push(p);
        } else if slot.bytes < SMALL_PACK {
            small.push(p);
        }
    }
    if small.len() > 1 {
        repack.extend(small);
    }
    (delete, repack)
}

fn sweep(
    store: &Store,
    (delete, repack): (Vec<PackPlan>, Vec<PackPlan>),
    progress: &dyn Progress,
    stats: &mut GcStats,
) -> Result<()> {
    let total: u64 = repack.iter().map(|p| p.bytes).sum();
    progress.begin("gc: repack", total);
    for p in &repack {
        copy_live(store, p)?;
        progress.advance(p.bytes);
    }
    // The copies must be durable before any old pack goes away.
    store.blobs.seal()?;
    progress.end();
    stats.packs_repacked = repack.len() as u64;
    stats.packs_deleted = delete.len() as u64;
    for p in delete.iter().chain(&repack) {
        delete_pack(store, p.num)?;
        stats.bytes_freed += p.bytes;
    }
    pack::sync_dir(store.blobs.dir())
}

/// Appends the live blobs of pack `p` (stored bytes, as they are) to the
/// open pack and points the map at the copies.
fn copy_live(store: &Store, p: &PackPlan) -> Result<()> {
    for id in &p.live {
        let found = {
            let index = store.blobs.read_index();
            let slot = index.packs.get(p.num as usize).and_then(Option::as_ref);
            index.map.get(id).copied().zip(slot.map(|s| s.file.clone()))
        };
        let Some((loc, file)) = found else { continue };
        let stored = store
            .blobs
            .read_stored(&loc, &file)
            .map_err(|e| StoreError::io(format!("pack #{} blob {id}", p.num), e))?;
        store
            .blobs
            .relocate(*id, loc.kind, &stored, loc.raw_len, loc.compressed)?;
    }
    Ok(())
}

pub(super) fn delete_pack(store: &Store, num: u32) -> Result<()> {
    let name = store.blobs.read_index().pack_name(num);
    let path = store.blobs.dir().join(format!("{name}.{}", pack::PACK_EXT));
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(StoreError::io_path(&path, e)),
    }
    store.blobs.write_index().drop_pack(num);
    // After the pack: a crash in between leaves marks of a missing pack,
    // which the next gc removes.
    quarantine::remove(store.blobs.dir(), &name)
}

/// Unsealed packs (no writer can be running: we hold the store lock
/// exclusive and sealed our own) and temp files of interrupted updates.
pub(super) fn remove_leftovers(store: &Store) -> Result<u64> {
    let dir = store.blobs.dir();
    let rd = std::fs::read_dir(dir).map_err(|e| StoreError::io_path(dir, e))?;
    let mut removed = 0;
    for entry in rd.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let orphan_marks = name
            .strip_suffix(&format!(".{}", quarantine::BAD_EXT))
            .is_some_and(|pack| !dir.join(format!("{pack}.{}", pack::PACK_EXT)).exists());
        let leftover = name.ends_with(&format!(".{PART_EXT}")) || orphan_marks;
        if leftover && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed += super::meta::remove_leftovers(&store.root)? as u64;
    removed += super::objects::remove_leftovers(&store.root)? as u64;
    Ok(removed)
}
