//! The next backup of a source unchanged since its parent: nothing is read
//! or written, the base's HEAD (which the chain check proved equal to the
//! parent's snapshot) is the new backup as it is.
//!
//! Whether the source changed is known only once its new snapshot exists,
//! and asking costs round trips (RBD: a header refresh, since making the
//! snapshot notified the image's watchers, this process among them, then
//! the object maps). When the source showed no change just before its
//! snapshot was made, that answer is awaited while the base is snapshotted
//! instead of before: should it say changed after all (a write landed in
//! between), the base's new snapshot is removed again and the changes are
//! copied as usual. Nothing is published before the answer.

use super::backup::{snapshot_base, BackupRequest, Committed, Transferred};
use super::chain::Chain;
use super::copy::CopyStats;
use super::digest_objects::{segments_owner, DIGESTS_IN};
use super::digests::NewDigests;
use super::error::{EngineError, EngineResult};
use super::snapshotted::joined;
use super::Engine;
use crate::catalog::BackupRecord;
use crate::image::{Image, Snapshots};
use crate::progress::timed;
use uuid::Uuid;

impl Engine<'_> {
    /// The parent, when the chain continues from a source unchanged since
    /// the parent's snapshot: the new snapshot has the parent's size, the
    /// base (`clean`) has no known damage, and the source's HEAD shows no
    /// change since the parent's snapshot (a diff to HEAD covers every
    /// later snapshot, the new one among them). Then the snapshot is
    /// neither opened nor read: each open costs dozens of round trips.
    pub(super) fn unchanged_parent<'c>(
        &self,
        head: &dyn Image,
        snaps: &dyn Snapshots,
        chain: &'c Chain,
        clean: bool,
        record: &BackupRecord,
    ) -> EngineResult<Option<&'c BackupRecord>> {
        let Chain::Continue {
            parent,
            digests: true,
            ..
        } = chain
        else {
            return Ok(None);
        };
        if !clean {
            return Ok(None);
        }
        let made = snaps
            .list()?
            .into_iter()
            .find(|s| s.name == record.snapshot);
        let same_size = made.is_some_and(|s| s.size == parent.size) && record.size == parent.size;
        if !same_size {
            return Ok(None);
        }
        let changed = timed(self.progress, "diff", || {
            head.changed_since(&parent.snapshot)
        })?;
        Ok((!changed).then_some(parent.as_ref()))
    }

    /// Snapshots `base` (which has no known damage) while
    /// [`Self::unchanged_parent`] answers, and publishes the backup when
    /// the source is unchanged; otherwise gives `base` back without the
    /// snapshot, for the changes to be copied.
    pub(super) fn publish_if_unchanged(
        &self,
        req: &BackupRequest<'_>,
        snaps: &dyn Snapshots,
        chain: &Chain,
        base: Box<dyn Image>,
        record: &mut BackupRecord,
    ) -> EngineResult<Option<Box<dyn Image>>> {
        let name = record.snapshot.clone();
        std::thread::scope(|s| {
            let snapping = s.spawn(move || {
                let made = snapshot_base(base.as_ref(), &name, self.progress);
                (base, made)
            });
            let unchanged = self.unchanged_parent(req.source, snaps, chain, true, record)?;
            tracing::debug!("unchanged since the parent: {}", unchanged.is_some());
            let Some(parent) = unchanged else {
                let (base, made) = joined(snapping);
                made?;
                unsnapshot(base.as_ref(), &record.snapshot)?;
                return Ok(Some(base));
            };
            // Before the pruning, which may remove the parent's names. The
            // base HEAD, unchanged since the parent's snapshot, needs no
            // flush before the commit.
            let checksum = carry_forward(self, parent, record)?;
            let committed = Committed {
                checksum: Some(checksum.clone()),
                bytes_read: 0,
                bytes_written: 0,
                digests: Some(NewDigests::Shared),
            };
            let (committed, pruning) =
                self.commit_then_prune(s, req, snaps, record, committed, None);
            let (base, made) = joined(snapping);
            let (done, _shared) = carried(base, checksum).into_published();
            let published = self.publish_snapshotted(req, record, made.and(committed), done);
            pruning.wait();
            published.map(|()| None)
        })
    }
}

