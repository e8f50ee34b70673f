//! The backup-chain suite with local-store volumes, backed up into another
//! local store and into the volumes' own store.

use blockback_core::engine::conformance::{run_chain_suite, ChainFixture};
use blockback_core::image::Pool;
use blockback_core::store::LocalStore;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

struct Local {
    volumes: LocalStore,
    volumes_dir: PathBuf,
    backups: LocalStore,
    backups_dir: PathBuf,
    next: AtomicUsize,
}

impl ChainFixture for Local {
    fn volumes(&self) -> &dyn Pool {
        &self.volumes
    }
    fn volume_label(&self, name: &str) -> String {
        format!("local:{}/{name}", self.volumes_dir.display())
    }
    fn stores(&self) -> [(&dyn Pool, String); 2] {
        [
            (&self.backups, self.backups_dir.display().to_string()),
            (&self.volumes, self.volumes_dir.display().to_string()),
        ]
    }
    fn unique(&self, tag: &str) -> String {
        format!("{tag}-{}", self.next.fetch_add(1, Ordering::Relaxed))
    }
}

#[test]
fn local_store_chains_pass_the_chain_suite() {
    let dir = tempfile::tempdir().unwrap();
    let (volumes_dir, backups_dir) = (dir.path().join("volumes"), dir.path().join("backups"));
    run_chain_suite(&Local {
        volumes: LocalStore::init(&volumes_dir, Default::default()).unwrap(),
        backups: LocalStore::init(&backups_dir, Default::default()).unwrap(),
        volumes_dir,
        backups_dir,
        next: AtomicUsize::new(0),
    });
}
