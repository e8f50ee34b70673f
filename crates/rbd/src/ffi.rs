//! The only unsafe code of the crate: librados and librbd, loaded at run time
//! (so the crate builds and runs without Ceph installed), and thin owning
//! handles over their C objects. Nothing outside this module sees a raw
//! pointer; errors leave as a positive [`Errno`].
//!
//! librbd image handles are thread-safe (librbd serialises internally), so
//! the handles are `Send + Sync` and every method takes `&self`.

use std::any::Any;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::ptr;
use std::sync::{Arc, OnceLock};

use libloading::Library;

use crate::breaker::Breaker;

mod cls;
mod lock_info;
mod locks;
mod object_calls;
pub(crate) use lock_info::Locker;
pub(crate) use locks::LockSpec;

/// librados.h: `rados_write_op_create` fails if the object exists.
const LIBRADOS_CREATE_EXCLUSIVE: c_int = 1;

/// librados.h `LIBRADOS_OP_FLAG_FADVISE_SEQUENTIAL | _NOCACHE`, the flags
/// `rbd import` and `rbd export` give their data I/O: backups stream each
/// byte once, so the OSD need not keep it in its cache (less OSD work on a
/// machine the OSD shares with us).
const STREAM_IO_FLAGS: c_int = 0x8 | 0x40;

/// A positive errno returned (negated) by librados or librbd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Errno(pub i32);

type RadosT = *mut c_void;
type IoctxT = *mut c_void;
type ImageT = *mut c_void;
type OptionsT = *mut c_void;
type CompletionT = *mut c_void;
type WriteOpT = *mut c_void;
type DiffCb = extern "C" fn(u64, usize, c_int, *mut c_void) -> c_int;
type ProgressCb = extern "C" fn(u64, u64, *mut c_void) -> c_int;
type AioCb = Option<extern "C" fn(CompletionT, *mut c_void)>;

#[repr(C)]
struct ImageSpecC {
    id: *mut c_char,
    name: *mut c_char,
}

#[repr(C)]
struct SnapInfoC {
    id: u64,
    size: u64,
    name: *const c_char,
}

#[repr(C)]
struct ImageInfoC {
    size: u64,
    obj_size: u64,
    num_objs: u64,
    order: c_int,
    block_name_prefix: [c_char; 24],
    parent_pool: i64,
    parent_name: [c_char; 96],
}

/// Both libraries kept open for the life of the process (via `API`).
struct Libs {
    rados: Library,
    rbd: Library,
}

/// Declares the function-pointer table and its loader in one place, so a
/// signature is written exactly once.
macro_rules! api_table {
    ($( $lib:ident $name:ident ( $($arg:ty),* ) $(-> $ret:ty)? ; )*) => {
        #[allow(non_snake_case)]
        struct Api {
            _libs: Libs,
            $( $name: unsafe extern "C" fn($($arg),*) $(-> $ret)?, )*
        }

        impl Api {
            /// Safety: the declared signatures must match the C headers.
            unsafe fn resolve(libs: Libs) -> Result<Api, libloading::Error> {
                Ok(Api {
                    $( $name: *libs.$lib.get(concat!(stringify!($name), "\0").as_bytes())?, )*
                    _libs: libs,
                })
            }
        }
    };
}

