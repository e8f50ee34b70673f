//! The scheduler: at each tick, for every schedule and every registered
//! volume it names, queues the run that is due (see [`Schedule::due_slot`])
//! as an ordinary backup job. What already ran is read from the catalog
//! (each scheduled job records its slot), so a restart neither repeats a
//! run nor forgets one: slots missed while the service was down give one
//! run at the next start.

use super::plan::Schedule;
use crate::jobs::request::{label, JobRequest, ScheduledRun};
use crate::state::{AppState, Chosen, ServiceResult};
use blockback_core::catalog::{BackupRecord, JobFilter, JobKind, JobRecord, VolumeRecord};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The time the scheduler goes by (Unix seconds); tests inject their own.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> f64;
}

/// The system's clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> f64 {
        blockback_core::engine::unix_now()
    }
}

/// The longest the scheduler sleeps between ticks: random delays and
/// volumes registered meanwhile are noticed within it.
const MAX_SLEEP: Duration = Duration::from_secs(30);

pub struct Scheduler {
    state: Arc<AppState>,
    schedules: Vec<Schedule>,
    clock: Arc<dyn Clock>,
    /// When this scheduler started: a schedule that never ran for a
    /// volume runs from the first slot after it (no catch-up of slots
    /// from before it existed).
    since: f64,
}

impl Scheduler {
    pub fn new(state: Arc<AppState>, schedules: Vec<Schedule>, clock: Arc<dyn Clock>) -> Self {
        let since = clock.now();
        Scheduler {
            state,
            schedules,
            clock,
            since,
        }
    }

    /// Queues every run due now; returns the jobs queued. A volume whose
    /// previous run of the same schedule is still queued or running is
    /// skipped until that one ends (then the missed slot runs once).
    pub fn tick(&self) -> ServiceResult<Vec<JobRecord>> {
        let now = self.clock.now();
        let volumes = self.state.registered_volumes()?;
        let mut queued = Vec::new();
        for schedule in &self.schedules {
            for volume in volumes.iter().filter(|v| schedule.applies_to(v)) {
                match self.run_if_due(schedule, volume, now) {
                    Ok(Some(job)) => queued.push(job),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(
                        schedule = %schedule.name, volume_id = %volume.id,
                        "scheduled backup not queued: {e}"
                    ),
                }
            }
        }
        Ok(queued)
    }

    fn run_if_due(
        &self,
        schedule: &Schedule,
        volume: &VolumeRecord,
        now: f64,
    ) -> ServiceResult<Option<JobRecord>> {
        let (last, pending) = self.previous_runs(schedule, volume)?;
        if pending {
            return Ok(None);
        }
        let Some(slot) = schedule.due_slot(volume, last.unwrap_or(self.since), now) else {
            return Ok(None);
        };
        let mode = schedule.mode(&self.backups_in_store(volume)?, now);
        let labels = BTreeMap::from([(
            label::DESCRIPTION.to_string(),
            format!("schedule {} ({})", schedule.name, schedule.calendar.spec()),
        )]);
        let run = ScheduledRun {
            schedule: schedule.name.clone(),
            slot,
            prune: schedule.prune,
        };
        let job = self.state.submit_backup_run(
            volume,
            mode,
            labels,
            BTreeMap::new(),
            Chosen::default(),
            Some(run),
        )?;
        tracing::info!(
            schedule = %schedule.name, volume_id = %volume.id, job_id = %job.id,
            slot, ?mode, "scheduled backup queued"
        );
        Ok(Some(job))
    }

    /// The slot of the latest run of `schedule` on `volume`, and whether a
    /// run of it is still queued or running.
    fn previous_runs(
        &self,
        schedule: &Schedule,
        volume: &VolumeRecord,
    ) -> ServiceResult<(Option<f64>, bool)> {
        let filter = JobFilter {
            volume_id: Some(volume.id),
            ..JobFilter::default()
        };
        let (mut last, mut pending): (Option<f64>, bool) = (None, false);
        for job in self.state.catalog.list_jobs(&filter)? {
            if job.kind != JobKind::Backup {
                continue;
            }
            let Ok(JobRequest::Backup {
                scheduled: Some(run),
                ..
            }) = JobRequest::from_json(&job.request)
            else {
                continue;
            };
            if run.schedule == schedule.name {
                last = Some(last.map_or(run.slot, |l: f64| l.max(run.slot)));
                pending |= !job.state.is_final();
            }
        }
        Ok((last, pending))
    }

    fn backups_in_store(&self, volume: &VolumeRecord) -> ServiceResult<Vec<BackupRecord>> {
        let store = self.state.backend.store_label();
        let all = self.state.catalog.list_backups(Some(volume.id))?;
        Ok(all.into_iter().filter(|b| b.store == store).collect())
    }

    /// How long to sleep before the next tick: until the next slot of any
    /// schedule, at most [`MAX_SLEEP`].
    fn sleep_time(&self) -> Duration {
        let now = self.clock.now();
        let next = self
            .schedules
            .iter()
            .filter_map(|s| s.calendar.next_after(now))
            .fold(f64::INFINITY, f64::min);
        let secs = (next - now).clamp(0.05, MAX_SLEEP.as_secs_f64());
        Duration::from_secs_f64(secs)
    }

    /// Ticks until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        if self.schedules.is_empty() {
            return;
        }
        tracing::info!(schedules = self.schedules.len(), "scheduler started");
        while !*shutdown.borrow() {
            let me = self.clone();
            match tokio::task::spawn_blocking(move || me.tick()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!("scheduler: {e}"),
                Err(e) => tracing::error!("scheduler tick failed: {e}"),
            }
            tokio::select! {
                _ = tokio::time::sleep(self.sleep_time()) => {}
                _ = shutdown.changed() => {}
            }
        }
    }
}
