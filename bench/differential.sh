#!/usr/bin/env bash
# bench/differential.sh: differential (incremental) RBD -> RBD backups and
# differential restores against the reference driver's pipeline, side by
# side in one run, RUNS times each, medians.
#
#   CEPH_CONF=/path/to/ceph.conf bench/differential.sh [--size 4G] [--runs 3] [--keep]
#       [--latency MS]
#
# Each run: POOL/bench-dvol holds v1 (`rbd import`, untimed), then
#   full backup    the first backup of a chain, blockback backup create
#                  rbd:POOL/bench-dvol (its chain in BACKUP_POOL)  vs
#                  rbd snap create POOL/bench-dvol@s1 + rbd create
#                  BACKUP_POOL/bench-dref + rbd export-diff POOL/bench-dvol@s1 - |
#                  rbd import-diff - (which snapshots the base at its end), the
#                  reference driver's steps for a new chain
# Then the 2% change is written to the source with `rbd import-diff` and:
#   incremental    blockback backup create rbd:POOL/bench-dvol  vs
#                  rbd snap create POOL/bench-dvol@s2 + rbd export-diff
#                  --from-snap s1 POOL/bench-dvol@s2 - | rbd import-diff - (which
#                  snapshots the base at its end), the reference driver's steps
#   data phase     the same minus the two snapshot creations: blockback's own
#                  timings of its source and base snapshots (--json phases);
#                  the reference's are estimated by its timed `rbd snap create`
#                  (counted twice: source snapshot and import-diff's end snapshot)
#   no change      a further backup with nothing changed: blockback's time
#                  beyond its two snapshot creations (target: under 0.15 s)
#   transfer       bytes blockback wrote to the base / bytes changed (<= 1.2)
#   diff. restore  blockback backup restore ID rbd:POOL/new  vs  rbd create +
#                  rbd export-diff BASE@s2 - | rbd import-diff - POOL/new
#   thin volume    with THIN_SIZE set (e.g. 1T): POOL/bench-dthin of that size,
#                  2 GiB written at random 4 MiB offsets (`rbd bench`), a full
#                  backup (its peak RSS is a row), then RUNS backups with
#                  nothing changed: time beyond the two snapshot creations
#                  (target: under 0.15 s, whatever the volume's size)
#
# Environment: CEPH_CONF (required), CEPH_ID (default admin), POOL (volumes),
# BACKUP_POOL (backups), THIN_SIZE (unset: no thin-volume rows); BENCH_DIR,
# BLOCKBACK, SKIP_BUILD as for bench/run.sh.
# Use a throwaway cluster: the script creates and removes bench-d* images.
#
# Results: a markdown table on stdout and in $BENCH_DIR/results-differential.md;
# the exit status is 1 when any target is missed (2 on usage or setup errors).
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPT=differential.sh
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
TARGET_FULL=0.8
TARGET_INCREMENTAL=0.67
TARGET_DATA=0.5
TARGET_NO_CHANGE_SECS=0.15
TARGET_TRANSFER=1.2
TARGET_RESTORE=0.5

remove_bench_images() {
    local i
    for i in "$POOL/bench-dvol" "$BACKUP_POOL/bench-dref" "$POOL/bench-drestore-ref" "$POOL/bench-drestore-bb" \
        "$POOL/bench-dthin"; do
        remove_image "$i"
    done
}

# phase NAME: seconds of blockback's phase NAME in the last JSON output.
phase() {
    python3 -c 'import json, sys; print(json.load(sys.stdin)["phases"].get(sys.argv[1], 0))' "$1" \
        <"$RUN_DIR/stdout"
}

json_field() {
    python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1" <"$RUN_DIR/stdout"
}

minus() { awk -v a="$1" -v b="$2" -v c="${3:-0}" 'BEGIN { printf "%.3f", a - b - c }'; }

# ---- the benchmark ----------------------------------------------------------

# fresh_run NAME: an empty RUN_DIR ($BENCH_DIR/NAME) with blockback's
# catalog in it (BB), and no bench images left in the pools.
fresh_run() {
    RUN_DIR=$BENCH_DIR/$1
    rm -rf "$RUN_DIR"
    mkdir -p "$RUN_DIR"
    BB=("$BLOCKBACK" --store "rbd:$BACKUP_POOL" --catalog "$RUN_DIR/catalog.db"
        --ceph-conf "$CEPH_CONF" --ceph-id "$CEPH_ID")
    remove_bench_images
}

