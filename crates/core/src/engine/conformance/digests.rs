//! Block digests in the store: any host continues any chain (an engine
//! whose state_dir lacks the parent's digests fetches them), a damaged copy
//! is never used, and the store's copies go with the backups.

use super::backup::{expect_backup, expect_restores, noted};
use super::support::{ensure, s, CheckResult, Ctx, How, Vol, MIB};
use crate::catalog::{BackupKind, BackupRecord};
use crate::engine::digest_objects::{segment_name, segments_owner, DIGESTS_IN};
use crate::engine::{ChainMode, EngineError};

/// Whether the store holds the first digest segment of `b`.
fn published(ctx: &Ctx<'_>, b: &BackupRecord) -> Result<bool, String> {
    let first = ctx.store(0).get_object(&segment_name(b.id, 0)).map_err(s)?;
    Ok(first.is_some())
}

/// A full backup whose digests are then removed from this host's
/// state_dir (as if it was made on another host), and a change after it.
fn made_elsewhere(ctx: &Ctx<'_>, tag: &str) -> Result<(Vol, BackupRecord), String> {
    let mut vol = ctx.volume(tag, 12 * MIB)?;
    vol.scribble(0, 3 * MIB as usize, 61)?;
    let first = expect_backup(ctx, &vol, BackupKind::Full)?;
    ensure!(
        published(ctx, &first)?,
        "no digests of {} in the store",
        first.id
    );
    let engine = ctx.engine();
    engine.digests.remove(first.id).map_err(s)?;
    let sum = first.checksum.as_deref().unwrap_or_default();
    ensure!(!engine.digests.valid(first.id, sum), "local digests left");
    vol.scribble(5 * MIB + 4096, 100_000, 62)?;
    Ok((vol, first))
}

const INCREMENTAL: How = How {
    store: 0,
    mode: ChainMode::Incremental,
    keep: 1,
    snapshots: true,
};

pub fn continues_from_the_stores_digests(ctx: &Ctx<'_>) -> CheckResult {
    let (vol, first) = made_elsewhere(ctx, "fetch")?;
    let b = ctx
        .backup_with(vol.head.as_ref(), &vol, INCREMENTAL)
        .map_err(s)?;
    ensure!(
        b.kind == BackupKind::Incremental && b.parent == Some(first.id),
        "backup {} is {} of {:?}",
        b.id,
        b.kind,
        b.parent
    );
    ensure!(
        b.bytes_written <= 100_000 + 64 * 1024 + 20_000,
        "the incremental wrote {} bytes for 100000 changed",
        b.bytes_written
    );
    ensure!(
        b.checksum.as_deref() == Some(crate::checksum::checksum_of(&vol.mirror).as_str()),
        "backup {} records checksum {:?}",
        b.id,
        b.checksum
    );
    expect_restores(ctx, &b, &vol.mirror)
}

pub fn damaged_copy_is_not_used(ctx: &Ctx<'_>) -> CheckResult {
    let (vol, first) = made_elsewhere(ctx, "damaged")?;
    let name = segment_name(first.id, 0);
    let store = ctx.store(0);
    let mut bytes = store.get_object(&name).map_err(s)?.ok_or("no segment")?;
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    store.remove_object(&name).map_err(s)?;
    store.put_object(&name, &bytes).map_err(s)?;
    match ctx.backup_with(vol.head.as_ref(), &vol, INCREMENTAL) {
        Err(EngineError::ChainBroken(why)) => ensure!(
            why.contains("cannot be used"),
            "incremental refused with {why:?}"
        ),
        other => return Err(format!("incremental from damaged digests: {other:?}")),
    }
    let sum = first.checksum.as_deref().unwrap_or_default();
    ensure!(
        !ctx.engine().digests.valid(first.id, sum),
        "the damaged copy was kept"
    );
    let b = expect_backup(ctx, &vol, BackupKind::Full)?;
    expect_restores(ctx, &b, &vol.mirror)
}

