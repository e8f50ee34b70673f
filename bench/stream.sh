#!/usr/bin/env bash
# bench/stream.sh: rbd stream benchmarks of blockback against plain reads and
# the rbd CLI, side by side in one run, RUNS times each, medians.
#
#   CEPH_CONF=/path/to/ceph.conf bench/stream.sh [--size 4G] [--runs 3] [--keep]
#       [--latency MS]
#
# Rows (blockback vs baseline):
#   export-diff    of the bench image (file) to /dev/null  vs  cat of the file
#                  (its read speed); target: at or above it (ratio <= 1.0)
#   import-diff    of that full stream from a pipe into a new RBD image  vs
#                  `rbd import-diff -` from the same pipe (one write in flight);
#                  the stream has no end snapshot; target: 2x faster (<= 0.5)
#   import-diff    the same for the 2% scattered change stream of bench/run.sh
#   (incremental)  (bench-gen change --rbd-diff: 4 KiB-1 MiB records), into a
#                  new image each; skipped when bench/run.sh has not made it
#
# Environment: CEPH_CONF (required), CEPH_ID (default admin), POOL (default
# volumes), BENCH_DIR, BLOCKBACK, DURABLE, SKIP_BUILD: as for bench/run.sh.
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPT=stream.sh
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
TARGET_EXPORT=1.0
TARGET_IMPORT=0.5

setup() {
    [[ -n ${CEPH_CONF:-} && -r ${CEPH_CONF:-} ]] ||
        { echo "$SCRIPT: set CEPH_CONF to a readable ceph.conf" >&2; exit 2; }
    POOL=${POOL:-volumes}
    CEPH_ID=${CEPH_ID:-admin}
    setup_common
    setup_latency
    RUN_DIR=$BENCH_DIR/stream-run
    mkdir -p "$RUN_DIR"
    BB=("$BLOCKBACK" --store "$RUN_DIR/store" --catalog "$RUN_DIR/catalog.db"
        --ceph-conf "$CEPH_CONF" --ceph-id "$CEPH_ID")
}

r() { rbd -c "$CEPH_CONF" --id "$CEPH_ID" "${RBD_CLI_OPTS[@]}" "$@"; }

one_run() {
    local run=$1 size
    size=$(stat -c %s "$BENCH_DIR/v1.img")
    warm "$BENCH_DIR/v1.img"
    timed read_all "$BENCH_DIR/v1.img"; T_CAT[run]=$SECONDS_TAKEN
    timed_bb --quiet export-diff "$BENCH_DIR/v1.img" /dev/null; T_EXPORT[run]=$SECONDS_TAKEN
    "${BB[@]}" --quiet export-diff "$BENCH_DIR/v1.img" "$RUN_DIR/full.diff"
    warm "$RUN_DIR/full.diff"
    r rm --no-progress "$POOL/bench-stream-rbd" 2>/dev/null || true
    r rm --no-progress "$POOL/bench-stream-bb" 2>/dev/null || true
    r create --size "${size}B" "$POOL/bench-stream-rbd"
    r create --size "${size}B" "$POOL/bench-stream-bb"
    timed bash -c "cat '$RUN_DIR/full.diff' | rbd -c '$CEPH_CONF' --id '$CEPH_ID' --rbd_cache=false import-diff --no-progress - '$POOL/bench-stream-rbd'"
    T_RBD_IMPORT[run]=$SECONDS_TAKEN
    timed bash -c "cat '$RUN_DIR/full.diff' | $(printf '%q ' "${BB[@]}") --quiet import-diff - 'rbd:$POOL/bench-stream-bb'"
    T_BB_IMPORT[run]=$SECONDS_TAKEN
    [[ $(r export --no-progress "$POOL/bench-stream-bb" - | sha256sum) == $(r export --no-progress "$POOL/bench-stream-rbd" - | sha256sum) ]] ||
        { echo "$SCRIPT: imported images differ" >&2; exit 1; }
    if [[ -f $BENCH_DIR/change.rbd-diff ]]; then
        import_change "$run" "$size"
    fi
    log "run $run: cat ${T_CAT[run]} export ${T_EXPORT[run]} rbd-import ${T_RBD_IMPORT[run]} bb-import ${T_BB_IMPORT[run]}"
    r rm --no-progress "$POOL/bench-stream-rbd"
    r rm --no-progress "$POOL/bench-stream-bb"
}

