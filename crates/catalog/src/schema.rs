//! The catalog schema and its embedded migrations.
//!
//! The schema version lives in SQLite's `user_version`. Migration `i` (0-based)
//! takes the schema from version `i` to `i + 1`; they run at open, in one
//! IMMEDIATE transaction so that concurrent first opens do not race.

use rusqlite::{Connection, TransactionBehavior};
use std::time::Duration;

/// How long a statement waits for another process's lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Append-only: never edit a released migration, add a new one.
const MIGRATIONS: &[&str] = &[
    // 1: volumes and backups.
    "CREATE TABLE volumes (
        id TEXT PRIMARY KEY NOT NULL,
        source TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE backups (
        id TEXT PRIMARY KEY NOT NULL,
        volume_id TEXT NOT NULL,
        source TEXT NOT NULL,
        size INTEGER NOT NULL,
        parent TEXT,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        store TEXT NOT NULL,
        image TEXT NOT NULL,
        snapshot TEXT NOT NULL,
        bytes_read INTEGER NOT NULL,
        bytes_written INTEGER NOT NULL,
        bytes_stored INTEGER NOT NULL,
        checksum TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        completed_at REAL,
        error TEXT,
        pid INTEGER,
        created_base INTEGER NOT NULL,
        metadata TEXT NOT NULL
    );
    CREATE INDEX backups_volume_id ON backups (volume_id);
    CREATE INDEX backups_status ON backups (status);",
    // 2: retention -- protected backups (apart from the record, which
    // operations rewrite whole) and policies as JSON per scope.
    "CREATE TABLE protected_backups (backup_id TEXT PRIMARY KEY NOT NULL);
    CREATE TABLE policies (scope TEXT PRIMARY KEY NOT NULL, policy TEXT NOT NULL);",
    // 3: volumes registered through the service: the cluster of an RBD
    // source, whether registered, the size last seen.
    "ALTER TABLE volumes ADD COLUMN cluster TEXT;
    ALTER TABLE volumes ADD COLUMN registered INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE volumes ADD COLUMN size INTEGER;",
    // 4: the service's job queue.
    "CREATE TABLE jobs (
        id TEXT PRIMARY KEY NOT NULL,
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        volume_id TEXT NOT NULL,
        backup_id TEXT,
        request TEXT NOT NULL,
        phase TEXT NOT NULL,
        bytes_done INTEGER NOT NULL,
        bytes_total INTEGER NOT NULL,
        rate REAL NOT NULL,
        created_at REAL NOT NULL,
        started_at REAL,
        finished_at REAL,
        updated_at REAL NOT NULL,
        error TEXT,
        cancel_requested INTEGER NOT NULL,
        worker TEXT,
        lease_until REAL
    );
    CREATE INDEX jobs_state ON jobs (state);
    CREATE INDEX jobs_volume_id ON jobs (volume_id);",
    // 5: backups in list order, so that a page reads only its own rows
    // (the index holds the rowid, the order's tie-break).
    "CREATE INDEX backups_created_at ON backups (created_at);",
];

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// The oldest schema this build reads without migrating it (a read-only
/// catalog): the migrations since only added indexes.
pub const READABLE_FROM: i64 = 4;

/// What went wrong while preparing a connection.
pub enum SetupError {
    Sql(rusqlite::Error),
    Newer(i64),
}

impl From<rusqlite::Error> for SetupError {
    fn from(e: rusqlite::Error) -> Self {
        SetupError::Sql(e)
    }
}

/// Sets the connection options every connection needs.
pub fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // WAL lets readers run while another process writes.
    let mode = switch_to_wal(conn)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(mode, "catalog database did not switch to WAL mode");
    }
    // FULL: in WAL mode, NORMAL may lose the last commits on power loss, and
    // the Catalog contract says each call is durable when it returns.
    conn.pragma_update(None, "synchronous", "FULL")
}

/// Switches to WAL. SQLite answers SQLITE_BUSY to a journal-mode change
/// without calling the busy handler while another connection is opening
/// the same new database, so retry here, within the same busy timeout.
fn switch_to_wal(conn: &Connection) -> rusqlite::Result<String> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

/// Brings the schema up to [`VERSION`]; refuses a newer one.
pub fn migrate(conn: &mut Connection) -> Result<(), SetupError> {
    // Looked at first without the write lock: a current catalog then opens
    // while another process is inside a write transaction (a WAL read does
    // not wait for it) instead of queueing behind it for the busy timeout.
    let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if current > VERSION {
        return Err(SetupError::Newer(current));
    }
    if current == VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > VERSION {
        return Err(SetupError::Newer(found));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as i64 + 1)?;
        tracing::info!(version = i + 1, "catalog schema migrated");
    }
    tx.commit()?;
    Ok(())
}
