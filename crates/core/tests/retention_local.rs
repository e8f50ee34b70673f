//! Sixty simulated days of backups and prunes with local-store volumes,
//! backed up into another local store (gc after each prune).

use blockback_core::engine::conformance::{run_retention_days, ChainFixture};
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
fn sixty_days_of_pruning_in_a_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let (volumes_dir, backups_dir) = (dir.path().join("volumes"), dir.path().join("backups"));
    let backups = LocalStore::init(&backups_dir, Default::default()).unwrap();
    let fixture = Local {
        volumes: LocalStore::init(&volumes_dir, Default::default()).unwrap(),
        backups: backups.clone(),
        volumes_dir,
        backups_dir,
        next: AtomicUsize::new(0),
    };
    run_retention_days(&fixture, Some(&backups));
}
