//! Block digests in the backup store, so any host can continue any chain.
//!
//! A backup's digest file ([`super::digests`]) lives in the state_dir of
//! the host that made it; workers on other hosts share only the catalog
//! and the store. So the file is also published in the backup's store as
//! write-once objects `backup.<id>.digests.<n>`: its bytes cut into
//! segments of [`SEGMENT_BYTES`] (1 MiB of digests per GiB of volume;
//! objects are capped at [`crate::objects::MAX_OBJECT_SIZE`]), numbered
//! from 0; the count follows from the backup's recorded size.
//!
//! Order: the local file, then the segments, then the catalog marks the
//! backup available, so an available backup has its segments. A backup of
//! a source unchanged since its parent has the parent's digests: it
//! publishes no segments of its own but names, in its record's metadata
//! ([`DIGESTS_IN`]), the backup whose segments hold them; segments shared
//! so are removed only once no other backup that may still be a parent
//! names them (a TiB volume's digests are 1 GiB: copying them made an
//! unchanged backup's cost grow with the volume). A host whose
//! own copy is missing or does not make the record's checksum fetches the
//! segments and keeps them only when they make that checksum (the volume
//! checksum is a hash over the digests, so the catalog vouches for them);
//! a wrong copy is an error, never used. The segments go with the local
//! file: when the backup is deleted, fails or is recovered, and when it can
//! no longer be a parent.

use super::digests::{file_len, DigestDir};
use super::error::{EngineError, EngineResult};
use super::Engine;
use crate::catalog::{BackupRecord, BackupStatus};
use crate::image::{ImageError, Pool};
use std::os::unix::fs::FileExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use uuid::Uuid;

/// Record metadata key: the id of the backup whose segments in the store
/// hold this backup's digests, when not its own.
pub const DIGESTS_IN: &str = "digests.in";

/// The backup whose segments hold `record`'s digests.
pub fn segments_owner(record: &BackupRecord) -> Uuid {
    record
        .metadata
        .get(DIGESTS_IN)
        .and_then(|id| Uuid::parse_str(id).ok())
        .unwrap_or(record.id)
}

/// The bytes of a digest file per segment object.
pub const SEGMENT_BYTES: u64 = 4 << 20;

/// The name of segment `n` of `backup`'s digests.
pub fn segment_name(backup: Uuid, n: u64) -> String {
    format!("backup.{backup}.digests.{n}")
}

/// The segments of the digests of a volume of `size` bytes.
fn segment_count(size: u64) -> u64 {
    file_len(size).div_ceil(SEGMENT_BYTES)
}

/// Segment objects written or removed at once: each is a round trip, and a
/// TiB volume's digests are 256 segments (at most this many 4 MiB
/// buffers are held).
const SEGMENTS_IN_FLIGHT: usize = 8;

/// Publishes `backup`'s local digest file in `store`.
pub(super) fn publish(dir: &DigestDir, store: &dyn Pool, backup: Uuid) -> EngineResult<()> {
    let file = dir.open_file(backup)?;
    let io = |e| EngineError::Io {
        what: format!("the block digests of backup {backup}"),
        source: e,
    };
    let len = file.metadata().map_err(io)?.len();
    each_segment(len.div_ceil(SEGMENT_BYTES), &|n| {
        let start = n * SEGMENT_BYTES;
        let mut segment = vec![0u8; (len - start).min(SEGMENT_BYTES) as usize];
        file.read_exact_at(&mut segment, start).map_err(io)?;
        put_once(store, &segment_name(backup, n), &segment)
    })
}

/// Runs `work` for each of segments `0..count`, up to
/// [`SEGMENTS_IN_FLIGHT`] at a time; after the first error no new segment
/// starts, and that error is returned.
fn each_segment(count: u64, work: &(dyn Fn(u64) -> EngineResult<()> + Sync)) -> EngineResult<()> {
    let next = AtomicU64::new(0);
    let failure = Mutex::new(None);
    let worker = || {
        while failure.lock().map_or(true, |f| f.is_none()) {
            let n = next.fetch_add(1, Ordering::Relaxed);
            if n >= count {
                return;
            }
            if let Err(e) = work(n) {
                if let Ok(mut f) = failure.lock() {
                    f.get_or_insert(e);
                }
                return;
            }
        }
    };
    let workers = SEGMENTS_IN_FLIGHT.min(count as usize);
    std::thread::scope(|s| {
        for _ in 1..workers {
            s.spawn(worker);
        }
        worker();
    });
    match failure.into_inner() {
        Ok(Some(e)) => Err(e),
        _ => Ok(()),
    }
}

