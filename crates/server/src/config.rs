//! The service configuration: defaults, then the TOML file, then
//! environment variables (`BLOCKBACK_<KEY>`, nested keys joined by `__`:
//! `BLOCKBACK_JOBS__MAX_RUNNING=4`, `BLOCKBACK_CINDER__NOAUTH=true`).

use crate::auth::TokenEntry;
use crate::schedule::{Calendar, Schedule};
use blockback_rbd::ClusterConfig;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The cluster name volumes without one, and the store, use.
pub const DEFAULT_CLUSTER: &str = "default";

/// Top-level keys; only these are read from the environment, so that
/// other `BLOCKBACK_*` variables (the CLI's, the tests') are not taken for
/// settings.
const KEYS: &[&str] = &[
    "listen",
    "store",
    "catalog",
    "key_file",
    "passphrase_file",
    "state_dir",
    "worker_id",
    "restore_dirs",
    "public_url",
    "max_body_bytes",
    "shutdown_timeout_secs",
    "jobs",
    "logging",
    "tls",
    "auth",
    "cinder",
    "clusters",
    "schedules",
    "nbd",
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Load(String),
    #[error("configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// Address of the HTTP listener (both APIs, /metrics).
    pub listen: SocketAddr,
    /// The backup store: a directory or `rbd:POOL` (on the default cluster).
    pub store: String,
    /// The catalog: a SQLite file for one host, or
    /// `postgres://USER:PASSWORD@HOST:PORT/DB` shared by several workers
    /// (then the store must be `rbd:POOL`).
    pub catalog: String,
    /// The key file of an encrypted local store (`blockback store init
    /// --encryption`); read when the store is opened.
    pub key_file: Option<PathBuf>,
    /// A file holding the passphrase of an encrypted local store (instead
    /// of, or besides, key_file); read at start.
    pub passphrase_file: Option<PathBuf>,
    /// This host's own files with a shared catalog: its lock files and
    /// block digests (with SQLite they live beside the catalog file).
    pub state_dir: PathBuf,
    /// This worker's name in job claims [default: the host name].
    pub worker_id: Option<String>,
    /// Directories under which the API may restore into files.
    pub restore_dirs: Vec<PathBuf>,
    /// Base URL clients reach the service at (links in Cinder responses)
    /// [default: from each request's Host header].
    pub public_url: Option<String>,
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// How long running jobs may go on after SIGTERM before they are cancelled.
    pub shutdown_timeout_secs: u64,
    pub jobs: JobsConfig,
    pub logging: LoggingConfig,
    pub tls: Option<TlsConfig>,
    pub auth: AuthConfig,
    pub cinder: CinderConfig,
    /// Ceph clusters by name; `default` holds an RBD store and the volumes
    /// registered without a cluster.
    pub clusters: BTreeMap<String, ClusterSettings>,
    /// Backup schedules by name (docs/design.md, "Schedules").
    pub schedules: BTreeMap<String, ScheduleConfig>,
    pub nbd: NbdConfig,
}

