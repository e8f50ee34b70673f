//! Adopt checks: a store whose catalog is gone is adopted back.

use super::support::{ensure, s, CheckResult, Ctx, How, MIB};
use crate::catalog::{BackupKind, BackupRecord};
use crate::checksum::checksum_of;
use crate::engine::digest_objects::segment_name;
use crate::engine::ChainMode;

fn adopted<'r>(report: &'r [BackupRecord], b: &BackupRecord) -> Result<&'r BackupRecord, String> {
    report
        .iter()
        .find(|r| r.id == b.id)
        .ok_or_else(|| format!("backup {} was not adopted", b.id))
}

/// Two backups, the catalog lost: `adopt` with checksums records the
/// checksums the backups made, and the next backup continues the chain.
pub fn with_checksums_continues_the_chain(ctx: &Ctx<'_>) -> CheckResult {
    let mut vol = ctx.volume("adopt", 12 * MIB)?;
    vol.scribble(0, 2 * MIB as usize, 1)?;
    let b1 = ctx.backup(&vol).map_err(s)?;
    vol.scribble(5 * MIB, 300_000, 2)?;
    let b2 = ctx.backup(&vol).map_err(s)?;

    let fresh = Ctx::new(ctx.fx);
    let [(store, label), _] = ctx.fx.stores();
    let source = vol.label.clone();
    let source_of = |_: &uuid::Uuid| source.clone();
    let plain = Ctx::new(ctx.fx);
    // Only this volume: the store may be a pool others use at the same
    // time (the test cluster's), whose images a fresh catalog that adopted
    // them would purge when dropped.
    let only = Some(b1.volume_id);
    let report = plain.engine().adopt(store, &label, &source_of, false, only);
    let report = report.map_err(s)?;
    ensure!(
        adopted(&report.adopted, &b2)?.checksum.is_none(),
        "adopted without checksums, yet backup {} has one",
        b2.id
    );
    vol.scribble(9 * MIB, 100_000, 3)?;
    let how = How {
        mode: ChainMode::Incremental,
        ..How::default()
    };
    match plain.backup_with(vol.head.as_ref(), &vol, how) {
        Err(e) if e.to_string().contains("adopt --checksums") => {}
        other => return Err(format!(
            "an incremental after adopting without checksums gave {other:?}, expected a refusal naming `adopt --checksums`"
        )),
    }
    // As if the digests in the store were lost too: adopting publishes them.
    let first_segment = segment_name(b2.id, 0);
    store.remove_object(&first_segment).map_err(s)?;
    let report = fresh.engine().adopt(store, &label, &source_of, true, only);
    let report = report.map_err(s)?;
    ensure!(
        store.get_object(&first_segment).map_err(s)?.is_some(),
        "adopt --checksums did not publish the digests of {}",
        b2.id
    );
    for b in [&b1, &b2] {
        let got = &adopted(&report.adopted, b)?.checksum;
        ensure!(
            got == &b.checksum,
            "adopted backup {} has checksum {got:?}, it was made with {:?}",
            b.id,
            b.checksum
        );
    }
    let next = fresh.backup(&vol).map_err(s)?;
    ensure!(
        next.kind == BackupKind::Incremental && next.parent == Some(b2.id),
        "the backup after adopting is {} with parent {:?}, expected an incremental of {}",
        next.kind,
        next.parent,
        b2.id
    );
    ensure!(
        next.checksum.as_deref() == Some(checksum_of(&vol.mirror).as_str()),
        "the incremental after adopting records a wrong checksum"
    );
    Ok(())
}
