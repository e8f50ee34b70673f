//! Whether a base image's HEAD still equals one of its snapshots: what lets
//! an incremental write only the changes on top of it.
//!
//! The backend's changed extents answer cheaply, but may report extents
//! that read the same (an RBD rollback rewrites every object without
//! changing a byte). So reported extents are compared by content, up to a
//! budget; beyond it the HEAD counts as modified (a new chain is cheaper
//! than comparing a whole volume).

use crate::image::{Extent, Image, ImageError, Result};

/// Reported bytes compared by content before a HEAD counts as modified.
const COMPARE_BUDGET: u64 = 64 << 20;
const PIECE: usize = 1 << 20;

/// Whether `head` (a base's HEAD) reads the same as the same image at
/// snapshot `snap_name` (of `snap_size` bytes) everywhere. The snapshot is
/// opened (`open_snap`) only when the diff reports extents to compare: in
/// the usual case, no change, that costs no image open.
pub(super) fn head_equals_snapshot(
    head: &dyn Image,
    snap_size: u64,
    snap_name: &str,
    open_snap: impl FnOnce() -> Result<Box<dyn Image>>,
) -> Result<bool> {
    let size = head.size()?;
    if size != snap_size {
        return Ok(false);
    }
    // The usual case, no change, in the backend's cheapest pass.
    if !head.changed_since(snap_name)? {
        return Ok(true);
    }
    let Some(reported) = reported_within_budget(head, snap_name, size)? else {
        return Ok(false);
    };
    if reported.is_empty() {
        return Ok(true);
    }
    let snap = open_snap()?;
    for extent in reported {
        if !same_content(head, snap.as_ref(), extent)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The extents `head` reports changed since `snap_name`, or `None` when
/// they add up to more than the budget.
fn reported_within_budget(
    head: &dyn Image,
    snap_name: &str,
    size: u64,
) -> Result<Option<Vec<Extent>>> {
    const OVER: &str = "stop: over the compare budget";
    let mut reported = Vec::new();
    let mut total = 0u64;
    let walk = head.changed_extents(Some(snap_name), 0..size, &mut |e| {
        total += e.len;
        if total > COMPARE_BUDGET {
            return Err(ImageError::Invalid {
                what: String::new(),
                why: OVER.into(),
            });
        }
        reported.push(e);
        Ok(())
    });
    match walk {
        Err(ImageError::Invalid { why, .. }) if why == OVER => Ok(None),
        Err(e) => Err(e),
        Ok(()) => Ok(Some(reported)),
    }
}

fn same_content(head: &dyn Image, snap: &dyn Image, extent: Extent) -> Result<bool> {
    let mut a = vec![0u8; PIECE];
    let mut b = vec![0u8; PIECE];
    let mut offset = extent.offset;
    while offset < extent.end() {
        let n = (extent.end() - offset).min(PIECE as u64) as usize;
        head.read_at(offset, &mut a[..n])?;
        snap.read_at(offset, &mut b[..n])?;
        if a[..n] != b[..n] {
            return Ok(false);
        }
        offset += n as u64;
    }
    Ok(true)
}
