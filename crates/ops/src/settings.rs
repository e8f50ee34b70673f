//! The resolved settings every operation works with.

use crate::location::StoreLocation;
use blockback_rbd::{ClusterConfig, CreateOptions};
use std::path::{Path, PathBuf};

/// Where the store, catalog and volume store are, and how to reach Ceph
/// on the store's side and on the volumes' side (which may be different
/// clusters).
#[derive(Debug, Clone)]
pub struct Settings {
    pub store: StoreLocation,
    pub catalog: PathBuf,
    /// The local store of `local:IMAGE` volumes when given; otherwise the
    /// store, when it is local (see [`Settings::volume_store`]).
    pub volume_store: Option<PathBuf>,
    pub store_ceph: ClusterConfig,
    pub volume_ceph: ClusterConfig,
    /// Layout of the base images an RBD store creates.
    pub store_layout: CreateOptions,
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

    /// Block digests of backups live beside the catalog that records them.
    pub fn digest_dir(&self) -> PathBuf {
        self.catalog.with_extension("digests")
    }

    /// Volume and backup lock files live beside the catalog they protect.
    pub fn lock_dir(&self) -> PathBuf {
        self.catalog.with_extension("locks")
    }
}
