//! blockback_core's image conformance suite, run against RBD images.

mod common;

use std::sync::Mutex;

use blockback_core::image::conformance::{run_image_suite, ImageFactory};
use blockback_core::image::{Image, Pool};
use blockback_rbd::{CreateOptions, RbdPool};
use common::*;

/// Creates fresh images in `volumes` and removes them (and their snapshots)
/// when dropped.
struct RbdFactory {
    pool: RbdPool,
    /// The same pool making images of 64 KiB objects: the suite's 16 MiB
    /// images then have 256, enough for `create_to_fill` to defer their
    /// object map to the flush.
    small_objects: RbdPool,
    created: Mutex<Vec<String>>,
}

impl RbdFactory {
    fn named(&self) -> String {
        let name = unique("conf");
        self.created.lock().expect("lock").push(name.clone());
        name
    }
}

impl ImageFactory for RbdFactory {
    fn create(&self, size: u64) -> Box<dyn Image> {
        let name = self.named();
        self.pool
            .create(&name, size)
            .expect("create conformance image");
        self.pool.open(&name).expect("open conformance image")
    }

    fn create_to_fill(&self, size: u64) -> Box<dyn Image> {
        let name = self.named();
        self.small_objects
            .create_to_fill(&name, size, size)
            .expect("create conformance image to fill")
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
    let (Some(pool), Some(small)) = (pool(), pool()) else {
        return;
    };
    let small_objects = small.with_create_options(CreateOptions {
        order: Some(16),
        ..CreateOptions::default()
    });
    let factory = RbdFactory {
        pool,
        small_objects,
        created: Mutex::new(Vec::new()),
    };
    run_image_suite(&factory);
}