/// Writes a write-once object; one already there with the same content is
/// fine (a repeated publish), one with other content is replaced (it can
/// only be a damaged copy: a backup's digests never change).
fn put_once(store: &dyn Pool, name: &str, data: &[u8]) -> EngineResult<()> {
    match store.put_object(name, data) {
        Err(ImageError::Exists { .. }) => {
            if store.get_object(name)?.as_deref() == Some(data) {
                return Ok(());
            }
            store.remove_object(name)?;
            Ok(store.put_object(name, data)?)
        }
        other => Ok(other?),
    }
}

/// Fetches `record`'s digests from `store` into `dir` when they make its
/// recorded checksum. `Ok(false)`: the store has none (a backup made
/// before digests were published, or one whose digests were removed);
/// an incomplete or wrong copy is an error.
pub(super) fn fetch(
    dir: &DigestDir,
    store: &dyn Pool,
    record: &BackupRecord,
) -> EngineResult<bool> {
    let Some(checksum) = record.checksum.as_deref() else {
        return Ok(false);
    };
    let owner = segments_owner(record);
    let Some(first) = store.get_object(&segment_name(owner, 0))? else {
        return Ok(false);
    };
    let rest = (1..segment_count(record.size)).map(|n| {
        let name = segment_name(owner, n);
        store.get_object(&name)?.ok_or_else(|| {
            EngineError::Invalid(format!(
                "object {name} of {} is missing: the block digests there are incomplete",
                store.describe()
            ))
        })
    });
    dir.import(record.id, checksum, std::iter::once(Ok(first)).chain(rest))?;
    Ok(true)
}

/// Removes the segments of `owner`'s digests (of a volume of `size`
/// bytes) from `store`; missing ones are fine.
fn remove_segments(store: &dyn Pool, owner: Uuid, size: u64) -> EngineResult<()> {
    each_segment(segment_count(size), &|n| {
        Ok(store.remove_object(&segment_name(owner, n))?)
    })
}

/// Which other backups may still read the digests whose segments are being
/// given up.
pub(super) enum Holders<'h> {
    /// Those whose record is available, restoring or being made: when the
    /// caller cannot tell more (a shared segment may outlive its last
    /// reader until the backups naming it are deleted).
    Recorded,
    /// Exactly these (the pruning knows which backups keep their source
    /// snapshots, i.e. may still be parents, the one being published
    /// among them before the catalog has its final record).
    These(&'h [&'h BackupRecord]),
}

