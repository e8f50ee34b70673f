//! Resolved configuration: where the store, catalog and locks live, and how
//! to reach Ceph on each side.

use crate::args::{CephArgs, Cli, RbdLayoutArgs};
use anyhow::{bail, Context, Result};
use blockback_rbd::{parse_features, ClusterConfig, CreateOptions, RbdSpec};
use std::path::{Path, PathBuf};

/// Where backups are stored.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreLocation {
    Local(PathBuf),
    Rbd(String),
}

impl StoreLocation {
    /// Parses a store as recorded in the catalog or given with --store.
    pub fn parse(text: &str) -> Result<Self> {
        if RbdSpec::is_rbd(text) {
            let spec = RbdSpec::parse(text)?;
            if spec.image.is_some() {
                bail!("store {text}: give a pool (rbd:POOL), not an image");
            }
            return Ok(StoreLocation::Rbd(spec.pool));
        }
        Ok(StoreLocation::Local(absolute(Path::new(text))?))
    }

    /// The store as recorded in the catalog.
    pub fn label(&self) -> String {
        match self {
            StoreLocation::Local(p) => p.display().to_string(),
            StoreLocation::Rbd(pool) => format!("rbd:{pool}"),
        }
    }
}

/// Paths and settings every command works with, resolved from flags,
/// environment and defaults.
#[derive(Debug, Clone)]
pub struct Config {
    pub store: StoreLocation,
    pub catalog: PathBuf,
    /// The local store of `local:IMAGE` volumes, if any.
    pub volume_store: Option<PathBuf>,
    pub json: bool,
    pub quiet: bool,
    pub store_ceph: ClusterConfig,
    pub volume_ceph: ClusterConfig,
    /// Layout of the base images an RBD store creates.
    pub store_layout: CreateOptions,
}

impl Config {
    pub fn from_cli(cli: &Cli) -> Result<Self> {
        let store = match &cli.store {
            Some(s) => StoreLocation::parse(s)?,
            None => StoreLocation::Local(data_dir()?.join("store")),
        };
        let catalog = match &cli.catalog {
            Some(p) => absolute(p)?,
            None => data_dir()?.join("catalog.sqlite"),
        };
        let (store_ceph, volume_ceph) = ceph_configs(&cli.ceph)?;
        let store_layout = store_layout(&cli.rbd_layout, &store)?;
        let volume_store = match (&cli.volume_store, &store) {
            (Some(p), _) => Some(absolute(p)?),
            (None, StoreLocation::Local(p)) => Some(p.clone()),
            (None, StoreLocation::Rbd(_)) => None,
        };
        Ok(Config {
            store,
            catalog,
            volume_store,
            json: cli.json,
            quiet: cli.quiet,
            store_ceph,
            volume_ceph,
            store_layout,
        })
    }

    /// Block digests of backups live beside the catalog that records them.
    pub fn digest_dir(&self) -> PathBuf {
        self.catalog.with_extension("digests")
    }

    /// Volume lock files live beside the catalog they protect.
    pub fn lock_dir(&self) -> PathBuf {
        self.catalog.with_extension("locks")
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

/// `$XDG_DATA_HOME/blockback`, or `~/.local/share/blockback`.
fn data_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("blockback"));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".local/share/blockback")),
        None => bail!("neither XDG_DATA_HOME nor HOME is set; pass --store and --catalog"),
    }
}

/// Makes `path` absolute without requiring it to exist.
pub fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot resolve path {}", path.display()))
}
