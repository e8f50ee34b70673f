//! Backup checks: chains, broken chains, fallback, pruning.

use super::faults::{is_injected, Faulty};
use super::misled::Misled;
use super::store_faults::SnapFailingPool;
use super::support::{contents, ensure, s, CheckResult, Ctx, How, Vol, MIB};
use crate::catalog::{BackupKind, BackupRecord, BackupStatus, Catalog};
use crate::checksum::checksum_of;
use crate::engine::{ChainMode, EngineError};
use crate::naming::chain_base_name;

/// A backup that must succeed with `kind`.
pub(super) fn expect_backup(
    ctx: &Ctx<'_>,
    vol: &Vol,
    kind: BackupKind,
) -> Result<BackupRecord, String> {
    let b = ctx.backup(vol).map_err(s)?;
    ensure!(
        b.kind == kind,
        "backup {} is {}, expected {kind}",
        b.id,
        b.kind
    );
    ensure!(
        b.checksum.as_deref() == Some(checksum_of(&vol.mirror).as_str()),
        "backup {} records checksum {:?}, the volume has {}",
        b.id,
        b.checksum,
        checksum_of(&vol.mirror)
    );
    Ok(b)
}

/// A restore into a new empty volume must be differential and exact.
pub(super) fn expect_restores(ctx: &Ctx<'_>, b: &BackupRecord, expected: &[u8]) -> CheckResult {
    let (report, target) = ctx.restore_new(b).map_err(s)?;
    ensure!(
        report.differential,
        "restore of {} into an empty volume was not differential",
        b.id
    );
    ensure!(
        contents(target.head.as_ref())? == expected,
        "restore of {} differs",
        b.id
    );
    Ok(())
}

pub(super) fn noted(ctx: &Ctx<'_>, what: &str) -> CheckResult {
    let notes = ctx.notes.all();
    ensure!(
        notes.iter().any(|n| n.contains(what)),
        "no note says {what:?}; notes: {notes:?}"
    );
    Ok(())
}

/// Data written again unchanged, and zeros written over a hole, are
/// reported by the diff (RBD) but leave the base alone.
pub fn identical_rewrite_writes_nothing(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("rewrite", 12 * MIB)?;
    vol.scribble(0, 3 * MIB as usize, 4)?;
    expect_backup(ctx, &vol, BackupKind::Full)?;
    let same = vol.mirror[MIB as usize + 4096..2 * MIB as usize].to_vec();
    vol.write(MIB + 4096, &same)?;
    vol.write(8 * MIB + 4096, &vec![0u8; 100_000])?;
    vol.scribble(10 * MIB, 5000, 5)?;
    let b = expect_backup(ctx, &vol, BackupKind::Incremental)?;
    ensure!(
        b.bytes_written <= 32 * 1024,
        "rewriting identical data made the incremental write {} bytes (5000 changed)",
        b.bytes_written
    );
    expect_restores(ctx, &b, &vol.mirror)
}

pub fn chain_of_five(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("chain", 12 * MIB)?;
    vol.scribble(0, 3 * MIB as usize, 1)?;
    vol.scribble(9 * MIB, 100_000, 2)?;
    let mut points = Vec::new();
    for i in 0..5u64 {
        let mut changed = 0;
        if i > 0 {
            vol.scribble(i * 2 * MIB + 4096 * i, 65536 * i as usize, 10 + i as u8)?;
            vol.write(i * MIB, &vec![0u8; 8192])?;
            changed = 65536 * i + 8192;
        }
        let kind = if i == 0 {
            BackupKind::Full
        } else {
            BackupKind::Incremental
        };
        let b = expect_backup(ctx, &vol, kind)?;
        let limit = changed + changed / 5 + 64 * 1024;
        ensure!(
            i == 0 || b.bytes_written <= limit,
            "incremental {i} wrote {} bytes for {changed} changed",
            b.bytes_written
        );
        points.push((b, vol.mirror.clone()));
    }
    for (b, expected) in &points {
        expect_restores(ctx, b, expected)?;
        let mut full = ctx.volume("full", b.size)?;
        full.scribble(MIB, 5 * MIB as usize, 99)?;
        let report = ctx.restore_onto(b, &full, false).map_err(s)?;
        ensure!(!report.differential, "restore onto data was differential");
        ensure!(
            contents(full.head.as_ref())? == *expected,
            "full restore of {} differs",
            b.id
        );
        ctx.engine().verify(b, ctx.store(0)).map_err(s)?;
    }
    ensure!(
        vol.backup_snaps() == [points[4].0.snapshot.clone()],
        "source keeps {:?}",
        vol.backup_snaps()
    );
    Ok(())
}

