//! blockback_core's backup-chain suite on the real cluster: RBD volumes in
//! `volumes`, backed up into `backups` and into `volumes` itself; and
//! sixty simulated days of backups and prunes into `backups`.

mod common;

use blockback_core::engine::conformance::{run_chain_suite, run_retention_days, ChainFixture};
use blockback_core::image::Pool;
use blockback_rbd::RbdPool;
use common::*;

struct Rbd {
    volumes: RbdPool,
    backups: RbdPool,
}

impl ChainFixture for Rbd {
    fn volumes(&self) -> &dyn Pool {
        &self.volumes
    }
    fn volume_label(&self, name: &str) -> String {
        format!("rbd:{POOL}/{name}")
    }
    fn stores(&self) -> [(&dyn Pool, String); 2] {
        [
            (&self.backups, format!("rbd:{OTHER_POOL}")),
            (&self.volumes, format!("rbd:{POOL}")),
        ]
    }
    fn unique(&self, tag: &str) -> String {
        unique(tag)
    }
}

#[test]
fn rbd_chains_pass_the_chain_suite() {
    let Some(cluster) = admin() else { return };
    run_chain_suite(&Rbd {
        volumes: cluster.open_pool(POOL).expect("open pool volumes"),
        backups: cluster.open_pool(OTHER_POOL).expect("open pool backups"),
    });
}

/// Sixty simulated days of backups and prunes, into `backups`.
#[test]
fn sixty_days_of_pruning_on_rbd() {
    let Some(cluster) = admin() else { return };
    let fixture = Rbd {
        volumes: cluster.open_pool(POOL).expect("open pool volumes"),
        backups: cluster.open_pool(OTHER_POOL).expect("open pool backups"),
    };
    run_retention_days(&fixture, None);
}