/// One schedule: which volumes, when, and the chain and retention rules.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Registered volumes by name or id; `["*"]`: every registered volume.
    pub volumes: Vec<String>,
    /// A cron expression (`"0 2 * * *"`; 6 fields with seconds) or one of
    /// systemd's shorthands: hourly, daily, weekly, monthly, yearly.
    pub calendar: String,
    /// IANA time zone of the calendar [default: UTC].
    #[serde(default)]
    pub time_zone: Option<String>,
    /// Each run starts up to this many seconds after its slot (spread per
    /// volume, stable across restarts).
    #[serde(default)]
    pub random_delay_secs: u64,
    /// Start a new chain (a full backup) after this many incrementals [0: never].
    #[serde(default)]
    pub full_every: u32,
    /// Start a new chain when the chain's full backup is this many days old [0: never].
    #[serde(default)]
    pub full_after_days: u32,
    /// Apply the volume's retention policy after each successful run.
    #[serde(default = "yes")]
    pub prune: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NbdConfig {
    /// Where exports of backups are served (`unix:PATH` or
    /// `tcp:127.0.0.1:PORT`); without it the exports API is off.
    pub listen: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobsConfig {
    /// Jobs running at once (Cinder's backup_max_operations is 15).
    pub max_running: usize,
    /// How long a claim holds without a heartbeat.
    pub lease_secs: u64,
    /// How often running jobs report progress and renew their lease.
    pub heartbeat_secs: f64,
    /// Backup snapshots kept on a source with snapshots, per chain.
    pub keep_source_snapshots: usize,
    /// Seconds between retries while a backup image is busy on delete.
    pub delete_retry_delay_secs: f64,
    /// Requests kept in flight on each RBD image a job opens (the CLI's
    /// --rbd-queue-depth), 1 to 256.
    pub rbd_queue_depth: usize,
    /// The nice value of job threads and of librados' threads (0 to 19):
    /// jobs yield the CPU to the API's requests.
    pub nice: i32,
    /// Memory for transfer buffers, shared by all running jobs (MiB, at
    /// least 4: one 4 MiB segment in flight). Bounds the service's RSS.
    pub transfer_memory_mib: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    pub format: LogFormat,
    /// A tracing filter (`info`, `blockback_server=debug,info`).
    pub filter: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// File of token entries, one `NAME ROLE SHA256HEX` per line.
    pub tokens_file: Option<PathBuf>,
    /// Token entries in the configuration itself.
    pub tokens: Vec<TokenEntry>,
    /// Serve /metrics without a token.
    pub metrics_public: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CinderConfig {
    /// Serve the Cinder v3 backup API under / and /v3.
    pub enabled: bool,
    /// Trust the client's `X-Auth-Token: user:project` as Cinder's own
    /// noauth does; allowed only when `listen` is a loopback address.
    pub noauth: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSettings {
    /// ceph.conf [default: $CEPH_CONF or /etc/ceph/ceph.conf].
    pub conf: Option<PathBuf>,
    /// Client id without `client.` [default: admin].
    pub id: Option<String>,
    pub keyring: Option<PathBuf>,
}

impl ClusterSettings {
    pub fn to_cluster_config(&self) -> ClusterConfig {
        let default = ClusterConfig::default();
        ClusterConfig {
            conf: self.conf.clone(),
            id: self.id.clone().unwrap_or(default.id),
            keyring: self.keyring.clone(),
        }
    }
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8776)),
            store: "/var/lib/blockback/store".into(),
            catalog: "/var/lib/blockback/catalog.sqlite".into(),
            key_file: None,
            passphrase_file: None,
            state_dir: "/var/lib/blockback".into(),
            worker_id: None,
            restore_dirs: Vec::new(),
            public_url: None,
            max_body_bytes: 64 * 1024,
            shutdown_timeout_secs: 60,
            jobs: JobsConfig {
                max_running: 15,
                lease_secs: 60,
                heartbeat_secs: 1.0,
                keep_source_snapshots: 1,
                delete_retry_delay_secs: 5.0,
                rbd_queue_depth: blockback_rbd::DEFAULT_QUEUE_DEPTH,
                nice: 10,
                transfer_memory_mib: 128,
            },
            logging: LoggingConfig {
                format: LogFormat::Text,
                filter: "info".into(),
            },
            tls: None,
            auth: AuthConfig::default(),
            cinder: CinderConfig {
                enabled: true,
                noauth: false,
            },
            clusters: BTreeMap::new(),
            schedules: BTreeMap::new(),
            nbd: NbdConfig::default(),
        }
    }
}

