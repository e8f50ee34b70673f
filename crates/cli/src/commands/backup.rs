//! `backup create`, `backup restore`, `backup delete`: thin shells over
//! `blockback_ops`.

use crate::args::CreateArgs;
use crate::output::{bytes, emit};
use crate::session::Session;
use anyhow::{bail, Context, Result};
use blockback_core::catalog::BackupRecord;
use blockback_core::engine::{ChainMode, Restored};
use blockback_core::metadata::BackupMetadata;
use blockback_core::progress::Progress;
use blockback_ops::{BackupOptions, DeleteOptions, RestoreOptions};
use std::collections::BTreeMap;
use std::time::Duration;

pub fn create(session: &Session, args: &CreateArgs) -> Result<()> {
    let options = BackupOptions {
        source: args.source.clone(),
        name: args.name.clone(),
        description: args.description.clone(),
        metadata: parse_meta(&args.meta)?,
        mode: match (args.full, args.incremental) {
            (true, _) => ChainMode::Full,
            (_, true) => ChainMode::Incremental,
            _ => ChainMode::Auto,
        },
        keep_source_snapshots: usize::from(args.keep_source_snapshots),
        id: args.id,
        volume_id: args.volume_id,
        metadata_object: args
            .metadata_object
            .as_deref()
            .map(read_metadata_object)
            .transpose()?,
    };
    let record = session.ops().backup(&options)?;
    let mut shown = serde_json::to_value(&record)?;
    shown["phases"] = phases_json(session);
    emit(session.config.json, &shown, || created_line(&record))
}

/// A `--metadata-object` file, parsed (so a bad one changes nothing).
fn read_metadata_object(path: &std::path::Path) -> Result<BackupMetadata> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the metadata object file {}", path.display()))?;
    BackupMetadata::from_json(&bytes)
        .with_context(|| format!("--metadata-object {}", path.display()))
}

/// The line `backup create` prints (locally and with --server).
pub fn created_line(record: &BackupRecord) -> String {
    format!(
        "backup {} ({}) of {}: {} volume, read {}, wrote {}, store grew {}",
        record.id,
        record.kind,
        record.source,
        bytes(record.size),
        bytes(record.bytes_read),
        bytes(record.bytes_written),
        bytes(record.bytes_stored)
    )
}

pub fn restore(session: &Session, backup: &str, target: &str) -> Result<()> {
    let options = RestoreOptions {
        backup: backup.to_string(),
        target: target.to_string(),
        ..RestoreOptions::default()
    };
    let restored = session.ops().restore(&options)?;
    emit_restored(session, &restored)
}

fn emit_restored(session: &Session, restored: &Restored) -> Result<()> {
    let (report, applied) = (&restored.report, &restored.applied);
    for (key, why) in &applied.skipped {
        session
            .progress
            .note(&format!("metadata key {key} not restored: {why}"));
    }
    let metadata = restored.metadata.as_ref().map(
        |m| serde_json::json!({"volume-base-metadata": m.volume_base, "volume-metadata": m.volume}),
    );
    let skipped: BTreeMap<_, _> = applied.skipped.iter().cloned().collect();
    let json = serde_json::json!({
        "backup": restored.backup, "target": report.target, "created": report.created,
        "differential": report.differential, "metadata": metadata,
        "metadata_applied": applied.applied, "metadata_skipped": skipped,
        "phases": phases_json(session),
        "bytes_read": report.bytes_read, "bytes_written": report.bytes_written,
        "excess_zeroed": report.excess_zeroed, "checksum": report.checksum,
    });
    emit(session.config.json, &json, || {
        format!(
            "restored backup {} to {}: read {}, wrote {}, {} metadata key(s) set",
            restored.backup,
            report.target,
            bytes(report.bytes_read),
            bytes(report.bytes_written),
            applied.applied.len()
        )
    })
}

pub fn delete(session: &Session, backup: &str, retry_delay: f64) -> Result<()> {
    if !(0.0..=3600.0).contains(&retry_delay) {
        bail!("--retry-delay {retry_delay}: give seconds between 0 and 3600");
    }
    let options = DeleteOptions {
        backup: backup.to_string(),
        retry_delay: Duration::from_secs_f64(retry_delay),
    };
    let deleted = session.ops().delete(&options)?;
    let id = deleted.record.id;
    emit(
        session.config.json,
        &serde_json::json!({ "deleted": id }),
        || match deleted.local_store {
            true => format!("deleted backup {id}; run `blockback gc` to reclaim its space"),
            false => format!("deleted backup {id}"),
        },
    )
}

/// Seconds per timed engine phase (repeated phases summed).
fn phases_json(session: &Session) -> serde_json::Value {
    let mut phases = serde_json::Map::new();
    for (name, secs) in session.progress.phases() {
        let total = phases.get(&name).and_then(|v| v.as_f64()).unwrap_or(0.0) + secs;
        phases.insert(name, total.into());
    }
    phases.into()
}

fn parse_meta(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for pair in pairs {
        match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(k.to_string(), v.to_string());
            }
            _ => bail!("--meta {pair:?}: expected KEY=VALUE"),
        }
    }
    Ok(out)
}

/// One line per backup for `backup list`.
pub fn summary_line(b: &BackupRecord) -> String {
    format!(
        "{}  {:<11} {:<9} {:>10}  {}",
        b.id,
        b.kind.as_str(),
        b.status.as_str(),
        bytes(b.size),
        b.source
    )
}
