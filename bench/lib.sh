# bench/lib.sh: what bench/run.sh and bench/rbd.sh share -- arguments, the
# build, generating the images, timing with a warm cache, medians and the
# markdown rows. Sourced, not run; expects ROOT, SCRIPT and the defaults below.

SIZE=4G
RUNS=3
KEEP=0
SEED_BASE=1
SEED_CHANGE=2
CHANGE_PERCENT=2
RSS_LIMIT_KIB=$((256 * 1024))
LAYOUT_TOLERANCE=64K
# --latency MS: the client latency profile (0: none; see setup_latency).
LATENCY_MS=0

usage() {
    local code=${1:-0}
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$ROOT/bench/$SCRIPT" |
        if ((code == 0)); then cat; else cat >&2; fi
    exit "$code"
}

parse_args() {
    while [[ $# -gt 0 ]]; do
        case $1 in
            --size) SIZE=${2:?--size needs a value}; shift 2 ;;
            --runs) RUNS=${2:?--runs needs a value}; shift 2 ;;
            --keep) KEEP=1; shift ;;
            --latency) LATENCY_MS=${2:?--latency needs a value in ms}; shift 2 ;;
            -h | --help) usage 0 ;;
            *) echo "$SCRIPT: unknown argument $1" >&2; usage 2 ;;
        esac
    done
    [[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "$SCRIPT: --runs must be a positive integer" >&2; exit 2; }
    [[ $LATENCY_MS =~ ^[0-9]+([.][0-9]+)?$ ]] ||
        { echo "$SCRIPT: --latency must be a number of milliseconds" >&2; exit 2; }
}

# Resolves BENCH_DIR, builds, and checks the tools every script needs.
setup_common() {
    BENCH_DIR=$(mkdir -p "${BENCH_DIR:-$ROOT/bench/out}" && cd "${BENCH_DIR:-$ROOT/bench/out}" && pwd)
    BENCH_GEN=$ROOT/target/release/bench-gen
    DURABLE=${DURABLE:-1}
    [[ -x /usr/bin/time ]] || { echo "$SCRIPT: /usr/bin/time missing (apt-get install time)" >&2; exit 2; }
    build
    BLOCKBACK=${BLOCKBACK:-$ROOT/target/release/blockback}
    for bin in "$BLOCKBACK" "$BENCH_GEN"; do
        [[ -x $bin ]] || { echo "$SCRIPT: $bin is not executable" >&2; exit 2; }
    done
}

build() {
    [[ ${SKIP_BUILD:-0} == 1 ]] && return
    local packages=(-p blockback-bench)
    [[ -n ${BLOCKBACK:-} ]] || packages+=(-p blockback)
    log "building ${packages[*]} (release)"
    (cd "$ROOT" && cargo build --release --quiet "${packages[@]}")
}

log() { echo "[bench $(date +%H:%M:%S)] $*" >&2; }

# ---- measuring --------------------------------------------------------------

# Reads files (or every file under directories) once, to warm the cache.
warm() {
    find "$@" -type f -print0 | xargs -0 cat >/dev/null
}

# timed CMD...: runs CMD (stdout to $RUN_DIR/stdout), sets SECONDS_TAKEN.
timed() {
    sync
    local start end
    start=$(date +%s%N)
    "$@" >"$RUN_DIR/stdout"
    [[ $DURABLE == 1 ]] && sync -f "$BENCH_DIR"
    end=$(date +%s%N)
    SECONDS_TAKEN=$(awk -v ns=$((end - start)) 'BEGIN { printf "%.3f", ns / 1e9 }')
}

# timed_bb ARGS...: times `${BB[@]} ARGS` (blockback with the run's store
# and catalog) under GNU time, and sets RSS_KIB to its peak RSS.
timed_bb() {
    timed /usr/bin/time -f %M -o "$RUN_DIR/rss" "${BB[@]}" "$@"
    RSS_KIB=$(tail -n 1 "$RUN_DIR/rss")
}

read_all() { cat "$1" >/dev/null; }

# CPU time in clock ticks: the whole machine's busy time (all cores: user,
# nice, system, irq, softirq), and a process's user + system (all threads).
cpu_busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
proc_cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
ticks_to_secs() { awk -v t="$1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", t / hz }'; }

