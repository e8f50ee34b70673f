//! PostgreSQL implementation of [`blockback_core::catalog::Catalog`]: the
//! catalog several hosts share (`--catalog postgres://...`).
//!
//! Synchronous, like the engine: the `postgres` client (rust-postgres'
//! blocking facade over tokio-postgres) with an `r2d2` pool, so the
//! threads of one process (a worker's jobs, heartbeats, API calls) run
//! their statements on their own connections. Every trait call is one
//! statement or one transaction, committed before it returns (PostgreSQL
//! commits durably by default). Job claims lock their candidate rows with
//! `FOR UPDATE SKIP LOCKED` (workers claiming at once take different jobs
//! without waiting for each other) and a transaction-scoped advisory lock
//! per volume (two workers never start two jobs of one volume); every
//! other job transition locks its row with `FOR UPDATE`. Records are
//! converted by the same code as SQLite's (`crate::row`) through
//! [`value`].

mod schema;
mod value;

use crate::row::{
    self, BACKUP_ASSIGNMENTS, BACKUP_COLUMNS, BACKUP_PLACEHOLDERS, JOB_COLUMNS, VOLUME_COLUMNS,
};
use crate::{backups, jobs};
use blockback_core::catalog::{
    BackupPage, BackupRecord, Catalog, CatalogError, CatalogResult, JobBeat, JobClaim, JobEnd,
    JobFilter, JobRecord, JobState, Lease, LostJobs, PolicyScope, VolumeRecord,
};
use blockback_core::retention::Policy;
use postgres::{GenericClient, NoTls};
use r2d2_postgres::PostgresConnectionManager;
use rusqlite::types::Value;
use std::collections::BTreeSet;
use std::time::Duration;
use uuid::Uuid;
use value::{dialect, raw_row, refs, texts, Param};

pub use schema::VERSION as PG_SCHEMA_VERSION;

type Pool = r2d2::Pool<PostgresConnectionManager<NoTls>>;

/// How long connecting (and waiting for a pooled connection) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// Connections one process keeps at most.
const POOL_SIZE: u32 = 8;
/// Queued jobs a claim considers at once (the oldest first).
const CLAIM_CANDIDATES: i64 = 16;

/// The catalog in one PostgreSQL database.
pub struct PgCatalog {
    pool: Pool,
    /// The URL without its password, for messages.
    label: String,
}

/// `url` with the password of its user part (if any) left out.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split_once(':').map_or(user, |(u, _)| u);
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// Whether `text` names a PostgreSQL catalog rather than a SQLite file.
pub fn is_postgres_url(text: &str) -> bool {
    text.starts_with("postgres://") || text.starts_with("postgresql://")
}

