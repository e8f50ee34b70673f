//! `verify BACKUP`: re-reads the backup's snapshot (every chunk read is
//! checked by the store) and compares its size and volume checksum with
//! the catalog. `repair`: writes a backup's source into a store's repair
//! target, which stores again what the store lost.

use super::copy::{copy, CopyOptions};
use super::error::{EngineError, EngineResult};
use super::restore::{check_checksum, require_available};
use super::{Engine, NullImage, TransferPlan};
use crate::catalog::BackupRecord;
use crate::image::{Image, Pool};
use crate::progress::timed;
use serde::Serialize;

/// The result of verifying one backup.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VerifyOutcome {
    pub backup: String,
    pub bytes_read: u64,
    pub checksum: Option<String>,
}

impl Engine<'_> {
    pub fn verify(&self, backup: &BackupRecord, store: &dyn Pool) -> EngineResult<VerifyOutcome> {
        require_available(backup, "verified")?;
        let source = store.open_read_only(&backup.image, backup.restore_point())?;
        let stored = source.size()?;
        if stored != backup.size {
            return Err(EngineError::Invalid(format!(
                "backup {}: the catalog records {} bytes but its snapshot {} has {stored}; \
                 the catalog does not match the store",
                backup.id,
                backup.size,
                source.describe()
            )));
        }
        let plan = timed(self.progress, "diff", || {
            TransferPlan::full(source.as_ref())
        })?;
        let sink = NullImage { size: plan.size };
        let opts = CopyOptions {
            target_is_zero: true,
            compare_target: false,
            ..self.copy
        };
        self.progress.begin("verify", plan.size);
        let stats = copy(source.as_ref(), &sink, &plan, opts, self.progress);
        self.progress.end();
        let stats = stats?;
        check_checksum(backup, stats.checksum.as_deref())?;
        Ok(VerifyOutcome {
            backup: backup.id.to_string(),
            bytes_read: stats.bytes_read,
            checksum: stats.checksum,
        })
    }

    /// Copies `source`, the backup's volume, whole into `target`, a store's
    /// repair target (`LocalStore::repair_target`), and flushes it: every
    /// chunk of the source that the store lacks or holds only damaged is
    /// stored again. The source must have the backup's size; whether it
    /// still holds the backed-up data shows when the backup is verified
    /// again.
    pub fn repair_from_source(
        &self,
        backup: &BackupRecord,
        source: &dyn Image,
        target: &dyn Image,
    ) -> EngineResult<()> {
        let size = source.size()?;
        if size != backup.size {
            return Err(EngineError::Invalid(format!(
                "{} has {size} bytes, backup {} has {}: not the backed-up data",
                source.describe(),
                backup.id,
                backup.size
            )));
        }
        let plan = timed(self.progress, "diff", || TransferPlan::full(source))?;
        let opts = CopyOptions {
            target_is_zero: true,
            compare_target: false,
            ..self.copy
        };
        self.run_copy("repair", source, target, &plan, opts)?;
        target.flush()?;
        Ok(())
    }
}