/// Volumes up to this size get the early look, and larger ones whose
/// image answers "changed since?" at a cost independent of its size (RBD
/// reading its fast-diff object maps). Otherwise it is a diff of the
/// whole volume beside the chain check's diff of the base, whose cost
/// grows with the volume (librbd's whole-object diff: CPU per object, a
/// few ms at 4 GiB): at 1 TiB it took more than it saved (an unchanged
/// thin volume's backup went 0.59 -> 0.67 s on 2 cores under the 2 ms
/// profile).
const EARLY_LOOK_MAX_SIZE: u64 = 64 << 30;

/// What the early look saw: whether the source changed since the snapshot
/// of backup `since` (the latest), just before or while its new snapshot
/// was made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct EarlyLook {
    pub since: Uuid,
    pub changed: bool,
}

/// Looks at whether the source changed since `latest`'s snapshot just now;
/// `None` when it cannot tell cheaply. "Unchanged" is a guess to act on
/// early, checked again once the new snapshot exists; "changed" stays
/// true: what changed since a snapshot still has by any later moment.
pub(super) fn early_look(head: &dyn Image, latest: &BackupRecord) -> Option<EarlyLook> {
    let size_fits = |size| {
        size == latest.size && (size <= EARLY_LOOK_MAX_SIZE || head.changed_since_is_cheap())
    };
    if !head.size().is_ok_and(size_fits) {
        return None;
    }
    match head.changed_since(&latest.snapshot) {
        Ok(changed) => {
            tracing::debug!("early look: changed since {}: {changed}", latest.snapshot);
            Some(EarlyLook {
                since: latest.id,
                changed,
            })
        }
        Err(e) => {
            tracing::debug!("no early look at what changed: {e}");
            None
        }
    }
}

/// Whether `chain` continues in a way an unchanged source is carried
/// forward in: with its parent's digests, into the base the check opened.
/// (Its parent is the latest backup the early look compared against.)
pub(super) fn carries_forward(chain: &Chain) -> bool {
    matches!(
        chain,
        Chain::Continue {
            digests: true,
            base: Some(_),
            ..
        }
    )
}

/// Whether the store knows no damage in `base` (an unchanged backup would
/// publish a snapshot pointing at it).
pub(super) fn base_is_clean(base: Option<&dyn Image>) -> EngineResult<bool> {
    match base {
        Some(base) => Ok(base.known_damage()?.is_empty()),
        None => Ok(false),
    }
}

/// Removes the snapshot `name` of `base`, made before the source turned
/// out changed.
fn unsnapshot(base: &dyn Image, name: &str) -> EngineResult<()> {
    if let Some(snaps) = base.snapshots() {
        snaps.remove(name)?;
    }
    Ok(())
}

/// The next backup of a source unchanged since `parent`: the base's HEAD,
/// which the chain check proved equal to the parent's snapshot, is the new
/// backup as it is. The parent's digest file becomes the backup's (linked,
/// neither read nor rewritten: the cost does not grow with the volume;
/// whoever reads it later checks it against the same checksum), and so do
/// its digest segments in the store (the record names their owner). It is
/// linked here, before the pruning that may remove the parent's name.
/// Returns the checksum, which carries over.
fn carry_forward(
    engine: &Engine<'_>,
    parent: &BackupRecord,
    record: &mut BackupRecord,
) -> EngineResult<String> {
    let checksum = parent
        .checksum
        .clone()
        .ok_or_else(|| EngineError::Invalid("the parent has no checksum to carry".into()))?;
    engine.digests.link(parent.id, record.id)?;
    let owner = segments_owner(parent).to_string();
    record.metadata.insert(DIGESTS_IN.into(), owner);
    Ok(checksum)
}

/// What an unchanged backup publishes: nothing read, written or added.
fn carried(base: Box<dyn Image>, checksum: String) -> Transferred {
    Transferred {
        base,
        stats: CopyStats::default(),
        checksum: Some(checksum),
        digests: Some(NewDigests::Shared),
        added: Some(0),
    }
}

/// [`carry_forward`] into the base the chain check opened.
pub(super) fn carry_into(
    engine: &Engine<'_>,
    base: Option<Box<dyn Image>>,
    parent: &BackupRecord,
    record: &mut BackupRecord,
) -> EngineResult<Transferred> {
    let base = base.ok_or_else(|| EngineError::Invalid("no base to continue".into()))?;
    let checksum = carry_forward(engine, parent, record)?;
    Ok(carried(base, checksum))
}
