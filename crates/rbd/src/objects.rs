//! Named write-once objects of an RBD pool: plain RADOS objects in the
//! pool's default namespace, beside the images (Cinder keeps its backup
//! metadata there as `backup.<id>.meta`). Names and sizes follow
//! [`blockback_core::objects`]; its reserved prefixes keep librbd's own
//! objects (`rbd_directory`, `rbd_header.*`, ...) out of reach.

use blockback_core::image::{ImageError, Result};
use blockback_core::objects::{check_object_name, check_object_size, object_what};

use crate::cluster::cstr;
use crate::error::from_errno;
use crate::ffi::IoCtx;

/// Creates the object in one atomic RADOS op (exclusive create +
/// write_full): `Exists` when it is there, never a partial object.
pub(crate) fn put(io: &IoCtx, pool: &str, name: &str, data: &[u8]) -> Result<()> {
    let what = object_what(pool, name);
    check_object_name(pool, name)?;
    check_object_size(|| what.clone(), data.len() as u64)?;
    let oid = cstr(name, &what)?;
    io.create_object(&oid, data)
        .map_err(|e| from_errno(e, what))
}

/// Stat, then one read of size + 1 bytes: a different length means the
/// object was replaced meanwhile (remove + put), which is reported rather
/// than returning a mix.
pub(crate) fn get(io: &IoCtx, pool: &str, name: &str) -> Result<Option<Vec<u8>>> {
    let what = object_what(pool, name);
    check_object_name(pool, name)?;
    let oid = cstr(name, &what)?;
    let size = match io.stat_object(&oid) {
        Ok(size) => size,
        Err(e) if e.0 == libc::ENOENT => return Ok(None),
        Err(e) => return Err(from_errno(e, what)),
    };
    check_object_size(|| what.clone(), size)?;
    // Fits: the size is at most MAX_OBJECT_SIZE (16 MiB).
    let mut buf = vec![0u8; size as usize + 1];
    let n = match io.read_object(&oid, 0, &mut buf) {
        Ok(n) => n,
        Err(e) if e.0 == libc::ENOENT => return Ok(None),
        Err(e) => return Err(from_errno(e, what)),
    };
    if n as u64 != size {
        return Err(ImageError::Backend {
            what,
            msg: format!("changed while being read ({size} bytes, then {n}); retry"),
        });
    }
    buf.truncate(n);
    Ok(Some(buf))
}

/// Removes the object; a missing one is fine.
pub(crate) fn remove(io: &IoCtx, pool: &str, name: &str) -> Result<()> {
    let what = object_what(pool, name);
    check_object_name(pool, name)?;
    let oid = cstr(name, &what)?;
    match io.remove_object(&oid) {
        Err(e) if e.0 != libc::ENOENT => Err(from_errno(e, what)),
        _ => Ok(()),
    }
}
