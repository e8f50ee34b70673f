//! SQL of the job queue. Claims and other read-modify-write steps run in
//! one IMMEDIATE transaction (see `SqliteCatalog::in_transaction`), so two
//! processes sharing the file never claim one job twice; the transitions
//! themselves are `JobRecord`'s, shared with every backend.

use crate::row::{JOB_ASSIGNMENTS, JOB_COLUMNS, JOB_PLACEHOLDERS};
use blockback_core::catalog::JobFilter;
use rusqlite::types::Value;
use std::sync::LazyLock;

pub static INSERT: LazyLock<String> =
    LazyLock::new(|| format!("INSERT INTO jobs ({JOB_COLUMNS}) VALUES ({JOB_PLACEHOLDERS})"));
pub static UPDATE: LazyLock<String> =
    LazyLock::new(|| format!("UPDATE jobs SET {JOB_ASSIGNMENTS} WHERE id = ?1"));
pub static ONE: LazyLock<String> =
    LazyLock::new(|| format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"));
/// Unfinished jobs, in submission order (claims pick the oldest).
pub static OPEN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {JOB_COLUMNS} FROM jobs WHERE state IN ('queued', 'running') \
         ORDER BY created_at, rowid"
    )
});

/// The listing query for `filter`, and its arguments.
pub fn list_query(filter: &JobFilter) -> (String, Vec<Value>) {
    let mut conditions = Vec::new();
    let mut args = Vec::new();
    let mut add = |column: &str, value: String| {
        args.push(Value::Text(value));
        conditions.push(format!("{column} = ?{}", args.len()));
    };
    if let Some(s) = filter.state {
        add("state", s.as_str().into());
    }
    if let Some(v) = filter.volume_id {
        add("volume_id", v.to_string());
    }
    if let Some(b) = filter.backup_id {
        add("backup_id", b.to_string());
    }
    let mut sql = format!("SELECT {JOB_COLUMNS} FROM jobs");
    if !conditions.is_empty() {
        sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
    }
    sql.push_str(" ORDER BY created_at, rowid");
    (sql, args)
}
