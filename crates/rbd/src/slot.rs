//! An image's librbd handle, which [`Image::release`] may close before the
//! image is dropped and the next call reopens.
//!
//! Closing an image releases its exclusive lock and its watch: several
//! round trips. A backup is done with its source once the source's old
//! snapshots are pruned, while the base is still being snapshotted, so the
//! close can overlap that instead of following it.
//!
//! [`Image::release`]: blockback_core::image::Image::release

use std::ffi::CString;
use std::ops::Deref;
use std::sync::{Arc, RwLock, RwLockReadGuard};

use crate::ffi::{Errno, IoCtx, RbdHandle};

/// What reopens the handle: the same image, at the same snapshot.
pub(crate) struct Reopen {
    pub io: Arc<IoCtx>,
    pub name: CString,
    pub snap: Option<CString>,
    pub read_only: bool,
}

pub(crate) struct HandleSlot {
    open: RwLock<Option<RbdHandle>>,
    reopen: Reopen,
}

/// The open handle, borrowed: it stays open while this lives.
pub(crate) struct HandleRef<'a>(RwLockReadGuard<'a, Option<RbdHandle>>);

impl Deref for HandleRef<'_> {
    type Target = RbdHandle;

    fn deref(&self) -> &RbdHandle {
        // Built only from a guard holding a handle.
        self.0.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl HandleSlot {
    pub(crate) fn new(handle: RbdHandle, reopen: Reopen) -> Self {
        HandleSlot {
            open: RwLock::new(Some(handle)),
            reopen,
        }
    }

    /// The handle, reopened first if [`Self::release`] closed it.
    pub(crate) fn get(&self) -> Result<HandleRef<'_>, Errno> {
        loop {
            let open = self.open.read().unwrap_or_else(|p| p.into_inner());
            if open.is_some() {
                return Ok(HandleRef(open));
            }
            drop(open);
            let mut slot = self.open.write().unwrap_or_else(|p| p.into_inner());
            if slot.is_none() {
                let r = &self.reopen;
                *slot = Some(RbdHandle::open(
                    &r.io,
                    &r.name,
                    r.snap.as_deref(),
                    r.read_only,
                )?);
            }
        }
    }

    /// Closes the handle now (waiting for calls in progress to finish).
    pub(crate) fn release(&self) {
        let handle = self.open.write().unwrap_or_else(|p| p.into_inner()).take();
        drop(handle);
    }
}
