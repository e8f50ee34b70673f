//! Backups of sources with snapshots (RBD images, local-store images): the
//! reference design's differential backup, done right.
//!
//! The source is snapshotted as `backup.<id>.snap.<time>`. Continuing a
//! chain transfers only the extents changed between the previous backup's
//! source snapshot and the new one into the base HEAD (which the chain
//! check proved equal to the previous snapshot); a new chain copies the
//! whole snapshot into a new base. The base then gets a snapshot of the
//! same name. When an incremental transfer fails, exactly what this run
//! created is removed and a full backup into a new chain is made instead.

use super::backup::{new_record, snapshot_base, BackupRequest, Committed, Published, Transferred};
use super::carry::{base_is_clean, carries_forward, carry_into, early_look, EarlyLook};
use super::chain::{Chain, ChainMode};
use super::copy::{copy_changed, CopyOptions, CopyStats};
use super::digests::{DigestWriter, NewDigests};
use super::error::{EngineError, EngineResult};
use super::plan::overlay_data;
use super::unchanged::TargetDigests;
use super::{unix_now, Engine, TransferPlan};
use crate::catalog::{BackupKind, BackupRecord, VolumeRecord};
use crate::checksum::CHECKSUM_BLOCK;
use crate::image::{Extent, Image, Pool, SnapshotInfo, Snapshots};
use crate::naming;
use crate::progress::timed;
use std::thread::ScopedJoinHandle;
use uuid::Uuid;

