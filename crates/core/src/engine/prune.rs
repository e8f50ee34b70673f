//! Source snapshots: keep only what the next incremental needs.
//!
//! Every backup of a source with snapshots leaves `backup.<id>.snap.<time>`
//! on the source, pinning copy-on-write space there (the reference driver
//! never removes them). After a backup, the source keeps the snapshots of
//! the newest `keep` available backups of the chain just written. Removed:
//! snapshots of this catalog's other backups of the same volume in the same
//! store (older in the chain, abandoned chains, failed attempts). Never
//! touched: snapshots that are not backup snapshots, and those of backups
//! this catalog does not know or that went to another store (those chains
//! are counted and pruned on their own). A backup whose source snapshot
//! goes can no longer be a parent: its block digests go too, here and in
//! the store.

use super::digest_objects::Holders;
use super::Engine;
use crate::catalog::{BackupRecord, BackupStatus};
use crate::image::{Pool, SnapshotInfo, Snapshots};
use crate::naming::parse_backup_snap;
use std::collections::HashSet;
use uuid::Uuid;

impl Engine<'_> {
    /// Prunes after `record` was committed; problems are notes, not failures
    /// (the backup is complete; the next one prunes again). `listed`: the
    /// source's snapshots if already listed since `record`'s was made (the
    /// volume lock keeps other backups of it from adding any).
    pub(super) fn prune_source_snapshots(
        &self,
        store: &dyn Pool,
        snaps: &dyn Snapshots,
        record: &BackupRecord,
        keep: usize,
        listed: Option<Vec<SnapshotInfo>>,
    ) {
        if let Err(e) = self.try_prune(store, snaps, record, keep.max(1), listed) {
            self.progress
                .note(&format!("could not prune old source snapshots: {e}"));
        }
    }

    fn try_prune(
        &self,
        store: &dyn Pool,
        snaps: &dyn Snapshots,
        record: &BackupRecord,
        keep: usize,
        listed: Option<Vec<SnapshotInfo>>,
    ) -> super::EngineResult<()> {
        // The backup being published as this process has it: its record in
        // the catalog may not yet say whose digest segments it shares.
        let same_store: Vec<BackupRecord> = self
            .catalog
            .list_backups(Some(record.volume_id))?
            .into_iter()
            .filter(|b| b.store == record.store)
            .map(|b| if b.id == record.id { record.clone() } else { b })
            .collect();
        let keepers = keepers(&same_store, record, keep);
        let holders: Vec<&BackupRecord> = same_store
            .iter()
            .filter(|b| keepers.contains(&b.id))
            .collect();
        let ours: HashSet<Uuid> = same_store.iter().map(|b| b.id).collect();
        let listed = match listed {
            Some(listed) => listed,
            None => snaps.list()?,
        };
        for snap in listed {
            let doomed = parse_backup_snap(&snap.name)
                .and_then(|p| Uuid::parse_str(&p.backup_id).ok())
                .filter(|id| ours.contains(id) && !keepers.contains(id));
            let Some(doomed) = doomed else {
                continue;
            };
            snaps.remove(&snap.name)?;
            tracing::info!("removed source snapshot {} (no longer needed)", snap.name);
            // No incremental starts from that backup again, on any host.
            if let Some(b) = same_store.iter().find(|b| b.id == doomed) {
                self.remove_store_digests(store, b, Holders::These(&holders))?;
            }
        }
        for b in same_store.iter().filter(|b| !keepers.contains(&b.id)) {
            self.digests.remove(b.id)?;
        }
        Ok(())
    }
}

/// The newest `keep` available backups of `record`'s chain (it included).
fn keepers(backups: &[BackupRecord], record: &BackupRecord, keep: usize) -> HashSet<Uuid> {
    let mut chain: Vec<&BackupRecord> = backups
        .iter()
        .filter(|b| b.image == record.image)
        .filter(|b| {
            matches!(b.status, BackupStatus::Available | BackupStatus::Restoring)
                || b.id == record.id
        })
        .collect();
    chain.sort_by(|a, b| a.created_at.total_cmp(&b.created_at));
    chain.iter().rev().take(keep).map(|b| b.id).collect()
}
