//! The block-image model.
//!
//! One narrow trait family, modelled on librbd so that the RBD backend fits it
//! without translation:
//! - [`Image`]: one point in time of one image (HEAD, or a snapshot opened
//!   read-only): size, positional read/write, write-zeroes, flush, resize and
//!   the changed extents between a snapshot (or nothing) and this point.
//! - [`Snapshots`]: the snapshot operations of an image that has them.
//! - [`Pool`]: a container of named images (a local store, an RBD pool).
//!
//! # Contract
//! - Every method takes `&self` and may be called from several threads at
//!   once; backends serialise internally where they must. The engine keeps
//!   several requests in flight by calling from several threads.
//! - `read_at` fills the whole buffer or fails; reading past `size()` fails
//!   with [`ImageError::Invalid`].
//! - `write_zeroes` makes the range read back as zeros. It never degrades to a
//!   discard that could leave old bytes behind.
//! - Writes through a handle opened at a snapshot fail with
//!   [`ImageError::ReadOnly`].
//! - `changed_extents(from, range, visit)` reports, in ascending order and
//!   without overlap, every extent of `range` that may differ between `from`
//!   and this handle's point; `from == None` means "from nothing", i.e. the
//!   allocated extents. Extents flagged [`ExtentKind::Zero`] read as zeros at
//!   this point. Reporting an unchanged extent is allowed (it costs a copy),
//!   missing a changed one is not.
//! - A flushed write is durable: it survives a crash of the process.

pub mod cow;
mod error;
mod extent;
pub mod file;

#[doc(hidden)]
pub mod conformance;

pub use error::{ImageError, Result};
pub use extent::{Extent, ExtentKind};

use std::ops::Range;
use std::time::SystemTime;

/// One snapshot of an image, as listed by [`Snapshots::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub name: String,
    /// The image size at the time the snapshot was taken.
    pub size: u64,
    pub timestamp: SystemTime,
}

/// Receives changed extents; returning an error stops the iteration.
pub type ExtentVisitor<'a> = dyn FnMut(Extent) -> Result<()> + 'a;

/// One point in time of one block image (see the module docs for the contract).
pub trait Image: Send + Sync {
    /// A name for messages: a path, `store:image@snap`, `pool/image@snap`.
    fn describe(&self) -> String;
    fn size(&self) -> Result<u64>;
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;
    fn changed_extents(
        &self,
        from_snap: Option<&str>,
        range: Range<u64>,
        visit: &mut ExtentVisitor<'_>,
    ) -> Result<()>;
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()>;
    /// `write_at` for a caller that already hashed the data: `digests` are
    /// the plain BLAKE3 digests of its consecutive
    /// [`crate::checksum::CHECKSUM_BLOCK`]-sized blocks (`offset` is
    /// block-aligned). Content-addressed backends reuse them.
    fn write_digested(&self, offset: u64, data: &[u8], digests: &[[u8; 32]]) -> Result<()> {
        let _ = digests;
        self.write_at(offset, data)
    }
    fn write_zeroes(&self, offset: u64, len: u64) -> Result<()>;
    fn flush(&self) -> Result<()>;
    fn resize(&self, size: u64) -> Result<()>;
    /// The snapshot operations, or `None` for backends without snapshots
    /// (raw files and block devices).
    fn snapshots(&self) -> Option<&dyn Snapshots>;
    /// The image's key/value metadata, or `None` for backends without it
    /// (raw files and block devices).
    fn metadata(&self) -> Option<&dyn ImageMetadata> {
        None
    }
    /// The unit in which this backend stores data: writers that hand it
    /// whole aligned units (zeros included) avoid read-modify-write.
    fn io_granularity(&self) -> u64 {
        4096
    }
    /// How many requests this backend wants in flight to reach its speed:
    /// local files and stores are CPU-bound (the engine's default suffices),
    /// network backends are latency-bound.
    fn queue_depth(&self) -> usize {
        1
    }
    /// Whether writing data this image already holds costs nothing (a
    /// content-addressed store keeps one copy, and checks the copy it
    /// reuses): a writer whose source cannot say what changed may rewrite
    /// everything. Backends that store every write (RBD: a whole new
    /// object per snapshot) say no, and get only the blocks that changed.
    fn dedups_writes(&self) -> bool {
        false
    }
    /// Whether the image may differ from its snapshot `from`: `false` only
    /// when nothing changed since. Backends with a cheap coarse answer
    /// (RBD: the fast-diff object maps, whole objects) give it instead of
    /// a byte-exact diff.
    fn changed_since(&self, from: &str) -> Result<bool> {
        any_extent(self, Some(from), |_| true)
    }
    /// Whether [`Image::changed_since`] costs about the same whatever the
    /// volume's size (RBD with usable fast-diff object maps: a few small
    /// reads), so a caller may ask it speculatively of a large volume.
    fn changed_since_is_cheap(&self) -> bool {
        false
    }
    /// Extents whose stored data is known to be bad (a content-addressed
    /// store whose only copy of a chunk this point uses was quarantined or
    /// lies in an unreadable pack): a writer that keeps the rest as it is
    /// must write these again. Cheap when the store knows no damage;
    /// backends that do not track damage report none.
    fn known_damage(&self) -> Result<Vec<Extent>> {
        Ok(Vec::new())
    }
    /// The caller is done with the image for now: a backend that holds
    /// something on its cluster for an open image (RBD: the exclusive lock
    /// and the watch, a few round trips to let go) lets go now, so that
    /// closing overlaps the caller's other work instead of following it.
    /// A later call opens it again.
    fn release(&self) {}
}

