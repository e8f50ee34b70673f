//! `backup restore`: the whole life cycle of a restore, owned here so that
//! every front end (CLI, service) gets the same rules:
//!
//! - only an available backup is restored (one being restored by another
//!   process is too; an errored one never is);
//! - the backup lock is held shared for the whole restore, so several
//!   restores of one backup run at once, its delete waits for none of them
//!   but is refused, and recovery never takes a live restore for a dead one;
//! - a target that is a volume the catalog knows is locked like a backup
//!   of it, so a backup of that volume never reads a half-restored volume;
//! - the target is created when the request says so (new file, new pool
//!   image) and removed again if the restore fails;
//! - the data is the backup's snapshot of its base, copied into the target
//!   and checked against the recorded volume checksum on the way, then the
//!   backup's user metadata is set on targets that keep metadata.

use super::copy::{CopyOptions, CopyStats};
use super::error::{EngineError, EngineResult};
use super::lock::{HeldLock, LockMode};
use super::plan::any_extent;
use super::{unix_now, Engine, TransferPlan};
use crate::catalog::{BackupRecord, BackupStatus};
use crate::image::file::FileImage;
use crate::image::{ExtentKind, Image, Pool};
use crate::metadata::{
    apply_volume_metadata, read_backup_metadata, AppliedMetadata, BackupMetadata,
};
use crate::progress::timed;
use std::path::{Path, PathBuf};

/// Largest single zeroing request (librbd takes an `int` length).
const MAX_ZERO_PIECE: u64 = (1 << 31) - 1;

/// Where a restore writes, and whether it creates the target.
pub enum RestoreTo<'t> {
    /// A new sparse file of the backup's size; refused when the path exists.
    NewFile(&'t Path),
    /// An existing file or block device, at least the backup's size.
    ExistingFile(&'t Path),
    /// A new image `name` of `pool`; refused when the pool has one.
    NewImage {
        pool: &'t dyn Pool,
        name: &'t str,
        /// The image as a volume label (`rbd:POOL/IMAGE`, `local:DIR/IMAGE`).
        label: String,
    },
    /// An existing image of `pool`, at least the backup's size.
    ExistingImage {
        pool: &'t dyn Pool,
        name: &'t str,
        label: String,
    },
}

impl RestoreTo<'_> {
    /// The target as a volume label, comparable with catalog sources.
    pub fn label(&self) -> String {
        match self {
            RestoreTo::NewFile(p) | RestoreTo::ExistingFile(p) => file_label(p),
            RestoreTo::NewImage { label, .. } | RestoreTo::ExistingImage { label, .. } => {
                label.clone()
            }
        }
    }

    fn is_new(&self) -> bool {
        matches!(self, RestoreTo::NewFile(_) | RestoreTo::NewImage { .. })
    }
}

/// A restore: which backup, from which store, into what.
pub struct RestoreRequest<'r> {
    pub backup: &'r BackupRecord,
    /// The store holding the backup.
    pub store: &'r dyn Pool,
    pub to: RestoreTo<'r>,
}

/// What a restore did, with the backup's metadata and what became of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Restored {
    /// The backup restored.
    pub backup: uuid::Uuid,
    pub report: RestoreReport,
    /// The backup's metadata object; `None` when it has none (or it could
    /// not be read: a note says why).
    pub metadata: Option<BackupMetadata>,
    pub applied: AppliedMetadata,
}

/// Where a restore writes (the data step; [`RestoreRequest`] names it).
pub struct RestoreTarget<'t> {
    pub image: &'t dyn Image,
    /// The target as a volume label (compared with the backup's source).
    pub label: String,
    /// Created by this restore: reads as zeros everywhere.
    pub is_new: bool,
}

/// What decides between a differential and a full restore.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RestoreFacts {
    pub base_exists: bool,
    /// The backup has its snapshot on the base.
    pub has_restore_point: bool,
    pub target_has_snapshots: bool,
    /// The target is the volume the backup was taken from.
    pub same_volume: bool,
    pub target_has_extents: bool,
}

/// The reference driver's rule: differential only when all of these hold.
pub fn differential_restore_allowed(f: &RestoreFacts) -> bool {
    f.base_exists
        && f.has_restore_point
        && f.target_has_snapshots
        && !f.same_volume
        && !f.target_has_extents
}

