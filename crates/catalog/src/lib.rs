//! SQLite and PostgreSQL implementations of
//! [`blockback_core::catalog::Catalog`]: [`SqliteCatalog`] for one host,
//! [`PgCatalog`] for several sharing one catalog.
//!
//! SQLite:
//! One database file, shared by every blockback process on the machine
//! (CLI runs, the service): WAL mode so readers never wait for writers, a
//! 30 s busy timeout so short write transactions of other processes are
//! waited for rather than failed, `synchronous = FULL` so every call is
//! durable when it returns. The schema is versioned (`user_version`) and
//! migrated at open; see [`schema`].

mod row;
mod schema;

mod backups;
mod jobs;
mod pg;
mod readers;

pub use pg::{is_postgres_url, redact_url, PgCatalog, PG_SCHEMA_VERSION};

use blockback_core::catalog::{
    BackupPage, BackupRecord, Catalog, CatalogError, CatalogResult, JobBeat, JobClaim, JobEnd,
    JobFilter, JobRecord, Lease, LostJobs, PolicyScope, VolumeRecord,
};
use blockback_core::retention::Policy;
use row::{RawRow, BACKUP_ASSIGNMENTS, BACKUP_COLUMNS, BACKUP_PLACEHOLDERS, VOLUME_COLUMNS};
use rusqlite::{params, params_from_iter, Connection};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use uuid::Uuid;

pub use schema::{BUSY_TIMEOUT, VERSION as SCHEMA_VERSION};

/// The catalog in one SQLite database file.
pub struct SqliteCatalog {
    conn: Mutex<Connection>,
    /// Read connections beside `conn`; none for a read-only catalog (its
    /// one connection never writes, so it never holds reads up).
    readers: Option<readers::Readers>,
    path: PathBuf,
    read_only: bool,
}

/// Whether this process may write the database file and its directory
/// (SQLite creates the `-wal` and `-shm` files beside it).
fn writable(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let dir = match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => dir,
        None => Path::new("."),
    };
    [path, dir].iter().all(|p| {
        let Ok(c) = std::ffi::CString::new(p.as_os_str().as_bytes()) else {
            return false;
        };
        // SAFETY: `c` is a valid NUL-terminated string for the call.
        unsafe { libc::access(c.as_ptr(), libc::W_OK) == 0 }
    })
}

fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

/// A `-wal` file with frames in it (commits not yet in the main file).
fn wal_has_commits(path: &Path) -> bool {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).is_ok_and(|m| m.len() > 0)
}

fn immutable_uri(path: &Path) -> String {
    let text = path.display().to_string();
    let escaped: String = text
        .chars()
        .map(|c| match c {
            '%' | '?' | '#' => format!("%{:02X}", c as u32),
            c => c.to_string(),
        })
        .collect();
    format!("file:{escaped}?immutable=1")
}

