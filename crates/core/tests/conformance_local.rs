//! The image conformance suite against the local store's images.

use blockback_core::image::conformance::{run_image_suite, ImageFactory};
use blockback_core::image::{Image, Pool};
use blockback_core::store::LocalStore;
use std::sync::atomic::{AtomicUsize, Ordering};

struct StoreFactory {
    store: LocalStore,
    next: AtomicUsize,
}

impl ImageFactory for StoreFactory {
    fn create(&self, size: u64) -> Box<dyn Image> {
        let name = format!("img-{}", self.next.fetch_add(1, Ordering::Relaxed));
        self.store.create(&name, size).expect("create store image");
        self.store.open(&name).expect("open store image")
    }

    fn has_snapshots(&self) -> bool {
        true
    }

    fn has_metadata(&self) -> bool {
        true
    }
}

#[test]
fn local_store_images_pass_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = LocalStore::init(&dir.path().join("store"), Default::default()).unwrap();
    run_image_suite(&StoreFactory {
        store,
        next: AtomicUsize::new(0),
    });
}