one_run() {
    local run=$1
    fresh_run differential-run
    log "run $run/$RUNS: full backup"
    r import --no-progress "$BENCH_DIR/v1.img" "$POOL/bench-dvol"
    in_turn "$run" full_baseline full_blockback
    apply_change "$BENCH_DIR/change.rbd-diff" "$POOL/bench-dvol"
    log "run $run/$RUNS: incremental backup"
    in_turn "$run" incremental_baseline incremental_blockback
    log "run $run/$RUNS: no-change backup"
    in_turn "$run" nochange_baseline nochange_blockback
    log "run $run/$RUNS: differential restore"
    in_turn "$run" restore_baseline restore_blockback
    ((run == 1)) && check_restores
    [[ $KEEP == 1 ]] || cleanup_run
}

full_baseline() {
    local run=$1 size
    size=$(stat -c %s "$BENCH_DIR/v1.img")
    timed full_pipe "$size"
    T_REF_FULL[run]=$SECONDS_TAKEN
}

full_pipe() {
    r snap create --no-progress "$POOL/bench-dvol@s1"
    r create --size "$1B" "$BACKUP_POOL/bench-dref"
    r export-diff --no-progress "$POOL/bench-dvol@s1" - |
        r import-diff --no-progress - "$BACKUP_POOL/bench-dref"
}

full_blockback() {
    local run=$1
    timed_bb --json --quiet backup create "rbd:$POOL/bench-dvol"
    [[ $(json_field kind) == full ]] || { echo "$SCRIPT: blockback's first backup is $(json_field kind)" >&2; exit 1; }
    T_BB_FULL[run]=$SECONDS_TAKEN RSS_FULL[run]=$RSS_KIB
}

incremental_baseline() {
    local run=$1
    timed r snap create --no-progress "$POOL/bench-dvol@s2"
    T_SNAP[run]=$SECONDS_TAKEN
    timed export_import_diff s1 s2
    T_REF_INC[run]=$(plus "$SECONDS_TAKEN" "${T_SNAP[run]}")
    T_REF_DATA[run]=$(minus "$SECONDS_TAKEN" "${T_SNAP[run]}")
}

export_import_diff() {
    r export-diff --no-progress --from-snap "$1" "$POOL/bench-dvol@$2" - |
        r import-diff --no-progress - "$BACKUP_POOL/bench-dref"
}

incremental_blockback() {
    local run=$1
    timed_bb --json --quiet backup create "rbd:$POOL/bench-dvol"
    [[ $(json_field kind) == incremental ]] || { echo "$SCRIPT: blockback made a $(json_field kind) backup" >&2; exit 1; }
    T_BB_INC[run]=$SECONDS_TAKEN RSS_INC[run]=$RSS_KIB
    T_BB_DATA[run]=$(minus "$SECONDS_TAKEN" "$(phase 'source snapshot')" "$(phase 'base snapshot')")
    WRITTEN[run]=$(json_field bytes_written)
    INCREMENTAL_ID=$(json_field id)
}

nochange_baseline() {
    local run=$1 snap
    timed r snap create --no-progress "$POOL/bench-dvol@s3"
    snap=$SECONDS_TAKEN
    timed export_import_diff s2 s3
    T_REF_SAME[run]=$(plus "$SECONDS_TAKEN" "$snap")
}

nochange_blockback() {
    local run=$1
    timed_bb --json --quiet backup create "rbd:$POOL/bench-dvol"
    T_BB_SAME[run]=$SECONDS_TAKEN
    T_BB_SAME_EXTRA[run]=$(minus "$SECONDS_TAKEN" "$(phase 'source snapshot')" "$(phase 'base snapshot')")
}

restore_baseline() {
    local run=$1 size
    size=$(stat -c %s "$BENCH_DIR/v2.img")
    timed restore_pipe "$size"
    T_REF_RESTORE[run]=$SECONDS_TAKEN
}

restore_pipe() {
    r create --size "$1B" "$POOL/bench-drestore-ref"
    r export-diff --no-progress "$BACKUP_POOL/bench-dref@s2" - |
        r import-diff --no-progress - "$POOL/bench-drestore-ref"
}

