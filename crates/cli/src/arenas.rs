//! How many malloc arenas the process may use.
//!
//! glibc gives each thread that contends for the allocator an arena of its
//! own, up to eight per core, and memory freed into an arena stays with
//! it. librados' messenger threads allocate the buffer of every reply
//! (4 MiB for a whole-object read) and free it on another thread after
//! the copy, so every transfer leaves free memory spread over many
//! arenas: a differential restore of 4 GiB peaked at 232-266 MiB, with
//! four arenas at 222-241 MiB in the same time.

/// The arenas allowed; enough for the transfer's few hot threads.
const ARENAS: i32 = 4;

/// Caps the arenas at [`ARENAS`], unless the user set `MALLOC_ARENA_MAX`
/// (glibc has read it already; theirs wins). Call first thing in `main`,
/// before any thread exists.
pub fn limit() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    // SAFETY: mallopt only changes the allocator's parameters; no thread
    // but this one exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, ARENAS);
    }
}
