//! What every handler shares, and the service operations both APIs call
//! (submitting jobs, registering volumes), so the native and the Cinder
//! API apply the same rules.

use crate::auth::Tokens;
use crate::config::ServiceConfig;
use crate::jobs::request::{BackupMode, JobRequest, RestoreTarget, ScheduledRun};
use crate::jobs::worker::Worker;
use crate::metrics::Metrics;
use blockback_core::catalog::{
    BackupRecord, BackupStatus, Catalog, CatalogError, JobFilter, JobRecord, JobState, VolumeRecord,
};
use blockback_core::engine::unix_now;
use blockback_core::metadata::BackupMetadata;
use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

/// What the service needs from the outside world besides the catalog:
/// looking at volumes, stores and clusters (implemented with
/// `blockback-ops`; tests may substitute).
pub trait Backend: Send + Sync + 'static {
    /// Opens a volume's source to check it exists: the source as the
    /// catalog records it (resolved) and its size in bytes.
    fn probe_volume(&self, source: &str, cluster: Option<&str>) -> Result<Probed, String>;
    /// Bytes the store occupies, when it can tell.
    fn store_usage(&self) -> Result<Option<u64>, String>;
    /// The store as backup records name it (`rbd:POOL`, an absolute directory).
    fn store_label(&self) -> String;
    /// Connects to each configured cluster the service uses; one entry per cluster.
    fn check_clusters(&self) -> Vec<(String, Result<(), String>)>;
    /// Checks that an imported backup's data is in its store (its base
    /// image and snapshot).
    fn check_backup_data(&self, backup: &BackupRecord) -> Result<(), String>;
    /// The source a new RBD volume restored from `backup` gets
    /// (`rbd:POOL/volume-<id>` in the pool of the backup's source).
    fn new_volume_source(&self, backup: &BackupRecord, volume_id: Uuid) -> Result<String, String>;
    /// Exports of backups over NBD; `None` when not configured.
    fn exports(&self) -> Option<&dyn crate::exports::Exporter> {
        None
    }
}

/// A volume source, looked at.
#[derive(Debug, Clone, PartialEq)]
pub struct Probed {
    pub label: String,
    pub size: u64,
}

pub struct AppState {
    pub config: Arc<ServiceConfig>,
    pub catalog: Arc<dyn Catalog>,
    pub worker: Arc<Worker>,
    pub metrics: Arc<Metrics>,
    pub tokens: Tokens,
    pub backend: Arc<dyn Backend>,
    /// Answers of list and show requests while the catalog is unchanged.
    pub read_cache: crate::read_cache::ReadCache,
}

/// A request the service refuses, or a failure behind it.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Internal(String),
}

impl From<CatalogError> for ServiceError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::BackupNotFound(_)
            | CatalogError::VolumeNotFound(_)
            | CatalogError::JobNotFound(_) => ServiceError::NotFound(e.to_string()),
            CatalogError::JobState { .. } => ServiceError::Conflict(e.to_string()),
            _ => ServiceError::Internal(e.to_string()),
        }
    }
}

impl ServiceError {
    /// The HTTP status both APIs answer this error with.
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            ServiceError::NotFound(_) => StatusCode::NOT_FOUND,
            ServiceError::Invalid(_) => StatusCode::BAD_REQUEST,
            ServiceError::Conflict(_) => StatusCode::CONFLICT,
            ServiceError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// Limits of names and labels, as Cinder's schema has them.
pub const MAX_LABEL: usize = 255;

/// Runs blocking catalog or backend work off the async threads.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> ServiceResult<T> + Send + 'static,
) -> ServiceResult<T> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .unwrap_or_else(|e| Err(ServiceError::Internal(format!("worker thread failed: {e}"))))
}

/// A new volume registration.
#[derive(Debug, Clone)]
pub struct NewVolume {
    /// The id the client chose (Cinder's volume id) [default: a new one].
    pub id: Option<Uuid>,
    pub name: String,
    pub source: String,
    pub cluster: Option<String>,
}

/// What a client may choose for a backup it submits (the Cinder backup
/// driver: Cinder's backup id and its `backup.<id>.meta` object).
#[derive(Debug, Clone, Default)]
pub struct Chosen {
    pub id: Option<Uuid>,
    /// The metadata object's JSON as Cinder writes it.
    pub metadata_object: Option<String>,
}

