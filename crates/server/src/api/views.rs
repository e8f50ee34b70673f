//! What the native API returns: the catalog records as JSON, plus what is
//! derived for people (a job's rate and ETA).

use blockback_core::catalog::{BackupRecord, JobRecord, VolumeRecord};
use blockback_core::engine::unix_now;
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Serialize, ToSchema)]
pub struct VolumeView {
    pub id: Uuid,
    pub name: String,
    /// `rbd:POOL/IMAGE`, a file or a device.
    pub source: String,
    /// The named cluster of an RBD source (`null`: the default one).
    pub cluster: Option<String>,
    /// Bytes when last seen.
    pub size: Option<u64>,
    pub created_at: f64,
}

impl From<VolumeRecord> for VolumeView {
    fn from(v: VolumeRecord) -> Self {
        VolumeView {
            id: v.id,
            name: v.name,
            source: v.source,
            cluster: v.cluster,
            size: v.size,
            created_at: v.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BackupView {
    pub id: Uuid,
    pub volume_id: Uuid,
    pub source: String,
    pub size: u64,
    pub parent: Option<Uuid>,
    /// `full` or `incremental`.
    pub kind: String,
    /// `creating`, `available`, `error`, `deleting` or `restoring`.
    pub status: String,
    pub store: String,
    pub image: String,
    pub snapshot: String,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub bytes_stored: u64,
    pub checksum: Option<String>,
    pub created_at: f64,
    pub updated_at: f64,
    pub completed_at: Option<f64>,
    pub error: Option<String>,
    /// The process running an operation on it (transient states only).
    pub pid: Option<u32>,
    /// Whether this backup created its chain's base image.
    pub created_base: bool,
    pub metadata: BTreeMap<String, String>,
    /// Protected from retention and deletes.
    pub protected: bool,
}

impl BackupView {
    pub fn new(b: BackupRecord, protected: bool) -> Self {
        BackupView {
            protected,
            ..BackupView::from(b)
        }
    }
}

impl From<BackupRecord> for BackupView {
    fn from(b: BackupRecord) -> Self {
        BackupView {
            id: b.id,
            volume_id: b.volume_id,
            source: b.source,
            size: b.size,
            parent: b.parent,
            kind: b.kind.as_str().into(),
            status: b.status.as_str().into(),
            store: b.store,
            image: b.image,
            snapshot: b.snapshot,
            bytes_read: b.bytes_read,
            bytes_written: b.bytes_written,
            bytes_stored: b.bytes_stored,
            checksum: b.checksum,
            created_at: b.created_at,
            updated_at: b.updated_at,
            completed_at: b.completed_at,
            error: b.error,
            pid: b.pid,
            created_base: b.created_base,
            metadata: b.metadata,
            protected: false,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    pub id: Uuid,
    /// `backup`, `restore` or `delete`.
    pub kind: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub state: String,
    pub volume_id: Uuid,
    pub backup_id: Option<Uuid>,
    /// The step running now (`transfer`, `restore`, ...).
    pub phase: String,
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// Bytes per second of the current phase.
    pub rate: f64,
    /// Seconds until the current phase ends at this rate.
    pub eta_seconds: Option<f64>,
    pub created_at: f64,
    pub started_at: Option<f64>,
    pub finished_at: Option<f64>,
    /// When the worker last reported.
    pub updated_at: f64,
    pub error: Option<String>,
    pub cancel_requested: bool,
    pub worker: Option<String>,
    /// The request as submitted.
    #[schema(value_type = Object)]
    pub request: serde_json::Value,
}

impl From<JobRecord> for JobView {
    fn from(j: JobRecord) -> Self {
        let running = j.state == blockback_core::catalog::JobState::Running;
        let eta = (running && j.rate > 0.0 && j.bytes_total >= j.bytes_done)
            .then(|| (j.bytes_total - j.bytes_done) as f64 / j.rate);
        JobView {
            request: serde_json::from_str(&j.request).unwrap_or(serde_json::Value::Null),
            id: j.id,
            kind: j.kind.as_str().into(),
            state: j.state.as_str().into(),
            volume_id: j.volume_id,
            backup_id: j.backup_id,
            phase: j.phase,
            bytes_done: j.bytes_done,
            bytes_total: j.bytes_total,
            rate: j.rate,
            eta_seconds: eta,
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
            updated_at: j.updated_at,
            error: j.error,
            cancel_requested: j.cancel_requested,
            worker: j.worker,
        }
    }
}

/// A list page: the items and, when more follow, the marker of the next page.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `marker` for the next page; absent on the last one.
    pub next_marker: Option<Uuid>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoreView {
    /// The store as configured (`rbd:POOL` or a directory).
    pub store: String,
    /// Bytes the store occupies, when it can tell.
    pub used_bytes: Option<u64>,
    /// Backups recorded in this store, by status.
    pub backups: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthView {
    /// `ok` or `unavailable`.
    pub status: String,
    /// Each dependency and `ok` or what is wrong.
    pub checks: BTreeMap<String, String>,
    pub time: f64,
}

impl HealthView {
    pub fn new(checks: BTreeMap<String, String>) -> Self {
        let ok = checks.values().all(|v| v == "ok");
        HealthView {
            status: if ok { "ok" } else { "unavailable" }.into(),
            checks,
            time: unix_now(),
        }
    }
}
