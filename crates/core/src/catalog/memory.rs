//! A catalog in memory: for tests, and for embedding the engine where the
//! records live elsewhere. Same semantics as the SQLite catalog (backups
//! listed oldest first, insertion order breaking ties), no durability.

use super::job::next_claimable;
use super::{
    BackupRecord, Catalog, CatalogError, CatalogResult, JobBeat, JobClaim, JobEnd, JobFilter,
    JobRecord, Lease, LostJobs, PolicyScope, VolumeRecord,
};
use crate::retention::Policy;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use uuid::Uuid;

#[derive(Debug, Default)]
pub struct MemoryCatalog {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    volumes: Vec<VolumeRecord>,
    backups: Vec<BackupRecord>,
    protected: BTreeSet<Uuid>,
    policies: BTreeMap<PolicyScope, Policy>,
    jobs: Vec<JobRecord>,
}

impl MemoryCatalog {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Applies `change` to job `id` under the lock.
    fn with_job<T>(
        &self,
        id: Uuid,
        change: impl FnOnce(&mut JobRecord) -> CatalogResult<T>,
    ) -> CatalogResult<(T, JobRecord)> {
        let mut state = self.state();
        let job = state.jobs.iter_mut().find(|j| j.id == id);
        let job = job.ok_or_else(|| CatalogError::JobNotFound(id.to_string()))?;
        let mut changed = job.clone();
        let out = change(&mut changed)?;
        *job = changed.clone();
        Ok((out, changed))
    }
}

impl Catalog for MemoryCatalog {
    fn volume_by_source(&self, source: &str) -> CatalogResult<Option<VolumeRecord>> {
        Ok(self
            .state()
            .volumes
            .iter()
            .find(|v| v.source == source)
            .cloned())
    }

    fn volume(&self, id: Uuid) -> CatalogResult<VolumeRecord> {
        let state = self.state();
        let found = state.volumes.iter().find(|v| v.id == id).cloned();
        found.ok_or_else(|| CatalogError::VolumeNotFound(id.to_string()))
    }

    fn insert_volume(&self, volume: &VolumeRecord) -> CatalogResult<()> {
        self.state().volumes.push(volume.clone());
        Ok(())
    }

    fn list_volumes(&self) -> CatalogResult<Vec<VolumeRecord>> {
        Ok(self.state().volumes.clone())
    }

    fn update_volume(&self, volume: &VolumeRecord) -> CatalogResult<()> {
        let mut state = self.state();
        let slot = state.volumes.iter_mut().find(|v| v.id == volume.id);
        *slot.ok_or_else(|| CatalogError::VolumeNotFound(volume.id.to_string()))? = volume.clone();
        Ok(())
    }

    fn remove_volume(&self, id: Uuid) -> CatalogResult<()> {
        let mut state = self.state();
        let before = state.volumes.len();
        state.volumes.retain(|v| v.id != id);
        match state.volumes.len() < before {
            true => Ok(()),
            false => Err(CatalogError::VolumeNotFound(id.to_string())),
        }
    }

    fn insert_backup(&self, backup: &BackupRecord) -> CatalogResult<()> {
        let mut state = self.state();
        if state.backups.iter().any(|b| b.id == backup.id) {
            return Err(CatalogError::Database {
                path: "memory".into(),
                msg: format!("backup {} already exists", backup.id),
            });
        }
        state.backups.push(backup.clone());
        Ok(())
    }

    fn update_backup(&self, backup: &BackupRecord) -> CatalogResult<()> {
        let mut state = self.state();
        let slot = state.backups.iter_mut().find(|b| b.id == backup.id);
        let slot = slot.ok_or_else(|| CatalogError::BackupNotFound(backup.id.to_string()))?;
        *slot = backup.clone();
        Ok(())
    }

    fn remove_backup(&self, id: Uuid) -> CatalogResult<()> {
        let mut state = self.state();
        let before = state.backups.len();
        state.backups.retain(|b| b.id != id);
        if state.backups.len() == before {
            return Err(CatalogError::BackupNotFound(id.to_string()));
        }
        state.protected.remove(&id);
        Ok(())
    }

    fn backup(&self, id: Uuid) -> CatalogResult<BackupRecord> {
        let state = self.state();
        let found = state.backups.iter().find(|b| b.id == id).cloned();
        found.ok_or_else(|| CatalogError::BackupNotFound(id.to_string()))
    }