impl SqliteCatalog {
    /// Opens (creating it and its parent directory if missing) and migrates
    /// the catalog at `path`; [`CatalogError::NewerSchema`] if a newer
    /// blockback wrote it.
    ///
    /// An existing catalog that this process cannot write (read-only media,
    /// permissions) is opened read-only instead: reads work, writes fail
    /// naming the reason, and [`Catalog::is_read_only`] says so.
    pub fn open(path: impl AsRef<Path>) -> CatalogResult<Self> {
        let path = path.as_ref().to_path_buf();
        if path.exists() && !writable(&path) {
            return Self::open_read_only(&path);
        }
        let db_err = |msg: String| CatalogError::Database {
            path: path.display().to_string(),
            msg,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| db_err(format!("creating {}: {e}", parent.display())))?;
        }
        let mut conn = Connection::open(&path).map_err(|e| db_err(e.to_string()))?;
        schema::configure(&conn).map_err(|e| db_err(e.to_string()))?;
        schema::migrate(&mut conn).map_err(|e| match e {
            schema::SetupError::Sql(e) => db_err(format!("migrating the schema: {e}")),
            schema::SetupError::Newer(found) => CatalogError::NewerSchema {
                path: path.display().to_string(),
                found,
                known: schema::VERSION,
            },
        })?;
        Ok(SqliteCatalog {
            conn: Mutex::new(conn),
            readers: Some(readers::Readers::new(&path)),
            path,
            read_only: false,
        })
    }

    /// Opens an existing catalog for reading only; nothing is created,
    /// configured or migrated. A WAL database on read-only media whose
    /// `-shm` file is gone (a cleanly closed catalog has none) can only be
    /// read as immutable: that is done when no `-wal` file holds commits
    /// the main file lacks, since immutable reads ignore it.
    pub fn open_read_only(path: impl AsRef<Path>) -> CatalogResult<Self> {
        use rusqlite::OpenFlags;
        let path = path.as_ref().to_path_buf();
        let db_err = |msg: String| CatalogError::Database {
            path: path.display().to_string(),
            msg: format!("opening read-only: {msg}"),
        };
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&path, flags).map_err(|e| db_err(e.to_string()))?;
        let conn = match schema_version(&conn) {
            Ok(_) => conn,
            Err(_) if !wal_has_commits(&path) => {
                let uri = immutable_uri(&path);
                Connection::open_with_flags(&uri, flags | OpenFlags::SQLITE_OPEN_URI)
                    .map_err(|e| db_err(e.to_string()))?
            }
            Err(e) => return Err(db_err(e.to_string())),
        };
        let found = schema_version(&conn).map_err(|e| db_err(e.to_string()))?;
        if found > schema::VERSION {
            return Err(CatalogError::NewerSchema {
                path: path.display().to_string(),
                found,
                known: schema::VERSION,
            });
        }
        if found < schema::READABLE_FROM {
            return Err(db_err(format!(
                "schema version {found} needs migrating to {}; open it once where it is writable",
                schema::VERSION
            )));
        }
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| db_err(e.to_string()))?;
        Ok(SqliteCatalog {
            conn: Mutex::new(conn),
            readers: None,
            path,
            read_only: true,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection; a panic in another thread leaves it usable, since
    /// every call is one statement (or transaction) that SQLite completes or
    /// rolls back on its own.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn err(&self, msg: impl std::fmt::Display) -> CatalogError {
        let mut msg = msg.to_string();
        if msg.contains("database or disk is full") {
            msg.push_str(
                "; free space on its file system (a local store there: `blockback gc` frees the space of deleted and interrupted backups)",
            );
        }
        if self.read_only {
            msg.push_str(
                " (the catalog is open read-only: read-only media or not writable by this user)",
            );
        }
        CatalogError::Database {
            path: self.path.display().to_string(),
            msg,
        }
    }

    /// Runs a query returning zero or more rows, each converted by `convert`.
    fn query<T>(
        &self,
        sql: &str,
        params: impl rusqlite::Params,
        convert: fn(RawRow) -> Result<T, String>,
    ) -> CatalogResult<Vec<T>> {
        // The writer when it is free (no extra connection for a process
        // that never contends), else a reader, so reads never queue behind
        // a write's fsync.
        if let Ok(conn) = self.conn.try_lock() {
            return self.query_on(&conn, sql, params, convert);
        }
        if let Some(readers) = &self.readers {
            let mut reader = readers.take();
            if let Some(conn) = reader.conn() {
                return self.query_on(conn, sql, params, convert);
            }
        }
        self.query_on(&self.conn(), sql, params, convert)
    }

    /// [`Self::query`] on a connection already held (inside a transaction).
    fn query_on<T>(
        &self,
        conn: &Connection,
        sql: &str,
        params: impl rusqlite::Params,
        convert: fn(RawRow) -> Result<T, String>,
    ) -> CatalogResult<Vec<T>> {
        let mut stmt = conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params, RawRow::read)
            .map_err(|e| self.err(e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| self.err(e))?;
        rows.into_iter()
            .map(|r| convert(r).map_err(|e| self.err(format!("corrupt row: {e}"))))
            .collect()
    }

    /// Runs a statement; returns the number of rows changed.
    fn execute(&self, sql: &str, params: impl rusqlite::Params) -> CatalogResult<usize> {
        self.execute_on(&self.conn(), sql, params)
    }

    fn execute_on(
        &self,
        conn: &Connection,
        sql: &str,
        params: impl rusqlite::Params,
    ) -> CatalogResult<usize> {
        let mut stmt = conn.prepare_cached(sql).map_err(|e| self.err(e))?;
        stmt.execute(params).map_err(|e| self.err(e))
    }

    fn write_backup(&self, sql: &str, backup: &BackupRecord) -> CatalogResult<usize> {
        let values = row::backup_values(backup).map_err(|e| self.err(e))?;
        self.execute(sql, params_from_iter(values))
    }

    fn set_protected_row(&self, id: Uuid, protected: bool) -> CatalogResult<()> {
        let sql = match protected {
            true => "INSERT OR IGNORE INTO protected_backups (backup_id) VALUES (?1)",
            false => "DELETE FROM protected_backups WHERE backup_id = ?1",
        };
        self.execute(sql, [id.to_string()]).map(drop)
    }

    fn write_job(&self, conn: &Connection, sql: &str, job: &JobRecord) -> CatalogResult<usize> {
        let values = row::job_values(job).map_err(|e| self.err(e))?;
        self.execute_on(conn, sql, params_from_iter(values))
    }

    fn one_job(&self, conn: &Connection, id: Uuid) -> CatalogResult<Option<JobRecord>> {
        let found = self.query_on(conn, &jobs::ONE, [id.to_string()], row::job_from_row)?;
        Ok(found.into_iter().next())
    }

    /// Runs `body` in one IMMEDIATE transaction (other processes sharing
    /// the file wait for it; other threads wait for the connection),
    /// committed when it returns `Ok`.
    fn in_transaction<T>(
        &self,
        body: impl FnOnce(&Connection) -> CatalogResult<T>,
    ) -> CatalogResult<T> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let out = body(&tx)?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(out)
    }

    /// Reads job `id`, applies `change`, and writes it back, atomically.
    fn change_job<T>(
        &self,
        id: Uuid,
        change: impl FnOnce(&mut JobRecord) -> CatalogResult<T>,
    ) -> CatalogResult<(T, JobRecord)> {
        self.in_transaction(|conn| {
            let mut job = self
                .one_job(conn, id)?
                .ok_or_else(|| CatalogError::JobNotFound(id.to_string()))?;
            let out = change(&mut job)?;
            self.write_job(conn, &jobs::UPDATE, &job)?;
            Ok((out, job))
        })
    }

    fn one_backup(&self, id: Uuid) -> CatalogResult<Option<BackupRecord>> {
        let sql = format!("SELECT {BACKUP_COLUMNS} FROM backups WHERE id = ?1");
        let found = self.query(&sql, [id.to_string()], row::backup_from_row)?;
        Ok(found.into_iter().next())
    }
}