du_bytes() { du -sb "$1" | cut -f1; }

json_id() {
    python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])' <"$RUN_DIR/stdout"
}

# ---- images -----------------------------------------------------------------

# v1.img (the base), v2.img (v1 + the change) and change.rbd-diff (the same
# change as an rbd diff v1 stream); sets CHANGED_BYTES and V2_SHA.
generate() {
    log "generating v1 ($SIZE, seed $SEED_BASE) and v2 (+$CHANGE_PERCENT%, seed $SEED_CHANGE)"
    "$BENCH_GEN" base "$BENCH_DIR/v1.img" --size "$SIZE" --seed "$SEED_BASE" >&2
    cp --sparse=always "$BENCH_DIR/v1.img" "$BENCH_DIR/v2.img"
    CHANGED_BYTES=$("$BENCH_GEN" change "$BENCH_DIR/v2.img" --percent "$CHANGE_PERCENT" \
        --seed "$SEED_CHANGE" --rbd-diff "$BENCH_DIR/change.rbd-diff" | sed -n 's/^changed_bytes=//p')
    V2_SHA=$(sha256sum "$BENCH_DIR/v2.img" | cut -d' ' -f1)
    log "changed_bytes=$CHANGED_BYTES"
}

# check_restored RUN SOURCE FILE: FILE's content must equal v2 and its
# data/hole map SOURCE's, within LAYOUT_TOLERANCE per differing region
# (sets SHA_OK[RUN] and LAYOUT[RUN]; the table counts the failures).
check_restored() {
    local run=$1 source=$2 file=$3
    [[ $(sha256sum "$file" | cut -d' ' -f1) == "$V2_SHA" ]] && SHA_OK[run]=1 || SHA_OK[run]=0
    LAYOUT[run]=$("$BENCH_GEN" compare-layout "$source" "$file" --tolerance "$LAYOUT_TOLERANCE" || true)
    log "restore layout: ${LAYOUT[run]}"
}

# ---- Ceph (bench/rbd.sh, bench/differential.sh) -----------------------------

# Checks CEPH_CONF and the rbd CLI, sets POOL, BACKUP_POOL and CEPH_ID.
setup_rbd() {
    [[ -n ${CEPH_CONF:-} && -r ${CEPH_CONF:-} ]] ||
        { echo "$SCRIPT: set CEPH_CONF to a readable ceph.conf" >&2; exit 2; }
    export CEPH_CONF
    POOL=${POOL:-volumes}
    BACKUP_POOL=${BACKUP_POOL:-backups}
    CEPH_ID=${CEPH_ID:-admin}
    setup_common
    command -v rbd >/dev/null || { echo "$SCRIPT: rbd CLI missing (apt-get install ceph-common)" >&2; exit 2; }
    setup_latency
    rbd ls "$POOL" >/dev/null && rbd ls "$BACKUP_POOL" >/dev/null
}

# With --latency MS, CEPH_CONF becomes a copy of the cluster's conf with the
# client latency profile of scripts/ceph-cluster.sh: the rbd CLI and
# blockback alike wait 0..MS ms for each OSD reply (the daemons, which read
# their own conf, are unaffected), so both sides pay the same network.
setup_latency() {
    CLUSTER_CONF=$CEPH_CONF
    # Named ceph.conf: Ceph takes the cluster name ($cluster in keyring
    # paths) from the conf file's name.
    local conf=$BENCH_DIR/latency-${LATENCY_MS}ms/ceph.conf
    mkdir -p "$(dirname "$conf")"
    "$ROOT/scripts/ceph-cluster.sh" client-conf "$CLUSTER_CONF" "$LATENCY_MS" >"$conf"
    CEPH_CONF=$conf
    export CEPH_CONF
    log "client latency profile: 0-$LATENCY_MS ms per OSD reply ($CEPH_CONF)"
}

# librbd's cache off for the rbd CLI too, as blockback runs it: with it on,
# writes are acknowledged from memory and a comparison measures nothing.
RBD_CLI_OPTS=(--rbd_cache=false)