impl Engine<'_> {
    pub(super) fn backup_snapshotted(
        &self,
        req: &BackupRequest<'_>,
        volume: &VolumeRecord,
        id: Uuid,
        snaps: &dyn Snapshots,
    ) -> EngineResult<BackupRecord> {
        // Recorded before the source is snapshotted, so that recovery finds
        // the snapshot through it; recorded as a new chain (whose base name
        // no image has yet) until the chain check, which runs while the
        // snapshot is made, says the chain continues: should the backup
        // die before that, its cleanup cannot touch the old chain's base.
        let new = Chain::New { reason: None };
        let mut record = new_record(req, volume, id, &new, self.clock.now())?;
        self.catalog.insert_backup(&record)?;
        // The chain check and a first look at whether the source changed
        // since the latest backup run while the snapshot is made.
        let latest = self.latest_available(volume.id, &req.store_label)?;
        let (chain, looked, snapped) = std::thread::scope(|s| {
            let snapping = s.spawn(|| self.snapshot_source(snaps, &record));
            let looking = s.spawn(|| {
                let look = latest.as_ref().filter(|_| req.mode != ChainMode::Full);
                let looked = look.and_then(|latest| early_look(req.source, latest));
                // The snapshot will be read unless the source looks
                // unchanged: what can be opened for that goes beside its
                // making (RBD: a handle, 56 ms of round trips).
                if looked.is_none_or(|l| l.changed) {
                    snaps.prepare_open(&record.snapshot);
                }
                looked
            });
            let chain = self.checked_chain(req, latest.clone(), Some(snaps));
            (chain, joined(looking), joined(snapping))
        });
        if let Err(cause) = snapped {
            drop(chain);
            return Err(self.fail(req.store, &mut record, cause, &[]));
        }
        let mut chain = match chain {
            Ok(chain) => chain,
            Err(cause) => return Err(self.abandon(req.store, snaps, &mut record, cause)),
        };
        if let Chain::Continue { parent, .. } = &chain {
            self.set_chain(&mut record, Some(parent))?;
        }
        let since_parent = SinceParent::of(looked, &chain);
        let base = match &mut chain {
            Chain::Continue { base, .. } => base.take(),
            Chain::New { .. } => None,
        };
        let first = Attempt {
            since_parent,
            chain: &chain,
            base,
        };
        self.transfer_with_fallback(req, snaps, first, &mut record)?;
        Ok(record)
    }

    /// Undoes a backup whose chain check failed after its source snapshot
    /// was made. A chain that may not continue (an incremental was asked
    /// for) leaves no record when the snapshot is gone: the refusal
    /// changed nothing.
    fn abandon(
        &self,
        store: &dyn Pool,
        snaps: &dyn Snapshots,
        record: &mut BackupRecord,
        cause: EngineError,
    ) -> EngineError {
        let notes = self.undo_attempt(store, snaps, record);
        if matches!(cause, EngineError::ChainBroken(_)) && notes.is_empty() {
            match self.catalog.remove_backup(record.id) {
                Ok(()) => return cause,
                Err(e) => tracing::warn!("could not remove the record of {}: {e}", record.id),
            }
        }
        self.fail(store, record, cause, &notes)
    }

    /// Records `record` as the next backup of `parent`'s chain, or
    /// (`None`) as the first backup of a new chain of its own.
    fn set_chain(
        &self,
        record: &mut BackupRecord,
        parent: Option<&BackupRecord>,
    ) -> EngineResult<()> {
        let (vid, id) = (record.volume_id.to_string(), record.id.to_string());
        record.image = match parent {
            Some(p) => p.image.clone(),
            None => naming::chain_base_name(&vid, &id),
        };
        record.parent = parent.map(|p| p.id);
        record.kind = match parent {
            Some(_) => BackupKind::Incremental,
            None => BackupKind::Full,
        };
        record.created_base = parent.is_none();
        record.updated_at = unix_now();
        self.catalog.update_backup(record)?;
        Ok(())
    }

    /// Transfers into `chain`; when an incremental transfer fails, exactly
    /// what it created is removed and a full backup into a new chain is
    /// made instead (unless an incremental was asked for).
    fn transfer_with_fallback(
        &self,
        req: &BackupRequest<'_>,
        snaps: &dyn Snapshots,
        first: Attempt<'_>,
        record: &mut BackupRecord,
    ) -> EngineResult<()> {
        let chain = first.chain;
        let cause = match self.transfer_chain(req, snaps, first, record) {
            Ok(()) => return Ok(()),
            Err(cause) => cause,
        };
        if !self.uncommit(record) {
            return Err(cause);
        }
        let notes = self.undo_attempt(req.store, snaps, record);
        let incremental = matches!(chain, Chain::Continue { .. });
        if !incremental || req.mode == ChainMode::Incremental || self.progress.is_cancelled() {
            return Err(self.fail(req.store, record, cause, &notes));
        }
        self.progress.note(&format!(
            "incremental transfer failed ({cause}); falling back to a full backup"
        ));
        self.set_chain(record, None)?;
        let second = self.snapshot_source(snaps, record).and_then(|()| {
            let new = Chain::New { reason: None };
            let full = Attempt {
                chain: &new,
                base: None,
                since_parent: SinceParent::NotLooked,
            };
            self.transfer_chain(req, snaps, full, record)
        });
        match second {
            Ok(()) => Ok(()),
            Err(again) => {
                let mut notes = self.undo_attempt(req.store, snaps, record);
                notes.insert(0, format!("the full fallback failed too: {again}"));
                Err(self.fail(req.store, record, cause, &notes))
            }
        }
    }

    fn snapshot_source(&self, snaps: &dyn Snapshots, record: &BackupRecord) -> EngineResult<()> {
        timed(self.progress, "source snapshot", || {
            snaps.create(&record.snapshot)
        })?;
        Ok(())
    }

    /// Transfers, snapshots the base, publishes, then prunes.
    fn transfer_chain(
        &self,
        req: &BackupRequest<'_>,
        snaps: &dyn Snapshots,
        attempt: Attempt<'_>,
        record: &mut BackupRecord,
    ) -> EngineResult<()> {
        std::thread::scope(|s| {
            // The pruning's list of the source's snapshots, taken while the
            // change is transferred (other paths list them on the way):
            // RBD refreshes the source's handle after its new snapshot
            // first, several round trips that would otherwise make the
            // pruning outlast the base snapshot it runs beside.
            let changed = attempt.since_parent == SinceParent::Changed;
            let listing = changed.then(|| s.spawn(|| snaps.list()));
            self.transfer_in_scope(s, req, snaps, attempt, record, listing)
        })
    }

    /// [`Self::transfer_chain`]'s work, its threads in `s`.
    fn transfer_in_scope<'s, 'e: 's>(
        &'e self,
        s: &'s std::thread::Scope<'s, 'e>,
        req: &'e BackupRequest<'_>,
        snaps: &'e dyn Snapshots,
        attempt: Attempt<'_>,
        record: &mut BackupRecord,
        listing: Listing<'s>,
    ) -> EngineResult<()> {
        let Attempt {
            chain,
            base,
            since_parent,
        } = attempt;
        let clean = base_is_clean(base.as_deref())?;
        let (base, unchanged) = match base {
            Some(base) if since_parent == SinceParent::Unchanged && clean => {
                match self.publish_if_unchanged(req, snaps, chain, base, record)? {
                    Some(changed) => (Some(changed), None),
                    None => return Ok(()),
                }
            }
            // A second look could only say "changed" again (a round trip
            // or two on the critical path: RBD refreshes the source's
            // handle after its snapshot, then diffs).
            base if since_parent == SinceParent::Changed => (base, None),
            base => {
                let parent = self.unchanged_parent(req.source, snaps, chain, clean, record)?;
                (base, parent)
            }
        };
        let transferred = match unchanged {
            Some(parent) => carry_into(self, base, parent, record)?,
            None => self.transfer_snapshot(req, snaps, chain, base, record)?,
        };
        let (done, digests) = transferred.into_published();
        // The base HEAD holds the backup before it is committed (a local
        // store's HEAD is otherwise published only by the snapshot).
        done.base.flush()?;
        let committed = Committed::of(&done, digests);
        let name = record.snapshot.clone();
        let snapping = s.spawn(move || {
            let made = snapshot_base(done.base.as_ref(), &name, self.progress);
            (done, made)
        });
        let (committed, pruning) =
            self.commit_then_prune(s, req, snaps, record, committed, listing);
        let (done, made) = joined(snapping);
        let published = self.publish_snapshotted(req, record, made.and(committed), done);
        pruning.wait();
        published
    }

    /// Commits the backup (its objects and record; a round trip or two
    /// each, while the base is snapshotted), then prunes the source's old
    /// snapshots in `scope`: each removal is a chain of round trips, and
    /// none needs to wait for the publication. They wait for the commit:
    /// the parent's source snapshot is among them, and a backup killed
    /// after its commit is finished by recovery, so the chain continues
    /// from it; killed before, the parent's snapshot is still there.
    pub(super) fn commit_then_prune<'s, 'e: 's>(
        &'e self,
        scope: &'s std::thread::Scope<'s, 'e>,
        req: &'e BackupRequest<'_>,
        snaps: &'e dyn Snapshots,
        record: &mut BackupRecord,
        committed: Committed,
        listing: Listing<'s>,
    ) -> (EngineResult<()>, Pruning<'s>) {
        let committed = self.commit_backup(req, record, committed);
        let prune = committed.is_ok().then(|| {
            let pruned = record.clone();
            scope.spawn(move || self.prune_and_release(req, snaps, &pruned, listing))
        });
        (committed, Pruning(prune))
    }

    /// Prunes the source's old backup snapshots, then lets the source go:
    /// nothing else reads it unless this backup fails (its undo reopens
    /// it), and closing it (RBD: the lock and the watch, 13-17 ms under
    /// the 2 ms profile) need not wait for the publication either.
    pub(super) fn prune_and_release(
        &self,
        req: &BackupRequest<'_>,
        snaps: &dyn Snapshots,
        record: &BackupRecord,
        listing: Listing<'_>,
    ) {
        // A failed early list is taken again by the pruning.
        let listed = listing.map(joined).and_then(|l| l.ok());
        timed(self.progress, "prune", || {
            let keep = req.keep_source_snapshots;
            self.prune_source_snapshots(req.store, snaps, record, keep, listed)
        });
        req.source.release();
    }

    /// Records the backup available once its base snapshot and objects
    /// are stored (`ready`), timed as the publish phase.
    pub(super) fn publish_snapshotted(
        &self,
        req: &BackupRequest<'_>,
        record: &mut BackupRecord,
        ready: EngineResult<()>,
        done: Published,
    ) -> EngineResult<()> {
        let start = std::time::Instant::now();
        let published = ready.and_then(|()| self.record_available(req, record, done));
        self.progress
            .phase_done("publish", start.elapsed().as_secs_f64());
        published
    }

    /// Reads the new source snapshot: the changes since the parent's
    /// snapshot into the chain's base, or all of it into a new base.
    fn transfer_snapshot(
        &self,
        req: &BackupRequest<'_>,
        snaps: &dyn Snapshots,
        chain: &Chain,
        base: Option<Box<dyn Image>>,
        record: &mut BackupRecord,
    ) -> EngineResult<Transferred> {
        let source = snaps.open_snapshot(&record.snapshot)?;
        let size = source.size()?;
        if size == 0 {
            return Err(EngineError::ZeroSize(req.source_label.clone()));
        }
        if size != record.size {
            record.size = size;
            record
                .metadata
                .insert("volume.size".into(), size.to_string());
            self.catalog.update_backup(record)?;
        }
        match chain {
            Chain::Continue {
                parent,
                digests: true,
                ..
            } => self.transfer_changes(req.store, source.as_ref(), base, parent, record),
            Chain::Continue { digests: false, .. } => Err(EngineError::Invalid(
                "an incremental of a source with snapshots needs its parent's digests".into(),
            )),
            Chain::New { .. } => self.transfer_all(req.store, source.as_ref(), record),
        }
    }

    /// A new chain: the whole snapshot into a new base.
    fn transfer_all(
        &self,
        store: &dyn Pool,
        source: &dyn Image,
        record: &BackupRecord,
    ) -> EngineResult<Transferred> {
        let plan = timed(self.progress, "diff", || TransferPlan::full(source))?;
        let base = store.create_to_fill(&record.image, record.size, plan.data_bytes())?;
        let (stats, digests) =
            self.copy_whole_digested("backup", (source, plan), base.as_ref(), true, None)?;
        Ok(Transferred {
            base,
            checksum: stats.checksum.clone(),
            // A new base holds what was written: no diff of it.
            added: Some(stats.bytes_written),
            stats,
            digests: Some(NewDigests::Written(digests)),
        })
    }

    /// Continues the chain: only the changes since the parent's snapshot.
    fn transfer_changes(
        &self,
        store: &dyn Pool,
        source: &dyn Image,
        base: Option<Box<dyn Image>>,
        parent: &BackupRecord,
        record: &BackupRecord,
    ) -> EngineResult<Transferred> {
        let base = match base {
            Some(base) => base,
            None => store.open(&record.image)?,
        };
        if base.size()? != record.size {
            base.resize(record.size)?;
        }
        let held = self.digests.reader(parent.id, record.size)?;
        let mut copied =
            self.copy_changes_digested("backup", source, base.as_ref(), parent, Some(&held))?;
        self.rewrite_known_damage("backup", source, base.as_ref(), &mut copied.stats)?;
        Ok(Transferred {
            base,
            stats: copied.stats,
            checksum: Some(copied.checksum),
            digests: Some(NewDigests::Written(copied.digests)),
            // The base received the extents the source's diff listed (but
            // blocks it held already), so its own diff would list that data
            // or less: no second diff (a list-snaps per changed object).
            added: Some(copied.listed_data),
        })
    }

    /// Copies the extents of `source` changed since `parent`'s snapshot
    /// into `dst` (leaving alone the blocks `held` says it holds already);
    /// derives the new digest file and volume checksum from the parent's
    /// digests and the changed blocks'.
    pub(super) fn copy_changes_digested(
        &self,
        label: &str,
        source: &dyn Image,
        dst: &dyn Image,
        parent: &BackupRecord,
        held: Option<&dyn TargetDigests>,
    ) -> EngineResult<ChangesCopied> {
        let size = source.size()?;
        let plan = timed(self.progress, "diff", || {
            changes_plan(source, &parent.snapshot, parent.size, size)
        })?;
        let opts = CopyOptions {
            block_digests: true,
            ..self.copy
        };
        let stats = match held {
            Some(held) => self.transfer_phase(label, plan.size, || {
                copy_changed(source, dst, &plan, opts, self.progress, held)
            })?,
            None => self.run_copy(label, source, dst, &plan, opts)?,
        };
        let parent_checksum = parent
            .checksum
            .as_deref()
            .ok_or_else(|| EngineError::Invalid(format!("backup {} has no checksum", parent.id)))?;
        let (digests, checksum) =
            self.digests
                .derive(parent.id, parent_checksum, size, &stats.digests)?;
        Ok(ChangesCopied {
            stats,
            digests,
            checksum,
            listed_data: plan.data_bytes(),
        })
    }

    /// Removes this attempt's snapshot from the source and its traces from
    /// the store; returns notes on what could not be removed.
    fn undo_attempt(
        &self,
        store: &dyn Pool,
        snaps: &dyn Snapshots,
        record: &BackupRecord,
    ) -> Vec<String> {
        let mut notes = Vec::new();
        if let Err(e) = super::backup::undo_partial_backup(store, record) {
            notes.push(format!("cleanup of {} failed: {e}", record.image));
        }

        match snaps.remove(&record.snapshot) {
            Err(e) if !e.is_not_found() => {
                notes.push(format!("source snapshot {} left: {e}", record.snapshot))
            }
            _ => {}
        }
        notes
    }
}

