//! Opening what the user names: stores (directory or `rbd:POOL`) and
//! images (file, block device, `rbd:POOL/IMAGE[@SNAP]`).

use crate::config::{absolute, StoreLocation};
use anyhow::{bail, Context, Result};
use blockback_core::image::file::FileImage;
use blockback_core::image::{Image, Pool};
use blockback_core::store::LocalStore;
use blockback_rbd::{Cluster, ClusterConfig, CreateOptions, RbdSpec};
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

    /// Gives an RBD store the layout for the base images it creates.
    pub fn with_layout(self, layout: &CreateOptions) -> Self {
        match self {
            StoreHandle::Rbd(p) => StoreHandle::Rbd(p.with_create_options(layout.clone())),
            local => local,
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
    /// An image of a local store (`local:IMAGE`, in --volume-store).
    Local {
        store: PathBuf,
        image: String,
    },
}

/// An opened backup source.
pub struct Source {
    pub image: Box<dyn Image>,
    /// A HEAD with snapshots: the backup snapshots it and can go differential.
    pub snapshot_capable: bool,
}

impl Volume {
    /// Parses a volume; `local:` names an image of `volume_store`.
    pub fn parse(text: &str, volume_store: Option<&Path>) -> Result<Self> {
        if RbdSpec::is_rbd(text) {
            let spec = RbdSpec::parse(text)?;
            spec.require_image()?;
            return Ok(Volume::Rbd(spec));
        }
        if let Some(image) = text.strip_prefix("local:") {
            let Some(store) = volume_store else {
                bail!("{text}: local volumes need a local store; give --volume-store DIR");
            };
            if image.is_empty() || image.contains('/') || image.contains('@') {
                bail!("{text}: give local:IMAGE (an image name of the local store, no snapshot)");
            }
            return Ok(Volume::Local {
                store: store.to_path_buf(),
                image: image.to_string(),
            });
        }
        Ok(Volume::File(absolute(Path::new(text))?))
    }

    /// The volume a catalog label names (the inverse of [`Volume::label`]).
    pub fn from_label(label: &str) -> Result<Self> {
        if let Some(rest) = label.strip_prefix("local:") {
            if let Some((store, image)) = rest.rsplit_once('/') {
                return Ok(Volume::Local {
                    store: PathBuf::from(store),
                    image: image.to_string(),
                });
            }
        }
        if RbdSpec::is_rbd(label) {
            return Ok(Volume::Rbd(RbdSpec::parse(label)?));
        }
        Ok(Volume::File(PathBuf::from(label)))
    }

    /// Resolved name that identifies the volume across runs.
    pub fn label(&self) -> Result<String> {
        match self {
            Volume::File(p) => Ok(resolve_file(p)?.display().to_string()),
            Volume::Rbd(spec) => Ok(spec.to_string()),
            Volume::Local { store, image } => Ok(format!("local:{}/{image}", store.display())),
        }
    }

    /// A short name for the volume record.
    pub fn short_name(&self) -> String {
        match self {
            Volume::File(p) => p
                .file_name()
                .map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into()),
            Volume::Rbd(spec) => spec.image.clone().unwrap_or_default(),
            Volume::Local { image, .. } => image.clone(),
        }
    }

    /// Opens the volume as a backup source: a HEAD with snapshots is opened
    /// writable (the backup snapshots it), anything else read-only.
    pub fn open_source(&self, ceph: &ClusterConfig, connections: &Connections) -> Result<Source> {
        match self {
            Volume::File(p) => Ok(Source {
                image: Box::new(FileImage::open(resolve_file(p)?, false)?),
                snapshot_capable: false,
            }),
            Volume::Rbd(spec) => {
                let pool = connections.get(ceph)?.open_pool(&spec.pool)?;
                let name = spec.require_image()?;
                Ok(match &spec.snap {
                    Some(snap) => Source {
                        image: pool.open_read_only(name, Some(snap))?,
                        snapshot_capable: false,
                    },
                    None => Source {
                        image: pool.open(name)?,
                        snapshot_capable: true,
                    },
                })
            }
            // The local store takes snapshots through read-only handles, so
            // the volume stays open for its own writers.
            Volume::Local { store, image } => Ok(Source {
                image: LocalStore::open(store)?.open_read_only(image, None)?,
                snapshot_capable: true,
            }),
        }
    }

    /// The volume's HEAD, writable, when it exists and has snapshots (to
    /// remove backup snapshots from it); `None` for files.
    pub fn open_head(
        &self,
        ceph: &ClusterConfig,
        connections: &Connections,
    ) -> Result<Option<Box<dyn Image>>> {
        match self {
            Volume::Rbd(spec) if spec.snap.is_none() => {
                let pool = connections.get(ceph)?.open_pool(&spec.pool)?;
                Ok(Some(pool.open(spec.require_image()?)?))
            }
            Volume::Local { store, image } => {
                Ok(Some(LocalStore::open(store)?.open_read_only(image, None)?))
            }
            _ => Ok(None),
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
