//! SQL of backup pages, shared by both backends (PostgreSQL's dialect is
//! derived from it, see `pg::value::dialect`).

use crate::row::BACKUP_COLUMNS;
use blockback_core::catalog::BackupPage;
use rusqlite::types::Value;
use uuid::Uuid;

/// The filter of `page` as SQL conditions and their arguments, numbered
/// from ?1.
fn conditions(page: &BackupPage) -> (Vec<String>, Vec<Value>) {
    let mut conditions = Vec::new();
    let mut args = Vec::new();
    if let Some(v) = page.volume_id {
        args.push(Value::Text(v.to_string()));
        conditions.push(format!("volume_id = ?{}", args.len()));
    }
    if let Some(s) = page.status {
        args.push(Value::Text(s.as_str().into()));
        conditions.push(format!("status = ?{}", args.len()));
    }
    (conditions, args)
}

/// The marker `page.after`, with the query that finds it among the
/// backups the filter selects (one row when it is there) and its
/// arguments; `None` without a marker.
pub fn marker_query(page: &BackupPage) -> Option<(Uuid, String, Vec<Value>)> {
    let after = page.after?;
    let (mut conditions, mut args) = conditions(page);
    args.push(Value::Text(after.to_string()));
    conditions.push(format!("id = ?{}", args.len()));
    let sql = format!("SELECT id FROM backups WHERE {}", conditions.join(" AND "));
    Some((after, sql, args))
}

/// The page's query and its arguments: the filter, then the rows after
/// the marker's place in (created_at, rowid) order, at most `limit`. The
/// index on that order (schema 5) lets it read only the page.
pub fn page_query(page: &BackupPage) -> (String, Vec<Value>) {
    let (mut conditions, mut args) = conditions(page);
    if let Some(after) = page.after {
        args.push(Value::Text(after.to_string()));
        conditions.push(format!(
            "(created_at, rowid) > (SELECT created_at, rowid FROM backups WHERE id = ?{})",
            args.len()
        ));
    }
    let mut sql = format!("SELECT {BACKUP_COLUMNS} FROM backups");
    if !conditions.is_empty() {
        sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
    }
    args.push(Value::Integer(
        i64::try_from(page.limit).unwrap_or(i64::MAX),
    ));
    sql.push_str(&format!(
        " ORDER BY created_at, rowid LIMIT ?{}",
        args.len()
    ));
    (sql, args)
}
