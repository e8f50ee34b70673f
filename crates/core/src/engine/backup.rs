//! `backup create`: a full transfer of the source into its chain's base
//! image, then a snapshot of the base that publishes the backup.
//!
//! A volume's backups form a chain in one base image
//! (`volume-<vid>.backup.<first bid>`), one snapshot per backup. The next
//! backup continues the chain when the latest available backup's snapshot
//! is still on the base; unchanged data is then deduplicated by the store.

use super::copy::{copy, CopyOptions};
use super::error::{EngineError, EngineResult};
use super::{unix_now, Engine, TransferPlan};
use crate::catalog::{BackupKind, BackupRecord, BackupStatus, VolumeRecord};
use crate::image::{Image, Pool};
use crate::naming;
use std::collections::BTreeMap;
use std::time::SystemTime;
use uuid::Uuid;

/// What to back up, and where.
pub struct BackupRequest<'r> {
    pub source: &'r dyn Image,
    /// The source, resolved: identifies the volume across runs.
    pub source_label: String,
    pub volume_name: String,
    pub store: &'r dyn Pool,
    pub store_label: String,
    pub metadata: BTreeMap<String, String>,
    /// Start a new chain even when the current one could continue.
    pub force_full: bool,
}

/// Where the backup goes: the chain it continues, or a new one.
struct ChainChoice {
    image: String,
    parent: Option<Uuid>,
    created_base: bool,
}

impl Engine<'_> {
    /// Backs up `req.source`; returns the record of the available backup.
    pub fn backup(&self, req: &BackupRequest<'_>) -> EngineResult<BackupRecord> {
        let size = req.source.size()?;
        if size == 0 {
            return Err(EngineError::ZeroSize(req.source_label.clone()));
        }
        let volume = self.volume_for(req)?;
        let _lock = self
            .locks
            .try_lock(&volume.id.to_string())?
            .ok_or_else(|| EngineError::VolumeBusy {
                volume: volume.id.to_string(),
                source_name: req.source_label.clone(),
            })?;
        let id = Uuid::new_v4();
        let chain = self.choose_chain(req, &volume, id)?;
        let mut record = new_record(req, &volume, id, size, &chain);
        self.catalog.insert_backup(&record)?;
        match self.transfer(req, &mut record) {
            Ok(()) => Ok(record),
            Err(cause) => Err(self.fail(req.store, &mut record, cause)),
        }
    }

    fn volume_for(&self, req: &BackupRequest<'_>) -> EngineResult<VolumeRecord> {
        if let Some(v) = self.catalog.volume_by_source(&req.source_label)? {
            return Ok(v);
        }
        let volume = VolumeRecord {
            id: Uuid::new_v4(),
            source: req.source_label.clone(),
            name: req.volume_name.clone(),
            created_at: unix_now(),
        };
        self.catalog.insert_volume(&volume)?;
        Ok(volume)
    }

    fn choose_chain(
        &self,
        req: &BackupRequest<'_>,
        volume: &VolumeRecord,
        id: Uuid,
    ) -> EngineResult<ChainChoice> {
        let latest = self
            .catalog
            .list_backups(Some(volume.id))?
            .into_iter()
            .rfind(|b| b.status == BackupStatus::Available && b.store == req.store_label);
        let new_chain = ChainChoice {
            image: naming::chain_base_name(&volume.id.to_string(), &id.to_string()),
            parent: None,
            created_base: true,
        };
        let Some(latest) = latest else {
            return Ok(new_chain);
        };
        if req.force_full {
            self.progress
                .note("full backup requested: starting a new chain");
            return Ok(new_chain);
        }
        match chain_continues(req.store, &latest) {
            Ok(()) => Ok(ChainChoice {
                image: latest.image,
                parent: Some(latest.id),
                created_base: false,
            }),
            Err(reason) => {
                self.progress.note(&format!(
                    "starting a new chain with a full backup: {reason}"
                ));
                Ok(new_chain)
            }
        }
    }

    fn transfer(&self, req: &BackupRequest<'_>, record: &mut BackupRecord) -> EngineResult<()> {
        let before = req.store.usage().ok().flatten();
        if record.created_base {
            req.store.create(&record.image, record.size)?;
        }
        let base = req.store.open(&record.image)?;
        if base.size()? != record.size {
            base.resize(record.size)?;
        }
        let plan = TransferPlan::full(req.source)?;
        self.progress.begin("backup", plan.size);
        let opts = CopyOptions {
            target_is_zero: record.created_base,
            ..self.copy
        };
        let stats = copy(req.source, base.as_ref(), &plan, opts, self.progress)?;
        self.progress.end();
        snapshot_base(base.as_ref(), &record.snapshot)?;
        let after = req.store.usage().ok().flatten();
        record.bytes_read = stats.bytes_read;
        record.bytes_written = stats.bytes_written;
        record.bytes_stored = after.zip(before).map_or(0, |(a, b)| a.saturating_sub(b));
        record.checksum = stats.checksum;
        record.status = BackupStatus::Available;
        record.pid = None;
        record.completed_at = Some(unix_now());
        record.updated_at = unix_now();
        self.catalog.update_backup(record)?;
        Ok(())
    }

    /// Marks the backup failed and removes what it created; returns the
    /// original cause (cleanup problems are appended, never substituted).
    fn fail(&self, store: &dyn Pool, record: &mut BackupRecord, cause: EngineError) -> EngineError {
        let mut message = cause.to_string();
        if let Err(e) = undo_partial_backup(store, record) {
            message.push_str(&format!(" (cleanup also failed: {e})"));
        }
        record.status = BackupStatus::Error;
        record.error = Some(message);
        record.pid = None;
        record.updated_at = unix_now();
        if let Err(e) = self.catalog.update_backup(record) {
            tracing::error!("could not mark backup {} as error: {e}", record.id);
        }
        cause
    }
}

