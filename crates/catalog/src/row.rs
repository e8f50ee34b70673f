//! Conversions between catalog records and table rows.
//!
//! Rows are read into plain SQL values first and converted afterwards, so a
//! damaged row becomes a message naming the row and column, not a panic.

use blockback_core::catalog::{BackupKind, BackupRecord, BackupStatus, PolicyScope, VolumeRecord};
use blockback_core::retention::Policy;
use rusqlite::types::Value;
use rusqlite::Row;
use std::collections::BTreeMap;
use uuid::Uuid;

pub const VOLUME_COLUMNS: &str = "id, source, name, created_at";

pub const BACKUP_COLUMNS: &str = "id, volume_id, source, size, parent, kind, status, store, \
    image, snapshot, bytes_read, bytes_written, bytes_stored, checksum, created_at, \
    updated_at, completed_at, error, pid, created_base, metadata";

/// `?1, ?2, ...` for the backup columns, in order.
pub const BACKUP_PLACEHOLDERS: &str = "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, \
    ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21";

/// `column = ?n` for every backup column but the id (?1).
pub const BACKUP_ASSIGNMENTS: &str = "volume_id = ?2, source = ?3, size = ?4, parent = ?5, \
    kind = ?6, status = ?7, store = ?8, image = ?9, snapshot = ?10, bytes_read = ?11, \
    bytes_written = ?12, bytes_stored = ?13, checksum = ?14, created_at = ?15, \
    updated_at = ?16, completed_at = ?17, error = ?18, pid = ?19, created_base = ?20, \
    metadata = ?21";

/// A row as stored, one value per column.
pub struct RawRow(Vec<Value>);

impl RawRow {
    pub fn read(row: &Row<'_>) -> rusqlite::Result<Self> {
        let n = row.as_ref().column_count();
        (0..n)
            .map(|i| row.get(i))
            .collect::<rusqlite::Result<_>>()
            .map(RawRow)
    }
}

/// Reads typed columns out of a [`RawRow`], naming the column on failure.
struct Cols {
    values: std::vec::IntoIter<Value>,
    names: std::str::Split<'static, &'static str>,
    /// The column last read, for messages.
    current: &'static str,
}

impl Cols {
    fn new(raw: RawRow, names: &'static str) -> Self {
        Cols {
            values: raw.0.into_iter(),
            names: names.split(", "),
            current: "",
        }
    }

    fn next(&mut self) -> Result<Value, String> {
        self.current = self.names.next().unwrap_or("?").trim();
        self.values.next().ok_or_else(|| self.bad("missing"))
    }

    fn bad(&self, why: impl std::fmt::Display) -> String {
        format!("column {}: {why}", self.current)
    }

    fn required<T>(&self, v: Option<T>) -> Result<T, String> {
        v.ok_or_else(|| self.bad("unexpected NULL"))
    }

    fn text_opt(&mut self) -> Result<Option<String>, String> {
        match self.next()? {
            Value::Null => Ok(None),
            Value::Text(t) => Ok(Some(t)),
            v => Err(self.bad(format!("expected text, found {v:?}"))),
        }
    }

    fn text(&mut self) -> Result<String, String> {
        let v = self.text_opt()?;
        self.required(v)
    }

    fn int_opt(&mut self) -> Result<Option<i64>, String> {
        match self.next()? {
            Value::Null => Ok(None),
            Value::Integer(i) => Ok(Some(i)),
            v => Err(self.bad(format!("expected an integer, found {v:?}"))),
        }
    }

    fn u64(&mut self) -> Result<u64, String> {
        let v = self.int_opt()?;
        let v = self.required(v)?;
        u64::try_from(v).map_err(|_| self.bad(format!("negative count {v}")))
    }

    fn real_opt(&mut self) -> Result<Option<f64>, String> {
        match self.next()? {
            Value::Null => Ok(None),
            Value::Real(r) => Ok(Some(r)),
            Value::Integer(i) => Ok(Some(i as f64)),
            v => Err(self.bad(format!("expected a number, found {v:?}"))),
        }
    }

    fn real(&mut self) -> Result<f64, String> {
        let v = self.real_opt()?;
        self.required(v)
    }

    fn uuid(&mut self) -> Result<Uuid, String> {
        self.parsed(parse_uuid)
    }

    /// The next column's text, converted by `parse`.
    fn parsed<T>(&mut self, parse: fn(&str) -> Result<T, String>) -> Result<T, String> {
        let t = self.text()?;
        self.parse(&t, parse)
    }

    fn uuid_opt(&mut self) -> Result<Option<Uuid>, String> {
        let t = self.text_opt()?;
        t.map(|t| self.parse(&t, parse_uuid)).transpose()
    }

