#!/usr/bin/env bash
# bench/scale.sh: one `blockback serve` worker against two on one PostgreSQL
# catalog and one Ceph cluster (issue 13), side by side in one run, RUNS
# times, medians (same style as bench/service.sh).
#
#   bench/scale.sh [--size 1G] [--volumes 16] [--runs 3] [--keep]
#
# Rows:
#   incrementals   VOLUMES RBD volumes of SIZE, each changed by 2%, backed up
#                  through the API with max_running = CONCURRENCY per worker:
#                  worker w1 alone  vs  w1 and w2 (requests split between
#                  their APIs); throughput ratio two/one (target >= 1.0 on
#                  this 2-core machine: correctness and no slowdown). A
#                  round's requests are all sent at once; its time is taken
#                  from the job records, from the first job created to the
#                  last one finished (so neither the requests nor the
#                  polling are timed).
#   checks         every job succeeded exactly once, never two at once on
#                  one volume (from the jobs' start and end times)
#
# Both workers run on this host, each with its own state_dir, as on two
# hosts: a worker continues a chain the other one grew by fetching the
# parent's block digests from the store (docs/design.md).
#
# It starts its own throwaway Ceph cluster and PostgreSQL server under
# BENCH_DIR and removes both at the end (bench clusters' OSD files never
# shrink), unless CEPH_CONF / POSTGRES_URL name existing ones (then it
# only removes its bench-scale-* images). Everything it starts is stopped
# on exit; each wait is bounded (JOB_TIMEOUT per round).
#
# Environment: CEPH_CONF, POSTGRES_URL (optional, see above), CONCURRENCY
# (per worker, default 2), BENCH_DIR, SKIP_BUILD as for bench/rbd.sh.
#
# Results: a markdown table on stdout and in $BENCH_DIR/results-scale.md;
# the exit status is 1 when a target or check is missed (2 on usage or
# setup errors).
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPT=scale.sh
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
SIZE=1G
VOLUMES=16
CONCURRENCY=${CONCURRENCY:-2}
TARGET_RATIO=1.0
JOB_TIMEOUT=1800
TOKEN="bench-token-$$-$RANDOM"
OWN_CEPH=
OWN_PG=

scale_args() {
    local rest=()
    while [[ $# -gt 0 ]]; do
        case $1 in
            --volumes) VOLUMES=${2:?--volumes needs a value}; shift 2 ;;
            *) rest+=("$1"); shift ;;
        esac
    done
    [[ $VOLUMES =~ ^[1-9][0-9]*$ ]] || { echo "$SCRIPT: --volumes must be a positive integer" >&2; exit 2; }
    parse_args "${rest[@]}"
}

# ---- cluster, catalog, workers ------------------------------------------------

start_backends() {
    BENCH_DIR=$(mkdir -p "${BENCH_DIR:-$ROOT/bench/out}" && cd "${BENCH_DIR:-$ROOT/bench/out}" && pwd)
    if [[ -z ${CEPH_CONF:-} ]]; then
        OWN_CEPH=$BENCH_DIR/scale-ceph
        log "starting a throwaway Ceph cluster in $OWN_CEPH"
        CEPH_CONF=$("$ROOT/scripts/ceph-cluster.sh" start "$OWN_CEPH" | tail -n 1)
    fi
    if [[ -z ${POSTGRES_URL:-} ]]; then
        OWN_PG=$BENCH_DIR/scale-pg
        log "starting a throwaway PostgreSQL in $OWN_PG"
        POSTGRES_URL=$("$ROOT/scripts/postgres.sh" start "$OWN_PG" | tail -n 1)
    fi
}

declare -A PIDS=() URLS=()

start_worker() {
    local name=$1 port
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    URLS[$name]=http://127.0.0.1:$port
    mkdir -p "$RUN_DIR/$name"
    cat >"$RUN_DIR/$name/blockback.toml" <<EOF
listen = "127.0.0.1:$port"
store = "rbd:$BACKUP_POOL"
catalog = "$CATALOG_URL"
state_dir = "$RUN_DIR/$name/state"
worker_id = "$name"
[jobs]
max_running = $CONCURRENCY
[auth]
tokens_file = "$RUN_DIR/tokens"
[clusters.default]
conf = "$CEPH_CONF"
id = "$CEPH_ID"
EOF
    "$BLOCKBACK" serve --config "$RUN_DIR/$name/blockback.toml" 2>>"$RUN_DIR/$name/serve.log" &
    PIDS[$name]=$!
    for _ in $(seq 1 300); do
        curl -sf "${URLS[$name]}/api/v1/health/live" >/dev/null 2>&1 && return 0
        kill -0 "${PIDS[$name]}" 2>/dev/null || { cat "$RUN_DIR/$name/serve.log" >&2; exit 2; }
        sleep 0.1
    done
    echo "$SCRIPT: worker $name did not answer" >&2
    exit 2
}

