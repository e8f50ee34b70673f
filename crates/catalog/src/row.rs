//! Conversions between catalog records and table rows.
//!
//! Rows are read into plain SQL values first and converted afterwards, so a
//! damaged row becomes a message naming the row and column, not a panic.

use blockback_core::catalog::{
    BackupKind, BackupRecord, BackupStatus, JobKind, JobRecord, JobState, PolicyScope, VolumeRecord,
};
use blockback_core::retention::Policy;
use rusqlite::types::Value;
use rusqlite::Row;
use std::collections::BTreeMap;
use uuid::Uuid;

pub const VOLUME_COLUMNS: &str = "id, source, name, created_at, cluster, registered, size";

pub const JOB_COLUMNS: &str = "id, kind, state, volume_id, backup_id, request, phase, \
    bytes_done, bytes_total, rate, created_at, started_at, finished_at, updated_at, error, \
    cancel_requested, worker, lease_until";

/// `?1, ?2, ...` for the job columns, in order.
pub const JOB_PLACEHOLDERS: &str = "?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, \
    ?14, ?15, ?16, ?17, ?18";

/// `column = ?n` for every job column but the id (?1).
pub const JOB_ASSIGNMENTS: &str = "kind = ?2, state = ?3, volume_id = ?4, backup_id = ?5, \
    request = ?6, phase = ?7, bytes_done = ?8, bytes_total = ?9, rate = ?10, created_at = ?11, \
    started_at = ?12, finished_at = ?13, updated_at = ?14, error = ?15, \
    cancel_requested = ?16, worker = ?17, lease_until = ?18";

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

/// A row as stored, one value per column (SQLite's value kinds; the
/// PostgreSQL catalog reads its rows into the same, see `pg::value`).
pub struct RawRow(pub(crate) Vec<Value>);

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
    names: std::str::Split<'static, char>,
    /// The column last read, for messages.
    current: &'static str,
}

impl Cols {
    fn new(raw: RawRow, names: &'static str) -> Self {
        Cols {
            values: raw.0.into_iter(),
            names: names.split(','),
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
        let v = self.u64_opt()?;
        self.required(v)
    }

    fn u64_opt(&mut self) -> Result<Option<u64>, String> {
        let v = self.int_opt()?;
        v.map(|v| u64::try_from(v).map_err(|_| self.bad(format!("negative count {v}"))))
            .transpose()
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
        cluster: c.text_opt()?,
        registered: c.int_opt()?.is_some_and(|v| v != 0),
        size: c.u64_opt()?,
    })
}

pub fn job_from_row(raw: RawRow) -> Result<JobRecord, String> {
    let mut c = Cols::new(raw, JOB_COLUMNS);
    Ok(JobRecord {
        id: c.uuid()?,
        kind: c.parsed(|t| JobKind::parse(t).ok_or_else(|| format!("unknown job kind {t:?}")))?,
        state: c
            .parsed(|t| JobState::parse(t).ok_or_else(|| format!("unknown job state {t:?}")))?,
        volume_id: c.uuid()?,
        backup_id: c.uuid_opt()?,
        request: c.text()?,
        phase: c.text()?,
        bytes_done: c.u64()?,
        bytes_total: c.u64()?,
        rate: c.real()?,
        created_at: c.real()?,
        started_at: c.real_opt()?,
        finished_at: c.real_opt()?,
        updated_at: c.real()?,
        error: c.text_opt()?,
        cancel_requested: c.int_opt()?.is_some_and(|v| v != 0),
        worker: c.text_opt()?,
        lease_until: c.real_opt()?,
    })
}

/// The values of a volume row, in [`VOLUME_COLUMNS`] order.
pub fn volume_values(v: &VolumeRecord) -> Result<Vec<Value>, String> {
    Ok(vec![
        Value::Text(v.id.to_string()),
        Value::Text(v.source.clone()),
        Value::Text(v.name.clone()),
        Value::Real(v.created_at),
        opt_text(v.cluster.as_deref()),
        Value::Integer(i64::from(v.registered)),
        match v.size {
            Some(s) => Value::Integer(int(s)?),
            None => Value::Null,
        },
    ])
}

/// The values of a job row, in [`JOB_COLUMNS`] order.
pub fn job_values(j: &JobRecord) -> Result<Vec<Value>, String> {
    let real_opt = |v: Option<f64>| v.map_or(Value::Null, Value::Real);
    Ok(vec![
        Value::Text(j.id.to_string()),
        Value::Text(j.kind.as_str().into()),
        Value::Text(j.state.as_str().into()),
        Value::Text(j.volume_id.to_string()),
        opt_text(j.backup_id.map(|b| b.to_string()).as_deref()),
        Value::Text(j.request.clone()),
        Value::Text(j.phase.clone()),
        Value::Integer(int(j.bytes_done)?),
        Value::Integer(int(j.bytes_total)?),
        Value::Real(j.rate),
        Value::Real(j.created_at),
        real_opt(j.started_at),
        real_opt(j.finished_at),
        Value::Real(j.updated_at),
        opt_text(j.error.as_deref()),
        Value::Integer(i64::from(j.cancel_requested)),
        opt_text(j.worker.as_deref()),
        real_opt(j.lease_until),
    ])
}

fn opt_text(t: Option<&str>) -> Value {
    t.map_or(Value::Null, |t| Value::Text(t.to_string()))
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
