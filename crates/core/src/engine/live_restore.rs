//! Live restore: a backup is usable at once through a copy-on-write view
//! (served over NBD by the caller) whose top is the restore's target
//! image; a background copy fills the target block by block. Reads of
//! blocks not yet copied come from the backup, writes go to the target
//! (a partly written block is copied first). At the end the target holds
//! the backup plus the client's writes, and the view reads only it.
//!
//! Crash safety: the state (backup id, block size, which blocks the
//! target holds) is kept in the target's own metadata
//! ([`LIVE_RESTORE_KEY`], `rbd image-meta`), saved after the target is
//! flushed (see [`crate::image::cow`]). A live restore killed at any point
//! is resumed by starting it again onto the same target (the blocks not
//! recorded are copied again; writes a client never flushed may be lost,
//! as on any disk), or abandoned by removing the target
//! ([`Engine::abandon_live_restore`]). The backup record goes through the
//! restore life cycle (shared backup lock, `restoring`), so recovery
//! treats a killed live restore like a killed restore.

use super::error::{EngineError, EngineResult};
use super::lock::HeldLock;
use super::restore::{RestoreRequest, RestoreTo, Restoring};
use super::Engine;
use crate::catalog::BackupRecord;
use crate::image::cow::{BlockMap, CowImage, MapStore};
use crate::image::{ExtentKind, Image, ImageError, Pool};
use crate::metadata::{apply_volume_metadata, AppliedMetadata, BackupMetadata};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The target's metadata key holding the live restore's state.
pub const LIVE_RESTORE_KEY: &str = "blockback.live-restore";

/// Largest map kept in the metadata (bits): the block size grows with
/// the image beyond 512 GiB.
const MAX_MAP_BITS: u64 = 512 * 1024;
const MIN_BLOCK: u64 = 1 << 20;
/// The map is saved at least this often while copying.
const SAVE_EVERY: Duration = Duration::from_secs(2);

#[derive(Debug, Serialize, Deserialize)]
struct LiveState {
    backup: uuid::Uuid,
    size: u64,
    block: u64,
    complete: bool,
    /// The block map, hex (empty once complete).
    map: String,
}

/// Saves the map into the target's metadata.
#[derive(Clone)]
struct MetadataStore {
    target: Arc<dyn Image>,
    backup: uuid::Uuid,
    size: u64,
    block: u64,
}

impl MetadataStore {
    fn write(&self, map: &[u8], complete: bool) -> crate::image::Result<()> {
        let state = LiveState {
            backup: self.backup,
            size: self.size,
            block: self.block,
            complete,
            map: if complete {
                String::new()
            } else {
                hex::encode(map)
            },
        };
        let meta = self
            .target
            .metadata()
            .ok_or_else(|| ImageError::Unsupported {
                what: self.target.describe(),
                op: "metadata (a live restore keeps its state there)",
            })?;
        let json = serde_json::to_string(&state).expect("the state serialises");
        meta.set(LIVE_RESTORE_KEY, &json)
    }
}

impl MapStore for MetadataStore {
    fn save(&self, map: &[u8]) -> crate::image::Result<()> {
        self.write(map, false)
    }
}

/// A running live restore; see the module docs.
pub struct LiveRestore {
    backup: BackupRecord,
    cow: Arc<CowImage>,
    store: MetadataStore,
    target: String,
    resumed: bool,
    metadata: Option<BackupMetadata>,
    restoring: Restoring,
    _target_lock: Option<HeldLock>,
}

/// What [`Engine::end_live_restore`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveRestored {
    pub backup: uuid::Uuid,
    pub target: String,
    /// Every block is in the target; it no longer needs the backup.
    pub complete: bool,
    pub blocks_done: u64,
    pub blocks: u64,
    pub applied: AppliedMetadata,
}

impl LiveRestore {
    /// The view to serve: the backup where the target has nothing yet.
    pub fn image(&self) -> Arc<dyn Image> {
        self.cow.clone()
    }

    pub fn backup(&self) -> &BackupRecord {
        &self.backup
    }

    /// The target as a volume label.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Whether this run continues one that was interrupted.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// The background copy, to run in a thread of its own.
    pub fn copier(&self) -> LiveCopier {
        LiveCopier {
            cow: self.cow.clone(),
        }
    }

    pub fn blocks_done(&self) -> (u64, u64) {
        (self.cow.map().count(), self.cow.map().blocks())
    }
}

/// The background copy of a live restore.
pub struct LiveCopier {
    cow: Arc<CowImage>,
}

