//! `adopt --checksums`: reads adopted backups once to record what Cinder
//! never kept -- each backup's volume checksum, so `verify` and restores
//! check them from then on, and the newest backup's block digests, so the
//! next backup of the volume continues the chain incrementally instead of
//! starting a new one (on any host: they are published in the store too).
//!
//! A chain is read in snapshot order: its first backup whole, each later
//! one only where it changed since the one before (the same derivation as
//! an incremental backup), so the cost is one volume plus the changes. A
//! backup that already has a checksum and valid digests is not read; one
//! that has a checksum but no digests is read and must reproduce it. The
//! checksum records the backup as it is stored when adopted: it protects
//! it from then on, it cannot vouch for what happened before.

use super::digests::DigestWriter;
use super::error::EngineResult;
use super::restore::check_checksum;
use super::{Engine, NullImage};
use crate::catalog::BackupRecord;
use crate::image::{Image, Pool};

impl Engine<'_> {
    /// Gives every backup of the chain on `image` (oldest first) its
    /// checksum; keeps block digests only for the newest. Returns the
    /// indices of the records that had no checksum and got one here.
    pub(super) fn checksum_chain(
        &self,
        store: &dyn Pool,
        image: &str,
        chain: &mut [BackupRecord],
    ) -> EngineResult<Vec<usize>> {
        let mut parent: Option<usize> = None;
        let (mut read, mut summed) = (Vec::new(), Vec::new());
        for i in 0..chain.len() {
            if self.has_digests(store, &chain[i]) {
                parent = Some(i);
                continue;
            }
            let at = store.open_read_only(image, Some(&chain[i].snapshot))?;
            let (digests, checksum) = match parent {
                Some(p) => self.digest_changes(at.as_ref(), &chain[p])?,
                None => self.digest_whole(at.as_ref())?,
            };
            check_checksum(&chain[i], Some(&checksum))?;
            self.digests.commit(chain[i].id, digests)?;
            if chain[i].checksum.is_none() {
                summed.push(i);
            }
            chain[i].checksum = Some(checksum);
            read.push(i);
            parent = Some(i);
        }
        // Only the newest backup's digests serve a next incremental, on
        // any host: they go to the store before the catalog records them.
        let newest = chain.len().saturating_sub(1);
        for &i in read.iter().filter(|&&i| i != newest) {
            self.digests.remove(chain[i].id)?;
        }
        // (A backup sharing another's segments has them there already.)
        let owns = |b: &&BackupRecord| super::digest_objects::segments_owner(b) == b.id;
        if let Some(last) = chain.last().filter(owns) {
            self.publish_digests(store, last.id)?;
        }
        Ok(summed)
    }

    /// Reads a full-copy backup (the image's HEAD) for its checksum.
    pub(super) fn checksum_full_copy(
        &self,
        store: &dyn Pool,
        record: &mut BackupRecord,
    ) -> EngineResult<()> {
        let head = store.open_read_only(&record.image, None)?;
        let (digests, checksum) = self.digest_whole(head.as_ref())?;
        drop(digests);
        check_checksum(record, Some(&checksum))?;
        record.checksum = Some(checksum);
        Ok(())
    }

    /// Whether `record`'s digests are at hand; a damaged copy in the store
    /// is read again from the backup.
    fn has_digests(&self, store: &dyn Pool, record: &BackupRecord) -> bool {
        self.digests_at_hand(store, record).unwrap_or_else(|e| {
            tracing::warn!("{e}; backup {} is read again", record.id);
            false
        })
    }

    fn digest_whole(&self, at: &dyn Image) -> EngineResult<(DigestWriter, String)> {
        let null = NullImage { size: at.size()? };
        let (stats, digests) = self.copy_all_digested("adopt", at, &null)?;
        let checksum = stats.checksum.ok_or_else(|| {
            super::EngineError::Invalid(format!("{}: no checksum was made", at.describe()))
        })?;
        Ok((digests, checksum))
    }

    fn digest_changes(
        &self,
        at: &dyn Image,
        parent: &BackupRecord,
    ) -> EngineResult<(DigestWriter, String)> {
        let null = NullImage { size: at.size()? };
        let copied = self.copy_changes_digested("adopt", at, &null, parent, None)?;
        Ok((copied.digests, copied.checksum))
    }
}
