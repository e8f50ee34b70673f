//! Serving a backup over NBD: what an export of a backup holds (the
//! backup's shared lock, its image, a copy-on-write overlay when
//! writable) and how it ends (the overlay discarded, kept, or turned into
//! a new backup of the volume). The server itself is `blockback-nbd`.

use crate::error::{invalid, OpsResult};
use crate::Ops;
use blockback_core::catalog::BackupRecord;
use blockback_core::engine::{BackupHold, BackupRequest, ChainMode, DISPLAY_DESCRIPTION};
use blockback_core::image::cow::{BlockMap, CowImage, FileMapStore};
use blockback_core::image::file::FileImage;
use blockback_core::image::Image;
use blockback_nbd::Export;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Copy-on-write granularity of overlays: small, since clients write
/// little and every first write to a block copies it whole.
const OVERLAY_BLOCK: u64 = 64 * 1024;

/// An export of one backup.
#[derive(Debug, Clone, Default)]
pub struct ExportOptions {
    /// Backup id or unique prefix; the export is named by the full id.
    pub backup: String,
    /// Accept writes, into a copy-on-write overlay.
    pub writable: bool,
    /// The overlay file (writable only): kept with its map at
    /// `PATH.map` when the export ends, and continued when it exists.
    /// Without it the overlay is a temporary file, discarded at the end.
    pub overlay: Option<PathBuf>,
}

/// An export of a backup, ready to be added to a server; what it holds
/// until [`Ops::close_export`].
pub struct BackupExport {
    pub record: BackupRecord,
    pub export: Option<Export>,
    image: Arc<dyn Image>,
    overlay: Option<Overlay>,
    hold: BackupHold,
}

struct Overlay {
    path: PathBuf,
    cow: Arc<CowImage>,
    /// Removed with its map when the export ends.
    temporary: Option<tempfile::TempDir>,
}

/// How an export ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExportEnd {
    /// A temporary overlay is removed, a named one kept.
    #[default]
    Close,
    /// The view (backup plus writes) becomes a new backup of the volume.
    SaveAsBackup,
}

/// What closing an export did.
#[derive(Debug, Clone, Default)]
pub struct ExportClosed {
    /// The overlay kept, when named.
    pub overlay_kept: Option<PathBuf>,
    /// The backup made from the view.
    pub saved: Option<BackupRecord>,
}

impl BackupExport {
    /// The image served (the overlay view when writable).
    pub fn image(&self) -> &Arc<dyn Image> {
        &self.image
    }

    pub fn overlay_path(&self) -> Option<&Path> {
        self.overlay.as_ref().map(|o| o.path.as_path())
    }
}

