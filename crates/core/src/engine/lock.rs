//! Per-volume and per-backup locks, behind the [`Locks`] trait.
//!
//! - volume lock, exclusive: one backup or delete of a volume at a time,
//!   and a restore onto a volume the catalog knows (every chain belongs to
//!   one volume, so this is also the lock of the volume's chains);
//! - backup lock: shared by every restore reading the backup, exclusive
//!   for its delete.
//!
//! Each names the store its chain lives in, so an implementation can put
//! the lock where the chain is: [`LockDir`] holds flocks on one host (the
//! kernel drops them when the process dies, which is how an interrupted
//! operation is recognised); `blockback-ops` adds cluster-wide RADOS locks
//! for RBD stores. A cluster-wide lock is a lease that its holder renews;
//! one that could not be renewed is lost ([`Lease`]), and the engine
//! checks before it publishes a backup.

use super::error::{EngineError, EngineResult};
use fs2::FileExt;
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// How a lock is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    Shared,
    Exclusive,
}

/// What is locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    Volume,
    Backup,
}

/// One lock: the volume or backup `id`, whose chain lives in `store`
/// (the store's label as backups record it: a directory or `rbd:POOL`).
#[derive(Debug, Clone, Copy)]
pub struct LockTarget<'a> {
    pub kind: LockKind,
    pub id: &'a str,
    pub store: &'a str,
}

impl LockTarget<'_> {
    /// `volume-<id>` or `backup-<id>`.
    pub fn name(&self) -> String {
        match self.kind {
            LockKind::Volume => format!("volume-{}", self.id),
            LockKind::Backup => format!("backup-{}", self.id),
        }
    }
}

/// Where locks are taken.
pub trait Locks: Send + Sync {
    /// Takes `target` in `mode` without waiting; `None` when another
    /// holder excludes it.
    fn try_lock(&self, target: &LockTarget<'_>, mode: LockMode) -> EngineResult<Option<HeldLock>>;

    /// Who holds `target`, as a phrase for a "busy" error ("held by ...
    /// until ..."), where the lock records it (cluster locks do); `None`
    /// when it cannot say.
    fn holder(&self, _target: &LockTarget<'_>) -> Option<String> {
        None
    }

    /// The error for volume `id` (its chains in `store`, its source
    /// `source_name`) being locked by another holder, naming the holder
    /// when the lock can.
    fn volume_busy(&self, id: &str, store: &str, source_name: &str) -> EngineError {
        let target = LockTarget {
            kind: LockKind::Volume,
            id,
            store,
        };
        EngineError::VolumeBusy {
            volume: id.to_string(),
            source_name: source_name.to_string(),
            holder: self
                .holder(&target)
                .unwrap_or_else(|| "on this host or another".into()),
        }
    }

    /// The exclusive lock of volume `id` (its chains in `store`).
    fn try_lock_volume(&self, id: &str, store: &str) -> EngineResult<Option<HeldLock>> {
        let target = LockTarget {
            kind: LockKind::Volume,
            id,
            store,
        };
        self.try_lock(&target, LockMode::Exclusive)
    }

    /// The lock of backup `id` in `store`, shared (restores) or exclusive
    /// (its delete).
    fn try_lock_backup(
        &self,
        id: &str,
        store: &str,
        mode: LockMode,
    ) -> EngineResult<Option<HeldLock>> {
        let target = LockTarget {
            kind: LockKind::Backup,
            id,
            store,
        };
        self.try_lock(&target, mode)
    }
}

/// Whether a leased lock still holds, shared by its holder and whatever
/// renews it. Lost once a renewal failed, or once it went unrenewed for
/// its whole duration (the holder then assumes the lock expired and
/// someone else may have it, even before a renewal reports back).
#[derive(Debug, Clone)]
pub struct Lease(Arc<Mutex<LeaseState>>);

#[derive(Debug)]
struct LeaseState {
    valid_until: Instant,
    lost: Option<String>,
}

impl Lease {
    /// A lease valid until `until`.
    pub fn new(until: Instant) -> Self {
        Lease(Arc::new(Mutex::new(LeaseState {
            valid_until: until,
            lost: None,
        })))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, LeaseState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a renewal; the lease now holds until `until`. A lease that
    /// had already run out stays lost: someone may have held the lock
    /// in between, even if the renewal took it back.
    pub fn renewed(&self, until: Instant) {
        let mut s = self.state();
        if Instant::now() >= s.valid_until {
            s.lost
                .get_or_insert_with(|| "its lease ran out before it was renewed".into());
        }
        if s.lost.is_none() {
            s.valid_until = until;
        }
    }

    /// Records that the lock is gone, and why.
    pub fn lose(&self, why: String) {
        self.state().lost.get_or_insert(why);
    }

    /// Whether `other` is this same lease.
    pub fn same(&self, other: &Lease) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// `Err(why)` once the lease is lost or ran out.
    pub fn check(&self) -> Result<(), String> {
        let s = self.state();
        match &s.lost {
            Some(why) => Err(why.clone()),
            None if Instant::now() >= s.valid_until => {
                Err("its lease ran out before it was renewed".into())
            }
            None => Ok(()),
        }
    }
}

/// A held lock, of one or several layers (a host's flock and a cluster
/// lock); released on drop, in reverse order of taking.
pub struct HeldLock {
    name: String,
    guards: Vec<Box<dyn Send + Sync>>,
    leases: Vec<Lease>,
}

impl std::fmt::Debug for HeldLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HeldLock({}, {} layers)", self.name, self.guards.len())
    }
}

