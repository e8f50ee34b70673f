//! Whether a backup continues its volume's chain, and why not.
//!
//! A chain continues from the volume's latest available backup in the same
//! store when its snapshot is still on the chain's base. For a source with
//! snapshots the incremental transfers only what changed between the two
//! source snapshots, so more must hold: the snapshot is still on the source,
//! the base's HEAD is unchanged since it (`rbd import-diff` does not check
//! this and silently diverges), and its block digests are at hand (this
//! host's copy, or the one in the store: see [`super::digest_objects`]).

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
        /// The chain's base HEAD, opened writable by the check (snapshot
        /// sources): the transfer writes through this handle, so the job
        /// opens the base once (each open costs several round trips).
        base: Option<Box<dyn Image>>,
    },
    /// A new chain; `reason` says why the old one could not continue.
    New { reason: Option<String> },
}

impl Engine<'_> {
    /// The chain of a backup into the store `store` whose newest available
    /// backup of the volume is `latest` ([`Self::latest_available`]).
    /// `source_snaps`: the source's snapshots, for a source that has them.
    pub(super) fn choose_chain(
        &self,
        latest: Option<BackupRecord>,
        store: &dyn Pool,
        mode: ChainMode,
        source_snaps: Option<&dyn Snapshots>,
    ) -> EngineResult<Chain> {
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
            None => base_has_snapshot(store, &latest, false).map(|(base, snap_size)| {
                let trackable = self.changes_trackable(store, base.as_ref(), snap_size, &latest);
                (trackable, None)
            }),
            Some(snaps) => self
                .differential_ready(store, &latest, snaps)
                .map(|base| (true, Some(base))),
        };
        Ok(match checked {
            Ok((digests, base)) => Chain::Continue {
                parent: Box::new(latest),
                digests,
                base,
            },
            Err(reason) => Chain::New {
                reason: Some(reason),
            },
        })
    }

    /// The volume's newest available backup in the store labelled
    /// `store_label`: the one a chain would continue from.
    pub(super) fn latest_available(
        &self,
        volume: uuid::Uuid,
        store_label: &str,
    ) -> EngineResult<Option<BackupRecord>> {
        Ok(self
            .catalog
            .list_backups(Some(volume))?
            .into_iter()
            .rfind(|b| b.status == BackupStatus::Available && b.store == store_label))
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
    fn changes_trackable(
        &self,
        store: &dyn Pool,
        base: &dyn Image,
        snap_size: u64,
        latest: &BackupRecord,
    ) -> bool {
        if base.dedups_writes() {
            return false;
        }
        if let Err(why) = self.parent_digests(store, latest) {
            tracing::warn!("{why}: the whole volume is written again");
            return false;
        }
        match head_unchanged(base, snap_size, latest) {
            Ok(()) => true,
            Err(why) => {
                tracing::warn!("{why}: the whole volume is written again");
                false
            }
        }
    }

    /// Checks everything an incremental from `latest` needs and returns
    /// the base HEAD (writable), or says why it cannot be done.
    fn differential_ready(
        &self,
        store: &dyn Pool,
        latest: &BackupRecord,
        source_snaps: &dyn Snapshots,
    ) -> Result<Box<dyn Image>, String> {
        let (base, snap_size) = base_has_snapshot(store, latest, true)?;
        let on_source = source_snaps.list().map_err(|e| e.to_string())?;
        if !on_source.iter().any(|s| s.name == latest.snapshot) {
            return Err(format!(
                "snapshot {} of the previous backup is missing on the source",
                latest.snapshot
            ));
        }
        head_unchanged(base.as_ref(), snap_size, latest)?;
        self.parent_digests_here(store, latest)?;
        Ok(base)
    }

    /// Like [`Self::parent_digests`], but this host's copy is only found,
    /// not read: an incremental reads it whole while deriving its own and
    /// fails (falling back to a full backup) when it does not make
    /// `latest`'s checksum, before anything it decided is published; a
    /// backup of an unchanged source links it without reading it. So a
    /// TiB volume's (1 GiB) is not hashed here as well.
    fn parent_digests_here(&self, store: &dyn Pool, latest: &BackupRecord) -> Result<(), String> {
        if latest.checksum.is_some() && self.digests.present(latest.id, latest.size) {
            return Ok(());
        }
        self.parent_digests(store, latest)
    }

    /// Puts `latest`'s block digests at hand (this host's copy, else the
    /// store's), or says why they cannot be.
    fn parent_digests(&self, store: &dyn Pool, latest: &BackupRecord) -> Result<(), String> {
        match self.digests_at_hand(store, latest) {
            Ok(true) => Ok(()),
            Ok(false) => Err(digests_missing(latest)),
            Err(e) => Err(format!(
                "the block digests of the previous backup {} are not here and the store's copy cannot be used: {e}",
                latest.id
            )),
        }
    }
}

/// Why the block digests of `latest` cannot be used.
fn digests_missing(latest: &BackupRecord) -> String {
    if latest.checksum.is_none() && is_adopted(latest) {
        format!(
            "the previous backup {} was adopted without checksums; run `blockback adopt --checksums` to record them and continue its chain",
            latest.id
        )
    } else {
        format!(
            "the block digests of the previous backup {} are missing",
            latest.id
        )
    }
}

/// Whether `backup` was recorded by `adopt` (from a store Cinder or a lost
/// catalog left) rather than made here.
fn is_adopted(backup: &BackupRecord) -> bool {
    backup.metadata.get("adopted").is_some_and(|v| v == "true")
}

/// Opens `latest`'s base HEAD (writable when `writable`, for the transfer
/// to reuse) and checks that its snapshot is there; returns the handle and
/// the snapshot's size.
fn base_has_snapshot(
    store: &dyn Pool,
    latest: &BackupRecord,
    writable: bool,
) -> Result<(Box<dyn Image>, u64), String> {
    let opened = match writable {
        true => store.open(&latest.image),
        false => store.open_read_only(&latest.image, None),
    };
    let base = match opened {
        Ok(b) => b,
        Err(e) if e.is_not_found() => return Err(format!("base image {} is gone", latest.image)),
        Err(e) => return Err(e.to_string()),
    };
    let snaps = base
        .snapshots()
        .ok_or("the store has no snapshots")?
        .list()
        .map_err(|e| e.to_string())?;
    match snaps.iter().find(|s| s.name == latest.snapshot) {
        Some(snap) => {
            let size = snap.size;
            Ok((base, size))
        }
        None => Err(format!(
            "snapshot {} of the previous backup is missing on {}",
            latest.snapshot, latest.image
        )),
    }
}

/// Fails when the base's HEAD differs from the snapshot of `latest` (of
/// `snap_size` bytes).
fn head_unchanged(base: &dyn Image, snap_size: u64, latest: &BackupRecord) -> Result<(), String> {
    let open_snap = || {
        base.snapshots()
            .ok_or_else(|| crate::image::ImageError::Invalid {
                what: base.describe(),
                why: "the store has no snapshots".into(),
            })?
            .open_snapshot(&latest.snapshot)
    };
    match super::head::head_equals_snapshot(base, snap_size, &latest.snapshot, open_snap) {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!(
            "base image {} was modified after snapshot {}",
            latest.image, latest.snapshot
        )),
        Err(e) => Err(e.to_string()),
    }
}
