//! An RBD pool (one librados I/O context) as a [`Pool`] of images.

use std::sync::Arc;

use blockback_core::image::{Image, ImageError, Pool, Result};

use crate::cluster::{cstr, Cluster};
use crate::error::from_errno;
use crate::ffi::{self, Errno, IoCtx};
use crate::image::{RbdImage, DEFAULT_QUEUE_DEPTH};
use crate::objects;
use crate::spec::require_name;

/// RBD image feature bits (librbd.h `RBD_FEATURE_*`).
pub mod features {
    pub const LAYERING: u64 = 1;
    pub const STRIPINGV2: u64 = 2;
    pub const EXCLUSIVE_LOCK: u64 = 4;
    pub const OBJECT_MAP: u64 = 8;
    pub const FAST_DIFF: u64 = 16;
    pub const DEEP_FLATTEN: u64 = 32;
    pub const JOURNALING: u64 = 64;
}

use features::*;

/// What new images get: fast-diff (which needs object-map, which needs
/// exclusive-lock) makes incremental backups cheap.
const PREFERRED: u64 = LAYERING | EXCLUSIVE_LOCK | OBJECT_MAP | FAST_DIFF;

/// Fallbacks, best first, for clusters or librbd builds that refuse a set.
const FALLBACKS: [u64; 3] = [PREFERRED, LAYERING | EXCLUSIVE_LOCK, LAYERING];

// librbd.h RBD_IMAGE_OPTION_*.
const OPT_FORMAT: i32 = 0;
const OPT_FEATURES: i32 = 1;
const OPT_ORDER: i32 = 2;
const OPT_STRIPE_UNIT: i32 = 3;
const OPT_STRIPE_COUNT: i32 = 4;

/// Layout of new images (the rbd CLI's `--image-feature`, `--order`,
/// `--stripe-unit`, `--stripe-count`). `None` means librbd's default, except
/// `features`, whose default is layering, exclusive-lock, object-map and
/// fast-diff where the cluster supports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateOptions {
    pub features: Option<u64>,
    /// Object size as a power of two (22 = 4 MiB).
    pub order: Option<u8>,
    pub stripe_unit: Option<u64>,
    pub stripe_count: Option<u64>,
}

impl CreateOptions {
    fn wants_striping(&self) -> bool {
        self.stripe_unit.is_some() || self.stripe_count.is_some_and(|c| c > 1)
    }

    /// Feature sets to try in order.
    fn feature_sets(&self) -> Vec<u64> {
        let striping = if self.wants_striping() { STRIPINGV2 } else { 0 };
        match self.features {
            Some(f) => vec![f | striping],
            None => FALLBACKS.iter().map(|f| f | striping).collect(),
        }
    }

    fn options(&self, features: u64) -> Vec<(i32, u64)> {
        let mut v = vec![(OPT_FORMAT, 2), (OPT_FEATURES, features)];
        v.extend(self.order.map(|o| (OPT_ORDER, u64::from(o))));
        v.extend(self.stripe_unit.map(|u| (OPT_STRIPE_UNIT, u)));
        v.extend(self.stripe_count.map(|c| (OPT_STRIPE_COUNT, c)));
        v
    }
}

/// One pool of one cluster.
pub struct RbdPool {
    io: Arc<IoCtx>,
    name: String,
    create_options: CreateOptions,
    queue_depth: usize,
    quiesce_snapshots: bool,
    _cluster: Arc<Cluster>,
}

