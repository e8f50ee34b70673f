//! Per-volume locks: one backup, restore or delete of a volume at a time.
//!
//! A lock is an flock on `<dir>/volume-<id>.lock`; the kernel drops it when
//! the process dies, which is how an interrupted operation is recognised.

use super::error::{EngineError, EngineResult};
use fs2::FileExt;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

/// A held volume lock; released on drop.
#[derive(Debug)]
pub struct VolumeLock {
    _file: File,
}

/// The directory holding volume lock files.
#[derive(Debug, Clone)]
pub struct LockDir {
    dir: PathBuf,
}

impl LockDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LockDir { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Takes the lock of `volume`, or `None` when someone else holds it.
    pub fn try_lock(&self, volume: &str) -> EngineResult<Option<VolumeLock>> {
        fs::create_dir_all(&self.dir).map_err(|e| self.io_error(e))?;
        let path = self.dir.join(format!("volume-{volume}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| EngineError::Io {
                what: path.display().to_string(),
                source: e,
            })?;
        match file.try_lock_exclusive() {
            Ok(()) => Ok(Some(VolumeLock { _file: file })),
            Err(e) if e.raw_os_error() == fs2::lock_contended_error().raw_os_error() => Ok(None),
            Err(e) => Err(EngineError::Io {
                what: path.display().to_string(),
                source: e,
            }),
        }
    }

    fn io_error(&self, source: std::io::Error) -> EngineError {
        EngineError::Io {
            what: format!("lock directory {}", self.dir.display()),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_refused_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let locks = LockDir::new(dir.path());
        let held = locks.try_lock("v1").unwrap().expect("free");
        assert!(locks.try_lock("v1").unwrap().is_none());
        assert!(locks.try_lock("v2").unwrap().is_some());
        drop(held);
        assert!(locks.try_lock("v1").unwrap().is_some());
    }
}
