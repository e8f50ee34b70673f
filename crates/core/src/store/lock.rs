//! flock-based locks (see docs/store.md, "Locking").
//!
//! - `<store>/lock`: every read-write image handle holds it shared for its
//!   lifetime; gc holds it exclusive. So gc never runs while a backup
//!   writes, in this process or another.
//! - `<store>/images/<image>/lock`: the read-write handle of an image holds
//!   it exclusive, so a second writer (or remove) gets `Busy`.

use super::error::{Result, StoreError};
use super::meta::{image_dir, LOCK_FILE};
use fs2::FileExt;
use std::fs::{File, OpenOptions};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a writer waits for a running gc before giving up with Busy.
pub const WRITER_WAIT: Duration = Duration::from_secs(10);
/// How long gc waits for writers to finish before giving up with Busy.
pub const GC_WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(50);

fn open_lock_file(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| StoreError::io_path(path, e))
}

/// Polls `try_lock` until it succeeds or `wait` has passed.
fn acquire(
    path: &Path,
    wait: Duration,
    why: &str,
    try_lock: impl Fn(&File) -> std::io::Result<()>,
) -> Result<File> {
    let file = open_lock_file(path)?;
    let deadline = Instant::now() + wait;
    loop {
        match try_lock(&file) {
            Ok(()) => return Ok(file),
            Err(e) if e.raw_os_error() == fs2::lock_contended_error().raw_os_error() => {
                if Instant::now() >= deadline {
                    return Err(StoreError::Busy {
                        what: path.display().to_string(),
                        why: why.into(),
                    });
                }
                std::thread::sleep(POLL);
            }
            Err(e) => return Err(StoreError::io_path(path, e)),
        }
    }
}

/// Shared store lock of a writer (waits up to [`WRITER_WAIT`] for gc).
pub fn store_shared(root: &Path) -> Result<File> {
    acquire(&root.join(LOCK_FILE), WRITER_WAIT, "gc is running", |f| {
        FileExt::try_lock_shared(f)
    })
}

/// Exclusive store lock of gc (waits up to `wait` for writers).
pub fn store_exclusive(root: &Path, wait: Duration) -> Result<File> {
    let why = "images are open for writing; retry gc when backups have finished";
    acquire(&root.join(LOCK_FILE), wait, why, |f| {
        FileExt::try_lock_exclusive(f)
    })
}

/// Exclusive image lock of the writer; Busy at once when held elsewhere.
pub fn image_exclusive(root: &Path, image: &str) -> Result<File> {
    let path = image_dir(root, image).join(LOCK_FILE);
    if !path.exists() {
        return Err(StoreError::NotFound {
            what: format!("image {image}"),
        });
    }
    acquire(&path, Duration::ZERO, "open for writing elsewhere", |f| {
        FileExt::try_lock_exclusive(f)
    })
}

/// Exclusive lock of key-slot changes (`<store>/keys.lock`, created on
/// demand): two `key` commands never lose each other's slots. Waits up to
/// 10 s.
pub fn keys_exclusive(root: &Path) -> Result<File> {
    acquire(
        &root.join(super::keys::KEYS_LOCK),
        WRITER_WAIT,
        "another key change is running",
        FileExt::try_lock_exclusive,
    )
}
