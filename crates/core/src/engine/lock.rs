//! Per-volume and per-backup locks.
//!
//! - volume lock, `<dir>/volume-<id>.lock`, exclusive: one backup or delete
//!   of a volume at a time, and a restore onto a volume the catalog knows;
//! - backup lock, `<dir>/backup-<id>.lock`: shared by every restore reading
//!   the backup, exclusive for its delete.
//!
//! Each is an flock; the kernel drops it when the process dies, which is
//! how an interrupted operation is recognised.

use super::error::{EngineError, EngineResult};
use fs2::FileExt;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};

/// A held volume or backup lock; released on drop.
#[derive(Debug)]
pub struct VolumeLock {
    _file: File,
}

/// How a lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    Shared,
    Exclusive,
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
        self.try_lock_file(&format!("volume-{volume}.lock"), LockMode::Exclusive)
    }

    /// Takes the lock of backup `id` in `mode`, or `None` when a holder
    /// excludes it (restores share it, a delete holds it alone).
    pub fn try_lock_backup(&self, id: &str, mode: LockMode) -> EngineResult<Option<VolumeLock>> {
        self.try_lock_file(&format!("backup-{id}.lock"), mode)
    }

    fn try_lock_file(&self, name: &str, mode: LockMode) -> EngineResult<Option<VolumeLock>> {
        fs::create_dir_all(&self.dir).map_err(|e| self.io_error(e))?;
        let path = self.dir.join(name);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| EngineError::Io {
                what: path.display().to_string(),
                source: e,
            })?;
        let taken = match mode {
            LockMode::Shared => FileExt::try_lock_shared(&file),
            LockMode::Exclusive => FileExt::try_lock_exclusive(&file),
        };
        match taken {
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

    #[test]
    fn backup_locks_are_shared_by_restores_and_exclusive_for_delete() {
        let dir = tempfile::tempdir().unwrap();
        let locks = LockDir::new(dir.path());
        let first = locks.try_lock_backup("b", LockMode::Shared).unwrap();
        let second = locks.try_lock_backup("b", LockMode::Shared).unwrap();
        assert!(first.is_some() && second.is_some());
        assert!(locks
            .try_lock_backup("b", LockMode::Exclusive)
            .unwrap()
            .is_none());
        drop((first, second));
        let alone = locks.try_lock_backup("b", LockMode::Exclusive).unwrap();
        assert!(alone.is_some());
        assert!(locks
            .try_lock_backup("b", LockMode::Shared)
            .unwrap()
            .is_none());
    }
}
