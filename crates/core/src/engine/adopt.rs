//! `adopt`: records the backups a backup pool already holds -- written by
//! Cinder's Ceph driver or by a blockback whose catalog is gone -- so they
//! can be listed, verified, restored and deleted.
//!
//! Recognised, by the reference's names:
//! - chain bases `volume-<vid>.backup.<first bid>` and the legacy
//!   `volume-<vid>.backup.base`: each backup snapshot
//!   `backup.<bid>.snap.<time>` on them is one backup (the first of an image
//!   full, the others incremental);
//! - full-copy images `volume-<vid>.backup.<bid>` without backup snapshots
//!   (Cinder's backups of sources without snapshots): the image's HEAD is
//!   the backup.
//!
//! Backups already in the catalog are left alone, so adopting twice adopts
//! nothing new. Cinder kept no checksums: without `checksums`, adopted
//! backups have none (`verify` reads and reports one, restores are not
//! checked against one) and the volume's next backup starts a new chain;
//! with it, each is read once for its checksum and the chain can continue
//! (see `adopt_checksums.rs`). Their metadata object, when present, becomes
//! their metadata.

use super::backup::{DISPLAY_DESCRIPTION, DISPLAY_NAME};
use super::error::EngineResult;
use super::{unix_now, Engine};
use crate::catalog::{BackupKind, BackupRecord, BackupStatus, VolumeRecord};
use crate::image::{Pool, SnapshotInfo};
use crate::metadata::{read_backup_metadata, BackupMetadata};
use crate::naming::parse_backup_snap;
use std::collections::BTreeMap;
use std::time::UNIX_EPOCH;
use uuid::Uuid;

/// What `adopt` found.
#[derive(Debug, Default)]
pub struct AdoptReport {
    pub adopted: Vec<BackupRecord>,
    /// Backups already in the catalog that got their checksum now.
    pub checksummed: Vec<BackupRecord>,
    /// Images with the reference's names that could not be adopted, and why.
    pub skipped: Vec<String>,
}

/// The backups of one store image: all of them, oldest first, and which
/// are new to the catalog.
#[derive(Default)]
struct ImageBackups {
    chain: Vec<BackupRecord>,
    is_new: Vec<bool>,
    /// Indices of known backups whose checksum was set here.
    checksummed: Vec<usize>,
}

/// A store image named like a backup image, parsed.
struct BackupImage {
    volume: Uuid,
    /// `base` for the legacy name, else a backup id.
    suffix: String,
}

impl ImageBackups {
    fn push(&mut self, record: BackupRecord, is_new: bool) {
        self.chain.push(record);
        self.is_new.push(is_new);
    }
}

fn parse_image_name(name: &str) -> Option<BackupImage> {
    let rest = name.strip_prefix("volume-")?;
    let (vid, suffix) = rest.split_once(".backup.")?;
    Some(BackupImage {
        volume: Uuid::parse_str(vid).ok()?,
        suffix: suffix.to_string(),
    })
}

