//! `prune`: a store's backups against their volumes' retention policies,
//! as a plan (what `--dry-run` shows, what the service computes after each
//! successful backup) and its execution through [`Engine::delete`].
//!
//! Chains need no special order: every backup is one snapshot of its
//! chain's base, any of them can go, and the base goes with the last one
//! (on RBD and in the local store alike). Backups are removed oldest first,
//! one delete at a time, each under its volume's lock; a prune killed
//! half-way leaves backups that are either untouched (the next prune plans
//! them for removal again: removing what a plan removes never changes what
//! it keeps) or in `deleting`, which recovery turns into `error` and the
//! next prune (or `backup delete`) removes.

use super::error::EngineResult;
use super::Engine;
use crate::catalog::{effective_policy, BackupRecord, BackupStatus, PolicyScope, VolumeRecord};
use crate::image::{Image, Pool};
use crate::retention::{plan, Action, Candidate, Decision, Policy};
use std::collections::BTreeSet;
use uuid::Uuid;

/// What a prune of one store would do.
#[derive(Debug, Clone)]
pub struct PrunePlan {
    /// The store's label, as backups record it.
    pub store: String,
    pub volumes: Vec<VolumePlan>,
}

/// One volume's backups in the store, oldest first, with their verdicts.
#[derive(Debug, Clone)]
pub struct VolumePlan {
    pub volume: VolumeRecord,
    /// The policy applied and where it is set; `None`: no policy, every
    /// backup is kept.
    pub policy: Option<(PolicyScope, Policy)>,
    pub backups: Vec<PlannedBackup>,
}

#[derive(Debug, Clone)]
pub struct PlannedBackup {
    pub backup: BackupRecord,
    pub protected: bool,
    /// `None`: another operation is working on it (creating, deleting, or
    /// restoring and due to go): left alone this time.
    pub decision: Option<Decision>,
}

impl PlannedBackup {
    pub fn is_removed(&self) -> bool {
        self.decision
            .as_ref()
            .is_some_and(|d| d.action == Action::Remove)
    }
}

impl PrunePlan {
    /// The backups the plan removes, oldest first per volume.
    pub fn removals(&self) -> impl Iterator<Item = &BackupRecord> {
        self.volumes
            .iter()
            .flat_map(|v| &v.backups)
            .filter(|p| p.is_removed())
            .map(|p| &p.backup)
    }
}

/// What executing a plan did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PruneOutcome {
    pub removed: Vec<Uuid>,
    /// Backups whose delete failed, with the error; the others went on.
    pub failed: Vec<(Uuid, String)>,
}

impl Engine<'_> {
    /// Plans a prune of the backups in store `store` (its label), of one
    /// volume or all. Reads the catalog only.
    pub fn plan_prune(&self, store: &str, volume: Option<Uuid>) -> EngineResult<PrunePlan> {
        let protected = self.catalog.protected_backups()?;
        let backups: Vec<BackupRecord> = self
            .catalog
            .list_backups(volume)?
            .into_iter()
            .filter(|b| b.store == store)
            .collect();
        let mut ids: Vec<Uuid> = Vec::new();
        for b in &backups {
            if !ids.contains(&b.volume_id) {
                ids.push(b.volume_id);
            }
        }
        let mut volumes = Vec::new();
        for id in ids {
            let of_volume: Vec<&BackupRecord> =
                backups.iter().filter(|b| b.volume_id == id).collect();
            volumes.push(self.plan_volume(id, store, &of_volume, &protected)?);
        }
        Ok(PrunePlan {
            store: store.to_string(),
            volumes,
        })
    }

    fn plan_volume(
        &self,
        id: Uuid,
        store: &str,
        backups: &[&BackupRecord],
        protected: &BTreeSet<Uuid>,
    ) -> EngineResult<VolumePlan> {
        let volume = self.catalog.volume(id).unwrap_or_else(|_| {
            let first = backups[0];
            VolumeRecord::new(id, first.source.clone(), String::new(), first.created_at)
        });
        let policy = effective_policy(self.catalog, id, store)?;
        // Backups being created or deleted are no candidates; one being
        // restored is a restore point like any other.
        let candidates: Vec<Candidate> = backups
            .iter()
            .filter(|b| !matches!(b.status, BackupStatus::Creating | BackupStatus::Deleting))
            .map(|b| Candidate {
                id: b.id,
                time: b.created_at,
                protected: protected.contains(&b.id),
                failed: b.status == BackupStatus::Error,
            })
            .collect();
        let applied = policy.as_ref().map(|(_, p)| p.clone()).unwrap_or_default();
        let decisions = plan(&candidates, &applied)
            .map_err(|e| super::EngineError::Invalid(format!("policy of volume {id}: {e}")))?;
        let planned = backups
            .iter()
            .map(|b| {
                let decision = decisions
                    .iter()
                    .find(|d| d.id == b.id)
                    .filter(|d| d.action == Action::Keep || b.status != BackupStatus::Restoring)
                    .cloned();
                PlannedBackup {
                    backup: (*b).clone(),
                    protected: protected.contains(&b.id),
                    decision,
                }
            })
            .collect();
        Ok(VolumePlan {
            volume,
            policy,
            backups: planned,
        })
    }

    /// Removes what `plan` removes from `store`, oldest first, each with
    /// [`Engine::delete`] (which re-checks protection and takes the volume
    /// lock). `open_source` opens a backup's source volume, to remove its
    /// backup snapshot there (`None`: not reachable, the snapshot stays).
    /// A failed delete is recorded and the others go on.
    pub fn prune(
        &self,
        plan: &PrunePlan,
        store: &dyn Pool,
        open_source: &dyn Fn(&BackupRecord) -> Option<Box<dyn Image>>,
    ) -> EngineResult<PruneOutcome> {
        let mut outcome = PruneOutcome::default();
        for planned in plan.removals() {
            // The record as it is now: another process may have changed it.
            let current = match self.catalog.backup(planned.id) {
                Ok(b) => b,
                Err(crate::catalog::CatalogError::BackupNotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            };
            let source = open_source(&current);
            let snaps = source.as_ref().and_then(|s| s.snapshots());
            match self.delete(&current, store, snaps) {
                Ok(()) => outcome.removed.push(current.id),
                Err(e) => outcome.failed.push((current.id, e.to_string())),
            }
        }
        Ok(outcome)
    }
}
