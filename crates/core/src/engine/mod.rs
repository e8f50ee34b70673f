//! Backup, restore, verify and delete, written once against the image
//! traits and the catalog trait. One file per operation.

mod adopt;
mod adopt_checksums;
mod backup;
mod chain;
mod clock;
mod collect;
#[doc(hidden)]
pub mod conformance;
pub mod copy;
mod delete;
mod digests;
mod error;
mod head;
mod live_restore;
mod lock;
pub mod plan;
mod prune;
mod recover;
mod restore;
mod retention;
mod sink;
mod snapshotted;
mod unchanged;
mod verify;
pub mod zero;

pub use adopt::AdoptReport;
pub use backup::{volume_metadata, BackupRequest, DISPLAY_DESCRIPTION, DISPLAY_NAME};
pub use chain::ChainMode;
pub use clock::{Clock, ManualClock, SystemClock};
pub use copy::{copy, copy_changed, copy_to_sink, CopyOptions, CopyStats, DigestSink};
pub use delete::RetryPolicy;
pub use digests::DigestDir;
pub use error::{EngineError, EngineResult};
pub use live_restore::{LiveCopier, LiveRestore, LiveRestored, LIVE_RESTORE_KEY};
pub use lock::{LockDir, LockMode, VolumeLock};
pub use plan::TransferPlan;
pub use recover::Recovered;
pub use restore::{
    differential_restore_allowed, BackupHold, RestoreFacts, RestoreReport, RestoreRequest,
    RestoreTarget, RestoreTo, Restored,
};
pub use retention::{PlannedBackup, PruneOutcome, PrunePlan, VolumePlan};
pub use sink::NullImage;
pub use unchanged::TargetDigests;
pub use verify::VerifyOutcome;

use crate::catalog::Catalog;
use crate::progress::Progress;
use std::time::{SystemTime, UNIX_EPOCH};

/// Everything an operation needs besides its own arguments.
pub struct Engine<'a> {
    pub catalog: &'a dyn Catalog,
    pub locks: LockDir,
    /// Block digests of the backups incrementals may continue from.
    pub digests: DigestDir,
    pub progress: &'a dyn Progress,
    pub copy: CopyOptions,
    pub retry: RetryPolicy,
    /// The time new backups record.
    pub clock: &'a dyn Clock,
}

impl<'a> Engine<'a> {
    pub fn new(
        catalog: &'a dyn Catalog,
        locks: LockDir,
        digests: DigestDir,
        progress: &'a dyn Progress,
    ) -> Self {
        Engine {
            catalog,
            locks,
            digests,
            progress,
            copy: CopyOptions::default(),
            retry: RetryPolicy::default(),
            clock: &SystemClock,
        }
    }
}

/// Seconds since the Unix epoch, as the catalog stores times.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