impl Engine<'_> {
    /// Adopts every backup image of `store` (of volume `only`, when
    /// given); `source_of(volume id)` gives the source label recorded for
    /// a volume the catalog does not know. `checksums`: read each backup
    /// lacking a checksum to record one (and the newest one's block
    /// digests, so its chain can continue).
    pub fn adopt(
        &self,
        store: &dyn Pool,
        store_label: &str,
        source_of: &dyn Fn(&Uuid) -> String,
        checksums: bool,
        only: Option<Uuid>,
    ) -> EngineResult<AdoptReport> {
        let mut report = AdoptReport::default();
        for name in store.list()? {
            let Some(parsed) = parse_image_name(&name) else {
                continue;
            };
            if only.is_some_and(|v| v != parsed.volume) {
                continue;
            }
            let found = self
                .image_backups(store, store_label, &name, &parsed)
                .and_then(|mut found| {
                    if checksums {
                        self.add_checksums(store, &name, &mut found)?;
                    }
                    Ok(found)
                });
            match found {
                Ok(found) => self.record_found(found, parsed.volume, source_of, &mut report)?,
                Err(e) => report.skipped.push(format!("{name}: {e}")),
            }
        }
        Ok(report)
    }

    fn add_checksums(
        &self,
        store: &dyn Pool,
        name: &str,
        found: &mut ImageBackups,
    ) -> EngineResult<()> {
        match found.chain.as_mut_slice() {
            [full] if full.snapshot.is_empty() => {
                if full.checksum.is_none() {
                    self.checksum_full_copy(store, full)?;
                    found.checksummed.push(0);
                }
            }
            chain => found.checksummed = self.checksum_chain(store, name, chain)?,
        }
        found.checksummed.retain(|&i| !found.is_new[i]);
        Ok(())
    }

    /// Inserts the new backups of one image (under their volume) and
    /// updates the known ones that got a checksum.
    fn record_found(
        &self,
        found: ImageBackups,
        volume_id: Uuid,
        source_of: &dyn Fn(&Uuid) -> String,
        report: &mut AdoptReport,
    ) -> EngineResult<()> {
        for &i in &found.checksummed {
            self.catalog.update_backup(&found.chain[i])?;
            report.checksummed.push(found.chain[i].clone());
        }
        let mut new: Vec<BackupRecord> = found
            .chain
            .into_iter()
            .zip(found.is_new)
            .filter_map(|(r, is_new)| is_new.then_some(r))
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let volume = self.ensure_volume(volume_id, source_of)?;
        for r in new.iter_mut() {
            r.source = volume.source.clone();
            r.volume_id = volume.id;
            self.catalog.insert_backup(r)?;
        }
        report.adopted.append(&mut new);
        Ok(())
    }

    fn image_backups(
        &self,
        store: &dyn Pool,
        store_label: &str,
        name: &str,
        parsed: &BackupImage,
    ) -> EngineResult<ImageBackups> {
        let image = store.open_read_only(name, None)?;
        let snaps: Vec<SnapshotInfo> = match image.snapshots() {
            Some(s) => s.list()?,
            None => Vec::new(),
        };
        let mut backups: Vec<(Uuid, SnapshotInfo)> = snaps
            .into_iter()
            .filter_map(|s| {
                let id = Uuid::parse_str(&parse_backup_snap(&s.name)?.backup_id).ok()?;
                Some((id, s))
            })
            .collect();
        backups.sort_by_key(|b| b.1.timestamp);
        let template = Template {
            volume: parsed.volume,
            store: store_label,
            image: name,
        };
        let mut found = ImageBackups::default();
        if backups.is_empty() {
            let Ok(id) = Uuid::parse_str(&parsed.suffix) else {
                return Ok(found);
            };
            let (record, is_new) = match self.known(id)? {
                Some(known) => (known, false),
                None => {
                    let meta = read_backup_metadata(store, &id.to_string())?;
                    let size = image.size()?;
                    let record = template.record(id, size, None, String::new(), unix_now(), meta);
                    (record, true)
                }
            };
            found.push(record, is_new);
            return Ok(found);
        }
        let mut parent = None;
        for (id, snap) in backups {
            let (record, is_new) = match self.known(id)? {
                Some(known) => (known, false),
                None => {
                    let meta = read_backup_metadata(store, &id.to_string())?;
                    let at = snap
                        .timestamp
                        .duration_since(UNIX_EPOCH)
                        .map_or(0.0, |d| d.as_secs_f64());
                    let record = template.record(id, snap.size, parent, snap.name, at, meta);
                    (record, true)
                }
            };
            found.push(record, is_new);
            parent = Some(id);
        }
        Ok(found)
    }

    /// The catalog's record of backup `id`, if it has one.
    fn known(&self, id: Uuid) -> EngineResult<Option<BackupRecord>> {
        match self.catalog.backup(id) {
            Ok(record) => Ok(Some(record)),
            Err(crate::catalog::CatalogError::BackupNotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The volume the backups named after volume `id` belong to: the
    /// catalog's (by id, else by source), or a new record.
    fn ensure_volume(
        &self,
        id: Uuid,
        source_of: &dyn Fn(&Uuid) -> String,
    ) -> EngineResult<VolumeRecord> {
        if let Some(v) = self
            .catalog
            .list_volumes()?
            .into_iter()
            .find(|v| v.id == id)
        {
            return Ok(v);
        }
        let source = source_of(&id);
        if let Some(v) = self.catalog.volume_by_source(&source)? {
            return Ok(v);
        }
        let volume = VolumeRecord::new(id, source, format!("volume-{id}"), unix_now());
        self.catalog.insert_volume(&volume)?;
        Ok(volume)
    }
}

/// What the backups of one image share.
struct Template<'a> {
    volume: Uuid,
    store: &'a str,
    image: &'a str,
}

impl Template<'_> {
    fn record(
        &self,
        id: Uuid,
        size: u64,
        parent: Option<Uuid>,
        snapshot: String,
        at: f64,
        meta: Option<BackupMetadata>,
    ) -> BackupRecord {
        BackupRecord {
            id,
            volume_id: self.volume,
            source: String::new(),
            size,
            parent,
            kind: match parent {
                Some(_) => BackupKind::Incremental,
                None => BackupKind::Full,
            },
            status: BackupStatus::Available,
            store: self.store.to_string(),
            image: self.image.to_string(),
            snapshot,
            bytes_read: 0,
            bytes_written: 0,
            bytes_stored: 0,
            checksum: None,
            created_at: at,
            updated_at: unix_now(),
            completed_at: Some(at),
            error: None,
            pid: None,
            created_base: parent.is_none(),
            metadata: adopted_metadata(meta),
        }
    }
}

/// The catalog's metadata of an adopted backup.
fn adopted_metadata(meta: Option<BackupMetadata>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::from([("adopted".to_string(), "true".to_string())]);
    let Some(meta) = meta else { return out };
    for (k, v) in meta.volume {
        out.insert(format!("user.{k}"), v);
    }
    let text = |key: &str| meta.volume_base.get(key).and_then(|v| v.as_str());
    if let Some(name) = text("display_name").filter(|n| !n.is_empty()) {
        out.insert("volume.name".into(), name.to_string());
        out.insert(DISPLAY_NAME.into(), name.to_string());
    }
    if let Some(description) = text("display_description").filter(|d| !d.is_empty()) {
        out.insert(DISPLAY_DESCRIPTION.into(), description.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_image_names_parse_and_others_do_not() {
        let vid = "0f7a1b52-7e52-4d1a-9d3c-2b1d6c9e8a10";
        let legacy = parse_image_name(&format!("volume-{vid}.backup.base")).unwrap();
        assert_eq!(legacy.volume.to_string(), vid);
        assert_eq!(legacy.suffix, "base");
        let chain = parse_image_name(&format!("volume-{vid}.backup.{vid}")).unwrap();
        assert_eq!(chain.suffix, vid);
        assert!(parse_image_name("volume-xyz.backup.base").is_none());
        assert!(parse_image_name(&format!("volume-{vid}")).is_none());
        assert!(parse_image_name("bench-vol").is_none());
    }
}
