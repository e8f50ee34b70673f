//! Cluster connections: each cluster is connected once and reused by every
//! step (store and volume side share it when their settings match).

use crate::error::OpsResult;
use blockback_rbd::{Cluster, ClusterConfig, RbdPool, DEFAULT_QUEUE_DEPTH};
use std::sync::{Arc, Mutex};

/// How a cluster is connected: the service connects on a thread of lower
/// CPU priority, whose priority librados' own threads then inherit.
pub type Connector = dyn Fn(&ClusterConfig) -> OpsResult<Arc<Cluster>> + Send + Sync;

/// The connections of one command, or of a service's whole life.
pub struct Connections {
    open: Mutex<Vec<(ClusterConfig, Arc<Cluster>)>>,
    /// Requests kept in flight on each RBD image opened through these.
    queue_depth: usize,
    connect: Box<Connector>,
}

impl Default for Connections {
    fn default() -> Self {
        Connections::with_queue_depth(DEFAULT_QUEUE_DEPTH)
    }
}

impl Connections {
    /// Connections whose RBD images keep `depth` requests in flight (at least 1).
    pub fn with_queue_depth(depth: usize) -> Self {
        Connections::connecting_with(depth, Box::new(Connections::connect))
    }

    /// Connects `config` on the calling thread: what [`Connector`]s call.
    pub fn connect(config: &ClusterConfig) -> OpsResult<Arc<Cluster>> {
        Ok(Cluster::connect(config)?)
    }

    /// Connections that connect clusters through `connect`.
    pub fn connecting_with(depth: usize, connect: Box<Connector>) -> Self {
        Connections {
            open: Mutex::default(),
            queue_depth: depth.max(1),
            connect,
        }
    }

    pub fn get(&self, config: &ClusterConfig) -> OpsResult<Arc<Cluster>> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        // A tripped connection fails everything at once: a later job (the
        // service's) connects anew, to a cluster that may be back.
        open.retain(|(_, cluster)| !cluster.is_tripped());
        if let Some((_, cluster)) = open.iter().find(|(c, _)| c == config) {
            return Ok(cluster.clone());
        }
        let cluster = (self.connect)(config)?;
        open.push((config.clone(), cluster.clone()));
        Ok(cluster)
    }

    /// Opens pool `name` of the cluster `config` reaches, its images with
    /// this queue depth.
    pub fn open_pool(&self, config: &ClusterConfig, name: &str) -> OpsResult<RbdPool> {
        let pool = self.get(config)?.open_pool(name)?;
        Ok(pool.with_queue_depth(self.queue_depth))
    }
}
