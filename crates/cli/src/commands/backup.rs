//! `backup create`, `backup restore`, `backup delete`.

use crate::args::CreateArgs;
use crate::output::{bytes, emit};
use crate::session::{open_store, Session};
use anyhow::{bail, Context, Result};
use blockback_core::catalog::{resolve_backup, BackupRecord};
use blockback_core::engine::BackupRequest;
use blockback_core::image::file::FileImage;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

pub fn create(session: &Session, args: &CreateArgs) -> Result<()> {
    let source_path = resolve_source(&args.source)?;
    let source = FileImage::open(&source_path, false)?;
    let metadata = parse_meta(&args.meta)?;
    let store = session.store(true)?;
    let request = BackupRequest {
        source: &source,
        source_label: source_path.display().to_string(),
        volume_name: args.name.clone().unwrap_or_else(|| file_name(&source_path)),
        store: &store,
        store_label: session.config.store_label(),
        metadata,
        force_full: args.full,
    };
    let record = session.engine().backup(&request)?;
    emit(session.config.json, &record, || {
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
    })
}

pub fn restore(session: &Session, backup: &str, target: &Path) -> Result<()> {
    let record = resolve_backup(&session.catalog, backup)?;
    let store = open_store(Path::new(&record.store), false)?;
    let target = crate::config::absolute(target)?;
    let report = session.engine().restore_to_path(&record, &store, &target)?;
    let json = serde_json::json!({
        "backup": record.id, "target": report.target, "created": report.created,
        "bytes_read": report.bytes_read, "bytes_written": report.bytes_written,
        "excess_zeroed": report.excess_zeroed, "checksum": report.checksum,
    });
    emit(session.config.json, &json, || {
        format!(
            "restored backup {} to {}: read {}, wrote {}",
            record.id,
            report.target,
            bytes(report.bytes_read),
            bytes(report.bytes_written)
        )
    })
}

pub fn delete(session: &Session, backup: &str, retry_delay: f64) -> Result<()> {
    if !(0.0..=3600.0).contains(&retry_delay) {
        bail!("--retry-delay {retry_delay}: give seconds between 0 and 3600");
    }
    let record = resolve_backup(&session.catalog, backup)?;
    let store = open_store(Path::new(&record.store), false)?;
    let mut engine = session.engine();
    engine.retry.delay = Duration::from_secs_f64(retry_delay);
    engine.delete(&record, &store)?;
    emit(session.config.json, &serde_json::json!({ "deleted": record.id }), || {
        format!("deleted backup {}; run `blockback gc` to reclaim its space", record.id)
    })
}

fn resolve_source(path: &Path) -> Result<std::path::PathBuf> {
    let resolved = std::fs::canonicalize(path).with_context(|| format!("source {}", path.display()))?;
    if resolved.is_dir() {
        bail!("source {} is a directory; give an image file or block device", path.display());
    }
    Ok(resolved)
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

fn parse_meta(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for pair in pairs {
        match pair.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                out.insert(format!("user.{k}"), v.to_string());
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
