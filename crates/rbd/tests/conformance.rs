//! blockback_core's image conformance suite, run against RBD images.

mod common;

use std::sync::Mutex;

use blockback_core::image::conformance::{run_image_suite, ImageFactory};
use blockback_core::image::{Image, Pool};
use blockback_rbd::RbdPool;
use common::*;

/// Creates fresh images in `volumes` and removes them (and their snapshots)
/// when dropped.
struct RbdFactory {
    pool: RbdPool,
    created: Mutex<Vec<String>>,
}

impl ImageFactory for RbdFactory {
    fn create(&self, size: u64) -> Box<dyn Image> {
        let name = unique("conf");
        self.pool
            .create(&name, size)
            .expect("create conformance image");
        self.created.lock().expect("lock").push(name.clone());
        self.pool.open(&name).expect("open conformance image")
    }

    fn has_snapshots(&self) -> bool {
        true
    }

    fn has_metadata(&self) -> bool {
        true
    }
}

impl Drop for RbdFactory {
    fn drop(&mut self) {
        let names = std::mem::take(&mut *self.created.lock().unwrap_or_else(|p| p.into_inner()));
        for name in names {
            drop(TempImage::adopt(&self.pool, name));
        }
    }
}

#[test]
fn rbd_images_pass_the_image_conformance_suite() {
    let Some(pool) = pool() else { return };
    let factory = RbdFactory {
        pool,
        created: Mutex::new(Vec::new()),
    };
    run_image_suite(&factory);
}
