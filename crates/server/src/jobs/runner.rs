//! Runs jobs and answers the service's questions about volumes and
//! stores through `blockback-ops`: the same operations, with the same
//! rules, as the CLI.

use super::progress::JobProgress;
use super::request::{BackupMode, JobRequest, RestoreTarget};
use super::worker::{JobFailure, JobOutcome, JobRunner};
use crate::config::ServiceConfig;
use crate::state::{Backend, Probed, ServiceError};
use blockback_core::catalog::{BackupRecord, BackupStatus, Catalog, JobRecord, VolumeRecord};
use blockback_core::engine::{unix_now, ChainMode, TransferBuffers};
use blockback_core::metadata::BackupMetadata;
use blockback_ops::{
    keys_from_files, BackupOptions, CatalogLocation, Connections, DeleteOptions, Ops, OpsError,
    RestoreOptions, Settings, StoreKeys, StoreLocation, TargetKind, Volume,
};
use std::sync::Arc;
use std::time::Duration;

/// The service's access to volumes, stores and clusters.
pub struct OpsRunner {
    config: Arc<ServiceConfig>,
    catalog: Arc<dyn Catalog>,
    store: StoreLocation,
    catalog_location: CatalogLocation,
    /// Credentials of an encrypted local store (key_file, passphrase_file).
    keys: StoreKeys,
    connections: Connections,
    /// Transfer buffers shared by every running job: the service's
    /// transfer memory stays under `jobs.transfer_memory_mib` however many
    /// jobs run.
    buffers: TransferBuffers,
    /// Exports of backups over NBD, when `[nbd] listen` is set.
    exports: Option<crate::exports::NbdExports>,
}

impl OpsRunner {
    pub fn new(config: Arc<ServiceConfig>, catalog: Arc<dyn Catalog>) -> Result<Self, String> {
        let store = StoreLocation::parse(&config.store).map_err(|e| format!("store: {e}"))?;
        let keys = keys_from_files(
            config.key_file.as_deref(),
            config.passphrase_file.as_deref(),
        )
        .map_err(|e| e.to_string())?;
        let keys = StoreKeys::new(Arc::new(keys));
        if keys.given() && matches!(store, StoreLocation::Rbd(_)) {
            return Err(format!(
                "key_file / passphrase_file are set, but store {} is an RBD pool, which blockback does not encrypt (docs/rbd.md, \"Encryption\"); remove them or use an encrypted local store",
                store.label()
            ));
        }
        let exports = match &config.nbd.listen {
            Some(listen) => Some(crate::exports::NbdExports::bind(listen)?),
            None => None,
        };
        let catalog_location = CatalogLocation::parse(&config.catalog, &config.state_dir)
            .map_err(|e| format!("catalog: {e}"))?;
        catalog_location
            .check_store(&store)
            .map_err(|e| e.to_string())?;
        let nice = config.jobs.nice;
        let connections = Connections::connecting_with(
            config.jobs.rbd_queue_depth,
            Box::new(move |cluster| {
                super::thread::run_niced("ceph-connect", nice, || Connections::connect(cluster))
            }),
        );
        let buffers = TransferBuffers::with_bytes(config.jobs.transfer_memory_mib << 20);
        Ok(OpsRunner {
            config,
            catalog,
            store,
            catalog_location,
            keys,
            connections,
            buffers,
            exports,
        })
    }

    pub(crate) fn nbd_exports(&self) -> Result<&crate::exports::NbdExports, ServiceError> {
        self.exports.as_ref().ok_or_else(|| {
            ServiceError::Conflict(
                "exports over NBD are off: set listen in the [nbd] section of the configuration"
                    .into(),
            )
        })
    }

    /// Settings with the volume side on `cluster`.
    fn settings(&self, cluster: Option<&str>) -> Result<Settings, String> {
        let volume_ceph = self.config.cluster(cluster).ok_or_else(|| {
            format!(
                "cluster {:?} is not configured",
                cluster.unwrap_or_default()
            )
        })?;
        Ok(Settings {
            store: self.store.clone(),
            catalog: self.catalog_location.clone(),
            volume_store: None,
            store_ceph: self.config.cluster(None).unwrap_or_default(),
            volume_ceph,
            store_layout: Default::default(),
            lock_lease: lock_lease(self.config.jobs.lease_secs),
            keys: self.keys.clone(),
        })
    }