pub fn unchanged_transfers_nothing(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("same", 12 * MIB)?;
    vol.scribble(MIB, 2 * MIB as usize, 3)?;
    let a = expect_backup(ctx, &vol, BackupKind::Full)?;
    let b = expect_backup(ctx, &vol, BackupKind::Incremental)?;
    ensure!(
        b.bytes_written == 0 && b.bytes_read == 0,
        "read {} wrote {}",
        b.bytes_read,
        b.bytes_written
    );
    ensure!(
        b.checksum == a.checksum,
        "checksum {:?} after {:?}",
        b.checksum,
        a.checksum
    );
    expect_restores(ctx, &b, &vol.mirror)?;
    // The carried digests outlive the parent's, which pruning removed: the
    // next change continues the chain from them.
    vol.scribble(5 * MIB, 70_000, 9)?;
    let c = expect_backup(ctx, &vol, BackupKind::Incremental)?;
    ensure!(
        c.parent == Some(b.id),
        "parent {:?}, not {}",
        c.parent,
        b.id
    );
    expect_restores(ctx, &c, &vol.mirror)
}

pub fn zero_size_refused(ctx: &Ctx<'_>) -> CheckResult {
    let vol = ctx.volume("empty", 0)?;
    match ctx.backup(&vol) {
        Err(EngineError::ZeroSize(_)) => {}
        other => return Err(format!("backup of a 0-byte volume: {other:?}")),
    }
    ensure!(
        ctx.catalog.list_backups(None).map_err(s)?.is_empty(),
        "a record was left"
    );
    ensure!(vol.backup_snaps().is_empty(), "a source snapshot was left");
    Ok(())
}

/// Backs up, breaks the chain with `breaker`, changes the volume and checks
/// that the next backup starts a new chain, noting `why`.
fn broken_chain(
    ctx: &Ctx<'_>,
    breaker: impl Fn(&BackupRecord, &Vol) -> CheckResult,
    why: &str,
) -> CheckResult {
    let mut vol = ctx.volume("broken", 12 * MIB)?;
    vol.scribble(0, MIB as usize, 4)?;
    let first = expect_backup(ctx, &vol, BackupKind::Full)?;
    breaker(&first, &vol)?;
    vol.scribble(5 * MIB, 70_000, 5)?;
    let second = expect_backup(ctx, &vol, BackupKind::Full)?;
    ensure!(
        second.image != first.image,
        "the new chain reuses {}",
        first.image
    );
    ensure!(second.parent.is_none(), "a full backup has a parent");
    noted(ctx, why)?;
    expect_restores(ctx, &second, &vol.mirror)
}

pub fn snap_gone_on_source(ctx: &Ctx<'_>) -> CheckResult {
    broken_chain(
        ctx,
        |b, vol| vol.snapshots().remove(&b.snapshot).map_err(s),
        "missing on the source",
    )
}

pub fn snap_gone_on_base(ctx: &Ctx<'_>) -> CheckResult {
    broken_chain(
        ctx,
        |b, _| {
            let base = ctx.store(0).open(&b.image).map_err(s)?;
            base.snapshots()
                .ok_or("no snapshots")?
                .remove(&b.snapshot)
                .map_err(s)
        },
        "is missing on",
    )
}

pub fn base_head_modified(ctx: &Ctx<'_>) -> CheckResult {
    broken_chain(
        ctx,
        |b, _| {
            let base = ctx.store(0).open(&b.image).map_err(s)?;
            base.write_at(7 * MIB, &[0xAB; 4096]).map_err(s)?;
            base.flush().map_err(s)
        },
        "was modified after snapshot",
    )
}

pub fn base_deleted(ctx: &Ctx<'_>) -> CheckResult {
    broken_chain(
        ctx,
        |b, _| {
            super::support::purge(ctx.store(0), &b.image);
            Ok(())
        },
        "is gone",
    )
}

