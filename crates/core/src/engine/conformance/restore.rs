//! Restore checks: size at the restore point, targets, snapshots left.

use super::faults::Faulty;
use super::support::{contents, ensure, s, CheckResult, Ctx, MIB};
use crate::engine::EngineError;
use crate::engine::RestoreTarget;
use crate::image::{ExtentKind, Image};

/// Bytes of `image` reported allocated.
fn allocated(image: &dyn Image) -> Result<u64, String> {
    let size = image.size().map_err(s)?;
    let mut total = 0;
    image
        .changed_extents(None, 0..size, &mut |e| {
            if e.kind == ExtentKind::Data {
                total += e.len;
            }
            Ok(())
        })
        .map_err(s)?;
    Ok(total)
}

pub fn stay_sparse(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("sparse", 12 * MIB)?;
    vol.scribble(5 * MIB, MIB as usize, 45)?;
    vol.write(8 * MIB, &vec![0u8; 2 * MIB as usize])?;
    let b = ctx.backup(&vol).map_err(s)?;
    ensure!(
        b.bytes_written == MIB,
        "a full backup of 1 MiB of data wrote {}",
        b.bytes_written
    );
    let base = ctx
        .store(0)
        .open_read_only(&b.image, Some(&b.snapshot))
        .map_err(s)?;
    let stored = allocated(base.as_ref())?;
    ensure!(
        stored <= 2 * MIB,
        "the base holds {stored} allocated bytes for 1 MiB of data"
    );
    let (report, target) = ctx.restore_new(&b).map_err(s)?;
    ensure!(
        report.bytes_written == MIB,
        "the restore wrote {}",
        report.bytes_written
    );
    let restored = allocated(target.head.as_ref())?;
    ensure!(
        restored <= 2 * MIB,
        "the restored volume has {restored} allocated bytes"
    );
    Ok(())
}

pub fn extended_volume(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("grow", 8 * MIB)?;
    vol.scribble(MIB, MIB as usize, 20)?;
    let small = ctx.backup(&vol).map_err(s)?;
    let at_small = vol.mirror.clone();
    vol.resize(12 * MIB + 4096)?;
    vol.scribble(10 * MIB, 300_000, 21)?;
    let large = ctx.backup(&vol).map_err(s)?;
    ensure!(
        large.parent == Some(small.id),
        "the grown volume did not continue the chain"
    );
    ensure!(
        small.size == 8 * MIB && large.size == 12 * MIB + 4096,
        "sizes {} {}",
        small.size,
        large.size
    );
    for (b, expected) in [(&small, &at_small), (&large, &vol.mirror)] {
        let (_, target) = ctx.restore_new(b).map_err(s)?;
        let got = contents(target.head.as_ref())?;
        ensure!(
            got.len() == expected.len(),
            "restore of {} has {} bytes, expected {}",
            b.id,
            got.len(),
            expected.len()
        );
        ensure!(got == *expected, "restore of {} differs", b.id);
    }
    ctx.engine().verify(&small, ctx.store(0)).map_err(s)?;
    Ok(())
}

pub fn shrunk_volume(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("shrink", 12 * MIB)?;
    vol.scribble(0, 12 * MIB as usize, 48)?;
    let large = ctx.backup(&vol).map_err(s)?;
    let at_large = vol.mirror.clone();
    vol.resize(7 * MIB + 4096)?;
    vol.scribble(3 * MIB, 50_000, 49)?;
    let small = ctx.backup(&vol).map_err(s)?;
    ensure!(
        small.parent == Some(large.id),
        "the shrunk volume did not continue the chain"
    );
    for (b, expected) in [(&large, &at_large), (&small, &vol.mirror)] {
        let (_, target) = ctx.restore_new(b).map_err(s)?;
        ensure!(
            contents(target.head.as_ref())? == *expected,
            "restore of {} differs",
            b.id
        );
        ctx.engine().verify(b, ctx.store(0)).map_err(s)?;
    }
    Ok(())
}