impl ServiceConfig {
    /// Defaults, then `file` (if given), then the environment; validated.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(ServiceConfig::default()));
        if let Some(path) = file {
            if !path.is_file() {
                return Err(ConfigError::Load(format!(
                    "{} does not exist; give an existing TOML file (contrib/blockback.toml is a sample)",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        let env = Env::prefixed("BLOCKBACK_").split("__").filter(|key| {
            // Keys keep the variable's case: compare the first part lowercased.
            let first = key.as_str().split('.').next().unwrap_or("");
            KEYS.contains(&first.to_ascii_lowercase().as_str())
        });
        let config: ServiceConfig = figment
            .merge(env)
            .extract()
            .map_err(|e| ConfigError::Load(one_line(&e)))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the types cannot: ranges, and that noauth is loopback only.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.jobs.max_running == 0 || self.jobs.max_running > 1000 {
            return bad(format!(
                "jobs.max_running = {}: give 1 to 1000",
                self.jobs.max_running
            ));
        }
        if !(0.05..=60.0).contains(&self.jobs.heartbeat_secs) {
            return bad("jobs.heartbeat_secs: give 0.05 to 60 seconds".into());
        }
        if (self.jobs.lease_secs as f64) < 3.0 * self.jobs.heartbeat_secs {
            return bad(
                "jobs.lease_secs must be at least 3 heartbeats (jobs.heartbeat_secs)".into(),
            );
        }
        if !(1..=256).contains(&self.jobs.rbd_queue_depth) {
            return bad(format!(
                "jobs.rbd_queue_depth = {}: give 1 to 256",
                self.jobs.rbd_queue_depth
            ));
        }
        if !(0..=19).contains(&self.jobs.nice) {
            return bad(format!("jobs.nice = {}: give 0 to 19", self.jobs.nice));
        }
        if !(4..=65536).contains(&self.jobs.transfer_memory_mib) {
            return bad(format!(
                "jobs.transfer_memory_mib = {}: give 4 to 65536",
                self.jobs.transfer_memory_mib
            ));
        }
        if self.jobs.keep_source_snapshots == 0 {
            return bad("jobs.keep_source_snapshots: give at least 1".into());
        }
        if self.cinder.noauth && !self.listen.ip().is_loopback() {
            return bad(format!(
                "cinder.noauth trusts every client; it is allowed only on a loopback listen address, not {}",
                self.listen
            ));
        }
        if self.catalog.trim().is_empty() {
            return bad("catalog is empty: give a SQLite file or postgres://HOST/DB".into());
        }
        if self.store.trim().is_empty() {
            return bad("store is empty: give a directory or rbd:POOL".into());
        }
        self.schedules().map_err(ConfigError::Invalid)?;
        if let Some(listen) = &self.nbd.listen {
            if let Err(e) = listen.parse::<blockback_nbd::Listen>() {
                return bad(format!("nbd.listen: {e}"));
            }
        }
        if let Some(url) = &self.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return bad(format!(
                    "public_url {url:?}: give an http:// or https:// URL"
                ));
            }
        }
        Ok(())
    }

    /// The named cluster's connection settings; `None` when not configured
    /// (the default cluster always is: Ceph's own defaults).
    pub fn cluster(&self, name: Option<&str>) -> Option<ClusterConfig> {
        let name = name.unwrap_or(DEFAULT_CLUSTER);
        match self.clusters.get(name) {
            Some(c) => Some(c.to_cluster_config()),
            None if name == DEFAULT_CLUSTER => Some(ClusterConfig::default()),
            None => None,
        }
    }

    /// The schedules, parsed.
    pub fn schedules(&self) -> Result<Vec<Schedule>, String> {
        self.schedules
            .iter()
            .map(|(name, s)| {
                if s.volumes.is_empty() {
                    return Err(format!(
                        "schedules.{name}.volumes is empty: give volume names or ids, or [\"*\"]"
                    ));
                }
                let calendar = Calendar::parse(&s.calendar, s.time_zone.as_deref())
                    .map_err(|e| format!("schedules.{name}: {e}"))?;
                Ok(Schedule {
                    name: name.clone(),
                    volumes: s.volumes.clone(),
                    calendar,
                    random_delay: s.random_delay_secs as f64,
                    full_every: s.full_every,
                    full_after: f64::from(s.full_after_days) * 86400.0,
                    prune: s.prune,
                })
            })
            .collect()
    }

    /// This worker's name in job claims.
    pub fn worker(&self) -> String {
        self.worker_id.clone().unwrap_or_else(host_name)
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "blockback".into())
}

fn one_line(e: &figment::Error) -> String {
    e.clone()
        .into_iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("blockback.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn file_then_environment() {
        figment::Jail::expect_with(|jail| {
            let path = write(
                jail.directory(),
                "store = \"rbd:backups\"\n[jobs]\nmax_running = 4\n[clusters.prod]\nid = \"backup\"\n",
            );
            jail.set_env("BLOCKBACK_JOBS__MAX_RUNNING", "6");
            jail.set_env("BLOCKBACK_TEST_CEPH_CONF", "/not/a/setting");
            let c = ServiceConfig::load(Some(&path)).unwrap();
            assert_eq!(c.store, "rbd:backups");
            assert_eq!(c.jobs.max_running, 6);
            assert_eq!(c.jobs.lease_secs, 60, "defaults fill the rest");
            assert_eq!(c.cluster(Some("prod")).unwrap().id, "backup");
            assert!(c.cluster(Some("other")).is_none());
            Ok(())
        });
    }

    #[test]
    fn typos_and_bad_values_are_refused() {
        figment::Jail::expect_with(|jail| {
            let path = write(jail.directory(), "max_runing = 4\n");
            let err = ServiceConfig::load(Some(&path)).unwrap_err().to_string();
            assert!(err.contains("max_runing"), "{err}");
            let path = write(jail.directory(), "[jobs]\nmax_running = 0\n");
            let err = ServiceConfig::load(Some(&path)).unwrap_err().to_string();
            assert!(err.contains("jobs.max_running"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn job_resources_come_from_the_environment_and_are_checked() {
        figment::Jail::expect_with(|jail| {
            let c = ServiceConfig::load(None).unwrap();
            assert_eq!(
                (
                    c.jobs.rbd_queue_depth,
                    c.jobs.nice,
                    c.jobs.transfer_memory_mib
                ),
                (blockback_rbd::DEFAULT_QUEUE_DEPTH, 10, 128)
            );
            jail.set_env("BLOCKBACK_JOBS__RBD_QUEUE_DEPTH", "32");
            jail.set_env("BLOCKBACK_JOBS__NICE", "5");
            jail.set_env("BLOCKBACK_JOBS__TRANSFER_MEMORY_MIB", "64");
            let c = ServiceConfig::load(None).unwrap();
            assert_eq!(
                (
                    c.jobs.rbd_queue_depth,
                    c.jobs.nice,
                    c.jobs.transfer_memory_mib
                ),
                (32, 5, 64)
            );
            for (var, value, key) in [
                (
                    "BLOCKBACK_JOBS__RBD_QUEUE_DEPTH",
                    "0",
                    "jobs.rbd_queue_depth",
                ),
                ("BLOCKBACK_JOBS__NICE", "20", "jobs.nice"),
                (
                    "BLOCKBACK_JOBS__TRANSFER_MEMORY_MIB",
                    "1",
                    "jobs.transfer_memory_mib",
                ),
            ] {
                jail.set_env(var, value);
                let err = ServiceConfig::load(None).unwrap_err().to_string();
                assert!(err.contains(key), "{err}");
                jail.set_env("BLOCKBACK_JOBS__RBD_QUEUE_DEPTH", "32");
                jail.set_env("BLOCKBACK_JOBS__NICE", "5");
                jail.set_env("BLOCKBACK_JOBS__TRANSFER_MEMORY_MIB", "64");
            }
            Ok(())
        });
    }

    #[test]
    fn the_sample_configuration_loads() {
        figment::Jail::expect_with(|_| {
            let sample =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contrib/service/blockback.toml");
            let c = ServiceConfig::load(Some(&sample)).unwrap();
            assert_eq!((c.store.as_str(), c.jobs.max_running), ("rbd:backups", 15));
            Ok(())
        });
    }

    #[test]
    fn schedules_load_and_bad_ones_are_refused() {
        figment::Jail::expect_with(|jail| {
            let path = write(
                jail.directory(),
                "[schedules.nightly]\nvolumes = [\"*\"]\ncalendar = \"0 2 * * *\"\n\
                 random_delay_secs = 600\nfull_every = 6\n",
            );
            let c = ServiceConfig::load(Some(&path)).unwrap();
            let s = &c.schedules().unwrap()[0];
            assert_eq!(
                (s.name.as_str(), s.full_every, s.prune),
                ("nightly", 6, true)
            );
            let path = write(
                jail.directory(),
                "[schedules.x]\nvolumes = [\"db\"]\ncalendar = \"at noon\"\n",
            );
            let err = ServiceConfig::load(Some(&path)).unwrap_err().to_string();
            assert!(
                err.contains("schedules.x") && err.contains("at noon"),
                "{err}"
            );
            let path = write(
                jail.directory(),
                "[schedules.x]\nvolumes = []\ncalendar = \"daily\"\n",
            );
            let err = ServiceConfig::load(Some(&path)).unwrap_err().to_string();
            assert!(err.contains("schedules.x.volumes"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn noauth_only_on_loopback() {
        let mut c = ServiceConfig::default();
        c.cinder.noauth = true;
        assert!(c.validate().is_ok());
        c.listen = "0.0.0.0:8776".parse().unwrap();
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("loopback"), "{err}");
    }
}