pub fn incremental_mode_refuses(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("strict", 12 * MIB)?;
    vol.scribble(0, MIB as usize, 6)?;
    let first = expect_backup(ctx, &vol, BackupKind::Full)?;
    vol.snapshots().remove(&first.snapshot).map_err(s)?;
    let how = How {
        mode: ChainMode::Incremental,
        ..How::default()
    };
    match ctx.backup_with(vol.head.as_ref(), &vol, how) {
        Err(EngineError::ChainBroken(why)) => {
            ensure!(why.contains("missing on the source"), "reason: {why}")
        }
        other => return Err(format!("--incremental on a broken chain gave {other:?}")),
    }
    ensure!(
        ctx.catalog.list_backups(None).map_err(s)?.len() == 1,
        "a record was added"
    );
    ensure!(
        vol.backup_snaps().is_empty(),
        "a source snapshot was added: {:?}",
        vol.backup_snaps()
    );
    ensure!(
        ctx.base_snaps(0, &first.image) == [first.snapshot.clone()],
        "the base changed"
    );
    Ok(())
}

pub fn full_mode_new_chain(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("forced", 12 * MIB)?;
    vol.scribble(0, MIB as usize, 7)?;
    let first = expect_backup(ctx, &vol, BackupKind::Full)?;
    let how = How {
        mode: ChainMode::Full,
        ..How::default()
    };
    let second = ctx.backup_with(vol.head.as_ref(), &vol, how).map_err(s)?;
    ensure!(
        second.kind == BackupKind::Full && second.image != first.image,
        "not a new chain"
    );
    ensure!(
        vol.backup_snaps() == [second.snapshot.clone()],
        "source keeps {:?}",
        vol.backup_snaps()
    );
    expect_restores(ctx, &first, &vol.mirror)
}

/// A volume with a full backup and changes in two 4 MiB segments since.
fn changed_after_backup(ctx: &Ctx<'_>) -> Result<(Vol, BackupRecord), String> {
    let mut vol = ctx.volume("faulty", 12 * MIB)?;
    vol.scribble(0, 2 * MIB as usize, 8)?;
    let first = expect_backup(ctx, &vol, BackupKind::Full)?;
    vol.scribble(100_000, 50_000, 9)?;
    vol.scribble(9 * MIB, 50_000, 10)?;
    Ok((vol, first))
}

/// `b` is the full first backup of a chain of its own, and `first`'s base
/// kept only `first`'s snapshot.
fn fell_back_to_own_chain(ctx: &Ctx<'_>, b: &BackupRecord, first: &BackupRecord) -> CheckResult {
    ensure!(
        b.kind == BackupKind::Full,
        "fallback recorded as {}",
        b.kind
    );
    let own_base = chain_base_name(&b.volume_id.to_string(), &b.id.to_string());
    ensure!(b.image == own_base, "fallback went to {}", b.image);
    ensure!(
        ctx.base_snaps(0, &first.image) == [first.snapshot.clone()],
        "old base: {:?}",
        ctx.base_snaps(0, &first.image)
    );
    Ok(())
}

pub fn failed_transfer_falls_back(ctx: &Ctx<'_>) -> CheckResult {
    let (vol, first) = changed_after_backup(ctx)?;
    let faulty = Faulty::snapshots_failing(vol.head.as_ref(), 1, 0);
    let b = ctx.backup_with(&faulty, &vol, How::default()).map_err(s)?;
    fell_back_to_own_chain(ctx, &b, &first)?;
    ensure!(
        vol.backup_snaps() == [b.snapshot.clone()],
        "source keeps {:?}",
        vol.backup_snaps()
    );
    noted(ctx, "falling back to a full backup")?;
    expect_restores(ctx, &b, &vol.mirror)
}

/// `b` is `first`'s incremental child and records `vol`'s checksum.
fn continues_with_the_change(b: &BackupRecord, first: &BackupRecord, vol: &Vol) -> CheckResult {
    ensure!(
        b.kind == BackupKind::Incremental && b.parent == Some(first.id),
        "{} backup with parent {:?}",
        b.kind,
        b.parent
    );
    ensure!(
        b.checksum.as_deref() == Some(checksum_of(&vol.mirror).as_str()),
        "backup records checksum {:?}",
        b.checksum
    );
    Ok(())
}