impl AppState {
    /// Registers a volume (checking its source exists); a source the
    /// catalog already knows keeps its id, so its chain continues.
    pub fn register_volume(&self, new: NewVolume) -> ServiceResult<VolumeRecord> {
        check_label("name", &new.name)?;
        if new.cluster.is_some() && self.config.cluster(new.cluster.as_deref()).is_none() {
            return Err(ServiceError::Invalid(format!(
                "cluster {:?} is not configured; add [clusters.{0}] to the configuration",
                new.cluster.as_deref().unwrap_or("")
            )));
        }
        let Probed {
            label: source,
            size,
        } = self
            .backend
            .probe_volume(&new.source, new.cluster.as_deref())
            .map_err(ServiceError::Invalid)?;
        self.check_chosen_volume_id(new.id, &source)?;
        if let Some(mut known) = self.catalog.volume_by_source(&source)? {
            if known.registered {
                return Err(ServiceError::Conflict(format!(
                    "source {source} is already registered as volume {} ({})",
                    known.id, known.name
                )));
            }
            known.registered = true;
            known.name = new.name;
            known.cluster = new.cluster;
            known.size = Some(size);
            self.catalog.update_volume(&known)?;
            return Ok(known);
        }
        let volume = VolumeRecord {
            cluster: new.cluster,
            registered: true,
            size: Some(size),
            ..VolumeRecord::new(
                new.id.unwrap_or_else(Uuid::new_v4),
                source,
                new.name,
                unix_now(),
            )
        };
        self.catalog.insert_volume(&volume)?;
        Ok(volume)
    }

    /// A chosen volume id must be free, or be the one the catalog already
    /// has for this source (its earlier backups recorded it).
    fn check_chosen_volume_id(&self, id: Option<Uuid>, source: &str) -> ServiceResult<()> {
        let Some(id) = id else { return Ok(()) };
        let taken = match self.catalog.volume(id) {
            Ok(v) => v,
            Err(CatalogError::VolumeNotFound(_)) => match self.catalog.volume_by_source(source)? {
                Some(known) => known,
                None => return Ok(()),
            },
            Err(e) => return Err(e.into()),
        };
        if taken.id == id && taken.source == source {
            return Ok(());
        }
        Err(ServiceError::Conflict(format!(
            "volume id {id}: the catalog already has volume {} for source {}; give another id or none",
            taken.id, taken.source
        )))
    }

    /// Unregisters a volume; its backups stay. Refused while it has jobs.
    pub fn unregister_volume(&self, id: Uuid) -> ServiceResult<VolumeRecord> {
        let mut volume = self.registered_volume(id)?;
        if !self.active_jobs(|f| f.volume_id = Some(id))?.is_empty() {
            return Err(ServiceError::Conflict(format!(
                "volume {id} has queued or running jobs; wait for them or cancel them first"
            )));
        }
        volume.registered = false;
        self.catalog.update_volume(&volume)?;
        Ok(volume)
    }

