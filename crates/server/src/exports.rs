//! Exports of backups over NBD from the service: one NBD server on the
//! configured address (`[nbd] listen`), exports opened and closed through
//! the API, and every export closed when the service stops (temporary
//! overlays discarded, backups released).

use crate::jobs::runner::OpsRunner;
use crate::state::{ServiceError, ServiceResult};
use blockback_core::catalog::{BackupRecord, BackupStatus};
use blockback_core::progress::NoProgress;
use blockback_nbd::{Limits, Listen, Server};
use blockback_ops::{BackupExport, ExportEnd, ExportOptions};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use utoipa::ToSchema;
use uuid::Uuid;

/// An export being served.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExportView {
    /// The backup served; the export is named by its id.
    pub backup_id: Uuid,
    /// The NBD URI clients connect to (nbdinfo, nbdcopy, qemu).
    pub uri: String,
    /// Writes go to a temporary copy-on-write overlay, never the backup.
    pub writable: bool,
    /// Bytes.
    pub size: u64,
}

/// What closing an export did.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExportClosedView {
    pub backup_id: Uuid,
    /// The new backup made of the view (backup plus writes), when asked.
    pub saved_backup_id: Option<Uuid>,
}

/// The service's exports (see [`crate::state::Backend::exports`]).
pub trait Exporter: Send + Sync {
    fn open(&self, backup: &BackupRecord, writable: bool) -> ServiceResult<ExportView>;
    fn list(&self) -> Vec<ExportView>;
    fn close(&self, backup: Uuid, save_as_backup: bool) -> ServiceResult<ExportClosedView>;
    /// Stops the NBD server and closes every export (at shutdown).
    fn close_all(&self);
}

/// The NBD server and what each export holds until it is closed.
pub struct NbdExports {
    server: Mutex<Option<Server>>,
    listen: Listen,
    open: Mutex<BTreeMap<Uuid, (ExportView, BackupExport)>>,
}

impl NbdExports {
    pub fn bind(listen: &str) -> Result<Self, String> {
        let listen: Listen = listen.parse().map_err(|e| format!("nbd.listen: {e}"))?;
        let server =
            Server::bind(&listen, Limits::default()).map_err(|e| format!("nbd.listen: {e}"))?;
        let listen = server.listen().clone();
        Ok(NbdExports {
            server: Mutex::new(Some(server)),
            listen,
            open: Mutex::new(BTreeMap::new()),
        })
    }
}

fn from_failure(f: crate::jobs::worker::JobFailure) -> ServiceError {
    match f.kind {
        "not_found" => ServiceError::NotFound(f.message),
        "invalid" | "config" => ServiceError::Invalid(f.message),
        "volume_busy" => ServiceError::Conflict(f.message),
        _ => ServiceError::Internal(f.message),
    }
}

impl Exporter for OpsRunner {
    fn open(&self, backup: &BackupRecord, writable: bool) -> ServiceResult<ExportView> {
        let exports = self.nbd_exports()?;
        if backup.status != BackupStatus::Available {
            return Err(ServiceError::Conflict(format!(
                "backup {} is {}; only available backups are served",
                backup.id,
                backup.status.as_str()
            )));
        }
        let mut open = exports.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.contains_key(&backup.id) {
            return Err(ServiceError::Conflict(format!(
                "backup {} is already exported; close that export first",
                backup.id
            )));
        }
        let options = ExportOptions {
            backup: backup.id.to_string(),
            writable,
            overlay: None,
        };
        let cluster = self.source_cluster(backup);
        let mut export = self
            .with_ops(cluster.as_deref(), &NoProgress, |ops| {
                ops.open_export(&options)
            })
            .map_err(from_failure)?;
        let served = export
            .export
            .take()
            .expect("a new export is not served yet");
        let view = ExportView {
            backup_id: backup.id,
            uri: exports.listen.uri(served.name()),
            writable,
            size: served.size(),
        };
        let added = match exports
            .server
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some(server) => server.add_export(served).map_err(|e| e.to_string()),
            None => Err("the service is stopping".to_string()),
        };
        if let Err(e) = added {
            let _ = self.with_ops(cluster.as_deref(), &NoProgress, |ops| {
                ops.close_export(export, ExportEnd::Close)
            });
            return Err(ServiceError::Conflict(format!(
                "cannot serve backup {}: {e}",
                backup.id
            )));
        }
        tracing::info!(backup_id = %backup.id, uri = %view.uri, writable, "export opened");
        open.insert(backup.id, (view.clone(), export));
        Ok(view)
    }

    fn list(&self) -> Vec<ExportView> {
        let Ok(exports) = self.nbd_exports() else {
            return Vec::new();
        };
        let open = exports.open.lock().unwrap_or_else(|p| p.into_inner());
        open.values().map(|(view, _)| view.clone()).collect()
    }

    fn close(&self, backup: Uuid, save_as_backup: bool) -> ServiceResult<ExportClosedView> {
        let exports = self.nbd_exports()?;
        let mut open = exports.open.lock().unwrap_or_else(|p| p.into_inner());
        let Some((view, export)) = open.remove(&backup) else {
            return Err(ServiceError::NotFound(format!(
                "backup {backup} is not exported"
            )));
        };
        if save_as_backup && !view.writable {
            open.insert(backup, (view, export));
            return Err(ServiceError::Invalid(
                "a read-only export has no writes to save; open it with writable = true".into(),
            ));
        }
        drop(open);
        if let Some(server) = exports
            .server
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            // Disconnects its clients and waits until none touches the image.
            let _ = server.remove_export(&backup.to_string());
        }
        let end = match save_as_backup {
            true => ExportEnd::SaveAsBackup,
            false => ExportEnd::Close,
        };
        let cluster = self.source_cluster(&export.record);
        let closed = self
            .with_ops(cluster.as_deref(), &NoProgress, |ops| {
                ops.close_export(export, end)
            })
            .map_err(from_failure)?;
        tracing::info!(backup_id = %backup, saved = ?closed.saved.as_ref().map(|b| b.id), "export closed");
        Ok(ExportClosedView {
            backup_id: backup,
            saved_backup_id: closed.saved.map(|b| b.id),
        })
    }

    fn close_all(&self) {
        let Ok(exports) = self.nbd_exports() else {
            return;
        };
        if let Some(server) = exports
            .server
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            server.shutdown();
        }
        let open = std::mem::take(&mut *exports.open.lock().unwrap_or_else(|p| p.into_inner()));
        for (id, (_, export)) in open {
            let cluster = self.source_cluster(&export.record);
            let closed = self.with_ops(cluster.as_deref(), &NoProgress, |ops| {
                ops.close_export(export, ExportEnd::Close)
            });
            match closed {
                Ok(_) => tracing::info!(backup_id = %id, "export closed at shutdown"),
                Err(e) => tracing::warn!(backup_id = %id, "closing the export: {}", e.message),
            }
        }
    }
}
