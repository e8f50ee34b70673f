//! Sixty simulated days of backups under a retention policy (the store's
//! default: 7 daily, 4 weekly, 3 monthly in Europe/Berlin, chains of at
//! most 8), with time from a hand-moved clock, one or two backups a day,
//! a prune after each backup. After each prune: the catalog holds exactly
//! what the plan keeps, the store holds exactly their bases and snapshots
//! (nothing of a removed backup), a second plan removes nothing, the source
//! keeps only the newest backup's snapshot. Every 15 days and at the end
//! every kept backup restores bit-exact; with a local store, gc then leaves
//! exactly the chunks of the kept backups and the chain HEADs.

use super::support::{contents, ensure, purge, CheckResult, Ctx, Vol, MIB};
use super::ChainFixture;
use crate::catalog::{BackupRecord, Catalog, PolicyScope};
use crate::retention::Policy;
use crate::store::LocalStore;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use uuid::Uuid;

const DAY: f64 = 86_400.0;
/// 2025-01-01T01:30:00Z, a Wednesday.
const START: f64 = 1_735_695_000.0;
const BLOCK: usize = 32 * 1024;
const MAX_CHAIN: usize = 8;

/// Runs the sixty days on the fixture's first store; `local` is that store
/// when it is a local one (then gc runs after each prune and chunks are
/// counted). Panics with the first problem.
pub fn run_retention_days(fx: &dyn ChainFixture, local: Option<&LocalStore>) {
    let ctx = Ctx::new(fx);
    if let Err(e) = sixty_days(&ctx, local) {
        panic!("sixty days of retention: {e}");
    }
}

fn policy() -> Policy {
    Policy {
        keep_daily: 7,
        keep_weekly: 4,
        keep_monthly: 3,
        time_zone: Some("Europe/Berlin".into()),
        max_chain_length: Some(MAX_CHAIN as u32),
        ..Policy::default()
    }
}

/// The content each kept backup must restore to, and what the run saw.
#[derive(Default)]
struct Expected {
    sums: HashMap<Uuid, blake3::Hash>,
    protected: Option<Uuid>,
    per_chain: HashMap<String, usize>,
}

fn sixty_days(ctx: &Ctx<'_>, local: Option<&LocalStore>) -> CheckResult {
    let label = ctx.fx.stores()[0].1.clone();
    let scope = PolicyScope::Store(label.clone());
    ctx.catalog
        .set_policy(&scope, Some(&policy()))
        .map_err(|e| e.to_string())?;
    let mut vol = ctx.volume("retained", 12 * MIB)?;
    let mut expected = Expected::default();
    for day in 0..60u32 {
        let hours: &[f64] = if day % 5 == 0 { &[0.0, 11.5] } else { &[0.0] };
        for (n, hour) in hours.iter().enumerate() {
            ctx.clock.set(START + f64::from(day) * DAY + hour * 3600.0);
            let offset = u64::from((day * 7 + n as u32 * 3) % 44) * 256 * 1024;
            vol.scribble(offset, 64 * 1024, (day * 2 + n as u32) as u8)?;
            let b = ctx.backup(&vol).map_err(|e| format!("day {day}: {e}"))?;
            *expected.per_chain.entry(b.image.clone()).or_default() += 1;
            expected.sums.insert(b.id, blake3::hash(&vol.mirror));
            if day == 3 {
                ctx.catalog
                    .set_protected(b.id, true)
                    .map_err(|e| e.to_string())?;
                expected.protected = Some(b.id);
            }
            prune_and_check(ctx, &vol, &label, local, &mut expected)
                .map_err(|e| format!("day {day}: {e}"))?;
        }
        if day % 15 == 14 {
            restore_all(ctx, local, &expected.sums).map_err(|e| format!("day {day}: {e}"))?;
        }
    }
    let kept = ctx.catalog.list_backups(None).map_err(|e| e.to_string())?;
    // 7 days, 4 weeks, 3 months overlap; the protected day-3 backup adds one.
    ensure!(
        (8..=15).contains(&kept.len()),
        "{} backups kept after 60 days",
        kept.len()
    );
    // Pruning thins chains out, so they live longer than MAX_CHAIN
    // backups, but some did fill up and make the next backup a full one.
    ensure!(
        expected.per_chain.len() > 1 && expected.per_chain.values().any(|&n| n > MAX_CHAIN),
        "chains: {:?}",
        expected.per_chain
    );
    restore_all(ctx, local, &expected.sums)
}