pub fn delete_removes_the_segments(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("segments", 8 * MIB)?;
    vol.scribble(0, 100_000, 71)?;
    let first = expect_backup(ctx, &vol, BackupKind::Full)?;
    vol.scribble(MIB, 100_000, 72)?;
    let second = expect_backup(ctx, &vol, BackupKind::Incremental)?;
    // The first one's source snapshot was pruned: it is no parent any more.
    ensure!(
        !published(ctx, &first)?,
        "digests of {} left after its source snapshot went",
        first.id
    );
    ensure!(published(ctx, &second)?, "no digests of {}", second.id);
    ctx.delete(&second, &vol).map_err(s)?;
    ensure!(
        !published(ctx, &second)?,
        "digests of {} left after delete",
        second.id
    );
    Ok(())
}

/// Backups of an unchanged volume publish no segments: they name their
/// parent's (the owner's, down a run of unchanged backups), which stay
/// while one of them may still be a parent, even when the owner is
/// deleted, serve another host, and go once none is a parent any more.
pub fn unchanged_backups_share_the_segments(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("shared", 12 * MIB)?;
    vol.scribble(MIB, 2 * MIB as usize, 81)?;
    let a = expect_backup(ctx, &vol, BackupKind::Full)?;
    let b = expect_backup(ctx, &vol, BackupKind::Incremental)?;
    let c = expect_backup(ctx, &vol, BackupKind::Incremental)?;
    for x in [&b, &c] {
        ensure!(
            segments_owner(x) == a.id,
            "backup {} names {:?}, not {}",
            x.id,
            x.metadata.get(DIGESTS_IN),
            a.id
        );
        ensure!(!published(ctx, x)?, "{} published its own segments", x.id);
    }
    ensure!(
        published(ctx, &a)?,
        "the segments {} shares went with {}'s source snapshot",
        c.id,
        a.id
    );
    ctx.delete(&a, &vol).map_err(s)?;
    ensure!(
        published(ctx, &a)?,
        "the segments {} shares went with the delete of {}",
        c.id,
        a.id
    );
    // Another host, without c's file, continues from the shared segments.
    ctx.engine().digests.remove(c.id).map_err(s)?;
    let at_c = vol.mirror.clone();
    vol.scribble(5 * MIB + 4096, 100_000, 82)?;
    let d = ctx
        .backup_with(vol.head.as_ref(), &vol, INCREMENTAL)
        .map_err(s)?;
    ensure!(
        d.parent == Some(c.id) && d.bytes_written <= 100_000 + 64 * 1024 + 20_000,
        "backup {} of {:?} wrote {}",
        d.id,
        d.parent,
        d.bytes_written
    );
    expect_restores(ctx, &d, &vol.mirror)?;
    expect_restores(ctx, &c, &at_c)?;
    ensure!(
        !published(ctx, &a)?,
        "the shared segments are left after {}, the last to share them, went",
        c.id
    );
    ensure!(published(ctx, &d)?, "no digests of {}", d.id);
    Ok(())
}

/// This host's copy of the parent's digests is found, not read, by the
/// chain check; an incremental reads it whole while deriving its own. One
/// damaged in place of the right length is caught there: the incremental
/// is undone (the base rolled back) and a full backup made instead.
pub fn damaged_local_digests_fall_back(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("damagedhere", 12 * MIB)?;
    vol.scribble(0, 3 * MIB as usize, 91)?;
    let first = expect_backup(ctx, &vol, BackupKind::Full)?;
    let at_first = vol.mirror.clone();
    let path = ctx.engine().digests.path(first.id);
    let mut bytes = std::fs::read(&path).map_err(s)?;
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    // Replaced, as the engine replaces files (a link may share the inode).
    let staged = path.with_extension("damaged");
    std::fs::write(&staged, &bytes).map_err(s)?;
    std::fs::rename(&staged, &path).map_err(s)?;
    vol.scribble(5 * MIB, 100_000, 92)?;
    let second = expect_backup(ctx, &vol, BackupKind::Full)?;
    noted(ctx, "recorded checksum")?;
    expect_restores(ctx, &second, &vol.mirror)?;
    expect_restores(ctx, &first, &at_first)
}
