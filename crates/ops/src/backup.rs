//! `backup create` as a typed request.

use crate::error::OpsResult;
use crate::Ops;
use blockback_core::catalog::BackupRecord;
use blockback_core::engine::{BackupRequest, ChainMode, DISPLAY_DESCRIPTION, DISPLAY_NAME};
use blockback_core::metadata::BackupMetadata;
use std::collections::BTreeMap;

/// A backup of the volume `source` names into the configured store.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// The volume's address (file, device, `rbd:POOL/IMAGE[@SNAP]`, `local:IMAGE[@SNAP]`).
    pub source: String,
    /// The volume's display name (Cinder's `display_name`) [default: the
    /// one its previous backups recorded, else none; the catalog then
    /// names the volume after its file or image].
    pub name: Option<String>,
    /// The volume's description (Cinder's `display_description`)
    /// [default: the one its previous backups recorded, else none].
    pub description: Option<String>,
    /// User metadata stored with the backup (Cinder's `volume-metadata`).
    pub metadata: BTreeMap<String, String>,
    pub mode: ChainMode,
    /// Backup snapshots kept on a source with snapshots, per chain (at least 1).
    pub keep_source_snapshots: usize,
    /// The new backup's id, when the caller chose it (the service does, at
    /// submission) [default: a new one].
    pub id: Option<uuid::Uuid>,
    /// The volume's id, when the caller chose it (Cinder's volume id,
    /// which the store's image names carry) [default: the catalog's id of
    /// the source, else a new one].
    pub volume_id: Option<uuid::Uuid>,
    /// The `backup.<id>.meta` object to store as given (Cinder's backup
    /// metadata API gives the whole volume row) [default: one made from
    /// the name, description and metadata above].
    pub metadata_object: Option<BackupMetadata>,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            source: String::new(),
            name: None,
            description: None,
            metadata: BTreeMap::new(),
            mode: ChainMode::Auto,
            keep_source_snapshots: 1,
            id: None,
            volume_id: None,
            metadata_object: None,
        }
    }
}

impl Ops<'_> {
    /// Backs up a volume; returns the record of the available backup.
    pub fn backup(&self, options: &BackupOptions) -> OpsResult<BackupRecord> {
        let volume = self.volume(&options.source)?;
        let label = volume.label()?;
        let metadata = self.record_metadata(options, &label)?;
        let source = volume.open_source(
            &self.settings.volume_ceph,
            self.connections,
            &self.settings.volume_keys(),
        )?;
        let store = self.store(true)?;
        let request = BackupRequest {
            source: source.image.as_ref(),
            snapshot_source: source.snapshot_capable,
            source_label: label,
            volume_name: options.name.clone().unwrap_or_else(|| volume.short_name()),
            store: store.pool(),
            store_label: self.settings.store.label(),
            metadata,
            mode: options.mode,
            keep_source_snapshots: options.keep_source_snapshots.max(1),
            id: options.id,
            volume_id: options.volume_id,
            volume_metadata: options.metadata_object.clone(),
        };
        let engine = self.engine();
        let record = engine.backup(&request);
        // The source closes while the engine finishes closing the base.
        drop(request);
        drop(source);
        drop(engine);
        Ok(record?)
    }

    /// The backup's record metadata: the user's keys, and the volume's
    /// display name and description -- given, or kept from the volume's
    /// latest backup that recorded them.
    fn record_metadata(
        &self,
        options: &BackupOptions,
        label: &str,
    ) -> OpsResult<BTreeMap<String, String>> {
        let mut out: BTreeMap<String, String> = options
            .metadata
            .iter()
            .map(|(k, v)| (format!("user.{k}"), v.clone()))
            .collect();
        let given = [
            (DISPLAY_NAME, &options.name),
            (DISPLAY_DESCRIPTION, &options.description),
        ];
        for (key, value) in given {
            let value = match value {
                Some(v) => Some(v.clone()),
                None => self.recorded(label, key)?,
            };
            if let Some(v) = value.filter(|v| !v.is_empty()) {
                out.insert(key.to_string(), v);
            }
        }
        Ok(out)
    }

    /// `key` of the newest backup of the volume labelled `label` that has it.
    fn recorded(&self, label: &str, key: &str) -> OpsResult<Option<String>> {
        let Some(volume) = self.catalog.volume_by_source(label)? else {
            return Ok(None);
        };
        let backups = self.catalog.list_backups(Some(volume.id))?;
        Ok(backups
            .iter()
            .rev()
            .find_map(|b| b.metadata.get(key).cloned()))
    }
}
