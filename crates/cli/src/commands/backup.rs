//! `backup create`, `backup restore`, `backup delete`.

use crate::args::CreateArgs;
use crate::endpoint::Volume;
use crate::output::{bytes, emit};
use crate::session::Session;
use anyhow::{bail, Result};
use blockback_core::catalog::{resolve_backup, BackupRecord};
use blockback_core::engine::{BackupRequest, RestoreReport};
use blockback_core::image::Pool;
use blockback_rbd::RbdSpec;
use std::collections::BTreeMap;
use std::time::Duration;

pub fn create(session: &Session, args: &CreateArgs) -> Result<()> {
    let volume = Volume::parse(&args.source)?;
    let source_label = volume.label()?;
    let metadata = parse_meta(&args.meta)?;
    let source = volume.open_source(&session.config.volume_ceph, &session.connections)?;
    let store = session.store(true)?;
    let request = BackupRequest {
        source: source.as_ref(),
        source_label,
        volume_name: args.name.clone().unwrap_or_else(|| volume.short_name()),
        store: store.pool(),
        store_label: session.config.store.label(),
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

pub fn restore(session: &Session, backup: &str, target: &str) -> Result<()> {
    let record = resolve_backup(&session.catalog, backup)?;
    let store = session.store_of(&record)?;
    let report = match Volume::parse(target)? {
        Volume::File(path) => session
            .engine()
            .restore_to_path(&record, store.pool(), &path)?,
        Volume::Rbd(spec) => restore_to_rbd(session, &record, store.pool(), &spec)?,
    };
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

/// Restores into an RBD image: a new one (only non-zero extents written)
/// or an existing one (only differing regions written).
fn restore_to_rbd(
    session: &Session,
    record: &BackupRecord,
    store: &dyn Pool,
    spec: &RbdSpec,
) -> Result<RestoreReport> {
    if spec.snap.is_some() {
        bail!(
            "restore target {spec} names a snapshot; snapshots are read-only, give rbd:POOL/IMAGE"
        );
    }
    let name = spec.require_image()?;
    let source = store.open_read_only(&record.image, Some(&record.snapshot))?;
    let pool = session
        .connections
        .get(&session.config.volume_ceph)?
        .open_pool(&spec.pool)?;
    let engine = session.engine();
    if pool.exists(name)? {
        let target = pool.open(name)?;
        return Ok(engine.restore_into(record, source.as_ref(), target.as_ref(), false)?);
    }
    pool.create(name, record.size)?;
    let result = pool
        .open(name)
        .map_err(Into::into)
        .and_then(|target| engine.restore_into(record, source.as_ref(), target.as_ref(), true));
    if result.is_err() {
        let _ = pool.remove(name);
    }
    Ok(result?)
}

pub fn delete(session: &Session, backup: &str, retry_delay: f64) -> Result<()> {
    if !(0.0..=3600.0).contains(&retry_delay) {
        bail!("--retry-delay {retry_delay}: give seconds between 0 and 3600");
    }
    let record = resolve_backup(&session.catalog, backup)?;
    let store = session.store_of(&record)?;
    let mut engine = session.engine();
    engine.retry.delay = Duration::from_secs_f64(retry_delay);
    engine.delete(&record, store.pool())?;
    emit(
        session.config.json,
        &serde_json::json!({ "deleted": record.id }),
        || {
            format!(
                "deleted backup {}; run `blockback gc` to reclaim its space",
                record.id
            )
        },
    )
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