/// What a restore did.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreReport {
    pub target: String,
    pub created: bool,
    /// Only the restore point's allocated extents were written.
    pub differential: bool,
    pub bytes_read: u64,
    pub bytes_written: u64,
    /// Bytes beyond the backup's size that were zeroed on a larger target.
    pub excess_zeroed: u64,
    pub checksum: Option<String>,
}

/// A restore in progress: the backup's record as it was when it began and
/// the shared backup lock that marks the restore as alive.
pub(super) struct Restoring {
    pub(super) backup: BackupRecord,
    /// `None` with a read-only catalog: no process can change the record,
    /// and the lock directory beside it cannot be written.
    lock: Option<HeldLock>,
}

/// A backup held open for reading (see [`Engine::hold_backup`]).
pub struct BackupHold(Restoring);

impl BackupHold {
    /// The backup's record as it was when the hold began.
    pub fn backup(&self) -> &BackupRecord {
        &self.0.backup
    }
}

/// An opened target, and whether this restore created it.
struct OpenedTarget {
    image: Box<dyn Image>,
    created: bool,
}

impl Engine<'_> {
    /// Runs the restore `req` names, from the availability check to the
    /// metadata; a target it created is removed if anything fails.
    pub fn restore(&self, req: &RestoreRequest<'_>) -> EngineResult<Restored> {
        let restoring = self.begin_restore(req.backup)?;
        let result = self.restore_locked(&restoring.backup, req);
        finish(result, self.end_restore(restoring))
    }

    fn restore_locked(
        &self,
        backup: &BackupRecord,
        req: &RestoreRequest<'_>,
    ) -> EngineResult<Restored> {
        let label = req.to.label();
        let _target_lock = self.lock_target_volume(&label, &backup.store)?;
        let source = req
            .store
            .open_read_only(&backup.image, backup.restore_point())?;
        let metadata = self.read_metadata(req.store, backup);
        // Before the target exists: a new RBD image is made for the data
        // it is about to get (see Pool::create_to_fill).
        let plan = timed(self.progress, "diff", || {
            TransferPlan::full(source.as_ref())
        })?;
        let target = open_target(&req.to, backup.size, plan.data_bytes())?;
        let opened = Opened {
            source: source.as_ref(),
            plan,
        };
        let result = self.restore_opened(backup, opened, &target, label, &metadata);
        if result.is_err() && target.created {
            drop(target);
            remove_target(&req.to);
        }
        let (report, applied) = result?;
        Ok(Restored {
            backup: backup.id,
            report,
            metadata,
            applied,
        })
    }

    fn restore_opened(
        &self,
        backup: &BackupRecord,
        source: Opened<'_>,
        target: &OpenedTarget,
        label: String,
        metadata: &Option<BackupMetadata>,
    ) -> EngineResult<(RestoreReport, AppliedMetadata)> {
        let into = RestoreTarget {
            image: target.image.as_ref(),
            label,
            is_new: target.created,
        };
        let report = self.restore_data(backup, source, &into)?;
        let applied = match metadata {
            Some(m) => apply_volume_metadata(into.image, m).map_err(|e| {
                EngineError::Invalid(format!(
                    "backup {} was restored to {}, but its metadata could not be set: {e}",
                    backup.id, report.target
                ))
            })?,
            None => AppliedMetadata::default(),
        };
        Ok((report, applied))
    }

    /// The backup's metadata object; a missing or unreadable one must not
    /// keep the data from being restored, so problems are notes.
    pub(super) fn read_metadata(
        &self,
        store: &dyn Pool,
        backup: &BackupRecord,
    ) -> Option<BackupMetadata> {
        match read_backup_metadata(store, &backup.id.to_string()) {
            Ok(m) => m,
            Err(e) => {
                self.progress.note(&e.to_string());
                None
            }
        }
    }

    /// The volume lock of the target when the catalog knows it as a
    /// volume: no backup of it reads a half-restored volume, and no two
    /// restores write it at once.
    pub(super) fn lock_target_volume(
        &self,
        label: &str,
        store: &str,
    ) -> EngineResult<Option<HeldLock>> {
        if self.catalog.is_read_only() {
            return Ok(None);
        }
        let Some(volume) = self.catalog.volume_by_source(label)? else {
            return Ok(None);
        };
        let id = volume.id.to_string();
        match self.locks.try_lock_volume(&id, store)? {
            Some(lock) => Ok(Some(lock)),
            None => Err(self.locks.volume_busy(&id, store, label)),
        }
    }

    /// Restores `backup` (read from `source`, its base at its snapshot)
    /// onto `target`, an image the caller opened; see [`Self::restore`]
    /// for the whole operation. Checks and locks as it does.
    pub fn restore_into(
        &self,
        backup: &BackupRecord,
        source: &dyn Image,
        target: &RestoreTarget<'_>,
    ) -> EngineResult<RestoreReport> {
        let restoring = self.begin_restore(backup)?;
        let result = timed(self.progress, "diff", || TransferPlan::full(source))
            .map_err(EngineError::from)
            .and_then(|plan| {
                let opened = Opened { source, plan };
                self.restore_data(&restoring.backup, opened, target)
            });
        finish(result, self.end_restore(restoring))
    }

    /// Takes the backup lock shared, then checks (on the record as it is
    /// now, under the lock) that the backup can be restored and marks it
    /// restoring.
    pub(super) fn begin_restore(&self, backup: &BackupRecord) -> EngineResult<Restoring> {
        self.take_backup(backup, true)
    }

    /// Holds a backup for reading outside a restore (an NBD export): the
    /// same checks and shared lock as a restore, so it cannot be deleted
    /// while served, but its status stays as it is.
    pub fn hold_backup(&self, backup: &BackupRecord) -> EngineResult<BackupHold> {
        self.take_backup(backup, false).map(BackupHold)
    }

    /// Ends a [`Self::hold_backup`]; the last reader out marks a backup
    /// left `restoring` by a restore that ended meanwhile available.
    pub fn release_backup(&self, hold: BackupHold) -> EngineResult<()> {
        self.end_restore(hold.0)
    }

    fn take_backup(&self, backup: &BackupRecord, mark: bool) -> EngineResult<Restoring> {
        if self.catalog.is_read_only() {
            let current = self.catalog.backup(backup.id)?;
            require_available(&current, "restored")?;
            return Ok(Restoring {
                backup: current,
                lock: None,
            });
        }
        let id = backup.id.to_string();
        let lock = self
            .locks
            .try_lock_backup(&id, &backup.store, LockMode::Shared)?
            .ok_or_else(|| EngineError::BackupBusy {
                id: id.clone(),
                doing: "being deleted",
            })?;
        let mut current = self.catalog.backup(backup.id)?;
        if current.status != BackupStatus::Restoring {
            require_available(&current, "restored")?;
        }
        if !mark {
            return Ok(Restoring {
                backup: current,
                lock: Some(lock),
            });
        }
        current.status = BackupStatus::Restoring;
        current.pid = Some(std::process::id());
        current.updated_at = unix_now();
        self.catalog.update_backup(&current)?;
        Ok(Restoring {
            backup: current,
            lock: Some(lock),
        })
    }

    /// Releases the shared lock; the last restore out (the one that can
    /// then take the lock alone) marks the backup available again.
    pub(super) fn end_restore(&self, restoring: Restoring) -> EngineResult<()> {
        let id = restoring.backup.id;
        if restoring.lock.is_none() {
            return Ok(());
        }
        drop(restoring.lock);
        let Some(_alone) = self.locks.try_lock_backup(
            &id.to_string(),
            &restoring.backup.store,
            LockMode::Exclusive,
        )?
        else {
            return Ok(());
        };
        let mut current = self.catalog.backup(id)?;
        if current.status == BackupStatus::Restoring {
            current.status = BackupStatus::Available;
            current.pid = None;
            current.updated_at = unix_now();
            self.catalog.update_backup(&current)?;
        }
        Ok(())
    }

    /// The data step: differential (only the restore point's allocated
    /// extents written) when the target is new, or has snapshots, is not
    /// the backup's own source volume and holds no data; otherwise full,
    /// rewriting only what differs. A failed differential restore falls
    /// back to a full one.
    fn restore_data(
        &self,
        backup: &BackupRecord,
        source: Opened<'_>,
        target: &RestoreTarget<'_>,
    ) -> EngineResult<RestoreReport> {
        let image = target.image;
        let target_size = image.size()?;
        if target_size < backup.size {
            return Err(EngineError::TargetTooSmall {
                target: image.describe(),
                target_size,
                backup: backup.id.to_string(),
                backup_size: backup.size,
            });
        }
        let mut differential = target.is_new || self.differential_allowed(backup, target)?;
        let mut result = self.copy_backup(backup, &source, image, differential);
        if differential && !target.is_new && !self.progress.is_cancelled() {
            if let Err(e) = &result {
                self.progress.note(&format!(
                    "differential restore failed ({e}); falling back to a full restore"
                ));
                differential = false;
                result = self.copy_backup(backup, &source, image, false);
            }
        }
        let stats = result?;
        let excess_zeroed = zero_excess(image, backup.size, target_size)?;
        image.flush()?;
        check_checksum(backup, stats.checksum.as_deref())?;
        Ok(RestoreReport {
            target: image.describe(),
            created: target.is_new,
            differential,
            bytes_read: stats.bytes_read,
            bytes_written: stats.bytes_written,
            excess_zeroed,
            checksum: stats.checksum,
        })
    }

    fn differential_allowed(
        &self,
        backup: &BackupRecord,
        target: &RestoreTarget<'_>,
    ) -> EngineResult<bool> {
        let has_snapshots = target.image.snapshots().is_some();
        let facts = RestoreFacts {
            base_exists: true,
            has_restore_point: !backup.snapshot.is_empty(),
            target_has_snapshots: has_snapshots,
            same_volume: target.label == backup.source,
            target_has_extents: has_snapshots
                && target.label != backup.source
                && any_extent(target.image, None, |e| e.kind == ExtentKind::Data)?,
        };
        Ok(differential_restore_allowed(&facts))
    }

    fn copy_backup(
        &self,
        backup: &BackupRecord,
        source: &Opened<'_>,
        target: &dyn Image,
        target_is_zero: bool,
    ) -> EngineResult<CopyStats> {
        let Opened { source, plan } = source;
        if plan.size != backup.size {
            return Err(EngineError::Invalid(format!(
                "backup {} records {} bytes but its snapshot {} holds {}",
                backup.id, backup.size, backup.snapshot, plan.size
            )));
        }
        let opts = CopyOptions {
            target_is_zero,
            compare_target: !target_is_zero,
            ..self.copy
        };
        self.run_copy("restore", *source, target, plan, opts)
    }
}