pub fn no_backup_snapshots_left(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("nosnap", 12 * MIB)?;
    vol.scribble(0, 500_000, 22)?;
    let b = ctx.backup(&vol).map_err(s)?;
    let (report, target) = ctx.restore_new(&b).map_err(s)?;
    ensure!(report.differential, "not differential");
    let snaps = target.snapshots().list().map_err(s)?;
    ensure!(snaps.is_empty(), "restored volume has snapshots {snaps:?}");
    Ok(())
}

pub fn onto_source(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("original", 12 * MIB)?;
    vol.scribble(0, 4 * MIB as usize, 23)?;
    let b = ctx.backup(&vol).map_err(s)?;
    let expected = vol.mirror.clone();
    vol.scribble(2 * MIB, 65536, 24)?;
    let report = ctx.restore_onto(&b, &vol, false).map_err(s)?;
    ensure!(
        !report.differential,
        "restore onto the source was differential"
    );
    ensure!(
        report.bytes_written <= 2 * 65536,
        "rewrote {} bytes for a 64 KiB change",
        report.bytes_written
    );
    ensure!(
        contents(vol.head.as_ref())? == expected,
        "source differs after restore"
    );
    Ok(())
}

pub fn into_volume_with_data(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("src", 12 * MIB)?;
    vol.scribble(3 * MIB, MIB as usize, 25)?;
    let b = ctx.backup(&vol).map_err(s)?;
    let mut other = ctx.volume("busy", 12 * MIB)?;
    other.scribble(0, 12 * MIB as usize, 26)?;
    let report = ctx.restore_onto(&b, &other, false).map_err(s)?;
    ensure!(!report.differential, "restore onto data was differential");
    ensure!(
        contents(other.head.as_ref())? == vol.mirror,
        "target differs"
    );
    Ok(())
}

pub fn target_too_small(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("big", 12 * MIB)?;
    vol.scribble(0, 4096, 27)?;
    let b = ctx.backup(&vol).map_err(s)?;
    let mut small = ctx.volume("small", 8 * MIB)?;
    small.scribble(0, 4096, 28)?;
    match ctx.restore_onto(&b, &small, false) {
        Err(EngineError::TargetTooSmall { .. }) => {}
        other => return Err(format!("restore into a smaller volume: {other:?}")),
    }
    ensure!(
        contents(small.head.as_ref())? == small.mirror,
        "the refused target was changed"
    );
    Ok(())
}

pub fn larger_target(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("base", 8 * MIB)?;
    vol.scribble(MIB, 10_000, 29)?;
    let b = ctx.backup(&vol).map_err(s)?;
    let mut large = ctx.volume("large", 12 * MIB)?;
    large.scribble(9 * MIB, 2 * MIB as usize, 30)?;
    let report = ctx.restore_onto(&b, &large, false).map_err(s)?;
    ensure!(
        report.excess_zeroed == 4 * MIB,
        "zeroed {}",
        report.excess_zeroed
    );
    let mut expected = vol.mirror.clone();
    expected.resize(12 * MIB as usize, 0);
    ensure!(contents(large.head.as_ref())? == expected, "target differs");
    Ok(())
}

pub fn failed_differential_falls_back(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("fallback", 12 * MIB)?;
    vol.scribble(0, 2 * MIB as usize, 46)?;
    vol.scribble(9 * MIB, MIB as usize, 47)?;
    let b = ctx.backup(&vol).map_err(s)?;
    let target = ctx.volume("target", 12 * MIB)?;
    let source = Faulty::reads_failing(ctx.open_backup(&b).map_err(s)?, 0);
    let into = RestoreTarget {
        image: target.head.as_ref(),
        label: target.label.clone(),
        is_new: false,
    };
    let report = ctx.engine().restore_into(&b, &source, &into).map_err(s)?;
    ensure!(!report.differential, "the report hides the fallback");
    let notes = ctx.notes.all();
    ensure!(
        notes
            .iter()
            .any(|n| n.contains("falling back to a full restore")),
        "notes: {notes:?}"
    );
    ensure!(
        contents(target.head.as_ref())? == vol.mirror,
        "target differs"
    );
    Ok(())
}