/// The early look at the source sees its change: nothing looks again once
/// the snapshot exists (the answer could only be the same), and the change
/// is copied.
pub fn seen_change_is_not_looked_at_again(ctx: &Ctx<'_>) -> CheckResult {
    let (vol, first) = changed_after_backup(ctx)?;
    let counted = Misled::counting(vol.head.as_ref());
    let b = ctx.backup_with(&counted, &vol, How::default()).map_err(s)?;
    ensure!(
        counted.looks() == 1,
        "asked {} times what changed",
        counted.looks()
    );
    continues_with_the_change(&b, &first, &vol)?;
    expect_restores(ctx, &b, &vol.mirror)
}

/// The early look at the source misses a change (a write landed right
/// after it): the base snapshot made while the real answer was awaited
/// goes again, the change is copied, and the base keeps one snapshot per
/// backup.
pub fn missed_change_is_copied(ctx: &Ctx<'_>) -> CheckResult {
    let (vol, first) = changed_after_backup(ctx)?;
    let misled = Misled::new(vol.head.as_ref());
    let b = ctx.backup_with(&misled, &vol, How::default()).map_err(s)?;
    ensure!(
        misled.looks() >= 2,
        "asked {} times what changed",
        misled.looks()
    );
    continues_with_the_change(&b, &first, &vol)?;
    ensure!(b.bytes_written > 0, "the change was not written");
    let snaps = ctx.base_snaps(0, &b.image);
    ensure!(
        snaps == [first.snapshot.clone(), b.snapshot.clone()],
        "base has {snaps:?}"
    );
    expect_restores(ctx, &b, &vol.mirror)
}

/// The base snapshot of a backup of an unchanged volume fails while the
/// source's answer is awaited: nothing is published, the full fallback
/// makes a chain of its own.
pub fn unchanged_base_snapshot_failure_falls_back(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("unchanged-snapfail", 12 * MIB)?;
    vol.scribble(MIB, MIB as usize, 13)?;
    let first = expect_backup(ctx, &vol, BackupKind::Full)?;
    base_snapshot_failure_falls_back(ctx, vol, &first)
}

/// The base snapshot of an incremental fails after its transfer, with the
/// metadata object and the digests already stored beside it: the attempt's
/// traces go, and the full fallback (same backup id) stores its own.
pub fn failed_base_snapshot_falls_back(ctx: &Ctx<'_>) -> CheckResult {
    let (vol, first) = changed_after_backup(ctx)?;
    base_snapshot_failure_falls_back(ctx, vol, &first)
}

/// Backs `vol` up (after `first`) into a store whose first base snapshot
/// fails: the backup falls back to a chain of its own, which the next
/// incremental continues, with its digests.
fn base_snapshot_failure_falls_back(
    ctx: &Ctx<'_>,
    mut vol: Vol,
    first: &BackupRecord,
) -> CheckResult {
    let [(store, label), _] = ctx.fx.stores();
    let faulty = SnapFailingPool::new(store, 1);
    let b = ctx
        .backup_into(vol.head.as_ref(), &vol, How::default(), &faulty, label)
        .map_err(s)?;
    ensure!(faulty.left() == 0, "no base snapshot failed");
    fell_back_to_own_chain(ctx, &b, first)?;
    noted(ctx, "falling back to a full backup")?;
    expect_restores(ctx, &b, &vol.mirror)?;
    vol.scribble(3 * MIB, 10_000, 12)?;
    let next = expect_backup(ctx, &vol, BackupKind::Incremental)?;
    ensure!(
        next.parent == Some(b.id),
        "next continues {:?}",
        next.parent
    );
    expect_restores(ctx, &next, &vol.mirror)
}

