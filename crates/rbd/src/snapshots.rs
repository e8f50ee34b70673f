//! RBD snapshots (`rbd_snap_*`) as the image model's [`Snapshots`].

use std::time::{Duration, SystemTime};

use blockback_core::image::{Image, ImageError, Result, SnapshotInfo, Snapshots};

use crate::cluster::cstr;
use crate::error::from_errno;
use crate::ffi::SnapEntry;
use crate::image::{describe, RbdImage};
use crate::spec::require_name;

impl RbdImage {
    fn snap_what(&self, snap: &str) -> String {
        format!("snapshot {}", describe(&self.pool, &self.name, Some(snap)))
    }

    /// Validates `snap` and runs `op` on it, naming it in errors.
    fn with_snap(
        &self,
        snap: &str,
        op: impl FnOnce(&std::ffi::CStr) -> std::result::Result<(), crate::ffi::Errno>,
    ) -> Result<()> {
        let what = self.snap_what(snap);
        require_name("snapshot", snap, || what.clone())?;
        let c = cstr(snap, &what)?;
        op(&c).map_err(|e| from_errno(e, what))
    }

    fn info(&self, s: SnapEntry) -> Result<SnapshotInfo> {
        let (secs, nanos) = self
            .handle()?
            .snap_timestamp(s.id)
            .map_err(|e| from_errno(e, self.snap_what(&s.name)))?;
        Ok(SnapshotInfo {
            name: s.name,
            size: s.size,
            timestamp: timestamp(secs, nanos),
        })
    }

    /// Whether snapshot `name` exists.
    pub fn snapshot_exists(&self, name: &str) -> Result<bool> {
        let what = self.snap_what(name);
        require_name("snapshot", name, || what.clone())?;
        let c = cstr(name, &what)?;
        self.handle()?
            .snap_exists(&c)
            .map_err(|e| from_errno(e, what))
    }
}

/// Seconds and nanoseconds since the epoch; pre-epoch clocks clamp to it.
fn timestamp(secs: i64, nanos: i64) -> SystemTime {
    let secs = u64::try_from(secs).unwrap_or(0);
    let nanos = u32::try_from(nanos).unwrap_or(0).min(999_999_999);
    SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
}

impl Snapshots for RbdImage {
    fn list(&self) -> Result<Vec<SnapshotInfo>> {
        let mut snaps = self.handle()?.snap_list().map_err(|e| self.err(e))?;
        // Snapshot ids grow with creation: id order is age order.
        snaps.sort_by_key(|s| s.id);
        snaps.into_iter().map(|s| self.info(s)).collect()
    }

    fn create(&self, name: &str) -> Result<()> {
        if self.snap.is_some() {
            return Err(ImageError::ReadOnly {
                what: self.describe(),
            });
        }
        self.flush()?;
        let handle = self.handle()?;
        self.with_snap(name, |c| handle.snap_create(c, self.quiesce_snapshots))
    }

    fn remove(&self, name: &str) -> Result<()> {
        let handle = self.handle()?;
        self.with_snap(name, |c| handle.snap_remove(c))
    }

    fn open_snapshot(&self, name: &str) -> Result<Box<dyn Image>> {
        let img = RbdImage::open(
            &self.io,
            &self.pool,
            &self.name,
            Some(name),
            true,
            self.queue_depth,
        )?;
        Ok(Box::new(img))
    }

    fn rollback(&self, name: &str) -> Result<()> {
        if self.snap.is_some() {
            return Err(ImageError::ReadOnly {
                what: self.describe(),
            });
        }
        let handle = self.handle()?;
        self.with_snap(name, |c| handle.snap_rollback(c))
    }
}