    fn parse_pid(&self, v: i64) -> Result<u32, String> {
        u32::try_from(v).map_err(|_| self.bad(format!("bad pid {v}")))
    }

    /// Applies `parse` to the current column's text, naming the column.
    fn parse<T>(&self, text: &str, parse: fn(&str) -> Result<T, String>) -> Result<T, String> {
        parse(text).map_err(|e| self.bad(e))
    }
}

fn parse_uuid(text: &str) -> Result<Uuid, String> {
    Uuid::parse_str(text).map_err(|e| format!("bad id {text:?}: {e}"))
}

pub fn volume_from_row(raw: RawRow) -> Result<VolumeRecord, String> {
    let mut c = Cols::new(raw, VOLUME_COLUMNS);
    Ok(VolumeRecord {
        id: c.uuid()?,
        source: c.text()?,
        name: c.text()?,
        created_at: c.real()?,
    })
}

pub fn backup_from_row(raw: RawRow) -> Result<BackupRecord, String> {
    let mut c = Cols::new(raw, BACKUP_COLUMNS);
    Ok(BackupRecord {
        id: c.uuid()?,
        volume_id: c.uuid()?,
        source: c.text()?,
        size: c.u64()?,
        parent: c.uuid_opt()?,
        kind: c.parsed(parse_kind)?,
        status: c.parsed(parse_status)?,
        store: c.text()?,
        image: c.text()?,
        snapshot: c.text()?,
        bytes_read: c.u64()?,
        bytes_written: c.u64()?,
        bytes_stored: c.u64()?,
        checksum: c.text_opt()?,
        created_at: c.real()?,
        updated_at: c.real()?,
        completed_at: c.real_opt()?,
        error: c.text_opt()?,
        pid: c.int_opt()?.map(|v| c.parse_pid(v)).transpose()?,
        created_base: c.int_opt()?.is_some_and(|v| v != 0),
        metadata: c.parsed(parse_metadata)?,
    })
}

/// A one-column row holding a backup id.
pub fn single_uuid(raw: RawRow) -> Result<Uuid, String> {
    Cols::new(raw, "backup_id").uuid()
}

pub fn policy_from_row(raw: RawRow) -> Result<(PolicyScope, Policy), String> {
    let mut c = Cols::new(raw, "scope, policy");
    let scope = c.parsed(parse_scope)?;
    let policy = c.parsed(parse_policy)?;
    Ok((scope, policy))
}

fn parse_scope(text: &str) -> Result<PolicyScope, String> {
    PolicyScope::from_key(text).ok_or_else(|| format!("unknown policy scope {text:?}"))
}

fn parse_policy(text: &str) -> Result<Policy, String> {
    serde_json::from_str(text).map_err(|e| format!("bad policy JSON: {e}"))
}

fn parse_kind(text: &str) -> Result<BackupKind, String> {
    BackupKind::parse(text).ok_or_else(|| format!("unknown backup kind {text:?}"))
}

fn parse_status(text: &str) -> Result<BackupStatus, String> {
    BackupStatus::parse(text).ok_or_else(|| format!("unknown backup status {text:?}"))
}

fn parse_metadata(text: &str) -> Result<BTreeMap<String, String>, String> {
    serde_json::from_str(text).map_err(|e| format!("bad metadata JSON: {e}"))
}

/// SQLite integers are signed; counts beyond i64 cannot be stored.
fn int(v: u64) -> Result<i64, String> {
    i64::try_from(v).map_err(|_| format!("{v} is too large for the catalog"))
}

/// The values of a backup row, in [`BACKUP_COLUMNS`] order.
pub fn backup_values(b: &BackupRecord) -> Result<Vec<Value>, String> {
    let text = |s: &str| Value::Text(s.to_string());
    let opt = |v: Option<Value>| v.unwrap_or(Value::Null);
    let metadata = serde_json::to_string(&b.metadata).map_err(|e| e.to_string())?;
    Ok(vec![
        text(&b.id.to_string()),
        text(&b.volume_id.to_string()),
        text(&b.source),
        Value::Integer(int(b.size)?),
        opt(b.parent.map(|p| text(&p.to_string()))),
        text(b.kind.as_str()),
        text(b.status.as_str()),
        text(&b.store),
        text(&b.image),
        text(&b.snapshot),
        Value::Integer(int(b.bytes_read)?),
        Value::Integer(int(b.bytes_written)?),
        Value::Integer(int(b.bytes_stored)?),
        opt(b.checksum.as_deref().map(text)),
        Value::Real(b.created_at),
        Value::Real(b.updated_at),
        opt(b.completed_at.map(Value::Real)),
        opt(b.error.as_deref().map(text)),
        opt(b.pid.map(|p| Value::Integer(i64::from(p)))),
        Value::Integer(i64::from(b.created_base)),
        Value::Text(metadata),
    ])
}
