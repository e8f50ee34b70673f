//! Checks an importer runs on its target before writing.

use super::error::Result;
use crate::image::{Extent, Image, Snapshots};

const COMPARE_CHUNK: u64 = 1 << 20;

pub fn snapshot_exists(snaps: &dyn Snapshots, name: &str) -> Result<bool> {
    Ok(snaps.list()?.iter().any(|s| s.name == name))
}

/// True when HEAD (`head`) reads exactly like snapshot `name`. Backends may
/// over-report changed extents, so reported extents are compared by content.
pub fn head_equals_snapshot(head: &dyn Image, snaps: &dyn Snapshots, name: &str) -> Result<bool> {
    let snap = snaps.open_snapshot(name)?;
    let size = head.size()?;
    if snap.size()? != size {
        return Ok(false);
    }
    let mut extents: Vec<Extent> = Vec::new();
    head.changed_extents(Some(name), 0..size, &mut |e| {
        extents.push(e);
        Ok(())
    })?;
    let mut a = Vec::new();
    let mut b = Vec::new();
    for e in extents {
        if !same_bytes(head, &*snap, e, &mut a, &mut b)? {
            return Ok(false);
        }
    }
    Ok(true)
}

fn same_bytes(
    x: &dyn Image,
    y: &dyn Image,
    e: Extent,
    a: &mut Vec<u8>,
    b: &mut Vec<u8>,
) -> Result<bool> {
    let mut at = e.offset;
    while at < e.end() {
        let n = (e.end() - at).min(COMPARE_CHUNK) as usize;
        a.resize(n, 0);
        b.resize(n, 0);
        x.read_at(at, a)?;
        y.read_at(at, b)?;
        if a != b {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}
