//! The conformance suite every image backend runs.
//!
//! A backend's tests implement [`ImageFactory`] and call [`run_image_suite`].
//! Every check is a named function; all checks run, and the suite then panics
//! with one line per failed check (check name, image, what differed), so one
//! run shows everything that is broken.
//!
//! The suite only depends on what blockback-core depends on, so other crates
//! (the RBD backend) can call it from their tests. Images are at most 16 MiB
//! and the suite writes a few MiB in total, so it is quick on a real cluster.
//! Cleaning up is the factory's job (e.g. a temp dir, or remembering the
//! image names it created); checks remove the snapshots they created when
//! they succeed.
//!
//! [`run_pool_object_suite`] is the separate, pool-level group for named
//! objects ([`super::Pool::put_object`] and friends).

mod basic;
mod concurrency;
mod extents;
mod fill;
#[cfg(test)]
mod mem;
mod metadata;
mod objects;
mod snapshots;
mod support;

use super::{Image, Pool};

/// Creates the images the suite runs against.
pub trait ImageFactory {
    /// A fresh, empty (all-zero), writable image of `size` bytes with a unique name.
    fn create(&self, size: u64) -> Box<dyn Image>;
    /// The same through `Pool::create_to_fill`, told `size` bytes will be
    /// written (backends without pools: [`Self::create`]).
    fn create_to_fill(&self, size: u64) -> Box<dyn Image> {
        self.create(size)
    }
    /// Whether images of this backend support snapshots (`Image::snapshots()` is Some).
    fn has_snapshots(&self) -> bool;
    /// Whether images of this backend keep key/value metadata
    /// (`Image::metadata()` is Some).
    fn has_metadata(&self) -> bool;
}

/// What a check returns: `Err` says what broke.
type CheckResult = std::result::Result<(), String>;

/// One named check of the suite.
struct Check {
    name: &'static str,
    run: fn(&dyn ImageFactory) -> CheckResult,
    /// Only run when the backend has snapshots.
    needs_snapshots: bool,
    /// Only run when the backend has metadata.
    needs_metadata: bool,
}

const fn check(name: &'static str, run: fn(&dyn ImageFactory) -> CheckResult) -> Check {
    Check {
        name,
        run,
        needs_snapshots: false,
        needs_metadata: false,
    }
}

const fn snap_check(name: &'static str, run: fn(&dyn ImageFactory) -> CheckResult) -> Check {
    Check {
        needs_snapshots: true,
        ..check(name, run)
    }
}

const fn meta_check(name: &'static str, run: fn(&dyn ImageFactory) -> CheckResult) -> Check {
    Check {
        needs_metadata: true,
        ..check(name, run)
    }
}

const CHECKS: &[Check] = &[
    check("size_matches_create", basic::size_matches_create),
    check("fresh_image_reads_zero", basic::fresh_image_reads_zero),
    check("write_read_round_trip", basic::write_read_round_trip),
    check("overwrite_inside_data", basic::overwrite_inside_data),
    check("read_past_end_is_invalid", basic::read_past_end_is_invalid),
    check("write_past_end_fails", basic::write_past_end_fails),
    check("write_zeroes_exact", basic::write_zeroes_exact),
    check("flush_keeps_data", basic::flush_keeps_data),
    check("resize_grow_reads_zero", basic::resize_grow_reads_zero),
    check("resize_shrink_then_grow", basic::resize_shrink_then_grow),
    check("concurrent_writes", concurrency::concurrent_writes),
    check(
        "filled_image_is_whole_after_flush",
        fill::filled_image_is_whole_after_flush,
    ),
    snap_check(
        "filled_image_diffs_since_a_snapshot",
        fill::filled_image_diffs_since_a_snapshot,
    ),
    check("extents_cover_all_data", extents::cover_all_data),
    check("extents_within_subrange", extents::within_subrange),
    check("extents_not_beyond_size", extents::not_beyond_size),
    check("extents_visitor_error_stops", extents::visitor_error_stops),
    check("snapshots_presence", snapshots::presence),
    snap_check("snapshot_create_list", snapshots::create_list),
    snap_check("snapshot_read_only_frozen", snapshots::read_only_frozen),
    snap_check(
        "prepared_snapshot_open_reads_the_snapshot",
        snapshots::prepared_open_reads_the_snapshot,
    ),
    snap_check("extents_since_snapshot", snapshots::extents_since_snapshot),
    snap_check(
        "extents_since_snapshot_grown",
        snapshots::extents_since_grown,
    ),
    snap_check("snapshot_rollback", snapshots::rollback),
    snap_check("snapshot_remove_and_missing", snapshots::remove_and_missing),
    snap_check("released_image_reopens", snapshots::released_image_reopens),
    check("metadata_presence", metadata::presence),
    meta_check("metadata_set_get", metadata::set_get),
    Check {
        needs_snapshots: true,
        ..meta_check(
            "metadata_read_only_at_snapshot",
            metadata::snapshot_handle_is_read_only,
        )
    },
];

/// Runs every check; panics with a message naming the failed check and backend.
pub fn run_image_suite(factory: &dyn ImageFactory) {
    let failures = run_checks(factory);
    if !failures.is_empty() {
        panic!(
            "image conformance: {} check(s) failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

/// Runs the checks that apply to the backend; one line per failure.
fn run_checks(factory: &dyn ImageFactory) -> Vec<String> {
    run_selected(factory, &|_| true)
}

/// Runs the applicable checks whose name `select` accepts.
fn run_selected(factory: &dyn ImageFactory, select: &dyn Fn(&str) -> bool) -> Vec<String> {
    CHECKS
        .iter()
        .filter(|c| factory.has_snapshots() || !c.needs_snapshots)
        .filter(|c| factory.has_metadata() || !c.needs_metadata)
        .filter(|c| select(c.name))
        .filter_map(|c| (c.run)(factory).err().map(|e| format!("  {}: {e}", c.name)))
        .collect()
}

/// Runs every named-object check against `pool`; panics with one line per
/// failed check. Object names get a per-run prefix, and each check removes
/// what it wrote when it succeeds, so a long-lived pool can run it often.
pub fn run_pool_object_suite(pool: &dyn Pool) {
    let prefix = objects::run_prefix();
    let failures: Vec<String> = objects::CHECKS
        .iter()
        .filter_map(|c| {
            (c.run)(pool, &prefix)
                .err()
                .map(|e| format!("  {}: {e}", c.name))
        })
        .collect();
    if !failures.is_empty() {
        panic!(
            "object conformance on {}: {} check(s) failed:\n{}",
            pool.describe(),
            failures.len(),
            failures.join("\n")
        );
    }
}