    pub(crate) fn with_ops<T>(
        &self,
        cluster: Option<&str>,
        progress: &dyn blockback_core::progress::Progress,
        op: impl FnOnce(&Ops<'_>) -> Result<T, OpsError>,
    ) -> Result<T, JobFailure> {
        let settings = self.settings(cluster).map_err(|m| failure("config", m))?;
        let ops = Ops {
            settings: &settings,
            catalog: self.catalog.as_ref(),
            connections: &self.connections,
            progress,
            buffers: Some(&self.buffers),
        };
        op(&ops).map_err(|e| {
            let kind = match progress.is_cancelled() {
                true => "cancelled",
                false => kind_of(&e),
            };
            failure(kind, e.to_string())
        })
    }

    /// Repairs what a previous life of the service left (the engine's
    /// crash recovery): interrupted backups become error, their partial
    /// data removed.
    pub fn recover(&self) -> Result<Vec<String>, String> {
        let progress = blockback_core::progress::NoProgress;
        let found = self
            .with_ops(None, &progress, |ops| ops.recover())
            .map_err(|f| f.message)?;
        Ok(found
            .into_iter()
            .map(|r| format!("backup {} was {}: {}", r.backup, r.was, r.note))
            .collect())
    }

    fn volume(&self, job: &JobRecord) -> Result<VolumeRecord, JobFailure> {
        self.catalog
            .volume(job.volume_id)
            .map_err(|e| failure("not_found", e.to_string()))
    }

    fn backup(
        &self,
        job: &JobRecord,
        request: &JobRequest,
        progress: &JobProgress,
    ) -> Result<JobOutcome, JobFailure> {
        let JobRequest::Backup {
            backup_id,
            mode,
            labels,
            metadata,
            metadata_object,
            scheduled,
        } = request
        else {
            unreachable!("called for backups")
        };
        let volume = self.volume(job)?;
        let metadata_object = metadata_object
            .as_deref()
            .map(|text| BackupMetadata::from_json(text.as_bytes()))
            .transpose()
            .map_err(|e| failure("invalid", format!("metadata_object: {e}")))?;
        let options = BackupOptions {
            id: Some(*backup_id),
            source: volume.source.clone(),
            name: Some(volume.name.clone()),
            description: None,
            metadata: metadata.clone(),
            mode: match mode {
                BackupMode::Auto => ChainMode::Auto,
                BackupMode::Full => ChainMode::Full,
                BackupMode::Incremental => ChainMode::Incremental,
            },
            keep_source_snapshots: self.config.jobs.keep_source_snapshots,
            metadata_object,
            ..BackupOptions::default()
        };
        let result = self.with_ops(volume.cluster.as_deref(), progress, |ops| {
            ops.backup(&options)
        });
        self.label_backup(*backup_id, &volume, labels, result.as_ref().err());
        let record = result?;
        let mut seen = volume;
        seen.size = Some(record.size);
        let _ = self.catalog.update_volume(&seen);
        if scheduled.as_ref().is_some_and(|s| s.prune) {
            self.apply_retention(&seen, progress);
        }
        Ok(JobOutcome {
            bytes_read: record.bytes_read,
            bytes_written: record.bytes_written,
        })
    }

    /// Prunes `volume`'s backups in the store by its retention policy
    /// (the same plan and deletes as `blockback prune --volume`). A failed
    /// prune does not fail the backup that succeeded: it is logged, and
    /// the next run (or `blockback prune`) tries again. A local store's
    /// space is reclaimed by `blockback gc`, not here: gc would hold the
    /// store against the other jobs' writes.
    fn apply_retention(&self, volume: &VolumeRecord, progress: &JobProgress) {
        let label = self.store.label();
        let pruned = self.with_ops(volume.cluster.as_deref(), progress, |ops| {
            let store = ops.store(false)?;
            let engine = ops.engine();
            let plan = engine.plan_prune(&label, Some(volume.id))?;
            Ok(engine.prune(&plan, store.pool(), &|b| ops.open_source_head(b))?)
        });
        match pruned {
            Ok(outcome) => {
                for (id, e) in &outcome.failed {
                    tracing::warn!(backup_id = %id, "retention: removing the backup failed: {e}");
                }
                if !outcome.removed.is_empty() {
                    tracing::info!(removed = outcome.removed.len(), "retention applied");
                }
            }
            Err(f) => tracing::warn!("retention not applied: {}", f.message),
        }
    }

    /// Puts the job's labels (name, description, ...) on the backup's
    /// record; a backup that failed before the engine recorded it gets an
    /// error record, so it is listed (and deletable) like any failed one.
    fn label_backup(
        &self,
        id: uuid::Uuid,
        volume: &VolumeRecord,
        labels: &std::collections::BTreeMap<String, String>,
        failed: Option<&JobFailure>,
    ) {
        let mut record = match (self.catalog.backup(id), failed) {
            (Ok(r), _) => r,
            (Err(_), Some(f)) => error_record(id, volume, &self.store.label(), &f.message),
            (Err(_), None) => return,
        };
        let is_new = self.catalog.backup(id).is_err();
        record.metadata.extend(labels.clone());
        let written = match is_new {
            true => self.catalog.insert_backup(&record),
            false => self.catalog.update_backup(&record),
        };
        if let Err(e) = written {
            tracing::error!("recording the labels of backup {id}: {e}");
        }
    }

    fn restore(
        &self,
        request: &JobRequest,
        progress: &JobProgress,
    ) -> Result<JobOutcome, JobFailure> {
        let JobRequest::Restore { backup_id, target } = request else {
            unreachable!("called for restores")
        };
        let backup = self
            .catalog
            .backup(*backup_id)
            .map_err(|e| failure("not_found", e.to_string()))?;
        let (address, kind, cluster) = self.restore_address(&backup, target)?;
        let options = RestoreOptions {
            backup: backup_id.to_string(),
            target: address.clone(),
            kind,
        };
        let restored = self.with_ops(cluster.as_deref(), progress, |ops| ops.restore(&options))?;
        if let RestoreTarget::NewVolume { volume_id, name } = target {
            let volume = VolumeRecord {
                cluster,
                registered: true,
                size: Some(backup.size),
                ..VolumeRecord::new(*volume_id, address, name.clone(), unix_now())
            };
            self.catalog.insert_volume(&volume).map_err(|e| {
                failure(
                    "catalog",
                    format!("restored, but registering the new volume failed: {e}"),
                )
            })?;
        }
        Ok(JobOutcome {
            bytes_read: restored.report.bytes_read,
            bytes_written: restored.report.bytes_written,
        })
    }

    /// The target's address, whether it must be new, and its cluster.
    fn restore_address(
        &self,
        backup: &BackupRecord,
        target: &RestoreTarget,
    ) -> Result<(String, TargetKind, Option<String>), JobFailure> {
        match target {
            RestoreTarget::Volume { volume_id } => {
                let v = self
                    .catalog
                    .volume(*volume_id)
                    .map_err(|e| failure("not_found", e.to_string()))?;
                Ok((v.source, TargetKind::Existing, v.cluster))
            }
            RestoreTarget::NewVolume { volume_id, .. } => {
                let source = self
                    .new_volume_source(backup, *volume_id)
                    .map_err(|m| failure("invalid", m))?;
                let cluster = self.source_cluster(backup);
                Ok((source, TargetKind::New, cluster))
            }
            RestoreTarget::File { path } => Ok((path.clone(), TargetKind::NewOrExisting, None)),
        }
    }

    /// The cluster of the volume a backup was taken from.
    pub(crate) fn source_cluster(&self, backup: &BackupRecord) -> Option<String> {
        self.catalog
            .volume(backup.volume_id)
            .ok()
            .and_then(|v| v.cluster)
    }

    fn delete(
        &self,
        request: &JobRequest,
        progress: &JobProgress,
    ) -> Result<JobOutcome, JobFailure> {
        let JobRequest::Delete { backup_id, .. } = request else {
            unreachable!("called for deletes")
        };
        let backup = self
            .catalog
            .backup(*backup_id)
            .map_err(|e| failure("not_found", e.to_string()))?;
        let options = DeleteOptions {
            backup: backup_id.to_string(),
            retry_delay: Duration::from_secs_f64(self.config.jobs.delete_retry_delay_secs),
        };
        let cluster = self.source_cluster(&backup);
        self.with_ops(cluster.as_deref(), progress, |ops| ops.delete(&options))?;
        Ok(JobOutcome::default())
    }
}

/// The cluster locks' lease: half the job lease, so that when a worker
/// dies its volume locks have run out by the time its job's lease has
/// (a lock expires at most half a lease after its holder's death, a job
/// at least a lease minus one heartbeat, and the config keeps heartbeats
/// at most a third of the lease) and the worker that notices can clean
/// up at once.
fn lock_lease(job_lease_secs: u64) -> Duration {
    Duration::from_secs_f64(job_lease_secs as f64 / 2.0)
}

impl JobRunner for OpsRunner {
    fn recover(&self) -> Result<Vec<String>, String> {
        OpsRunner::recover(self)
    }

