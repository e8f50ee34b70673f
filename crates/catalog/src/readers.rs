//! Extra read-only connections for a catalog shared by many threads (the
//! service). Every call on the one writable connection holds its mutex,
//! and a write with `synchronous = FULL` holds it through an fsync: API
//! reads queued behind the job workers' progress writes. In WAL mode a
//! reader on its own connection sees every committed transaction and never
//! waits for the writer, so reads that find the writer busy take one of
//! these instead. They open lazily: a process that never contends (the
//! CLI) never opens one.

use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// How many reads may run beside the writer and each other.
const READERS: usize = 4;

pub(crate) struct Readers {
    path: PathBuf,
    slots: Vec<Mutex<Option<Connection>>>,
    next: AtomicUsize,
    /// A connection that only ever reads `PRAGMA data_version`: its value
    /// changes with every commit of any other connection, ours included.
    watch: Mutex<Option<Connection>>,
}

/// A reader slot, locked; `conn()` opens its connection on first use.
pub(crate) struct Reader<'a> {
    slot: MutexGuard<'a, Option<Connection>>,
    path: &'a Path,
}

impl Readers {
    pub(crate) fn new(path: &Path) -> Self {
        Readers {
            path: path.to_path_buf(),
            slots: (0..READERS).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            watch: Mutex::new(None),
        }
    }

    /// SQLite's `data_version` on the watch connection (opened on first
    /// use): the same number until some connection, of this process or
    /// another, commits a change.
    pub(crate) fn data_version(&self) -> rusqlite::Result<i64> {
        let mut watch = self.watch.lock().unwrap_or_else(|e| e.into_inner());
        if watch.is_none() {
            *watch = Some(open(&self.path)?);
        }
        let conn = watch.as_ref().expect("opened above");
        conn.pragma_query_value(None, "data_version", |r| r.get(0))
    }

    /// A free slot if there is one, else the next in turn (waited for).
    pub(crate) fn take(&self) -> Reader<'_> {
        let slot = self
            .slots
            .iter()
            .find_map(|s| s.try_lock().ok())
            .unwrap_or_else(|| {
                let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
                self.slots[i].lock().unwrap_or_else(|e| e.into_inner())
            });
        Reader {
            slot,
            path: &self.path,
        }
    }
}

impl Reader<'_> {
    /// The slot's connection, opened now if it has none (`None` if it
    /// cannot be opened: the caller reads on the writer instead).
    pub(crate) fn conn(&mut self) -> Option<&Connection> {
        if self.slot.is_none() {
            *self.slot = open(self.path).ok();
        }
        self.slot.as_ref()
    }
}

fn open(path: &Path) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(crate::BUSY_TIMEOUT)?;
    Ok(conn)
}