/// The operation's error first; a failure to end the restore only when
/// the operation itself succeeded.
fn finish<T>(result: EngineResult<T>, ended: EngineResult<()>) -> EngineResult<T> {
    match (result, ended) {
        (Ok(value), Ok(())) => Ok(value),
        (Ok(_), Err(e)) | (Err(e), _) => Err(e),
    }
}

/// The restore point, opened, and what it holds.
struct Opened<'a> {
    source: &'a dyn Image,
    plan: TransferPlan,
}

/// Creates or opens the target as the request says (`data_bytes`: what
/// the restore writes into a new one).
fn open_target(to: &RestoreTo<'_>, size: u64, data_bytes: u64) -> EngineResult<OpenedTarget> {
    let (image, created): (Box<dyn Image>, bool) = match to {
        RestoreTo::NewFile(path) => (Box::new(FileImage::create(path, size)?), true),
        RestoreTo::ExistingFile(path) => {
            if path.is_dir() {
                return Err(EngineError::Invalid(format!(
                    "restore target {} is a directory; give a file or block device path",
                    path.display()
                )));
            }
            (Box::new(FileImage::open(path, true)?), false)
        }
        RestoreTo::NewImage { pool, name, .. } => {
            (pool.create_to_fill(name, size, data_bytes)?, true)
        }
        RestoreTo::ExistingImage { pool, name, .. } => (pool.open(name)?, false),
    };
    debug_assert_eq!(created, to.is_new());
    Ok(OpenedTarget { image, created })
}

