//! One open RBD image (HEAD or a snapshot) as an [`Image`].

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use blockback_core::image::{
    check_range, ExtentVisitor, Image, ImageError, ImageMetadata, Result, Snapshots,
};

use crate::cluster::cstr;
use crate::diff;
use crate::error::from_errno;
use crate::ffi::{AioOp, Errno, IoCtx, RbdHandle};
use crate::pool::is_unsupported;
use crate::slot::{HandleRef, HandleSlot, Reopen};
use crate::spare::Spare;
use crate::spec::require_name;

/// librbd returns lengths as `int` internally: keep each call well below.
const MAX_IO: usize = 1 << 30;

/// Requests kept in flight per image unless configured otherwise
/// ([`crate::RbdPool::with_queue_depth`]). Each waits a network round trip
/// to the OSDs (0.2-2 ms on a real cluster), so throughput grows with the
/// depth: `rbd bench` writes 8x faster at 16 than at 1 under a 0-2 ms
/// delay. `rbd import` keeps 10.
pub const DEFAULT_QUEUE_DEPTH: usize = 16;

/// An open image. Thread-safe: every method may run on several threads at
/// once (librbd serialises internally).
pub struct RbdImage {
    slot: HandleSlot,
    pub(crate) io: Arc<IoCtx>,
    pub(crate) pool: String,
    pub(crate) name: String,
    pub(crate) snap: Option<String>,
    read_only: bool,
    /// Requests the engine keeps in flight on this image (at least 1).
    pub(crate) queue_depth: usize,
    /// Whether a snapshot asks the image's users to quiesce first.
    pub(crate) quiesce_snapshots: bool,
    /// Features the image was created without, to be enabled by the next
    /// flush (see [`crate::RbdPool`]'s `create_to_fill`).
    deferred_features: AtomicU64,
    /// A handle opened for reading a snapshot being made
    /// ([`Snapshots::prepare_open`]), until `open_snapshot` takes it.
    pub(crate) spare: Spare,
}

impl RbdImage {
    pub(crate) fn open(
        io: &Arc<IoCtx>,
        pool: &str,
        name: &str,
        snap: Option<&str>,
        read_only: bool,
        queue_depth: usize,
    ) -> Result<RbdImage> {
        let what = describe(pool, name, snap);
        require_name("image", name, || what.clone())?;
        if let Some(s) = snap {
            require_name("snapshot", s, || what.clone())?;
        }
        let c_name = cstr(name, &what)?;
        let c_snap = snap.map(|s| cstr(s, &what)).transpose()?;
        let handle = RbdHandle::open(io, &c_name, c_snap.as_deref(), read_only)
            .map_err(|e| from_errno(e, format!("image {what}")))?;
        let reopen = Reopen {
            io: Arc::clone(io),
            name: c_name,
            snap: c_snap,
            read_only,
        };
        Ok(RbdImage::with_handle(handle, reopen, pool, queue_depth))
    }

    /// The image `handle` has open, as `reopen` would open it again.
    pub(crate) fn with_handle(
        handle: RbdHandle,
        reopen: Reopen,
        pool: &str,
        queue_depth: usize,
    ) -> RbdImage {
        let read_only = reopen.read_only || reopen.snap.is_some();
        RbdImage {
            io: Arc::clone(&reopen.io),
            pool: pool.into(),
            name: reopen.name.to_string_lossy().into_owned(),
            snap: reopen
                .snap
                .as_ref()
                .map(|s| s.to_string_lossy().into_owned()),
            slot: HandleSlot::new(handle, reopen),
            read_only,
            queue_depth: queue_depth.max(1),
            quiesce_snapshots: true,
            deferred_features: AtomicU64::new(0),
            spare: Spare::default(),
        }
    }

    /// Makes the next [`Image::flush`] enable `features` (object-map and
    /// fast-diff, which an image being filled was created without) and
    /// rebuild the object map.
    pub(crate) fn deferring_features(self, features: u64) -> Self {
        self.deferred_features.store(features, Ordering::SeqCst);
        self
    }

