//! Opening what the user names: stores (directory or `rbd:POOL`) and
//! images (file, block device, `rbd:POOL/IMAGE[@SNAP]`).

use crate::config::{absolute, StoreLocation};
use anyhow::{bail, Context, Result};
use blockback_core::image::file::FileImage;
use blockback_core::image::{Image, Pool};
use blockback_core::store::LocalStore;
use blockback_rbd::{Cluster, ClusterConfig, RbdSpec};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Cluster connections of one command: each cluster is connected once and
/// reused by every step (store and volume share it when they match).
#[derive(Default)]
pub struct Connections {
    open: Mutex<Vec<(ClusterConfig, Arc<Cluster>)>>,
}

impl Connections {
    pub fn get(&self, config: &ClusterConfig) -> Result<Arc<Cluster>> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, cluster)) = open.iter().find(|(c, _)| c == config) {
            return Ok(cluster.clone());
        }
        let cluster = Cluster::connect(config)?;
        open.push((config.clone(), cluster.clone()));
        Ok(cluster)
    }
}

/// An open backup store.
pub enum StoreHandle {
    Local(LocalStore),
    Rbd(blockback_rbd::RbdPool),
}

impl StoreHandle {
    pub fn pool(&self) -> &dyn Pool {
        match self {
            StoreHandle::Local(s) => s,
            StoreHandle::Rbd(p) => p,
        }
    }

    /// The local store, for operations only it has (gc, chunk verify, stats).
    pub fn local(&self, operation: &str) -> Result<&LocalStore> {
        match self {
            StoreHandle::Local(s) => Ok(s),
            StoreHandle::Rbd(p) => bail!(
                "{operation} works on local stores only; {} is an RBD pool (Ceph frees space when backups are deleted)",
                p.describe()
            ),
        }
    }
}

/// Opens a store; a local one is created first when `create` and absent.
pub fn open_store(
    location: &StoreLocation,
    ceph: &ClusterConfig,
    connections: &Connections,
    create: bool,
) -> Result<StoreHandle> {
    match location {
        StoreLocation::Local(path) => open_local(path, create).map(StoreHandle::Local),
        StoreLocation::Rbd(pool) => Ok(StoreHandle::Rbd(connections.get(ceph)?.open_pool(pool)?)),
    }
}

fn open_local(path: &Path, create: bool) -> Result<LocalStore> {
    if create && !path.exists() {
        return LocalStore::init(path, Default::default())
            .with_context(|| format!("cannot create the store at {}", path.display()));
    }
    Ok(LocalStore::open(path)?)
}

/// A volume as named by the user.
#[derive(Debug, Clone, PartialEq)]
pub enum Volume {
    File(PathBuf),
    Rbd(RbdSpec),
}

impl Volume {
    pub fn parse(text: &str) -> Result<Self> {
        if RbdSpec::is_rbd(text) {
            let spec = RbdSpec::parse(text)?;
            spec.require_image()?;
            return Ok(Volume::Rbd(spec));
        }
        Ok(Volume::File(absolute(Path::new(text))?))
    }

    /// Resolved name that identifies the volume across runs.
    pub fn label(&self) -> Result<String> {
        match self {
            Volume::File(p) => Ok(resolve_file(p)?.display().to_string()),
            Volume::Rbd(spec) => Ok(spec.to_string()),
        }
    }

    /// A short name for the volume record.
    pub fn short_name(&self) -> String {
        match self {
            Volume::File(p) => p
                .file_name()
                .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into()),
            Volume::Rbd(spec) => spec.image.clone().unwrap_or_default(),
        }
    }

    /// Opens the volume read-only (a backup source).
    pub fn open_source(
        &self,
        ceph: &ClusterConfig,
        connections: &Connections,
    ) -> Result<Box<dyn Image>> {
        match self {
            Volume::File(p) => Ok(Box::new(FileImage::open(resolve_file(p)?, false)?)),
            Volume::Rbd(spec) => {
                let pool = connections.get(ceph)?.open_pool(&spec.pool)?;
                Ok(pool.open_read_only(spec.require_image()?, spec.snap.as_deref())?)
            }
        }
    }
}

/// Canonicalises a source file, refusing directories.
fn resolve_file(path: &Path) -> Result<PathBuf> {
    let resolved =
        std::fs::canonicalize(path).with_context(|| format!("source {}", path.display()))?;
    if resolved.is_dir() {
        bail!(
            "source {} is a directory; give an image file or block device",
            path.display()
        );
    }
    Ok(resolved)
}
