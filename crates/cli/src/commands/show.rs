//! `backup list` and `backup show`.
//!
//! People get local ISO 8601 dates; `--json` keeps the catalog's numbers
//! (Unix seconds, UTC) for scripts, plus `protected`.

use crate::output::{bytes, emit, fields, local_time};
use crate::session::Session;
use anyhow::Result;
use blockback_core::catalog::{resolve_backup, BackupRecord};
use std::collections::BTreeSet;
use uuid::Uuid;

pub fn list(session: &Session, source: Option<&str>) -> Result<()> {
    let mut backups = session.catalog.list_backups(None)?;
    if let Some(source) = source {
        let volume = session.ops().volume(source)?;
        let wanted = volume.label().unwrap_or_else(|_| source.to_string());
        backups.retain(|b| b.source == wanted);
    }
    let protected = session.catalog.protected_backups()?;
    let json: Vec<serde_json::Value> = backups
        .iter()
        .map(|b| with_protected(b, &protected))
        .collect::<Result<_>>()?;
    emit(session.config.json, &json, || table(&backups, &protected))
}

/// The record as JSON, with whether it is protected.
fn with_protected(b: &BackupRecord, protected: &BTreeSet<Uuid>) -> Result<serde_json::Value> {
    let mut value = serde_json::to_value(b)?;
    value["protected"] = protected.contains(&b.id).into();
    Ok(value)
}

pub fn table(backups: &[BackupRecord], protected: &BTreeSet<Uuid>) -> String {
    if backups.is_empty() {
        return "no backups".into();
    }
    let mut lines = vec![format!(
        "{:<36}  {:<25}  {:<11}  {:<9}  {:>10}  SOURCE",
        "ID", "CREATED", "KIND", "STATUS", "SIZE"
    )];
    lines.extend(backups.iter().map(|b| {
        let mark = if protected.contains(&b.id) {
            "  [protected]"
        } else {
            ""
        };
        format!(
            "{:<36}  {:<25}  {:<11}  {:<9}  {:>10}  {}{mark}",
            b.id,
            local_time(b.created_at),
            b.kind.as_str(),
            b.status.as_str(),
            bytes(b.size),
            b.source
        )
    }));
    lines.join("\n")
}

pub fn show(session: &Session, backup: &str) -> Result<()> {
    let record = resolve_backup(session.catalog.as_ref(), backup)?;
    let protected = session.catalog.protected_backups()?;
    let json = with_protected(&record, &protected)?;
    emit(session.config.json, &json, || {
        details(&record, protected.contains(&record.id))
    })
}

fn details(b: &BackupRecord, protected: bool) -> String {
    let kind = match b.parent {
        Some(parent) => format!("{} (parent {parent})", b.kind),
        None => b.kind.to_string(),
    };
    let mut rows = vec![
        ("id", b.id.to_string()),
        ("volume", b.volume_id.to_string()),
        ("source", b.source.clone()),
        ("kind", kind),
        ("status", b.status.to_string()),
        (
            "protected",
            if protected { "yes" } else { "no" }.to_string(),
        ),
        ("size", format!("{} ({} bytes)", bytes(b.size), b.size)),
        ("store", b.store.clone()),
        ("image", b.image.clone()),
        ("snapshot", b.snapshot.clone()),
        ("checksum", b.checksum.clone().unwrap_or_else(|| "-".into())),
        ("created", local_time(b.created_at)),
    ];
    if let Some(done) = b.completed_at {
        rows.push(("completed", local_time(done)));
    }
    rows.push(("updated", local_time(b.updated_at)));
    rows.push(("read", bytes(b.bytes_read)));
    rows.push(("written", bytes(b.bytes_written)));
    rows.push(("store grew", bytes(b.bytes_stored)));
    if let Some(pid) = b.pid {
        rows.push(("pid", pid.to_string()));
    }
    if let Some(error) = &b.error {
        rows.push(("error", error.clone()));
    }
    rows.extend(
        b.metadata
            .iter()
            .map(|(k, v)| ("metadata", format!("{k}={v}"))),
    );
    fields(&rows)
}
