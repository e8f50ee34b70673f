//! Job records: the service's persistent queue of backups, restores and
//! deletes, kept in the catalog so that it survives restarts and so that
//! several workers sharing one catalog can take jobs from it.
//!
//! A job's life: `queued` (submitted), `running` (claimed by one worker,
//! which holds a lease it renews with heartbeats), then `succeeded`,
//! `failed` or `cancelled`. A worker claims only a job whose volume has no
//! running job, so one volume never has two jobs at once. A worker that
//! dies stops renewing its lease; whoever notices (the same worker at its
//! next start, or another one once the lease is over) marks the job failed
//! through [`LostJobs`].

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Backup,
    Restore,
    Delete,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobState {
    /// Whether the job is over (no worker will touch it again).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Failed | JobState::Cancelled
        )
    }
}

str_enum!(JobKind { Backup => "backup", Restore => "restore", Delete => "delete" });
str_enum!(JobState {
    Queued => "queued",
    Running => "running",
    Succeeded => "succeeded",
    Failed => "failed",
    Cancelled => "cancelled",
});

/// One job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: Uuid,
    pub kind: JobKind,
    pub state: JobState,
    /// The volume the job works on; one running job per volume.
    pub volume_id: Uuid,
    /// The backup the job creates (its id is chosen at submission),
    /// restores or deletes.
    pub backup_id: Option<Uuid>,
    /// The request as submitted, as JSON (never holds secrets).
    pub request: String,
    /// The step running now (`queued`, `transfer`, ...).
    pub phase: String,
    pub bytes_done: u64,
    pub bytes_total: u64,
    /// Bytes per second of the current phase, as the worker measured it.
    pub rate: f64,
    pub created_at: f64,
    pub started_at: Option<f64>,
    pub finished_at: Option<f64>,
    pub updated_at: f64,
    pub error: Option<String>,
    /// Someone asked to stop it; the worker cancels at its next heartbeat.
    pub cancel_requested: bool,
    /// The worker that claimed it.
    pub worker: Option<String>,
    /// Until when the worker's claim holds without another heartbeat.
    pub lease_until: Option<f64>,
}

impl JobRecord {
    /// A new queued job.
    pub fn queued(
        kind: JobKind,
        volume_id: Uuid,
        backup_id: Option<Uuid>,
        request: String,
        now: f64,
    ) -> Self {
        JobRecord {
            id: Uuid::new_v4(),
            kind,
            state: JobState::Queued,
            volume_id,
            backup_id,
            request,
            phase: "queued".into(),
            bytes_done: 0,
            bytes_total: 0,
            rate: 0.0,
            created_at: now,
            started_at: None,
            finished_at: None,
            updated_at: now,
            error: None,
            cancel_requested: false,
            worker: None,
            lease_until: None,
        }
    }
}

/// Which jobs to list (all when empty), oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFilter {
    pub state: Option<JobState>,
    pub volume_id: Option<Uuid>,
    pub backup_id: Option<Uuid>,
}

impl JobFilter {
    pub fn matches(&self, job: &JobRecord) -> bool {
        self.state.is_none_or(|s| job.state == s)
            && self.volume_id.is_none_or(|v| job.volume_id == v)
            && self.backup_id.is_none_or(|b| job.backup_id == Some(b))
    }
}

/// A worker's claim on the next job it may run.
#[derive(Debug, Clone)]
pub struct JobClaim {
    pub worker: String,
    /// How long the claim holds without a heartbeat.
    pub lease_secs: f64,
    /// Read by the backend once it has picked the job, inside its
    /// transaction: a clock read before the claim began could date the
    /// start before the end of the job on the same volume that it waited
    /// for, and the records would show two jobs of one volume at once.
    pub clock: fn() -> f64,
}

/// A running job's progress, reported with each heartbeat.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobBeat {
    pub phase: String,
    pub bytes_done: u64,
    pub bytes_total: u64,
    pub rate: f64,
    pub now: f64,
    pub lease_until: f64,
}

/// What a heartbeat tells the worker back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// Still this worker's job; go on.
    Held,
    /// Still this worker's job, and someone asked to cancel it.
    CancelRequested,
    /// The job is no longer this worker's (its lease ran out and it was
    /// marked failed): stop and clean up.
    Lost,
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq)]
pub struct JobEnd {
    pub state: JobState,
    pub error: Option<String>,
    pub now: f64,
}