pub fn failed_fallback_first_cause(ctx: &Ctx<'_>) -> CheckResult {
    let (vol, first) = changed_after_backup(ctx)?;
    let faulty = Faulty::snapshots_failing(vol.head.as_ref(), 2, 1);
    let err = match ctx.backup_with(&faulty, &vol, How::default()) {
        Err(e) => e.to_string(),
        Ok(b) => return Err(format!("backup {} succeeded through broken reads", b.id)),
    };
    ensure!(is_injected(&err), "error does not carry the cause: {err}");
    let records = ctx.catalog.list_backups(None).map_err(s)?;
    let failed = records
        .iter()
        .find(|b| b.id != first.id)
        .ok_or("no record of the failure")?;
    let message = failed.error.clone().unwrap_or_default();
    ensure!(
        failed.status == BackupStatus::Error,
        "failed backup is {}",
        failed.status
    );
    ensure!(
        is_injected(&message) && message.contains("full fallback failed too"),
        "recorded: {message}"
    );
    let meta = crate::metadata::read_backup_metadata(ctx.store(0), &failed.id.to_string());
    ensure!(
        matches!(meta, Ok(None)),
        "the failed backup left metadata: {meta:?}"
    );
    let new_base = chain_base_name(&failed.volume_id.to_string(), &failed.id.to_string());
    ensure!(
        !ctx.base_exists(0, &new_base),
        "the fallback's base {new_base} was left"
    );
    ensure!(
        ctx.base_snaps(0, &first.image) == [first.snapshot.clone()],
        "old base changed"
    );
    ensure!(
        vol.backup_snaps() == [first.snapshot.clone()],
        "source keeps {:?}",
        vol.backup_snaps()
    );
    // One segment was written before the failure and rolled back: the
    // chain is intact and the next backup continues it.
    let next = expect_backup(ctx, &vol, BackupKind::Incremental)?;
    expect_restores(ctx, &next, &vol.mirror)
}

/// A read failing while many others are in flight (a first backup of a
/// volume of many segments): the job fails with that cause, every worker
/// stops, and nothing is left half-published: no available record, no base,
/// no metadata object, no snapshot on the source. The next backup is whole.
pub fn failed_read_among_many_in_flight(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("inflight", 48 * MIB)?;
    for i in 0..12u64 {
        vol.scribble(i * 4 * MIB + 1000, 300_000, 20 + i as u8)?;
    }
    let faulty = Faulty::snapshots_failing(vol.head.as_ref(), 1, 5);
    let err = match ctx.backup_with(&faulty, &vol, How::default()) {
        Err(e) => e.to_string(),
        Ok(b) => return Err(format!("backup {} succeeded through a broken read", b.id)),
    };
    ensure!(is_injected(&err), "error does not carry the cause: {err}");
    let records = ctx.catalog.list_backups(None).map_err(s)?;
    ensure!(records.len() == 1, "records: {records:?}");
    let failed = &records[0];
    ensure!(
        failed.status == BackupStatus::Error,
        "failed backup is {}",
        failed.status
    );
    ensure!(
        !ctx.base_exists(0, &failed.image),
        "the failed backup's base {} was left",
        failed.image
    );
    let meta = crate::metadata::read_backup_metadata(ctx.store(0), &failed.id.to_string());
    ensure!(
        matches!(meta, Ok(None)),
        "the failed backup left metadata: {meta:?}"
    );
    ensure!(
        vol.backup_snaps().is_empty(),
        "source keeps {:?}",
        vol.backup_snaps()
    );
    let next = expect_backup(ctx, &vol, BackupKind::Full)?;
    expect_restores(ctx, &next, &vol.mirror)
}

pub fn source_snapshots_pruned(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("prune", 12 * MIB)?;
    let foreign = format!("backup.{}.snap.5.0", uuid::Uuid::new_v4());
    vol.snapshots().create("user-snap").map_err(s)?;
    vol.snapshots().create(&foreign).map_err(s)?;
    let mut last = Vec::new();
    for i in 0..3u8 {
        vol.scribble(u64::from(i) * MIB, 10_000, i)?;
        last.push(ctx.backup(&vol).map_err(s)?);
    }
    let mut expected = vec![foreign.clone(), last[2].snapshot.clone()];
    let mut kept = vol.backup_snaps();
    kept.sort();
    expected.sort();
    ensure!(kept == expected, "keep 1: source has {kept:?}");
    let how = How {
        keep: 2,
        ..How::default()
    };
    vol.scribble(6 * MIB, 10_000, 40)?;
    let fourth = ctx.backup_with(vol.head.as_ref(), &vol, how).map_err(s)?;
    ensure!(
        fourth.kind == BackupKind::Incremental,
        "fourth is {}",
        fourth.kind
    );
    let mut expected = vec![foreign, last[2].snapshot.clone(), fourth.snapshot.clone()];
    let mut kept = vol.backup_snaps();
    kept.sort();
    expected.sort();
    ensure!(kept == expected, "keep 2: source has {kept:?}");
    let all = vol.snapshots().list().map_err(s)?;
    ensure!(
        all.iter().any(|s| s.name == "user-snap"),
        "a user snapshot was removed"
    );
    Ok(())
}