/// Snapshot operations of an image (librbd's `rbd_snap_*`).
pub trait Snapshots: Send + Sync {
    /// All snapshots, oldest first.
    fn list(&self) -> Result<Vec<SnapshotInfo>>;
    /// Flushes, then records the current HEAD under `name` (fails with
    /// [`ImageError::Exists`] when the name is taken).
    fn create(&self, name: &str) -> Result<()>;
    fn remove(&self, name: &str) -> Result<()>;
    /// Opens the image as it was at snapshot `name`, read-only.
    fn open_snapshot(&self, name: &str) -> Result<Box<dyn Image>>;
    /// Says that `open_snapshot(name)` follows once snapshot `name` is
    /// made (it may be in the making): a backend may open what it can
    /// beforehand (RBD: a handle, later set to the snapshot). Nothing by
    /// default; a preparation that fails or goes unused changes nothing.
    fn prepare_open(&self, name: &str) {
        let _ = name;
    }
    /// Makes HEAD equal to snapshot `name` again (`rbd snap rollback`).
    fn rollback(&self, name: &str) -> Result<()>;
}

/// Key/value metadata kept with an image (librbd's `rbd_metadata_*`,
/// `rbd image-meta`).
pub trait ImageMetadata: Send + Sync {
    /// The value of `key`, or `None` when it is not set.
    fn get(&self, key: &str) -> Result<Option<String>>;
    /// Sets `key` to `value`, replacing any earlier value.
    fn set(&self, key: &str, value: &str) -> Result<()>;
}

/// A container of named images: a local store, an RBD pool.
pub trait Pool: Send + Sync {
    fn describe(&self) -> String;
    fn list(&self) -> Result<Vec<String>>;
    fn exists(&self, name: &str) -> Result<bool> {
        Ok(self.list()?.iter().any(|n| n == name))
    }
    /// Creates an empty (all-zero) image; [`ImageError::Exists`] if taken.
    fn create(&self, name: &str, size: u64) -> Result<()>;
    /// Creates an empty image about to receive `data_bytes` of writes and
    /// opens it read-write; the image is whole once flushed. A backend may
    /// create it in a form that takes those writes faster and finish it in
    /// the flush (RBD: the object map built once at the end instead of
    /// updated before each new object's first write).
    fn create_to_fill(&self, name: &str, size: u64, data_bytes: u64) -> Result<Box<dyn Image>> {
        let _ = data_bytes;
        self.create(name, size)?;
        self.open(name).inspect_err(|_| {
            let _ = self.remove(name);
        })
    }
    /// Opens HEAD read-write.
    fn open(&self, name: &str) -> Result<Box<dyn Image>>;
    /// Opens HEAD or snapshot `snap` read-only.
    fn open_read_only(&self, name: &str, snap: Option<&str>) -> Result<Box<dyn Image>>;
    /// Removes an image; [`ImageError::HasSnapshots`] while it has snapshots,
    /// [`ImageError::Busy`] while it is open elsewhere (where detectable).
    fn remove(&self, name: &str) -> Result<()>;
    /// Bytes the pool occupies on its medium, where it can tell cheaply.
    fn usage(&self) -> Result<Option<u64>> {
        Ok(None)
    }
    /// Frees what this process wrote that no published version uses (the
    /// data of a failed backup, once its images are removed or rolled
    /// back); call it while no handle of this process writes. Backends
    /// that free space as images go (RBD) have nothing to do.
    fn reclaim_unpublished(&self) -> Result<()> {
        Ok(())
    }
    /// Stores object `name` (small write-once data beside the images, e.g.
    /// `backup.<id>.meta`). Fails with [`ImageError::Exists`] when the
    /// object is there (its content is left alone); never leaves a partial
    /// object visible. Names and sizes follow [`crate::objects`]
    /// (`Invalid` naming the object otherwise).
    fn put_object(&self, name: &str, data: &[u8]) -> Result<()> {
        let _ = data;
        Err(crate::objects::unsupported(
            &self.describe(),
            name,
            "put_object",
        ))
    }
    /// The content of object `name`, or `None` when there is none.
    fn get_object(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Err(crate::objects::unsupported(
            &self.describe(),
            name,
            "get_object",
        ))
    }
    /// Removes object `name`; a missing object is not an error.
    fn remove_object(&self, name: &str) -> Result<()> {
        Err(crate::objects::unsupported(
            &self.describe(),
            name,
            "remove_object",
        ))
    }
}

/// Checks `offset..offset+len` against `size`, naming `what` on failure.
pub fn check_range(what: &dyn Fn() -> String, offset: u64, len: u64, size: u64) -> Result<()> {
    match offset.checked_add(len) {
        Some(end) if end <= size => Ok(()),
        _ => Err(ImageError::Invalid {
            what: what(),
            why: format!("range {offset}+{len} is beyond the image size {size}"),
        }),
    }
}

/// Whether `image` reports, since `from_snap`, an extent matching `pred`;
/// stops at the first one.
pub fn any_extent<I: Image + ?Sized>(
    image: &I,
    from_snap: Option<&str>,
    pred: impl Fn(&Extent) -> bool,
) -> Result<bool> {
    const FOUND: &str = "stop: an extent matched";
    let size = image.size()?;
    let walk = image.changed_extents(from_snap, 0..size, &mut |e| match pred(&e) {
        true => Err(ImageError::Invalid {
            what: String::new(),
            why: FOUND.into(),
        }),
        false => Ok(()),
    });
    match walk {
        Err(ImageError::Invalid { why, .. }) if why == FOUND => Ok(true),
        Err(e) => Err(e),
        Ok(()) => Ok(false),
    }
}
