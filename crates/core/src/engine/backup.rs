//! `backup create`: the chain choice, the record's life cycle, and the
//! path of sources without snapshots (files, block devices).
//!
//! A volume's backups form a chain in one base image
//! (`volume-<vid>.backup.<first bid>`), one snapshot per backup; the base
//! snapshot publishes the backup's data, the catalog record (set available
//! last) publishes the backup. Sources without snapshots go through
//! [`super::whole`]; sources with snapshots through [`super::snapshotted`].

use super::chain::{Chain, ChainMode};
use super::copy::{copy_to_sink, CopyOptions, CopyStats, DigestSink};
use super::digests::NewDigests;
use super::error::{EngineError, EngineResult};
use super::{unix_now, Engine, TransferPlan};
use crate::catalog::{BackupKind, BackupRecord, BackupStatus, CatalogError, VolumeRecord};
use crate::image::{ExtentKind, Image, Pool, Snapshots};
use crate::metadata::{remove_backup_metadata, write_backup_metadata, BackupMetadata};
use crate::naming;
use crate::progress::{timed, Progress};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};
use uuid::Uuid;

/// What to back up, and where.
pub struct BackupRequest<'r> {
    /// The volume's HEAD; opened writable when it has snapshots, since the
    /// backup snapshots it.
    pub source: &'r dyn Image,
    /// `source` is a HEAD whose snapshots the backup may use (false for a
    /// snapshot opened read-only, or to force the whole-read path).
    pub snapshot_source: bool,
    /// The source, resolved: identifies the volume across runs.
    pub source_label: String,
    pub volume_name: String,
    pub store: &'r dyn Pool,
    pub store_label: String,
    pub metadata: BTreeMap<String, String>,
    pub mode: ChainMode,
    /// Backup snapshots kept on a source with snapshots, per chain (at least 1).
    pub keep_source_snapshots: usize,
    /// The backup's id when the caller chose it (a service returns it
    /// before the backup runs); a new one otherwise.
    pub id: Option<Uuid>,
    /// The volume's catalog id when the caller chose it (Cinder's volume
    /// id, which the store's names carry); see [`Engine::volume_for`].
    pub volume_id: Option<Uuid>,
    /// The metadata object to store, when the caller has its own (Cinder's
    /// driver API gives the whole volume row, user and image metadata);
    /// otherwise one is made from the record ([`volume_metadata`]).
    pub volume_metadata: Option<BackupMetadata>,
}

/// What the record of a snapshotted backup takes from its transfer.
pub(super) struct Published {
    /// The base HEAD, just snapshotted.
    pub base: Box<dyn Image>,
    pub stats: CopyStats,
    pub checksum: Option<String>,
    /// What the backup added to its base, when known without a diff of
    /// the base: nothing for a source unchanged since its parent, the data
    /// the source's diff listed for an incremental that wrote those
    /// extents into the base, the data written into a new base.
    pub added: Option<u64>,
}

/// What a finished transfer leaves for the record.
pub(super) struct Transferred {
    /// The base HEAD written, to be snapshotted through the same handle.
    pub base: Box<dyn Image>,
    pub stats: CopyStats,
    /// The volume checksum at the snapshot.
    pub checksum: Option<String>,
    /// Its block digests, to be committed with the backup: what the next
    /// incremental starts from (none when the store deduplicates writes of
    /// a source without snapshots: it rewrites everything).
    pub digests: Option<NewDigests>,
    /// What the backup added to its base, when the transfer knows it
    /// without a diff of the base (see [`Published::added`]).
    pub added: Option<u64>,
}

impl Transferred {
    /// What the record takes from the transfer, and the digests to store
    /// beside the backup.
    pub(super) fn into_published(self) -> (Published, Option<NewDigests>) {
        let published = Published {
            base: self.base,
            stats: self.stats,
            checksum: self.checksum,
            added: self.added,
        };
        (published, self.digests)
    }
}

