//! librados calls on single objects that the main table (`ffi.rs`) does
//! not hold: advisory locks (`locks.rs`), a write op's class call, and
//! class method calls (`cls.rs`). A table of their own, loaded on first
//! use, so the main one stays as it is.

use std::ffi::{c_char, c_int};
use std::sync::OnceLock;

use libloading::Library;

use super::{Errno, IoctxT, WriteOpT, MISSING_LIBS};

type LockExclusive = unsafe extern "C" fn(
    IoctxT,
    *const c_char,
    *const c_char,
    *const c_char,
    *const c_char,
    *mut libc::timeval,
    u8,
) -> c_int;
type LockShared = unsafe extern "C" fn(
    IoctxT,
    *const c_char,
    *const c_char,
    *const c_char,
    *const c_char,
    *const c_char,
    *mut libc::timeval,
    u8,
) -> c_int;
type Unlock = unsafe extern "C" fn(IoctxT, *const c_char, *const c_char, *const c_char) -> c_int;
type WriteOpExec =
    unsafe extern "C" fn(WriteOpT, *const c_char, *const c_char, *const c_char, usize, *mut c_int);
type WriteOpRemove = unsafe extern "C" fn(WriteOpT);
type Exec = unsafe extern "C" fn(
    IoctxT,
    *const c_char,
    *const c_char,
    *const c_char,
    *const c_char,
    usize,
    *mut c_char,
    usize,
) -> c_int;

pub(super) struct ObjectCalls {
    _lib: Library,
    pub(super) lock_exclusive: LockExclusive,
    pub(super) lock_shared: LockShared,
    pub(super) unlock: Unlock,
    pub(super) write_op_exec: WriteOpExec,
    pub(super) write_op_remove: WriteOpRemove,
    pub(super) exec: Exec,
}

static OBJECT_CALLS: OnceLock<Result<ObjectCalls, String>> = OnceLock::new();

pub(super) fn object_calls() -> Result<&'static ObjectCalls, Errno> {
    let loaded = OBJECT_CALLS.get_or_init(|| {
        let missing = |e: libloading::Error| format!("{MISSING_LIBS} ({e})");
        // Safety: the same librados the main table loaded (dlopen counts
        // references); the signatures follow librados.h (stable since
        // Luminous).
        unsafe {
            let lib = Library::new("librados.so.2").map_err(missing)?;
            Ok(ObjectCalls {
                lock_exclusive: *lib.get(b"rados_lock_exclusive\0").map_err(missing)?,
                lock_shared: *lib.get(b"rados_lock_shared\0").map_err(missing)?,
                unlock: *lib.get(b"rados_unlock\0").map_err(missing)?,
                write_op_exec: *lib.get(b"rados_write_op_exec\0").map_err(missing)?,
                write_op_remove: *lib.get(b"rados_write_op_remove\0").map_err(missing)?,
                exec: *lib.get(b"rados_exec\0").map_err(missing)?,
                _lib: lib,
            })
        }
    });
    // Only reachable once a cluster is connected, so the library loaded.
    loaded.as_ref().map_err(|_| Errno(libc::ENOSYS))
}
