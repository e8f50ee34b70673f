//! Finding operations a dead process left behind.
//!
//! A record in a transient state whose lock can be taken belongs to a
//! process that died: the lock is an flock the kernel released with it.
//! Backups being created or deleted hold their volume lock; restores hold
//! the backup lock (shared, so several restores of one backup run at once
//! and a record in `restoring` is interrupted only when no restore holds it).

use super::backup::{mark_available, stored_growth, undo_partial_backup};
use super::error::{EngineError, EngineResult};
use super::lock::LockMode;
use super::{unix_now, Engine};
use crate::catalog::{BackupRecord, BackupStatus};
use crate::image::Pool;
use uuid::Uuid;

/// What recovery did to one record.
#[derive(Debug, Clone, PartialEq)]
pub struct Recovered {
    pub backup: String,
    pub was: BackupStatus,
    pub now: BackupStatus,
    pub note: String,
}

impl Engine<'_> {
    /// Repairs every interrupted operation. `open_store` opens a record's
    /// store; a store that cannot be opened leaves its records untouched.
    pub fn recover_interrupted(
        &self,
        open_store: &dyn Fn(&str) -> Option<Box<dyn Pool>>,
    ) -> EngineResult<Vec<Recovered>> {
        let mut done = Vec::new();
        if self.catalog.is_read_only() {
            return Ok(done); // left for a run that can write the catalog
        }
        for record in self.catalog.list_backups(None)? {
            if matches!(record.status, BackupStatus::Available | BackupStatus::Error) {
                continue;
            }
            let id = record.id.to_string();
            let lock = match record.status {
                BackupStatus::Restoring => {
                    self.locks
                        .try_lock_backup(&id, &record.store, LockMode::Exclusive)
                }
                _ => self
                    .locks
                    .try_lock_volume(&record.volume_id.to_string(), &record.store),
            };
            // A lock that cannot be asked about (its cluster is down) is
            // treated as held: the record waits for a later run.
            let lock = lock.unwrap_or_else(|e| {
                tracing::warn!("backup {id} left for later: its lock: {e}");
                None
            });
            let Some(_lock) = lock else { continue };
            // Read again under the lock: the operation may have finished
            // (and let go of the lock) since the list was read -- likely
            // when workers on other hosts recover while jobs run.
            let record = match self.catalog.backup(record.id) {
                Ok(now) if now.status == record.status => now,
                _ => continue,
            };
            let Some(store) = open_store(&record.store) else {
                continue;
            };
            done.push(self.recover_one(record, store.as_ref())?);
        }
        Ok(done)
    }

    /// Repairs what dead processes left of `volume`'s backups in the store
    /// `store_label` (`store`), under the volume lock the caller holds: a
    /// backup must not write the chain's base while a dead one's record
    /// says it holds a backup still to be finished there.
    pub(super) fn recover_volume(
        &self,
        volume: Uuid,
        store: &dyn Pool,
        store_label: &str,
    ) -> EngineResult<()> {
        for record in self.catalog.list_backups(Some(volume))? {
            let dead = matches!(
                record.status,
                BackupStatus::Creating | BackupStatus::Deleting
            );
            if dead && record.store == store_label {
                let done = self.recover_one(record, store)?;
                self.progress.note(&format!(
                    "backup {} was {} by a process that died: {}",
                    done.backup, done.was, done.note
                ));
            }
        }
        Ok(())
    }

    fn recover_one(&self, mut record: BackupRecord, store: &dyn Pool) -> EngineResult<Recovered> {
        let was = record.status;
        let note = match was {
            BackupStatus::Creating if record.checksum.is_some() => {
                match self.finish_committed(store, &mut record) {
                    Ok(()) => "backup was interrupted after its data was stored; it was completed"
                        .to_string(),
                    Err(e) if self.uncommit(&mut record) => {
                        let undone = self.undo_interrupted(store, &mut record);
                        format!("{undone} (it could not be completed: {e})")
                    }
                    Err(e) => return Err(e),
                }
            }
            BackupStatus::Creating => self.undo_interrupted(store, &mut record),
            BackupStatus::Restoring => {
                record.status = BackupStatus::Available;
                "a restore from this backup was interrupted; its target is incomplete".to_string()
            }
            _ => {
                record.status = BackupStatus::Error;
                "delete was interrupted; run `backup delete` again".to_string()
            }
        };
        if record.status == BackupStatus::Error {
            record.error = Some(note.clone());
        }
        record.pid = None;
        record.updated_at = unix_now();
        self.catalog.update_backup(&record)?;
        Ok(Recovered {
            backup: record.id.to_string(),
            was,
            now: record.status,
            note,
        })
    }
}

impl Engine<'_> {
    /// Marks an interrupted backup failed and removes its partial data;
    /// returns the note.
    fn undo_interrupted(&self, store: &dyn Pool, record: &mut BackupRecord) -> String {
        record.status = BackupStatus::Error;
        let undone =
            undo_partial_backup(store, record).and_then(|()| self.remove_digests(store, record));
        match undone {
            Ok(()) => "backup was interrupted; its partial data was removed".to_string(),
            Err(e) => format!("backup was interrupted; cleaning up its partial data failed: {e}"),
        }
    }

    /// Finishes a backup killed after its commit (its record has its
    /// checksum): its data is the base HEAD, its objects are stored, and
    /// only the base snapshot (if the kill came before it) and the status
    /// are missing. The base's newest snapshot must still be the parent's
    /// (none for a new base): then nothing wrote the HEAD since.
    fn finish_committed(&self, store: &dyn Pool, record: &mut BackupRecord) -> EngineResult<()> {
        let base = store.open(&record.image)?;
        let snaps = base
            .snapshots()
            .ok_or_else(|| EngineError::Invalid(format!("{} has no snapshots", base.describe())))?;
        let list = snaps.list()?;
        if !list.iter().any(|s| s.name == record.snapshot) {
            let parent = match record.parent {
                Some(id) => Some(self.catalog.backup(id)?.snapshot),
                None => None,
            };
            let newest = list.last().map(|s| s.name.clone());
            if newest != parent {
                return Err(EngineError::Invalid(format!(
                    "{} changed since the backup's data was stored",
                    base.describe()
                )));
            }
            snaps.create(&record.snapshot)?;
        }
        record.bytes_stored = stored_growth(store, base.as_ref(), record, None);
        mark_available(record);
        Ok(())
    }
}
