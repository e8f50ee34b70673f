//! How many malloc arenas the process may use.
//!
//! glibc gives each thread that contends for the allocator an arena of its
//! own, up to eight per core, and memory freed into an arena stays with
//! it. librados' messenger threads allocate the buffer of every reply
//! (4 MiB for a whole-object read) and free it on another thread after
//! the copy, so every transfer leaves free memory spread over many
//! arenas: a differential restore of 4 GiB peaked at 232-266 MiB, with
//! four arenas at 222-241 MiB in the same time.
//!
//! Within an arena, freed blocks between live ones stay resident too: a
//! full backup of a thin TiB volume held about twice its heap's peak
//! (232-305 MiB for 144 MiB). So a thread looks at the resident size
//! every [`TRIM_INTERVAL`] and, above [`TRIM_ABOVE`], hands the free
//! pages of every arena back to the kernel (`malloc_trim`): that full
//! backup then peaked at 213-225 MiB. Not below: trimming every 250 ms
//! whatever the size made a 1 GiB full backup 1.03 -> 1.10 of `rbd
//! import` in one A/B (its freed pages faulted in again), for memory it
//! did not need back.

/// The arenas the service may use: its concurrent jobs and requests
/// allocate at once.
pub const SERVICE_ARENAS: i32 = 4;

/// The arenas a command running one transfer may use. Fewer arenas hold
/// less freed memory to hand back and fault in again: a 4 GiB differential
/// restore under the 2 ms profile took 6.62 s (2.33 s system time) with
/// two, 6.72 s (2.68 s) with four, peaking at 204 vs 209 MiB; one was no
/// faster than two.
pub const TRANSFER_ARENAS: i32 = 2;

/// Caps the arenas at `arenas`, unless the user set `MALLOC_ARENA_MAX`
/// (glibc has read it already; theirs wins). Call before any thread
/// exists.
pub fn limit(arenas: i32) {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    // SAFETY: mallopt only changes the allocator's parameters; no thread
    // but this one exists yet.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, arenas);
    }
}

/// How often the resident size is looked at.
const TRIM_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// Resident bytes above which free arena pages go back to the kernel:
/// under the 256 MiB a CLI operation may use, with room for what grows
/// in one interval.
const TRIM_ABOVE: u64 = 192 << 20;

/// Starts the thread that trims the arenas for the rest of the process.
pub fn trim_in_background() {
    let spawned = std::thread::Builder::new()
        .name("malloc-trim".into())
        .spawn(|| loop {
            std::thread::sleep(TRIM_INTERVAL);
            if resident_bytes().is_some_and(|rss| rss > TRIM_ABOVE) {
                // SAFETY: malloc_trim takes each arena's lock itself.
                unsafe {
                    libc::malloc_trim(0);
                }
            }
        });
    // Without it the process only holds more memory than it might.
    drop(spawned);
}

/// The process's resident size (`/proc/self/statm`).
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a constant of the system.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}