    fn run(&self, job: &JobRecord, progress: &JobProgress) -> Result<JobOutcome, JobFailure> {
        let request = JobRequest::from_json(&job.request).map_err(|m| failure("invalid", m))?;
        match request {
            JobRequest::Backup { .. } => self.backup(job, &request, progress),
            JobRequest::Restore { .. } => self.restore(&request, progress),
            JobRequest::Delete { .. } => self.delete(&request, progress),
        }
    }
}

impl Backend for OpsRunner {
    fn exports(&self) -> Option<&dyn crate::exports::Exporter> {
        self.exports
            .as_ref()
            .map(|_| self as &dyn crate::exports::Exporter)
    }

    fn probe_volume(&self, source: &str, cluster: Option<&str>) -> Result<Probed, String> {
        let settings = self.settings(cluster)?;
        let volume = Volume::parse(source, None).map_err(|e| e.to_string())?;
        if matches!(volume, Volume::Local { .. }) {
            return Err(format!(
                "source {source}: local-store volumes cannot be registered; give rbd:POOL/IMAGE, a file or a device"
            ));
        }
        let label = volume.label().map_err(|e| e.to_string())?;
        let opened = volume
            .open_source(
                &settings.volume_ceph,
                &self.connections,
                &settings.volume_keys(),
            )
            .map_err(|e| format!("source {source}: {e}"))?;
        let size = opened
            .image
            .size()
            .map_err(|e| format!("source {source}: {e}"))?;
        Ok(Probed { label, size })
    }