impl HeldLock {
    /// A lock held as long as `guard` lives.
    pub fn new(name: impl Into<String>, guard: impl Send + Sync + 'static) -> Self {
        HeldLock {
            name: name.into(),
            guards: vec![Box::new(guard)],
            leases: Vec::new(),
        }
    }

    /// A lock held as long as `guard` lives and `lease` holds.
    pub fn leased(
        name: impl Into<String>,
        guard: impl Send + Sync + 'static,
        lease: Lease,
    ) -> Self {
        let mut held = HeldLock::new(name, guard);
        held.leases.push(lease);
        held
    }

    /// This lock and `inner`, taken after it: released first.
    pub fn and(mut self, mut inner: HeldLock) -> Self {
        self.guards.append(&mut inner.guards);
        self.leases.append(&mut inner.leases);
        self
    }

    /// The leases of its layers.
    pub fn leases(&self) -> &[Lease] {
        &self.leases
    }

    /// [`EngineError::LockLost`] when a layer's lease is lost.
    pub fn check(&self) -> EngineResult<()> {
        self.leases.iter().try_for_each(|l| {
            l.check().map_err(|why| EngineError::LockLost {
                lock: self.name.clone(),
                why,
            })
        })
    }
}

impl Drop for HeldLock {
    fn drop(&mut self) {
        while let Some(guard) = self.guards.pop() {
            drop(guard);
        }
    }
}

/// The directory holding flock files: the locks of one host.
#[derive(Debug, Clone)]
pub struct LockDir {
    dir: PathBuf,
}

impl Locks for LockDir {
    /// Flocks ignore the store: on one host a volume's lock covers all
    /// its chains, as it always did.
    fn try_lock(&self, target: &LockTarget<'_>, mode: LockMode) -> EngineResult<Option<HeldLock>> {
        let name = target.name();
        let file = self.try_lock_file(&format!("{name}.lock"), mode)?;
        Ok(file.map(|f| HeldLock::new(name, f)))
    }
}

impl LockDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LockDir { dir: dir.into() }
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn try_lock_file(&self, name: &str, mode: LockMode) -> EngineResult<Option<File>> {
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
            Ok(()) => Ok(Some(file)),
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
    use std::time::Duration;

    #[test]
    fn a_held_lock_is_refused_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let locks = LockDir::new(dir.path());
        let held = locks.try_lock_volume("v1", "s").unwrap().expect("free");
        assert!(locks.try_lock_volume("v1", "s").unwrap().is_none());
        assert!(locks
            .try_lock_volume("v1", "other store")
            .unwrap()
            .is_none());
        assert!(locks.try_lock_volume("v2", "s").unwrap().is_some());
        drop(held);
        assert!(locks.try_lock_volume("v1", "s").unwrap().is_some());
    }

    #[test]
    fn backup_locks_are_shared_by_restores_and_exclusive_for_delete() {
        let dir = tempfile::tempdir().unwrap();
        let locks = LockDir::new(dir.path());
        let lock = |mode| locks.try_lock_backup("b", "s", mode).unwrap();
        let first = lock(LockMode::Shared);
        let second = lock(LockMode::Shared);
        assert!(first.is_some() && second.is_some());
        assert!(lock(LockMode::Exclusive).is_none());
        drop((first, second));
        let alone = lock(LockMode::Exclusive);
        assert!(alone.is_some());
        assert!(lock(LockMode::Shared).is_none());
    }

    #[test]
    fn a_lease_is_lost_when_told_or_when_it_runs_out() {
        let soon = || Instant::now() + Duration::from_secs(60);
        let lease = Lease::new(soon());
        let held = HeldLock::leased("volume-v", (), lease.clone());
        lease.renewed(soon());
        assert!(held.check().is_ok());
        lease.lose("another holder took it".into());
        lease.renewed(soon());
        let e = held.check().unwrap_err().to_string();
        assert!(
            e.contains("volume-v") && e.contains("another holder took it"),
            "{e}"
        );

        let lapsed = Lease::new(Instant::now() + Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(30));
        assert!(lapsed.check().unwrap_err().contains("ran out"));
        lapsed.renewed(soon());
        assert!(
            lapsed.check().unwrap_err().contains("ran out"),
            "stays lost"
        );
    }

    #[test]
    fn layers_are_released_inner_first() {
        struct Note(&'static str, Arc<Mutex<Vec<&'static str>>>);
        impl Drop for Note {
            fn drop(&mut self) {
                self.1.lock().unwrap().push(self.0);
            }
        }
        let order = Arc::new(Mutex::new(Vec::new()));
        let outer = HeldLock::new("x", Note("host", order.clone()));
        let both = outer.and(HeldLock::new("x", Note("cluster", order.clone())));
        drop(both);
        assert_eq!(*order.lock().unwrap(), vec!["cluster", "host"]);
    }
}
