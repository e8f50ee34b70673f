//! `backup create` as a typed request.

use crate::error::OpsResult;
use crate::Ops;
use blockback_core::catalog::BackupRecord;
use blockback_core::engine::{BackupRequest, ChainMode};
use std::collections::BTreeMap;

/// A backup of the volume `source` names into the configured store.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// The volume's address (file, device, `rbd:POOL/IMAGE[@SNAP]`, `local:IMAGE[@SNAP]`).
    pub source: String,
    /// The volume's name [default: the one recorded, else the source's file or image name].
    pub name: Option<String>,
    /// User metadata stored with the backup (Cinder's `volume-metadata`).
    pub metadata: BTreeMap<String, String>,
    pub mode: ChainMode,
    /// Backup snapshots kept on a source with snapshots, per chain (at least 1).
    pub keep_source_snapshots: usize,
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            source: String::new(),
            name: None,
            metadata: BTreeMap::new(),
            mode: ChainMode::Auto,
            keep_source_snapshots: 1,
        }
    }
}

impl Ops<'_> {
    /// Backs up a volume; returns the record of the available backup.
    pub fn backup(&self, options: &BackupOptions) -> OpsResult<BackupRecord> {
        let volume = self.volume(&options.source)?;
        let source_label = volume.label()?;
        let source = volume.open_source(&self.settings.volume_ceph, self.connections)?;
        let store = self.store(true)?;
        let request = BackupRequest {
            source: source.image.as_ref(),
            snapshot_source: source.snapshot_capable,
            source_label,
            volume_name: options.name.clone().unwrap_or_else(|| volume.short_name()),
            store: store.pool(),
            store_label: self.settings.store.label(),
            metadata: options
                .metadata
                .iter()
                .map(|(k, v)| (format!("user.{k}"), v.clone()))
                .collect(),
            mode: options.mode,
            keep_source_snapshots: options.keep_source_snapshots.max(1),
        };
        Ok(self.engine().backup(&request)?)
    }
}