    /// Enables the deferred features, once: object-map first, then its
    /// map rebuilt from the objects written (until then it is flagged
    /// invalid, which librbd's diffs treat as "everything changed").
    /// librbd builds that refuse the features leave the image without
    /// them, as creating it with them would have been refused.
    fn enable_deferred_features(&self) -> Result<()> {
        let features = self.deferred_features.swap(0, Ordering::SeqCst);
        if features == 0 {
            return Ok(());
        }
        let handle = self.handle()?;
        match handle.update_features(features, true) {
            Ok(()) => {}
            Err(e) if is_unsupported(e) => {
                tracing::debug!(
                    "{}: features {features:#x} refused ({e:?})",
                    self.describe()
                );
                return Ok(());
            }
            Err(e) => return Err(self.err(e)),
        }
        handle.rebuild_object_map().map_err(|e| self.err(e))
    }

    /// Sets whether [`Snapshots::create`] asks the image's users to quiesce
    /// first (see [`crate::RbdPool::without_snapshot_quiesce`]).
    pub(crate) fn quiescing_snapshots(mut self, quiesce: bool) -> Self {
        self.quiesce_snapshots = quiesce;
        self
    }

    /// The librbd handle, reopened when [`Image::release`] closed it.
    pub(crate) fn handle(&self) -> Result<HandleRef<'_>> {
        self.slot.get().map_err(|e| self.err(e))
    }

    pub fn pool(&self) -> &str {
        &self.pool
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The snapshot this handle is at, `None` for HEAD.
    pub fn snapshot(&self) -> Option<&str> {
        self.snap.as_deref()
    }

    /// The image's feature bits (see [`crate::features`]).
    pub fn features(&self) -> Result<u64> {
        self.handle()?.features().map_err(|e| self.err(e))
    }

    /// Object size in bytes (1 << order).
    pub fn object_size(&self) -> Result<u64> {
        Ok(self
            .handle()?
            .layout()
            .map_err(|e| self.err(e))?
            .object_size)
    }

    /// Whether changed_extents takes the hybrid path (fast-diff enabled and
    /// its object map valid at this handle's point).
    pub fn uses_fast_diff(&self) -> Result<bool> {
        diff::fast_diff_usable(&*self.handle()?).map_err(|e| self.err(e))
    }

    /// What the fast-diff object maps alone say about changes since
    /// `from_snap` (what `changed_since` asks first); `None` when they
    /// cannot tell and librbd's diff decides. For tests and diagnostics.
    pub fn changed_since_by_object_maps(&self, from_snap: &str) -> Result<Option<bool>> {
        crate::objectmap::changed_since(self, from_snap)
    }

    /// The snapshot a handle was prepared for ([`Snapshots::prepare_open`])
    /// and not yet taken by `open_snapshot`. For tests and diagnostics.
    pub fn prepared_snapshot_read(&self) -> Option<String> {
        self.spare.snapshot()
    }

    pub(crate) fn err(&self, e: Errno) -> ImageError {
        from_errno(e, self.describe())
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.read_only {
            return Err(ImageError::ReadOnly {
                what: self.describe(),
            });
        }
        Ok(())
    }

    fn check(&self, offset: u64, len: usize) -> Result<()> {
        let size = self.size()?;
        check_range(&|| self.describe(), offset, len as u64, size)
    }

    fn short(&self, op: &str, offset: u64, want: usize, got: usize) -> ImageError {
        ImageError::Backend {
            what: self.describe(),
            msg: format!("short {op} at {offset}: {got} of {want} bytes"),
        }
    }

    /// Runs `io` (a read or write) on `len` bytes from `offset` in pieces
    /// of at most [`MAX_IO`], one after another; `io` gets the handle, the
    /// piece's offset in the image and its range in the caller's buffer,
    /// and must do the whole piece.
    fn in_pieces(
        &self,
        op: &str,
        offset: u64,
        len: usize,
        mut io: impl FnMut(&RbdHandle, u64, Range<usize>) -> std::result::Result<usize, Errno>,
    ) -> Result<()> {
        for start in (0..len).step_by(MAX_IO) {
            let piece = start..len.min(start + MAX_IO);
            let (at, want) = (offset + start as u64, piece.len());
            let handle = self.handle()?;
            let done = io(&handle, at, piece).map_err(|e| self.err(e))?;
            if done != want {
                return Err(self.short(op, at, want, done));
            }
        }
        Ok(())
    }

    /// Reads several ranges with all requests in flight at once (librbd aio);
    /// each buffer is filled completely or the call fails.
    pub fn read_many(&self, reads: &mut [(u64, &mut [u8])]) -> Result<()> {
        let mut ops = Vec::with_capacity(reads.len());
        for (offset, buf) in reads.iter_mut() {
            self.check(*offset, buf.len())?;
            ops.push(AioOp::Read {
                offset: *offset,
                buf,
            });
        }
        self.handle()?.aio_batch(&mut ops).map_err(|e| self.err(e))
    }

    /// Writes several ranges with all requests in flight at once (librbd aio).
    pub fn write_many(&self, writes: &[(u64, &[u8])]) -> Result<()> {
        self.check_writable()?;
        let mut ops = Vec::with_capacity(writes.len());
        for &(offset, data) in writes {
            self.check(offset, data.len())?;
            ops.push(AioOp::Write { offset, data });
        }
        self.handle()?.aio_batch(&mut ops).map_err(|e| self.err(e))
    }
}