impl Ops<'_> {
    /// Opens a backup for serving: checks it can be read and holds its
    /// shared lock (so it is not deleted while served).
    pub fn open_export(&self, options: &ExportOptions) -> OpsResult<BackupExport> {
        let record = self.backup_record(&options.backup)?;
        if options.overlay.is_some() && !options.writable {
            return invalid("--overlay holds the writes of a writable export; add --writable");
        }
        let hold = self.engine().hold_backup(&record)?;
        let opened = self.open_export_image(hold.backup(), options);
        let (image, overlay) = match opened {
            Ok(v) => v,
            Err(e) => {
                let _ = self.engine().release_backup(hold);
                return Err(e);
            }
        };
        let record = hold.backup().clone();
        let description = format!(
            "backup {} of {} ({})",
            record.id,
            record.source,
            if options.writable {
                "copy-on-write"
            } else {
                "read-only"
            }
        );
        let export = Export::new(
            record.id.to_string(),
            description,
            image.clone(),
            options.writable,
        )?;
        Ok(BackupExport {
            record,
            export: Some(export),
            image,
            overlay,
            hold,
        })
    }

    fn open_export_image(
        &self,
        record: &BackupRecord,
        options: &ExportOptions,
    ) -> OpsResult<(Arc<dyn Image>, Option<Overlay>)> {
        let store = self.store_of(record)?;
        let base: Arc<dyn Image> = Arc::from(
            store
                .pool()
                .open_read_only(&record.image, record.restore_point())?,
        );
        if !options.writable {
            return Ok((base, None));
        }
        let overlay = open_overlay(base, record, options.overlay.as_deref())?;
        Ok((overlay.cow.clone(), Some(overlay)))
    }

    /// Ends an export the server no longer serves (remove it from the
    /// server first): saves or discards the overlay, releases the backup.
    pub fn close_export(&self, export: BackupExport, end: ExportEnd) -> OpsResult<ExportClosed> {
        let mut closed = ExportClosed::default();
        let result = self.finish_overlay(&export, end, &mut closed);
        let BackupExport { hold, overlay, .. } = export;
        if let Some(o) = overlay {
            if o.temporary.is_none() {
                closed.overlay_kept = Some(o.path.clone());
            }
        }
        let released = self.engine().release_backup(hold);
        result?;
        released?;
        Ok(closed)
    }

    fn finish_overlay(
        &self,
        export: &BackupExport,
        end: ExportEnd,
        closed: &mut ExportClosed,
    ) -> OpsResult<()> {
        let Some(overlay) = &export.overlay else {
            if end == ExportEnd::SaveAsBackup {
                return invalid(
                    "a read-only export has no writes to save; serve it with --writable",
                );
            }
            return Ok(());
        };
        overlay.cow.save_map()?;
        if end == ExportEnd::SaveAsBackup {
            closed.saved = Some(self.save_view(&export.record, overlay.cow.as_ref())?);
        }
        Ok(())
    }

    /// Backs up the export's view as a new backup of the backup's volume.
    fn save_view(&self, record: &BackupRecord, view: &dyn Image) -> OpsResult<BackupRecord> {
        let store = self.store_of(record)?;
        let mut metadata = BTreeMap::new();
        metadata.insert(
            DISPLAY_DESCRIPTION.to_string(),
            format!(
                "backup {} with the writes made through its NBD export",
                record.id
            ),
        );
        let volume = self.catalog.volume(record.volume_id)?;
        let request = BackupRequest {
            source: view,
            snapshot_source: false,
            source_label: record.source.clone(),
            volume_name: volume.name,
            store: store.pool(),
            store_label: record.store.clone(),
            metadata,
            mode: ChainMode::Auto,
            keep_source_snapshots: 1,
            id: None,
            volume_id: None,
            volume_metadata: None,
        };
        Ok(self.engine().backup(&request)?)
    }
}

/// The overlay: a sparse file of the backup's size and its map.
fn open_overlay(
    base: Arc<dyn Image>,
    record: &BackupRecord,
    path: Option<&Path>,
) -> OpsResult<Overlay> {
    let size = record.size;
    let (path, temporary) = match path {
        Some(p) => (crate::address::absolute(p)?, None),
        None => {
            let dir = tempfile::Builder::new()
                .prefix("blockback-overlay.")
                .tempdir()
                .map_err(|e| crate::OpsError::Invalid(format!("cannot make an overlay: {e}")))?;
            (dir.path().join("overlay"), Some(dir))
        }
    };
    let store = FileMapStore::new(map_path(&path));
    let (top, map, fresh) = match store.load()? {
        Some(bytes) if path.exists() => {
            let map = BlockMap::decode(size, OVERLAY_BLOCK, &bytes).ok_or_else(|| {
                crate::OpsError::Invalid(format!(
                    "overlay {} does not belong to backup {} (its map does not fit); give a new overlay path",
                    path.display(),
                    record.id
                ))
            })?;
            (FileImage::open(&path, true)?, map, false)
        }
        _ if path.exists() => {
            return invalid(format!(
                "overlay {} exists without its map {}; give a new path (an overlay is made by blockback nbd --writable)",
                path.display(),
                store.path().display()
            ))
        }
        _ => (
            FileImage::create(&path, size)?,
            BlockMap::new(size, OVERLAY_BLOCK),
            true,
        ),
    };
    let cow = CowImage::new(base, Arc::new(top), map, fresh, Some(Box::new(store)))?;
    Ok(Overlay {
        path,
        cow: Arc::new(cow),
        temporary,
    })
}

fn map_path(overlay: &Path) -> PathBuf {
    let mut name = overlay.as_os_str().to_owned();
    name.push(".map");
    PathBuf::from(name)
}
