//! Noticing workers that died. Every worker sharing the catalog looks, every
//! half lease, for running jobs whose lease ran out (their worker was
//! killed, lost power or lost the catalog): it marks them failed with the
//! reason, then runs the engine's crash recovery, which removes their
//! partial backups once their volume locks are free. A dead worker's
//! cluster locks run out before its jobs' leases do (see
//! `runner::lock_lease`), so that is normally the same round; recovery is
//! tried again for two leases in case it was not, and likewise for two
//! leases after the worker starts (its own previous life's locks).

use super::worker::{blocking, Worker};
use blockback_core::catalog::LostJobs;
use blockback_core::engine::unix_now;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

impl Worker {
    /// Looks for lost jobs until `shutdown` turns true.
    pub(super) async fn reap_lost(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let every = (self.settings.lease / 2).max(Duration::from_millis(200));
        // Also at start: what a killed previous life of this worker left
        // waits for its cluster locks to run out.
        let mut clean_until = Some(Instant::now() + 2 * self.settings.lease);
        // Recovery runs beside this loop, one round at a time: it can wait
        // on the cluster for long (an image whose exclusive lock the dead
        // worker held is only freed when its watch times out, about 30 s),
        // and lost jobs must still be failed within their lease.
        let mut cleaning: Option<JoinHandle<()>> = None;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = shutdown.changed() => {}
            }
            if *shutdown.borrow() {
                break;
            }
            if self.fail_lost().await > 0 {
                clean_until = Some(Instant::now() + 2 * self.settings.lease);
            }
            let idle = cleaning.as_ref().is_none_or(JoinHandle::is_finished);
            if idle && clean_until.is_some_and(|until| Instant::now() < until) {
                cleaning = Some(tokio::spawn(self.clone().clean_up()));
            }
        }
        if let Some(round) = cleaning {
            let _ = round.await;
        }
    }

    /// Marks every running job whose lease ran out failed; how many.
    async fn fail_lost(&self) -> usize {
        let lost = LostJobs {
            worker: None,
            now: unix_now(),
            reason: format!(
                "its worker stopped renewing the job's lease (killed, crashed or cut off from \
                 the catalog); worker {} marked it failed and cleaned up its partial state",
                self.settings.name
            ),
        };
        let catalog = self.catalog.clone();
        match blocking(move || catalog.fail_lost_jobs(&lost)).await {
            Ok(failed) => {
                for job in &failed {
                    tracing::warn!(
                        job_id = %job.id,
                        worker = job.worker.as_deref().unwrap_or("?"),
                        "job's worker stopped renewing its lease; marked failed"
                    );
                }
                failed.len()
            }
            Err(e) => {
                tracing::warn!("looking for jobs of dead workers: {e}");
                0
            }
        }
    }

    async fn clean_up(self: Arc<Self>) {
        let runner = self.runner.clone();
        match tokio::task::spawn_blocking(move || runner.recover()).await {
            Ok(Ok(notes)) => notes.iter().for_each(|n| tracing::warn!("recovery: {n}")),
            Ok(Err(e)) => tracing::warn!("recovery: {e}"),
            Err(e) => tracing::warn!("recovery: its thread failed: {e}"),
        }
    }
}