api_table! {
    rados rados_create2(*mut RadosT, *const c_char, *const c_char, u64) -> c_int;
    rados rados_conf_read_file(RadosT, *const c_char) -> c_int;
    rados rados_conf_parse_env(RadosT, *const c_char) -> c_int;
    rados rados_conf_set(RadosT, *const c_char, *const c_char) -> c_int;
    rados rados_conf_get(RadosT, *const c_char, *mut c_char, usize) -> c_int;
    rados rados_connect(RadosT) -> c_int;
    rados rados_shutdown(RadosT);
    rados rados_ioctx_create(RadosT, *const c_char, *mut IoctxT) -> c_int;
    rados rados_ioctx_destroy(IoctxT);
    rados rados_create_write_op() -> WriteOpT;
    rados rados_release_write_op(WriteOpT);
    rados rados_write_op_create(WriteOpT, c_int, *const c_char);
    rados rados_write_op_write_full(WriteOpT, *const c_char, usize);
    rados rados_write_op_operate(WriteOpT, IoctxT, *const c_char, *mut libc::time_t, c_int) -> c_int;
    rados rados_stat(IoctxT, *const c_char, *mut u64, *mut libc::time_t) -> c_int;
    rados rados_read(IoctxT, *const c_char, *mut c_char, usize, u64) -> c_int;
    rados rados_remove(IoctxT, *const c_char) -> c_int;
    rbd rbd_version(*mut c_int, *mut c_int, *mut c_int);
    rbd rbd_image_options_create(*mut OptionsT);
    rbd rbd_image_options_destroy(OptionsT);
    rbd rbd_image_options_set_uint64(OptionsT, c_int, u64) -> c_int;
    rbd rbd_create4(IoctxT, *const c_char, u64, OptionsT) -> c_int;
    rbd rbd_list2(IoctxT, *mut ImageSpecC, *mut usize) -> c_int;
    rbd rbd_image_spec_list_cleanup(*mut ImageSpecC, usize);
    rbd rbd_remove(IoctxT, *const c_char) -> c_int;
    rbd rbd_open(IoctxT, *const c_char, *mut ImageT, *const c_char) -> c_int;
    rbd rbd_open_read_only(IoctxT, *const c_char, *mut ImageT, *const c_char) -> c_int;
    rbd rbd_close(ImageT) -> c_int;
    rbd rbd_stat(ImageT, *mut ImageInfoC, usize) -> c_int;
    rbd rbd_get_size(ImageT, *mut u64) -> c_int;
    rbd rbd_get_features(ImageT, *mut u64) -> c_int;
    rbd rbd_get_flags(ImageT, *mut u64) -> c_int;
    rbd rbd_get_id(ImageT, *mut c_char, usize) -> c_int;
    rbd rbd_get_stripe_count(ImageT, *mut u64) -> c_int;
    rbd rbd_read2(ImageT, u64, usize, *mut c_char, c_int) -> isize;
    rbd rbd_write2(ImageT, u64, usize, *const c_char, c_int) -> isize;
    rbd rbd_write_zeroes(ImageT, u64, usize, c_int, c_int) -> isize;
    rbd rbd_flush(ImageT) -> c_int;
    rbd rbd_resize2(ImageT, u64, bool, ProgressCb, *mut c_void) -> c_int;
    rbd rbd_update_features(ImageT, u64, u8) -> c_int;
    rbd rbd_rebuild_object_map(ImageT, ProgressCb, *mut c_void) -> c_int;
    rbd rbd_snap_list(ImageT, *mut SnapInfoC, *mut c_int) -> c_int;
    rbd rbd_snap_list_end(*mut SnapInfoC);
    rbd rbd_snap_exists(ImageT, *const c_char, *mut bool) -> c_int;
    rbd rbd_snap_create2(ImageT, *const c_char, u32, ProgressCb, *mut c_void) -> c_int;
    rbd rbd_snap_remove(ImageT, *const c_char) -> c_int;
    rbd rbd_snap_set(ImageT, *const c_char) -> c_int;
    rbd rbd_snap_rollback(ImageT, *const c_char) -> c_int;
    rbd rbd_snap_get_timestamp(ImageT, u64, *mut libc::timespec) -> c_int;
    rbd rbd_metadata_get(ImageT, *const c_char, *mut c_char, *mut usize) -> c_int;
    rbd rbd_metadata_set(ImageT, *const c_char, *const c_char) -> c_int;
    rbd rbd_diff_iterate2(ImageT, *const c_char, u64, u64, u8, u8, DiffCb, *mut c_void) -> c_int;
    rbd rbd_aio_create_completion(*mut c_void, AioCb, *mut CompletionT) -> c_int;
    rbd rbd_aio_read2(ImageT, u64, usize, *mut c_char, CompletionT, c_int) -> c_int;
    rbd rbd_aio_write2(ImageT, u64, usize, *const c_char, CompletionT, c_int) -> c_int;
    rbd rbd_aio_wait_for_complete(CompletionT) -> c_int;
    rbd rbd_aio_get_return_value(CompletionT) -> isize;
    rbd rbd_aio_release(CompletionT);
}

static API: OnceLock<Result<Api, String>> = OnceLock::new();

/// The message users see when Ceph's client libraries are not installed.
pub(crate) const MISSING_LIBS: &str =
    "Ceph support needs librbd1 and librados2: apt-get install ceph-common";

fn load_api() -> Result<Api, String> {
    load_api_from("librados.so.2", "librbd.so.1")
}

fn load_api_from(rados: &str, rbd: &str) -> Result<Api, String> {
    let missing = |e: libloading::Error| format!("{MISSING_LIBS} ({e})");
    // Safety: loading the system's librados/librbd runs their initialisers,
    // which have no preconditions; the table's signatures follow the 16.2
    // headers (stable C ABI since Luminous).
    unsafe {
        let rados = Library::new(rados).map_err(missing)?;
        let rbd = Library::new(rbd).map_err(missing)?;
        Api::resolve(Libs { rados, rbd }).map_err(missing)
    }
}

fn api() -> Result<&'static Api, String> {
    API.get_or_init(load_api).as_ref().map_err(Clone::clone)
}

/// Loads the libraries once; the error text is ready to show to users.
pub(crate) fn ensure_loaded() -> Result<(), String> {
    api().map(|_| ())
}