restore_blockback() {
    local run=$1
    timed_bb --json --quiet backup restore "$INCREMENTAL_ID" "rbd:$POOL/bench-drestore-bb"
    [[ $(json_field differential) == True ]] || { echo "$SCRIPT: the restore was not differential" >&2; exit 1; }
    T_BB_RESTORE[run]=$SECONDS_TAKEN RSS_RESTORE[run]=$RSS_KIB
}

# Both restored images must equal v2 (run 1 only: exporting 2 x SIZE is slow).
check_restores() {
    local image out=$RUN_DIR/check.img
    for image in "$POOL/bench-drestore-ref" "$POOL/bench-drestore-bb"; do
        rm -f "$out"
        r export --no-progress "$image" "$out"
        [[ $(sha256sum "$out" | cut -d' ' -f1) == "$V2_SHA" ]] ||
            { echo "$SCRIPT: $image differs from v2" >&2; exit 1; }
    done
    rm -f "$out"
    RESTORES_CHECKED=1
}

cleanup_run() {
    local id
    for id in $("${BB[@]}" --json backup list | python3 -c 'import json, sys; print(" ".join(b["id"] for b in json.load(sys.stdin)))'); do
        "${BB[@]}" --quiet backup delete "$id" || log "warning: could not delete backup $id"
    done
    remove_bench_images
    rm -rf "$RUN_DIR"
}

# The thin volume: one full backup, then RUNS backups with nothing changed.
thin_runs() {
    local run
    fresh_run differential-thin
    log "thin $THIN_SIZE volume: 2 GiB written, full backup"
    r create --size "$THIN_SIZE" "$POOL/bench-dthin"
    r bench --io-type write --io-size 4M --io-total 2G --io-pattern rand "$POOL/bench-dthin" >/dev/null
    timed_bb --json --quiet backup create "rbd:$POOL/bench-dthin"
    [[ $(json_field kind) == full ]] || { echo "$SCRIPT: the thin volume's first backup is not full" >&2; exit 1; }
    T_THIN_FULL=$SECONDS_TAKEN RSS_THIN_FULL=$RSS_KIB
    for run in $(seq 1 "$RUNS"); do
        log "thin $THIN_SIZE volume: no-change backup $run/$RUNS"
        timed_bb --json --quiet backup create "rbd:$POOL/bench-dthin"
        [[ $(json_field kind) == incremental ]] || { echo "$SCRIPT: a thin no-change backup is not incremental" >&2; exit 1; }
        T_THIN_SAME[run]=$SECONDS_TAKEN
        T_THIN_EXTRA[run]=$(minus "$SECONDS_TAKEN" "$(phase 'source snapshot')" "$(phase 'base snapshot')")
    done
    [[ $KEEP == 1 ]] || cleanup_run
}

thin_rows() {
    [[ -n ${THIN_SIZE:-} ]] || return 0
    local extra
    extra=$(median "${T_THIN_EXTRA[@]}")
    printf '| no change, thin %s volume with 2 GiB written, beyond the two snapshot creations | - | %s s | - | < %s s | %s | blockback total %s s; full backup %s s |\n' \
        "$THIN_SIZE" "$extra" "$TARGET_NO_CHANGE_SECS" \
        "$(awk -v a="$extra" -v t="$TARGET_NO_CHANGE_SECS" 'BEGIN { print (a < t) ? "PASS" : "FAIL" }')" \
        "$(median "${T_THIN_SAME[@]}")" "$T_THIN_FULL"
    rss_row "full backup, thin $THIN_SIZE volume" "$RSS_THIN_FULL"
}

# ---- reporting --------------------------------------------------------------

