//! Which locks an operation takes: always this host's flock (beside the
//! catalog); for a chain in an RBD store also the cluster-wide RADOS lock
//! in that store's pool, so other hosts (workers sharing a PostgreSQL
//! catalog, a CLI elsewhere) are excluded too. A shared catalog requires
//! an RBD store (see `CatalogLocation::check_store`), so every process on
//! it meets in the same Ceph locks.

use crate::connections::Connections;
use crate::location::StoreLocation;
use blockback_core::engine::{
    EngineError, EngineResult, HeldLock, LockDir, LockMode, LockTarget, Locks,
};
use blockback_core::image::ImageError;
use blockback_rbd::{ClusterConfig, RadosLocks};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// A host's flocks, and the store cluster's RADOS locks for RBD stores.
pub struct StoreLocks<'a> {
    pub local: LockDir,
    pub connections: &'a Connections,
    /// The cluster of RBD stores.
    pub ceph: ClusterConfig,
    pub lease: Duration,
    cluster: OnceLock<Arc<RadosLocks>>,
}

impl<'a> StoreLocks<'a> {
    pub fn new(
        local: LockDir,
        connections: &'a Connections,
        ceph: ClusterConfig,
        lease: Duration,
    ) -> Self {
        StoreLocks {
            local,
            connections,
            ceph,
            lease,
            cluster: OnceLock::new(),
        }
    }

    /// The store cluster's locks, connecting on first use.
    fn cluster(&self) -> EngineResult<&RadosLocks> {
        if let Some(locks) = self.cluster.get() {
            return Ok(locks);
        }
        let cluster = self.connections.get(&self.ceph).map_err(|e| match e {
            crate::OpsError::Image(e) => EngineError::Image(e),
            other => EngineError::Image(ImageError::Backend {
                what: "cluster locks".into(),
                msg: other.to_string(),
            }),
        })?;
        Ok(self
            .cluster
            .get_or_init(|| Arc::new(RadosLocks::new(cluster, self.lease))))
    }
}

impl Locks for StoreLocks<'_> {
    fn try_lock(&self, target: &LockTarget<'_>, mode: LockMode) -> EngineResult<Option<HeldLock>> {
        let Some(host) = self.local.try_lock(target, mode)? else {
            return Ok(None);
        };
        match StoreLocation::parse(target.store) {
            Ok(StoreLocation::Rbd(_)) => {
                let cluster = self.cluster()?.try_lock(target, mode)?;
                Ok(cluster.map(|c| host.and(c)))
            }
            _ => Ok(Some(host)),
        }
    }

    fn holder(&self, target: &LockTarget<'_>) -> Option<String> {
        match StoreLocation::parse(target.store) {
            Ok(StoreLocation::Rbd(_)) => self.cluster().ok()?.holder(target),
            _ => None,
        }
    }
}
