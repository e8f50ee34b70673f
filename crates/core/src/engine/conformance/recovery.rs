//! What a backup killed near its end leaves, as the next backup of the
//! volume finds it: the state is made by hand from a finished backup (the
//! kill -9 tests in crates/cli/tests/crash.rs kill real processes).

use super::backup::{expect_backup, expect_restores};
use super::support::{ensure, s, CheckResult, Ctx, How, Vol, MIB};
use crate::catalog::{BackupKind, BackupRecord, BackupStatus, Catalog};
use uuid::Uuid;

/// Turns finished backup `b` back into what a process killed before its
/// base snapshot left: the record `creating` (with its checksum when the
/// kill came after the commit), no base snapshot.
fn killed_before_base_snapshot(ctx: &Ctx<'_>, b: &BackupRecord, committed: bool) -> CheckResult {
    let base = ctx.store(0).open(&b.image).map_err(s)?;
    let snaps = base.snapshots().ok_or("the base has no snapshots")?;
    snaps.remove(&b.snapshot).map_err(s)?;
    let mut dead = b.clone();
    dead.status = BackupStatus::Creating;
    dead.completed_at = None;
    dead.pid = Some(u32::MAX);
    if !committed {
        dead.checksum = None;
    }
    ctx.catalog.update_backup(&dead).map_err(s)
}

/// Changes `vol` and backs it up after `killed` was killed: the backup
/// must continue the chain from `parent`. Returns it and `killed`'s record
/// as the backup left it.
fn next_after_the_kill(
    ctx: &Ctx<'_>,
    vol: &mut Vol,
    killed: &BackupRecord,
    parent: Uuid,
) -> Result<(BackupRecord, BackupRecord), String> {
    vol.scribble(9 * MIB, 300_000, 3)?;
    let next = expect_backup(ctx, vol, BackupKind::Incremental)?;
    ensure!(
        next.parent == Some(parent),
        "the next backup continues {:?}, not {parent}",
        next.parent
    );
    let killed = ctx.catalog.backup(killed.id).map_err(s)?;
    Ok((next, killed))
}

/// Killed after its commit, when the pruning may already have removed the
/// parent's source snapshot: the next backup finishes it and continues
/// the chain from it.
pub fn killed_after_commit_is_finished(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("commit", 12 * MIB)?;
    vol.scribble(MIB, 300_000, 1)?;
    let first = expect_backup(ctx, &vol, BackupKind::Full)?;
    vol.scribble(5 * MIB, 300_000, 2)?;
    let second = expect_backup(ctx, &vol, BackupKind::Incremental)?;
    let at_second = vol.mirror.clone();
    ensure!(
        !vol.backup_snaps().contains(&first.snapshot),
        "the parent's source snapshot was not pruned"
    );
    killed_before_base_snapshot(ctx, &second, true)?;
    let (third, second) = next_after_the_kill(ctx, &mut vol, &second, second.id)?;
    ensure!(
        second.status == BackupStatus::Available,
        "the killed backup is {}",
        second.status
    );
    expect_restores(ctx, &second, &at_second)?;
    expect_restores(ctx, &third, &vol.mirror)
}

/// Killed before its commit (the parent's source snapshot is still
/// there): the next backup undoes it and continues from the parent.
pub fn killed_before_commit_is_undone(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("uncommitted", 12 * MIB)?;
    vol.scribble(MIB, 300_000, 4)?;
    let first = expect_backup(ctx, &vol, BackupKind::Full)?;
    vol.scribble(5 * MIB, 300_000, 5)?;
    let keep_parent = How {
        keep: 2,
        ..How::default()
    };
    let second = ctx
        .backup_with(vol.head.as_ref(), &vol, keep_parent)
        .map_err(s)?;
    killed_before_base_snapshot(ctx, &second, false)?;
    let (third, second) = next_after_the_kill(ctx, &mut vol, &second, first.id)?;
    ensure!(
        second.status == BackupStatus::Error && second.checksum.is_none(),
        "the killed backup is {} with checksum {:?}",
        second.status,
        second.checksum
    );
    expect_restores(ctx, &third, &vol.mirror)
}
