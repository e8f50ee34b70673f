//! A catalog in memory: for tests, and for embedding the engine where the
//! records live elsewhere. Same semantics as the SQLite catalog (backups
//! listed oldest first, insertion order breaking ties), no durability.

use super::{BackupRecord, Catalog, CatalogError, CatalogResult, PolicyScope, VolumeRecord};
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
}

impl MemoryCatalog {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
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

    fn insert_backup(&self, backup: &BackupRecord) -> CatalogResult<()> {
        self.state().backups.push(backup.clone());
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
        state.backups.retain(|b| b.id != id);
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
}