stop_worker() {
    local name=$1 pid=${PIDS[$1]:-}
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 600); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    PIDS[$name]=
}

remove_volumes() {
    local i id base
    for i in $(seq 1 "$VOLUMES"); do remove_image "$POOL/bench-scale-$i"; done
    if [[ -s $RUN_DIR/volume-ids ]]; then
        while read -r id; do
            for base in $(r ls "$BACKUP_POOL" | grep "volume-$id" || true); do remove_image "$BACKUP_POOL/$base"; done
        done <"$RUN_DIR/volume-ids"
    fi
}

cleanup() {
    stop_worker w2
    stop_worker w1
    if [[ -n $OWN_CEPH ]]; then
        log "removing the throwaway Ceph cluster"
        "$ROOT/scripts/ceph-cluster.sh" stop "$OWN_CEPH" >/dev/null 2>&1 || true
        rm -rf "$OWN_CEPH"
    elif [[ $KEEP != 1 && -n ${RUN_DIR:-} ]]; then
        remove_volumes
    fi
    if [[ -n $OWN_PG ]]; then
        "$ROOT/scripts/postgres.sh" stop "$OWN_PG" >/dev/null 2>&1 || true
        rm -rf "$OWN_PG"
    fi
    [[ $KEEP == 1 || -z ${BENCH_DIR:-} ]] || rm -f "$BENCH_DIR/v1.img" "$BENCH_DIR/v2.img" "$BENCH_DIR/change.rbd-diff"
}

# A schema of its own on the server, so earlier runs' jobs do not count.
fresh_catalog() {
    local schema=bench_scale_$$_$RANDOM sep='?'
    psql "$POSTGRES_URL" -qAt -c "CREATE SCHEMA $schema" >/dev/null
    [[ $POSTGRES_URL == *\?* ]] && sep='&'
    CATALOG_URL="$POSTGRES_URL${sep}options=-csearch_path%3D$schema"
}

# ---- the API ----------------------------------------------------------------

api() { curl -sS --fail-with-body -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }

json_field() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }

