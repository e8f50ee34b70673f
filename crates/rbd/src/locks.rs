//! Cluster-wide volume and backup locks: RADOS advisory locks on objects
//! of the store's pool, so every host backing up into one pool (workers of
//! one service, a CLI elsewhere) sees them.
//!
//! The lock of `volume-<id>` (or `backup-<id>`) is lock `blockback` on
//! object `blockback.lock.volume-<id>` in the pool of the chain's store
//! (`rbd:POOL`). Each holder has its own cookie (host, pid, counter) and
//! takes the lock for a lease ([`RadosLocks::lease`], 30 s by default) that
//! a thread renews every quarter of it. A holder that dies stops renewing:
//! the OSD lets the lock expire after the lease, and the next taker gets
//! it -- nothing is broken while its holder can still renew. A holder
//! whose renewal fails (the lock expired and another took it, or the
//! cluster did not answer in time) marks its [`Lease`] lost, and so does
//! one whose lease ran out unrenewed; the engine checks before publishing.
//! Releasing an exclusive lock removes its object in the same atomic
//! operation, so locks leave nothing behind in the pool.

use blockback_core::engine::{
    EngineError, EngineResult, HeldLock, Lease, LockMode, LockTarget, Locks,
};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::cluster::Cluster;
use crate::error::from_errno;
use crate::ffi::{IoCtx, LockSpec, Locker};
use crate::spec::RbdSpec;

/// The lock's name on its object (one lock per object).
const LOCK_NAME: &str = "blockback";
/// Tag shared by the holders of a shared lock (restores of one backup).
const SHARED_TAG: &str = "blockback-shared";
/// Lease of a lock unless configured.
pub const DEFAULT_LOCK_LEASE: Duration = Duration::from_secs(30);

/// Locks in the pools of one cluster.
pub struct RadosLocks {
    cluster: Arc<Cluster>,
    lease: Duration,
    pools: Mutex<BTreeMap<String, Arc<IoCtx>>>,
}

impl RadosLocks {
    pub fn new(cluster: Arc<Cluster>, lease: Duration) -> Self {
        RadosLocks {
            cluster,
            lease: lease.max(Duration::from_secs(2)),
            pools: Mutex::new(BTreeMap::new()),
        }
    }

    /// How long a lock outlives its holder's last renewal.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// The object holding `target`'s lock.
    pub fn object_name(target: &LockTarget<'_>) -> String {
        format!("blockback.lock.{}", target.name())
    }

    fn pool(&self, name: &str) -> EngineResult<Arc<IoCtx>> {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(io) = pools.get(name) {
            return Ok(io.clone());
        }
        let pool = CString::new(name).map_err(|_| invalid(format!("pool {name:?}")))?;
        let io = IoCtx::create(self.cluster.rados(), &pool)
            .map_err(|e| from_errno(e, format!("pool {name} (for its locks)")))?;
        let io = Arc::new(io);
        pools.insert(name.to_string(), io.clone());
        Ok(io)
    }
}

fn invalid(what: String) -> EngineError {
    EngineError::Invalid(format!("{what}: not usable as a RADOS lock name"))
}

impl Locks for RadosLocks {
    /// `target.store` must be an RBD store (`rbd:POOL`).
    fn try_lock(&self, target: &LockTarget<'_>, mode: LockMode) -> EngineResult<Option<HeldLock>> {
        let pool = match RbdSpec::parse(target.store) {
            Ok(spec) if RbdSpec::is_rbd(target.store) && spec.image.is_none() => spec.pool,
            _ => {
                return Err(EngineError::Invalid(format!(
                    "{} is not an RBD store; cluster locks live in rbd:POOL stores",
                    target.store
                )))
            }
        };
        let io = self.pool(&pool)?;
        let owned = OwnedSpec::new(target, mode, self.lease)?;
        let what = format!("lock {} in pool {pool}", owned.oid.to_string_lossy());
        let started = Instant::now();
        match io.lock(&owned.spec(), false) {
            Ok(()) => {}
            Err(e) if e.0 == libc::EBUSY => return Ok(None),
            Err(e) => return Err(from_errno(e, what).into()),
        }
        let lease = Lease::new(started + self.lease);
        let guard = Renewer::start(io, owned, lease.clone(), what);
        Ok(Some(HeldLock::leased(target.name(), guard, lease)))
    }

    /// Read from the OSD: each holder's description (host and pid) and
    /// when its lease runs out.
    fn holder(&self, target: &LockTarget<'_>) -> Option<String> {
        let spec = RbdSpec::parse(target.store).ok()?;
        let io = self.pool(&spec.pool).ok()?;
        let oid = CString::new(RadosLocks::object_name(target)).ok()?;
        let name = CString::new(LOCK_NAME).ok()?;
        match io.lockers(&oid, &name) {
            Ok(lockers) if !lockers.is_empty() => Some(describe(&lockers, SystemTime::now())),
            Ok(_) => None,
            Err(e) => {
                tracing::debug!("reading the holder of {}: {}", oid.to_string_lossy(), e.0);
                None
            }
        }
    }
}

