//! Cluster connections: each cluster is connected once and reused by every
//! step (store and volume side share it when their settings match).

use crate::error::OpsResult;
use blockback_rbd::{Cluster, ClusterConfig};
use std::sync::{Arc, Mutex};

/// The connections of one command, or of a service's whole life.
#[derive(Default)]
pub struct Connections {
    open: Mutex<Vec<(ClusterConfig, Arc<Cluster>)>>,
}

impl Connections {
    pub fn get(&self, config: &ClusterConfig) -> OpsResult<Arc<Cluster>> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        // A tripped connection fails everything at once: a later job (the
        // service's) connects anew, to a cluster that may be back.
        open.retain(|(_, cluster)| !cluster.is_tripped());
        if let Some((_, cluster)) = open.iter().find(|(c, _)| c == config) {
            return Ok(cluster.clone());
        }
        let cluster = Cluster::connect(config)?;
        open.push((config.clone(), cluster.clone()));
        Ok(cluster)
    }
}
