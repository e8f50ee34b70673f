//! Volumes: what a backup reads and what a restore may write, named by an
//! [`Address`] and recorded in the catalog by a label.

use crate::address::Address;
use crate::connections::Connections;
use crate::error::{invalid, OpsResult};
use crate::keys::StoreKeys;
use crate::store::open_local;
use blockback_core::image::file::FileImage;
use blockback_core::image::{Image, ImageError, Pool};
use blockback_rbd::{ClusterConfig, RbdSpec};
use std::path::{Path, PathBuf};

/// A volume: a file or block device, an RBD image, or an image of a local
/// store; each optionally at a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub enum Volume {
    File(PathBuf),
    Rbd(RbdSpec),
    Local {
        store: PathBuf,
        image: String,
        snap: Option<String>,
    },
}

/// An opened backup source.
pub struct Source {
    pub image: Box<dyn Image>,
    /// A HEAD with snapshots: the backup snapshots it and can go differential.
    pub snapshot_capable: bool,
}

impl Volume {
    /// The volume an address names; `local:` is an image of `volume_store`.
    pub fn from_address(address: &Address, volume_store: Option<&Path>) -> OpsResult<Self> {
        match address.clone().absolute()? {
            Address::File(p) => Ok(Volume::File(p)),
            Address::Rbd(spec) => Ok(Volume::Rbd(spec)),
            Address::Local { image, snap } => {
                let Some(store) = volume_store else {
                    return invalid(format!(
                        "{address}: local:IMAGE names an image of a local store; give --volume-store DIR (or a local --store)"
                    ));
                };
                Ok(Volume::Local {
                    store: store.to_path_buf(),
                    image,
                    snap,
                })
            }
            Address::Backup(_) => invalid(format!(
                "{address} is a backup, not a volume; give a file, rbd:POOL/IMAGE or local:IMAGE"
            )),
        }
    }

    /// Parses a volume address (see [`crate::address`]).
    pub fn parse(text: &str, volume_store: Option<&Path>) -> OpsResult<Self> {
        Self::from_address(&Address::parse(text)?, volume_store)
    }

    /// The volume a catalog label names (the inverse of [`Volume::label`]).
    pub fn from_label(label: &str) -> OpsResult<Self> {
        if let Some(rest) = label.strip_prefix("local:") {
            if let Some((store, image)) = rest.rsplit_once('/') {
                let (image, snap) = match image.split_once('@') {
                    Some((i, s)) => (i, Some(s.to_string())),
                    None => (image, None),
                };
                return Ok(Volume::Local {
                    store: PathBuf::from(store),
                    image: image.to_string(),
                    snap,
                });
            }
        }
        if RbdSpec::is_rbd(label) {
            return Ok(Volume::Rbd(RbdSpec::parse(label)?));
        }
        Ok(Volume::File(PathBuf::from(label)))
    }

    /// Resolved name that identifies the volume across runs.
    pub fn label(&self) -> OpsResult<String> {
        match self {
            Volume::File(p) => Ok(resolve_file(p)?.display().to_string()),
            Volume::Rbd(spec) => Ok(spec.to_string()),
            Volume::Local { store, image, snap } => {
                let at = snap.as_ref().map(|s| format!("@{s}")).unwrap_or_default();
                Ok(format!("local:{}/{image}{at}", store.display()))
            }
        }
    }

    /// The label of a volume that may not exist yet (a restore target).
    pub fn target_label(&self) -> String {
        match self {
            Volume::File(p) => std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string(),
            other => other.label().unwrap_or_default(),
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
    pub fn open_source(
        &self,
        ceph: &ClusterConfig,
        connections: &Connections,
        keys: &StoreKeys,
    ) -> OpsResult<Source> {
        match self {
            Volume::File(p) => Ok(Source {
                image: Box::new(FileImage::open(resolve_file(p)?, false)?),
                snapshot_capable: false,
            }),
            Volume::Rbd(spec) => {
                let pool = connections.open_pool(ceph, &spec.pool)?;
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
            Volume::Local { store, image, snap } => Ok(Source {
                image: open_local(store, keys, false)?.open_read_only(image, snap.as_deref())?,
                snapshot_capable: snap.is_none(),
            }),
        }
    }

    /// The volume's HEAD, writable, when it exists and has snapshots (to
    /// remove backup snapshots from it); `None` for files and snapshots.
    pub fn open_head(
        &self,
        ceph: &ClusterConfig,
        connections: &Connections,
        keys: &StoreKeys,
    ) -> OpsResult<Option<Box<dyn Image>>> {
        match self {
            Volume::Rbd(spec) if spec.snap.is_none() => {
                let pool = connections.open_pool(ceph, &spec.pool)?;
                Ok(Some(pool.open(spec.require_image()?)?))
            }
            Volume::Local {
                store,
                image,
                snap: None,
            } => Ok(Some(
                open_local(store, keys, false)?.open_read_only(image, None)?,
            )),
            _ => Ok(None),
        }
    }
}

/// Canonicalises a source file, refusing directories.
fn resolve_file(path: &Path) -> OpsResult<PathBuf> {
    let resolved = std::fs::canonicalize(path)
        .map_err(|e| ImageError::from_io(format!("source {}", path.display()), e))?;
    if resolved.is_dir() {
        return invalid(format!(
            "source {} is a directory; give an image file or block device",
            path.display()
        ));
    }
    Ok(resolved)
}
