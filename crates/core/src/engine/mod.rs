//! Backup, restore, verify and delete, written once against the image
//! traits and the catalog trait. One file per operation.

mod adopt;
mod adopt_checksums;
mod backup;
mod buffers;
mod carry;
mod chain;
mod clock;
mod collect;
#[doc(hidden)]
pub mod conformance;
pub mod copy;
mod delete;
mod digest_objects;
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
mod whole;
pub mod zero;

pub use adopt::AdoptReport;
pub use backup::{volume_metadata, BackupRequest, DISPLAY_DESCRIPTION, DISPLAY_NAME};
pub use buffers::TransferBuffers;
pub use chain::ChainMode;
pub use clock::{Clock, ManualClock, SystemClock};
pub use copy::{copy, copy_changed, copy_to_sink, CopyOptions, CopyStats, DigestSink};
pub use delete::RetryPolicy;
pub use digests::DigestDir;
pub use error::{EngineError, EngineResult};
pub use live_restore::{LiveCopier, LiveRestore, LiveRestored, LIVE_RESTORE_KEY};
pub use lock::{HeldLock, Lease, LockDir, LockKind, LockMode, LockTarget, Locks};
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
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Everything an operation needs besides its own arguments.
pub struct Engine<'a> {
    pub catalog: &'a dyn Catalog,
    /// Volume and backup locks: a host's flocks, or those and a cluster's.
    pub locks: Box<dyn Locks + 'a>,
    /// Block digests of the backups incrementals may continue from.
    pub digests: DigestDir,
    pub progress: &'a dyn Progress,
    pub copy: CopyOptions<'a>,
    pub retry: RetryPolicy,
    /// The time new backups record.
    pub clock: &'a dyn Clock,
    /// The leases of the locks running operations hold, checked before
    /// a backup is published.
    leases: Mutex<Vec<Lease>>,
    /// Images being closed on threads of their own (see
    /// [`Engine::close_later`]); joined when the engine is dropped.
    closing: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl<'a> Engine<'a> {
    pub fn new(
        catalog: &'a dyn Catalog,
        locks: impl Locks + 'a,
        digests: DigestDir,
        progress: &'a dyn Progress,
    ) -> Self {
        Engine {
            catalog,
            locks: Box::new(locks),
            digests,
            progress,
            copy: CopyOptions::default(),
            retry: RetryPolicy::default(),
            clock: &SystemClock,
            leases: Mutex::new(Vec::new()),
            closing: Mutex::new(Vec::new()),
        }
    }

    /// Closes `image` on a thread of its own: a close that releases an
    /// RBD exclusive lock waits for round trips, which then overlap with
    /// whatever the caller closes next. Finished by the time the engine is
    /// dropped.
    pub(crate) fn close_later(&self, image: Box<dyn crate::image::Image>) {
        let closing = std::thread::Builder::new()
            .name("close".into())
            .spawn(move || drop(image));
        match closing {
            Ok(handle) => self
                .closing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(handle),
            // No thread to be had: the image was dropped, i.e. closed, here.
            Err(e) => tracing::debug!("closing an image on this thread: {e}"),
        }
    }

    /// Watches `lock`'s leases while the returned guard lives.
    fn watch(&self, lock: &HeldLock) -> Watching<'_, 'a> {
        let leases = lock.leases().to_vec();
        self.held_leases().extend(leases.iter().cloned());
        Watching {
            engine: self,
            leases,
        }
    }

    fn held_leases(&self) -> std::sync::MutexGuard<'_, Vec<Lease>> {
        self.leases.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// [`EngineError::LockLost`] when a watched lock was lost.
    fn check_leases(&self) -> EngineResult<()> {
        for lease in self.held_leases().iter() {
            lease.check().map_err(|why| EngineError::LockLost {
                lock: "volume".into(),
                why,
            })?;
        }
        Ok(())
    }
}

/// A lock's leases watched by the engine; unwatched on drop.
struct Watching<'e, 'a> {
    engine: &'e Engine<'a>,
    leases: Vec<Lease>,
}

impl Drop for Watching<'_, '_> {
    fn drop(&mut self) {
        let mut held = self.engine.held_leases();
        for lease in &self.leases {
            if let Some(i) = held.iter().position(|h| h.same(lease)) {
                held.swap_remove(i);
            }
        }
    }
}

/// Seconds since the Unix epoch, as the catalog stores times.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Drop for Engine<'_> {
    fn drop(&mut self) {
        let closing = std::mem::take(self.closing.get_mut().unwrap_or_else(|p| p.into_inner()));
        for handle in closing {
            if handle.join().is_err() {
                tracing::error!("closing an image panicked");
            }
        }
    }
}
