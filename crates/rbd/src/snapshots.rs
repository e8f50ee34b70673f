//! RBD snapshots (`rbd_snap_*`) as the image model's [`Snapshots`].

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use blockback_core::image::{Image, ImageError, Result, SnapshotInfo, Snapshots};

use crate::cluster::cstr;
use crate::error::from_errno;
use crate::ffi::{RbdHandle, SnapEntry};
use crate::image::{describe, RbdImage};
use crate::slot::Reopen;
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

impl RbdImage {
    /// A handle of HEAD for the spare (`None`, noted, when it cannot be
    /// opened: the snapshot is then opened as usual). Opened writable,
    /// though only ever read: librbd's read-only handles register no
    /// watch, so they never hear of the new snapshot and cannot be set to
    /// it; a writable one that writes nothing never takes the lock.
    fn open_spare(&self) -> Option<RbdHandle> {
        let what = describe(&self.pool, &self.name, None);
        let c_name = cstr(&self.name, &what).ok()?;
        RbdHandle::open(&self.io, &c_name, None, false)
            .inspect_err(|e| tracing::debug!("spare handle of {what} not opened: {e:?}"))
            .ok()
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
        let what = self.snap_what(name);
        require_name("snapshot", name, || what.clone())?;
        let c_snap = cstr(name, &what)?;
        if let Some(handle) = self.spare.take_at(name, &c_snap) {
            let reopen = Reopen {
                io: Arc::clone(&self.io),
                name: cstr(&self.name, &what)?,
                snap: Some(c_snap),
                read_only: true,
            };
            let img = RbdImage::with_handle(handle, reopen, &self.pool, self.queue_depth);
            return Ok(Box::new(img));
        }
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

    /// Opens the spare handle `open_snapshot(name)` then takes
    /// (src/spare.rs); made beside the snapshot's creation, its open costs
    /// nothing on the way.
    fn prepare_open(&self, name: &str) {
        if self.snap.is_none() {
            if let Some(handle) = self.open_spare() {
                self.spare.put(name, handle);
            }
        }
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