    pub fn registered_volume(&self, id: Uuid) -> ServiceResult<VolumeRecord> {
        match self.catalog.volume(id) {
            Ok(v) if v.registered => Ok(v),
            Ok(_) | Err(CatalogError::VolumeNotFound(_)) => Err(ServiceError::NotFound(format!(
                "volume {id} is not registered; `GET /api/v1/volumes` lists the registered ones"
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub fn registered_volumes(&self) -> ServiceResult<Vec<VolumeRecord>> {
        let all = self.catalog.list_volumes()?;
        Ok(all.into_iter().filter(|v| v.registered).collect())
    }

    /// Queued and running jobs matching the filter `set` builds.
    pub fn active_jobs(&self, set: impl FnOnce(&mut JobFilter)) -> ServiceResult<Vec<JobRecord>> {
        let mut filter = JobFilter::default();
        set(&mut filter);
        let jobs = self.catalog.list_jobs(&filter)?;
        Ok(jobs.into_iter().filter(|j| !j.state.is_final()).collect())
    }

    /// Queues a backup of a registered volume; the backup id is known now.
    pub fn submit_backup(
        &self,
        volume: &VolumeRecord,
        mode: BackupMode,
        labels: BTreeMap<String, String>,
        metadata: BTreeMap<String, String>,
        chosen: Chosen,
    ) -> ServiceResult<JobRecord> {
        self.submit_backup_run(volume, mode, labels, metadata, chosen, None)
    }

    /// [`AppState::submit_backup`], for a client or a schedule's run.
    pub fn submit_backup_run(
        &self,
        volume: &VolumeRecord,
        mode: BackupMode,
        labels: BTreeMap<String, String>,
        metadata: BTreeMap<String, String>,
        chosen: Chosen,
        scheduled: Option<ScheduledRun>,
    ) -> ServiceResult<JobRecord> {
        for (k, v) in labels.iter().chain(&metadata) {
            check_label("metadata key", k)?;
            check_label(k, v)?;
        }
        if mode == BackupMode::Incremental && !self.has_available_backup(volume.id)? {
            return Err(ServiceError::Invalid(
                "Invalid backup: No backups available to do an incremental backup.".into(),
            ));
        }
        if let Some(text) = &chosen.metadata_object {
            BackupMetadata::from_json(text.as_bytes())
                .map_err(|e| ServiceError::Invalid(format!("metadata_object: {e}")))?;
        }
        let backup_id = match chosen.id {
            Some(id) => self.check_backup_id_free(id)?,
            None => Uuid::new_v4(),
        };
        let request = JobRequest::Backup {
            backup_id,
            mode,
            labels,
            metadata,
            metadata_object: chosen.metadata_object,
            scheduled,
        };
        self.enqueue(volume.id, request)
    }

    /// A chosen backup id must name no backup and no job yet.
    fn check_backup_id_free(&self, id: Uuid) -> ServiceResult<Uuid> {
        let recorded = match self.catalog.backup(id) {
            Ok(_) => true,
            Err(CatalogError::BackupNotFound(_)) => false,
            Err(e) => return Err(e.into()),
        };
        let filter = JobFilter {
            backup_id: Some(id),
            ..JobFilter::default()
        };
        if recorded || !self.catalog.list_jobs(&filter)?.is_empty() {
            return Err(ServiceError::Conflict(format!(
                "backup id {id} is already used (a backup or a job has it); give another id or none"
            )));
        }
        Ok(id)
    }

    fn has_available_backup(&self, volume: Uuid) -> ServiceResult<bool> {
        let backups = self.catalog.list_backups(Some(volume))?;
        Ok(backups.iter().any(|b| b.status == BackupStatus::Available))
    }

    /// Queues a restore of an available backup.
    pub fn submit_restore(
        &self,
        backup: &BackupRecord,
        target: RestoreTarget,
    ) -> ServiceResult<JobRecord> {
        if backup.status != BackupStatus::Available && backup.status != BackupStatus::Restoring {
            return Err(ServiceError::Invalid(format!(
                "Invalid backup: Backup status must be available (backup {} is {})",
                backup.id, backup.status
            )));
        }
        let lock_volume = match &target {
            RestoreTarget::Volume { volume_id } => self.registered_volume(*volume_id)?.id,
            RestoreTarget::NewVolume { .. } => backup.volume_id,
            RestoreTarget::File { path } => {
                self.check_restore_path(path)?;
                backup.volume_id
            }
        };
        let request = JobRequest::Restore {
            backup_id: backup.id,
            target,
        };
        self.enqueue(lock_volume, request)
    }

    /// Queues a delete; without `force` only available or error backups.
    pub fn submit_delete(&self, backup: &BackupRecord, force: bool) -> ServiceResult<JobRecord> {
        let deletable = matches!(backup.status, BackupStatus::Available | BackupStatus::Error);
        if !force && !deletable {
            return Err(ServiceError::Invalid(format!(
                "Invalid backup: Backup status must be available or error (backup {} is {})",
                backup.id, backup.status
            )));
        }
        let pending = self.active_jobs(|f| f.backup_id = Some(backup.id))?;
        if let Some(j) = pending
            .iter()
            .find(|j| j.kind == blockback_core::catalog::JobKind::Delete)
        {
            return Ok(j.clone());
        }
        let request = JobRequest::Delete {
            backup_id: backup.id,
            force,
        };
        self.enqueue(backup.volume_id, request)
    }

    fn enqueue(&self, volume: Uuid, request: JobRequest) -> ServiceResult<JobRecord> {
        let job = JobRecord::queued(
            request.kind(),
            volume,
            Some(request.backup_id()),
            request.to_json(),
            unix_now(),
        );
        self.catalog.insert_job(&job)?;
        tracing::info!(job_id = %job.id, kind = %job.kind, volume_id = %volume, "job queued");
        self.worker.wake();
        Ok(job)
    }

    /// A file target must lie in a configured restore directory.
    fn check_restore_path(&self, path: &str) -> ServiceResult<()> {
        let p = std::path::Path::new(path);
        let clean = p.is_absolute()
            && !p
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir));
        let allowed = self.config.restore_dirs.iter().any(|d| p.starts_with(d));
        if clean && allowed {
            return Ok(());
        }
        let dirs: Vec<String> = self
            .config
            .restore_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        Err(ServiceError::Invalid(format!(
            "restore path {path:?} is not an absolute path under a restore directory ({}); set restore_dirs in the configuration",
            match dirs.is_empty() {
                true => "none configured".to_string(),
                false => dirs.join(", "),
            }
        )))
    }

    /// Cancels a job (a queued one at once; a running one at its next
    /// heartbeat, cleaning up as after any failure).
    pub fn cancel_job(&self, id: Uuid) -> ServiceResult<JobRecord> {
        let job = self.catalog.cancel_job(id, unix_now())?;
        if job.state == JobState::Cancelled {
            self.worker.wake();
        }
        Ok(job)
    }
}

pub fn check_label(what: &str, value: &str) -> ServiceResult<()> {
    if value.len() > MAX_LABEL || value.chars().any(char::is_control) {
        return Err(ServiceError::Invalid(format!(
            "{what}: at most {MAX_LABEL} bytes without control characters"
        )));
    }
    Ok(())
}