impl PgCatalog {
    /// Connects to the database `url` names (libpq's URL or key=value
    /// form), migrates its schema, and keeps a pool of connections.
    /// [`CatalogError::NewerSchema`] when a newer blockback migrated it.
    pub fn connect(url: &str) -> CatalogResult<Self> {
        let label = redact_url(url);
        let db_err = |msg: String| CatalogError::Database {
            path: label.clone(),
            msg,
        };
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| db_err(format!("not a PostgreSQL URL: {e}")))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("blockback");
        }
        // One connection first: its errors (refused, authentication,
        // TLS asked for) reach the user as they are, not as a pool timeout.
        let mut first = config.connect(NoTls).map_err(|e| db_err(describe(&e)))?;
        let mut tx = first.transaction().map_err(|e| db_err(describe(&e)))?;
        schema::migrate(&mut tx).map_err(|e| match e {
            schema::SetupError::Sql(e) => db_err(format!("migrating the schema: {}", describe(&e))),
            schema::SetupError::Newer(found) => CatalogError::NewerSchema {
                path: label.clone(),
                found,
                known: schema::VERSION,
            },
        })?;
        tx.commit().map_err(|e| db_err(describe(&e)))?;
        drop(first);
        let pool = r2d2::Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(1))
            .connection_timeout(CONNECT_TIMEOUT)
            .build(PostgresConnectionManager::new(config, NoTls))
            .map_err(|e| db_err(e.to_string()))?;
        Ok(PgCatalog { pool, label })
    }

    /// The database, without the password.
    pub fn label(&self) -> &str {
        &self.label
    }

    fn err(&self, msg: impl std::fmt::Display) -> CatalogError {
        CatalogError::Database {
            path: self.label.clone(),
            msg: msg.to_string(),
        }
    }

    fn client(&self) -> CatalogResult<r2d2::PooledConnection<PostgresConnectionManager<NoTls>>> {
        self.pool.get().map_err(|e| self.err(e))
    }

    /// Runs `body` in one transaction, committed when it returns `Ok`
    /// (rolled back on drop otherwise).
    fn in_transaction<T>(
        &self,
        body: impl FnOnce(&mut postgres::Transaction<'_>) -> CatalogResult<T>,
    ) -> CatalogResult<T> {
        let mut client = self.client()?;
        let mut tx = client.transaction().map_err(|e| self.pg(e))?;
        let out = body(&mut tx)?;
        tx.commit().map_err(|e| self.pg(e))?;
        Ok(out)
    }

    fn pg(&self, e: postgres::Error) -> CatalogError {
        self.err(describe(&e))
    }

    /// Rows of `sql` (shared SQLite dialect) converted by `convert`.
    fn query_on<T>(
        &self,
        client: &mut impl GenericClient,
        sql: &str,
        params: &[Param],
        convert: fn(row::RawRow) -> Result<T, String>,
    ) -> CatalogResult<Vec<T>> {
        let rows = client
            .query(&dialect(sql), &refs(params))
            .map_err(|e| self.pg(e))?;
        rows.iter()
            .map(|r| {
                raw_row(r)
                    .and_then(convert)
                    .map_err(|e| self.err(format!("corrupt row: {e}")))
            })
            .collect()
    }

    fn query<T>(
        &self,
        sql: &str,
        params: &[Param],
        convert: fn(row::RawRow) -> Result<T, String>,
    ) -> CatalogResult<Vec<T>> {
        self.query_on(&mut *self.client()?, sql, params, convert)
    }

    /// Runs a statement; returns the number of rows changed.
    fn execute_on(
        &self,
        client: &mut impl GenericClient,
        sql: &str,
        params: &[Param],
    ) -> CatalogResult<u64> {
        client
            .execute(&dialect(sql), &refs(params))
            .map_err(|e| self.pg(e))
    }

    fn execute(&self, sql: &str, params: &[Param]) -> CatalogResult<u64> {
        self.execute_on(&mut *self.client()?, sql, params)
    }

    fn values(&self, values: Result<Vec<Value>, String>) -> CatalogResult<Vec<Param>> {
        Ok(values
            .map_err(|e| self.err(e))?
            .into_iter()
            .map(Param)
            .collect())
    }

    fn write_job(
        &self,
        client: &mut impl GenericClient,
        sql: &str,
        job: &JobRecord,
    ) -> CatalogResult<u64> {
        let params = self.values(row::job_values(job))?;
        self.execute_on(client, sql, &params)
    }

    /// Locks job `id`'s row, applies `change`, and writes it back.
    fn change_job<T>(
        &self,
        id: Uuid,
        change: impl FnOnce(&mut JobRecord) -> CatalogResult<T>,
    ) -> CatalogResult<(T, JobRecord)> {
        self.in_transaction(|tx| {
            let sql = format!("{} FOR UPDATE", *jobs::ONE);
            let mut job = self
                .query_on(tx, &sql, &texts([id.to_string()]), row::job_from_row)?
                .into_iter()
                .next()
                .ok_or_else(|| CatalogError::JobNotFound(id.to_string()))?;
            let out = change(&mut job)?;
            self.write_job(tx, &jobs::UPDATE, &job)?;
            Ok((out, job))
        })
    }

    /// Within a claim: whether this transaction may start a job of
    /// `volume` -- no other claim of it is in flight (advisory lock, held
    /// to the end of the transaction) and none of its jobs runs.
    fn volume_free(&self, tx: &mut postgres::Transaction<'_>, volume: Uuid) -> CatalogResult<bool> {
        let key = volume_lock_key(volume);
        let locked: bool = tx
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&key])
            .map_err(|e| self.pg(e))?
            .get(0);
        if !locked {
            return Ok(false);
        }
        // A new statement: it sees a claim of this volume committed just
        // before the lock was granted.
        let running: bool = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM jobs WHERE volume_id = $1 AND state = 'running')",
                &[&volume.to_string()],
            )
            .map_err(|e| self.pg(e))?
            .get(0);
        Ok(!running)
    }
}

