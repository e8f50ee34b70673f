//! What the chain checks share: a context per check (catalog, engine
//! directories, notes), volumes that mirror their content in memory, and a
//! source wrapper that injects read failures.

use super::ChainFixture;
use crate::catalog::{BackupRecord, Catalog, MemoryCatalog};
use crate::engine::{
    BackupRequest, ChainMode, DigestDir, Engine, EngineResult, LockDir, ManualClock, RestoreReport,
    RestoreTarget, RetryPolicy,
};
use crate::image::{Image, Pool, Snapshots};
use crate::naming::parse_backup_snap;
use crate::progress::Progress;
use std::sync::Mutex;
use std::time::Duration;

pub(super) type CheckResult = std::result::Result<(), String>;

/// An error as a check's failure message.
pub(super) fn s<E: std::fmt::Display>(e: E) -> String {
    e.to_string()
}

/// Fails the check with a message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}
pub(super) use ensure;

pub(super) const MIB: u64 = 1 << 20;

/// Records notes so checks can assert what the user was told.
#[derive(Default)]
pub(super) struct Notes(Mutex<Vec<String>>);

impl Notes {
    pub fn all(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Progress for Notes {
    fn begin(&self, _: &str, _: u64) {}
    fn advance(&self, _: u64) {}
    fn end(&self) {}
    fn note(&self, message: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(message.to_string());
    }
}

/// One check's world: its own catalog and engine state; removes the
/// volumes and bases it made when dropped.
pub(super) struct Ctx<'f> {
    pub fx: &'f dyn ChainFixture,
    pub catalog: MemoryCatalog,
    pub notes: Notes,
    /// The time backups record: the system's unless a check sets it.
    pub clock: ManualClock,
    dir: tempfile::TempDir,
    volumes: Mutex<Vec<String>>,
}

/// A volume of the fixture's volume pool and its expected content.
pub(super) struct Vol {
    pub name: String,
    pub label: String,
    pub head: Box<dyn Image>,
    pub mirror: Vec<u8>,
}

impl Vol {
    pub fn write(&mut self, offset: u64, data: &[u8]) -> CheckResult {
        self.head
            .write_at(offset, data)
            .map_err(|e| e.to_string())?;
        self.mirror[offset as usize..offset as usize + data.len()].copy_from_slice(data);
        Ok(())
    }

    /// Writes `len` bytes of a pattern that differs per `seed`.
    pub fn scribble(&mut self, offset: u64, len: usize, seed: u8) -> CheckResult {
        let data: Vec<u8> = (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) | 1)
            .collect();
        self.write(offset, &data)
    }

    pub fn resize(&mut self, size: u64) -> CheckResult {
        self.head.resize(size).map_err(|e| e.to_string())?;
        self.mirror.resize(size as usize, 0);
        Ok(())
    }

    pub fn snapshots(&self) -> &dyn Snapshots {
        self.head
            .snapshots()
            .expect("fixture volumes have snapshots")
    }

    /// Names of the backup snapshots on the volume.
    pub fn backup_snaps(&self) -> Vec<String> {
        backup_snaps(self.head.as_ref())
    }
}

/// Backup snapshot names on `image`.
pub(super) fn backup_snaps(image: &dyn Image) -> Vec<String> {
    image
        .snapshots()
        .and_then(|s| s.list().ok())
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.name)
        .filter(|n| parse_backup_snap(n).is_some())
        .collect()
}

/// Everything `image` holds.
pub(super) fn contents(image: &dyn Image) -> std::result::Result<Vec<u8>, String> {
    let size = image.size().map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; size as usize];
    image.read_at(0, &mut buf).map_err(|e| e.to_string())?;
    Ok(buf)
}

/// How a backup is asked for.
#[derive(Clone, Copy)]
pub(super) struct How {
    pub store: usize,
    pub mode: ChainMode,
    pub keep: usize,
    /// Let the backup snapshot the source (false: read it whole).
    pub snapshots: bool,
}

impl Default for How {
    fn default() -> Self {
        How {
            store: 0,
            mode: ChainMode::Auto,
            keep: 1,
            snapshots: true,
        }
    }
}

impl<'f> Ctx<'f> {
    pub fn new(fx: &'f dyn ChainFixture) -> Self {
        Ctx {
            fx,
            catalog: MemoryCatalog::new(),
            notes: Notes::default(),
            clock: ManualClock::default(),
            dir: tempfile::tempdir().expect("temp dir"),
            volumes: Mutex::new(Vec::new()),
        }
    }

