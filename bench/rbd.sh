#!/usr/bin/env bash
# bench/rbd.sh: Ceph RBD benchmarks of blockback against the rbd CLI, side by
# side in one run, RUNS times each, medians (same style as bench/run.sh).
#
#   CEPH_CONF=/path/to/ceph.conf bench/rbd.sh [--size 4G] [--runs 3] [--keep]
#       [--latency MS]
#
# Rows (blockback vs baseline):
#   full backup    v1.img into rbd:BACKUP_POOL  vs  rbd import (the note adds
#                  a snapshot of the import, as a backup ends with one; run as
#                  a second rbd process, it also counts that one's start and
#                  connection, so it bounds a like-for-like baseline from above)
#   incremental    POOL/bench-vol, changed by 2% after a full backup, into
#                  rbd:BACKUP_POOL  vs  rbd snap create + rbd export-diff
#                  --from-snap | rbd import-diff (the change is applied to the
#                  source with `rbd import-diff` of bench-gen's change stream,
#                  so only the changed extents are written)
#   restore        that incremental backup to a new file  vs  rbd export
#
# Environment:
#   CEPH_CONF    ceph.conf of the cluster (required; its keyring setting is used)
#   CEPH_ID      client id for rbd and blockback (default admin)
#   POOL         pool of the source volume (default volumes)
#   BACKUP_POOL  pool the backups go to (default backups); use a throwaway
#                cluster: the script creates and removes bench-* images there
#   BENCH_DIR, BLOCKBACK, DURABLE, SKIP_BUILD: as for bench/run.sh
#
# Results: a markdown table on stdout and in $BENCH_DIR/results-rbd.md; the
# exit status is 1 when any target is missed (2 on usage or setup errors).
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPT=rbd.sh
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
# Targets: blockback / baseline must not exceed these. Full backup: at least
# as fast as `rbd import`; restore: at least 1.5x faster than `rbd export`.
# Targets of issue 10 (bench/differential.sh measures its differential rows
# in full): a full backup of a file into an RBD store at 0.9x `rbd import`,
# the incremental at 0.67x the pipe, a restore to a file at 0.67x `rbd export`.
TARGET_FULL=0.9
TARGET_INCREMENTAL=0.67
TARGET_RESTORE=0.67

remove_bench_images() {
    remove_image "$BACKUP_POOL/bench-import"
    remove_image "$BACKUP_POOL/bench-vol-copy"
    remove_image "$POOL/bench-vol"
}

# ---- the benchmark ----------------------------------------------------------

one_run() {
    local run=$1
    RUN_DIR=$BENCH_DIR/rbd-run
    rm -rf "$RUN_DIR"
    mkdir -p "$RUN_DIR"
    BB=("$BLOCKBACK" --store "rbd:$BACKUP_POOL" --catalog "$RUN_DIR/catalog.db"
        --ceph-conf "$CEPH_CONF" --ceph-id "$CEPH_ID")
    BACKUP_IDS=()
    remove_bench_images
    # No `store init`: the first backup creates the store, and an RBD store
    # left by an earlier run (emptied by its deletes) is reused.
    log "run $run/$RUNS: full backup"
    in_turn "$run" full_baseline full_blockback
    log "run $run/$RUNS: incremental backup"
    prepare_incremental
    in_turn "$run" incremental_baseline incremental_blockback
    log "run $run/$RUNS: restore"
    in_turn "$run" restore_baseline restore_blockback
    [[ $KEEP == 1 ]] || cleanup_run
}

# The target compares with `rbd import` alone; the note adds a snapshot of
# the import (a backup ends with its restore point, the base's snapshot),
# timed as a second rbd process.
full_baseline() {
    local run=$1
    warm "$BENCH_DIR/v1.img"
    timed r import --no-progress "$BENCH_DIR/v1.img" "$BACKUP_POOL/bench-import"
    T_IMPORT[run]=$SECONDS_TAKEN
    timed r snap create --no-progress "$BACKUP_POOL/bench-import@s1"
    T_IMPORT_SNAP[run]=$(plus "$SECONDS_TAKEN" "${T_IMPORT[run]}")
    remove_image "$BACKUP_POOL/bench-import"
}

full_blockback() {
    local run=$1
    warm "$BENCH_DIR/v1.img"
    timed_bb --json --quiet backup create "$BENCH_DIR/v1.img"
    T_BB_FULL[run]=$SECONDS_TAKEN RSS_FULL[run]=$RSS_KIB
    BACKUP_IDS+=("$(json_id)")
}

# Untimed: POOL/bench-vol holds v1; the baseline has its copy at snapshot s1
# and blockback a full backup; then the change is written to HEAD.
prepare_incremental() {
    r import --no-progress "$BENCH_DIR/v1.img" "$POOL/bench-vol"
    r snap create --no-progress "$POOL/bench-vol@s1"
    r create --size "$(stat -c %s "$BENCH_DIR/v1.img")B" "$BACKUP_POOL/bench-vol-copy"
    r export-diff --no-progress "$POOL/bench-vol@s1" - |
        r import-diff --no-progress - "$BACKUP_POOL/bench-vol-copy"
    "${BB[@]}" --json --quiet backup create "rbd:$POOL/bench-vol" >"$RUN_DIR/stdout"
    BACKUP_IDS+=("$(json_id)")
    apply_change "$BENCH_DIR/change.rbd-diff" "$POOL/bench-vol"
}