fn prune_and_check(
    ctx: &Ctx<'_>,
    vol: &Vol,
    label: &str,
    local: Option<&LocalStore>,
    expected: &mut Expected,
) -> CheckResult {
    let store = ctx.store(0);
    let engine = ctx.engine();
    let plan = engine.plan_prune(label, None).map_err(|e| e.to_string())?;
    let outcome = engine
        .prune(&plan, store, &|_| None)
        .map_err(|e| e.to_string())?;
    ensure!(
        outcome.failed.is_empty(),
        "deletes failed: {:?}",
        outcome.failed
    );
    let kept: BTreeSet<Uuid> = plan
        .volumes
        .iter()
        .flat_map(|v| &v.backups)
        .filter(|p| !p.is_removed())
        .map(|p| p.backup.id)
        .collect();
    let now: Vec<BackupRecord> = ctx.catalog.list_backups(None).map_err(|e| e.to_string())?;
    let in_catalog: BTreeSet<Uuid> = now.iter().map(|b| b.id).collect();
    ensure!(
        in_catalog == kept,
        "catalog {in_catalog:?} != plan {kept:?}"
    );
    if let Some(p) = expected.protected {
        ensure!(kept.contains(&p), "protected backup {p} was removed");
    }
    expected.sums.retain(|id, _| kept.contains(id));
    store_holds_exactly(ctx, &now)?;
    let again = engine.plan_prune(label, None).map_err(|e| e.to_string())?;
    ensure!(
        again.removals().count() == 0,
        "a second prune would remove more"
    );
    let newest = now.last().ok_or("no backup left")?;
    ensure!(
        vol.backup_snaps() == vec![newest.snapshot.clone()],
        "source snapshots {:?}, expected only {}",
        vol.backup_snaps(),
        newest.snapshot
    );
    if let Some(local) = local {
        local.gc(&ctx.notes).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The store's images of the volume are exactly the kept backups' bases,
/// each with exactly their snapshots.
fn store_holds_exactly(ctx: &Ctx<'_>, kept: &[BackupRecord]) -> CheckResult {
    let Some(first) = kept.first() else {
        return Ok(());
    };
    let prefix = format!("volume-{}.", first.volume_id);
    let mut want: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for b in kept {
        want.entry(b.image.clone())
            .or_default()
            .insert(b.snapshot.clone());
    }
    let images: BTreeSet<String> = ctx
        .store(0)
        .list()
        .map_err(|e| e.to_string())?
        .into_iter()
        .filter(|i| i.starts_with(&prefix))
        .collect();
    let bases: BTreeSet<String> = want.keys().cloned().collect();
    ensure!(
        images == bases,
        "store has bases {images:?}, kept backups use {bases:?}"
    );
    for (image, snaps) in &want {
        let on_base: BTreeSet<String> = ctx.base_snaps(0, image).into_iter().collect();
        ensure!(
            &on_base == snaps,
            "{image} has snapshots {on_base:?}, kept are {snaps:?}"
        );
        ensure!(
            snaps.len() <= MAX_CHAIN,
            "{image} holds {} backups, more than the policy's {MAX_CHAIN}",
            snaps.len()
        );
    }
    Ok(())
}

/// Restores every kept backup into a new volume and compares; with a
/// local store, the chunks it holds are exactly the distinct non-zero
/// blocks of the kept backups and of the chains' HEADs.
fn restore_all(
    ctx: &Ctx<'_>,
    local: Option<&LocalStore>,
    sums: &HashMap<Uuid, blake3::Hash>,
) -> CheckResult {
    let mut blocks: HashSet<blake3::Hash> = HashSet::new();
    let kept = ctx.catalog.list_backups(None).map_err(|e| e.to_string())?;
    for b in &kept {
        let (_, restored) = ctx
            .restore_new(b)
            .map_err(|e| format!("restore {}: {e}", b.id))?;
        let data = contents(restored.head.as_ref())?;
        ensure!(
            sums.get(&b.id) == Some(&blake3::hash(&data)),
            "backup {} did not restore the volume as it was backed up",
            b.id
        );
        add_blocks(&mut blocks, &data);
        let name = restored.name.clone();
        drop(restored);
        purge(ctx.fx.volumes(), &name);
    }
    let Some(local) = local else { return Ok(()) };
    let bases: BTreeSet<&String> = kept.iter().map(|b| &b.image).collect();
    for base in bases {
        let head = ctx
            .store(0)
            .open_read_only(base, None)
            .map_err(|e| e.to_string())?;
        add_blocks(&mut blocks, &contents(head.as_ref())?);
    }
    local.gc(&ctx.notes).map_err(|e| e.to_string())?;
    let stats = local.stats().map_err(|e| e.to_string())?;
    ensure!(
        stats.chunks == blocks.len() as u64,
        "store holds {} chunks, the kept backups and chain HEADs {} distinct blocks",
        stats.chunks,
        blocks.len()
    );
    Ok(())
}

fn add_blocks(blocks: &mut HashSet<blake3::Hash>, data: &[u8]) {
    for block in data.chunks(BLOCK) {
        if block.iter().any(|&b| b != 0) {
            blocks.insert(blake3::hash(block));
        }
    }
}