r() { rbd --conf "$CEPH_CONF" --id "$CEPH_ID" "${RBD_CLI_OPTS[@]}" "$@"; }

# apply_change STREAM IMAGE [ARGS]: untimed setup, `rbd import-diff` of
# bench-gen's change stream with the cache on. The stream's records are in
# write order and overlap; without the cache, rbd import-diff into an image
# with snapshots lets overlapping writes land out of order (seen on Pacific:
# the image then differs from v2), while the cache serialises them.
apply_change() {
    local stream=$1 image=$2
    shift 2
    rbd --conf "$CEPH_CONF" --id "$CEPH_ID" --rbd_cache=true import-diff --no-progress "$@" \
        "$stream" "$image"
}

# One line for reports: the profile the numbers were taken under.
latency_note() {
    echo "client latency profile: 0-$LATENCY_MS ms per OSD reply (rbd_cache off on both sides)"
}

# Removes an image and its snapshots if it exists.
remove_image() {
    r info "$1" >/dev/null 2>&1 || return 0
    r snap purge --no-progress "$1"
    r rm --no-progress "$1"
}

# Runs two measurements in the order baseline, blockback on odd runs and the
# other way round on even runs, so cache and cluster warm-up favour neither.
in_turn() {
    local run=$1 baseline=$2 ours=$3
    if ((run % 2)); then "$baseline" "$run"; "$ours" "$run"; else "$ours" "$run"; "$baseline" "$run"; fi
}

# ---- reporting --------------------------------------------------------------

median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
        END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2];
              else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

max_of() { printf '%s\n' "$@" | sort -g | tail -n 1; }

plus() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a + b }'; }

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }'; }

verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r != "inf" && r <= t) ? "PASS" : "FAIL" }'; }

mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }

# row NAME BASELINE_LABEL BASELINE BLOCKBACK TARGET EXTRA [FORMATTER]: one
# table row; EXTRA is the last column (a number is formatted like the others).
row() {
    local name=$1 label=$2 base=$3 bb=$4 target=$5 borg=$6 fmt=${7:-secs} r
    r=$(ratio "$bb" "$base")
    printf '| %s | %s %s | %s | %s | <= %s | %s | %s |\n' "$name" "$label" \
        "$($fmt "$base")" "$($fmt "$bb")" "$r" "$target" "$(verdict "$r" "$target")" \
        "$([[ $borg =~ ^[0-9.]+$ ]] && $fmt "$borg" || echo "$borg")"
}

secs() { [[ $1 == - ]] && echo - || echo "$1 s"; }

rss_row() {
    local name=$1 kib=$2 r
    r=$(ratio "$kib" "$RSS_LIMIT_KIB")
    printf '| peak RSS, %s | limit 256 MiB | %s | %s | <= 1.0 | %s | - |\n' "$name" \
        "$(mib $((kib * 1024)))" "$r" "$(verdict "$r" 1.0)"
}

# The restore checks over all runs, as two rows.
check_rows() {
    local sha_fail=0 layout_fail=0 worst=0 run region
    for run in $(seq 1 "$RUNS"); do
        [[ ${SHA_OK[run]} == 1 ]] || sha_fail=$((sha_fail + 1))
        [[ ${LAYOUT[run]} == *layout=same* ]] || layout_fail=$((layout_fail + 1))
        region=$(sed -n 's/.*max_diff_run=\([0-9]*\).*/\1/p' <<<"${LAYOUT[run]}")
        ((${region:-0} > worst)) && worst=$region
    done
    printf '| restore sha256 = source | %s runs | %s failed | - | all equal | %s | - |\n' \
        "$RUNS" "$sha_fail" "$( ((sha_fail == 0)) && echo PASS || echo FAIL)"
    printf '| restore data/hole map = source | %s runs | %s failed, worst region %s B | - | each region <= %s | %s | - |\n' \
        "$RUNS" "$layout_fail" "$worst" "$LAYOUT_TOLERANCE" \
        "$( ((layout_fail == 0)) && echo PASS || echo FAIL)"
}

# Prints the saved report; exits 1 when it shows a missed target.
publish() {
    cat "$1"
    if grep -q '| FAIL |' "$1"; then exit 1; fi
}
