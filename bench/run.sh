#!/usr/bin/env bash
# bench/run.sh: local-file benchmarks of blockback against plain baselines
# (cp, cat) and borg, side by side in one run, RUNS times each, medians; and
# blockback on an encrypted store (aes256gcm, key file) against the same
# unencrypted blockback run (the "encrypted" table).
#
#   bench/run.sh [--size 4G] [--runs 3] [--keep]
#
# Environment:
#   BENCH_DIR   work dir (default bench/out; needs ~6x the image's data free)
#   BLOCKBACK   blockback binary (default target/release/blockback); when set,
#               only bench-gen is built (e.g. BLOCKBACK=bench/standin-blockback.sh)
#   BORG        borg binary (default: borg on PATH); BORG= skips borg
#   DURABLE     1 (default): every timed command is followed, inside the
#               timing, by a syncfs of BENCH_DIR, so each tool is charged for
#               getting its output to disk; 0: page-cache timings
#   SKIP_BUILD  1: use the binaries as they are
#
# Every timed command reads a warm cache: its input is read once just before
# (the source image for cp/cat/backups, the store or repository for restores),
# and dirty pages are flushed untimed before the clock starts.
#
# Results: a markdown table on stdout and in $BENCH_DIR/results.md; the exit
# status is 1 when any target is missed (2 on usage or setup errors).
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPT=run.sh
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
# Targets: blockback / baseline must not exceed these.
TARGET_FIRST=1.5
TARGET_SECOND=1.3
TARGET_GROWTH=1.3
TARGET_RESTORE=1.5
# Encrypted store / unencrypted store, same run.
TARGET_ENCRYPTED=1.15

setup() {
    setup_common
    BORG=${BORG-$(command -v borg || true)}
    export BORG_BASE_DIR=$BENCH_DIR/borg-home
    export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes
    export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
}

# ---- the benchmark ----------------------------------------------------------

# One run: first backup, second (incremental) backup, restore; every phase
# runs baseline, blockback and borg back to back so machine drift hits all.
one_run() {
    local run=$1
    RUN_DIR=$BENCH_DIR/run
    rm -rf "$RUN_DIR" "$BORG_BASE_DIR"
    mkdir -p "$RUN_DIR"
    # The volume is identified by its absolute path: both backups read VOL,
    # which holds v1 for the first and is changed in place to v2 for the second.
    VOL=$RUN_DIR/vol.img
    BB=("$BLOCKBACK" --store "$RUN_DIR/store" --catalog "$RUN_DIR/catalog.db")
    # The encrypted store: its own catalog, a key file (a passphrase adds one
    # argon2id unlock per command, ~0.1 s, not the per-byte cost measured here).
    EBB=("$BLOCKBACK" --store "$RUN_DIR/estore" --catalog "$RUN_DIR/ecatalog.db"
        --key-file "$RUN_DIR/store.key")
    cp --sparse=always "$BENCH_DIR/v1.img" "$VOL"
    log "run $run/$RUNS: first backup"
    phase_first "$run"
    log "run $run/$RUNS: second backup"
    phase_second "$run"
    log "run $run/$RUNS: restore"
    phase_restore "$run"
    [[ $KEEP == 1 ]] || rm -rf "$RUN_DIR" "$BORG_BASE_DIR"
}

phase_first() {
    local run=$1
    warm "$VOL"
    timed cp --sparse=always "$VOL" "$RUN_DIR/copy.img"
    T_CP1[run]=$SECONDS_TAKEN
    rm "$RUN_DIR/copy.img"

    "${BB[@]}" --quiet store init >/dev/null
    warm "$VOL"
    timed_bb --json --quiet backup create "$VOL"
    T_BB1[run]=$SECONDS_TAKEN RSS1[run]=$RSS_KIB
    BACKUP1=$(json_id)

    "${EBB[@]}" --quiet store init --encryption aes256gcm >/dev/null
    warm "$VOL"
    timed_enc --json --quiet backup create "$VOL"
    T_ENC1[run]=$SECONDS_TAKEN
    EBACKUP1=$(json_id)

    [[ -n $BORG ]] || return 0
    "$BORG" init --encryption=none "$RUN_DIR/borg" >/dev/null
    warm "$VOL"
    timed borg_create v1
    T_BORG1[run]=$SECONDS_TAKEN
}