impl RbdPool {
    /// Opens pool `name`; NotFound naming the pool when it does not exist.
    pub fn open(cluster: &Arc<Cluster>, name: &str) -> Result<RbdPool> {
        let what = || format!("pool '{name}'");
        require_name("pool", name, what)?;
        let c_name = cstr(name, &what())?;
        let io = IoCtx::create(cluster.rados(), &c_name).map_err(|e| from_errno(e, what()))?;
        Ok(RbdPool {
            io: Arc::new(io),
            name: name.into(),
            create_options: CreateOptions::default(),
            queue_depth: DEFAULT_QUEUE_DEPTH,
            quiesce_snapshots: true,
            _cluster: Arc::clone(cluster),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sets the layout [`Pool::create`] gives new images.
    pub fn with_create_options(mut self, options: CreateOptions) -> Self {
        self.create_options = options;
        self
    }

    /// Sets how many requests the images opened from here keep in flight
    /// (at least 1; default [`DEFAULT_QUEUE_DEPTH`]).
    pub fn with_queue_depth(mut self, depth: usize) -> Self {
        self.queue_depth = depth.max(1);
        self
    }

    /// Snapshots of images opened from here skip librbd's quiesce
    /// notification (two notify round trips to every watcher of the image:
    /// 0.213 -> 0.196 s per `rbd snap create` under the 0-2 ms profile).
    /// For a pool of backups, whose images no application has mapped:
    /// a source volume's snapshot still asks its users, such as a mapped
    /// rbd-nbd with quiesce hooks, to freeze writes first.
    pub fn without_snapshot_quiesce(mut self) -> Self {
        self.quiesce_snapshots = false;
        self
    }

    fn image_what(&self, image: &str) -> String {
        format!("image {}/{image}", self.name)
    }

    /// Creates an image with an explicit layout.
    pub fn create_with(&self, name: &str, size: u64, options: &CreateOptions) -> Result<()> {
        self.create_without(name, size, options, 0).map(|_| ())
    }

    /// Creates an image with `options` but the features `left_out`;
    /// returns the feature set it was created for (those included).
    fn create_without(
        &self,
        name: &str,
        size: u64,
        options: &CreateOptions,
        left_out: u64,
    ) -> Result<u64> {
        let what = self.image_what(name);
        require_name("image", name, || what.clone())?;
        let c_name = cstr(name, &what)?;
        let mut last = Errno(libc::EINVAL);
        for features in options.feature_sets() {
            match self
                .io
                .create_image(&c_name, size, &options.options(features & !left_out))
            {
                Ok(()) => return Ok(features),
                // EINVAL/ENOSYS/EOPNOTSUPP: this feature set is not supported here.
                Err(e) if is_unsupported(e) => {
                    tracing::debug!("{what}: features {features:#x} refused ({e:?})");
                    last = e;
                }
                Err(e) => return Err(from_errno(e, what)),
            }
        }
        Err(create_error(last, what, options))
    }

    /// Opens HEAD read-write, typed.
    pub fn open_image(&self, name: &str) -> Result<RbdImage> {
        let image = RbdImage::open(&self.io, &self.name, name, None, false, self.queue_depth)?;
        Ok(image.quiescing_snapshots(self.quiesce_snapshots))
    }

    /// Opens HEAD or a snapshot read-only, typed.
    pub fn open_image_read_only(&self, name: &str, snap: Option<&str>) -> Result<RbdImage> {
        RbdImage::open(&self.io, &self.name, name, snap, true, self.queue_depth)
    }
}

impl std::fmt::Debug for RbdPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RbdPool({})", self.name)
    }
}

/// librbd's answers for a feature set or option this cluster or build
/// does not support.
pub(crate) fn is_unsupported(e: Errno) -> bool {
    matches!(e.0, libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
}

fn create_error(e: Errno, what: String, options: &CreateOptions) -> ImageError {
    match e.0 {
        libc::EINVAL => ImageError::Invalid {
            what,
            why: format!("librbd refused the size or layout {options:?} (EINVAL)"),
        },
        _ => from_errno(e, what),
    }
}

impl Pool for RbdPool {
    fn describe(&self) -> String {
        format!("rbd:{}", self.name)
    }

    fn list(&self) -> Result<Vec<String>> {
        let mut names = self
            .io
            .list_images()
            .map_err(|e| from_errno(e, format!("pool '{}'", self.name)))?;
        names.sort();
        Ok(names)
    }

    fn create(&self, name: &str, size: u64) -> Result<()> {
        self.create_with(name, size, &self.create_options)
    }

    /// An image most of whose objects are about to be written (a full
    /// backup's new base) is created without object-map and fast-diff,
    /// which its first flush enables, rebuilding the map from the objects
    /// written: with the map, librbd updates it before each object's first
    /// write, one serialized write to the map's object per data object
    /// (0.15-0.25 s of a 1 GiB `rbd import` on the test cluster, with or
    /// without the latency profile), where the rebuild stats every object
    /// at once. A sparse image keeps the map from the start: the rebuild's
    /// cost grows with the image's objects, the saving with those written.
    fn create_to_fill(&self, name: &str, size: u64, data_bytes: u64) -> Result<Box<dyn Image>> {
        let options = &self.create_options;
        let deferred = match map_worth_deferring(size, data_bytes, options.object_size()) {
            true => OBJECT_MAP | FAST_DIFF,
            false => 0,
        };
        let features = self.create_without(name, size, options, deferred)?;
        let image = self.open_image(name).inspect_err(|_| {
            let _ = self.remove(name);
        })?;
        Ok(Box::new(image.deferring_features(features & deferred)))
    }

    fn open(&self, name: &str) -> Result<Box<dyn Image>> {
        Ok(Box::new(self.open_image(name)?))
    }

    fn open_read_only(&self, name: &str, snap: Option<&str>) -> Result<Box<dyn Image>> {
        Ok(Box::new(self.open_image_read_only(name, snap)?))
    }

    fn remove(&self, name: &str) -> Result<()> {
        let what = self.image_what(name);
        require_name("image", name, || what.clone())?;
        let c_name = cstr(name, &what)?;
        self.io.remove_image(&c_name).map_err(|e| match e.0 {
            // librbd says EBUSY when another client still watches the image.
            libc::EBUSY => ImageError::Busy {
                what: format!("{what} (open by another client)"),
            },
            _ => from_errno(e, what),
        })
    }

    fn put_object(&self, name: &str, data: &[u8]) -> Result<()> {
        objects::put(&self.io, &self.describe(), name, data)
    }

    fn get_object(&self, name: &str) -> Result<Option<Vec<u8>>> {
        objects::get(&self.io, &self.describe(), name)
    }

    fn remove_object(&self, name: &str) -> Result<()> {
        objects::remove(&self.io, &self.describe(), name)
    }
}

/// Whether an image of `size` bytes in objects of `object_size` that is
/// about to receive `data_bytes` is better off building its object map
/// once at the end: when at least [`DEFERRED_MAP_MIN_OBJECTS`] objects are
/// written and they are at least one in [`DEFERRED_MAP_MAX_SPARSENESS`].
fn map_worth_deferring(size: u64, data_bytes: u64, object_size: u64) -> bool {
    let objects = size.div_ceil(object_size);
    let written = data_bytes / object_size;
    written >= DEFERRED_MAP_MIN_OBJECTS && written * DEFERRED_MAP_MAX_SPARSENESS >= objects
}

/// Below this many written objects the rebuild's fixed cost (enabling
/// the features, the lock, the map's write) outweighs the saving.
const DEFERRED_MAP_MIN_OBJECTS: u64 = 64;
/// The rebuild stats every object of the image, written or not.
const DEFERRED_MAP_MAX_SPARSENESS: u64 = 8;

/// librbd's version, e.g. `(1, 16, 0)` on Pacific; fails when the libraries
/// are missing (with the install hint).
pub fn librbd_version() -> Result<(i32, i32, i32)> {
    ffi::rbd_version().map_err(crate::error::libs_missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_features_fall_back_and_striping_adds_stripingv2() {
        let plain = CreateOptions::default();
        assert_eq!(plain.feature_sets()[0], PREFERRED);
        assert_eq!(*plain.feature_sets().last().unwrap(), LAYERING);
        let striped = CreateOptions {
            stripe_unit: Some(65536),
            stripe_count: Some(4),
            ..CreateOptions::default()
        };
        assert!(striped.feature_sets().iter().all(|f| f & STRIPINGV2 != 0));
        let explicit = CreateOptions {
            features: Some(LAYERING),
            ..CreateOptions::default()
        };
        assert_eq!(explicit.feature_sets(), vec![LAYERING]);
    }
}
