//! A handle opened while a snapshot is made, for reading the snapshot
//! right after (`Snapshots::prepare_open`: a backup's source, unless it
//! looks unchanged; `open_spare` says why it is writable). librbd's open
//! is about a dozen round trips one after another (56 ms under the 0-2 ms
//! profile); made beside the snapshot's creation (itself 0.1 s, mostly the
//! monitor's snapshot id), only pointing the handle at the new snapshot is
//! left: a refresh, 24-28 ms.

use std::ffi::CStr;
use std::sync::Mutex;

use crate::ffi::RbdHandle;

/// At most one spare handle, and the snapshot it was opened for.
#[derive(Default)]
pub(crate) struct Spare(Mutex<Option<(String, RbdHandle)>>);

impl Spare {
    /// Keeps `handle` for snapshot `snap`, closing any earlier one.
    pub(crate) fn put(&self, snap: &str, handle: RbdHandle) {
        let earlier = self.lock().replace((snap.to_string(), handle));
        drop(earlier);
    }

    /// The spare handle pointed at snapshot `snap`, when one was opened for
    /// it; `None` otherwise, and when librbd refuses: should the handle
    /// have opened after the snapshot's header change and registered its
    /// watch too late to hear of it, it does not know the snapshot, and
    /// the caller opens one as usual.
    pub(crate) fn take_at(&self, snap: &str, c_snap: &CStr) -> Option<RbdHandle> {
        let (made_for, handle) = self.lock().take()?;
        if made_for != snap {
            return None;
        }
        match handle.snap_set(c_snap) {
            Ok(()) => Some(handle),
            Err(e) => {
                tracing::debug!("spare handle not set to snapshot {snap}: {e:?}");
                None
            }
        }
    }

    /// The snapshot the spare handle was opened for, if there is one.
    pub(crate) fn snapshot(&self) -> Option<String> {
        self.lock().as_ref().map(|(snap, _)| snap.clone())
    }

    /// Closes the spare handle, if any.
    pub(crate) fn clear(&self) {
        let spare = self.lock().take();
        drop(spare);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(String, RbdHandle)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