phase_second() {
    local run=$1 changed
    changed=$("$BENCH_GEN" change "$VOL" --percent "$CHANGE_PERCENT" --seed "$SEED_CHANGE" 2>/dev/null |
        sed -n 's/^changed_bytes=//p')
    [[ $changed == "$CHANGED_BYTES" ]] || { echo "run.sh: change not deterministic ($changed vs $CHANGED_BYTES)" >&2; exit 1; }
    warm "$VOL"
    timed read_all "$VOL"
    T_CAT2[run]=$SECONDS_TAKEN

    local before
    before=$(du_bytes "$RUN_DIR/store")
    warm "$VOL"
    timed_bb --json --quiet backup create "$VOL"
    T_BB2[run]=$SECONDS_TAKEN RSS2[run]=$RSS_KIB
    G_BB[run]=$(($(du_bytes "$RUN_DIR/store") - before))
    BACKUP2=$(json_id)
    [[ $BACKUP2 != "$BACKUP1" ]] || { echo "run.sh: second backup reused id $BACKUP1" >&2; exit 1; }

    before=$(du_bytes "$RUN_DIR/estore")
    warm "$VOL"
    timed_enc --json --quiet backup create "$VOL"
    T_ENC2[run]=$SECONDS_TAKEN
    G_ENC[run]=$(($(du_bytes "$RUN_DIR/estore") - before))
    EBACKUP2=$(json_id)
    [[ $EBACKUP2 != "$EBACKUP1" ]] || { echo "run.sh: encrypted second backup reused id" >&2; exit 1; }

    [[ -n $BORG ]] || return 0
    before=$(du_bytes "$RUN_DIR/borg")
    warm "$VOL"
    timed borg_create v2
    T_BORG2[run]=$SECONDS_TAKEN
    G_BORG[run]=$(($(du_bytes "$RUN_DIR/borg") - before))
}

phase_restore() {
    local run=$1
    warm "$VOL"
    timed cp --sparse=always "$VOL" "$RUN_DIR/copy.img"
    T_CP3[run]=$SECONDS_TAKEN
    rm "$RUN_DIR/copy.img"

    warm "$RUN_DIR/store" "$RUN_DIR/catalog.db"
    timed_bb --quiet backup restore "$BACKUP2" "$RUN_DIR/restored.img"
    T_BB3[run]=$SECONDS_TAKEN RSS3[run]=$RSS_KIB
    check_restored "$run" "$VOL" "$RUN_DIR/restored.img"
    rm "$RUN_DIR/restored.img"

    warm "$RUN_DIR/estore" "$RUN_DIR/ecatalog.db"
    timed_enc --quiet backup restore "$EBACKUP2" "$RUN_DIR/restored.img"
    T_ENC3[run]=$SECONDS_TAKEN
    [[ $(sha256sum "$RUN_DIR/restored.img" | cut -d' ' -f1) == "$V2_SHA" ]] && ESHA_OK[run]=1 || ESHA_OK[run]=0
    rm "$RUN_DIR/restored.img"

    [[ -n $BORG ]] || return 0
    warm "$RUN_DIR/borg"
    mkdir "$RUN_DIR/extract"
    timed borg_extract v2 "$RUN_DIR/extract"
    T_BORG3[run]=$SECONDS_TAKEN
    rm -rf "$RUN_DIR/extract"
}

# Borg archives the path relative to the run dir so both archives name the
# same file (its files cache then sees one changed file, as blockback does).
borg_create() {
    (cd "$RUN_DIR" && "$BORG" create --chunker-params fixed,4194304 --sparse \
        "$RUN_DIR/borg::$1" vol.img)
}

borg_extract() {
    (cd "$2" && "$BORG" extract --sparse "$RUN_DIR/borg::$1")
}

# timed_enc ARGS...: times blockback on the run's encrypted store.
timed_enc() {
    timed "${EBB[@]}" "$@"
}

borg_median() { [[ -n $BORG ]] && median "$@" || echo -; }

