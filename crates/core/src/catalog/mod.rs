//! The catalog of volumes and backups, as a trait.
//!
//! The engine records every backup here; `blockback-catalog` implements it
//! on SQLite. Times are Unix seconds (UTC) as `f64`.

#[macro_use]
mod record;
mod backup_checks;
#[doc(hidden)]
pub mod conformance;
mod job;
mod memory;
mod retention_checks;

pub use job::{
    next_claimable, JobBeat, JobClaim, JobEnd, JobFilter, JobKind, JobRecord, JobState, Lease,
    LostJobs,
};
pub use memory::MemoryCatalog;
pub use record::{BackupKind, BackupRecord, BackupStatus, PolicyScope, VolumeRecord};

use crate::retention::Policy;
use std::collections::BTreeSet;
use uuid::Uuid;

/// Catalog failures.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("backup {0} not found in the catalog; `blockback backup list` shows the known ones")]
    BackupNotFound(String),
    #[error(
        "backup id prefix {given:?} is ambiguous: it matches {candidates}; give more of the id"
    )]
    AmbiguousBackup { given: String, candidates: String },
    #[error("volume {0} not found in the catalog")]
    VolumeNotFound(String),
    #[error("job {0} not found in the catalog")]
    JobNotFound(String),
    #[error("job {id} is {state}; {what}")]
    JobState {
        id: String,
        state: String,
        what: &'static str,
    },
    #[error("catalog {path}: {msg}")]
    Database { path: String, msg: String },
    #[error("catalog {path} was written by a newer blockback (schema {found}, this one knows {known}); upgrade blockback")]
    NewerSchema {
        path: String,
        found: i64,
        known: i64,
    },
}

pub type CatalogResult<T> = std::result::Result<T, CatalogError>;

/// Storage of volume and backup records. Implementations must make each
/// call atomic and durable before returning.
pub trait Catalog: Send + Sync {
    /// The volume whose source is `source`, if one is known.
    fn volume_by_source(&self, source: &str) -> CatalogResult<Option<VolumeRecord>>;
    fn volume(&self, id: Uuid) -> CatalogResult<VolumeRecord>;
    fn insert_volume(&self, volume: &VolumeRecord) -> CatalogResult<()>;
    fn list_volumes(&self) -> CatalogResult<Vec<VolumeRecord>>;
    /// Replaces the stored volume with the same id.
    fn update_volume(&self, volume: &VolumeRecord) -> CatalogResult<()>;
    /// Removes a volume record; its backups stay (callers decide whether
    /// to unregister instead, see [`VolumeRecord::registered`]).
    fn remove_volume(&self, id: Uuid) -> CatalogResult<()>;

    fn insert_backup(&self, backup: &BackupRecord) -> CatalogResult<()>;
    /// Replaces the stored record with the same id.
    fn update_backup(&self, backup: &BackupRecord) -> CatalogResult<()>;
    fn remove_backup(&self, id: Uuid) -> CatalogResult<()>;
    fn backup(&self, id: Uuid) -> CatalogResult<BackupRecord>;
    /// Backups, oldest first; only those of `volume` when given.
    fn list_backups(&self, volume: Option<Uuid>) -> CatalogResult<Vec<BackupRecord>>;
    /// One page of the backups `page` selects, oldest first, in the order
    /// of [`Self::list_backups`]; [`CatalogError::BackupNotFound`] when
    /// `page.after` is not one of them. This default filters the whole
    /// list; SQL backends read only the page (a service lists often, and
    /// a catalog grows with every backup).
    fn backups_page(&self, page: &BackupPage) -> CatalogResult<Vec<BackupRecord>> {
        let matching: Vec<BackupRecord> = self
            .list_backups(page.volume_id)?
            .into_iter()
            .filter(|b| page.matches(b))
            .collect();
        let start = match page.after {
            None => 0,
            Some(after) => match matching.iter().position(|b| b.id == after) {
                Some(i) => i + 1,
                None => return Err(CatalogError::BackupNotFound(after.to_string())),
            },
        };
        Ok(matching.into_iter().skip(start).take(page.limit).collect())
    }

    /// Protects a backup from retention and `backup delete`, or lifts that;
    /// [`CatalogError::BackupNotFound`] for an unknown backup. Kept apart
    /// from the record, so an operation that rewrites the record (a
    /// restore's status) never undoes it.
    fn set_protected(&self, id: Uuid, protected: bool) -> CatalogResult<()>;
    /// The ids of the protected backups.
    fn protected_backups(&self) -> CatalogResult<BTreeSet<Uuid>>;
    /// The retention policy set for `scope`, if any.
    fn policy(&self, scope: &PolicyScope) -> CatalogResult<Option<Policy>>;
    /// Sets (or with `None` removes) the policy of `scope`.
    fn set_policy(&self, scope: &PolicyScope, policy: Option<&Policy>) -> CatalogResult<()>;
    /// Every policy set, ordered by [`PolicyScope::key`].
    fn list_policies(&self) -> CatalogResult<Vec<(PolicyScope, Policy)>>;