# The baseline's snapshot is part of its cost, as blockback's own snapshot is
# part of blockback's; it is also reported on its own.
incremental_baseline() {
    local run=$1
    timed r snap create --no-progress "$POOL/bench-vol@s2"
    T_SNAP[run]=$SECONDS_TAKEN
    timed export_import_diff
    T_DIFF[run]=$(plus "$SECONDS_TAKEN" "${T_SNAP[run]}")
}

export_import_diff() {
    r export-diff --no-progress --from-snap s1 "$POOL/bench-vol@s2" - |
        r import-diff --no-progress - "$BACKUP_POOL/bench-vol-copy"
}

incremental_blockback() {
    local run=$1
    timed_bb --json --quiet backup create "rbd:$POOL/bench-vol"
    T_BB_INC[run]=$SECONDS_TAKEN RSS_INC[run]=$RSS_KIB
    INCREMENTAL_ID=$(json_id)
    BACKUP_IDS+=("$INCREMENTAL_ID")
}

restore_baseline() {
    local run=$1
    timed r export --no-progress "$BACKUP_POOL/bench-vol-copy@s2" "$RUN_DIR/exported.img"
    T_EXPORT[run]=$SECONDS_TAKEN
    # The baseline must be right too: this checks the rbd diff stream as well.
    [[ $(sha256sum "$RUN_DIR/exported.img" | cut -d' ' -f1) == "$V2_SHA" ]] ||
        { echo "$SCRIPT: rbd export of the baseline copy differs from v2" >&2; exit 1; }
    rm "$RUN_DIR/exported.img"
}

restore_blockback() {
    local run=$1
    timed_bb --quiet backup restore "$INCREMENTAL_ID" "$RUN_DIR/restored.img"
    T_BB_RESTORE[run]=$SECONDS_TAKEN RSS_RESTORE[run]=$RSS_KIB
    check_restored "$run" "$BENCH_DIR/v2.img" "$RUN_DIR/restored.img"
    rm "$RUN_DIR/restored.img"
}

# Deletes this run's backups through blockback (an RBD store frees space
# when images go; there is no gc) and the baseline's images.
cleanup_run() {
    local id
    for id in "${BACKUP_IDS[@]}"; do
        "${BB[@]}" --quiet backup delete "$id" || log "warning: could not delete backup $id"
    done
    remove_bench_images
    rm -rf "$RUN_DIR"
}

# ---- reporting --------------------------------------------------------------

report() {
    echo "## blockback RBD benchmark ($(date -u +%Y-%m-%dT%H:%MZ))"
    echo
    echo "Image $SIZE (seed $SEED_BASE), change $CHANGE_PERCENT% (seed $SEED_CHANGE):" \
        "changed_bytes=$CHANGED_BYTES; medians of $RUNS runs; durable timings: $DURABLE;" \
        "blockback: \`$BLOCKBACK\`; pools $POOL -> $BACKUP_POOL; CEPH_CONF=$CEPH_CONF; $(latency_note)."
    echo
    echo '| metric | baseline | blockback | ratio | target | result | note |'
    echo '|---|---|---|---|---|---|---|'
    local full with_snap
    full=$(median "${T_BB_FULL[@]}") with_snap=$(median "${T_IMPORT_SNAP[@]}")
    row "full backup, file -> rbd:$BACKUP_POOL" "rbd import" "$(median "${T_IMPORT[@]}")" \
        "$full" "$TARGET_FULL" "rbd import; rbd snap create $with_snap s: $(ratio "$full" "$with_snap")"
    row "incremental, RBD -> RBD" "snap + export-diff / import-diff" "$(median "${T_DIFF[@]}")" \
        "$(median "${T_BB_INC[@]}")" "$TARGET_INCREMENTAL" "of which snap create $(median "${T_SNAP[@]}") s"
    row "restore to a new file" "rbd export" "$(median "${T_EXPORT[@]}")" \
        "$(median "${T_BB_RESTORE[@]}")" "$TARGET_RESTORE" -
    check_rows
    rss_row "full backup" "$(max_of "${RSS_FULL[@]}")"
    rss_row "incremental" "$(max_of "${RSS_INC[@]}")"
    rss_row "restore" "$(max_of "${RSS_RESTORE[@]}")"
    echo
    echo "Per run (s): import ${T_IMPORT[*]} (+ snap ${T_IMPORT_SNAP[*]}) / bb ${T_BB_FULL[*]}; diff ${T_DIFF[*]} (snap ${T_SNAP[*]})" \
        "/ bb ${T_BB_INC[*]}; export ${T_EXPORT[*]} / bb ${T_BB_RESTORE[*]}."
    echo "Order alternates per run (baseline first on odd runs). OSD caches are not dropped."
}

main() {
    trap 'echo "$SCRIPT: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
    parse_args "$@"
    setup_rbd
    declare -ga T_IMPORT=() T_IMPORT_SNAP=() T_BB_FULL=() T_SNAP=() T_DIFF=() T_BB_INC=() T_EXPORT=() T_BB_RESTORE=()
    declare -ga RSS_FULL=() RSS_INC=() RSS_RESTORE=() SHA_OK=() LAYOUT=()
    generate
    local run
    for run in $(seq 1 "$RUNS"); do one_run "$run"; done
    report >"$BENCH_DIR/results-rbd.md"
    publish "$BENCH_DIR/results-rbd.md"
}

main "$@"