report() {
    echo "## blockback local benchmark ($(date -u +%Y-%m-%dT%H:%MZ))"
    echo
    echo "Image $SIZE (seed $SEED_BASE), change $CHANGE_PERCENT% (seed $SEED_CHANGE):" \
        "changed_bytes=$CHANGED_BYTES; medians of $RUNS runs; durable timings: $DURABLE;" \
        "blockback: \`$BLOCKBACK\`; borg: ${BORG:-not run} (fixed 4 MiB chunks, --sparse)."
    echo
    echo '| metric | baseline | blockback | ratio | target | result | borg |'
    echo '|---|---|---|---|---|---|---|'
    row "first backup" "cp --sparse=always" "$(median "${T_CP1[@]}")" "$(median "${T_BB1[@]}")" \
        "$TARGET_FIRST" "$(borg_median "${T_BORG1[@]}")"
    row "second backup (incremental)" "cat" "$(median "${T_CAT2[@]}")" "$(median "${T_BB2[@]}")" \
        "$TARGET_SECOND" "$(borg_median "${T_BORG2[@]}")"
    row "store growth, second backup" "changed" "$CHANGED_BYTES" "$(median "${G_BB[@]}")" \
        "$TARGET_GROWTH" "$(borg_median "${G_BORG[@]}")" mib
    row "restore to a new file" "cp --sparse=always" "$(median "${T_CP3[@]}")" "$(median "${T_BB3[@]}")" \
        "$TARGET_RESTORE" "$(borg_median "${T_BORG3[@]}")"
    check_rows
    rss_row "first backup" "$(max_of "${RSS1[@]}")"
    rss_row "second backup" "$(max_of "${RSS2[@]}")"
    rss_row "restore" "$(max_of "${RSS3[@]}")"
    echo
    echo "Per run (s): first cp ${T_CP1[*]} / bb ${T_BB1[*]}; second cat ${T_CAT2[*]} / bb ${T_BB2[*]};" \
        "restore cp ${T_CP3[*]} / bb ${T_BB3[*]}; growth bb ${G_BB[*]}; borg ${T_BORG1[*]:-} / ${T_BORG2[*]:-} / ${T_BORG3[*]:-}."
    encrypted_report
    echo "RSS is the maximum over runs; store growth is \`du -sb\` of the store (borg: repository)"
    echo "before/after the second backup; borg's restore is \`borg extract --sparse\`; a data/hole"
    echo "region is a stretch allocated in only one of source and restore (\`bench-gen compare-layout\`)."
}

encrypted_report() {
    local failed=0 run
    for run in $(seq 1 "$RUNS"); do [[ ${ESHA_OK[run]} == 1 ]] || failed=$((failed + 1)); done
    echo
    echo "Encrypted store (\`store init --encryption aes256gcm\`, key file) vs the unencrypted"
    echo "store, blockback both, same runs:"
    echo
    echo '| metric | unencrypted | encrypted | ratio | target | result | - |'
    echo '|---|---|---|---|---|---|---|'
    row "first backup, encrypted" "" "$(median "${T_BB1[@]}")" "$(median "${T_ENC1[@]}")" \
        "$TARGET_ENCRYPTED" -
    row "second backup (incremental), encrypted" "" "$(median "${T_BB2[@]}")" "$(median "${T_ENC2[@]}")" \
        "$TARGET_ENCRYPTED" -
    row "restore, encrypted" "" "$(median "${T_BB3[@]}")" "$(median "${T_ENC3[@]}")" \
        "$TARGET_ENCRYPTED" -
    printf '| store growth, second backup, encrypted | %s | %s | %s | - | - | - |\n' \
        "$(mib "$(median "${G_BB[@]}")")" "$(mib "$(median "${G_ENC[@]}")")" \
        "$(ratio "$(median "${G_ENC[@]}")" "$(median "${G_BB[@]}")")"
    printf '| encrypted restore sha256 = source | %s runs | %s failed | - | all equal | %s | - |\n' \
        "$RUNS" "$failed" "$( ((failed == 0)) && echo PASS || echo FAIL)"
    echo
    echo "Per run (s), encrypted: first ${T_ENC1[*]}; second ${T_ENC2[*]}; restore ${T_ENC3[*]}; growth ${G_ENC[*]}."
}

main() {
    trap 'echo "run.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
    parse_args "$@"
    setup
    declare -ga T_CP1=() T_BB1=() T_BORG1=() T_CAT2=() T_BB2=() T_BORG2=() G_BB=() G_BORG=()
    declare -ga T_CP3=() T_BB3=() T_BORG3=() RSS1=() RSS2=() RSS3=() SHA_OK=() LAYOUT=()
    declare -ga T_ENC1=() T_ENC2=() T_ENC3=() G_ENC=() ESHA_OK=()
    generate
    local run
    for run in $(seq 1 "$RUNS"); do one_run "$run"; done
    report >"$BENCH_DIR/results.md"
    publish "$BENCH_DIR/results.md"
}

main "$@"
