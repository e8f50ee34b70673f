//! Delete checks: any order, source snapshots, never another backup's data.

use super::faults::Faulty;
use super::support::{contents, ensure, s, CheckResult, Ctx, How, MIB};
use crate::catalog::{BackupRecord, BackupStatus, Catalog};
use crate::metadata::{read_backup_metadata, write_backup_metadata};
use crate::naming::legacy_base_name;

pub fn every_order(ctx: &Ctx<'_>) -> CheckResult {
    let orders = [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ];
    for order in orders {
        let mut vol = ctx.volume("order", 8 * MIB)?;
        let how = How {
            keep: 3,
            ..How::default()
        };
        let mut backups: Vec<(BackupRecord, Vec<u8>)> = Vec::new();
        for i in 0..3u8 {
            vol.scribble(u64::from(i) * 2 * MIB + 4096, 40_000, 31 + i)?;
            let b = ctx.backup_with(vol.head.as_ref(), &vol, how).map_err(s)?;
            backups.push((b, vol.mirror.clone()));
        }
        let base = backups[0].0.image.clone();
        for (step, &i) in order.iter().enumerate() {
            ctx.delete(&backups[i].0, &vol)
                .map_err(|e| format!("order {order:?}: {e}"))?;
            for &j in &order[step + 1..] {
                let (b, expected) = &backups[j];
                let (_, target) = ctx.restore_new(b).map_err(s)?;
                ensure!(
                    contents(target.head.as_ref())? == *expected,
                    "order {order:?}: backup {j} differs after deleting {i}"
                );
            }
        }
        ensure!(
            !ctx.base_exists(0, &base),
            "order {order:?}: base {base} left"
        );
        ensure!(
            vol.backup_snaps().is_empty(),
            "order {order:?}: source keeps {:?}",
            vol.backup_snaps()
        );
        ensure!(
            ctx.catalog.list_backups(None).map_err(s)?.is_empty(),
            "catalog entries left"
        );
    }
    Ok(())
}

pub fn removes_source_snapshot(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("delsrc", 8 * MIB)?;
    vol.scribble(0, 10_000, 40)?;
    let b = ctx.backup(&vol).map_err(s)?;
    ensure!(
        vol.backup_snaps() == [b.snapshot.clone()],
        "source has {:?}",
        vol.backup_snaps()
    );
    ctx.delete(&b, &vol).map_err(s)?;
    ensure!(
        vol.backup_snaps().is_empty(),
        "source keeps {:?}",
        vol.backup_snaps()
    );
    ensure!(!ctx.base_exists(0, &b.image), "base left");
    Ok(())
}

pub fn failed_backup_spares_others(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("spare", 8 * MIB)?;
    vol.scribble(0, MIB as usize, 41)?;
    let good = ctx.backup(&vol).map_err(s)?;
    let legacy = legacy_base_name(&good.volume_id.to_string());
    ctx.store(0).create(&legacy, MIB).map_err(s)?;
    vol.scribble(5 * MIB, 10_000, 42)?;
    let faulty = Faulty::snapshots_failing(vol.head.as_ref(), 2, 0);
    ensure!(
        ctx.backup_with(&faulty, &vol, How::default()).is_err(),
        "broken reads succeeded"
    );
    let failed = ctx
        .catalog
        .list_backups(None)
        .map_err(s)?
        .into_iter()
        .find(|b| b.status == BackupStatus::Error)
        .ok_or("no failed record")?;
    ctx.delete(&failed, &vol).map_err(s)?;
    ensure!(
        ctx.base_exists(0, &legacy),
        "the legacy base {legacy} was removed"
    );
    ensure!(
        ctx.base_snaps(0, &good.image) == [good.snapshot.clone()],
        "the good backup's base changed"
    );
    let (_, target) = ctx.restore_new(&good).map_err(s)?;
    let mut expected = vol.mirror.clone();
    expected[5 * MIB as usize..5 * MIB as usize + 10_000].fill(0);
    ensure!(
        contents(target.head.as_ref())? == expected,
        "the good backup differs"
    );
    super::support::purge(ctx.store(0), &legacy);
    Ok(())
}

pub fn base_gone(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("gone", 8 * MIB)?;
    vol.scribble(0, 10_000, 43)?;
    let b = ctx.backup(&vol).map_err(s)?;
    super::support::purge(ctx.store(0), &b.image);
    ctx.delete(&b, &vol).map_err(s)?;
    ensure!(
        ctx.catalog.list_backups(None).map_err(s)?.is_empty(),
        "catalog entry left"
    );
    ensure!(vol.backup_snaps().is_empty(), "source snapshot left");
    Ok(())
}

pub fn metadata_object(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("meta", 8 * MIB)?;
    vol.scribble(0, 10_000, 44)?;
    let b = ctx.backup(&vol).map_err(s)?;
    let id = b.id.to_string();
    let meta = read_backup_metadata(ctx.store(0), &id)
        .map_err(s)?
        .ok_or("no metadata object")?;
    ensure!(
        meta.volume.get("owner").map(String::as_str) == Some("chain-suite"),
        "volume metadata {:?}",
        meta.volume
    );
    // Cinder's shape: size in whole GiB, no display name unless one was given.
    ensure!(
        meta.volume_base.get("size") == Some(&serde_json::Value::from(1))
            && meta.volume_base.get("display_name") == Some(&serde_json::Value::Null),
        "base metadata {:?}",
        meta.volume_base
    );
    let again = write_backup_metadata(ctx.store(0), &id, &meta);
    ensure!(again.is_err(), "the metadata object was written twice");
    ctx.delete(&b, &vol).map_err(s)?;
    ensure!(
        read_backup_metadata(ctx.store(0), &id)
            .map_err(s)?
            .is_none(),
        "metadata left after delete"
    );
    Ok(())
}
