//! The resolved settings every operation works with.

use crate::catalog::CatalogLocation;
use crate::error::OpsResult;
use crate::keys::StoreKeys;
use crate::location::StoreLocation;
use blockback_rbd::{ClusterConfig, CreateOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the store, catalog and volume store are, and how to reach Ceph
/// on the store's side and on the volumes' side (which may be different
/// clusters).
#[derive(Debug, Clone)]
pub struct Settings {
    pub store: StoreLocation,
    pub catalog: CatalogLocation,
    /// The local store of `local:IMAGE` volumes when given; otherwise the
    /// store, when it is local (see [`Settings::volume_store`]).
    pub volume_store: Option<PathBuf>,
    pub store_ceph: ClusterConfig,
    pub volume_ceph: ClusterConfig,
    /// Layout of the base images an RBD store creates.
    pub store_layout: CreateOptions,
    /// How long a cluster-wide lock outlives a holder that stopped
    /// renewing it (a dead process).
    pub lock_lease: Duration,
    /// Credentials for encrypted local stores (the backup store; volume
    /// stores get [`StoreKeys::for_volume_store`]).
    pub keys: StoreKeys,
}

impl Settings {
    /// The one rule for `local:IMAGE`: an image of --volume-store, which
    /// defaults to --store when that is a local store.
    pub fn volume_store(&self) -> Option<&Path> {
        match (&self.volume_store, &self.store) {
            (Some(dir), _) => Some(dir),
            (None, StoreLocation::Local(dir)) => Some(dir),
            (None, StoreLocation::Rbd(_)) => None,
        }
    }

    /// The credentials for a `local:` volume store.
    pub fn volume_keys(&self) -> StoreKeys {
        self.keys.for_volume_store()
    }

    /// Block digests of backups live beside the catalog that records them
    /// (a shared catalog's: in the host's data directory).
    pub fn digest_dir(&self) -> PathBuf {
        self.catalog.digest_dir()
    }

    /// This host's volume and backup lock files, beside the catalog.
    pub fn lock_dir(&self) -> PathBuf {
        self.catalog.lock_dir()
    }

    /// Refuses combinations that cannot work: a shared catalog with a
    /// store only this host reaches.
    pub fn check(&self) -> OpsResult<()> {
        self.catalog.check_store(&self.store)
    }
}
