//! Backups of sources without snapshots (files, block devices): the whole
//! volume is read every time, since nothing says what changed.
//!
//! What is *written* depends on the store. A content-addressed store
//! (local) gets everything: rewriting data it holds stores nothing and
//! lets it check the copy it reuses. A store that keeps every write (RBD,
//! where an incremental is a base snapshot and each written object is a
//! new copy) gets only the checksum blocks whose digest differs from the
//! parent backup's: the parent's digest file says what the base's HEAD
//! holds, without reading the base back (one local file read per 32 KiB
//! block digest instead of a round trip to the OSDs per block, and no
//! read of the base at all). Blocks that became zero are zeroed in the
//! base; blocks that stayed zero are left alone. The new backup's digests
//! are written on the way, for the next incremental.

use super::backup::{snapshot_base, BackupRequest, Transferred};
use super::chain::Chain;
use super::copy::{copy_changed_to_sink, copy_to_sink, CopyOptions, CopyStats};
use super::digests::{DigestWriter, NewDigests};
use super::error::{EngineError, EngineResult};
use super::unchanged::TargetDigests;
use super::{Engine, TransferPlan};
use crate::catalog::BackupRecord;
use crate::image::{Image, ImageError, Pool};
use crate::progress::timed;

impl Engine<'_> {
    /// Transfers the source into the base, snapshots and publishes.
    pub(super) fn backup_whole(
        &self,
        req: &BackupRequest<'_>,
        chain: &Chain,
        record: &mut BackupRecord,
    ) -> EngineResult<()> {
        let parent = match chain {
            Chain::Continue {
                parent,
                digests: true,
                ..
            } => Some(parent.as_ref()),
            _ => None,
        };
        let result = self.transfer_whole(req, record, parent).and_then(|t| {
            // The base whole before its snapshot (see Pool::create_to_fill).
            t.base.flush()?;
            snapshot_base(t.base.as_ref(), &record.snapshot, self.progress)?;
            self.publish(req, record, t)
        });
        match result {
            // The parent is no longer the chain's latest: no incremental
            // of this source starts from it again.
            Ok(()) => {
                self.forget_parent_digests(req.store, record);
                Ok(())
            }
            Err(cause) => Err(self.fail(req.store, record, cause, &[])),
        }
    }

    /// `changed_since`: the parent whose digests describe the base's HEAD
    /// (only blocks that differ from them are written).
    fn transfer_whole(
        &self,
        req: &BackupRequest<'_>,
        record: &BackupRecord,
        changed_since: Option<&BackupRecord>,
    ) -> EngineResult<Transferred> {
        let plan = timed(self.progress, "diff", || TransferPlan::full(req.source))?;
        let base = match record.created_base {
            true => req
                .store
                .create_to_fill(&record.image, record.size, plan.data_bytes())?,
            false => req.store.open(&record.image)?,
        };
        if base.size()? != record.size {
            base.resize(record.size)?;
        }
        if base.dedups_writes() {
            let opts = CopyOptions {
                target_is_zero: record.created_base,
                ..self.copy
            };
            let stats = self.run_copy("backup", req.source, base.as_ref(), &plan, opts)?;
            return Ok(Transferred {
                base,
                checksum: stats.checksum.clone(),
                stats,
                digests: None,
                added: None,
            });
        }
        let held = match changed_since {
            Some(parent) => Some(self.digests.reader(parent.id, record.size)?),
            None => None,
        };
        let held = held.as_ref().map(|h| h as &dyn TargetDigests);
        let (mut stats, digests) = self.copy_whole_digested(
            "backup",
            (req.source, plan),
            base.as_ref(),
            record.created_base,
            held,
        )?;
        if held.is_some() {
            self.rewrite_known_damage("backup", req.source, base.as_ref(), &mut stats)?;
        }
        Ok(Transferred {
            base,
            checksum: stats.checksum.clone(),
            // A new base holds what was written; an old one's diff says
            // what changed (zeroed ranges too, which count nothing here).
            added: record.created_base.then_some(stats.bytes_written),
            stats,
            digests: Some(NewDigests::Written(digests)),
        })
    }

    /// Copies all of `source` into `dst` (which reads as zeros), writing
    /// the block digests to a new digest file as they come.
    pub(super) fn copy_all_digested(
        &self,
        label: &str,
        source: &dyn Image,
        dst: &dyn Image,
    ) -> EngineResult<(CopyStats, DigestWriter)> {
        let plan = timed(self.progress, "diff", || TransferPlan::full(source))?;
        self.copy_whole_digested(label, (source, plan), dst, true, None)
    }

    /// Copies all of `source` into `dst`, writing the block digests to a
    /// new digest file as they come. `dst` reads as zeros when
    /// `target_is_zero`; `held`, when given, says what it holds (blocks
    /// whose digest it already has are not written).
    pub(super) fn copy_whole_digested(
        &self,
        label: &str,
        (source, plan): (&dyn Image, TransferPlan),
        dst: &dyn Image,
        target_is_zero: bool,
        held: Option<&dyn TargetDigests>,
    ) -> EngineResult<(CopyStats, DigestWriter)> {
        let opts = CopyOptions {
            target_is_zero,
            ..self.copy
        };
        let mut writer = self.digests.writer(plan.size)?;
        let mut sink = |digests: &[(u64, [u8; 32])]| -> crate::image::Result<()> {
            for (_, d) in digests {
                writer
                    .push(d)
                    .map_err(|e| ImageError::from_io("block digests", e))?;
            }
            Ok(())
        };
        let progress = self.progress;
        let stats = self.transfer_phase(label, plan.size, || match held {
            Some(held) => copy_changed_to_sink(source, dst, &plan, opts, progress, &mut sink, held),
            None => copy_to_sink(source, dst, &plan, opts, progress, Some(&mut sink)),
        })?;
        Ok((stats, writer))
    }

    /// Removes the digests of `record`'s parent (1/1024 of the volume),
    /// best effort: should `record` be deleted, an incremental from the
    /// parent writes everything again, as without digests.
    fn forget_parent_digests(&self, store: &dyn Pool, record: &BackupRecord) {
        let Some(parent) = record.parent else { return };
        let removed = self
            .catalog
            .backup(parent)
            .map_err(EngineError::from)
            .and_then(|p| self.remove_digests(store, &p));
        if let Err(e) = removed {
            tracing::warn!("block digests of backup {parent} left: {e}");
        }
    }
}
