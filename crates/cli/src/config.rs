//! Resolved configuration: where the store, catalog and locks live, and how
//! to reach Ceph on each side.

use crate::args::{CephArgs, Cli, RbdLayoutArgs};
use anyhow::{bail, Context, Result};
use blockback_ops::{CatalogLocation, Settings, StoreLocation, DEFAULT_LOCK_LEASE};
use blockback_rbd::{parse_features, ClusterConfig, CreateOptions};
use std::path::{Path, PathBuf};

/// The settings every command works with, resolved from flags,
/// environment and defaults, and how to print.
#[derive(Debug, Clone)]
pub struct Config {
    pub settings: Settings,
    pub json: bool,
    pub quiet: bool,
    /// Requests in flight per RBD image.
    pub rbd_queue_depth: usize,
}

impl Config {
    /// Resolves the flags. Paths the user gives must have an existing
    /// parent directory (a typo creates nothing); the default data
    /// directory is created.
    pub fn from_cli(cli: &Cli) -> Result<Self> {
        let store = match &cli.store {
            Some(s) => StoreLocation::parse(s)?,
            None => StoreLocation::Local(default_data_dir()?.join("store")),
        };
        let catalog = match &cli.catalog {
            Some(text) => CatalogLocation::parse(text, &shared_catalog_dir(text)?)?,
            None => CatalogLocation::Sqlite(default_data_dir()?.join("catalog.sqlite")),
        };
        let (store_ceph, volume_ceph) = ceph_configs(&cli.ceph)?;
        let store_layout = store_layout(&cli.rbd_layout, &store)?;
        let volume_store = cli.volume_store.as_deref().map(absolute).transpose()?;
        let settings = Settings {
            store,
            catalog,
            volume_store,
            store_ceph,
            volume_ceph,
            store_layout,
            lock_lease: lock_lease()?,
            keys: crate::secrets::store_keys(&cli.keys)?,
        };
        settings.check()?;
        Ok(Config {
            settings,
            json: cli.json,
            quiet: cli.quiet,
            rbd_queue_depth: cli.ceph.rbd_queue_depth,
        })
    }
}

fn ceph_configs(args: &CephArgs) -> Result<(ClusterConfig, ClusterConfig)> {
    if args.ceph_id.is_empty() || args.volume_ceph_id.as_deref() == Some("") {
        bail!("--ceph-id is empty: give a Ceph client id such as `admin` or `cinder-backup`");
    }
    let store = ClusterConfig {
        conf: args.ceph_conf.clone(),
        id: args.ceph_id.clone(),
        keyring: args.keyring.clone(),
    };
    let volume = ClusterConfig {
        conf: args.volume_ceph_conf.clone().or_else(|| store.conf.clone()),
        id: args
            .volume_ceph_id
            .clone()
            .unwrap_or_else(|| store.id.clone()),
        keyring: args
            .volume_keyring
            .clone()
            .or_else(|| store.keyring.clone()),
    };
    Ok((store, volume))
}

/// The RBD store's image layout, checked as librbd would check it, so a bad
/// value fails before anything is opened or created.
fn store_layout(args: &RbdLayoutArgs, store: &StoreLocation) -> Result<CreateOptions> {
    if args.is_empty() {
        return Ok(CreateOptions::default());
    }
    if let StoreLocation::Local(path) = store {
        bail!(
            "--rbd-features, --rbd-order and --rbd-stripe-* apply to an RBD store (rbd:POOL); {} is a local store",
            path.display()
        );
    }
    let options = CreateOptions {
        features: args
            .rbd_features
            .as_deref()
            .map(parse_features)
            .transpose()?,
        order: args.rbd_order,
        stripe_unit: args.rbd_stripe_unit,
        stripe_count: args.rbd_stripe_count,
    };
    options.validate()?;
    Ok(options)
}

/// Where this host keeps a shared catalog's local files (block digests,
/// its lock files): the data directory, created only when one is used.
fn shared_catalog_dir(catalog: &str) -> Result<PathBuf> {
    match blockback_catalog::is_postgres_url(catalog) {
        true => default_data_dir(),
        false => Ok(PathBuf::new()),
    }
}

/// The lease of cluster-wide locks: `BLOCKBACK_LOCK_LEASE_SECS`, else 30 s.
fn lock_lease() -> Result<std::time::Duration> {
    match std::env::var("BLOCKBACK_LOCK_LEASE_SECS") {
        Err(_) => Ok(DEFAULT_LOCK_LEASE),
        Ok(text) => match text.parse::<u64>() {
            Ok(secs) if (2..=3600).contains(&secs) => Ok(std::time::Duration::from_secs(secs)),
            _ => bail!("BLOCKBACK_LOCK_LEASE_SECS={text}: give whole seconds from 2 to 3600"),
        },
    }
}

/// `$XDG_DATA_HOME/blockback`, or `~/.local/share/blockback`, created.
fn default_data_dir() -> Result<PathBuf> {
    let dir = if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        PathBuf::from(dir).join("blockback")
    } else {
        match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            Some(home) => PathBuf::from(home).join(".local/share/blockback"),
            None => bail!("neither XDG_DATA_HOME nor HOME is set; pass --store and --catalog"),
        }
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    Ok(dir)
}

/// Makes `path` absolute without requiring it to exist.
pub fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot resolve path {}", path.display()))
}