/// Removes a target this restore created (best effort: the restore's own
/// error is what the caller reports).
fn remove_target(to: &RestoreTo<'_>) {
    let removed = match to {
        RestoreTo::NewFile(path) => std::fs::remove_file(path).map_err(|e| e.to_string()),
        RestoreTo::NewImage { pool, name, .. } => pool.remove(name).map_err(|e| e.to_string()),
        _ => Ok(()),
    };
    if let Err(e) = removed {
        tracing::warn!(
            "could not remove the partial restore target {}: {e}",
            to.label()
        );
    }
}

/// A file target as a volume label: resolved like a backup source's path.
fn file_label(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| PathBuf::from(path))
        .display()
        .to_string()
}

pub(super) fn require_available(backup: &BackupRecord, action: &'static str) -> EngineResult<()> {
    if backup.status == BackupStatus::Available {
        return Ok(());
    }
    Err(EngineError::NotAvailable {
        id: backup.id.to_string(),
        status: backup.status.to_string(),
        action,
    })
}

pub(super) fn check_checksum(backup: &BackupRecord, actual: Option<&str>) -> EngineResult<()> {
    match (backup.checksum.as_deref(), actual) {
        (Some(expected), Some(actual)) if expected != actual => {
            Err(EngineError::ChecksumMismatch {
                id: backup.id.to_string(),
                expected: expected.to_string(),
                actual: actual.to_string(),
            })
        }
        _ => Ok(()),
    }
}

