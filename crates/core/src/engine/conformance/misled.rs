//! A source whose first look at what changed misses a change, as when a
//! write lands right after the look and before the backup's snapshot.

use crate::image::{ExtentVisitor, Image, Result, Snapshots};
use std::ops::Range;
use std::sync::atomic::{AtomicU32, Ordering};

/// `inner`, but its first `changed_since` answers "unchanged" whatever the
/// truth; later ones answer truly.
pub(super) struct Misled<'a> {
    inner: &'a dyn Image,
    looks: AtomicU32,
}

impl<'a> Misled<'a> {
    pub fn new(inner: &'a dyn Image) -> Self {
        Misled {
            inner,
            looks: AtomicU32::new(0),
        }
    }

    /// How many times the backup asked what changed.
    pub fn looks(&self) -> u32 {
        self.looks.load(Ordering::SeqCst)
    }
}

impl Image for Misled<'_> {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn size(&self) -> Result<u64> {
        self.inner.size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.inner.read_at(offset, buf)
    }
    fn changed_extents(
        &self,
        from: Option<&str>,
        range: Range<u64>,
        visit: &mut ExtentVisitor<'_>,
    ) -> Result<()> {
        self.inner.changed_extents(from, range, visit)
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.inner.write_at(offset, data)
    }
    fn write_zeroes(&self, offset: u64, len: u64) -> Result<()> {
        self.inner.write_zeroes(offset, len)
    }
    fn flush(&self) -> Result<()> {
        self.inner.flush()
    }
    fn resize(&self, size: u64) -> Result<()> {
        self.inner.resize(size)
    }
    fn snapshots(&self) -> Option<&dyn Snapshots> {
        self.inner.snapshots()
    }
    fn changed_since(&self, from: &str) -> Result<bool> {
        match self.looks.fetch_add(1, Ordering::SeqCst) {
            0 => Ok(false),
            _ => self.inner.changed_since(from),
        }
    }
}
