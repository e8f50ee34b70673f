//! A source whose first look at what changed misses a change, as when a
//! write lands right after the look and before the backup's snapshot; or
//! one that only counts the looks.

use super::delegate::delegate_image_io;
use crate::image::{Image, Result, Snapshots};
use std::sync::atomic::{AtomicU32, Ordering};

/// `inner`, but its first `changed_since` answers "unchanged" whatever the
/// truth; later ones answer truly.
pub(super) struct Misled<'a> {
    inner: &'a dyn Image,
    looks: AtomicU32,
    misses_first: bool,
}

impl<'a> Misled<'a> {
    pub fn new(inner: &'a dyn Image) -> Self {
        Misled {
            inner,
            looks: AtomicU32::new(0),
            misses_first: true,
        }
    }

    /// `inner`, answering every look truly: only counts them.
    pub fn counting(inner: &'a dyn Image) -> Self {
        Misled {
            misses_first: false,
            ..Misled::new(inner)
        }
    }

    /// How many times the backup asked what changed.
    pub fn looks(&self) -> u32 {
        self.looks.load(Ordering::SeqCst)
    }
}

impl Image for Misled<'_> {
    delegate_image_io!(inner);
    fn snapshots(&self) -> Option<&dyn Snapshots> {
        self.inner.snapshots()
    }
    fn changed_since(&self, from: &str) -> Result<bool> {
        match self.looks.fetch_add(1, Ordering::SeqCst) {
            0 if self.misses_first => Ok(false),
            _ => self.inner.changed_since(from),
        }
    }
}