/// Running jobs whose worker is gone: those of `worker` (a worker that
/// restarts: its previous life's jobs), and those whose lease ended
/// before `now`.
#[derive(Debug, Clone, PartialEq)]
pub struct LostJobs {
    pub worker: Option<String>,
    pub now: f64,
    /// Recorded as each job's error.
    pub reason: String,
}

impl LostJobs {
    pub fn matches(&self, job: &JobRecord) -> bool {
        job.state == JobState::Running
            && (self.worker.is_some() && job.worker == self.worker
                || job.lease_until.is_some_and(|l| l < self.now))
    }
}

/// The state transitions, written once for every catalog backend: a
/// backend reads the record(s) in one transaction, applies one of these,
/// and writes the result back.
impl JobRecord {
    /// Takes the job for `claim.worker`.
    pub fn claim(&mut self, claim: &JobClaim) {
        let now = (claim.clock)();
        self.state = JobState::Running;
        self.worker = Some(claim.worker.clone());
        self.lease_until = Some(now + claim.lease_secs);
        self.started_at = Some(now);
        self.updated_at = now;
        self.phase = "starting".into();
    }

    /// Applies a heartbeat of `worker`; the record changes only when the
    /// lease is held.
    pub fn beat(&mut self, worker: &str, beat: &JobBeat) -> Lease {
        if self.state != JobState::Running || self.worker.as_deref() != Some(worker) {
            return Lease::Lost;
        }
        self.phase = beat.phase.clone();
        self.bytes_done = beat.bytes_done;
        self.bytes_total = beat.bytes_total;
        self.rate = beat.rate;
        self.updated_at = beat.now;
        self.lease_until = Some(beat.lease_until);
        match self.cancel_requested {
            true => Lease::CancelRequested,
            false => Lease::Held,
        }
    }

    /// Ends the job of `worker`.
    pub fn finish(&mut self, worker: &str, end: &JobEnd) -> super::CatalogResult<()> {
        if self.state != JobState::Running || self.worker.as_deref() != Some(worker) {
            return Err(self.state_error("it is not running on this worker any more"));
        }
        self.state = end.state;
        self.error = end.error.clone();
        self.finished_at = Some(end.now);
        self.updated_at = end.now;
        self.lease_until = None;
        self.phase = end.state.as_str().into();
        Ok(())
    }

    /// Cancels a queued job, or asks the worker of a running one to.
    pub fn cancel(&mut self, now: f64) -> super::CatalogResult<()> {
        match self.state {
            JobState::Queued => {
                self.state = JobState::Cancelled;
                self.phase = "cancelled".into();
                self.error = Some("cancelled before it started".into());
                self.finished_at = Some(now);
            }
            JobState::Running => self.cancel_requested = true,
            _ => return Err(self.state_error("only queued or running jobs can be cancelled")),
        }
        self.updated_at = now;
        Ok(())
    }

    /// Marks a job whose worker is gone as failed.
    pub fn lose(&mut self, lost: &LostJobs) {
        self.state = JobState::Failed;
        self.error = Some(lost.reason.clone());
        self.phase = "failed".into();
        self.finished_at = Some(lost.now);
        self.updated_at = lost.now;
        self.lease_until = None;
    }

    fn state_error(&self, what: &'static str) -> super::CatalogError {
        super::CatalogError::JobState {
            id: self.id.to_string(),
            state: self.state.as_str().into(),
            what,
        }
    }
}

/// Of the unfinished jobs given (any order), the one a worker may claim
/// next: the oldest queued job whose volume has no running job.
pub fn next_claimable<'a>(open: impl IntoIterator<Item = &'a JobRecord>) -> Option<Uuid> {
    let open: Vec<&JobRecord> = open.into_iter().collect();
    let busy = |v: Uuid| {
        open.iter()
            .any(|j| j.state == JobState::Running && j.volume_id == v)
    };
    open.iter()
        .filter(|j| j.state == JobState::Queued && !busy(j.volume_id))
        .min_by(|a, b| a.created_at.total_cmp(&b.created_at))
        .map(|j| j.id)
}