# The 2% change stream from a pipe into fresh images, rbd vs blockback.
import_change() {
    local run=$1 size=$2 diff=$BENCH_DIR/change.rbd-diff
    warm "$diff"
    r create --size "${size}B" "$POOL/bench-change-rbd"
    r create --size "${size}B" "$POOL/bench-change-bb"
    timed bash -c "cat '$diff' | rbd -c '$CEPH_CONF' --id '$CEPH_ID' --rbd_cache=false import-diff --no-progress - '$POOL/bench-change-rbd'"
    T_RBD_CHANGE[run]=$SECONDS_TAKEN
    timed bash -c "cat '$diff' | $(printf '%q ' "${BB[@]}") --quiet import-diff - 'rbd:$POOL/bench-change-bb'"
    T_BB_CHANGE[run]=$SECONDS_TAKEN
    [[ $(r export --no-progress "$POOL/bench-change-bb" - | sha256sum) == $(r export --no-progress "$POOL/bench-change-rbd" - | sha256sum) ]] ||
        { echo "$SCRIPT: imported change images differ" >&2; exit 1; }
    r rm --no-progress "$POOL/bench-change-rbd"
    r rm --no-progress "$POOL/bench-change-bb"
}

report() {
    echo "## blockback stream benchmark ($(date -u +%Y-%m-%dT%H:%MZ))"
    echo
    echo "Image $SIZE (seed $SEED_BASE); medians of $RUNS runs; durable timings: $DURABLE; $(latency_note)."
    echo
    echo "| metric | baseline | blockback | ratio | target | result | - |"
    echo "|---|---|---|---|---|---|---|"
    row "export-diff to /dev/null" "cat" "$(median "${T_CAT[@]}")" "$(median "${T_EXPORT[@]}")" "$TARGET_EXPORT" -
    row "import-diff from a pipe into RBD" "rbd import-diff" "$(median "${T_RBD_IMPORT[@]}")" \
        "$(median "${T_BB_IMPORT[@]}")" "$TARGET_IMPORT" -
    if ((${#T_RBD_CHANGE[@]})); then
        row "import-diff of the 2% change from a pipe" "rbd import-diff" "$(median "${T_RBD_CHANGE[@]}")" \
            "$(median "${T_BB_CHANGE[@]}")" "$TARGET_IMPORT" -
    fi
    echo
    echo "Per run (s): cat ${T_CAT[*]} / export ${T_EXPORT[*]}; rbd import-diff ${T_RBD_IMPORT[*]} / blockback ${T_BB_IMPORT[*]}; change: rbd ${T_RBD_CHANGE[*]:-} / blockback ${T_BB_CHANGE[*]:-}."
}

main() {
    SIZE=4G RUNS=3 KEEP=0 SEED_BASE=1
    parse_args "$@"
    setup
    [[ -f $BENCH_DIR/v1.img && $(stat -c %s "$BENCH_DIR/v1.img") == $(numfmt --from=iec "$SIZE") ]] ||
        "$BENCH_GEN" base "$BENCH_DIR/v1.img" --size "$SIZE" --seed "$SEED_BASE" >&2
    declare -ga T_CAT=() T_EXPORT=() T_RBD_IMPORT=() T_BB_IMPORT=() T_RBD_CHANGE=() T_BB_CHANGE=()
    for ((run = 1; run <= RUNS; run++)); do one_run "$run"; done
    report | tee "$BENCH_DIR/results-stream.md"
    [[ $KEEP == 1 ]] || rm -rf "$RUN_DIR"
    ! grep -q '| FAIL |' "$BENCH_DIR/results-stream.md"
}

main "$@"