    // Jobs (see [`job`](self::JobRecord) for their life cycle).

    fn insert_job(&self, job: &JobRecord) -> CatalogResult<()>;
    fn job(&self, id: Uuid) -> CatalogResult<JobRecord>;
    /// Jobs matching `filter`, oldest first.
    fn list_jobs(&self, filter: &JobFilter) -> CatalogResult<Vec<JobRecord>>;
    /// Atomically takes the oldest queued job whose volume has no running
    /// job: it becomes running, owned by `claim.worker` for
    /// `claim.lease_secs` from the time `claim.clock` gives once the job is
    /// picked. `None` when no job may start.
    fn claim_job(&self, claim: &JobClaim) -> CatalogResult<Option<JobRecord>>;
    /// Records a running job's progress and extends its lease, if `worker`
    /// still owns it.
    fn heartbeat_job(&self, id: Uuid, worker: &str, beat: &JobBeat) -> CatalogResult<Lease>;
    /// Ends a running job owned by `worker` (state, error, finish time);
    /// [`CatalogError::JobState`] when it is not (any more) that worker's.
    fn finish_job(&self, id: Uuid, worker: &str, end: &JobEnd) -> CatalogResult<JobRecord>;
    /// Cancels a queued job at once, or flags a running one for its worker;
    /// [`CatalogError::JobState`] for a finished job.
    fn cancel_job(&self, id: Uuid, now: f64) -> CatalogResult<JobRecord>;
    /// Marks the running jobs `lost` matches as failed with its reason,
    /// releasing their volumes; returns them as they were.
    fn fail_lost_jobs(&self, lost: &LostJobs) -> CatalogResult<Vec<JobRecord>>;

    /// A mark that stays the same until a change is committed to the
    /// catalog, by this process or any other sharing it, and then differs
    /// from every mark returned before: what was read after taking a mark
    /// may be reused while the mark is unchanged. `None` when the backend
    /// cannot tell cheaply; then nothing read may be reused.
    fn change_mark(&self) -> CatalogResult<Option<u64>> {
        Ok(None)
    }

    /// True for a catalog opened read-only (e.g. on read-only media):
    /// operations that only read skip their bookkeeping writes.
    fn is_read_only(&self) -> bool {
        false
    }
}

/// Which backups [`Catalog::backups_page`] reads.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupPage {
    pub volume_id: Option<Uuid>,
    pub status: Option<BackupStatus>,
    /// The last backup of the previous page; it must match the filter.
    pub after: Option<Uuid>,
    /// At most this many backups.
    pub limit: usize,
}

impl BackupPage {
    /// Whether `backup` passes the filter (`after` and `limit` aside).
    pub fn matches(&self, backup: &BackupRecord) -> bool {
        self.volume_id.is_none_or(|v| backup.volume_id == v)
            && self.status.is_none_or(|s| backup.status == s)
    }
}

/// The policy that applies to `volume`'s backups in `store`: the volume's
/// own, else the store's default, with where it came from.
pub fn effective_policy(
    catalog: &dyn Catalog,
    volume: Uuid,
    store: &str,
) -> CatalogResult<Option<(PolicyScope, Policy)>> {
    for scope in [
        PolicyScope::Volume(volume),
        PolicyScope::Store(store.to_string()),
    ] {
        if let Some(policy) = catalog.policy(&scope)? {
            return Ok(Some((scope, policy)));
        }
    }
    Ok(None)
}

/// Resolves a user-given backup id: a full UUID or a unique prefix.
pub fn resolve_backup(catalog: &dyn Catalog, given: &str) -> CatalogResult<BackupRecord> {
    if let Ok(id) = Uuid::parse_str(given) {
        return catalog.backup(id);
    }
    let given_lower = given.to_ascii_lowercase();
    let mut matches = catalog
        .list_backups(None)?
        .into_iter()
        .filter(|b| !given.is_empty() && b.id.to_string().starts_with(&given_lower));
    match (matches.next(), matches.next()) {
        (Some(b), None) => Ok(b),
        (Some(a), Some(b)) => {
            let mut ids = vec![a.id.to_string(), b.id.to_string()];
            ids.extend(matches.map(|m| m.id.to_string()));
            Err(CatalogError::AmbiguousBackup {
                given: given.to_string(),
                candidates: ids.join(", "),
            })
        }
        _ => Err(CatalogError::BackupNotFound(given.to_string())),
    }
}