impl Engine<'_> {
    /// Backs up `req.source`; returns the record of the available backup.
    pub fn backup(&self, req: &BackupRequest<'_>) -> EngineResult<BackupRecord> {
        if req.source.size()? == 0 {
            return Err(EngineError::ZeroSize(req.source_label.clone()));
        }
        let volume = self.volume_for(req)?;
        let id = volume.id.to_string();
        let lock = self
            .locks
            .try_lock_volume(&id, &req.store_label)?
            .ok_or_else(|| {
                self.locks
                    .volume_busy(&id, &req.store_label, &req.source_label)
            })?;
        let _watching = self.watch(&lock);
        self.recover_volume(volume.id, req.store, &req.store_label)?;
        let id = req.id.unwrap_or_else(Uuid::new_v4);
        if let Some(snaps) = req.source.snapshots().filter(|_| req.snapshot_source) {
            return self.backup_snapshotted(req, &volume, id, snaps);
        }
        let latest = self.latest_available(volume.id, &req.store_label)?;
        let chain = self.checked_chain(req, latest, None)?;
        let mut record = new_record(req, &volume, id, &chain, self.clock.now())?;
        self.catalog.insert_backup(&record)?;
        self.backup_whole(req, &chain, &mut record)?;
        Ok(record)
    }

    /// The chain check from `latest` (the volume's newest available backup
    /// in the request's store), timed; in [`ChainMode::Incremental`] a
    /// chain that cannot continue is an error.
    pub(super) fn checked_chain(
        &self,
        req: &BackupRequest<'_>,
        latest: Option<BackupRecord>,
        snaps: Option<&dyn Snapshots>,
    ) -> EngineResult<Chain> {
        let chain = timed(self.progress, "chain check", || {
            self.choose_chain(latest, req.store, req.mode, snaps)
        })?;
        if let Chain::New {
            reason: Some(reason),
        } = &chain
        {
            if req.mode == ChainMode::Incremental {
                return Err(EngineError::ChainBroken(reason.clone()));
            }
            self.progress.note(&format!(
                "starting a new chain with a full backup: {reason}"
            ));
        }
        Ok(chain)
    }

    /// The catalog's volume of the request's source. A caller-chosen id
    /// must match a source the catalog knows; a volume known by that id
    /// under another source has moved (a device path changes between
    /// attachments) and takes the new source; otherwise a new volume.
    fn volume_for(&self, req: &BackupRequest<'_>) -> EngineResult<VolumeRecord> {
        let label = &req.source_label;
        match (self.catalog.volume_by_source(label)?, req.volume_id) {
            (Some(v), Some(id)) if v.id != id => Err(EngineError::Invalid(format!(
                "{label} is recorded as volume {}, not {id}; give that volume id or none",
                v.id
            ))),
            (Some(v), _) => Ok(v),
            (None, Some(id)) => match self.catalog.volume(id) {
                Ok(mut moved) => {
                    moved.source = label.clone();
                    self.catalog.update_volume(&moved)?;
                    Ok(moved)
                }
                Err(CatalogError::VolumeNotFound(_)) => self.new_volume(req, id),
                Err(e) => Err(e.into()),
            },
            (None, None) => self.new_volume(req, Uuid::new_v4()),
        }
    }

    fn new_volume(&self, req: &BackupRequest<'_>, id: Uuid) -> EngineResult<VolumeRecord> {
        let volume = VolumeRecord::new(
            id,
            req.source_label.clone(),
            req.volume_name.clone(),
            unix_now(),
        );
        self.catalog.insert_volume(&volume)?;
        Ok(volume)
    }

    /// Copies with progress reporting.
    pub(super) fn run_copy(
        &self,
        label: &str,
        src: &dyn Image,
        dst: &dyn Image,
        plan: &TransferPlan,
        opts: CopyOptions<'_>,
    ) -> EngineResult<CopyStats> {
        self.run_copy_to_sink(label, src, dst, plan, opts, None)
    }

    /// Runs `copy` as the transfer phase, reporting progress under `label`.
    pub(super) fn transfer_phase(
        &self,
        label: &str,
        size: u64,
        copy: impl FnOnce() -> crate::image::Result<CopyStats>,
    ) -> EngineResult<CopyStats> {
        self.progress.begin(label, size);
        let stats = timed(self.progress, "transfer", copy);
        self.progress.end();
        Ok(stats?)
    }

    /// [`Self::run_copy`], handing the block digests to `sink` in order.
    pub(super) fn run_copy_to_sink<'s>(
        &self,
        label: &str,
        src: &dyn Image,
        dst: &dyn Image,
        plan: &TransferPlan,
        opts: CopyOptions<'_>,
        sink: Option<&'s mut DigestSink<'s>>,
    ) -> EngineResult<CopyStats> {
        self.transfer_phase(label, plan.size, || {
            copy_to_sink(src, dst, plan, opts, self.progress, sink)
        })
    }

    /// Stores the volume metadata with the backup, then records the
    /// transferred and snapshotted backup as available.
    pub(super) fn publish(
        &self,
        req: &BackupRequest<'_>,
        record: &mut BackupRecord,
        t: Transferred,
    ) -> EngineResult<()> {
        let start = std::time::Instant::now();
        let (done, digests) = t.into_published();
        self.store_backup_objects(req, record, digests)?;
        self.record_available(req, record, done)?;
        self.progress
            .phase_done("publish", start.elapsed().as_secs_f64());
        Ok(())
    }

    /// The backup's objects beside its base: the volume metadata, and the
    /// block digests (the local file, then the store's copy, then the
    /// catalog: an available backup's digests are in its store for any
    /// host; shared ones, of an unchanged source, are there already).
    /// They need nothing of the base snapshot, so they may be written
    /// while it is made; a failed backup removes them.
    pub(super) fn store_backup_objects(
        &self,
        req: &BackupRequest<'_>,
        record: &BackupRecord,
        digests: Option<NewDigests>,
    ) -> EngineResult<()> {
        let meta = match &req.volume_metadata {
            Some(given) => given.clone(),
            None => volume_metadata(record),
        };
        write_backup_metadata(req.store, &record.id.to_string(), &meta)?;
        if let Some(NewDigests::Written(written)) = digests {
            self.digests.commit(record.id, written)?;
            self.publish_digests(req.store, record.id)?;
        }
        Ok(())
    }

    /// Stores the backup's objects, then records what it holds (checksum,
    /// bytes read and written) while it is still `creating`: from here on
    /// its data (the base HEAD, flushed), digests and metadata are all in
    /// the store, and recovery finishes a backup killed after this point
    /// instead of undoing it (see [`super::recover`]). The source's old
    /// snapshots, its parent's among them, may go only after this.
    pub(super) fn commit_backup(
        &self,
        req: &BackupRequest<'_>,
        record: &mut BackupRecord,
        committed: Committed,
    ) -> EngineResult<()> {
        let checksum = committed.checksum.ok_or_else(|| {
            EngineError::Invalid(format!("backup {} has no checksum to commit", record.id))
        })?;
        self.store_backup_objects(req, record, committed.digests)?;
        record.checksum = Some(checksum);
        record.bytes_read = committed.bytes_read;
        record.bytes_written = committed.bytes_written;
        record.updated_at = unix_now();
        self.check_leases()?;
        self.catalog.update_backup(record)?;
        tracing::debug!(
            "backup {} committed: recovery finishes it from here",
            record.id
        );
        Ok(())
    }

    /// Takes back `record`'s commit in the catalog before its data is
    /// undone: killed during the undo, it must not be a record recovery
    /// would finish over a rolled-back base. Returns whether the undo may
    /// go on (when the catalog refuses, the record stays committed and its
    /// data whole, for recovery to finish).
    pub(super) fn uncommit(&self, record: &mut BackupRecord) -> bool {
        let Some(checksum) = record.checksum.take() else {
            return true;
        };
        record.updated_at = unix_now();
        match self.catalog.update_backup(record) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!("backup {} left committed: {e}", record.id);
                record.checksum = Some(checksum);
                false
            }
        }
    }

    /// Records the snapshotted backup, whose objects are stored, as
    /// available.
    pub(super) fn record_available(
        &self,
        req: &BackupRequest<'_>,
        record: &mut BackupRecord,
        done: Published,
    ) -> EngineResult<()> {
        record.bytes_read = done.stats.bytes_read;
        record.bytes_written = done.stats.bytes_written;
        record.bytes_stored = stored_growth(req.store, done.base.as_ref(), record, done.added);
        record.checksum = done.checksum;
        mark_available(record);
        // Published only under a lock still held (a cluster lock whose
        // lease ran out may be someone else's by now).
        self.close_later(done.base);
        self.check_leases()?;
        self.catalog.update_backup(record)?;
        Ok(())
    }

    /// Marks the backup failed and removes what it created (its snapshot on
    /// `source_snaps` among them); returns the original cause (cleanup
    /// problems are appended to the recorded message, never substituted).
    pub(super) fn fail(
        &self,
        store: &dyn Pool,
        record: &mut BackupRecord,
        cause: EngineError,
        cleanup_notes: &[String],
    ) -> EngineError {
        if let EngineError::LockLost { .. } = cause {
            // The volume may be another holder's now: its data is not
            // ours to touch. The record stays `creating` for recovery,
            // which runs under the lock.
            return cause;
        }
        if !self.uncommit(record) {
            return cause; // left committed, for recovery to finish
        }
        let mut message = cause.to_string();
        for note in cleanup_notes {
            message.push_str(&format!(" ({note})"));
        }
        if let Err(e) = undo_partial_backup(store, record) {
            message.push_str(&format!(" (cleanup also failed: {e})"));
        }
        if let Err(e) = self.remove_digests(store, record) {
            message.push_str(&format!(" (its block digests were left: {e})"));
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

pub(super) fn new_record(
    req: &BackupRequest<'_>,
    volume: &VolumeRecord,
    id: Uuid,
    chain: &Chain,
    now: f64,
) -> EngineResult<BackupRecord> {
    let size = req.source.size()?;
    let mut metadata = req.metadata.clone();
    metadata.insert("volume.name".into(), volume.name.clone());
    metadata.insert("volume.size".into(), size.to_string());
    let (image, parent) = match chain {
        Chain::Continue { parent, .. } => (parent.image.clone(), Some(parent.id)),
        Chain::New { .. } => (
            naming::chain_base_name(&volume.id.to_string(), &id.to_string()),
            None,
        ),
    };
    Ok(BackupRecord {
        id,
        volume_id: volume.id,
        source: req.source_label.clone(),
        size,
        parent,
        kind: match parent {
            Some(_) => BackupKind::Incremental,
            None => BackupKind::Full,
        },
        status: BackupStatus::Creating,
        store: req.store_label.clone(),
        image,
        snapshot: naming::backup_snap_name(&id.to_string(), unix_time(now)),
        bytes_read: 0,
        bytes_written: 0,
        // The store's usage before the backup, until `publish` sets the growth.
        bytes_stored: req.store.usage().ok().flatten().unwrap_or(0),
        checksum: None,
        created_at: now,
        updated_at: now,
        completed_at: None,
        error: None,
        pid: Some(std::process::id()),
        created_base: parent.is_none(),
        metadata,
    })
}

/// The reference's metadata object for `record`, shaped as Cinder's
/// driver writes it: the volume's fields under Cinder's names and types
/// (id, `size` in whole GiB, `display_name` and `display_description`,
/// null when the volume has none, no `encryption_key_id`), the user's
/// key/values as its metadata. Cinder's restore sets the display name on
/// a volume it created for the restore, so it must be the volume's name
/// as the operator gave it, never an image or file name.
pub fn volume_metadata(record: &BackupRecord) -> BackupMetadata {
    let text = |key: &str| {
        record
            .metadata
            .get(key)
            .map_or(serde_json::Value::Null, |v| v.clone().into())
    };
    let mut meta = BackupMetadata::default();
    let base = &mut meta.volume_base;
    base.insert("id".into(), record.volume_id.to_string().into());
    base.insert("size".into(), record.size.div_ceil(GIB).into());
    base.insert("display_name".into(), text(DISPLAY_NAME));
    base.insert("display_description".into(), text(DISPLAY_DESCRIPTION));
    base.insert("encryption_key_id".into(), serde_json::Value::Null);
    for (key, value) in &record.metadata {
        if let Some(user_key) = key.strip_prefix("user.") {
            meta.volume.insert(user_key.to_string(), value.clone());
        }
    }
    meta
}

/// Record metadata keys of the volume's display name and description
/// (absent when the operator gave none).
pub const DISPLAY_NAME: &str = "volume.display_name";
pub const DISPLAY_DESCRIPTION: &str = "volume.display_description";
const GIB: u64 = 1 << 30;

/// What [`Engine::commit_backup`] records of a transferred backup.
pub(super) struct Committed {
    pub checksum: Option<String>,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub digests: Option<NewDigests>,
}

impl Committed {
    /// What `done` commits, with `digests`.
    pub fn of(done: &Published, digests: Option<NewDigests>) -> Self {
        Committed {
            checksum: done.checksum.clone(),
            bytes_read: done.stats.bytes_read,
            bytes_written: done.stats.bytes_written,
            digests,
        }
    }
}

/// How much the store grew by with `record` (whose `bytes_stored` holds
/// the store's usage before it, when the store can tell), or, for a store
/// that cannot tell (RBD), what the backup added to its base: `added`
/// when the transfer knows, else a diff of `base` (its HEAD, snapshotted).
pub(super) fn stored_growth(
    store: &dyn Pool,
    base: &dyn Image,
    record: &BackupRecord,
    added: Option<u64>,
) -> u64 {
    match store.usage().ok().flatten() {
        Some(after) => after.saturating_sub(record.bytes_stored),
        // A figure only: never worth failing a finished backup for.
        None => added.unwrap_or_else(|| {
            added_data(base, record).unwrap_or_else(|e| {
                tracing::warn!("cannot tell what backup {} added: {e}", record.id);
                0
            })
        }),
    }
}

/// Sets `record` available, completed now.
pub(super) fn mark_available(record: &mut BackupRecord) {
    record.status = BackupStatus::Available;
    record.pid = None;
    record.completed_at = Some(unix_now());
    record.updated_at = unix_now();
}

/// Records the base's HEAD as the snapshot `name` (the backup's; which
/// flushes it).
pub(super) fn snapshot_base(
    base: &dyn Image,
    name: &str,
    progress: &dyn Progress,
) -> EngineResult<()> {
    let snaps = base.snapshots().ok_or_else(|| {
        EngineError::Invalid(format!(
            "backup store image {} has no snapshots",
            base.describe()
        ))
    })?;
    timed(progress, "base snapshot", || snaps.create(name))?;
    Ok(())
}

/// The data bytes `record`'s snapshot adds to its base over the previous
/// snapshot (all of its data for the first): how much a store that cannot
/// tell its usage (RBD) grew by. `base` is the HEAD just snapshotted.
fn added_data(base: &dyn Image, record: &BackupRecord) -> EngineResult<u64> {
    let Some(snaps) = base.snapshots() else {
        return Ok(0);
    };
    let list = snaps.list()?;
    let at = list.iter().position(|s| s.name == record.snapshot);
    let previous = at.and_then(|i| i.checked_sub(1)).map(|i| &list[i].name);
    let mut added = 0;
    base.changed_extents(previous.map(String::as_str), 0..base.size()?, &mut |e| {
        if e.kind == ExtentKind::Data {
            added += e.len;
        }
        Ok(())
    })?;
    Ok(added)
}

/// Removes what a failed or interrupted backup created in the store: its
/// metadata object, its snapshot, and its base image when it created it;
/// otherwise rolls the base HEAD back to the chain's latest snapshot (when
/// it wrote to it) so the chain stays continuable. Then the store frees the
/// data this process wrote that nothing uses now (a full disk stays full
/// otherwise).
pub(super) fn undo_partial_backup(store: &dyn Pool, record: &BackupRecord) -> EngineResult<()> {
    remove_partial_backup(store, record)?;
    Ok(store.reclaim_unpublished()?)
}

fn remove_partial_backup(store: &dyn Pool, record: &BackupRecord) -> EngineResult<()> {
    remove_backup_metadata(store, &record.id.to_string())?;
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
        // Only when this run wrote: a needless rollback rewrites every
        // object of an RBD base.
        if super::plan::any_extent(base.as_ref(), Some(&last.name), |_| true)? {
            snaps.rollback(&last.name)?;
        }
    }
    Ok(())
}

fn unix_time(secs: f64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::try_from_secs_f64(secs).unwrap_or_default()
}
