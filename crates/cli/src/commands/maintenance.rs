//! `store init`, `store stats`, `verify`, `gc`.

use crate::config::Config;
use crate::output::emit;
use crate::session::Session;
use anyhow::{bail, Context, Result};
use blockback_core::catalog::{resolve_backup, BackupRecord, BackupStatus, Catalog};
use blockback_core::store::{InitOptions, LocalStore, VerifyScope};

pub fn store_init(config: &Config, chunk_size: Option<u64>) -> Result<()> {
    let mut options = InitOptions::default();
    if let Some(size) = chunk_size {
        options.chunk_size = size;
    }
    let store = LocalStore::init(&config.store, options)
        .with_context(|| format!("cannot create the store at {}", config.store.display()))?;
    let stats = store.stats()?;
    emit(config.json, &stats, || format!("initialised store {}", config.store.display()))
}

pub fn stats(session: &Session) -> Result<()> {
    let stats = session.store(false)?.stats()?;
    emit(session.config.json, &stats, || serde_json::to_string_pretty(&stats).unwrap_or_default())
}

pub fn gc(session: &Session) -> Result<()> {
    let stats = session.store(false)?.gc(&session.progress)?;
    emit(session.config.json, &stats, || serde_json::to_string_pretty(&stats).unwrap_or_default())
}

/// Verifies one backup, or every backup of the store and then every chunk.
pub fn verify(session: &Session, backup: Option<&str>) -> Result<()> {
    let store = session.store(false)?;
    let backups = match backup {
        Some(id) => vec![resolve_backup(&session.catalog, id)?],
        None => store_backups(session)?,
    };
    let mut problems = Vec::new();
    let mut outcomes = Vec::new();
    for record in &backups {
        let scope = VerifyScope::Snapshot { image: record.image.clone(), snapshot: record.snapshot.clone() };
        let report = store.verify(&scope, &session.progress)?;
        problems.extend(report.problems(|image, snap| backup_named(&backups, image, snap)));
        match session.engine().verify(record, &store) {
            Ok(o) => outcomes.push(o),
            Err(e) => problems.push(format!("backup {}: {e}", record.id)),
        }
    }
    if backup.is_none() {
        let report = store.verify(&VerifyScope::All, &session.progress)?;
        problems.extend(report.problems(|image, snap| backup_named(&backups, image, snap)));
    }
    problems.dedup();
    let result = serde_json::json!({ "verified": outcomes, "problems": problems });
    emit(session.config.json, &result, || {
        let mut lines: Vec<String> = outcomes.iter().map(|o| format!("backup {} ok ({} bytes read)", o.backup, o.bytes_read)).collect();
        lines.extend(problems.iter().map(|p| format!("PROBLEM: {p}")));
        lines.join("\n")
    })?;
    if !problems.is_empty() {
        bail!("verify found {} problem(s)", problems.len());
    }
    Ok(())
}

fn store_backups(session: &Session) -> Result<Vec<BackupRecord>> {
    let label = session.config.store_label();
    Ok(session
        .catalog
        .list_backups(None)?
        .into_iter()
        .filter(|b| b.store == label && b.status == BackupStatus::Available)
        .collect())
}

/// Names the backup stored as `image@snap`, for reports about chunks.
fn backup_named(backups: &[BackupRecord], image: &str, snap: &str) -> String {
    backups
        .iter()
        .find(|b| b.image == image && b.snapshot == snap)
        .map_or_else(|| format!("{image}@{snap}"), |b| format!("backup {}", b.id))
}
