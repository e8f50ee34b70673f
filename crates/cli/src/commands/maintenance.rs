//! `store init`, `store stats`, `verify`, `gc`, `adopt`.

use crate::args::KeyArgs;
use crate::commands::backup::summary_line;
use crate::config::Config;
use crate::output::{emit, gc_text, stats_text};
use crate::session::Session;
use anyhow::{bail, Context, Result};
use blockback_core::catalog::{resolve_backup, BackupRecord, BackupStatus};
use blockback_core::crypto::Cipher;
use blockback_core::engine::VerifyOutcome;
use blockback_core::image::Pool;
use blockback_core::naming;
use blockback_core::store::{InitOptions, LocalStore, VerifyReport, VerifyScope};
use blockback_ops::{StoreHandle, StoreLocation, Volume};
use std::collections::HashSet;

pub fn store_init(
    config: &Config,
    chunk_size: Option<u64>,
    encryption: &str,
    keys: &KeyArgs,
) -> Result<()> {
    let mut options = InitOptions::default();
    if let Some(size) = chunk_size {
        options.chunk_size = u32::try_from(size).map_err(|_| {
            anyhow::anyhow!("--chunk-size {size}: give a power of two from 4096 to 4194304")
        })?;
    }
    let StoreLocation::Local(path) = &config.settings.store else {
        if encryption != "none" {
            bail!("--encryption {encryption}: RBD stores are not encrypted by blockback (docs/rbd.md, \"Encryption\", says why and what to use instead); encrypted stores are local");
        }
        bail!("store init creates local stores; an RBD pool is created with `ceph osd pool create` and `rbd pool init`");
    };
    blockback_ops::require_parent(path, "store")?;
    if let Some(cipher) = Cipher::parse(encryption) {
        let text = super::keys::init(path, options, cipher, keys)?;
        let json = serde_json::json!({ "store": path, "encryption": cipher.name() });
        return emit(config.json, &json, || text);
    }
    if config.settings.keys.given() {
        bail!("a key file or passphrase was given, but --encryption none: give --encryption aes256gcm (or xchacha20poly1305) for an encrypted store, or drop the key options");
    }
    let store = LocalStore::init(path, options)
        .with_context(|| format!("cannot create the store at {}", path.display()))?;
    let stats = store.stats()?;
    emit(config.json, &stats, || {
        format!("initialised store {}", path.display())
    })
}

pub fn stats(session: &Session) -> Result<()> {
    let store = session.ops().store(false)?;
    let stats = store.local("store stats")?.stats()?;
    emit(session.config.json, &stats, || stats_text(&stats))
}

pub fn gc(session: &Session) -> Result<()> {
    let store = session.ops().store(false)?;
    let stats = store.local("gc")?.gc(&session.progress)?;
    emit(session.config.json, &stats, || gc_text(&stats))
}

/// What one verification pass found.
#[derive(Default)]
struct Checked {
    outcomes: Vec<VerifyOutcome>,
    problems: Vec<String>,
    /// Backups that failed, for `--repair`.
    failed: Vec<BackupRecord>,
}

/// Verifies one backup, or every backup of the store and then every chunk;
/// with `repair`, re-reads the sources of the backups that failed into the
/// store and verifies again.
pub fn verify(session: &Session, backup: Option<&str>, repair: bool) -> Result<()> {
    let (store, backups) = match backup {
        Some(id) => {
            let record = resolve_backup(session.catalog.as_ref(), id)?;
            (session.ops().store_of(&record)?, vec![record])
        }
        None => (session.ops().store(false)?, store_backups(session)?),
    };
    let whole_store = backup.is_none();
    let mut checked = check(session, &store, &backups, whole_store)?;
    let mut repairs = Vec::new();
    if repair && !checked.failed.is_empty() {
        let local = store.local("verify --repair")?;
        repairs = checked
            .failed
            .iter()
            .map(|record| repair_one(session, local, record))
            .collect();
        checked = check(session, &store, &backups, whole_store)?;
    }
    let mut notes = Vec::new();
    if whole_store {
        let unknown = unknown_backups(session, store.pool())?;
        if !unknown.is_empty() {
            let line = unknown_line(session, &unknown);
            if backups.is_empty() {
                checked.problems.push(line);
            } else {
                notes.push(line);
            }
        }
    }
    let Checked {
        outcomes, problems, ..
    } = checked;
    // A backup without a recorded checksum (adopted from Cinder, which
    // keeps none) read back whole, but had nothing to be compared with.
    let compared = |o: &VerifyOutcome| {
        backups
            .iter()
            .any(|b| b.id.to_string() == o.backup && b.checksum.is_some())
    };
    let verified: Vec<_> = outcomes
        .iter()
        .map(|o| {
            let mut v = serde_json::to_value(o).unwrap_or_default();
            v["checksum_compared"] = compared(o).into();
            v
        })
        .collect();
    let result = serde_json::json!({
        "verified": verified, "problems": problems, "repairs": repairs, "notes": notes,
    });
    emit(session.config.json, &result, || {
        let mut lines: Vec<String> = outcomes
            .iter()
            .map(|o| verified_line(o, compared(o)))
            .collect();
        lines.extend(repairs.iter().map(|r| format!("repair: {r}")));
        lines.extend(notes.iter().map(|n| format!("note: {n}")));
        lines.extend(problems.iter().map(|p| format!("PROBLEM: {p}")));
        lines.join("\n")
    })?;
    if !problems.is_empty() {
        bail!("verify found {} problem(s)", problems.len());
    }
    Ok(())
}