/// librbd's version as (major, minor, extra), e.g. (1, 16, 0) for Pacific.
pub(crate) fn rbd_version() -> Result<(i32, i32, i32), String> {
    let api = api()?;
    let (mut a, mut b, mut c) = (0, 0, 0);
    // Safety: three valid out-pointers.
    unsafe { (api.rbd_version)(&mut a, &mut b, &mut c) };
    Ok((a, b, c))
}

fn check(rc: c_int) -> Result<(), Errno> {
    if rc < 0 {
        Err(Errno(rc.wrapping_neg()))
    } else {
        Ok(())
    }
}

fn check_len(rc: isize) -> Result<usize, Errno> {
    if rc < 0 {
        Err(Errno(i32::try_from(rc.unsigned_abs()).unwrap_or(libc::EIO)))
    } else {
        Ok(rc as usize)
    }
}

fn opt_ptr(s: Option<&CStr>) -> *const c_char {
    s.map_or(ptr::null(), CStr::as_ptr)
}

/// Copies a C string owned by librbd (null reads as empty).
///
/// Safety: `p` is null or a valid NUL-terminated string.
unsafe fn owned_string(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// A `rados_t`: a cluster handle, shut down on drop.
pub(crate) struct Rados {
    api: &'static Api,
    ptr: RadosT,
    pub(crate) breaker: Breaker,
}

// Safety: librados cluster handles are thread-safe once configured; this
// crate configures them before sharing (connect takes `&self` but runs once,
// before the handle is put in an Arc).
unsafe impl Send for Rados {}
unsafe impl Sync for Rados {}

impl Rados {
    /// `rados_create2(&r, "ceph", user, 0)`; `user` is "client.<id>".
    pub(crate) fn create(user: &CStr) -> Result<Result<Rados, Errno>, String> {
        let api = api()?;
        let mut ptr = ptr::null_mut();
        // Safety: valid out-pointer and NUL-terminated strings.
        let rc = unsafe { (api.rados_create2)(&mut ptr, c"ceph".as_ptr(), user.as_ptr(), 0) };
        Ok(check(rc).map(|()| Rados {
            api,
            ptr,
            breaker: Breaker::default(),
        }))
    }

    /// Reads `path`, or librados' default search path when `None`.
    pub(crate) fn conf_read_file(&self, path: Option<&CStr>) -> Result<(), Errno> {
        // Safety: live handle, valid or null path.
        check(unsafe { (self.api.rados_conf_read_file)(self.ptr, opt_ptr(path)) })
    }

    pub(crate) fn conf_parse_env(&self, var: &CStr) -> Result<(), Errno> {
        // Safety: live handle, valid string.
        check(unsafe { (self.api.rados_conf_parse_env)(self.ptr, var.as_ptr()) })
    }

    pub(crate) fn conf_set(&self, option: &CStr, value: &CStr) -> Result<(), Errno> {
        // Safety: live handle, valid strings.
        check(unsafe { (self.api.rados_conf_set)(self.ptr, option.as_ptr(), value.as_ptr()) })
    }

    /// The option's effective value as text.
    pub(crate) fn conf_get(&self, option: &CStr) -> Result<String, Errno> {
        let mut buf = vec![0u8; 256];
        // Safety: live handle, valid string, buffer of the given length
        // (librados writes a NUL-terminated value or fails with ENAMETOOLONG).
        check(unsafe {
            (self.api.rados_conf_get)(
                self.ptr,
                option.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        })?;
        let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
        Ok(String::from_utf8_lossy(&buf[..end]).into_owned())
    }

    pub(crate) fn connect(&self) -> Result<(), Errno> {
        // Safety: live, configured handle.
        check(unsafe { (self.api.rados_connect)(self.ptr) })
    }
}

impl Drop for Rados {
    fn drop(&mut self) {
        if self.breaker.is_tripped() {
            // The shutdown would wait on the unreachable cluster; the
            // handle (and the images left open on it) go with the process.
            return;
        }
        // Safety: every IoCtx holds an Arc<Rados>, so none outlives this.
        unsafe { (self.api.rados_shutdown)(self.ptr) }
    }
}

/// A `rados_ioctx_t`: one pool of one cluster.
pub(crate) struct IoCtx {
    api: &'static Api,
    ptr: IoctxT,
    rados: Arc<Rados>,
}

// Safety: librados I/O contexts are thread-safe for the operations used here
// (none changes the context's snapshot or namespace state).
unsafe impl Send for IoCtx {}
unsafe impl Sync for IoCtx {}

impl IoCtx {
    pub(crate) fn create(rados: &Arc<Rados>, pool: &CStr) -> Result<IoCtx, Errno> {
        let api = rados.api;
        let mut ptr = ptr::null_mut();
        // Safety: connected handle, valid name and out-pointer.
        check(unsafe { (api.rados_ioctx_create)(rados.ptr, pool.as_ptr(), &mut ptr) })?;
        Ok(IoCtx {
            api,
            ptr,
            rados: Arc::clone(rados),
        })
    }

    /// Runs `call` through the connection's [`Breaker`].
    fn guard<T>(&self, call: impl FnOnce() -> Result<T, Errno>) -> Result<T, Errno> {
        self.rados.breaker.run(call)
    }

    /// Image names in the pool (`rbd_list2`, retried while the buffer is short).
    pub(crate) fn list_images(&self) -> Result<Vec<String>, Errno> {
        self.guard(|| {
            let mut max: usize = 64;
            loop {
                let mut buf: Vec<ImageSpecC> = (0..max)
                    .map(|_| ImageSpecC {
                        id: ptr::null_mut(),
                        name: ptr::null_mut(),
                    })
                    .collect();
                let mut n = max;
                // Safety: `buf` has room for `n` specs.
                let rc = unsafe { (self.api.rbd_list2)(self.ptr, buf.as_mut_ptr(), &mut n) };
                if rc == -libc::ERANGE {
                    max = n.max(max * 2);
                    continue;
                }
                check(rc)?;
                let n = n.min(max);
                // Safety: librbd filled the first `n` entries with strdup'ed names,
                // which the cleanup call frees.
                let names = unsafe {
                    let names = buf[..n].iter().map(|s| owned_string(s.name)).collect();
                    (self.api.rbd_image_spec_list_cleanup)(buf.as_mut_ptr(), n);
                    names
                };
                return Ok(names);
            }
        })
    }

    /// `rbd_create4` with `options` as (RBD_IMAGE_OPTION_*, value) pairs.
    pub(crate) fn create_image(
        &self,
        name: &CStr,
        size: u64,
        options: &[(c_int, u64)],
    ) -> Result<(), Errno> {
        self.guard(|| {
            let mut opts = ptr::null_mut();
            // Safety: the options object is created, used and destroyed here.
            unsafe {
                (self.api.rbd_image_options_create)(&mut opts);
                let mut rc = 0;
                for &(key, value) in options {
                    rc = (self.api.rbd_image_options_set_uint64)(opts, key, value);
                    if rc < 0 {
                        break;
                    }
                }
                if rc >= 0 {
                    rc = (self.api.rbd_create4)(self.ptr, name.as_ptr(), size, opts);
                }
                (self.api.rbd_image_options_destroy)(opts);
                check(rc)
            }
        })
    }

    pub(crate) fn remove_image(&self, name: &CStr) -> Result<(), Errno> {
        self.guard(|| {
            // Safety: live ioctx, valid name.
            check(unsafe { (self.api.rbd_remove)(self.ptr, name.as_ptr()) })
        })
    }

    /// Creates RADOS object `oid` holding `data`, in one write op (exclusive
    /// create + write_full), which the OSD applies atomically: EEXIST when
    /// the object exists (left unchanged), and never a partial object.
    pub(crate) fn create_object(&self, oid: &CStr, data: &[u8]) -> Result<(), Errno> {
        self.guard(|| {
            // Safety: the op is created, filled, run and released here; `data`
            // and `oid` outlive the synchronous operate call.
            unsafe {
                let op = (self.api.rados_create_write_op)();
                if op.is_null() {
                    return Err(Errno(libc::ENOMEM));
                }
                (self.api.rados_write_op_create)(op, LIBRADOS_CREATE_EXCLUSIVE, ptr::null());
                (self.api.rados_write_op_write_full)(op, data.as_ptr().cast(), data.len());
                let rc = (self.api.rados_write_op_operate)(
                    op,
                    self.ptr,
                    oid.as_ptr(),
                    ptr::null_mut(),
                    0,
                );
                (self.api.rados_release_write_op)(op);
                check(rc)
            }
        })
    }

    /// The size of RADOS object `oid` (`rados_stat`).
    pub(crate) fn stat_object(&self, oid: &CStr) -> Result<u64, Errno> {
        self.guard(|| {
            let mut size = 0;
            // Safety: live ioctx, valid name and out-pointer; mtime not wanted.
            check(unsafe {
                (self.api.rados_stat)(self.ptr, oid.as_ptr(), &mut size, ptr::null_mut())
            })?;
            Ok(size)
        })
    }

    /// One `rados_read` of up to `buf.len()` bytes at `offset`; returns the
    /// bytes read (fewer at the object's end). `buf` must be under 2 GiB.
    pub(crate) fn read_object(
        &self,
        oid: &CStr,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<usize, Errno> {
        self.guard(|| {
            if c_int::try_from(buf.len()).is_err() {
                return Err(Errno(libc::EINVAL));
            }
            // Safety: `buf` is valid for `buf.len()` bytes of writes.
            let rc = unsafe {
                (self.api.rados_read)(
                    self.ptr,
                    oid.as_ptr(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    offset,
                )
            };
            check(rc)?;
            Ok(usize::try_from(rc).unwrap_or(0))
        })
    }

    pub(crate) fn remove_object(&self, oid: &CStr) -> Result<(), Errno> {
        self.guard(|| {
            // Safety: live ioctx, valid name.
            check(unsafe { (self.api.rados_remove)(self.ptr, oid.as_ptr()) })
        })
    }
}

impl Drop for IoCtx {
    fn drop(&mut self) {
        if self.rados.breaker.is_tripped() {
            // Images left open on a tripped connection may still use it.
            return;
        }
        // Safety: every RbdHandle holds an Arc<IoCtx>, so none outlives this.
        unsafe { (self.api.rados_ioctx_destroy)(self.ptr) }
    }
}

/// One snapshot as `rbd_snap_list` reports it.
pub(crate) struct SnapEntry {
    pub id: u64,
    pub size: u64,
    pub name: String,
}

/// Static layout facts of an open image.
pub(crate) struct Layout {
    pub object_size: u64,
    pub stripe_count: u64,
}

/// An open `rbd_image_t`, closed on drop.
pub(crate) struct RbdHandle {
    api: &'static Api,
    ptr: ImageT,
    io: Arc<IoCtx>,
}

// Safety: librbd image handles are thread-safe (its own locks serialise
// metadata changes; I/O is dispatched through its work queues).
unsafe impl Send for RbdHandle {}
unsafe impl Sync for RbdHandle {}

impl RbdHandle {
    /// Opens HEAD (`snap == None`) or a snapshot; a read-only open takes no
    /// watch-based exclusive lock and fails writes with EROFS.
    pub(crate) fn open(
        io: &Arc<IoCtx>,
        name: &CStr,
        snap: Option<&CStr>,
        read_only: bool,
    ) -> Result<RbdHandle, Errno> {
        let api = io.api;
        let open = if read_only {
            api.rbd_open_read_only
        } else {
            api.rbd_open
        };
        let mut ptr = ptr::null_mut();
        // Safety: live ioctx, valid strings, valid out-pointer.
        io.guard(|| check(unsafe { open(io.ptr, name.as_ptr(), &mut ptr, opt_ptr(snap)) }))?;
        Ok(RbdHandle {
            api,
            ptr,
            io: Arc::clone(io),
        })
    }

    /// Runs `call` through the connection's [`Breaker`].
    fn guard<T>(&self, call: impl FnOnce() -> Result<T, Errno>) -> Result<T, Errno> {
        self.io.guard(call)
    }

    fn get_u64(&self, f: unsafe extern "C" fn(ImageT, *mut u64) -> c_int) -> Result<u64, Errno> {
        let mut v = 0;
        // Safety: live image, valid out-pointer.
        check(unsafe { f(self.ptr, &mut v) })?;
        Ok(v)
    }

    pub(crate) fn size(&self) -> Result<u64, Errno> {
        self.guard(|| self.get_u64(self.api.rbd_get_size))
    }

    pub(crate) fn features(&self) -> Result<u64, Errno> {
        self.guard(|| self.get_u64(self.api.rbd_get_features))
    }

    pub(crate) fn flags(&self) -> Result<u64, Errno> {
        self.guard(|| self.get_u64(self.api.rbd_get_flags))
    }

    /// The image's id (what its header and object map objects are named by).
    pub(crate) fn id(&self) -> Result<String, Errno> {
        self.guard(|| {
            let mut buf = [0u8; 128];
            // Safety: live image, buffer valid for its length.
            check(unsafe { (self.api.rbd_get_id)(self.ptr, buf.as_mut_ptr().cast(), buf.len()) })?;
            let id = CStr::from_bytes_until_nul(&buf).map_err(|_| Errno(libc::EBADMSG))?;
            Ok(id.to_string_lossy().into_owned())
        })
    }

    /// The connection's pool, for calls on the image's own objects.
    pub(crate) fn ioctx(&self) -> &IoCtx {
        &self.io
    }

    pub(crate) fn layout(&self) -> Result<Layout, Errno> {
        self.guard(|| {
            let mut info = ImageInfoC {
                size: 0,
                obj_size: 0,
                num_objs: 0,
                order: 0,
                block_name_prefix: [0; 24],
                parent_pool: 0,
                parent_name: [0; 96],
            };
            let len = std::mem::size_of::<ImageInfoC>();
            // Safety: live image, out-struct of the declared size.
            check(unsafe { (self.api.rbd_stat)(self.ptr, &mut info, len) })?;
            Ok(Layout {
                object_size: info.obj_size,
                stripe_count: self.get_u64(self.api.rbd_get_stripe_count)?,
            })
        })
    }

    /// One `rbd_read2`; returns the bytes read (short at the image end).
    pub(crate) fn read(&self, offset: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        self.guard(|| {
            // Safety: `buf` is valid for `buf.len()` bytes of writes.
            let rc = unsafe {
                (self.api.rbd_read2)(
                    self.ptr,
                    offset,
                    buf.len(),
                    buf.as_mut_ptr().cast(),
                    STREAM_IO_FLAGS,
                )
            };
            check_len(rc)
        })
    }

    /// One `rbd_write2`; returns the bytes written.
    pub(crate) fn write(&self, offset: u64, data: &[u8]) -> Result<usize, Errno> {
        self.guard(|| {
            // Safety: `data` is valid for `data.len()` bytes of reads.
            let rc = unsafe {
                (self.api.rbd_write2)(
                    self.ptr,
                    offset,
                    data.len(),
                    data.as_ptr().cast(),
                    STREAM_IO_FLAGS,
                )
            };
            check_len(rc)
        })
    }

    /// One `rbd_write_zeroes` (exact, unlike discard).
    pub(crate) fn write_zeroes(&self, offset: u64, len: usize) -> Result<usize, Errno> {
        self.guard(|| {
            // Safety: live image; no buffers involved.
            check_len(unsafe { (self.api.rbd_write_zeroes)(self.ptr, offset, len, 0, 0) })
        })
    }

    pub(crate) fn flush(&self) -> Result<(), Errno> {
        self.guard(|| {
            // Safety: live image.
            check(unsafe { (self.api.rbd_flush)(self.ptr) })
        })
    }

    pub(crate) fn resize(&self, size: u64) -> Result<(), Errno> {
        self.guard(|| {
            // Safety: live image; librbd calls the progress callback
            // unconditionally (a null one crashes), so pass a no-op.
            check(unsafe {
                (self.api.rbd_resize2)(self.ptr, size, true, no_progress, ptr::null_mut())
            })
        })
    }

    /// Enables (or disables) `features` on the image.
    pub(crate) fn update_features(&self, features: u64, enabled: bool) -> Result<(), Errno> {
        self.guard(|| {
            // Safety: live image; plain values.
            check(unsafe { (self.api.rbd_update_features)(self.ptr, features, u8::from(enabled)) })
        })
    }

    /// Rebuilds HEAD's object map from the objects the image has.
    pub(crate) fn rebuild_object_map(&self) -> Result<(), Errno> {
        self.guard(|| {
            // Safety: live image; a no-op progress callback, as for resize.
            check(unsafe {
                (self.api.rbd_rebuild_object_map)(self.ptr, no_progress, ptr::null_mut())
            })
        })
    }

    /// All snapshots (any order; see `rbd_snap_list`'s spare-slot rule).
    pub(crate) fn snap_list(&self) -> Result<Vec<SnapEntry>, Errno> {
        self.guard(|| {
            let mut max: c_int = 16;
            loop {
                // One spare slot: librbd writes a terminator after the last entry.
                let slots = usize::try_from(max).unwrap_or(0) + 1;
                let mut buf: Vec<SnapInfoC> = (0..slots)
                    .map(|_| SnapInfoC {
                        id: 0,
                        size: 0,
                        name: ptr::null(),
                    })
                    .collect();
                let asked = max;
                // Safety: `buf` has `max + 1` slots.
                let rc = unsafe { (self.api.rbd_snap_list)(self.ptr, buf.as_mut_ptr(), &mut max) };
                if rc == -libc::ERANGE {
                    max = max.max(asked.saturating_mul(2));
                    continue;
                }
                check(rc)?;
                let n = usize::try_from(rc).unwrap_or(0).min(slots);
                // Safety: the first `n` entries are filled; list_end frees names.
                let snaps = unsafe {
                    let snaps = buf[..n]
                        .iter()
                        .map(|s| SnapEntry {
                            id: s.id,
                            size: s.size,
                            name: owned_string(s.name),
                        })
                        .collect();
                    (self.api.rbd_snap_list_end)(buf.as_mut_ptr());
                    snaps
                };
                return Ok(snaps);
            }
        })
    }

    /// Creation time of snapshot `id` as (seconds, nanoseconds) since the epoch.
    pub(crate) fn snap_timestamp(&self, id: u64) -> Result<(i64, i64), Errno> {
        self.guard(|| {
            let mut ts = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // Safety: live image, valid out-pointer.
            check(unsafe { (self.api.rbd_snap_get_timestamp)(self.ptr, id, &mut ts) })?;
            Ok((ts.tv_sec, ts.tv_nsec))
        })
    }

    pub(crate) fn snap_exists(&self, name: &CStr) -> Result<bool, Errno> {
        self.guard(|| {
            let mut exists = false;
            // Safety: live image, valid name and out-pointer.
            check(unsafe { (self.api.rbd_snap_exists)(self.ptr, name.as_ptr(), &mut exists) })?;
            Ok(exists)
        })
    }

    /// The value of metadata `key`, or `None` when it is not set.
    pub(crate) fn metadata_get(&self, key: &CStr) -> Result<Option<Vec<u8>>, Errno> {
        self.guard(|| {
            let mut len = 256usize;
            loop {
                let mut buf = vec![0u8; len];
                let mut needed = len;
                // Safety: live image, valid key; `buf` holds `needed` bytes.
                let rc = unsafe {
                    (self.api.rbd_metadata_get)(
                        self.ptr,
                        key.as_ptr(),
                        buf.as_mut_ptr().cast(),
                        &mut needed,
                    )
                };
                if rc == -libc::ERANGE && needed > len {
                    len = needed;
                    continue;
                }
                if rc == -libc::ENOENT {
                    return Ok(None);
                }
                check(rc)?;
                // librbd copies the value with its terminator.
                let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
                buf.truncate(end);
                return Ok(Some(buf));
            }
        })
    }

    pub(crate) fn metadata_set(&self, key: &CStr, value: &CStr) -> Result<(), Errno> {
        self.guard(|| {
            // Safety: live image, valid key and value.
            check(unsafe { (self.api.rbd_metadata_set)(self.ptr, key.as_ptr(), value.as_ptr()) })
        })
    }

    /// Creates snapshot `name`; without `quiesce`, librbd does not ask the
    /// image's users to quiesce first (`RBD_SNAP_CREATE_SKIP_QUIESCE`).
    pub(crate) fn snap_create(&self, name: &CStr, quiesce: bool) -> Result<(), Errno> {
        let flags = snap_create_flags(quiesce);
        self.guard(|| {
            // Safety: live image, valid name; a no-op progress callback, as
            // for resize.
            check(unsafe {
                (self.api.rbd_snap_create2)(
                    self.ptr,
                    name.as_ptr(),
                    flags,
                    no_progress,
                    ptr::null_mut(),
                )
            })
        })
    }

    /// Points this handle at snapshot `name` (librbd refreshes it first
    /// when its watch heard of a header change).
    pub(crate) fn snap_set(&self, name: &CStr) -> Result<(), Errno> {
        self.guard(|| {
            // Safety: live image, valid name.
            check(unsafe { (self.api.rbd_snap_set)(self.ptr, name.as_ptr()) })
        })
    }

    pub(crate) fn snap_remove(&self, name: &CStr) -> Result<(), Errno> {
        self.guard(|| {
            // Safety: live image, valid name.
            check(unsafe { (self.api.rbd_snap_remove)(self.ptr, name.as_ptr()) })
        })
    }

    pub(crate) fn snap_rollback(&self, name: &CStr) -> Result<(), Errno> {
        self.guard(|| {
            // Safety: live image, valid name.
            check(unsafe { (self.api.rbd_snap_rollback)(self.ptr, name.as_ptr()) })
        })
    }

    /// `rbd_diff_iterate2` over `offset..offset+len` from `from` (None: from
    /// nothing) to this handle's point, parent included. `visit(offset, len,
    /// exists)` returns false to stop early; the call then fails with
    /// ECANCELED. A panic in `visit` is caught at the C boundary and resumed
    /// here.
    pub(crate) fn diff_iterate(
        &self,
        from: Option<&CStr>,
        offset: u64,
        len: u64,
        whole_object: bool,
        visit: &mut dyn FnMut(u64, u64, bool) -> bool,
    ) -> Result<(), Errno> {
        self.guard(|| {
            let mut ctx = DiffCtx { visit, panic: None };
            let arg: *mut DiffCtx<'_, '_> = &mut ctx;
            // Safety: `ctx` outlives the synchronous call; the callback only
            // touches it while librbd is inside the call.
            let rc = unsafe {
                (self.api.rbd_diff_iterate2)(
                    self.ptr,
                    opt_ptr(from),
                    offset,
                    len,
                    1,
                    u8::from(whole_object),
                    diff_callback,
                    arg.cast(),
                )
            };
            if let Some(payload) = ctx.panic {
                resume_unwind(payload);
            }
            check(rc)
        })
    }

    /// Runs `ops` as concurrent aio requests and waits for all of them;
    /// returns the first error (after every request has finished, so no
    /// buffer is still in use by librbd).
    pub(crate) fn aio_batch(&self, ops: &mut [AioOp<'_>]) -> Result<(), Errno> {
        let mut pending = Vec::with_capacity(ops.len());
        let mut first_err = Ok(());
        for op in ops.iter_mut() {
            match self.aio_submit(op) {
                Ok(c) => pending.push((c, op.expected_len(), matches!(op, AioOp::Read { .. }))),
                Err(e) => {
                    first_err = Err(e);
                    break;
                }
            }
        }
        for (c, expected, read) in pending {
            let r = self.aio_finish(c, expected, read);
            if first_err.is_ok() {
                first_err = r;
            }
        }
        first_err
    }

    fn aio_submit(&self, op: &mut AioOp<'_>) -> Result<CompletionT, Errno> {
        // Nothing is sent once the connection tripped; what was sent ends
        // within its own timeout.
        self.guard(|| Ok(()))?;
        let mut c = ptr::null_mut();
        // Safety: no callback; the completion is released in aio_finish (or
        // here on a failed submit). Buffers are borrowed by `ops` for the
        // whole batch, and aio_batch waits for every submitted request.
        unsafe {
            check((self.api.rbd_aio_create_completion)(
                ptr::null_mut(),
                None,
                &mut c,
            ))?;
            let rc = match op {
                AioOp::Read { offset, buf } => (self.api.rbd_aio_read2)(
                    self.ptr,
                    *offset,
                    buf.len(),
                    buf.as_mut_ptr().cast(),
                    c,
                    STREAM_IO_FLAGS,
                ),
                AioOp::Write { offset, data } => (self.api.rbd_aio_write2)(
                    self.ptr,
                    *offset,
                    data.len(),
                    data.as_ptr().cast(),
                    c,
                    STREAM_IO_FLAGS,
                ),
            };
            if rc < 0 {
                (self.api.rbd_aio_release)(c);
                return Err(Errno(rc.wrapping_neg()));
            }
        }
        Ok(c)
    }

    fn aio_finish(&self, c: CompletionT, expected: usize, read: bool) -> Result<(), Errno> {
        // Safety: `c` is a submitted completion, released exactly once here.
        let rc = unsafe {
            (self.api.rbd_aio_wait_for_complete)(c);
            let rc = (self.api.rbd_aio_get_return_value)(c);
            (self.api.rbd_aio_release)(c);
            rc
        };
        match (self.guard(|| check_len(rc))?, read) {
            // A read returns its length; a write returns 0 (or its length).
            (n, _) if n == expected => Ok(()),
            (0, false) => Ok(()),
            _ => Err(Errno(libc::EIO)),
        }
    }
}

impl Drop for RbdHandle {
    fn drop(&mut self) {
        if self.io.rados.breaker.is_tripped() {
            // Closing releases the exclusive lock and the watch: requests
            // to the unreachable cluster, each waiting its timeout. The
            // OSD drops both once the watch times out.
            return;
        }
        // Safety: live image, closed exactly once; `&mut self` proves no
        // other thread is inside a call on it.
        let rc = unsafe { (self.api.rbd_close)(self.ptr) };
        if rc < 0 {
            tracing::warn!(errno = -rc, "rbd_close failed");
        }
    }
}

/// One request of [`RbdHandle::aio_batch`].
pub(crate) enum AioOp<'a> {
    Read { offset: u64, buf: &'a mut [u8] },
    Write { offset: u64, data: &'a [u8] },
}

impl AioOp<'_> {
    fn expected_len(&self) -> usize {
        match self {
            AioOp::Read { buf, .. } => buf.len(),
            AioOp::Write { data, .. } => data.len(),
        }
    }
}

/// `RBD_SNAP_CREATE_SKIP_QUIESCE` (librbd.h).
const SNAP_CREATE_SKIP_QUIESCE: u32 = 1 << 0;

fn snap_create_flags(quiesce: bool) -> u32 {
    match quiesce {
        true => 0,
        false => SNAP_CREATE_SKIP_QUIESCE,
    }
}

extern "C" fn no_progress(_done: u64, _total: u64, _arg: *mut c_void) -> c_int {
    0
}

struct DiffCtx<'a, 'b> {
    visit: &'a mut (dyn FnMut(u64, u64, bool) -> bool + 'b),
    panic: Option<Box<dyn Any + Send>>,
}

/// The C callback of `rbd_diff_iterate2`: never lets a panic cross into C.
extern "C" fn diff_callback(offset: u64, len: usize, exists: c_int, arg: *mut c_void) -> c_int {
    // Safety: `arg` is the DiffCtx passed by diff_iterate, alive for the call.
    let ctx = unsafe { &mut *arg.cast::<DiffCtx<'_, '_>>() };
    if ctx.panic.is_some() {
        return -libc::ECANCELED;
    }
    let visit = &mut ctx.visit;
    match catch_unwind(AssertUnwindSafe(|| visit(offset, len as u64, exists != 0))) {
        Ok(true) => 0,
        Ok(false) => -libc::ECANCELED,
        Err(payload) => {
            ctx.panic = Some(payload);
            -libc::ECANCELED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_libraries_give_the_install_hint() {
        let err = load_api_from("libblockback-no-such-rados.so.2", "librbd.so.1")
            .map(|_| ())
            .unwrap_err();
        assert!(err.starts_with(MISSING_LIBS), "{err}");
        assert!(err.contains("libblockback-no-such-rados.so.2"), "{err}");
    }

    #[test]
    fn only_a_snapshot_without_quiesce_sets_the_skip_flag() {
        assert_eq!(snap_create_flags(true), 0);
        assert_eq!(snap_create_flags(false), 1, "RBD_SNAP_CREATE_SKIP_QUIESCE");
    }
}
