//! `backup delete`: removes the backup's snapshot from its chain's base, and
//! the base once no backup snapshots remain; then the backup's snapshot on
//! its source volume (no backup needs it any more) and its block digests
//! (here and in the store).
//! Only the backup's own recorded base is ever touched: never a fallback
//! name that may belong to another backup. Any backup of a chain can go,
//! in any order: each one is just a snapshot of the base.

use super::error::{EngineError, EngineResult};
use super::lock::LockMode;
use super::{unix_now, Engine};
use crate::catalog::{BackupRecord, BackupStatus};
use crate::image::{ImageError, Pool, Snapshots};
use crate::metadata::remove_backup_metadata;
use crate::naming::parse_backup_snap;
use std::time::Duration;

/// How often, and how far apart, busy images are retried.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub retries: u32,
    pub delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retries: 3,
            delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// Runs `op`, retrying with a real delay while it reports busy.
    pub fn run<T>(&self, mut op: impl FnMut() -> Result<T, ImageError>) -> Result<T, ImageError> {
        let mut attempt = 0;
        loop {
            match op() {
                Err(e) if e.is_busy() && attempt < self.retries => {
                    attempt += 1;
                    tracing::warn!("{e}; retry {attempt}/{} in {:?}", self.retries, self.delay);
                    std::thread::sleep(self.delay);
                }
                other => return other,
            }
        }
    }
}

impl Engine<'_> {
    /// Deletes `backup` from `store` and the catalog. A missing base or
    /// pool is reported as a note; the catalog entry goes anyway.
    /// `source_snaps`: the snapshots of the backup's source volume, when it
    /// has them and could be opened.
    pub fn delete(
        &self,
        backup: &BackupRecord,
        store: &dyn Pool,
        source_snaps: Option<&dyn Snapshots>,
    ) -> EngineResult<()> {
        self.refuse_protected(backup)?;
        let volume = backup.volume_id.to_string();
        let _lock = self
            .locks
            .try_lock_volume(&volume, &backup.store)?
            .ok_or_else(|| {
                self.locks
                    .volume_busy(&volume, &backup.store, &backup.source)
            })?;
        let _restores_done = self
            .locks
            .try_lock_backup(&backup.id.to_string(), &backup.store, LockMode::Exclusive)?
            .ok_or_else(|| EngineError::BackupBusy {
                id: backup.id.to_string(),
                doing: "being restored",
            })?;
        let mut record = self.catalog.backup(backup.id)?;
        record.status = BackupStatus::Deleting;
        record.pid = Some(std::process::id());
        record.updated_at = unix_now();
        self.catalog.update_backup(&record)?;
        match self.remove_from_store(&record, store) {
            Err(EngineError::Image(e)) if e.is_not_found() => {
                self.progress
                    .note(&format!("{e}; removing the catalog entry anyway"));
            }
            Err(e) => {
                record.status = BackupStatus::Error;
                record.error = Some(format!("delete failed: {e}"));
                record.pid = None;
                self.catalog.update_backup(&record)?;
                return Err(e);
            }
            Ok(()) => {}
        }
        if let Err(e) = remove_backup_metadata(store, &record.id.to_string()) {
            self.progress
                .note(&format!("metadata of backup {} left: {e}", record.id));
        }
        self.remove_source_snapshot(&record, source_snaps);
        self.digests.remove(record.id)?;
        let digests = super::digest_objects::Holders::Recorded;
        if let Err(e) = self.remove_store_digests(store, &record, digests) {
            self.progress
                .note(&format!("block digests of backup {} left: {e}", record.id));
        }
        self.catalog.remove_backup(record.id)?;
        Ok(())
    }

    /// Forgets a backup whose store is gone (e.g. its pool was removed).
    pub fn forget(&self, backup: &BackupRecord, why: &str) -> EngineResult<()> {
        self.refuse_protected(backup)?;
        self.progress.note(&format!(
            "{why}; removing the catalog entry of backup {} anyway",
            backup.id
        ));
        self.digests.remove(backup.id)?;
        self.catalog.remove_backup(backup.id)?;
        Ok(())
    }

    fn refuse_protected(&self, backup: &BackupRecord) -> EngineResult<()> {
        if self.catalog.protected_backups()?.contains(&backup.id) {
            return Err(EngineError::Protected(backup.id.to_string()));
        }
        Ok(())
    }

    /// The source snapshot of a deleted backup pins space and serves no
    /// backup; problems are notes (the source may be gone or unreachable).
    fn remove_source_snapshot(&self, record: &BackupRecord, snaps: Option<&dyn Snapshots>) {
        let Some(snaps) = snaps else { return };
        let present = snaps
            .list()
            .map(|l| l.iter().any(|s| s.name == record.snapshot));
        let result = match present {
            Ok(true) => self.retry.run(|| snaps.remove(&record.snapshot)),
            Ok(false) => return,
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            self.progress.note(&format!(
                "source snapshot {} of backup {} left in place: {e}",
                record.snapshot, record.id
            ));
        }
    }

    fn remove_from_store(&self, record: &BackupRecord, store: &dyn Pool) -> EngineResult<()> {
        let id = record.id.to_string();
        let base = store.open(&record.image)?;
        let snaps = base
            .snapshots()
            .ok_or_else(|| EngineError::Invalid(format!("{} has no snapshots", base.describe())))?;
        let list = snaps.list()?;
        let own: Vec<_> = list
            .iter()
            .filter(|s| parse_backup_snap(&s.name).is_some_and(|p| p.backup_id == id))
            .collect();
        if own.len() > 1 {
            return Err(EngineError::DuplicateSnapshots {
                id,
                count: own.len(),
                image: record.image.clone(),
            });
        }
        if let Some(snap) = own.first() {
            self.retry.run(|| snaps.remove(&snap.name))?;
        }
        let backups_left = list
            .iter()
            .filter(|s| parse_backup_snap(&s.name).is_some())
            .any(|s| !own.iter().any(|o| o.name == s.name));
        drop(base);
        if !backups_left {
            self.retry.run(|| store.remove(&record.image))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::time::Instant;

    #[test]
    fn busy_is_retried_with_a_real_delay_then_fails() {
        let policy = RetryPolicy {
            retries: 3,
            delay: Duration::from_millis(30),
        };
        let calls = Cell::new(0);
        let start = Instant::now();
        let result: Result<(), _> = policy.run(|| {
            calls.set(calls.get() + 1);
            Err(ImageError::Busy { what: "img".into() })
        });
        assert!(result.unwrap_err().is_busy());
        assert_eq!(calls.get(), 4);
        assert!(start.elapsed() >= Duration::from_millis(90));
    }

    #[test]
    fn other_errors_are_not_retried() {
        let policy = RetryPolicy {
            retries: 3,
            delay: Duration::from_secs(60),
        };
        let calls = Cell::new(0);
        let result: Result<(), _> = policy.run(|| {
            calls.set(calls.get() + 1);
            Err(ImageError::NotFound { what: "img".into() })
        });
        assert!(result.unwrap_err().is_not_found());
        assert_eq!(calls.get(), 1);
    }
}
