//! Opening backup stores: a local directory or an RBD pool.

use crate::connections::Connections;
use crate::error::{OpsError, OpsResult};
use crate::keys::StoreKeys;
use crate::location::{require_parent, StoreLocation};
use blockback_core::image::Pool;
use blockback_core::store::LocalStore;
use blockback_rbd::{ClusterConfig, CreateOptions, RbdPool};
use std::path::Path;

/// An open backup store.
pub enum StoreHandle {
    Local(LocalStore),
    Rbd(RbdPool),
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
    pub fn local(&self, operation: &str) -> OpsResult<&LocalStore> {
        match self {
            StoreHandle::Local(s) => Ok(s),
            StoreHandle::Rbd(p) => Err(OpsError::Invalid(format!(
                "{operation} works on local stores only; {} is an RBD pool (Ceph frees space when backups are deleted)",
                p.describe()
            ))),
        }
    }
}

/// Opens a store; a local one is created first when `create` and absent.
pub fn open_store(
    location: &StoreLocation,
    ceph: &ClusterConfig,
    connections: &Connections,
    keys: &StoreKeys,
    create: bool,
) -> OpsResult<StoreHandle> {
    match location {
        StoreLocation::Local(path) => open_local(path, keys, create).map(StoreHandle::Local),
        StoreLocation::Rbd(pool) if keys.given() => Err(OpsError::Invalid(format!(
            "store rbd:{pool}: RBD stores are not encrypted by blockback (docs/rbd.md, \"Encryption\"); drop the key options, or use an encrypted local store"
        ))),
        StoreLocation::Rbd(pool) => Ok(StoreHandle::Rbd(
            connections.open_pool(ceph, pool)?.without_snapshot_quiesce(),
        )),
    }
}

/// Opens (or creates, in an existing directory) a local store, unlocking
/// an encrypted one with `keys`; a missing directory is
/// [`OpsError::StoreMissing`], never "not a store". With keys given, a
/// missing store is never created unencrypted: encryption is chosen by
/// `store init --encryption`.
pub fn open_local(path: &Path, keys: &StoreKeys, create: bool) -> OpsResult<LocalStore> {
    if !path.exists() {
        if keys.given() {
            return Err(OpsError::Invalid(format!(
                "no store at {}: the directory does not exist; create an encrypted store with `blockback store init --encryption CIPHER` and the same key options",
                path.display()
            )));
        }
        if !create {
            return Err(OpsError::StoreMissing {
                path: path.display().to_string(),
            });
        }
        require_parent(path, "store")?;
        return LocalStore::init(path, Default::default()).map_err(|source| {
            OpsError::CreateStore {
                path: path.display().to_string(),
                source,
            }
        });
    }
    Ok(LocalStore::open_with(path, keys)?)
}