fn check(
    session: &Session,
    store: &StoreHandle,
    backups: &[BackupRecord],
    whole_store: bool,
) -> Result<Checked> {
    let mut c = Checked::default();
    for record in backups {
        if let Ok(local) = store.local("verify") {
            let scope = VerifyScope::Version {
                image: record.image.clone(),
                snap: record.restore_point().map(str::to_string),
            };
            match local.verify(&scope, &session.progress) {
                Ok(report) => c.problems.extend(describe_bad(&report, backups)),
                Err(e) => c.problems.push(format!("backup {}: {e}", record.id)),
            }
        }
        match session.ops().engine().verify(record, store.pool()) {
            Ok(o) => c.outcomes.push(o),
            Err(e) => {
                c.problems.push(format!("backup {}: {e}", record.id));
                c.failed.push(record.clone());
            }
        }
    }
    if let (true, Ok(local)) = (whole_store, store.local("verify")) {
        let report = local.verify(&VerifyScope::Store, &session.progress)?;
        c.problems.extend(describe_bad(&report, backups));
        c.problems.extend(report.unreadable_packs.iter().map(|p| {
            format!(
                "pack {} cannot be read ({}): backups whose data it held fail above; \
                 gc keeps it; if it is not a blockback pack, move it out of the store",
                p.pack, p.error
            )
        }));
    }
    c.problems.sort();
    c.problems.dedup();
    Ok(c)
}

/// Re-reads the backup's source volume into the store's repair target.
fn repair_one(session: &Session, local: &LocalStore, record: &BackupRecord) -> String {
    let settings = &session.config.settings;
    let attempt = || -> Result<()> {
        let volume = Volume::from_label(&record.source)?;
        let source = volume.open_source(
            &settings.volume_ceph,
            &session.connections,
            &settings.volume_keys(),
        )?;
        let target = local.repair_target(record.size)?;
        session.ops().engine().repair_from_source(
            record,
            source.image.as_ref(),
            target.as_ref(),
        )?;
        Ok(())
    };
    match attempt() {
        Ok(()) => format!(
            "backup {}: re-read {} into the store (verified again below)",
            record.id, record.source
        ),
        Err(e) => format!(
            "backup {}: cannot re-read {}: {e:#}",
            record.id, record.source
        ),
    }
}

/// Ids of backup snapshots in the store that the catalog has no record of.
fn unknown_backups(session: &Session, pool: &dyn Pool) -> Result<Vec<String>> {
    let known: HashSet<String> = (session.catalog.list_backups(None)?.iter())
        .map(|b| b.id.to_string())
        .collect();
    let mut unknown = Vec::new();
    for image in pool.list()? {
        let Ok(img) = pool.open_read_only(&image, None) else {
            continue;
        };
        let Some(snaps) = img.snapshots() else {
            continue;
        };
        for snap in snaps.list()? {
            if let Some(parsed) = naming::parse_backup_snap(&snap.name) {
                if !known.contains(&parsed.backup_id) {
                    unknown.push(parsed.backup_id);
                }
            }
        }
    }
    Ok(unknown)
}

fn unknown_line(session: &Session, unknown: &[String]) -> String {
    let store = session.config.settings.store.label();
    let catalog = &session.config.settings.catalog;
    format!(
        "store {store} holds {} backup(s) that catalog {catalog} does not know (e.g. {}); \
         record them with `blockback --store {store} --catalog {catalog} adopt`",
        unknown.len(),
        unknown[0]
    )
}

fn verified_line(outcome: &VerifyOutcome, compared: bool) -> String {
    let (id, read) = (&outcome.backup, outcome.bytes_read);
    match compared {
        true => format!("backup {id} ok ({read} bytes read, checksum matches)"),
        false => format!(
            "backup {id} read back ({read} bytes), but it has no recorded checksum to compare with (adopted); run `blockback adopt --checksums` to record one"
        ),
    }
}

fn store_backups(session: &Session) -> Result<Vec<BackupRecord>> {
    let label = session.config.settings.store.label();
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

pub fn adopt(
    session: &Session,
    volume_pool: &str,
    checksums: bool,
    only: Option<uuid::Uuid>,
) -> Result<()> {
    let report = session.ops().adopt(volume_pool, checksums, only)?;
    let label = session.config.settings.store.label();
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
