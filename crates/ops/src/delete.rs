//! `backup delete` as a typed request.

use crate::error::{invalid, OpsResult};
use crate::location::StoreLocation;
use crate::volume::Volume;
use crate::Ops;
use blockback_core::catalog::BackupRecord;
use blockback_core::image::Image;
use std::time::Duration;

/// A delete of backup `backup` (id or unique prefix).
#[derive(Debug, Clone)]
pub struct DeleteOptions {
    pub backup: String,
    /// Pause between retries while the backup's base image is busy.
    pub retry_delay: Duration,
}

/// What a delete did.
#[derive(Debug, Clone)]
pub struct Deleted {
    pub record: BackupRecord,
    /// The backup was in a local store: `gc` reclaims its space.
    pub local_store: bool,
}

const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);

impl Ops<'_> {
    /// Deletes a backup from its store and the catalog. A store that is
    /// gone (its pool removed, its directory deleted) is a note, and the
    /// catalog entry goes.
    pub fn delete(&self, options: &DeleteOptions) -> OpsResult<Deleted> {
        if options.retry_delay > MAX_RETRY_DELAY {
            return invalid(format!(
                "retry delay {:?}: give at most {} seconds",
                options.retry_delay,
                MAX_RETRY_DELAY.as_secs()
            ));
        }
        let record = self.backup_record(&options.backup)?;
        let mut engine = self.engine();
        engine.retry.delay = options.retry_delay;
        let deleted = Deleted {
            local_store: matches!(
                StoreLocation::parse(&record.store),
                Ok(StoreLocation::Local(_))
            ),
            record: record.clone(),
        };
        let store = match self.store_of(&record) {
            Ok(store) => store,
            Err(e) if e.is_not_found() => {
                engine.forget(&record, &e.to_string())?;
                return Ok(deleted);
            }
            Err(e) => return Err(e),
        };
        let source = self.open_source_head(&record);
        let snaps = source.as_ref().and_then(|s| s.snapshots());
        engine.delete(&record, store.pool(), snaps)?;
        Ok(deleted)
    }

    /// The backup's source volume, to remove its backup snapshot; `None`
    /// (with a note) when it has no snapshots or cannot be opened.
    pub fn open_source_head(&self, record: &BackupRecord) -> Option<Box<dyn Image>> {
        let opened = Volume::from_label(&record.source).and_then(|v| {
            v.open_head(
                &self.settings.volume_ceph,
                self.connections,
                &self.settings.volume_keys(),
            )
        });
        match opened {
            Ok(head) => head,
            Err(e) if e.is_not_found() => None,
            Err(e) => {
                self.progress.note(&format!(
                    "cannot open source {} to remove snapshot {}: {e}",
                    record.source, record.snapshot
                ));
                None
            }
        }
    }
}