/// The advisory lock key of a volume's claims (64 bits of its id).
fn volume_lock_key(volume: Uuid) -> i64 {
    let (high, low) = volume.as_u64_pair();
    (high ^ low) as i64
}

/// A client error with the server's message and detail when there is one.
fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{}: {detail}", db.message()),
            None => db.message().to_string(),
        },
        None => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                text.push_str(&format!(": {s}"));
                source = s.source();
            }
            text
        }
    }
}

impl Catalog for PgCatalog {
    fn volume_by_source(&self, source: &str) -> CatalogResult<Option<VolumeRecord>> {
        let sql = format!("SELECT {VOLUME_COLUMNS} FROM volumes WHERE source = ?1");
        let found = self.query(&sql, &texts([source.to_string()]), row::volume_from_row)?;
        Ok(found.into_iter().next())
    }

    fn volume(&self, id: Uuid) -> CatalogResult<VolumeRecord> {
        let sql = format!("SELECT {VOLUME_COLUMNS} FROM volumes WHERE id = ?1");
        let found = self.query(&sql, &texts([id.to_string()]), row::volume_from_row)?;
        found
            .into_iter()
            .next()
            .ok_or_else(|| CatalogError::VolumeNotFound(id.to_string()))
    }

    fn insert_volume(&self, v: &VolumeRecord) -> CatalogResult<()> {
        let sql =
            format!("INSERT INTO volumes ({VOLUME_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
        let params = self.values(row::volume_values(v))?;
        self.execute(&sql, &params).map(drop)
    }

    fn list_volumes(&self) -> CatalogResult<Vec<VolumeRecord>> {
        let sql = format!("SELECT {VOLUME_COLUMNS} FROM volumes ORDER BY created_at, rowid");
        self.query(&sql, &[], row::volume_from_row)
    }

    fn update_volume(&self, v: &VolumeRecord) -> CatalogResult<()> {
        let sql = "UPDATE volumes SET source = ?2, name = ?3, created_at = ?4, cluster = ?5, \
                   registered = ?6, size = ?7 WHERE id = ?1";
        let params = self.values(row::volume_values(v))?;
        match self.execute(sql, &params)? {
            0 => Err(CatalogError::VolumeNotFound(v.id.to_string())),
            _ => Ok(()),
        }
    }

    fn remove_volume(&self, id: Uuid) -> CatalogResult<()> {
        match self.execute(
            "DELETE FROM volumes WHERE id = ?1",
            &texts([id.to_string()]),
        )? {
            0 => Err(CatalogError::VolumeNotFound(id.to_string())),
            _ => Ok(()),
        }
    }

    fn insert_backup(&self, backup: &BackupRecord) -> CatalogResult<()> {
        let sql = format!("INSERT INTO backups ({BACKUP_COLUMNS}) VALUES ({BACKUP_PLACEHOLDERS})");
        let params = self.values(row::backup_values(backup))?;
        self.execute(&sql, &params).map(drop)
    }

    fn update_backup(&self, backup: &BackupRecord) -> CatalogResult<()> {
        let sql = format!("UPDATE backups SET {BACKUP_ASSIGNMENTS} WHERE id = ?1");
        let params = self.values(row::backup_values(backup))?;
        match self.execute(&sql, &params)? {
            0 => Err(CatalogError::BackupNotFound(backup.id.to_string())),
            _ => Ok(()),
        }
    }

    fn remove_backup(&self, id: Uuid) -> CatalogResult<()> {
        self.in_transaction(|tx| {
            let id_param = texts([id.to_string()]);
            match self.execute_on(tx, "DELETE FROM backups WHERE id = ?1", &id_param)? {
                0 => Err(CatalogError::BackupNotFound(id.to_string())),
                _ => {
                    let sql = "DELETE FROM protected_backups WHERE backup_id = ?1";
                    self.execute_on(tx, sql, &id_param).map(drop)
                }
            }
        })
    }

    fn backup(&self, id: Uuid) -> CatalogResult<BackupRecord> {
        let sql = format!("SELECT {BACKUP_COLUMNS} FROM backups WHERE id = ?1");
        let found = self.query(&sql, &texts([id.to_string()]), row::backup_from_row)?;
        found
            .into_iter()
            .next()
            .ok_or_else(|| CatalogError::BackupNotFound(id.to_string()))
    }

    fn list_backups(&self, volume: Option<Uuid>) -> CatalogResult<Vec<BackupRecord>> {
        let all = format!("SELECT {BACKUP_COLUMNS} FROM backups");
        let order = "ORDER BY created_at, rowid";
        match volume {
            None => self.query(&format!("{all} {order}"), &[], row::backup_from_row),
            Some(v) => {
                let sql = format!("{all} WHERE volume_id = ?1 {order}");
                self.query(&sql, &texts([v.to_string()]), row::backup_from_row)
            }
        }
    }

    fn backups_page(&self, page: &BackupPage) -> CatalogResult<Vec<BackupRecord>> {
        let params = |args: Vec<Value>| args.into_iter().map(Param).collect::<Vec<_>>();
        if let Some((after, sql, args)) = backups::marker_query(page) {
            if self.query(&sql, &params(args), |_| Ok(()))?.is_empty() {
                return Err(CatalogError::BackupNotFound(after.to_string()));
            }
        }
        let (sql, args) = backups::page_query(page);
        self.query(&sql, &params(args), row::backup_from_row)
    }

    fn set_protected(&self, id: Uuid, protected: bool) -> CatalogResult<()> {
        self.in_transaction(|tx| {
            let id_param = texts([id.to_string()]);
            // FOR SHARE: a concurrent remove_backup waits, so no row is
            // left protecting a backup that is gone.
            let sql = "SELECT id FROM backups WHERE id = ?1 FOR SHARE";
            if self
                .query_on(tx, sql, &id_param, row::single_uuid)?
                .is_empty()
            {
                return Err(CatalogError::BackupNotFound(id.to_string()));
            }
            let sql = match protected {
                true => {
                    "INSERT INTO protected_backups (backup_id) VALUES (?1) ON CONFLICT DO NOTHING"
                }
                false => "DELETE FROM protected_backups WHERE backup_id = ?1",
            };
            self.execute_on(tx, sql, &id_param).map(drop)
        })
    }

    fn protected_backups(&self) -> CatalogResult<BTreeSet<Uuid>> {
        let sql = "SELECT backup_id FROM protected_backups";
        let ids = self.query(sql, &[], row::single_uuid)?;
        Ok(ids.into_iter().collect())
    }

    fn policy(&self, scope: &PolicyScope) -> CatalogResult<Option<Policy>> {
        let sql = "SELECT scope, policy FROM policies WHERE scope = ?1";
        let found = self.query(sql, &texts([scope.key()]), row::policy_from_row)?;
        Ok(found.into_iter().next().map(|(_, p)| p))
    }

    fn set_policy(&self, scope: &PolicyScope, policy: Option<&Policy>) -> CatalogResult<()> {
        match policy {
            Some(p) => {
                let json = serde_json::to_string(p).map_err(|e| self.err(e))?;
                let sql = "INSERT INTO policies (scope, policy) VALUES (?1, ?2)
                    ON CONFLICT (scope) DO UPDATE SET policy = excluded.policy";
                self.execute(sql, &texts([scope.key(), json])).map(drop)
            }
            None => {
                let sql = "DELETE FROM policies WHERE scope = ?1";
                self.execute(sql, &texts([scope.key()])).map(drop)
            }
        }
    }

    fn list_policies(&self) -> CatalogResult<Vec<(PolicyScope, Policy)>> {
        let sql = "SELECT scope, policy FROM policies ORDER BY scope";
        self.query(sql, &[], row::policy_from_row)
    }

    fn insert_job(&self, job: &JobRecord) -> CatalogResult<()> {
        self.write_job(&mut *self.client()?, &jobs::INSERT, job)
            .map(drop)
    }

    fn job(&self, id: Uuid) -> CatalogResult<JobRecord> {
        self.query(&jobs::ONE, &texts([id.to_string()]), row::job_from_row)?
            .into_iter()
            .next()
            .ok_or_else(|| CatalogError::JobNotFound(id.to_string()))
    }

    fn list_jobs(&self, filter: &JobFilter) -> CatalogResult<Vec<JobRecord>> {
        let (sql, args) = jobs::list_query(filter);
        let params: Vec<Param> = args.into_iter().map(Param).collect();
        self.query(&sql, &params, row::job_from_row)
    }

    fn claim_job(&self, claim: &JobClaim) -> CatalogResult<Option<JobRecord>> {
        self.in_transaction(|tx| {
            // The oldest queued jobs of volumes with no running job, locked;
            // those other claims hold are skipped, not waited for.
            let sql = format!(
                "SELECT {JOB_COLUMNS} FROM jobs q WHERE state = 'queued' AND NOT EXISTS \
                 (SELECT 1 FROM jobs r WHERE r.volume_id = q.volume_id AND r.state = 'running') \
                 ORDER BY created_at, rowid LIMIT {CLAIM_CANDIDATES} FOR UPDATE SKIP LOCKED"
            );
            let candidates = self.query_on(tx, &sql, &[], row::job_from_row)?;
            let mut tried = BTreeSet::new();
            for mut job in candidates {
                if !tried.insert(job.volume_id) || !self.volume_free(tx, job.volume_id)? {
                    continue;
                }
                job.claim(claim);
                self.write_job(tx, &jobs::UPDATE, &job)?;
                return Ok(Some(job));
            }
            Ok(None)
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
        self.in_transaction(|tx| {
            // A row another transaction holds (its worker's heartbeat) is
            // alive: skipped.
            let sql = format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE state = ?1 \
                 ORDER BY created_at, rowid FOR UPDATE SKIP LOCKED"
            );
            let running = texts([JobState::Running.as_str().to_string()]);
            let open = self.query_on(tx, &sql, &running, row::job_from_row)?;
            let was: Vec<JobRecord> = open.into_iter().filter(|j| lost.matches(j)).collect();
            for job in &was {
                let mut failed = job.clone();
                failed.lose(lost);
                self.write_job(tx, &jobs::UPDATE, &failed)?;
            }
            Ok(was)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_reach_messages() {
        for (url, shown) in [
            (
                "postgres://bb:secret@db:5432/blockback",
                "postgres://bb@db:5432/blockback",
            ),
            (
                "postgresql://bb:p%40ss@db/x?sslmode=disable",
                "postgresql://bb@db/x?sslmode=disable",
            ),
            ("postgres://db/x", "postgres://db/x"),
            ("postgres://bb@db/x", "postgres://bb@db/x"),
        ] {
            assert_eq!(redact_url(url), shown);
        }
    }
}
