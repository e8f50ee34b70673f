//! `backup restore`: the backup's snapshot of its base, copied into a new
//! sparse file or onto an existing image, checked against the recorded
//! volume checksum on the way.

use super::copy::{CopyOptions, CopyStats};
use super::error::{EngineError, EngineResult};
use super::plan::any_extent;
use super::{unix_now, Engine, TransferPlan};
use crate::catalog::{BackupRecord, BackupStatus};
use crate::image::file::FileImage;
use crate::image::{ExtentKind, Image, Pool};
use crate::progress::timed;
use std::path::Path;

/// Largest single zeroing request (librbd takes an `int` length).
const MAX_ZERO_PIECE: u64 = (1 << 31) - 1;

/// Where a restore writes.
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

impl Engine<'_> {
    /// Restores `backup` into the file or block device at `path`: a new
    /// sparse file when nothing is there, otherwise the existing one
    /// (refused when smaller than the backup).
    pub fn restore_to_path(
        &self,
        backup: &BackupRecord,
        store: &dyn Pool,
        path: &Path,
    ) -> EngineResult<RestoreReport> {
        require_available(backup, "restored")?;
        let source = store.open_read_only(&backup.image, backup.restore_point())?;
        if path.is_dir() {
            return Err(EngineError::Invalid(format!(
                "restore target {} is a directory; give a file or block device path",
                path.display()
            )));
        }
        if path.exists() {
            let target = FileImage::open(path, true)?;
            let target = RestoreTarget {
                image: &target,
                label: path.display().to_string(),
                is_new: false,
            };
            return self.restore_into(backup, source.as_ref(), &target);
        }
        let image = FileImage::create(path, backup.size)?;
        let target = RestoreTarget {
            image: &image,
            label: path.display().to_string(),
            is_new: true,
        };
        let result = self.restore_into(backup, source.as_ref(), &target);
        if result.is_err() {
            drop(image);
            let _ = std::fs::remove_file(path);
        }
        result
    }

    /// Restores `backup` (read from `source`, its base at its snapshot) onto
    /// `target`. `target_is_new`: this restore created it (all zeros).
    ///
    /// Differential (only the restore point's allocated extents written)
    /// when the target has snapshots, is not the backup's own source volume
    /// and holds no data; otherwise full, rewriting only what differs. A
    /// failed differential restore falls back to a full one.
    pub fn restore_into(
        &self,
        backup: &BackupRecord,
        source: &dyn Image,
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
        self.set_status(backup, BackupStatus::Restoring)?;
        let mut result = self.copy_backup(backup, source, image, differential);
        if differential && !target.is_new && !self.progress.is_cancelled() {
            if let Err(e) = &result {
                self.progress.note(&format!(
                    "differential restore failed ({e}); falling back to a full restore"
                ));
                differential = false;
                result = self.copy_backup(backup, source, image, false);
            }
        }
        self.set_status(backup, BackupStatus::Available)?;
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
        source: &dyn Image,
        target: &dyn Image,
        target_is_zero: bool,
    ) -> EngineResult<CopyStats> {
        let plan = timed(self.progress, "diff", || TransferPlan::full(source))?;
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
        self.run_copy("restore", source, target, &plan, opts)
    }

    fn set_status(&self, backup: &BackupRecord, status: BackupStatus) -> EngineResult<()> {
        if self.catalog.is_read_only() {
            return Ok(()); // nothing to mark: a read-only catalog cannot be repaired either
        }
        let mut current = self.catalog.backup(backup.id)?;
        current.status = status;
        current.pid = (status != BackupStatus::Available).then(std::process::id);
        current.updated_at = unix_now();
        self.catalog.update_backup(&current)?;
        Ok(())
    }
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
