//! Errors of the engine's operations.

use crate::catalog::CatalogError;
use crate::image::ImageError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error(transparent)]
    Metadata(#[from] crate::metadata::MetadataError),
    #[error("{0}: need non-zero volume size")]
    ZeroSize(String),
    #[error("target {target} holds {target_size} bytes, less than the {backup_size} bytes of backup {backup}; use a target at least that large")]
    TargetTooSmall {
        target: String,
        target_size: u64,
        backup: String,
        backup_size: u64,
    },
    #[error("volume busy: another backup, delete or restore of volume {volume} ({source_name}) is running, {holder}; wait for it to finish and retry")]
    VolumeBusy {
        volume: String,
        source_name: String,
        /// Who holds the lock, or where it may be.
        holder: String,
    },
    #[error("the {lock} lock was lost ({why}); the operation stopped without publishing anything, and recovery cleans up what it left")]
    LockLost { lock: String, why: String },
    #[error("backup {id} is {doing} by another process; wait for it to finish and retry")]
    BackupBusy { id: String, doing: &'static str },
    #[error("backup {id} is {status}, not available; only available backups can be {action}")]
    NotAvailable {
        id: String,
        status: String,
        action: &'static str,
    },
    #[error(
        "backup {id} failed verification: recorded checksum {expected}, data reads as {actual}"
    )]
    ChecksumMismatch {
        id: String,
        expected: String,
        actual: String,
    },
    #[error("backup {id} has {count} snapshots on {image}; expected exactly one, fix by hand")]
    DuplicateSnapshots {
        id: String,
        count: usize,
        image: String,
    },
    #[error("backup {id} has no snapshot on {image}; its data is gone")]
    SnapshotMissing { id: String, image: String },
    #[error("the backup chain cannot continue: {0}; run without --incremental to start a new chain with a full backup")]
    ChainBroken(String),
    #[error("backup {0} is protected; `blockback backup unprotect {0}` first")]
    Protected(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

pub type EngineResult<T> = std::result::Result<T, EngineError>;
