//! Whether a backup continues its volume's chain, and why not.
//!
//! A chain continues from the volume's latest available backup in the same
//! store when its snapshot is still on the chain's base. For a source with
//! snapshots the incremental transfers only what changed between the two
//! source snapshots, so more must hold: the snapshot is still on the source,
//! the base's HEAD is unchanged since it (`rbd import-diff` does not check
//! this and silently diverges), and its block digests are at hand.

use super::error::EngineResult;
use super::Engine;
use crate::catalog::{effective_policy, BackupRecord, BackupStatus};
use crate::image::{Image, Pool, Snapshots};

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChainMode {
    /// Continue the chain when possible, otherwise start a new one.
    #[default]
    Auto,
    /// Always start a new chain.
    Full,
    /// Continue the chain or fail.
    Incremental,
}

/// The chain a backup goes to.
pub(super) enum Chain {
    Continue {
        parent: Box<BackupRecord>,
        /// Whether the parent's block digests are at hand and describe the
        /// base's HEAD: always for snapshot sources; for sources without
        /// snapshots, whether only changed blocks need writing.
        digests: bool,
    },
    /// A new chain; `reason` says why the old one could not continue.
    New { reason: Option<String> },
}

impl Engine<'_> {
    /// The chain of a backup of `volume` into `store_label`.
    /// `source_snaps`: the source's snapshots, for a source that has them.
    pub(super) fn choose_chain(
        &self,
        volume: uuid::Uuid,
        store: &dyn Pool,
        store_label: &str,
        mode: ChainMode,
        source_snaps: Option<&dyn Snapshots>,
    ) -> EngineResult<Chain> {
        let latest = self
            .catalog
            .list_backups(Some(volume))?
            .into_iter()
            .rfind(|b| b.status == BackupStatus::Available && b.store == store_label);
        let Some(latest) = latest else {
            return Ok(Chain::New { reason: None });
        };
        if mode == ChainMode::Full {
            return Ok(Chain::New {
                reason: Some("a full backup was requested".into()),
            });
        }
        if let Some(reason) = self.chain_at_max_length(&latest)? {
            return Ok(Chain::New {
                reason: Some(reason),
            });
        }
        let checked = match source_snaps {
            None => base_has_snapshot(store, &latest)
                .map(|base| self.changes_trackable(store, base.as_ref(), &latest)),
            Some(snaps) => self
                .differential_ready(store, &latest, snaps)
                .map(|()| true),
        };
        Ok(match checked {
            Ok(digests) => Chain::Continue {
                parent: Box::new(latest),
                digests,
            },
            Err(reason) => Chain::New {
                reason: Some(reason),
            },
        })
    }

    /// Why `latest`'s chain may not grow: it holds as many backups (base
    /// snapshots) as the volume's policy allows.
    fn chain_at_max_length(&self, latest: &BackupRecord) -> EngineResult<Option<String>> {
        let policy = effective_policy(self.catalog, latest.volume_id, &latest.store)?;
        let Some(max) = policy.and_then(|(_, p)| p.max_chain_length) else {
            return Ok(None);
        };
        let length = self
            .catalog
            .list_backups(Some(latest.volume_id))?
            .iter()
            .filter(|b| b.store == latest.store && b.image == latest.image)
            .filter(|b| matches!(b.status, BackupStatus::Available | BackupStatus::Restoring))
            .count();
        Ok((length >= max as usize).then(|| {
            format!(
                "chain {} holds {length} backups, the policy's max-chain-length is {max}",
                latest.image
            )
        }))
    }

    /// Whether a source without snapshots may write only the blocks that
    /// differ from `latest`: the base stores every write (rewriting held
    /// data is free otherwise, and lets a content-addressed store check
    /// what it reuses), `latest`'s digests are valid, and the HEAD still
    /// equals `latest`'s snapshot. Otherwise everything is written, as
    /// before: slower, never wrong.
    fn changes_trackable(&self, store: &dyn Pool, base: &dyn Image, latest: &BackupRecord) -> bool {
        if base.dedups_writes() {
            return false;
        }
        let checksum = latest.checksum.as_deref().unwrap_or_default();
        if !self.digests.valid(latest.id, checksum) {
            return false;
        }
        match head_unchanged(store, base, latest) {
            Ok(()) => true,
            Err(why) => {
                tracing::warn!("{why}: the whole volume is written again");
                false
            }
        }
    }

    /// Checks everything an incremental from `latest` needs, or says why
    /// it cannot be done.
    fn differential_ready(
        &self,
        store: &dyn Pool,
        latest: &BackupRecord,
        source_snaps: &dyn Snapshots,
    ) -> Result<(), String> {
        let base = base_has_snapshot(store, latest)?;
        let on_source = source_snaps.list().map_err(|e| e.to_string())?;
        if !on_source.iter().any(|s| s.name == latest.snapshot) {
            return Err(format!(
                "snapshot {} of the previous backup is missing on the source",
                latest.snapshot
            ));
        }
        head_unchanged(store, base.as_ref(), latest)?;
        let checksum = latest.checksum.as_deref().unwrap_or_default();
        match self.digests.valid(latest.id, checksum) {
            true => Ok(()),
            false if latest.checksum.is_none() && is_adopted(latest) => Err(format!(
                "the previous backup {} was adopted without checksums; run `blockback adopt --checksums` to record them and continue its chain",
                latest.id
            )),
            false => Err(format!(
                "the block digests of the previous backup {} are missing",
                latest.id
            )),
        }
    }
}

/// Whether `backup` was recorded by `adopt` (from a store Cinder or a lost
/// catalog left) rather than made here.
fn is_adopted(backup: &BackupRecord) -> bool {
    backup.metadata.get("adopted").is_some_and(|v| v == "true")
}

/// Opens `latest`'s base (HEAD, read-only) and checks that its snapshot is there.
fn base_has_snapshot(store: &dyn Pool, latest: &BackupRecord) -> Result<Box<dyn Image>, String> {
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
        Ok(base)
    } else {
        Err(format!(
            "snapshot {} of the previous backup is missing on {}",
            latest.snapshot, latest.image
        ))
    }
}

/// Fails when the base's HEAD differs from the snapshot of `latest`.
fn head_unchanged(store: &dyn Pool, base: &dyn Image, latest: &BackupRecord) -> Result<(), String> {
    let snap = store
        .open_read_only(&latest.image, Some(&latest.snapshot))
        .map_err(|e| e.to_string())?;
    match super::head::head_equals_snapshot(base, snap.as_ref(), &latest.snapshot) {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!(
            "base image {} was modified after snapshot {}",
            latest.image, latest.snapshot
        )),
        Err(e) => Err(e.to_string()),
    }
}