/// Zeroes `target` beyond `backup_size`, in pieces every backend accepts.
fn zero_excess(target: &dyn Image, backup_size: u64, target_size: u64) -> EngineResult<u64> {
    let mut offset = backup_size;
    while offset < target_size {
        let len = (target_size - offset).min(MAX_ZERO_PIECE);
        target.write_zeroes(offset, len)?;
        offset += len;
    }
    Ok(target_size - backup_size)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALLOWED: RestoreFacts = RestoreFacts {
        base_exists: true,
        has_restore_point: true,
        target_has_snapshots: true,
        same_volume: false,
        target_has_extents: false,
    };

    #[test]
    fn differential_restore_needs_every_condition() {
        assert!(differential_restore_allowed(&ALLOWED));
        let no_base = RestoreFacts {
            base_exists: false,
            ..ALLOWED
        };
        let no_point = RestoreFacts {
            has_restore_point: false,
            ..ALLOWED
        };
        let not_rbd = RestoreFacts {
            target_has_snapshots: false,
            ..ALLOWED
        };
        let same = RestoreFacts {
            same_volume: true,
            ..ALLOWED
        };
        let extents = RestoreFacts {
            target_has_extents: true,
            ..ALLOWED
        };
        for facts in [no_base, no_point, not_rbd, same, extents] {
            assert!(!differential_restore_allowed(&facts), "{facts:?}");
        }
    }

    #[test]
    fn excess_is_zeroed_in_pieces_below_two_gib() {
        use crate::engine::NullImage;
        struct Pieces(std::sync::Mutex<Vec<u64>>, NullImage);
        impl Image for Pieces {
            fn describe(&self) -> String {
                "pieces".into()
            }
            fn size(&self) -> crate::image::Result<u64> {
                self.1.size()
            }
            fn read_at(&self, o: u64, b: &mut [u8]) -> crate::image::Result<()> {
                self.1.read_at(o, b)
            }
            fn changed_extents(
                &self,
                f: Option<&str>,
                r: std::ops::Range<u64>,
                v: &mut crate::image::ExtentVisitor<'_>,
            ) -> crate::image::Result<()> {
                self.1.changed_extents(f, r, v)
            }
            fn write_at(&self, o: u64, d: &[u8]) -> crate::image::Result<()> {
                self.1.write_at(o, d)
            }
            fn write_zeroes(&self, _: u64, len: u64) -> crate::image::Result<()> {
                self.0.lock().unwrap().push(len);
                Ok(())
            }
            fn flush(&self) -> crate::image::Result<()> {
                Ok(())
            }
            fn resize(&self, _: u64) -> crate::image::Result<()> {
                Ok(())
            }
            fn snapshots(&self) -> Option<&dyn crate::image::Snapshots> {
                None
            }
        }
        let target = Pieces(Default::default(), NullImage { size: 5 << 30 });
        assert_eq!(
            zero_excess(&target, 1 << 20, 5 << 30).unwrap(),
            (5 << 30) - (1 << 20)
        );
        let pieces = target.0.lock().unwrap();
        assert!(pieces.iter().all(|&p| p < (1 << 31)));
        assert_eq!(pieces.iter().sum::<u64>(), (5 << 30) - (1 << 20));
    }
}
