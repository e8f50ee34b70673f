//! The catalog conformance suite: what every [`Catalog`] backend must do
//! with backup records, registered volumes, jobs, protected backups and
//! policies. Run by the in-memory catalog's tests and by each backend's
//! (SQLite, PostgreSQL) against a fresh catalog.

use super::{
    Catalog, CatalogError, JobBeat, JobClaim, JobEnd, JobFilter, JobKind, JobRecord, JobState,
    Lease, LostJobs, VolumeRecord,
};
use uuid::Uuid;

/// One named check of the suite.
type Check = (&'static str, fn(&dyn Catalog));

/// Every check, by name, each given a fresh empty catalog by `fresh`.
pub fn run_catalog_suite(fresh: &dyn Fn() -> Box<dyn Catalog>) {
    let checks: &[Check] = &[
        ("registered_volume_round_trip", registered_volume_round_trip),
        (
            "unknown_volume_update_and_remove",
            unknown_volume_update_and_remove,
        ),
        ("job_round_trip_and_filters", job_round_trip_and_filters),
        ("claim_oldest_one_per_volume", claim_oldest_one_per_volume),
        (
            "heartbeat_reports_progress_and_cancel",
            heartbeat_reports_progress_and_cancel,
        ),
        ("cancel_queued_and_finished", cancel_queued_and_finished),
        (
            "lost_jobs_fail_and_free_their_volume",
            lost_jobs_fail_and_free_their_volume,
        ),
        ("unknown_job_is_not_found", unknown_job_is_not_found),
        (
            "concurrent_claims_never_share_a_job",
            concurrent_claims_never_share_a_job,
        ),
        (
            "protection_outlives_record_rewrites",
            super::retention_checks::protection_outlives_record_rewrites,
        ),
        (
            "policies_round_trip_per_scope",
            super::retention_checks::policies_round_trip_per_scope,
        ),
        (
            "backup_round_trip_and_update",
            super::backup_checks::backup_round_trip_and_update,
        ),
        (
            "unknown_backup_is_not_found",
            super::backup_checks::unknown_backup_is_not_found,
        ),
        (
            "backups_listed_oldest_first",
            super::backup_checks::backups_listed_oldest_first,
        ),
        (
            "backups_paged_after_a_marker",
            super::backup_checks::backups_paged_after_a_marker,
        ),
        (
            "change_mark_moves_with_changes",
            super::backup_checks::change_mark_moves_with_changes,
        ),
        (
            "prefixes_resolve_when_unique",
            super::backup_checks::prefixes_resolve_when_unique,
        ),
    ];
    for (name, check) in checks {
        eprintln!("catalog conformance: {name}");
        check(fresh().as_ref());
    }
}

fn registered(source: &str) -> VolumeRecord {
    VolumeRecord {
        cluster: Some("prod".into()),
        registered: true,
        size: Some(1 << 30),
        ..VolumeRecord::new(Uuid::new_v4(), source.into(), "vol-a".into(), 5.0)
    }
}

fn registered_volume_round_trip(cat: &dyn Catalog) {
    let mut v = registered("rbd:volumes/a");
    let plain = VolumeRecord::new(Uuid::new_v4(), "/dev/sdb".into(), "sdb".into(), 6.0);
    cat.insert_volume(&v).unwrap();
    cat.insert_volume(&plain).unwrap();
    assert_eq!(cat.volume(v.id).unwrap(), v);
    assert_eq!(
        cat.volume_by_source("/dev/sdb").unwrap(),
        Some(plain.clone())
    );
    v.registered = false;
    v.cluster = None;
    v.size = None;
    v.name = "renamed".into();
    cat.update_volume(&v).unwrap();
    assert_eq!(cat.volume(v.id).unwrap(), v);
    cat.remove_volume(v.id).unwrap();
    assert!(matches!(
        cat.volume(v.id),
        Err(CatalogError::VolumeNotFound(_))
    ));
    assert_eq!(cat.list_volumes().unwrap(), vec![plain]);
}

fn unknown_volume_update_and_remove(cat: &dyn Catalog) {
    let v = registered("rbd:volumes/b");
    assert!(matches!(
        cat.update_volume(&v),
        Err(CatalogError::VolumeNotFound(_))
    ));
    assert!(matches!(
        cat.remove_volume(v.id),
        Err(CatalogError::VolumeNotFound(_))
    ));
}

fn job(kind: JobKind, volume: Uuid, at: f64) -> JobRecord {
    JobRecord::queued(
        kind,
        volume,
        Some(Uuid::new_v4()),
        r#"{"k":"v \"q\""}"#.into(),
        at,
    )
}

thread_local! {
    /// The time the claims made on this thread read.
    static CLAIM_TIME: std::cell::Cell<f64> = const { std::cell::Cell::new(0.0) };
}

fn claim_time() -> f64 {
    CLAIM_TIME.with(|t| t.get())
}

/// A claim at `now` with a 30 s lease (the backends read the clock on the
/// calling thread).
fn claim(worker: &str, now: f64) -> JobClaim {
    CLAIM_TIME.with(|t| t.set(now));
    JobClaim {
        worker: worker.into(),
        lease_secs: 30.0,
        clock: claim_time,
    }
}

fn end(state: JobState, now: f64) -> JobEnd {
    JobEnd {
        state,
        error: (state != JobState::Succeeded).then(|| format!("ended {state}")),
        now,
    }
}

fn claimed(cat: &dyn Catalog, worker: &str, now: f64) -> Option<Uuid> {
    cat.claim_job(&claim(worker, now)).unwrap().map(|j| j.id)
}

fn job_round_trip_and_filters(cat: &dyn Catalog) {
    let (v1, v2) = (Uuid::new_v4(), Uuid::new_v4());
    let late = job(JobKind::Backup, v1, 30.0);
    let early = JobRecord {
        backup_id: None,
        ..job(JobKind::Restore, v2, 10.0)
    };
    let mut done = job(JobKind::Delete, v1, 20.0);
    for j in [&late, &early, &done] {
        cat.insert_job(j).unwrap();
    }
    assert_eq!(cat.job(late.id).unwrap(), late);
    assert_eq!(cat.job(early.id).unwrap(), early);
    let all = cat.list_jobs(&JobFilter::default()).unwrap();
    assert_eq!(all, vec![early.clone(), done.clone(), late.clone()]);
    let of_v1 = JobFilter {
        volume_id: Some(v1),
        ..Default::default()
    };
    assert_eq!(
        cat.list_jobs(&of_v1).unwrap(),
        vec![done.clone(), late.clone()]
    );
    let of_backup = JobFilter {
        backup_id: late.backup_id,
        ..Default::default()
    };
    assert_eq!(cat.list_jobs(&of_backup).unwrap(), vec![late.clone()]);
    assert_eq!(claimed(cat, "w", 40.0), Some(early.id));
    done = cat.cancel_job(done.id, 41.0).unwrap();
    let cancelled = JobFilter {
        state: Some(JobState::Cancelled),
        ..Default::default()
    };
    assert_eq!(cat.list_jobs(&cancelled).unwrap(), vec![done]);
}

/// The oldest queued job first; a volume with a running job waits.
fn claim_oldest_one_per_volume(cat: &dyn Catalog) {
    let (v1, v2) = (Uuid::new_v4(), Uuid::new_v4());
    let a = job(JobKind::Backup, v1, 1.0);
    let b = job(JobKind::Delete, v1, 2.0);
    let c = job(JobKind::Backup, v2, 3.0);
    for j in [&c, &b, &a] {
        cat.insert_job(j).unwrap();
    }
    let got = cat.claim_job(&claim("w1", 10.0)).unwrap().expect("a job");
    assert_eq!(got.id, a.id);
    assert_eq!(
        (
            got.state,
            got.worker.as_deref(),
            got.lease_until,
            got.started_at
        ),
        (JobState::Running, Some("w1"), Some(40.0), Some(10.0))
    );
    assert_eq!(cat.job(a.id).unwrap(), got);
    assert_eq!(claimed(cat, "w2", 11.0), Some(c.id), "b waits for a on v1");
    assert_eq!(claimed(cat, "w2", 12.0), None);
    let finished = cat
        .finish_job(a.id, "w1", &end(JobState::Succeeded, 13.0))
        .unwrap();
    assert_eq!(
        (finished.state, finished.finished_at, finished.error),
        (JobState::Succeeded, Some(13.0), None)
    );
    assert_eq!(claimed(cat, "w2", 14.0), Some(b.id));
}

fn heartbeat_reports_progress_and_cancel(cat: &dyn Catalog) {
    let a = job(JobKind::Backup, Uuid::new_v4(), 1.0);
    cat.insert_job(&a).unwrap();
    claimed(cat, "w1", 2.0).unwrap();
    let beat = JobBeat {
        phase: "transfer".into(),
        bytes_done: 1 << 20,
        bytes_total: 1 << 30,
        rate: 12.5,
        now: 3.0,
        lease_until: 33.0,
    };
    assert_eq!(cat.heartbeat_job(a.id, "w1", &beat).unwrap(), Lease::Held);
    assert_eq!(cat.heartbeat_job(a.id, "w2", &beat).unwrap(), Lease::Lost);
    let seen = cat.job(a.id).unwrap();
    assert_eq!(
        (
            seen.phase.as_str(),
            seen.bytes_done,
            seen.bytes_total,
            seen.rate,
            seen.lease_until
        ),
        ("transfer", 1 << 20, 1 << 30, 12.5, Some(33.0))
    );
    let flagged = cat.cancel_job(a.id, 4.0).unwrap();
    assert_eq!(
        (flagged.state, flagged.cancel_requested),
        (JobState::Running, true)
    );
    assert_eq!(
        cat.heartbeat_job(a.id, "w1", &beat).unwrap(),
        Lease::CancelRequested
    );
    assert!(matches!(
        cat.finish_job(a.id, "w2", &end(JobState::Cancelled, 5.0)),
        Err(CatalogError::JobState { .. })
    ));
    let over = cat
        .finish_job(a.id, "w1", &end(JobState::Cancelled, 5.0))
        .unwrap();
    assert_eq!(over.error.as_deref(), Some("ended cancelled"));
    assert_eq!(cat.heartbeat_job(a.id, "w1", &beat).unwrap(), Lease::Lost);
    assert!(matches!(
        cat.finish_job(a.id, "w1", &end(JobState::Failed, 6.0)),
        Err(CatalogError::JobState { .. })
    ));
    assert_eq!(cat.job(a.id).unwrap().state, JobState::Cancelled);
}

fn cancel_queued_and_finished(cat: &dyn Catalog) {
    let a = job(JobKind::Backup, Uuid::new_v4(), 1.0);
    cat.insert_job(&a).unwrap();
    let cancelled = cat.cancel_job(a.id, 2.0).unwrap();
    assert_eq!(
        (cancelled.state, cancelled.finished_at),
        (JobState::Cancelled, Some(2.0))
    );
    assert_eq!(claimed(cat, "w1", 3.0), None, "a cancelled job never runs");
    assert!(matches!(
        cat.cancel_job(a.id, 4.0),
        Err(CatalogError::JobState { .. })
    ));
}

fn lost_jobs_fail_and_free_their_volume(cat: &dyn Catalog) {
    let v = Uuid::new_v4();
    let (a, b) = (job(JobKind::Backup, v, 1.0), job(JobKind::Backup, v, 2.0));
    let c = job(JobKind::Restore, Uuid::new_v4(), 3.0);
    for j in [&a, &b, &c] {
        cat.insert_job(j).unwrap();
    }
    assert_eq!(claimed(cat, "w1", 10.0), Some(a.id)); // lease until 40
    assert_eq!(claimed(cat, "w2", 20.0), Some(c.id)); // lease until 50
    let restart = LostJobs {
        worker: Some("w1".into()),
        now: 21.0,
        reason: "the worker restarted".into(),
    };
    let lost = cat.fail_lost_jobs(&restart).unwrap();
    assert_eq!(lost.iter().map(|j| j.id).collect::<Vec<_>>(), vec![a.id]);
    let failed = cat.job(a.id).unwrap();
    assert_eq!(
        (failed.state, failed.error.as_deref()),
        (JobState::Failed, Some("the worker restarted"))
    );
    assert_eq!(
        claimed(cat, "w1", 22.0),
        Some(b.id),
        "the volume is free again"
    );
    let expired = LostJobs {
        worker: None,
        now: 51.0,
        reason: "lease expired".into(),
    };
    let lost: Vec<_> = cat.fail_lost_jobs(&expired).unwrap();
    assert_eq!(lost.iter().map(|j| j.id).collect::<Vec<_>>(), vec![c.id]);
    assert_eq!(
        cat.job(b.id).unwrap().state,
        JobState::Running,
        "b's lease holds"
    );
    let beat = JobBeat {
        now: 52.0,
        lease_until: 82.0,
        ..Default::default()
    };
    assert_eq!(cat.heartbeat_job(c.id, "w2", &beat).unwrap(), Lease::Lost);
}

fn unknown_job_is_not_found(cat: &dyn Catalog) {
    let id = Uuid::new_v4();
    let not_found =
        |e: CatalogError| matches!(e, CatalogError::JobNotFound(s) if s == id.to_string());
    assert!(not_found(cat.job(id).unwrap_err()));
    assert!(not_found(cat.cancel_job(id, 1.0).unwrap_err()));
    let beat = JobBeat::default();
    assert!(not_found(cat.heartbeat_job(id, "w", &beat).unwrap_err()));
    assert!(not_found(
        cat.finish_job(id, "w", &end(JobState::Failed, 1.0))
            .unwrap_err()
    ));
}

/// Workers claiming at once each get different jobs, and never two of one
/// volume while one runs.
fn concurrent_claims_never_share_a_job(cat: &dyn Catalog) {
    let volumes: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
    for i in 0..40 {
        let j = job(JobKind::Backup, volumes[i % volumes.len()], i as f64);
        cat.insert_job(&j).unwrap();
    }
    let got: Vec<Vec<JobRecord>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                s.spawn(move || {
                    let name = format!("w{w}");
                    let mut mine = Vec::new();
                    for round in 0..200 {
                        if let Some(j) = cat.claim_job(&claim(&name, 100.0)).unwrap() {
                            let running = cat.list_jobs(&JobFilter {
                                state: Some(JobState::Running),
                                volume_id: Some(j.volume_id),
                                ..Default::default()
                            });
                            assert_eq!(running.unwrap().len(), 1, "two running on one volume");
                            cat.finish_job(j.id, &name, &end(JobState::Succeeded, 101.0))
                                .unwrap();
                            mine.push(j);
                        } else if round > 100 {
                            break;
                        }
                    }
                    mine
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut ids: Vec<Uuid> = got.iter().flatten().map(|j| j.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 40, "every job claimed exactly once");
    assert_eq!(got.iter().map(Vec::len).sum::<usize>(), 40);
}

#[cfg(test)]
mod tests {
    #[test]
    fn memory_catalog_passes() {
        super::run_catalog_suite(&|| Box::new(super::super::MemoryCatalog::new()));
    }
}