pub fn read_only_source_twice(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("fromsnap", 12 * MIB)?;
    vol.scribble(2 * MIB, MIB as usize, 11)?;
    vol.snapshots().create("s1").map_err(s)?;
    let at_s1 = vol.mirror.clone();
    vol.scribble(0, 4096, 12)?;
    let snap = ctx
        .fx
        .volumes()
        .open_read_only(&vol.name, Some("s1"))
        .map_err(s)?;
    let how = How {
        snapshots: false,
        ..How::default()
    };
    let a = ctx.backup_with(snap.as_ref(), &vol, how).map_err(s)?;
    let b = ctx.backup_with(snap.as_ref(), &vol, how).map_err(s)?;
    ensure!(
        a.image == b.image && a.snapshot != b.snapshot,
        "second backup of a snapshot: {b:?}"
    );
    expect_restores(ctx, &a, &at_s1)?;
    expect_restores(ctx, &b, &at_s1)
}

pub fn two_stores(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("twostores", 12 * MIB)?;
    let other = How {
        store: 1,
        ..How::default()
    };
    vol.scribble(0, 100_000, 13)?;
    ctx.backup(&vol).map_err(s)?;
    ctx.backup_with(vol.head.as_ref(), &vol, other).map_err(s)?;
    vol.scribble(8 * MIB, 100_000, 14)?;
    let a = ctx.backup(&vol).map_err(s)?;
    let b = ctx.backup_with(vol.head.as_ref(), &vol, other).map_err(s)?;
    ensure!(
        a.kind == BackupKind::Incremental && b.kind == BackupKind::Incremental,
        "{} / {}",
        a.kind,
        b.kind
    );
    let mut kept = vol.backup_snaps();
    kept.sort();
    let mut expected = vec![a.snapshot.clone(), b.snapshot.clone()];
    expected.sort();
    ensure!(kept == expected, "source has {kept:?}");
    expect_restores(ctx, &a, &vol.mirror)?;
    expect_restores(ctx, &b, &vol.mirror)
}

/// A source without snapshots (a file, a device) is read whole; a store
/// that keeps every write gets only the blocks that changed since the
/// previous backup, zeros where data became zero, and every backup
/// restores exactly -- also after the base's HEAD was written behind the
/// chain's back (then everything is written again). Issue 18.
pub fn whole_source_writes_only_changes(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("whole", 12 * MIB)?;
    vol.scribble(0, 3 * MIB as usize, 21)?;
    vol.scribble(9 * MIB, MIB as usize, 22)?;
    let how = How {
        snapshots: false,
        ..How::default()
    };
    let backup = |vol: &Vol| ctx.backup_with(vol.head.as_ref(), vol, how).map_err(s);
    let full = backup(&vol)?;
    let dedups = ctx
        .store(0)
        .open_read_only(&full.image, None)
        .map_err(s)?
        .dedups_writes();
    // A content-addressed store is given everything (and deduplicates).
    let limit = |changed: u64| match dedups {
        true => u64::MAX,
        false => changed,
    };
    let mut points = vec![(full, vol.mirror.clone())];
    let same = backup(&vol)?;
    ensure!(
        same.bytes_written <= limit(0),
        "unchanged: wrote {}",
        same.bytes_written
    );
    points.push((same, vol.mirror.clone()));
    vol.scribble(MIB + 4096, 5000, 23)?;
    vol.write(9 * MIB, &vec![0u8; MIB as usize])?;
    let changed = backup(&vol)?;
    ensure!(
        changed.bytes_written <= limit(2 * 32 * 1024),
        "5000 bytes changed, 1 MiB zeroed: wrote {}",
        changed.bytes_written
    );
    points.push((changed, vol.mirror.clone()));
    let head = ctx.store(0).open(&points[2].0.image).map_err(s)?;
    head.write_at(5 * MIB, &[0xAB; 4096]).map_err(s)?;
    head.flush().map_err(s)?;
    drop(head);
    let after_tamper = backup(&vol)?;
    points.push((after_tamper, vol.mirror.clone()));
    for (b, expected) in &points {
        ensure!(
            b.checksum.as_deref() == Some(checksum_of(expected).as_str()),
            "backup {} records checksum {:?}",
            b.id,
            b.checksum
        );
        expect_restores(ctx, b, expected)?;
    }
    Ok(())
}
