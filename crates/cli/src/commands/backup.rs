//! `backup create`, `backup restore`, `backup delete`.

use crate::args::CreateArgs;
use crate::config::StoreLocation;
use crate::endpoint::Volume;
use crate::output::{bytes, emit};
use crate::session::Session;
use anyhow::{bail, Context, Result};
use blockback_core::catalog::{resolve_backup, BackupRecord};
use blockback_core::engine::{BackupRequest, ChainMode, RestoreReport, RestoreTarget};
use blockback_core::image::{Image, ImageError, Pool};
use blockback_core::metadata::{
    apply_volume_metadata, read_backup_metadata, AppliedMetadata, BackupMetadata,
};
use blockback_core::progress::Progress;
use blockback_core::store::LocalStore;
use std::collections::BTreeMap;
use std::time::Duration;

pub fn create(session: &Session, args: &CreateArgs) -> Result<()> {
    let volume = Volume::parse(&args.source, session.config.volume_store.as_deref())?;
    let source_label = volume.label()?;
    let metadata = parse_meta(&args.meta)?;
    let source = volume.open_source(&session.config.volume_ceph, &session.connections)?;
    let store = session.store(true)?;
    let request = BackupRequest {
        source: source.image.as_ref(),
        snapshot_source: source.snapshot_capable,
        source_label,
        volume_name: args.name.clone().unwrap_or_else(|| volume.short_name()),
        store: store.pool(),
        store_label: session.config.store.label(),
        metadata,
        mode: match (args.full, args.incremental) {
            (true, _) => ChainMode::Full,
            (_, true) => ChainMode::Incremental,
            _ => ChainMode::Auto,
        },
        keep_source_snapshots: usize::from(args.keep_source_snapshots),
    };
    let record = session.engine().backup(&request)?;
    let mut shown = serde_json::to_value(&record)?;
    shown["phases"] = phases_json(session);
    emit(session.config.json, &shown, || {
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
    let volume = Volume::parse(target, session.config.volume_store.as_deref())?;
    // A missing or unreadable metadata object must not keep the data from
    // being restored: it is a note, and no key is set.
    let metadata = match read_backup_metadata(store.pool(), &record.id.to_string()) {
        Ok(m) => m,
        Err(e) => {
            session.progress.note(&format!("{e}"));
            None
        }
    };
    let restored = match &volume {
        Volume::File(path) => {
            let report = session
                .engine()
                .restore_to_path(&record, store.pool(), path)?;
            let applied = metadata
                .as_ref()
                .map(|m| AppliedMetadata::none_kept(m, &report.target))
                .unwrap_or_default();
            Restored { report, applied }
        }
        Volume::Rbd(spec) => {
            if spec.snap.is_some() {
                bail!("restore target {spec} names a snapshot; snapshots are read-only, give rbd:POOL/IMAGE");
            }
            let pool = session
                .connections
                .get(&session.config.volume_ceph)?
                .open_pool(&spec.pool)?;
            let into = PoolTarget {
                pool: &pool,
                name: spec.require_image()?,
                volume: &volume,
            };
            restore_to_pool(session, &record, store.pool(), &into, metadata.as_ref())?
        }
        Volume::Local { store: dir, image } => {
            let pool = LocalStore::open(dir)?;
            let into = PoolTarget {
                pool: &pool,
                name: image,
                volume: &volume,
            };
            restore_to_pool(session, &record, store.pool(), &into, metadata.as_ref())?
        }
    };
    emit_restored(session, &record, &restored, metadata.as_ref())
}

/// A restore's data report and what became of the volume metadata.
struct Restored {
    report: RestoreReport,
    applied: AppliedMetadata,
}

fn emit_restored(
    session: &Session,
    record: &BackupRecord,
    restored: &Restored,
    metadata: Option<&BackupMetadata>,
) -> Result<()> {
    let (report, applied) = (&restored.report, &restored.applied);
    for (key, why) in &applied.skipped {
        session
            .progress
            .note(&format!("metadata key {key} not restored: {why}"));
    }
    let metadata = metadata.map(
        |m| serde_json::json!({"volume-base-metadata": m.volume_base, "volume-metadata": m.volume}),
    );
    let skipped: BTreeMap<_, _> = applied.skipped.iter().cloned().collect();
    let json = serde_json::json!({
        "backup": record.id, "target": report.target, "created": report.created,
        "differential": report.differential, "metadata": metadata,
        "metadata_applied": applied.applied, "metadata_skipped": skipped,
        "phases": phases_json(session),
        "bytes_read": report.bytes_read, "bytes_written": report.bytes_written,
        "excess_zeroed": report.excess_zeroed, "checksum": report.checksum,
    });
    emit(session.config.json, &json, || {
        format!(
            "restored backup {} to {}: read {}, wrote {}, {} metadata key(s) set",
            record.id,
            report.target,
            bytes(report.bytes_read),
            bytes(report.bytes_written),
            applied.applied.len()
        )
    })
}

/// An image of a pool (RBD or local store) to restore into.
struct PoolTarget<'p> {
    pool: &'p dyn Pool,
    name: &'p str,
    volume: &'p Volume,
}

/// Restores into an image of a pool: a new one, or an existing one
/// (differential when it is empty and not the source), then sets the
/// backup's volume metadata on it. A new image is removed when either fails.
fn restore_to_pool(
    session: &Session,
    record: &BackupRecord,
    store: &dyn Pool,
    into: &PoolTarget<'_>,
    metadata: Option<&BackupMetadata>,
) -> Result<Restored> {
    let source = store.open_read_only(&record.image, record.restore_point())?;
    let (pool, name) = (into.pool, into.name);
    let exists = pool.exists(name)?;
    if !exists {
        pool.create(name, record.size)?;
    }
    let result = pool.open(name).map_err(Into::into).and_then(|image| {
        let target = RestoreTarget {
            image: image.as_ref(),
            label: into.volume.label()?,
            is_new: !exists,
        };
        let report = session
            .engine()
            .restore_into(record, source.as_ref(), &target)?;
        let applied = match metadata {
            Some(m) => apply_volume_metadata(image.as_ref(), m).with_context(|| {
                format!(
                    "backup {} was restored to {}, but its metadata could not be set",
                    record.id, report.target
                )
            })?,
            None => AppliedMetadata::default(),
        };
        Ok(Restored { report, applied })
    });
    if result.is_err() && !exists {
        let _ = pool.remove(name);
    }
    result
}

pub fn delete(session: &Session, backup: &str, retry_delay: f64) -> Result<()> {
    if !(0.0..=3600.0).contains(&retry_delay) {
        bail!("--retry-delay {retry_delay}: give seconds between 0 and 3600");
    }
    let record = resolve_backup(&session.catalog, backup)?;
    let mut engine = session.engine();
    engine.retry.delay = Duration::from_secs_f64(retry_delay);
    let store = match session.store_of(&record) {
        Ok(store) => store,
        Err(e) if is_not_found(&e) => {
            engine.forget(&record, &format!("{e:#}"))?;
            return emit_deleted(session, &record);
        }
        Err(e) => return Err(e),
    };
    let source = open_source_head(session, &record);
    let snaps = source.as_ref().and_then(|s| s.snapshots());
    engine.delete(&record, store.pool(), snaps)?;
    emit_deleted(session, &record)
}

/// The backup's source volume, to remove its backup snapshot; `None` (with
/// a note) when it has no snapshots or cannot be opened.
pub(super) fn open_source_head(session: &Session, record: &BackupRecord) -> Option<Box<dyn Image>> {
    let opened = Volume::from_label(&record.source)
        .and_then(|v| v.open_head(&session.config.volume_ceph, &session.connections));
    match opened {
        Ok(head) => head,
        Err(e) if is_not_found(&e) => None,
        Err(e) => {
            session.progress.note(&format!(
                "cannot open source {} to remove snapshot {}: {e:#}",
                record.source, record.snapshot
            ));
            None
        }
    }
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<ImageError>()
            .is_some_and(ImageError::is_not_found)
    })
}

fn emit_deleted(session: &Session, record: &BackupRecord) -> Result<()> {
    emit(
        session.config.json,
        &serde_json::json!({ "deleted": record.id }),
        || match StoreLocation::parse(&record.store) {
            Ok(StoreLocation::Local(_)) => format!(
                "deleted backup {}; run `blockback gc` to reclaim its space",
                record.id
            ),
            _ => format!("deleted backup {}", record.id),
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