fn new_record(
    req: &BackupRequest<'_>,
    volume: &VolumeRecord,
    id: Uuid,
    size: u64,
    chain: &ChainChoice,
) -> BackupRecord {
    let now = unix_now();
    let mut metadata = req.metadata.clone();
    metadata.insert("volume.name".into(), volume.name.clone());
    metadata.insert("volume.size".into(), size.to_string());
    BackupRecord {
        id,
        volume_id: volume.id,
        source: req.source_label.clone(),
        size,
        parent: chain.parent,
        kind: if chain.parent.is_some() {
            BackupKind::Incremental
        } else {
            BackupKind::Full
        },
        status: BackupStatus::Creating,
        store: req.store_label.clone(),
        image: chain.image.clone(),
        snapshot: naming::backup_snap_name(&id.to_string(), SystemTime::now()),
        bytes_read: 0,
        bytes_written: 0,
        bytes_stored: 0,
        checksum: None,
        created_at: now,
        updated_at: now,
        completed_at: None,
        error: None,
        pid: Some(std::process::id()),
        created_base: chain.created_base,
        metadata,
    }
}

/// Why the chain of `latest` cannot continue, if it cannot.
fn chain_continues(store: &dyn Pool, latest: &BackupRecord) -> Result<(), String> {
    let base = match store.open_read_only(&latest.image, None) {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return Err(format!("base image {} is gone", latest.image)),
        Err(e) => return Err(e.to_string()),
    };
    let snaps = base
        .snapshots()
        .ok_or("the store has no snapshots")?
        .list()
        .map_err(|e| e.to_string())?;
    if snaps.iter().any(|s| s.name == latest.snapshot) {
        Ok(())
    } else {
        Err(format!(
            "snapshot {} of the previous backup is missing on {}",
            latest.snapshot, latest.image
        ))
    }
}

fn snapshot_base(base: &dyn Image, name: &str) -> EngineResult<()> {
    let snaps = base.snapshots().ok_or_else(|| {
        EngineError::Invalid(format!(
            "backup store image {} has no snapshots",
            base.describe()
        ))
    })?;
    snaps.create(name)?;
    Ok(())
}

/// Removes what a failed or interrupted backup created: its snapshot, and
/// its base image when it created it; otherwise rolls the base HEAD back to
/// the chain's latest snapshot so the chain stays continuable.
pub(super) fn undo_partial_backup(store: &dyn Pool, record: &BackupRecord) -> EngineResult<()> {
    let base = match store.open(&record.image) {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let Some(snaps) = base.snapshots() else {
        return Ok(());
    };
    let list = snaps.list()?;
    if list.iter().any(|s| s.name == record.snapshot) {
        snaps.remove(&record.snapshot)?;
    }
    let remaining: Vec<_> = list
        .into_iter()
        .filter(|s| s.name != record.snapshot)
        .collect();
    if record.created_base && remaining.is_empty() {
        drop(base);
        store.remove(&record.image)?;
    } else if let Some(last) = remaining.last() {
        snaps.rollback(&last.name)?;
    }
    Ok(())
}