    fn store_usage(&self) -> Result<Option<u64>, String> {
        let settings = self.settings(None)?;
        let store = blockback_ops::store::open_store(
            &settings.store,
            &settings.store_ceph,
            &self.connections,
            &settings.keys,
            false,
        )
        .map_err(|e| e.to_string())?;
        store.pool().usage().map_err(|e| e.to_string())
    }

    fn store_label(&self) -> String {
        self.store.label()
    }

    fn check_clusters(&self) -> Vec<(String, Result<(), String>)> {
        let mut names: Vec<String> = self.config.clusters.keys().cloned().collect();
        if matches!(self.store, StoreLocation::Rbd(_))
            && !names.iter().any(|n| n == crate::config::DEFAULT_CLUSTER)
        {
            names.insert(0, crate::config::DEFAULT_CLUSTER.into());
        }
        names
            .into_iter()
            .map(|name| {
                let result = self
                    .config
                    .cluster(Some(&name))
                    .ok_or_else(|| "not configured".to_string())
                    .and_then(|c| {
                        self.connections
                            .get(&c)
                            .map(drop)
                            .map_err(|e| e.to_string())
                    });
                (name, result)
            })
            .collect()
    }

    fn check_backup_data(&self, backup: &BackupRecord) -> Result<(), String> {
        let progress = blockback_core::progress::NoProgress;
        self.with_ops(self.source_cluster(backup).as_deref(), &progress, |ops| {
            let store = ops.store_of(backup)?;
            let base = store
                .pool()
                .open_read_only(&backup.image, backup.restore_point())?;
            drop(base);
            Ok(())
        })
        .map_err(|f| format!("its data is not in {}: {}", backup.store, f.message))
    }

    fn new_volume_source(
        &self,
        backup: &BackupRecord,
        volume_id: uuid::Uuid,
    ) -> Result<String, String> {
        match Volume::from_label(&backup.source).map_err(|e| e.to_string())? {
            Volume::Rbd(spec) => Ok(format!("rbd:{}/volume-{volume_id}", spec.pool)),
            _ => match self.config.restore_dirs.first() {
                Some(dir) => Ok(dir.join(format!("volume-{volume_id}.img")).display().to_string()),
                None => Err(format!(
                    "a new volume for backup {} of {} would be a file; set restore_dirs in the configuration",
                    backup.id, backup.source
                )),
            },
        }
    }
}

/// The record of a backup that failed before the engine recorded it.
fn error_record(id: uuid::Uuid, volume: &VolumeRecord, store: &str, error: &str) -> BackupRecord {
    let now = unix_now();
    BackupRecord {
        id,
        volume_id: volume.id,
        source: volume.source.clone(),
        size: volume.size.unwrap_or(0),
        parent: None,
        kind: blockback_core::catalog::BackupKind::Full,
        status: BackupStatus::Error,
        store: store.to_string(),
        // The base the backup would have started: absent, so a delete
        // finds nothing in the store and drops the record.
        image: blockback_core::naming::chain_base_name(&volume.id.to_string(), &id.to_string()),
        snapshot: String::new(),
        bytes_read: 0,
        bytes_written: 0,
        bytes_stored: 0,
        checksum: None,
        created_at: now,
        updated_at: now,
        completed_at: None,
        error: Some(error.to_string()),
        pid: None,
        created_base: false,
        metadata: Default::default(),
    }
}

fn failure(kind: &'static str, message: impl Into<String>) -> JobFailure {
    JobFailure {
        kind,
        message: message.into(),
    }
}

/// A short kind of an operation's error, for the errors metric.
fn kind_of(e: &OpsError) -> &'static str {
    use blockback_core::engine::EngineError;
    match e {
        OpsError::Engine(EngineError::VolumeBusy { .. }) => "volume_busy",
        OpsError::Engine(EngineError::ChainBroken(_)) => "chain_broken",
        OpsError::Engine(EngineError::ChecksumMismatch { .. }) => "checksum",
        _ if e.is_not_found() => "not_found",
        _ => "operation",
    }
}
