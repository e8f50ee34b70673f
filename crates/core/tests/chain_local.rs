//! The backup-chain suite with local-store volumes, backed up into another
//! local store and into the volumes' own store; and sixty simulated days
//! of backups and prunes (gc after each) in the other local store.

use blockback_core::engine::conformance::{run_chain_suite, run_retention_days, ChainFixture};
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

impl Local {
    fn new(dir: &std::path::Path) -> Self {
        let (volumes_dir, backups_dir) = (dir.join("volumes"), dir.join("backups"));
        Local {
            volumes: LocalStore::init(&volumes_dir, Default::default()).unwrap(),
            backups: LocalStore::init(&backups_dir, Default::default()).unwrap(),
            volumes_dir,
            backups_dir,
            next: AtomicUsize::new(0),
        }
    }
}

#[test]
fn local_store_chains_pass_the_chain_suite() {
    let dir = tempfile::tempdir().unwrap();
    run_chain_suite(&Local::new(dir.path()));
}

#[test]
fn sixty_days_of_pruning_in_a_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Local::new(dir.path());
    run_retention_days(&fixture, Some(&fixture.backups));
}
