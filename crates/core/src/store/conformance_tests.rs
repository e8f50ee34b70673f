//! The image conformance suite against local-store images with 4 KiB
//! chunks: the suite's 16 MiB images then have two-level trees. (The
//! default chunk size runs in crates/core/tests/conformance_local.rs.)

use super::{InitOptions, LocalStore};
use crate::image::conformance::{run_image_suite, ImageFactory};
use crate::image::{Image, Pool};
use std::cell::Cell;
use tempfile::TempDir;

/// Fresh images in one temp store.
struct StoreImages {
    store: LocalStore,
    next: Cell<u32>,
    _dir: TempDir,
}

impl StoreImages {
    fn new(chunk_size: u32) -> Self {
        let dir = TempDir::new().expect("temp dir");
        let store = LocalStore::init(dir.path(), InitOptions { chunk_size }).expect("init store");
        StoreImages {
            store,
            next: Cell::new(0),
            _dir: dir,
        }
    }
}

impl StoreImages {
    fn next_name(&self) -> String {
        self.next.set(self.next.get() + 1);
        format!("volume-{}.backup.conformance", self.next.get())
    }
}

impl ImageFactory for StoreImages {
    fn create(&self, size: u64) -> Box<dyn Image> {
        let name = self.next_name();
        self.store.create(&name, size).expect("create image");
        self.store.open(&name).expect("open image")
    }

    fn create_to_fill(&self, size: u64) -> Box<dyn Image> {
        let name = self.next_name();
        self.store
            .create_to_fill(&name, size, size)
            .expect("create image to fill")
    }

    fn has_snapshots(&self) -> bool {
        true
    }

    fn has_metadata(&self) -> bool {
        true
    }
}

#[test]
fn conformance_small_chunks() {
    run_image_suite(&StoreImages::new(4096));
}

#[test]
fn object_conformance() {
    let images = StoreImages::new(4096);
    crate::image::conformance::run_pool_object_suite(&images.store);
}