impl LiveCopier {
    /// Copies every block the target does not hold yet, with `workers`
    /// threads and at most `rate` bytes per second (read from the
    /// backup), until done or `stop` is set; saves the map as it goes.
    /// Returns whether the target is complete. `progress(done, total)`
    /// is called with blocks.
    pub fn run(
        &self,
        workers: usize,
        rate: Option<u64>,
        stop: &AtomicBool,
        progress: &(dyn Fn(u64, u64) + Sync),
    ) -> EngineResult<bool> {
        let map = self.cow.map();
        let data = self.data_blocks()?;
        let next = AtomicU64::new(0);
        let copied = AtomicU64::new(0);
        let started = Instant::now();
        let last_save = Mutex::new(Instant::now());
        let failure: Mutex<Option<EngineError>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..workers.max(1) {
                scope.spawn(|| {
                    let result = self.work(&data, &next, &copied, stop, &last_save, |copied| {
                        throttle(rate, copied, started)
                    });
                    match result {
                        Ok(()) => progress(map.count(), map.blocks()),
                        Err(e) => {
                            stop.store(true, Ordering::SeqCst);
                            failure
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .get_or_insert(e);
                        }
                    }
                });
            }
        });
        let saved = self.cow.save_map();
        if let Some(e) = failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
        saved?;
        Ok(map.is_complete())
    }

    fn work(
        &self,
        data: &BlockMap,
        next: &AtomicU64,
        copied: &AtomicU64,
        stop: &AtomicBool,
        last_save: &Mutex<Instant>,
        throttle: impl Fn(u64),
    ) -> EngineResult<()> {
        let map = self.cow.map();
        loop {
            if stop.load(Ordering::SeqCst) {
                return Ok(());
            }
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= map.blocks() {
                return Ok(());
            }
            let n = self.cow.fill(i, data.is_set(i))?;
            let total = copied.fetch_add(n, Ordering::Relaxed) + n;
            throttle(total);
            if let Ok(mut last) = last_save.try_lock() {
                if last.elapsed() >= SAVE_EVERY {
                    self.cow.save_map()?;
                    *last = Instant::now();
                }
            }
        }
    }

    /// The blocks where the backup holds data (the others are holes).
    fn data_blocks(&self) -> EngineResult<BlockMap> {
        let map = self.cow.map();
        let data = BlockMap::new(map.size(), map.block_size());
        let block = map.block_size();
        self.cow
            .base()
            .changed_extents(None, 0..map.size(), &mut |e| {
                if e.kind == ExtentKind::Data && e.len > 0 {
                    for i in e.offset / block..=(e.end() - 1) / block {
                        data.set(i);
                    }
                }
                Ok(())
            })?;
        Ok(data)
    }
}

/// Sleeps while more than `rate` bytes per second were copied.
fn throttle(rate: Option<u64>, copied: u64, started: Instant) {
    let Some(rate) = rate.filter(|r| *r > 0) else {
        return;
    };
    let due = Duration::from_secs_f64(copied as f64 / rate as f64);
    let elapsed = started.elapsed();
    if due > elapsed {
        std::thread::sleep(due - elapsed);
    }
}

/// The block size of a live restore's map for an image of `size` bytes.
fn block_size(size: u64) -> u64 {
    let wanted = size.div_ceil(MAX_MAP_BITS).max(MIN_BLOCK);
    wanted.next_power_of_two()
}