# submit_all MODE WORKERS...: queues a backup of every volume, round robin
# through the workers' APIs, all requests at once; prints the job ids.
submit_all() {
    local mode=$1 workers=("${@:2}") i pids=() pid
    rm -rf "$RUN_DIR/submit"
    mkdir -p "$RUN_DIR/submit"
    for i in $(seq 1 "$VOLUMES"); do
        api -d "{\"volume\": \"bench-scale-$i\", \"mode\": \"$mode\"}" \
            "${URLS[${workers[$(((i - 1) % ${#workers[@]}))]}]}/api/v1/backups" >"$RUN_DIR/submit/$i" &
        pids+=($!)
    done
    for pid in "${pids[@]}"; do
        wait "$pid" || { cat "$RUN_DIR"/submit/* >&2; echo "$SCRIPT: a backup request failed" >&2; exit 2; }
    done
    python3 -c 'import json, sys; [print(json.load(open(f))["id"]) for f in sys.argv[1:]]' "$RUN_DIR"/submit/*
}

# jobs_query FILE IDS...: what the job list in FILE says of the jobs IDS:
# "failed", "done" (all succeeded) or "waiting"; with SPAN=1 instead the
# seconds from the first one created to the last one finished.
jobs_query() {
    python3 - "$@" <<'PY'
import json, os, sys
jobs = json.load(open(sys.argv[1]))
jobs = jobs["items"] if isinstance(jobs, dict) else jobs
by_id = {j["id"]: j for j in jobs}
mine = [by_id.get(i, {}) for i in sys.argv[2:]]
states = [j.get("state") for j in mine]
if os.environ.get("SPAN") == "1":
    print("%.3f" % (max(j["finished_at"] for j in mine) - min(j["created_at"] for j in mine)))
elif any(s in ("failed", "cancelled") for s in states):
    print("failed")
else:
    print("done" if all(s == "succeeded" for s in states) else "waiting")
PY
}

# wait_jobs IDS...: polls the job list (once a second: the timing comes
# from the job records, not from here) until every job succeeded; leaves
# the last list in $RUN_DIR/jobs-now.json.
wait_jobs() {
    local deadline=$((SECONDS + JOB_TIMEOUT)) state
    while :; do
        api "${URLS[w1]}/api/v1/jobs" >"$RUN_DIR/jobs-now.json"
        state=$(jobs_query "$RUN_DIR/jobs-now.json" "$@")
        [[ $state == done ]] && return 0
        [[ $state == failed ]] && { cat "$RUN_DIR/jobs-now.json" >&2; echo "$SCRIPT: a job failed" >&2; exit 2; }
        ((SECONDS < deadline)) || { echo "$SCRIPT: jobs did not finish in ${JOB_TIMEOUT}s" >&2; exit 2; }
        sleep 1
    done
}

# ---- volumes and changes ----------------------------------------------------

make_volumes() {
    local i
    : >"$RUN_DIR/volume-ids"
    for i in $(seq 1 "$VOLUMES"); do
        remove_image "$POOL/bench-scale-$i"
        log "importing bench-scale-$i ($SIZE)"
        r import --no-progress "$BENCH_DIR/v1.img" "$POOL/bench-scale-$i"
        api -d "{\"name\": \"bench-scale-$i\", \"source\": \"rbd:$POOL/bench-scale-$i\"}" \
            "${URLS[w1]}/api/v1/volumes" | json_field '["id"]' >>"$RUN_DIR/volume-ids"
    done
}

# Writes a new 2% change (seed SEED) into every volume, only the changed extents.
change_all() {
    local seed=$1 i
    cp --sparse=always "$BENCH_DIR/v1.img" "$RUN_DIR/scratch.img"
    CHANGED=$("$BENCH_GEN" change "$RUN_DIR/scratch.img" --percent "$CHANGE_PERCENT" --seed "$seed" \
        --rbd-diff "$RUN_DIR/change.rbd-diff" | sed -n 's/^changed_bytes=//p')
    rm -f "$RUN_DIR/scratch.img"
    for i in $(seq 1 "$VOLUMES"); do
        r import-diff --no-progress "$RUN_DIR/change.rbd-diff" "$POOL/bench-scale-$i" 2>/dev/null ||
            r import-diff --no-progress --allow-shrink "$RUN_DIR/change.rbd-diff" "$POOL/bench-scale-$i"
    done
}

# ---- measurements -----------------------------------------------------------

# round RUN LABEL WORKERS...: a 2% change, then VOLUMES incrementals sent
# at once, round robin through the given workers' APIs; appends the
# seconds (job records: first created to last finished) and MiB/s.
round() {
    local run=$1 label=$2 ids=() secs workers=("${@:3}")
    change_all $((1000 + ROUND))
    ROUND=$((ROUND + 1))
    log "run $run/$RUNS: $VOLUMES incrementals with $label"
    mapfile -t ids < <(submit_all incremental "${workers[@]}")
    ((${#ids[@]} == VOLUMES)) || { echo "$SCRIPT: ${#ids[@]} jobs queued, not $VOLUMES" >&2; exit 2; }
    wait_jobs "${ids[@]}"
    printf '%s\n' "${ids[@]}" >>"$RUN_DIR/jobs-$label"
    secs=$(SPAN=1 jobs_query "$RUN_DIR/jobs-now.json" "${ids[@]}")
    log "run $run/$RUNS: $label took $secs s"
    eval "T_$label+=($secs)"
    eval "R_$label+=($(awk -v b="$CHANGED" -v n="$VOLUMES" -v s="$secs" 'BEGIN { printf "%.1f", b * n / 1048576 / s }'))"
}

one_worker() { stop_worker w2; round "$1" one w1; }

two_workers() {
    [[ -n ${PIDS[w2]:-} ]] || start_worker w2
    round "$1" two w1 w2
}

# Every job of the runs: succeeded once, never two at once on one volume;
# which workers ran the two-worker rounds' jobs. Sets CHECK and WORKERS_SEEN.
check_jobs() {
    api "${URLS[w1]}/api/v1/jobs" >"$RUN_DIR/jobs.json"
    read -r CHECK WORKERS_SEEN < <(python3 - "$RUN_DIR/jobs.json" "$RUN_DIR/jobs-two" "$RUN_DIR/jobs-one" <<'EOF'
import json, sys
jobs = json.load(open(sys.argv[1]))
jobs = jobs["items"] if isinstance(jobs, dict) else jobs
by_id = {j["id"]: j for j in jobs}
wanted = [l.strip() for f in sys.argv[2:] for l in open(f) if l.strip()]
problems = [i for i in wanted if by_id.get(i, {}).get("state") != "succeeded"]
by_volume = {}
for j in jobs:
    if j.get("started_at") is not None and j.get("finished_at") is not None:
        by_volume.setdefault(j["volume_id"], []).append((j["started_at"], j["finished_at"]))
overlaps = 0
for spans in by_volume.values():
    spans.sort()
    overlaps += sum(1 for a, b in zip(spans, spans[1:]) if b[0] < a[1])
two = [l.strip() for l in open(sys.argv[2]) if l.strip()]
seen = sorted({by_id[i]["worker"] for i in two if i in by_id and by_id[i].get("worker")})
ok = "PASS" if not problems and overlaps == 0 else "FAIL"
print(f"{ok}:{len(wanted)}-jobs,{len(problems)}-not-succeeded,{overlaps}-overlaps", ",".join(seen) or "-")
EOF
    )
}

report() {
    local one two r_one r_two r
    one=$(median "${T_one[@]}")
    two=$(median "${T_two[@]}")
    r_one=$(median "${R_one[@]}")
    r_two=$(median "${R_two[@]}")
    r=$(awk -v a="$r_two" -v b="$r_one" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }')
    echo "Volumes: $VOLUMES x $SIZE (seed $SEED_BASE), $CHANGE_PERCENT% changed per round ($CHANGED B each);" \
        "max_running = $CONCURRENCY per worker; medians of $RUNS runs; one PostgreSQL catalog, loopback test cluster;" \
        "each round's requests sent at once and timed from the job records (first created to last finished);" \
        "each worker has its own state_dir."
    echo "One worker: ${T_one[*]} s; two workers: ${T_two[*]} s."
    echo
    echo '| benchmark | one worker | two workers | ratio (two/one throughput) | target | verdict | notes |'
    echo '|---|---|---|---|---|---|---|'
    printf '| %s incrementals of %s | %s s, %s MiB/s | %s s, %s MiB/s | %s | >= %s | %s | two-worker jobs ran on %s |\n' \
        "$VOLUMES" "$SIZE" "$one" "$r_one" "$two" "$r_two" "$r" "$TARGET_RATIO" \
        "$(awk -v r="$r" -v t="$TARGET_RATIO" 'BEGIN { print (r != "inf" && r >= t) ? "PASS" : "FAIL" }')" "$WORKERS_SEEN"
    printf '| each job once, one per volume at a time | - | - | - | all | %s | %s |\n' \
        "${CHECK%%:*}" "${CHECK#*:}"
}

main() {
    scale_args "$@"
    trap cleanup EXIT
    trap 'exit 2' INT TERM
    command -v psql >/dev/null || { echo "$SCRIPT: psql missing (scripts/postgres.sh install)" >&2; exit 2; }
    start_backends
    setup_rbd
    RUN_DIR=$BENCH_DIR/scale-run
    rm -rf "$RUN_DIR"
    mkdir -p "$RUN_DIR"
    printf 'bench admin %s\n' "$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)" >"$RUN_DIR/tokens"
    fresh_catalog
    generate
    start_worker w1
    make_volumes
    log "full backups of the $VOLUMES volumes (setup, not timed)"
    local ids=() run
    mapfile -t ids < <(submit_all full w1)
    wait_jobs "${ids[@]}"
    T_one=() T_two=() R_one=() R_two=() ROUND=0
    : >"$RUN_DIR/jobs-one"
    : >"$RUN_DIR/jobs-two"
    for run in $(seq 1 "$RUNS"); do in_turn "$run" one_worker two_workers; done
    check_jobs
    report | tee "$BENCH_DIR/results-scale.md" >/dev/null
    publish "$BENCH_DIR/results-scale.md"
}

main "$@"
