//! `backup restore`: the backup's snapshot of its base, copied into a new
//! sparse file or onto an existing image, checked against the recorded
//! volume checksum on the way.

use super::copy::{copy, CopyOptions, CopyStats};
use super::error::{EngineError, EngineResult};
use super::{unix_now, Engine, TransferPlan};
use crate::catalog::{BackupRecord, BackupStatus};
use crate::image::file::FileImage;
use crate::image::{Image, Pool};
use std::path::Path;

/// Largest single zeroing request (librbd takes an `int` length).
const MAX_ZERO_PIECE: u64 = (1 << 31) - 1;

/// What a restore did.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreReport {
    pub target: String,
    pub created: bool,
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
        let source = store.open_read_only(&backup.image, Some(&backup.snapshot))?;
        if path.is_dir() {
            return Err(EngineError::Invalid(format!(
                "restore target {} is a directory; give a file or block device path",
                path.display()
            )));
        }
        if path.exists() {
            let target = FileImage::open(path, true)?;
            return self.restore_into(backup, source.as_ref(), &target, false);
        }
        let target = FileImage::create(path, backup.size)?;
        let result = self.restore_into(backup, source.as_ref(), &target, true);
        if result.is_err() {
            drop(target);
            let _ = std::fs::remove_file(path);
        }
        result
    }

    /// Restores `backup` (read from `source`, its base at its snapshot) onto
    /// `target`. `target_is_new`: the target reads as zeros everywhere.
    pub fn restore_into(
        &self,
        backup: &BackupRecord,
        source: &dyn Image,
        target: &dyn Image,
        target_is_new: bool,
    ) -> EngineResult<RestoreReport> {
        let target_size = target.size()?;
        if target_size < backup.size {
            return Err(EngineError::TargetTooSmall {
                target: target.describe(),
                target_size,
                backup: backup.id.to_string(),
                backup_size: backup.size,
            });
        }
        self.set_status(backup, BackupStatus::Restoring)?;
        let result = self.copy_backup(backup, source, target, target_is_new);
        self.set_status(backup, BackupStatus::Available)?;
        let stats = result?;
        let excess_zeroed = zero_excess(target, backup.size, target_size)?;
        target.flush()?;
        check_checksum(backup, stats.checksum.as_deref())?;
        Ok(RestoreReport {
            target: target.describe(),
            created: target_is_new,
            bytes_read: stats.bytes_read,
            bytes_written: stats.bytes_written,
            excess_zeroed,
            checksum: stats.checksum,
        })
    }

    fn copy_backup(
        &self,
        backup: &BackupRecord,
        source: &dyn Image,
        target: &dyn Image,
        target_is_new: bool,
    ) -> EngineResult<CopyStats> {
        let plan = TransferPlan::full(source)?;
        if plan.size != backup.size {
            return Err(EngineError::Invalid(format!(
                "backup {} records {} bytes but its snapshot {} holds {}",
                backup.id, backup.size, backup.snapshot, plan.size
            )));
        }
        let opts = CopyOptions {
            target_is_zero: target_is_new,
            compare_target: !target_is_new,
            ..self.copy
        };
        self.progress.begin("restore", plan.size);
        let stats = copy(source, target, &plan, opts, self.progress);
        self.progress.end();
        Ok(stats?)
    }

    fn set_status(&self, backup: &BackupRecord, status: BackupStatus) -> EngineResult<()> {
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
