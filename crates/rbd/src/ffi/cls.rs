//! Calls to an object class method on one object (`rados_exec`).

use std::ffi::{c_char, c_int, CStr};

use super::object_calls::object_calls;
use super::{Errno, IoCtx};

impl IoCtx {
    /// Runs `class.method(input)` on object `oid` and returns its reply,
    /// of at most `max_reply` bytes (a longer one fails with ERANGE).
    pub(crate) fn exec(
        &self,
        oid: &CStr,
        class: &CStr,
        method: &CStr,
        input: &[u8],
        max_reply: usize,
    ) -> Result<Vec<u8>, Errno> {
        if c_int::try_from(max_reply).is_err() {
            return Err(Errno(libc::EINVAL));
        }
        self.guard(|| {
            let api = object_calls()?;
            let mut out = vec![0u8; max_reply];
            // Safety: live ioctx, valid strings, and buffers of the given lengths.
            let rc = unsafe {
                (api.exec)(
                    self.ptr,
                    oid.as_ptr(),
                    class.as_ptr(),
                    method.as_ptr(),
                    input.as_ptr().cast(),
                    input.len(),
                    out.as_mut_ptr().cast::<c_char>(),
                    out.len(),
                )
            };
            if rc < 0 {
                return Err(Errno(-rc));
            }
            out.truncate(rc as usize);
            Ok(out)
        })
    }
}