report() {
    local written changed_ratio same_extra
    written=$(median "${WRITTEN[@]}")
    changed_ratio=$(ratio "$written" "$CHANGED_BYTES")
    same_extra=$(median "${T_BB_SAME_EXTRA[@]}")
    echo "## blockback differential RBD benchmark ($(date -u +%Y-%m-%dT%H:%MZ))"
    echo
    echo "Image $SIZE (seed $SEED_BASE), change $CHANGE_PERCENT% (seed $SEED_CHANGE):" \
        "changed_bytes=$CHANGED_BYTES; medians of $RUNS runs; blockback: \`$BLOCKBACK\`;" \
        "pools $POOL -> $BACKUP_POOL; CEPH_CONF=$CEPH_CONF; $(latency_note)."
    echo
    echo '| metric | baseline | blockback | ratio | target | result | note |'
    echo '|---|---|---|---|---|---|---|'
    row "full backup RBD -> RBD (first of a chain)" "snap + create + export-diff / import-diff" \
        "$(median "${T_REF_FULL[@]}")" "$(median "${T_BB_FULL[@]}")" "$TARGET_FULL" -
    row "incremental RBD -> RBD, end to end" "snap + export-diff / import-diff" \
        "$(median "${T_REF_INC[@]}")" "$(median "${T_BB_INC[@]}")" "$TARGET_INCREMENTAL" \
        "rbd snap create $(median "${T_SNAP[@]}") s"
    row "incremental, data phase (no snapshot creations)" "export-diff / import-diff - snap" \
        "$(median "${T_REF_DATA[@]}")" "$(median "${T_BB_DATA[@]}")" "$TARGET_DATA" -
    printf '| no change, beyond the two snapshot creations | (reference total %s s) | %s s | - | < %s s | %s | blockback total %s s |\n' \
        "$(median "${T_REF_SAME[@]}")" "$same_extra" "$TARGET_NO_CHANGE_SECS" \
        "$(awk -v a="$same_extra" -v t="$TARGET_NO_CHANGE_SECS" 'BEGIN { print (a < t) ? "PASS" : "FAIL" }')" \
        "$(median "${T_BB_SAME[@]}")"
    printf '| incremental transfer / changed bytes | changed %s | wrote %s | %s | <= %s | %s | - |\n' \
        "$(mib "$CHANGED_BYTES")" "$(mib "$written")" "$changed_ratio" "$TARGET_TRANSFER" \
        "$(verdict "$changed_ratio" "$TARGET_TRANSFER")"
    row "differential restore into a new RBD image" "rbd create + export-diff / import-diff" \
        "$(median "${T_REF_RESTORE[@]}")" "$(median "${T_BB_RESTORE[@]}")" "$TARGET_RESTORE" \
        "both equal v2 by sha256: ${RESTORES_CHECKED:-no}"
    rss_row "full backup" "$(max_of "${RSS_FULL[@]}")"
    rss_row "incremental" "$(max_of "${RSS_INC[@]}")"
    rss_row "differential restore" "$(max_of "${RSS_RESTORE[@]}")"
    thin_rows
    echo
    echo "Per run (s): full ${T_REF_FULL[*]} / bb ${T_BB_FULL[*]};" \
        "reference ${T_REF_INC[*]} (data ${T_REF_DATA[*]}) / bb ${T_BB_INC[*]}" \
        "(data ${T_BB_DATA[*]}); no change ${T_REF_SAME[*]} / bb ${T_BB_SAME[*]}" \
        "(extra ${T_BB_SAME_EXTRA[*]}); restore ${T_REF_RESTORE[*]} / bb ${T_BB_RESTORE[*]}."
    [[ -z ${THIN_SIZE:-} ]] || echo "Thin $THIN_SIZE no change (s): ${T_THIN_SAME[*]} (extra ${T_THIN_EXTRA[*]})."
    echo "Order alternates per run (baseline first on odd runs). OSD caches are not dropped."
}

main() {
    trap 'echo "$SCRIPT: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
    parse_args "$@"
    DURABLE=0 # nothing local is written; sync would only add noise
    setup_rbd
    declare -ga T_SNAP=() T_REF_INC=() T_REF_DATA=() T_BB_INC=() T_BB_DATA=() WRITTEN=()
    declare -ga T_REF_SAME=() T_BB_SAME=() T_BB_SAME_EXTRA=() T_REF_RESTORE=() T_BB_RESTORE=()
    declare -ga RSS_INC=() RSS_RESTORE=() T_THIN_SAME=() T_THIN_EXTRA=()
    generate
    local run
    for run in $(seq 1 "$RUNS"); do one_run "$run"; done
    [[ -z ${THIN_SIZE:-} ]] || thin_runs
    report >"$BENCH_DIR/results-differential.md"
    publish "$BENCH_DIR/results-differential.md"
}

main "$@"
