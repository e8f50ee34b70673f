//! Prometheus metrics at /metrics. Counters and the duration histogram
//! live in memory (since this process started); jobs by state, the last
//! successful backup per volume and store usage are read from the catalog
//! and the store at each scrape, so they survive restarts and are the
//! same whichever worker answers.

use crate::jobs::worker::{JobFailure, JobOutcome};
use blockback_core::catalog::{BackupStatus, Catalog, JobFilter, JobRecord};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    kind: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VolumeLabels {
    volume_id: String,
    volume: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabel {
    store: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

pub struct Metrics {
    registry: Registry,
    jobs: Family<JobLabels, Gauge>,
    jobs_finished: Family<JobLabels, Counter>,
    bytes_read: Family<KindLabel, Counter>,
    bytes_written: Family<KindLabel, Counter>,
    duration: Family<KindLabel, Histogram>,
    errors: Family<KindLabel, Counter>,
    last_backup: Family<VolumeLabels, FloatGauge>,
    store_used: Family<StoreLabel, Gauge>,
}

/// What a scrape reads besides the counters.
#[derive(Debug, Default)]
pub struct Scrape {
    pub store: String,
    pub store_used: Option<u64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut m = Metrics {
            registry: Registry::with_prefix("blockback"),
            jobs: Family::default(),
            jobs_finished: Family::default(),
            bytes_read: Family::default(),
            bytes_written: Family::default(),
            duration: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.5, 2.0, 14))
            }),
            errors: Family::default(),
            last_backup: Family::default(),
            store_used: Family::default(),
        };
        m.register();
        m
    }
}

impl Metrics {
    fn register(&mut self) {
        let r = &mut self.registry;
        r.register(
            "jobs",
            "Jobs in the catalog by kind and state",
            self.jobs.clone(),
        );
        r.register(
            "jobs_finished",
            "Jobs this worker ended, by kind and final state",
            self.jobs_finished.clone(),
        );
        r.register(
            "read_bytes",
            "Bytes read by finished jobs",
            self.bytes_read.clone(),
        );
        r.register(
            "written_bytes",
            "Bytes written by finished jobs",
            self.bytes_written.clone(),
        );
        r.register(
            "job_duration_seconds",
            "Duration of finished jobs",
            self.duration.clone(),
        );
        r.register(
            "errors",
            "Failed jobs by kind of error",
            self.errors.clone(),
        );
        r.register(
            "volume_last_backup_timestamp_seconds",
            "Completion time of each volume's newest available backup (alert on stale backups)",
            self.last_backup.clone(),
        );
        r.register(
            "store_used_bytes",
            "Bytes the backup store occupies",
            self.store_used.clone(),
        );
    }

    /// Counts a finished job.
    pub fn job_finished(
        &self,
        job: &JobRecord,
        result: &Result<JobOutcome, JobFailure>,
        secs: f64,
    ) {
        let kind = KindLabel {
            kind: job.kind.as_str().into(),
        };
        self.duration.get_or_create(&kind).observe(secs);
        let state = match result {
            Ok(outcome) => {
                self.bytes_read
                    .get_or_create(&kind)
                    .inc_by(outcome.bytes_read);
                self.bytes_written
                    .get_or_create(&kind)
                    .inc_by(outcome.bytes_written);
                "succeeded"
            }
            Err(f) => {
                let error = KindLabel {
                    kind: f.kind.into(),
                };
                self.errors.get_or_create(&error).inc();
                "failed"
            }
        };
        let labels = JobLabels {
            kind: kind.kind,
            state: state.into(),
        };
        self.jobs_finished.get_or_create(&labels).inc();
    }

    /// The text exposition, with the catalog-derived gauges refreshed.
    pub fn render(&self, catalog: &dyn Catalog, scrape: &Scrape) -> Result<String, String> {
        self.refresh_jobs(catalog)?;
        self.refresh_last_backups(catalog)?;
        self.store_used.clear();
        if let Some(used) = scrape.store_used {
            let label = StoreLabel {
                store: scrape.store.clone(),
            };
            self.store_used.get_or_create(&label).set(used as i64);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .map_err(|e| e.to_string())?;
        Ok(out)
    }

    fn refresh_jobs(&self, catalog: &dyn Catalog) -> Result<(), String> {
        let jobs = catalog
            .list_jobs(&JobFilter::default())
            .map_err(|e| e.to_string())?;
        let mut counts: BTreeMap<(String, String), i64> = BTreeMap::new();
        for j in jobs {
            *counts
                .entry((j.kind.as_str().into(), j.state.as_str().into()))
                .or_default() += 1;
        }
        self.jobs.clear();
        for ((kind, state), n) in counts {
            self.jobs.get_or_create(&JobLabels { kind, state }).set(n);
        }
        Ok(())
    }

    fn refresh_last_backups(&self, catalog: &dyn Catalog) -> Result<(), String> {
        let volumes = catalog.list_volumes().map_err(|e| e.to_string())?;
        let backups = catalog.list_backups(None).map_err(|e| e.to_string())?;
        self.last_backup.clear();
        for v in volumes {
            let newest = backups
                .iter()
                .filter(|b| b.volume_id == v.id && b.status == BackupStatus::Available)
                .filter_map(|b| b.completed_at)
                .fold(None, |m: Option<f64>, t| Some(m.map_or(t, |m| m.max(t))));
            if let Some(t) = newest {
                let labels = VolumeLabels {
                    volume_id: v.id.to_string(),
                    volume: v.name.clone(),
                };
                self.last_backup.get_or_create(&labels).set(t);
            }
        }
        Ok(())
    }
}