/// What copying the changes since a parent's snapshot made.
pub(super) struct ChangesCopied {
    pub stats: CopyStats,
    /// The new digest file, derived from the parent's.
    pub digests: DigestWriter,
    /// The volume checksum the new digests make.
    pub checksum: String,
    /// The data bytes the diff listed (zeroed ranges not counted).
    pub listed_data: u64,
}

/// The extents changed between snapshot `from` (of `from_size` bytes) and
/// `source`. When the size changed, the block holding the old end is added:
/// its digest covered a different length.
fn changes_plan(
    source: &dyn Image,
    from: &str,
    from_size: u64,
    size: u64,
) -> EngineResult<TransferPlan> {
    let mut extents = Vec::new();
    source.changed_extents(Some(from), 0..size, &mut |e| {
        extents.push(e);
        Ok(())
    })?;
    let edge = from_size.min(size);
    if from_size != size && !edge.is_multiple_of(CHECKSUM_BLOCK) {
        let start = edge - edge % CHECKSUM_BLOCK;
        let end = (start + CHECKSUM_BLOCK).min(size);
        extents = overlay_data(extents, Extent::data(start, end - start));
    }
    Ok(TransferPlan {
        size,
        extents,
        covers_volume: false,
    })
}

/// The source's snapshots, being listed for the pruning (see
/// `transfer_chain`); `None`: the pruning lists them.
pub(super) type Listing<'s> = Option<ScopedJoinHandle<'s, crate::image::Result<Vec<SnapshotInfo>>>>;

