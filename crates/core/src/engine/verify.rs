//! `verify BACKUP`: re-reads the backup's snapshot (every chunk read is
//! checked by the store) and compares the volume checksum with the catalog.

use super::copy::{copy, CopyOptions};
use super::error::EngineResult;
use super::restore::{check_checksum, require_available};
use super::{Engine, NullImage, TransferPlan};
use crate::catalog::BackupRecord;
use crate::image::Pool;
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
}
