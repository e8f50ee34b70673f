//! Catalog records.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use uuid::Uuid;

/// A backed-up volume: one source, identified by a stable id. Backups
/// record volumes as they meet them; the service also registers volumes
/// up front (with a name, and the cluster an RBD source lives on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub id: Uuid,
    /// The source as the user gave it, resolved (absolute path, `rbd:pool/image`).
    pub source: String,
    pub name: String,
    pub created_at: f64,
    /// The named cluster (of the service's configuration) an RBD source is
    /// on; `None`: the default one.
    #[serde(default)]
    pub cluster: Option<String>,
    /// Registered through the service or `volume add` (not only met by a backup).
    #[serde(default)]
    pub registered: bool,
    /// Size in bytes when last seen (registration, backup), if known.
    #[serde(default)]
    pub size: Option<u64>,
}

impl VolumeRecord {
    /// A volume met by a backup: not registered, default cluster.
    pub fn new(id: Uuid, source: String, name: String, created_at: f64) -> Self {
        VolumeRecord {
            id,
            source,
            name,
            created_at,
            cluster: None,
            registered: false,
            size: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupKind {
    Full,
    Incremental,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupStatus {
    Creating,
    Available,
    Error,
    Deleting,
    Restoring,
}

macro_rules! str_enum {
    ($ty:ty { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub fn as_str(&self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some(Self::$variant),)+ _ => None }
            }
        }
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

str_enum!(BackupKind { Full => "full", Incremental => "incremental" });
str_enum!(BackupStatus {
    Creating => "creating",
    Available => "available",
    Error => "error",
    Deleting => "deleting",
    Restoring => "restoring",
});

/// One backup of one volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupRecord {
    pub id: Uuid,
    pub volume_id: Uuid,
    pub source: String,
    /// Volume size at the backup's point in time.
    pub size: u64,
    /// The previous backup of the same chain (incrementals only).
    pub parent: Option<Uuid>,
    pub kind: BackupKind,
    pub status: BackupStatus,
    /// The backup store, as given (`/path/to/store`, `rbd:backups`).
    pub store: String,
    /// Base image of the chain in the store.
    pub image: String,
    /// This backup's snapshot on the base image.
    pub snapshot: String,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub bytes_stored: u64,
    /// Checksum of the logical volume (see [`crate::checksum`]). A
    /// `creating` backup of a source with snapshots gets it at its commit,
    /// which recovery finishes rather than undoes (design.md, "Crash safety").
    pub checksum: Option<String>,
    pub created_at: f64,
    pub updated_at: f64,
    pub completed_at: Option<f64>,
    pub error: Option<String>,
    /// Process that runs the operation while status is creating/deleting/restoring.
    pub pid: Option<u32>,
    /// Whether this backup created its chain's base image.
    pub created_base: bool,
    /// Volume metadata stored with the backup (name, size, user key/values).
    pub metadata: BTreeMap<String, String>,
}

impl BackupRecord {
    /// The snapshot of `image` holding the backup, or `None` when the
    /// backup is the image's HEAD (a full-copy image Cinder wrote for a
    /// source without snapshots, adopted with `blockback adopt`).
    pub fn restore_point(&self) -> Option<&str> {
        (!self.snapshot.is_empty()).then_some(self.snapshot.as_str())
    }
}

/// What a retention policy is set for: one volume (in every store), or the
/// default of the volumes of one store (its label, as backups record it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyScope {
    Volume(Uuid),
    Store(String),
}

impl PolicyScope {
    /// The catalog's key: `volume:<id>` or `store:<label>`.
    pub fn key(&self) -> String {
        match self {
            PolicyScope::Volume(id) => format!("volume:{id}"),
            PolicyScope::Store(label) => format!("store:{label}"),
        }
    }

    pub fn from_key(key: &str) -> Option<Self> {
        if let Some(id) = key.strip_prefix("volume:") {
            return Uuid::parse_str(id).ok().map(PolicyScope::Volume);
        }
        key.strip_prefix("store:")
            .map(|label| PolicyScope::Store(label.to_string()))
    }
}