/// The pruning a commit started, if it succeeded.
pub(super) struct Pruning<'s>(Option<ScopedJoinHandle<'s, ()>>);

impl Pruning<'_> {
    pub fn wait(self) {
        if let Some(prune) = self.0 {
            joined(prune);
        }
    }
}

/// One try at a backup of a source with snapshots.
struct Attempt<'c> {
    chain: &'c Chain,
    /// The chain's base HEAD when the chain check opened it.
    base: Option<Box<dyn Image>>,
    /// What the early look saw of the source since the parent's snapshot.
    since_parent: SinceParent,
}

/// The early look's answer about the parent of the chain a backup goes to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum SinceParent {
    /// No change just before the new snapshot, and the chain carries an
    /// unchanged source forward: try that (checked again first).
    Unchanged,
    /// Changed: the new snapshot differs from the parent's.
    Changed,
    NotLooked,
}

impl SinceParent {
    fn of(looked: Option<EarlyLook>, chain: &Chain) -> Self {
        let parent = match chain {
            Chain::Continue { parent, .. } => parent.id,
            Chain::New { .. } => return SinceParent::NotLooked,
        };
        match looked {
            Some(look) if look.since != parent => SinceParent::NotLooked,
            Some(look) if look.changed => SinceParent::Changed,
            Some(_) if carries_forward(chain) => SinceParent::Unchanged,
            _ => SinceParent::NotLooked,
        }
    }
}

/// What a scoped thread returned; its panic goes on.
pub(super) fn joined<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
