//! Injected read failures, to test what a failed transfer leaves behind.

use crate::image::{ExtentVisitor, Image, ImageError, Result, SnapshotInfo, Snapshots};
use std::ops::Range;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

pub(super) const INJECTED: &str = "injected read failure";

/// Whether an error message carries the injected failure.
pub(super) fn is_injected(message: &str) -> bool {
    message.contains(INJECTED)
}

enum Inner<'a> {
    Borrowed(&'a dyn Image),
    Owned(Box<dyn Image>),
}

/// An image whose read number `reads_ok + 1` fails, once. As a backup
/// source (`snapshots_failing`), the snapshot handles it opens fail that
/// way instead, for the first `broken` of them (one per transfer attempt).
pub(super) struct Faulty<'a> {
    inner: Inner<'a>,
    reads_left: Option<AtomicI64>,
    broken_snapshots: Option<AtomicU32>,
    reads_ok: i64,
}

impl<'a> Faulty<'a> {
    pub fn snapshots_failing(inner: &'a dyn Image, broken: u32, reads_ok: i64) -> Self {
        Faulty {
            inner: Inner::Borrowed(inner),
            reads_left: None,
            broken_snapshots: Some(AtomicU32::new(broken)),
            reads_ok,
        }
    }
}

impl Faulty<'static> {
    pub fn reads_failing(inner: Box<dyn Image>, reads_ok: i64) -> Self {
        Faulty {
            inner: Inner::Owned(inner),
            reads_left: Some(AtomicI64::new(reads_ok)),
            broken_snapshots: None,
            reads_ok,
        }
    }
}

impl Faulty<'_> {
    fn image(&self) -> &dyn Image {
        match &self.inner {
            Inner::Borrowed(i) => *i,
            Inner::Owned(i) => i.as_ref(),
        }
    }

    fn snaps(&self) -> Result<&dyn Snapshots> {
        self.image()
            .snapshots()
            .ok_or_else(|| ImageError::Unsupported {
                what: self.image().describe(),
                op: "snapshots",
            })
    }
}

impl Image for Faulty<'_> {
    fn describe(&self) -> String {
        self.image().describe()
    }
    fn size(&self) -> Result<u64> {
        self.image().size()
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        if let Some(left) = &self.reads_left {
            if left.fetch_sub(1, Ordering::SeqCst) == 0 {
                return Err(ImageError::Invalid {
                    what: self.describe(),
                    why: INJECTED.into(),
                });
            }
        }
        self.image().read_at(offset, buf)
    }
    fn changed_extents(
        &self,
        from: Option<&str>,
        range: Range<u64>,
        visit: &mut ExtentVisitor<'_>,
    ) -> Result<()> {
        self.image().changed_extents(from, range, visit)
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.image().write_at(offset, data)
    }
    fn write_zeroes(&self, offset: u64, len: u64) -> Result<()> {
        self.image().write_zeroes(offset, len)
    }
    fn flush(&self) -> Result<()> {
        self.image().flush()
    }
    fn resize(&self, size: u64) -> Result<()> {
        self.image().resize(size)
    }
    fn snapshots(&self) -> Option<&dyn Snapshots> {
        self.broken_snapshots
            .as_ref()
            .map(|_| self as &dyn Snapshots)
    }
}

impl Snapshots for Faulty<'_> {
    fn list(&self) -> Result<Vec<SnapshotInfo>> {
        self.snaps()?.list()
    }
    fn create(&self, name: &str) -> Result<()> {
        self.snaps()?.create(name)
    }
    fn remove(&self, name: &str) -> Result<()> {
        self.snaps()?.remove(name)
    }
    fn rollback(&self, name: &str) -> Result<()> {
        self.snaps()?.rollback(name)
    }
    fn open_snapshot(&self, name: &str) -> Result<Box<dyn Image>> {
        let inner = self.snaps()?.open_snapshot(name)?;
        let broken = self.broken_snapshots.as_ref().is_some_and(|b| {
            b.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        });
        Ok(match broken {
            true => Box::new(Faulty::reads_failing(inner, self.reads_ok)),
            false => inner,
        })
    }
}
