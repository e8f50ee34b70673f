//! What a job was asked to do: stored as the job record's `request` JSON.

use blockback_core::catalog::JobKind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;
use uuid::Uuid;

/// Backup chain choice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackupMode {
    /// Incremental when the chain can continue, else full.
    #[default]
    Auto,
    /// A new chain.
    Full,
    /// Fail when the chain cannot continue.
    Incremental,
}

/// Where a restore writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum RestoreTarget {
    /// A registered volume (written over: full restore, only differences).
    Volume { volume_id: Uuid },
    /// A new RBD image in the pool of the backup's source (registered as a
    /// new volume named `name`).
    NewVolume { volume_id: Uuid, name: String },
    /// A file path under one of the configured restore directories
    /// (created, or written over when it exists).
    File { path: String },
}

/// A backup queued by a schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScheduledRun {
    /// The schedule's name in the configuration.
    pub schedule: String,
    /// The calendar slot the run is for (Unix seconds): the scheduler's
    /// memory of what already ran, kept in the catalog with the job.
    pub slot: f64,
    /// Apply the volume's retention policy once the backup succeeded.
    pub prune: bool,
}

/// A job's request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum JobRequest {
    Backup {
        backup_id: Uuid,
        mode: BackupMode,
        /// Backup labels: name, description, Cinder's container and metadata.
        labels: BTreeMap<String, String>,
        /// Volume metadata stored with the backup (`--meta`).
        metadata: BTreeMap<String, String>,
        /// The `backup.<id>.meta` object's JSON, when the client gave it
        /// (`--metadata-object`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        metadata_object: Option<String>,
        /// The schedule run that queued it (absent: asked for by a client).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        scheduled: Option<ScheduledRun>,
    },
    Restore {
        backup_id: Uuid,
        target: RestoreTarget,
    },
    Delete {
        backup_id: Uuid,
        /// Cinder's force delete: any status.
        force: bool,
    },
}

impl JobRequest {
    pub fn kind(&self) -> JobKind {
        match self {
            JobRequest::Backup { .. } => JobKind::Backup,
            JobRequest::Restore { .. } => JobKind::Restore,
            JobRequest::Delete { .. } => JobKind::Delete,
        }
    }

    pub fn backup_id(&self) -> Uuid {
        match self {
            JobRequest::Backup { backup_id, .. }
            | JobRequest::Restore { backup_id, .. }
            | JobRequest::Delete { backup_id, .. } => *backup_id,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".into())
    }

    pub fn from_json(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("unreadable job request: {e}"))
    }
}

/// Keys of the backup labels in a backup record's metadata.
pub mod label {
    pub const NAME: &str = "backup.name";
    pub const DESCRIPTION: &str = "backup.description";
    pub const CONTAINER: &str = "backup.container";
    /// Prefix of Cinder's backup metadata (≥ 3.43) keys.
    pub const META: &str = "backup.meta.";
}
