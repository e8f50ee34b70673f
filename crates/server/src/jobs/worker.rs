//! The worker: claims jobs from the catalog while it has free slots, runs
//! each on a thread of its own at `jobs.nice`, heartbeats its progress and lease, and
//! records how it ended. Concurrency is bounded by a semaphore of
//! `max_running` permits; one job per volume is the catalog's claim rule.

use super::progress::JobProgress;
use crate::metrics::Metrics;
use blockback_core::catalog::{
    Catalog, CatalogResult, JobBeat, JobClaim, JobEnd, JobRecord, JobState, Lease,
};
use blockback_core::engine::unix_now;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tracing::Instrument;
use uuid::Uuid;

/// How long an idle worker waits before looking for jobs again (jobs may
/// be queued by another process sharing the catalog).
const IDLE_POLL: Duration = Duration::from_secs(1);

/// What a finished job did, for metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobOutcome {
    pub bytes_read: u64,
    pub bytes_written: u64,
}

/// Why a job failed: a kind (for metrics) and a message (for the record).
#[derive(Debug, Clone, PartialEq)]
pub struct JobFailure {
    pub kind: &'static str,
    pub message: String,
}

/// Runs one claimed job to its end, on the job's own thread.
pub trait JobRunner: Send + Sync + 'static {
    fn run(&self, job: &JobRecord, progress: &JobProgress) -> Result<JobOutcome, JobFailure>;

    /// Cleans up what interrupted jobs left (the engine's crash
    /// recovery); returns a note per repaired record.
    fn recover(&self) -> Result<Vec<String>, String> {
        Ok(Vec::new())
    }
}

/// Worker settings.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub name: String,
    pub max_running: usize,
    pub lease: Duration,
    pub heartbeat: Duration,
    /// How long running jobs may go on after shutdown begins.
    pub shutdown_grace: Duration,
    /// The nice value of job threads.
    pub nice: i32,
}

pub struct Worker {
    pub(super) catalog: Arc<dyn Catalog>,
    pub(super) runner: Arc<dyn JobRunner>,
    pub(super) settings: WorkerSettings,
    metrics: Arc<Metrics>,
    /// Wakes the claim loop: a job was submitted or one finished.
    wake: Arc<Notify>,
    running: Mutex<HashMap<Uuid, Arc<JobProgress>>>,
    shutting_down: AtomicBool,
}