impl std::fmt::Debug for RbdImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RbdImage({})", self.describe())
    }
}

/// `pool/image` or `pool/image@snap`, as the rbd CLI prints it.
pub(crate) fn describe(pool: &str, name: &str, snap: Option<&str>) -> String {
    match snap {
        Some(s) => format!("{pool}/{name}@{s}"),
        None => format!("{pool}/{name}"),
    }
}

impl Image for RbdImage {
    /// Each request waits a network round trip to the OSDs: keep several
    /// going (see [`DEFAULT_QUEUE_DEPTH`]).
    fn queue_depth(&self) -> usize {
        self.queue_depth
    }

    fn describe(&self) -> String {
        describe(&self.pool, &self.name, self.snap.as_deref())
    }

    fn size(&self) -> Result<u64> {
        self.handle()?.size().map_err(|e| self.err(e))
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.check(offset, buf.len())?;
        self.in_pieces("read", offset, buf.len(), |h, at, piece| {
            h.read(at, &mut buf[piece])
        })
    }

    fn changed_extents(
        &self,
        from_snap: Option<&str>,
        range: Range<u64>,
        visit: &mut ExtentVisitor<'_>,
    ) -> Result<()> {
        diff::changed_extents(self, from_snap, range, visit)
    }

    fn changed_since(&self, from: &str) -> Result<bool> {
        diff::changed_since(self, from)
    }

    fn changed_since_is_cheap(&self) -> bool {
        self.uses_fast_diff().unwrap_or(false)
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.check_writable()?;
        self.check(offset, data.len())?;
        self.in_pieces("write", offset, data.len(), |h, at, piece| {
            h.write(at, &data[piece])
        })
    }

    fn write_zeroes(&self, offset: u64, len: u64) -> Result<()> {
        self.check_writable()?;
        let size = self.size()?;
        check_range(&|| self.describe(), offset, len, size)?;
        let (mut pos, end) = (offset, offset + len);
        while pos < end {
            let step = usize::try_from(end - pos).unwrap_or(MAX_IO).min(MAX_IO);
            // Never rbd_discard: it is a no-op below 64 KiB and leaves old bytes.
            self.handle()?
                .write_zeroes(pos, step)
                .map_err(|e| self.err(e))?;
            pos += step as u64;
        }
        Ok(())
    }

    fn flush(&self) -> Result<()> {
        if self.read_only {
            return Ok(());
        }
        self.handle()?.flush().map_err(|e| self.err(e))?;
        self.enable_deferred_features()
    }

    fn resize(&self, size: u64) -> Result<()> {
        self.check_writable()?;
        self.handle()?.resize(size).map_err(|e| self.err(e))
    }

    fn snapshots(&self) -> Option<&dyn Snapshots> {
        Some(self)
    }

    fn release(&self) {
        // Each close waits for its own round trips (the watch, the lock).
        std::thread::scope(|s| {
            s.spawn(|| self.spare.clear());
            self.slot.release();
        });
    }

    fn metadata(&self) -> Option<&dyn ImageMetadata> {
        Some(self)
    }
}
