//! The PostgreSQL schema and its migrations.
//!
//! The version lives in `blockback_schema` (one row). Migration `i`
//! (0-based) takes the schema from version `i` to `i + 1`; they run at
//! connect in one transaction that first takes a transaction-scoped
//! advisory lock, so workers starting at the same time on a new database
//! migrate it once and the others wait and find it done. A database whose
//! version is newer than this build knows is refused and left alone.
//!
//! The tables hold the same columns as SQLite's (`crate::schema`), in
//! PostgreSQL's types: ids and JSON as text, counts as BIGINT, times as
//! DOUBLE PRECISION (Unix seconds), flags as BOOLEAN, and a `seq` identity
//! column that orders rows inserted at the same time as SQLite's rowid.

use postgres::Transaction;

/// Append-only: never edit a released migration, add a new one.
const MIGRATIONS: &[&str] = &[
    // 1: everything SQLite's schema 4 holds.
    "CREATE TABLE volumes (
        id TEXT PRIMARY KEY,
        source TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        cluster TEXT,
        registered BOOLEAN NOT NULL DEFAULT false,
        size BIGINT,
        seq BIGINT GENERATED ALWAYS AS IDENTITY
    );
    CREATE TABLE backups (
        id TEXT PRIMARY KEY,
        volume_id TEXT NOT NULL,
        source TEXT NOT NULL,
        size BIGINT NOT NULL,
        parent TEXT,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        store TEXT NOT NULL,
        image TEXT NOT NULL,
        snapshot TEXT NOT NULL,
        bytes_read BIGINT NOT NULL,
        bytes_written BIGINT NOT NULL,
        bytes_stored BIGINT NOT NULL,
        checksum TEXT,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        completed_at DOUBLE PRECISION,
        error TEXT,
        pid BIGINT,
        created_base BOOLEAN NOT NULL,
        metadata TEXT NOT NULL,
        seq BIGINT GENERATED ALWAYS AS IDENTITY
    );
    CREATE INDEX backups_volume_id ON backups (volume_id);
    CREATE INDEX backups_status ON backups (status);
    CREATE TABLE protected_backups (backup_id TEXT PRIMARY KEY);
    CREATE TABLE policies (scope TEXT PRIMARY KEY, policy TEXT NOT NULL);
    CREATE TABLE jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        volume_id TEXT NOT NULL,
        backup_id TEXT,
        request TEXT NOT NULL,
        phase TEXT NOT NULL,
        bytes_done BIGINT NOT NULL,
        bytes_total BIGINT NOT NULL,
        rate DOUBLE PRECISION NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        started_at DOUBLE PRECISION,
        finished_at DOUBLE PRECISION,
        updated_at DOUBLE PRECISION NOT NULL,
        error TEXT,
        cancel_requested BOOLEAN NOT NULL,
        worker TEXT,
        lease_until DOUBLE PRECISION,
        seq BIGINT GENERATED ALWAYS AS IDENTITY
    );
    CREATE INDEX jobs_state ON jobs (state);
    CREATE INDEX jobs_volume_id ON jobs (volume_id);",
    // 2: backups in list order, so that a page reads only its own rows.
    "CREATE INDEX backups_created_at ON backups (created_at, seq);",
];

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Serialises migrations of every blockback catalog on the server (an
/// arbitrary constant: "bbk" in ASCII).
const MIGRATION_LOCK: i64 = 0x62626b;

/// What went wrong while migrating.
pub enum SetupError {
    Sql(postgres::Error),
    Newer(i64),
}

impl From<postgres::Error> for SetupError {
    fn from(e: postgres::Error) -> Self {
        SetupError::Sql(e)
    }
}

/// Brings the schema up to [`VERSION`] inside `tx` (committed by the
/// caller); refuses a newer one.
pub fn migrate(tx: &mut Transaction<'_>) -> Result<(), SetupError> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS blockback_schema (version BIGINT NOT NULL)")?;
    let found: i64 = match tx.query_opt("SELECT version FROM blockback_schema", &[])? {
        Some(row) => row.get(0),
        None => {
            tx.execute("INSERT INTO blockback_schema (version) VALUES (0)", &[])?;
            0
        }
    };
    if found > VERSION {
        return Err(SetupError::Newer(found));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found.max(0) as usize) {
        tx.batch_execute(sql)?;
        let version = i as i64 + 1;
        tx.execute("UPDATE blockback_schema SET version = $1", &[&version])?;
        tracing::info!(version, "catalog schema migrated (PostgreSQL)");
    }
    Ok(())
}