impl Worker {
    pub fn new(
        catalog: Arc<dyn Catalog>,
        runner: Arc<dyn JobRunner>,
        settings: WorkerSettings,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Worker {
            catalog,
            runner,
            settings,
            metrics,
            wake: Arc::new(Notify::new()),
            running: Mutex::new(HashMap::new()),
            shutting_down: AtomicBool::new(false),
        })
    }

    /// Tells the claim loop to look for jobs now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Claims and runs jobs until `shutdown` turns true; then lets running
    /// jobs finish within the grace period, cancels the rest, and returns
    /// once every job has ended.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let slots = Arc::new(Semaphore::new(self.settings.max_running));
        let mut tasks = JoinSet::new();
        let reaper = tokio::spawn(self.clone().reap_lost(shutdown.clone()));
        while !*shutdown.borrow() {
            while tasks.try_join_next().is_some() {}
            let permit = tokio::select! {
                p = slots.clone().acquire_owned() => p.expect("semaphore is never closed"),
                _ = shutdown.changed() => break,
            };
            match self.claim().await {
                Ok(Some(job)) => {
                    tasks.spawn(self.clone().execute(job, permit));
                }
                Ok(None) => {
                    drop(permit);
                    self.idle(&mut shutdown).await;
                }
                Err(e) => {
                    drop(permit);
                    tracing::error!("claiming a job: {e}");
                    self.idle(&mut shutdown).await;
                }
            }
        }
        self.drain(tasks).await;
        let _ = reaper.await;
    }

    async fn idle(&self, shutdown: &mut watch::Receiver<bool>) {
        tokio::select! {
            _ = self.wake.notified() => {}
            _ = tokio::time::sleep(IDLE_POLL) => {}
            _ = shutdown.changed() => {}
        }
    }

    async fn drain(&self, mut tasks: JoinSet<()>) {
        self.shutting_down.store(true, Ordering::SeqCst);
        let n = tasks.len();
        if n > 0 {
            tracing::info!(
                jobs = n,
                grace_secs = self.settings.shutdown_grace.as_secs_f64(),
                "shutting down: waiting for running jobs"
            );
        }
        let all_done = async { while tasks.join_next().await.is_some() {} };
        tokio::pin!(all_done);
        if tokio::time::timeout(self.settings.shutdown_grace, &mut all_done)
            .await
            .is_err()
        {
            self.cancel_running();
            all_done.await;
        }
    }

    fn cancel_running(&self) {
        let running = self.running_jobs();
        tracing::warn!(
            jobs = running.len(),
            "grace period over: cancelling running jobs"
        );
        running.values().for_each(|p| p.cancel());
    }

    async fn claim(&self) -> CatalogResult<Option<JobRecord>> {
        let claim = JobClaim {
            worker: self.settings.name.clone(),
            lease_secs: self.settings.lease.as_secs_f64(),
            clock: unix_now,
        };
        let catalog = self.catalog.clone();
        blocking(move || catalog.claim_job(&claim)).await
    }

    async fn execute(self: Arc<Self>, job: JobRecord, _permit: OwnedSemaphorePermit) {
        let span = tracing::info_span!("job", job_id = %job.id, kind = %job.kind, volume_id = %job.volume_id);
        async move {
            tracing::info!("job started");
            let progress = Arc::new(JobProgress::default());
            self.running_jobs().insert(job.id, progress.clone());
            let started = std::time::Instant::now();
            let result = self.run_with_heartbeats(&job, &progress).await;
            self.running_jobs().remove(&job.id);
            self.metrics
                .job_finished(&job, &result, started.elapsed().as_secs_f64());
            let end = self.end_of(&result, &progress);
            match &end.error {
                None => tracing::info!("job succeeded"),
                Some(e) => tracing::warn!(state = %end.state, "job ended: {e}"),
            }
            let (catalog, worker, id) = (self.catalog.clone(), self.settings.name.clone(), job.id);
            if let Err(e) = blocking(move || catalog.finish_job(id, &worker, &end)).await {
                tracing::error!("recording the end of job {id}: {e}");
            }
            self.wake();
        }
        .instrument(span)
        .await
    }

    fn running_jobs(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Arc<JobProgress>>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn end_of(&self, result: &Result<JobOutcome, JobFailure>, progress: &JobProgress) -> JobEnd {
        let now = unix_now();
        match result {
            Ok(_) => JobEnd {
                state: JobState::Succeeded,
                error: None,
                now,
            },
            Err(f) if blockback_core::progress::Progress::is_cancelled(progress) => JobEnd {
                state: JobState::Cancelled,
                error: Some(match self.shutting_down.load(Ordering::SeqCst) {
                    true => format!("cancelled: the service shut down ({})", f.message),
                    false => f.message.clone(),
                }),
                now,
            },
            Err(f) => JobEnd {
                state: JobState::Failed,
                error: Some(f.message.clone()),
                now,
            },
        }
    }

    /// Runs the job on a blocking thread; meanwhile reports its progress
    /// and renews its lease every heartbeat, passing a cancel request on.
    async fn run_with_heartbeats(
        &self,
        job: &JobRecord,
        progress: &Arc<JobProgress>,
    ) -> Result<JobOutcome, JobFailure> {
        let (runner, claimed, p) = (self.runner.clone(), job.clone(), progress.clone());
        let span = tracing::Span::current();
        let name = format!("job-{}", &job.id.simple().to_string()[..8]);
        let run = super::thread::spawn_job(name, self.settings.nice, move || {
            let _entered = span.enter();
            runner.run(&claimed, &p)
        });
        tokio::pin!(run);
        let mut tick = tokio::time::interval(self.settings.heartbeat);
        tick.tick().await;
        loop {
            tokio::select! {
                done = &mut run => {
                    return done.unwrap_or_else(|message| Err(JobFailure {
                        kind: "internal",
                        message,
                    }));
                }
                _ = tick.tick() => self.beat(job.id, progress).await,
            }
        }
    }

    async fn beat(&self, id: Uuid, progress: &JobProgress) {
        let now_p = progress.now();
        let now = unix_now();
        let beat = JobBeat {
            phase: now_p.phase,
            bytes_done: now_p.done,
            bytes_total: now_p.total,
            rate: now_p.rate,
            now,
            lease_until: now + self.settings.lease.as_secs_f64(),
        };
        let (catalog, worker) = (self.catalog.clone(), self.settings.name.clone());
        match blocking(move || catalog.heartbeat_job(id, &worker, &beat)).await {
            Ok(Lease::Held) => {}
            Ok(Lease::CancelRequested) => {
                if !blockback_core::progress::Progress::is_cancelled(progress) {
                    tracing::info!("cancel requested");
                }
                progress.cancel();
            }
            Ok(Lease::Lost) => {
                tracing::error!("the job's lease was lost; stopping it");
                progress.cancel();
            }
            Err(e) => tracing::warn!("heartbeat: {e}"),
        }
    }
}

/// Runs a catalog call on a blocking thread.
pub async fn blocking<T: Send + 'static>(
    call: impl FnOnce() -> CatalogResult<T> + Send + 'static,
) -> CatalogResult<T> {
    match tokio::task::spawn_blocking(call).await {
        Ok(r) => r,
        Err(e) => Err(blockback_core::catalog::CatalogError::Database {
            path: "(worker)".into(),
            msg: format!("catalog call failed: {e}"),
        }),
    }
}
