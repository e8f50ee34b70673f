//! Backup, restore, verify and delete, written once against the image
//! traits and the catalog trait. One file per operation.

mod backup;
pub mod copy;
mod delete;
mod error;
mod lock;
pub mod plan;
mod recover;
mod restore;
mod sink;
mod verify;
pub mod zero;

pub use backup::BackupRequest;
pub use copy::{copy, CopyOptions, CopyStats};
pub use delete::RetryPolicy;
pub use error::{EngineError, EngineResult};
pub use lock::{LockDir, VolumeLock};
pub use plan::TransferPlan;
pub use recover::Recovered;
pub use restore::RestoreReport;
pub use sink::NullImage;
pub use verify::VerifyOutcome;

use crate::catalog::Catalog;
use crate::progress::Progress;
use std::time::{SystemTime, UNIX_EPOCH};

/// Everything an operation needs besides its own arguments.
pub struct Engine<'a> {
    pub catalog: &'a dyn Catalog,
    pub locks: LockDir,
    pub progress: &'a dyn Progress,
    pub copy: CopyOptions,
    pub retry: RetryPolicy,
}

impl<'a> Engine<'a> {
    pub fn new(catalog: &'a dyn Catalog, locks: LockDir, progress: &'a dyn Progress) -> Self {
        Engine {
            catalog,
            locks,
            progress,
            copy: CopyOptions::default(),
            retry: RetryPolicy::default(),
        }
    }
}

/// Seconds since the Unix epoch, as the catalog stores times.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