impl Catalog for SqliteCatalog {
    fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn volume_by_source(&self, source: &str) -> CatalogResult<Option<VolumeRecord>> {
        let sql = format!("SELECT {VOLUME_COLUMNS} FROM volumes WHERE source = ?1");
        Ok(self
            .query(&sql, [source], row::volume_from_row)?
            .into_iter()
            .next())
    }

    fn volume(&self, id: Uuid) -> CatalogResult<VolumeRecord> {
        let sql = format!("SELECT {VOLUME_COLUMNS} FROM volumes WHERE id = ?1");
        let found = self.query(&sql, [id.to_string()], row::volume_from_row)?;
        found
            .into_iter()
            .next()
            .ok_or_else(|| CatalogError::VolumeNotFound(id.to_string()))
    }

    fn insert_volume(&self, v: &VolumeRecord) -> CatalogResult<()> {
        let sql =
            format!("INSERT INTO volumes ({VOLUME_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
        let values = row::volume_values(v).map_err(|e| self.err(e))?;
        self.execute(&sql, params_from_iter(values)).map(drop)
    }

    fn update_volume(&self, v: &VolumeRecord) -> CatalogResult<()> {
        let sql = "UPDATE volumes SET source = ?2, name = ?3, created_at = ?4, cluster = ?5, \
                   registered = ?6, size = ?7 WHERE id = ?1";
        let values = row::volume_values(v).map_err(|e| self.err(e))?;
        match self.execute(sql, params_from_iter(values))? {
            0 => Err(CatalogError::VolumeNotFound(v.id.to_string())),
            _ => Ok(()),
        }
    }

    fn remove_volume(&self, id: Uuid) -> CatalogResult<()> {
        match self.execute("DELETE FROM volumes WHERE id = ?1", [id.to_string()])? {
            0 => Err(CatalogError::VolumeNotFound(id.to_string())),
            _ => Ok(()),
        }
    }

    fn list_volumes(&self) -> CatalogResult<Vec<VolumeRecord>> {
        let sql = format!("SELECT {VOLUME_COLUMNS} FROM volumes ORDER BY created_at, rowid");
        self.query(&sql, [], row::volume_from_row)
    }

    fn insert_backup(&self, backup: &BackupRecord) -> CatalogResult<()> {
        let sql = format!("INSERT INTO backups ({BACKUP_COLUMNS}) VALUES ({BACKUP_PLACEHOLDERS})");
        self.write_backup(&sql, backup).map(drop)
    }

    fn update_backup(&self, backup: &BackupRecord) -> CatalogResult<()> {
        let sql = format!("UPDATE backups SET {BACKUP_ASSIGNMENTS} WHERE id = ?1");
        match self.write_backup(&sql, backup)? {
            0 => Err(CatalogError::BackupNotFound(backup.id.to_string())),
            _ => Ok(()),
        }
    }

    fn remove_backup(&self, id: Uuid) -> CatalogResult<()> {
        match self.execute("DELETE FROM backups WHERE id = ?1", [id.to_string()])? {
            0 => Err(CatalogError::BackupNotFound(id.to_string())),
            _ => self.set_protected_row(id, false),
        }
    }

    fn backup(&self, id: Uuid) -> CatalogResult<BackupRecord> {
        self.one_backup(id)?
            .ok_or_else(|| CatalogError::BackupNotFound(id.to_string()))
    }

    fn list_backups(&self, volume: Option<Uuid>) -> CatalogResult<Vec<BackupRecord>> {
        // Two statements rather than `?1 IS NULL OR ...`, so that the
        // filtered one uses the volume_id index.
        let all = format!("SELECT {BACKUP_COLUMNS} FROM backups");
        let order = "ORDER BY created_at, rowid";
        match volume {
            None => self.query(&format!("{all} {order}"), [], row::backup_from_row),
            Some(v) => {
                let sql = format!("{all} WHERE volume_id = ?1 {order}");
                self.query(&sql, [v.to_string()], row::backup_from_row)
            }
        }
    }

    fn change_mark(&self) -> CatalogResult<Option<u64>> {
        // data_version counts up from an arbitrary start; it never repeats
        // within the life of the connection.
        match &self.readers {
            Some(readers) => readers
                .data_version()
                .map(|v| Some(v as u64))
                .map_err(|e| self.err(e)),
            None => Ok(None),
        }
    }

    fn backups_page(&self, page: &BackupPage) -> CatalogResult<Vec<BackupRecord>> {
        if let Some((after, sql, args)) = backups::marker_query(page) {
            if self
                .query(&sql, params_from_iter(args), |_| Ok(()))?
                .is_empty()
            {
                return Err(CatalogError::BackupNotFound(after.to_string()));
            }
        }
        let (sql, args) = backups::page_query(page);
        self.query(&sql, params_from_iter(args), row::backup_from_row)
    }

    fn set_protected(&self, id: Uuid, protected: bool) -> CatalogResult<()> {
        // Checked first: a row for an unknown id would protect nothing.
        self.backup(id)?;
        self.set_protected_row(id, protected)
    }

    fn protected_backups(&self) -> CatalogResult<BTreeSet<Uuid>> {
        let sql = "SELECT backup_id FROM protected_backups";
        let ids = self.query(sql, [], row::single_uuid)?;
        Ok(ids.into_iter().collect())
    }

    fn policy(&self, scope: &PolicyScope) -> CatalogResult<Option<Policy>> {
        let sql = "SELECT scope, policy FROM policies WHERE scope = ?1";
        let found = self.query(sql, [scope.key()], row::policy_from_row)?;
        Ok(found.into_iter().next().map(|(_, p)| p))
    }

    fn set_policy(&self, scope: &PolicyScope, policy: Option<&Policy>) -> CatalogResult<()> {
        match policy {
            Some(p) => {
                let json = serde_json::to_string(p).map_err(|e| self.err(e))?;
                let sql = "INSERT INTO policies (scope, policy) VALUES (?1, ?2)
                    ON CONFLICT (scope) DO UPDATE SET policy = excluded.policy";
                self.execute(sql, params![scope.key(), json]).map(drop)
            }
            None => {
                let sql = "DELETE FROM policies WHERE scope = ?1";
                self.execute(sql, [scope.key()]).map(drop)
            }
        }
    }

    fn list_policies(&self) -> CatalogResult<Vec<(PolicyScope, Policy)>> {
        let sql = "SELECT scope, policy FROM policies ORDER BY scope";
        self.query(sql, [], row::policy_from_row)
    }

    fn insert_job(&self, job: &JobRecord) -> CatalogResult<()> {
        self.write_job(&self.conn(), &jobs::INSERT, job).map(drop)
    }

    fn job(&self, id: Uuid) -> CatalogResult<JobRecord> {
        self.query(&jobs::ONE, [id.to_string()], row::job_from_row)?
            .into_iter()
            .next()
            .ok_or_else(|| CatalogError::JobNotFound(id.to_string()))
    }

    fn list_jobs(&self, filter: &JobFilter) -> CatalogResult<Vec<JobRecord>> {
        let (sql, args) = jobs::list_query(filter);
        self.query(&sql, params_from_iter(args), row::job_from_row)
    }

    fn claim_job(&self, claim: &JobClaim) -> CatalogResult<Option<JobRecord>> {
        self.in_transaction(|conn| {
            let open = self.query_on(conn, &jobs::OPEN, [], row::job_from_row)?;
            let picked = blockback_core::catalog::next_claimable(&open);
            let Some(mut job) = open.into_iter().find(|j| Some(j.id) == picked) else {
                return Ok(None);
            };
            job.claim(claim);
            self.write_job(conn, &jobs::UPDATE, &job)?;
            Ok(Some(job))
        })
    }

    fn heartbeat_job(&self, id: Uuid, worker: &str, beat: &JobBeat) -> CatalogResult<Lease> {
        self.change_job(id, |j| Ok(j.beat(worker, beat)))
            .map(|(lease, _)| lease)
    }

    fn finish_job(&self, id: Uuid, worker: &str, end: &JobEnd) -> CatalogResult<JobRecord> {
        self.change_job(id, |j| j.finish(worker, end))
            .map(|(_, j)| j)
    }

    fn cancel_job(&self, id: Uuid, now: f64) -> CatalogResult<JobRecord> {
        self.change_job(id, |j| j.cancel(now)).map(|(_, j)| j)
    }

    fn fail_lost_jobs(&self, lost: &LostJobs) -> CatalogResult<Vec<JobRecord>> {
        self.in_transaction(|conn| {
            let open = self.query_on(conn, &jobs::OPEN, [], row::job_from_row)?;
            let was: Vec<JobRecord> = open.into_iter().filter(|j| lost.matches(j)).collect();
            for job in &was {
                let mut failed = job.clone();
                failed.lose(lost);
                self.write_job(conn, &jobs::UPDATE, &failed)?;
            }
            Ok(was)
        })
    }
}

#[cfg(test)]
mod tests;