impl Engine<'_> {
    /// Makes sure `record`'s digests are in this host's state_dir and make
    /// its checksum, fetching them from `store` when not. `Ok(false)`: no
    /// copy anywhere; `Err`: the store's copy is incomplete or wrong (it is
    /// not kept; the caller goes on as without digests).
    pub(super) fn digests_at_hand(
        &self,
        store: &dyn Pool,
        record: &BackupRecord,
    ) -> EngineResult<bool> {
        let Some(checksum) = record.checksum.as_deref() else {
            return Ok(false);
        };
        if self.digests.valid(record.id, checksum) {
            return Ok(true);
        }
        let fetched = fetch(&self.digests, store, record)?;
        if fetched {
            tracing::info!(
                "fetched the block digests of backup {} from {}",
                record.id,
                store.describe()
            );
        }
        Ok(fetched)
    }

    /// Publishes `backup`'s committed local digests in `store`.
    pub(super) fn publish_digests(&self, store: &dyn Pool, backup: Uuid) -> EngineResult<()> {
        publish(&self.digests, store, backup)
    }

    /// Removes `record`'s digests here and in `store`.
    pub(super) fn remove_digests(
        &self,
        store: &dyn Pool,
        record: &BackupRecord,
    ) -> EngineResult<()> {
        self.digests.remove(record.id)?;
        self.remove_store_digests(store, record, Holders::Recorded)
    }

    /// Gives up `record`'s digests in `store`: removes the segments that
    /// hold them unless another of `holders` shares them.
    pub(super) fn remove_store_digests(
        &self,
        store: &dyn Pool,
        record: &BackupRecord,
        holders: Holders<'_>,
    ) -> EngineResult<()> {
        let owner = segments_owner(record);
        let shares = |b: &BackupRecord| {
            b.id != record.id && b.store == record.store && segments_owner(b) == owner
        };
        let shared = match holders {
            Holders::These(these) => these.iter().any(|b| shares(b)),
            Holders::Recorded => self
                .catalog
                .list_backups(Some(record.volume_id))?
                .iter()
                .filter(|b| {
                    matches!(
                        b.status,
                        BackupStatus::Available | BackupStatus::Restoring | BackupStatus::Creating
                    )
                })
                .any(shares),
        };
        if shared {
            return Ok(());
        }
        remove_segments(store, owner, record.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::{block_digest, CHECKSUM_BLOCK};
    use crate::store::{InitOptions, LocalStore};

    struct Fixture {
        _tmp: tempfile::TempDir,
        store: LocalStore,
        here: DigestDir,
        there: DigestDir,
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalStore::init(&tmp.path().join("s"), InitOptions::default()).unwrap();
        let here = DigestDir::new(tmp.path().join("here"));
        let there = DigestDir::new(tmp.path().join("there"));
        Fixture {
            _tmp: tmp,
            store,
            here,
            there,
        }
    }

    /// A backup of `blocks` distinct blocks whose digests `dir` holds.
    fn backup_in(dir: &DigestDir, blocks: u64) -> BackupRecord {
        let size = blocks * CHECKSUM_BLOCK;
        let mut w = dir.writer(size).unwrap();
        let mut sum = crate::checksum::VolumeChecksum::new(size);
        for i in 0..blocks {
            let d = block_digest(&i.to_le_bytes());
            sum.push(&d);
            w.push(&d).unwrap();
        }
        let id = Uuid::new_v4();
        dir.commit(id, w).unwrap();
        BackupRecord {
            id,
            volume_id: Uuid::new_v4(),
            source: String::new(),
            size,
            parent: None,
            kind: crate::catalog::BackupKind::Full,
            status: crate::catalog::BackupStatus::Available,
            store: String::new(),
            image: String::new(),
            snapshot: String::new(),
            bytes_read: 0,
            bytes_written: 0,
            bytes_stored: 0,
            checksum: sum.finish(),
            created_at: 0.0,
            updated_at: 0.0,
            completed_at: None,
            error: None,
            pid: None,
            created_base: true,
            metadata: Default::default(),
        }
    }

    #[test]
    fn published_digests_are_fetched_and_verified_on_another_host() {
        let f = fixture();
        // Over two segments' worth of digests.
        let blocks = 2 * SEGMENT_BYTES / 32 + 7;
        let record = backup_in(&f.here, blocks);
        publish(&f.here, &f.store, record.id).unwrap();
        publish(&f.here, &f.store, record.id).unwrap();
        assert_eq!(segment_count(record.size), 3);
        assert!(fetch(&f.there, &f.store, &record).unwrap());
        assert!(f
            .there
            .valid(record.id, record.checksum.as_deref().unwrap()));
        remove_segments(&f.store, record.id, record.size).unwrap();
        assert_eq!(
            f.store.get_object(&segment_name(record.id, 0)).unwrap(),
            None
        );
        assert!(!fetch(&f.there, &f.store, &record).unwrap());
    }

    #[test]
    fn segments_run_once_each_and_an_error_stops_the_rest() {
        let ran = AtomicU64::new(0);
        each_segment(100, &|_| {
            ran.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
        assert_eq!(ran.load(Ordering::Relaxed), 100);
        let ran = AtomicU64::new(0);
        let err = each_segment(100, &|n| {
            if n == 3 {
                return Err(EngineError::Invalid("segment 3 failed".into()));
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
            ran.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .unwrap_err();
        assert!(err.to_string().contains("segment 3"), "{err}");
        assert!(
            ran.load(Ordering::Relaxed) < 50,
            "{ran:?} ran after the error"
        );
    }

    #[test]
    fn a_wrong_or_incomplete_copy_is_an_error_and_not_kept() {
        let f = fixture();
        let record = backup_in(&f.here, 3);
        publish(&f.here, &f.store, record.id).unwrap();
        let mut other = record.clone();
        other.checksum = Some("blake3-32k:00".into());
        assert!(fetch(&f.there, &f.store, &other).is_err());
        assert!(!f
            .there
            .valid(record.id, record.checksum.as_deref().unwrap()));

        let big = backup_in(&f.here, SEGMENT_BYTES / 32 + 1);
        publish(&f.here, &f.store, big.id).unwrap();
        f.store.remove_object(&segment_name(big.id, 1)).unwrap();
        let e = fetch(&f.there, &f.store, &big).unwrap_err();
        assert!(e.to_string().contains("incomplete"), "{e}");
        assert!(!f.there.valid(big.id, big.checksum.as_deref().unwrap()));
    }
}
