//! The backup-chain suite: the reference driver's behaviours and each of
//! its confirmed bugs (see docs/design.md, "Differential backups"), as
//! named checks run against every pair of snapshot-capable volume pool and
//! backup store (local store, RBD).
//!
//! Like the image suite, every check runs, then the suite panics with one
//! line per failed check. Volumes are 12 MiB (three 4 MiB RBD objects), so
//! the suite is quick on a real cluster.

mod adopt;
mod backup;
mod delegate;
mod delete;
mod digests;
mod faults;
mod misled;
mod recovery;
mod restore;
mod retention;
mod store_faults;
mod support;

pub use retention::run_retention_days;

use crate::image::Pool;
use support::{CheckResult, Ctx};

/// The pools a run of the suite uses.
pub trait ChainFixture: Sync {
    /// Where volumes (backup sources, restore targets) are created.
    fn volumes(&self) -> &dyn Pool;
    /// The label of volume `name`, as a catalog records its source.
    fn volume_label(&self, name: &str) -> String;
    /// Two backup stores and their labels; the second may be the volume
    /// pool itself (backups in the same pool).
    fn stores(&self) -> [(&dyn Pool, String); 2];
    /// An image name no other check or run uses.
    fn unique(&self, tag: &str) -> String;
}

struct Check {
    name: &'static str,
    run: fn(&Ctx<'_>) -> CheckResult,
}

const fn check(name: &'static str, run: fn(&Ctx<'_>) -> CheckResult) -> Check {
    Check { name, run }
}

const CHECKS: &[Check] = &[
    check("chain_of_five_restores_every_point", backup::chain_of_five),
    check(
        "unchanged_volume_transfers_nothing",
        backup::unchanged_transfers_nothing,
    ),
    check("zero_size_volume_is_refused", backup::zero_size_refused),
    check(
        "identical_rewrite_writes_nothing",
        backup::identical_rewrite_writes_nothing,
    ),
    check("full_backup_and_restore_stay_sparse", restore::stay_sparse),
    check(
        "snapshot_deleted_on_source_starts_a_new_chain",
        backup::snap_gone_on_source,
    ),
    check(
        "snapshot_deleted_on_base_starts_a_new_chain",
        backup::snap_gone_on_base,
    ),
    check(
        "base_head_modified_starts_a_new_chain",
        backup::base_head_modified,
    ),
    check("base_deleted_starts_a_new_chain", backup::base_deleted),
    check(
        "incremental_mode_refuses_a_broken_chain",
        backup::incremental_mode_refuses,
    ),
    check("full_mode_starts_a_new_chain", backup::full_mode_new_chain),
    check(
        "failed_transfer_falls_back_to_full",
        backup::failed_transfer_falls_back,
    ),
    check(
        "change_the_early_look_missed_is_copied",
        backup::missed_change_is_copied,
    ),
    check(
        "seen_change_is_not_looked_at_again",
        backup::seen_change_is_not_looked_at_again,
    ),
    check(
        "failed_base_snapshot_of_an_unchanged_volume_falls_back",
        backup::unchanged_base_snapshot_failure_falls_back,
    ),
    check(
        "failed_fallback_reports_the_first_cause",
        backup::failed_fallback_first_cause,
    ),
    check(
        "failed_base_snapshot_falls_back_to_full",
        backup::failed_base_snapshot_falls_back,
    ),
    check(
        "failed_read_among_many_in_flight_leaves_nothing",
        backup::failed_read_among_many_in_flight,
    ),
    check(
        "backup_killed_after_its_commit_is_finished",
        recovery::killed_after_commit_is_finished,
    ),
    check(
        "backup_killed_before_its_commit_is_undone",
        recovery::killed_before_commit_is_undone,
    ),
    check(
        "source_snapshots_pruned_per_chain",
        backup::source_snapshots_pruned,
    ),
    check(
        "snapshot_sources_backed_up_repeatedly",
        backup::read_only_source_twice,
    ),
    check(
        "backups_in_two_stores_keep_their_own_chains",
        backup::two_stores,
    ),
    check(
        "whole_source_incrementals_write_only_changes",
        backup::whole_source_writes_only_changes,
    ),
    check(
        "extended_volume_restores_at_its_size",
        restore::extended_volume,
    ),
    check("shrunk_volume_continues_the_chain", restore::shrunk_volume),
    check(
        "restored_volume_has_no_backup_snapshots",
        restore::no_backup_snapshots_left,
    ),
    check(
        "restore_onto_source_is_full_and_writes_differences",
        restore::onto_source,
    ),
    check(
        "restore_into_volume_with_data_is_full",
        restore::into_volume_with_data,
    ),
    check(
        "restore_target_too_small_is_refused",
        restore::target_too_small,
    ),
    check(
        "restore_larger_target_zeroes_excess",
        restore::larger_target,
    ),
    check(
        "failed_differential_restore_falls_back_to_full",
        restore::failed_differential_falls_back,
    ),
    check("delete_in_every_order", delete::every_order),
    check(
        "delete_removes_source_snapshot",
        delete::removes_source_snapshot,
    ),
    check(
        "delete_of_failed_backup_spares_others",
        delete::failed_backup_spares_others,
    ),
    check("delete_with_base_gone_forgets_backup", delete::base_gone),
    check(
        "metadata_object_written_once_and_deleted",
        delete::metadata_object,
    ),
    check(
        "incremental_continues_from_the_stores_digests",
        digests::continues_from_the_stores_digests,
    ),
    check(
        "damaged_digests_in_the_store_are_not_used",
        digests::damaged_copy_is_not_used,
    ),
    check(
        "delete_removes_the_digest_segments",
        digests::delete_removes_the_segments,
    ),
    check(
        "unchanged_backups_share_the_digest_segments",
        digests::unchanged_backups_share_the_segments,
    ),
    check(
        "damaged_local_digests_fall_back_to_a_full_backup",
        digests::damaged_local_digests_fall_back,
    ),
    check(
        "adopt_with_checksums_continues_the_chain",
        adopt::with_checksums_continues_the_chain,
    ),
];

/// Runs every check; panics listing the failed ones.
pub fn run_chain_suite(fixture: &dyn ChainFixture) {
    let only = std::env::var("BLOCKBACK_CHAIN_CHECK").ok();
    let mut failures = Vec::new();
    for c in CHECKS {
        if only.as_deref().is_some_and(|o| !c.name.contains(o)) {
            continue;
        }
        let ctx = Ctx::new(fixture);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (c.run)(&ctx)))
            .unwrap_or_else(|_| Err("panicked".into()));
        match result {
            Ok(()) => eprintln!("chain check {} ... ok", c.name),
            Err(e) => {
                eprintln!("chain check {} ... FAILED: {e}", c.name);
                failures.push(format!("{}: {e}", c.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} chain check(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