/// "held by blockback on HOST pid PID until 07:40:01 UTC (in 23 s ...)".
fn describe(lockers: &[Locker], now: SystemTime) -> String {
    let each: Vec<String> = lockers
        .iter()
        .map(|l| match l.expires {
            Some(at) => {
                let left = at.duration_since(now).unwrap_or_default().as_secs();
                let secs = at
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs();
                format!(
                    "{} until {:02}:{:02}:{:02} UTC (in {left} s; renewed while it runs, the lock \
                     lapses then if its holder died)",
                    l.description,
                    secs / 3600 % 24,
                    secs / 60 % 60,
                    secs % 60
                )
            }
            None => format!("{} (with no lease)", l.description),
        })
        .collect();
    format!("held by {}", each.join("; and by "))
}

/// A lock's names, owned for the renewer thread.
struct OwnedSpec {
    oid: CString,
    name: CString,
    cookie: CString,
    description: CString,
    shared_tag: Option<CString>,
    duration: Duration,
}

impl OwnedSpec {
    fn new(target: &LockTarget<'_>, mode: LockMode, duration: Duration) -> EngineResult<Self> {
        let text = |s: String| CString::new(s.clone()).map_err(|_| invalid(s));
        Ok(OwnedSpec {
            oid: text(RadosLocks::object_name(target))?,
            name: text(LOCK_NAME.into())?,
            cookie: text(new_cookie())?,
            description: text(format!(
                "blockback on {} pid {}",
                hostname(),
                std::process::id()
            ))?,
            shared_tag: match mode {
                LockMode::Shared => Some(text(SHARED_TAG.into())?),
                LockMode::Exclusive => None,
            },
            duration,
        })
    }

    fn spec(&self) -> LockSpec<'_> {
        LockSpec {
            oid: &self.oid,
            name: &self.name,
            cookie: &self.cookie,
            description: &self.description,
            shared_tag: self.shared_tag.as_deref(),
            duration: self.duration,
        }
    }
}

/// A cookie no other holder has: host, pid, and a counter of this process.
fn new_cookie() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}.{}.{nanos}.{n}", hostname(), std::process::id())
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: a valid buffer of the given length; gethostname NUL-terminates
    // within it on success.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown-host".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Renews a held lock until released; releases it on drop.
struct Renewer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
    io: Arc<IoCtx>,
    spec: Arc<OwnedSpec>,
    what: String,
}

impl Renewer {
    fn start(io: Arc<IoCtx>, spec: OwnedSpec, lease: Lease, what: String) -> Self {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let spec = Arc::new(spec);
        let thread = {
            let (stop, io, spec, what) = (stop.clone(), io.clone(), spec.clone(), what.clone());
            std::thread::Builder::new()
                .name("lock-renewer".into())
                .spawn(move || renew_until_stopped(&stop, &io, &spec, &lease, &what))
                .ok()
        };
        Renewer {
            stop,
            thread,
            io,
            spec,
            what,
        }
    }
}

fn renew_until_stopped(
    stop: &(Mutex<bool>, Condvar),
    io: &IoCtx,
    spec: &OwnedSpec,
    lease: &Lease,
    what: &str,
) {
    let every = spec.duration / 4;
    let mut stopped = stop.0.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        stopped = stop
            .1
            .wait_timeout_while(stopped, every, |s| !*s)
            .unwrap_or_else(|e| e.into_inner())
            .0;
        if *stopped {
            return;
        }
        let started = Instant::now();
        match io.lock(&spec.spec(), true) {
            Ok(()) => lease.renewed(started + spec.duration),
            Err(e) if e.0 == libc::EBUSY => {
                let why = "it expired and another holder took it".to_string();
                tracing::error!("{what}: lost: {why}");
                lease.lose(why);
                return;
            }
            // Retried at the next turn; the lease runs out meanwhile if
            // the cluster keeps failing.
            Err(e) => tracing::warn!("{what}: renewing: {}", from_errno(e, what)),
        }
    }
}

impl Drop for Renewer {
    fn drop(&mut self) {
        *self.stop.0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.stop.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let spec = self.spec.spec();
        let released = match spec.shared_tag {
            // Other restores may hold it too: the object stays (the
            // backup's delete, exclusive, removes it).
            Some(_) => self.io.unlock(&spec),
            None => self.io.unlock_and_remove(&spec),
        };
        match released {
            Ok(()) => {}
            Err(e) if e.0 == libc::ENOENT => {
                tracing::warn!("{}: already released (its lease had run out)", self.what)
            }
            Err(e) => tracing::warn!("{}: releasing: {}", self.what, from_errno(e, &self.what)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_is_named_with_its_lease() {
        let at = |secs| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        let lockers = [Locker {
            cookie: "c".into(),
            description: "blockback on h1 pid 7".into(),
            expires: Some(at(86_400 + 7 * 3600 + 40 * 60 + 1)),
        }];
        assert_eq!(
            describe(&lockers, at(86_400 + 7 * 3600 + 39 * 60 + 38)),
            "held by blockback on h1 pid 7 until 07:40:01 UTC (in 23 s; renewed while it runs, \
             the lock lapses then if its holder died)"
        );
    }
}
