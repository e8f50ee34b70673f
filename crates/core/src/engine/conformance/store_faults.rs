//! A store whose base snapshots fail: what a backup leaves when its base
//! snapshot fails after its transfer (and after the objects stored beside
//! the snapshot).

use super::delegate::delegate_image_io;
use super::faults::INJECTED;
use crate::image::{
    Extent, Image, ImageError, ImageMetadata, Pool, Result, SnapshotInfo, Snapshots,
};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// `inner`, but the first `failing` snapshot creations on its images fail.
pub(super) struct SnapFailingPool<'a> {
    inner: &'a dyn Pool,
    failing: Arc<AtomicU32>,
}

impl<'a> SnapFailingPool<'a> {
    pub fn new(inner: &'a dyn Pool, failing: u32) -> Self {
        SnapFailingPool {
            inner,
            failing: Arc::new(AtomicU32::new(failing)),
        }
    }

    /// Snapshot creations still to fail.
    pub fn left(&self) -> u32 {
        self.failing.load(Ordering::SeqCst)
    }
}

impl Pool for SnapFailingPool<'_> {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn list(&self) -> Result<Vec<String>> {
        self.inner.list()
    }
    fn create(&self, name: &str, size: u64) -> Result<()> {
        self.inner.create(name, size)
    }
    fn open(&self, name: &str) -> Result<Box<dyn Image>> {
        Ok(Box::new(SnapFailingImage {
            inner: self.inner.open(name)?,
            failing: self.failing.clone(),
        }))
    }
    fn open_read_only(&self, name: &str, snap: Option<&str>) -> Result<Box<dyn Image>> {
        self.inner.open_read_only(name, snap)
    }
    fn remove(&self, name: &str) -> Result<()> {
        self.inner.remove(name)
    }
    fn usage(&self) -> Result<Option<u64>> {
        self.inner.usage()
    }
    fn reclaim_unpublished(&self) -> Result<()> {
        self.inner.reclaim_unpublished()
    }
    fn put_object(&self, name: &str, data: &[u8]) -> Result<()> {
        self.inner.put_object(name, data)
    }
    fn get_object(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.inner.get_object(name)
    }
    fn remove_object(&self, name: &str) -> Result<()> {
        self.inner.remove_object(name)
    }
}

struct SnapFailingImage {
    inner: Box<dyn Image>,
    failing: Arc<AtomicU32>,
}

impl Image for SnapFailingImage {
    delegate_image_io!(inner);
    fn write_digested(&self, offset: u64, data: &[u8], digests: &[[u8; 32]]) -> Result<()> {
        self.inner.write_digested(offset, data, digests)
    }
    fn snapshots(&self) -> Option<&dyn Snapshots> {
        self.inner.snapshots().map(|_| self as &dyn Snapshots)
    }
    fn metadata(&self) -> Option<&dyn ImageMetadata> {
        self.inner.metadata()
    }
    fn io_granularity(&self) -> u64 {
        self.inner.io_granularity()
    }
    fn queue_depth(&self) -> usize {
        self.inner.queue_depth()
    }
    fn dedups_writes(&self) -> bool {
        self.inner.dedups_writes()
    }
    fn changed_since(&self, from: &str) -> Result<bool> {
        self.inner.changed_since(from)
    }
    fn known_damage(&self) -> Result<Vec<Extent>> {
        self.inner.known_damage()
    }
}

impl SnapFailingImage {
    fn snaps(&self) -> Result<&dyn Snapshots> {
        self.inner
            .snapshots()
            .ok_or_else(|| ImageError::Unsupported {
                what: self.inner.describe(),
                op: "snapshots",
            })
    }
}

impl Snapshots for SnapFailingImage {
    fn list(&self) -> Result<Vec<SnapshotInfo>> {
        self.snaps()?.list()
    }
    fn create(&self, name: &str) -> Result<()> {
        let fails = self
            .failing
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        match fails {
            true => Err(ImageError::Invalid {
                what: format!("snapshot {name} of {}", self.inner.describe()),
                why: INJECTED.into(),
            }),
            false => self.snaps()?.create(name),
        }
    }
    fn remove(&self, name: &str) -> Result<()> {
        self.snaps()?.remove(name)
    }
    fn rollback(&self, name: &str) -> Result<()> {
        self.snaps()?.rollback(name)
    }
    fn open_snapshot(&self, name: &str) -> Result<Box<dyn Image>> {
        self.snaps()?.open_snapshot(name)
    }
}