    fn list_backups(&self, volume: Option<Uuid>) -> CatalogResult<Vec<BackupRecord>> {
        let mut list: Vec<BackupRecord> = self
            .state()
            .backups
            .iter()
            .filter(|b| volume.is_none_or(|v| b.volume_id == v))
            .cloned()
            .collect();
        // Stable: equal times keep insertion order, as rowid does in SQLite.
        list.sort_by(|a, b| a.created_at.total_cmp(&b.created_at));
        Ok(list)
    }

    fn set_protected(&self, id: Uuid, protected: bool) -> CatalogResult<()> {
        let mut state = self.state();
        if !state.backups.iter().any(|b| b.id == id) {
            return Err(CatalogError::BackupNotFound(id.to_string()));
        }
        match protected {
            true => state.protected.insert(id),
            false => state.protected.remove(&id),
        };
        Ok(())
    }

    fn protected_backups(&self) -> CatalogResult<BTreeSet<Uuid>> {
        Ok(self.state().protected.clone())
    }

    fn policy(&self, scope: &PolicyScope) -> CatalogResult<Option<Policy>> {
        Ok(self.state().policies.get(scope).cloned())
    }

    fn set_policy(&self, scope: &PolicyScope, policy: Option<&Policy>) -> CatalogResult<()> {
        let mut state = self.state();
        match policy {
            Some(p) => state.policies.insert(scope.clone(), p.clone()),
            None => state.policies.remove(scope),
        };
        Ok(())
    }

    fn list_policies(&self) -> CatalogResult<Vec<(PolicyScope, Policy)>> {
        let state = self.state();
        let mut all: Vec<_> = state
            .policies
            .iter()
            .map(|(s, p)| (s.clone(), p.clone()))
            .collect();
        all.sort_by_key(|(scope, _)| scope.key());
        Ok(all)
    }

    fn insert_job(&self, job: &JobRecord) -> CatalogResult<()> {
        self.state().jobs.push(job.clone());
        Ok(())
    }

    fn job(&self, id: Uuid) -> CatalogResult<JobRecord> {
        let state = self.state();
        let found = state.jobs.iter().find(|j| j.id == id).cloned();
        found.ok_or_else(|| CatalogError::JobNotFound(id.to_string()))
    }

    fn list_jobs(&self, filter: &JobFilter) -> CatalogResult<Vec<JobRecord>> {
        let state = self.state();
        let mut list: Vec<_> = state
            .jobs
            .iter()
            .filter(|j| filter.matches(j))
            .cloned()
            .collect();
        list.sort_by(|a, b| a.created_at.total_cmp(&b.created_at));
        Ok(list)
    }

    fn claim_job(&self, claim: &JobClaim) -> CatalogResult<Option<JobRecord>> {
        let mut state = self.state();
        let Some(id) = next_claimable(state.jobs.iter().filter(|j| !j.state.is_final())) else {
            return Ok(None);
        };
        let job = state.jobs.iter_mut().find(|j| j.id == id);
        let job = job.ok_or_else(|| CatalogError::JobNotFound(id.to_string()))?;
        job.claim(claim);
        Ok(Some(job.clone()))
    }

    fn heartbeat_job(&self, id: Uuid, worker: &str, beat: &JobBeat) -> CatalogResult<Lease> {
        Ok(self.with_job(id, |j| Ok(j.beat(worker, beat)))?.0)
    }

    fn finish_job(&self, id: Uuid, worker: &str, end: &JobEnd) -> CatalogResult<JobRecord> {
        Ok(self.with_job(id, |j| j.finish(worker, end))?.1)
    }

    fn cancel_job(&self, id: Uuid, now: f64) -> CatalogResult<JobRecord> {
        Ok(self.with_job(id, |j| j.cancel(now))?.1)
    }

    fn fail_lost_jobs(&self, lost: &LostJobs) -> CatalogResult<Vec<JobRecord>> {
        let mut state = self.state();
        let mut was = Vec::new();
        for job in state.jobs.iter_mut().filter(|j| lost.matches(j)) {
            was.push(job.clone());
            job.lose(lost);
        }
        Ok(was)
    }
}