    pub fn engine(&self) -> Engine<'_> {
        let mut engine = Engine::new(
            &self.catalog,
            LockDir::new(self.dir.path().join("locks")),
            DigestDir::new(self.dir.path().join("digests")),
            &self.notes,
        );
        engine.retry = RetryPolicy {
            retries: 1,
            delay: Duration::from_millis(10),
        };
        engine.clock = &self.clock;
        engine
    }

    pub fn store(&self, i: usize) -> &dyn Pool {
        self.fx.stores()[i].0
    }

    /// A new zeroed volume of `size` bytes.
    pub fn volume(&self, tag: &str, size: u64) -> std::result::Result<Vol, String> {
        let name = self.fx.unique(tag);
        let pool = self.fx.volumes();
        pool.create(&name, size).map_err(|e| e.to_string())?;
        self.volumes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(name.clone());
        let head = pool.open(&name).map_err(|e| e.to_string())?;
        Ok(Vol {
            label: self.fx.volume_label(&name),
            name,
            head,
            mirror: vec![0; size as usize],
        })
    }

    pub fn backup(&self, vol: &Vol) -> EngineResult<BackupRecord> {
        self.backup_with(vol.head.as_ref(), vol, How::default())
    }

    /// Backs up `source` (the volume's HEAD, or a wrapper around it).
    pub fn backup_with(
        &self,
        source: &dyn Image,
        vol: &Vol,
        how: How,
    ) -> EngineResult<BackupRecord> {
        let [first, second] = self.fx.stores();
        let (store, store_label) = if how.store == 0 { first } else { second };
        self.backup_into(source, vol, how, store, store_label)
    }

    /// [`Self::backup_with`] into `store` (a wrapper around one of the
    /// fixture's), recorded as `store_label`.
    pub fn backup_into(
        &self,
        source: &dyn Image,
        vol: &Vol,
        how: How,
        store: &dyn Pool,
        store_label: String,
    ) -> EngineResult<BackupRecord> {
        self.engine().backup(&BackupRequest {
            source,
            snapshot_source: how.snapshots,
            source_label: vol.label.clone(),
            volume_name: vol.name.clone(),
            store,
            store_label,
            metadata: [("user.owner".to_string(), "chain-suite".to_string())].into(),
            mode: how.mode,
            keep_source_snapshots: how.keep,
            id: None,
            volume_id: None,
            volume_metadata: None,
        })
    }

    pub fn open_backup(&self, b: &BackupRecord) -> EngineResult<Box<dyn Image>> {
        Ok(self
            .store(self.store_index(b))
            .open_read_only(&b.image, Some(&b.snapshot))?)
    }

    fn store_index(&self, b: &BackupRecord) -> usize {
        let stores = self.fx.stores();
        stores.iter().position(|s| s.1 == b.store).unwrap_or(0)
    }

    /// Restores `b` into a new image of the volume pool; returns the report
    /// and the restored image.
    pub fn restore_new(&self, b: &BackupRecord) -> EngineResult<(RestoreReport, Vol)> {
        let vol = self
            .volume("restored", b.size)
            .map_err(crate::engine::EngineError::Invalid)?;
        let report = self.restore_onto(b, &vol, false)?;
        Ok((report, vol))
    }

    /// Restores `b` onto the existing `vol`.
    pub fn restore_onto(
        &self,
        b: &BackupRecord,
        vol: &Vol,
        is_new: bool,
    ) -> EngineResult<RestoreReport> {
        let source = self.open_backup(b)?;
        let target = RestoreTarget {
            image: vol.head.as_ref(),
            label: vol.label.clone(),
            is_new,
        };
        self.engine().restore_into(b, source.as_ref(), &target)
    }

    pub fn delete(&self, b: &BackupRecord, vol: &Vol) -> EngineResult<()> {
        let current = self.catalog.backup(b.id)?;
        self.engine().delete(
            &current,
            self.store(self.store_index(b)),
            Some(vol.snapshots()),
        )
    }

    /// Whether image `name` exists in store `i`.
    pub fn base_exists(&self, i: usize, name: &str) -> bool {
        self.store(i).exists(name).unwrap_or(false)
    }

    /// Backup snapshot names on base `name` of store `i`.
    pub fn base_snaps(&self, i: usize, name: &str) -> Vec<String> {
        match self.store(i).open_read_only(name, None) {
            Ok(img) => backup_snaps(img.as_ref()),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for Ctx<'_> {
    fn drop(&mut self) {
        let volumes = self.catalog.list_volumes().unwrap_or_default();
        for (store, _) in self.fx.stores() {
            for image in store.list().unwrap_or_default() {
                if volumes
                    .iter()
                    .any(|v| image.starts_with(&format!("volume-{}.", v.id)))
                {
                    purge(store, &image);
                }
            }
        }
        for name in self
            .volumes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            purge(self.fx.volumes(), name);
        }
    }
}

/// Removes an image and all its snapshots, best effort.
pub(super) fn purge(pool: &dyn Pool, name: &str) {
    if let Ok(img) = pool.open(name) {
        if let Some(snaps) = img.snapshots() {
            for s in snaps.list().unwrap_or_default() {
                let _ = snaps.remove(&s.name);
            }
        }
    }
    let _ = pool.remove(name);
}
