//! RADOS advisory locks (librados' `rados_lock_*`, the `lock` object
//! class): the calls the crate's cluster-wide locks need.
//!
//! A lock lives on an object; each holder names itself with a cookie, and
//! a lock taken with a duration expires on the OSD when it is not renewed
//! (`LIBRADOS_LOCK_FLAG_RENEW` re-takes it with the same cookie), after
//! which anyone may take it. That is how a dead holder's lock goes away.

use std::ffi::{c_int, CStr};
use std::ptr;
use std::time::Duration;

use super::object_calls::object_calls;
use super::{check, Errno, IoCtx};

/// librados.h: take the lock again if this cookie holds it (a renewal).
const LOCK_FLAG_RENEW: u8 = 0x1;

fn timeval(d: Duration) -> libc::timeval {
    libc::timeval {
        tv_sec: d.as_secs() as libc::time_t,
        tv_usec: d.subsec_micros() as libc::suseconds_t,
    }
}

/// One named lock on one object, as its holder sees it.
pub(crate) struct LockSpec<'a> {
    pub oid: &'a CStr,
    pub name: &'a CStr,
    pub cookie: &'a CStr,
    pub description: &'a CStr,
    /// Shared holders must all give the same tag; `None`: exclusive.
    pub shared_tag: Option<&'a CStr>,
    pub duration: Duration,
}

impl IoCtx {
    /// Takes (or, with `renew`, re-takes for the same cookie) the lock
    /// for `spec.duration`. EBUSY: another holder has it; EEXIST: this
    /// cookie holds it already (without `renew`).
    pub(crate) fn lock(&self, spec: &LockSpec<'_>, renew: bool) -> Result<(), Errno> {
        self.guard(|| {
            let api = object_calls()?;
            let mut duration = timeval(spec.duration);
            let flags = if renew { LOCK_FLAG_RENEW } else { 0 };
            // Safety: live ioctx, valid strings and timeval for the call.
            let rc = unsafe {
                match spec.shared_tag {
                    None => (api.lock_exclusive)(
                        self.ptr,
                        spec.oid.as_ptr(),
                        spec.name.as_ptr(),
                        spec.cookie.as_ptr(),
                        spec.description.as_ptr(),
                        &mut duration,
                        flags,
                    ),
                    Some(tag) => (api.lock_shared)(
                        self.ptr,
                        spec.oid.as_ptr(),
                        spec.name.as_ptr(),
                        spec.cookie.as_ptr(),
                        tag.as_ptr(),
                        spec.description.as_ptr(),
                        &mut duration,
                        flags,
                    ),
                }
            };
            check(rc)
        })
    }

    /// Releases the lock this cookie holds; ENOENT when it does not
    /// (any more).
    pub(crate) fn unlock(&self, spec: &LockSpec<'_>) -> Result<(), Errno> {
        self.guard(|| {
            let api = object_calls()?;
            // Safety: live ioctx, valid strings.
            check(unsafe {
                (api.unlock)(
                    self.ptr,
                    spec.oid.as_ptr(),
                    spec.name.as_ptr(),
                    spec.cookie.as_ptr(),
                )
            })
        })
    }

    /// Releases an exclusive lock and removes its object, in one write op
    /// the OSD applies atomically: nobody can take the lock in between
    /// (and lose it to the removal), and when this cookie no longer holds
    /// it (ENOENT from the unlock) the object stays.
    pub(crate) fn unlock_and_remove(&self, spec: &LockSpec<'_>) -> Result<(), Errno> {
        self.guard(|| {
            let api = object_calls()?;
            let input = unlock_op(spec.name.to_bytes(), spec.cookie.to_bytes());
            let mut exec_rc: c_int = 0;
            // Safety: the op is created, filled, run and released here;
            // `input`, `spec`'s strings and `exec_rc` outlive the synchronous
            // operate call.
            let rc = unsafe {
                let op = (self.api.rados_create_write_op)();
                if op.is_null() {
                    return Err(Errno(libc::ENOMEM));
                }
                (api.write_op_exec)(
                    op,
                    c"lock".as_ptr(),
                    c"unlock".as_ptr(),
                    input.as_ptr().cast(),
                    input.len(),
                    &mut exec_rc,
                );
                (api.write_op_remove)(op);
                let rc = (self.api.rados_write_op_operate)(
                    op,
                    self.ptr,
                    spec.oid.as_ptr(),
                    ptr::null_mut(),
                    0,
                );
                (self.api.rados_release_write_op)(op);
                rc
            };
            check(rc)
        })
    }
}

/// The `lock` class's `unlock` input (`cls_lock_unlock_op` in Ceph's
/// encoding): struct version 1, compat 1, the length of what follows,
/// then the lock name and the cookie, each a u32 length and its bytes;
/// little endian throughout.
fn unlock_op(name: &[u8], cookie: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(8 + name.len() + cookie.len());
    for s in [name, cookie] {
        body.extend_from_slice(&(s.len() as u32).to_le_bytes());
        body.extend_from_slice(s);
    }
    let mut out = vec![1u8, 1u8];
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn unlock_op_is_ceph_encoded() {
        assert_eq!(
            super::unlock_op(b"ab", b"c"),
            [1, 1, 11, 0, 0, 0, 2, 0, 0, 0, b'a', b'b', 1, 0, 0, 0, b'c']
        );
    }
}
