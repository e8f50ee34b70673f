//! `store init`, `store stats`, `verify`, `gc`, `adopt`.

use crate::commands::backup::summary_line;
use crate::config::{Config, StoreLocation};
use crate::endpoint::StoreHandle;
use crate::output::{emit, gc_text, stats_text};
use crate::session::Session;
use anyhow::{bail, Context, Result};
use blockback_core::catalog::{resolve_backup, BackupRecord, BackupStatus, Catalog};
use blockback_core::store::{InitOptions, LocalStore, VerifyReport, VerifyScope};

pub fn store_init(config: &Config, chunk_size: Option<u64>) -> Result<()> {
    let mut options = InitOptions::default();
    if let Some(size) = chunk_size {
        options.chunk_size = u32::try_from(size).map_err(|_| {
            anyhow::anyhow!("--chunk-size {size}: give a power of two from 4096 to 4194304")
        })?;
    }
    let StoreLocation::Local(path) = &config.store else {
        bail!("store init creates local stores; an RBD pool is created with `ceph osd pool create` and `rbd pool init`");
    };
    let store = LocalStore::init(path, options)
        .with_context(|| format!("cannot create the store at {}", path.display()))?;
    let stats = store.stats()?;
    emit(config.json, &stats, || {
        format!("initialised store {}", path.display())
    })
}

pub fn stats(session: &Session) -> Result<()> {
    let store = session.store(false)?;
    let stats = store.local("store stats")?.stats()?;
    emit(session.config.json, &stats, || stats_text(&stats))
}

pub fn gc(session: &Session) -> Result<()> {
    let store = session.store(false)?;
    let stats = store.local("gc")?.gc(&session.progress)?;
    emit(session.config.json, &stats, || gc_text(&stats))
}

/// Verifies one backup, or every backup of the store and then every chunk.
pub fn verify(session: &Session, backup: Option<&str>) -> Result<()> {
    let (store, backups) = match backup {
        Some(id) => {
            let record = resolve_backup(&session.catalog, id)?;
            (session.store_of(&record)?, vec![record])
        }
        None => (session.store(false)?, store_backups(session)?),
    };
    let mut problems = Vec::new();
    let mut outcomes = Vec::new();
    for record in &backups {
        if let Ok(local) = store.local("verify") {
            let scope = VerifyScope::Version {
                image: record.image.clone(),
                snap: record.restore_point().map(str::to_string),
            };
            let report = local.verify(&scope, &session.progress)?;
            problems.extend(describe_bad(&report, &backups));
        }
        match session.engine().verify(record, store.pool()) {
            Ok(o) => outcomes.push(o),
            Err(e) => problems.push(format!("backup {}: {e}", record.id)),
        }
    }
    if let (None, Ok(local)) = (backup, store.local("verify")) {
        let report = local.verify(&VerifyScope::Store, &session.progress)?;
        problems.extend(describe_bad(&report, &backups));
    }
    problems.sort();
    problems.dedup();
    let result = serde_json::json!({ "verified": outcomes, "problems": problems });
    emit(session.config.json, &result, || {
        let mut lines: Vec<String> = outcomes
            .iter()
            .map(|o| format!("backup {} ok ({} bytes read)", o.backup, o.bytes_read))
            .collect();
        lines.extend(problems.iter().map(|p| format!("PROBLEM: {p}")));
        lines.join("\n")
    })?;
    if !problems.is_empty() {
        bail!("verify found {} problem(s)", problems.len());
    }
    Ok(())
}

fn store_backups(session: &Session) -> Result<Vec<BackupRecord>> {
    let label = session.config.store.label();
    Ok(session
        .catalog
        .list_backups(None)?
        .into_iter()
        .filter(|b| b.store == label && b.status == BackupStatus::Available)
        .collect())
}

/// One line per bad chunk or page, naming the backups that use it.
fn describe_bad(report: &VerifyReport, backups: &[BackupRecord]) -> Vec<String> {
    report
        .bad
        .iter()
        .map(|bad| {
            let users: Vec<String> = bad
                .users
                .iter()
                .map(|u| backup_named(backups, &u.image, u.snapshot.as_deref()))
                .collect();
            format!(
                "{} {}: {}; used by {}",
                bad.kind,
                bad.id,
                bad.error,
                users.join(", ")
            )
        })
        .collect()
}

/// Names the backup stored as `image@snap`, for reports about chunks.
fn backup_named(backups: &[BackupRecord], image: &str, snap: Option<&str>) -> String {
    let Some(snap) = snap else {
        return format!("{image} (HEAD)");
    };
    backups
        .iter()
        .find(|b| b.image == image && b.snapshot == snap)
        .map_or_else(|| format!("{image}@{snap}"), |b| format!("backup {}", b.id))
}

pub fn adopt(session: &Session, volume_pool: &str, checksums: bool) -> Result<()> {
    let store = session.store(false)?;
    let label = session.config.store.label();
    let volume_store = session.config.volume_store.clone();
    let source_of = |id: &uuid::Uuid| match (&store, &volume_store) {
        (StoreHandle::Local(_), Some(dir)) => format!("local:{}/volume-{id}", dir.display()),
        _ => format!("rbd:{volume_pool}/volume-{id}"),
    };
    let report = session
        .engine()
        .adopt(store.pool(), &label, &source_of, checksums)?;
    let json = serde_json::json!({
        "adopted": report.adopted, "checksummed": report.checksummed, "skipped": report.skipped,
    });
    emit(session.config.json, &json, || {
        let mut text = format!("adopted {} backups from {label}", report.adopted.len());
        for b in &report.adopted {
            text.push_str(&format!("\n  {}", summary_line(b)));
        }
        for b in &report.checksummed {
            text.push_str(&format!("\n  checksum recorded: {}", summary_line(b)));
        }
        for s in &report.skipped {
            text.push_str(&format!("\n  skipped {s}"));
        }
        text
    })
}