impl Engine<'_> {
    /// Starts a live restore of `req.backup` into a new image, or resumes
    /// one onto the existing image it left unfinished. Files are refused:
    /// the state lives in the target image's metadata.
    pub fn begin_live_restore(&self, req: &RestoreRequest<'_>) -> EngineResult<LiveRestore> {
        let (pool, name, label, new) = match &req.to {
            RestoreTo::NewImage { pool, name, label } => (*pool, *name, label.clone(), true),
            RestoreTo::ExistingImage { pool, name, label } => (*pool, *name, label.clone(), false),
            RestoreTo::NewFile(p) | RestoreTo::ExistingFile(p) => {
                return Err(EngineError::Invalid(format!(
                    "a live restore writes into an image (rbd:POOL/IMAGE or local:IMAGE), not into the file {}; restore files with a plain restore",
                    p.display()
                )))
            }
        };
        let restoring = self.begin_restore(req.backup)?;
        let started = self.start_live(req, &restoring.backup, pool, name, &label, new);
        match started {
            Ok((cow, store, lock)) => Ok(LiveRestore {
                backup: restoring.backup.clone(),
                metadata: self.read_metadata(req.store, &restoring.backup),
                cow,
                store,
                target: label,
                resumed: !new,
                restoring,
                _target_lock: lock,
            }),
            Err(e) => {
                let _ = self.end_restore(restoring);
                Err(e)
            }
        }
    }

    fn start_live(
        &self,
        req: &RestoreRequest<'_>,
        backup: &BackupRecord,
        pool: &dyn Pool,
        name: &str,
        label: &str,
        new: bool,
    ) -> EngineResult<(Arc<CowImage>, MetadataStore, Option<HeldLock>)> {
        let lock = self.lock_target_volume(label, &backup.store)?;
        let base: Arc<dyn Image> = Arc::from(
            req.store
                .open_read_only(&backup.image, backup.restore_point())?,
        );
        let size = backup.size;
        if new {
            pool.create(name, size)?;
        }
        let opened = open_live_target(pool, name, backup, size, new, base);
        match opened {
            Ok((cow, store)) => Ok((cow, store, lock)),
            Err(e) => {
                if new {
                    if let Err(r) = pool.remove(name) {
                        tracing::warn!("could not remove the new live restore target {label}: {r}");
                    }
                }
                Err(e)
            }
        }
    }

    /// Ends a live restore: saves its map; when complete, sets the
    /// backup's metadata on the target and records it complete. The
    /// backup record leaves `restoring` either way.
    pub fn end_live_restore(&self, live: LiveRestore) -> EngineResult<LiveRestored> {
        let result = self.finish_live(&live);
        let ended = self.end_restore(live.restoring);
        let out = result?;
        ended?;
        Ok(out)
    }

    fn finish_live(&self, live: &LiveRestore) -> EngineResult<LiveRestored> {
        live.cow.save_map()?;
        let map = live.cow.map();
        let complete = map.is_complete();
        let mut applied = AppliedMetadata::default();
        if complete {
            if let Some(m) = &live.metadata {
                applied = apply_volume_metadata(live.cow.top().as_ref(), m)?;
            }
            live.store.write(&[], true)?;
            live.cow.top().flush()?;
        }
        Ok(LiveRestored {
            backup: live.backup.id,
            target: live.target.clone(),
            complete,
            blocks_done: map.count(),
            blocks: map.blocks(),
            applied,
        })
    }

    /// Removes the target a live restore of `backup` left unfinished.
    /// Refused for any image that is not one (the state names another
    /// backup, is complete, or is absent).
    pub fn abandon_live_restore(
        &self,
        backup: &BackupRecord,
        pool: &dyn Pool,
        name: &str,
        label: &str,
    ) -> EngineResult<()> {
        let _target_lock = self.lock_target_volume(label, &backup.store)?;
        {
            let image = pool.open_read_only(name, None)?;
            let state = read_state(image.as_ref())?;
            match state {
                Some(s) if s.backup == backup.id && !s.complete => {}
                _ => {
                    return Err(EngineError::Invalid(format!(
                        "{label} is not an unfinished live restore of backup {}; nothing removed",
                        backup.id
                    )))
                }
            }
        }
        Ok(pool.remove(name)?)
    }
}

fn open_live_target(
    pool: &dyn Pool,
    name: &str,
    backup: &BackupRecord,
    size: u64,
    new: bool,
    base: Arc<dyn Image>,
) -> EngineResult<(Arc<CowImage>, MetadataStore)> {
    let top: Arc<dyn Image> = Arc::from(pool.open(name)?);
    let label = top.describe();
    let (map, block) = if new {
        let block = block_size(size);
        (BlockMap::new(size, block), block)
    } else {
        resumed_map(top.as_ref(), backup, size, &label)?
    };
    let store = MetadataStore {
        target: top.clone(),
        backup: backup.id,
        size,
        block,
    };
    // The state goes in before any client can write: a crash from here
    // on leaves a target that says what it is.
    store.write(&map.encode(), false)?;
    let cow = CowImage::new(base, top, map, new, Some(Box::new(store.clone())))?;
    Ok((Arc::new(cow), store))
}

fn read_state(image: &dyn Image) -> EngineResult<Option<LiveState>> {
    let Some(meta) = image.metadata() else {
        return Ok(None);
    };
    let Some(json) = meta.get(LIVE_RESTORE_KEY)? else {
        return Ok(None);
    };
    serde_json::from_str(&json).map(Some).map_err(|e| {
        EngineError::Invalid(format!(
            "{}: unreadable {LIVE_RESTORE_KEY} metadata ({e}); remove the image to start over",
            image.describe()
        ))
    })
}

/// The map of an unfinished live restore of `backup` on `target`.
fn resumed_map(
    target: &dyn Image,
    backup: &BackupRecord,
    size: u64,
    label: &str,
) -> EngineResult<(BlockMap, u64)> {
    let refuse = |why: String| {
        Err(EngineError::Invalid(format!(
            "restore target {label} exists and {why}; give a new image name"
        )))
    };
    let Some(state) = read_state(target)? else {
        return refuse("is not an unfinished live restore".into());
    };
    if state.backup != backup.id {
        return refuse(format!(
            "holds an unfinished live restore of backup {}",
            state.backup
        ));
    }
    if state.complete {
        return refuse("holds a finished live restore".into());
    }
    let map = hex::decode(&state.map)
        .ok()
        .filter(|_| state.size == size)
        .and_then(|bytes| BlockMap::decode(size, state.block, &bytes));
    match map {
        Some(map) => Ok((map, state.block)),
        None => refuse("its live restore state does not fit the backup".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_stay_small() {
        assert_eq!(block_size(10 << 30), 1 << 20);
        for size in [1u64, 1 << 30, 1 << 40, 64 << 40] {
            let bits = size.div_ceil(block_size(size));
            assert!(bits <= MAX_MAP_BITS, "{size}: {bits}");
        }
    }
}
