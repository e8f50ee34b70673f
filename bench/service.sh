#!/usr/bin/env bash
# bench/service.sh: `blockback serve` on loopback against the CLI, side by
# side in one run, RUNS times, medians (same style as bench/rbd.sh).
#
#   CEPH_CONF=/path/to/ceph.conf bench/service.sh [--size 1G] [--runs 3] [--keep]
#
# Rows:
#   8 incrementals   8 RBD volumes of SIZE, each changed by 2%, backed up
#                    through the API at once with max_running = 4  vs  the
#                    same 8 backups one after another with the CLI
#                    (target <= 0.5x the time)
#   API latency      200 concurrent list/show requests (two `ab`, all
#                    in flight at once) while 4 backups run, 5 such
#                    bursts a second apart: median p99 < 50 ms, no errors
#
# Each API round submits its 8 requests at once and is timed from the jobs'
# own records (first created -> last finished); the CLI round is the wall
# time of the 8 processes. Per round the notes give the CPU time of the
# service (or the CLI processes) and of the whole machine (/proc/stat).
#   service RSS      peak RSS of the service with 4 running jobs <= 512 MiB
#
# Environment: CEPH_CONF (required), CEPH_ID, POOL, BACKUP_POOL, BENCH_DIR,
# SKIP_BUILD as for bench/rbd.sh. Use a throwaway cluster: the script
# creates and removes bench-svc-* images. Everything it starts is stopped
# on exit; each wait is bounded.
#
# Results: a markdown table on stdout and in $BENCH_DIR/results-service.md;
# the exit status is 1 when any target is missed (2 on usage or setup errors).
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPT=service.sh
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
SIZE=1G
VOLUMES=8
CONCURRENCY=4
TARGET_CONCURRENT=0.5
REQUESTS=200
BURSTS=5
P99_LIMIT_MS=50
SERVICE_RSS_LIMIT_KIB=$((512 * 1024))
JOB_TIMEOUT=1800
TOKEN="bench-token-$$-$RANDOM"

SERVICE_PID=
stop_service() {
    [[ -n $SERVICE_PID ]] || return 0
    kill -TERM "$SERVICE_PID" 2>/dev/null || true
    for _ in $(seq 1 600); do kill -0 "$SERVICE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVICE_PID" 2>/dev/null || true
    SERVICE_PID=
}

remove_volumes() {
    local i
    for i in $(seq 1 "$VOLUMES"); do remove_image "$POOL/bench-svc-$i"; done
    # The chains' bases in the backup pool (named after the volume ids).
    if [[ -s $RUN_DIR/volume-ids ]]; then
        local id base
        while read -r id; do
            for base in $(r ls "$BACKUP_POOL" | grep "volume-$id" || true); do remove_image "$BACKUP_POOL/$base"; done
        done <"$RUN_DIR/volume-ids"
    fi
}

cleanup() {
    stop_service
    [[ $KEEP == 1 ]] || remove_volumes
}

# ---- the service ------------------------------------------------------------

client() { python3 "$ROOT/bench/service-client.py" "$URL" "$TOKEN" "$@"; }

api() { curl -sS --fail-with-body -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }

start_service() {
    PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    URL=http://127.0.0.1:$PORT
    printf 'bench admin %s\n' "$(printf %s "$TOKEN" | sha256sum | cut -d' ' -f1)" >"$RUN_DIR/tokens"
    cat >"$RUN_DIR/blockback.toml" <<EOF
listen = "127.0.0.1:$PORT"
store = "rbd:$BACKUP_POOL"
catalog = "$RUN_DIR/catalog.sqlite"
[jobs]
max_running = $CONCURRENCY
[logging]
filter = "info,blockback_server::jobs::progress=debug"
[auth]
tokens_file = "$RUN_DIR/tokens"
[clusters.default]
conf = "$CEPH_CONF"
id = "$CEPH_ID"
EOF
    "$BLOCKBACK" serve --config "$RUN_DIR/blockback.toml" 2>"$RUN_DIR/serve.log" &
    SERVICE_PID=$!
    for _ in $(seq 1 300); do
        curl -sf "$URL/api/v1/health/live" >/dev/null 2>&1 && return 0
        kill -0 "$SERVICE_PID" 2>/dev/null || { cat "$RUN_DIR/serve.log" >&2; exit 2; }
        sleep 0.1
    done
    echo "$SCRIPT: the service did not answer" >&2
    exit 2
}

# burst N PATH...: N GETs in flight at once, N / (number of PATHs) of each
# PATH, each PATH's sent by its own ApacheBench (`ab`, one connection per
# request, all opened at once); one line: answers, errors (failed or
# non-2xx), p50/p99/max in ms over all N, each request timed by ab from
# its connect to the end of its answer. ab is an event loop in C that
# costs ~15 ms of CPU for 200 requests here; curl's parallel mode took
# ~65 ms and an asyncio client more, and on 2 cores the client's CPU
# counted into every request it measured.
burst() {
    local count=$1 path i=0 pids=()
    shift
    for path in "$@"; do
        i=$((i + 1))
        ab -q -n $((count / $#)) -c $((count / $#)) -H "Authorization: Bearer $TOKEN" \
            -g "$RUN_DIR/burst-$i.tsv" "$URL$path" >"$RUN_DIR/burst-$i.txt" 2>&1 &
        pids+=($!)
    done
    for i in "${pids[@]}"; do wait "$i" || true; done
    awk '/^(Failed requests|Non-2xx responses):/ { errors += $NF }
        END { print errors + 0 }' "$RUN_DIR"/burst-*.txt >"$RUN_DIR/burst-errors"
    # -g columns: starttime, seconds, ctime, dtime, ttime (ms), wait.
    tail -q -n +2 "$RUN_DIR"/burst-*.tsv | cut -f5 | sort -g |
        awk -v errors="$(cat "$RUN_DIR/burst-errors")" '
            { ms[NR] = $1 }
            function pct(p,  i) { i = int(NR * p + 0.999); return ms[i < 1 ? 1 : i] }
            END { printf "answers=%d errors=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f\n", NR, errors, pct(0.5), pct(0.99), ms[NR] }'
    rm -f "$RUN_DIR"/burst-*
}

json_field() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }

# submit_all MODE N...: backups of volumes N... (mode MODE), sent at once;
# sets IDS to the job ids.
submit_all() {
    local mode=$1 i specs=()
    shift
    for i in "$@"; do specs+=("bench-svc-$i:$mode"); done
    mapfile -t IDS < <(client submit "${specs[@]}")
    ((${#IDS[@]} == $#)) || { echo "$SCRIPT: submitting backups failed" >&2; exit 2; }
}

# submit_and_wait MODE N...: submit_all and wait_jobs in one client process
# (one Python start fewer beside the jobs).
submit_and_wait() {
    local mode=$1 i specs=() out
    shift
    for i in "$@"; do specs+=("bench-svc-$i:$mode"); done
    out=$(client run "$JOB_TIMEOUT" "${specs[@]}") || exit 2
    mapfile -t IDS <<<"$out"
    ((${#IDS[@]} == $#)) || { echo "$SCRIPT: submitting backups failed" >&2; exit 2; }
}

# Waits until the given jobs are final; fails the run when one did not succeed.
wait_jobs() { client wait "$JOB_TIMEOUT" "$@" || exit 2; }

# ---- volumes and changes ----------------------------------------------------

make_volumes() {
    local i
    : >"$RUN_DIR/volume-ids"
    for i in $(seq 1 "$VOLUMES"); do
        remove_image "$POOL/bench-svc-$i"
        log "importing bench-svc-$i ($SIZE)"
        r import --no-progress "$BENCH_DIR/v1.img" "$POOL/bench-svc-$i"
        api -d "{\"name\": \"bench-svc-$i\", \"source\": \"rbd:$POOL/bench-svc-$i\"}" \
            "$URL/api/v1/volumes" | json_field '["id"]' >>"$RUN_DIR/volume-ids"
    done
}

# Writes a new 2% change (seed SEED) into every volume, only the changed extents.
change_all() {
    local seed=$1 i
    cp --sparse=always "$BENCH_DIR/v1.img" "$RUN_DIR/scratch.img"
    "$BENCH_GEN" change "$RUN_DIR/scratch.img" --percent "$CHANGE_PERCENT" --seed "$seed" \
        --rbd-diff "$RUN_DIR/change.rbd-diff" >/dev/null
    rm -f "$RUN_DIR/scratch.img"
    for i in $(seq 1 "$VOLUMES"); do
        apply_change "$RUN_DIR/change.rbd-diff" "$POOL/bench-svc-$i" 2>/dev/null ||
            apply_change "$RUN_DIR/change.rbd-diff" "$POOL/bench-svc-$i" --allow-shrink
    done
}

# ---- measurements -----------------------------------------------------------

through_api() {
    local run=$1 svc machine t start
    change_all $((1000 + 2 * run))
    log "run $run/$RUNS: $VOLUMES incrementals through the API, $CONCURRENCY at once"
    svc=$(proc_cpu_ticks "$SERVICE_PID")
    machine=$(cpu_busy_ticks)
    start=$(date +%s%N)
    submit_and_wait incremental $(seq 1 "$VOLUMES")
    printf '%s\n' "${IDS[@]}" >>"$RUN_DIR/api-jobs"
    t=$(client round "${IDS[@]}")
    T_API+=("$t")
    CPU_API+=("$t s (window $(awk -v ns=$(($(date +%s%N) - start)) 'BEGIN { printf "%.1f", ns / 1e9 }') s): service $(ticks_to_secs $(($(proc_cpu_ticks "$SERVICE_PID") - svc))) s CPU, machine $(ticks_to_secs $(($(cpu_busy_ticks) - machine))) s")
    log "API round: ${CPU_API[-1]}"
}

with_cli() {
    local run=$1 i start end machine
    change_all $((1001 + 2 * run))
    log "run $run/$RUNS: $VOLUMES incrementals with the CLI, one after another"
    : >"$RUN_DIR/cli-cpu"
    machine=$(cpu_busy_ticks)
    start=$(date +%s%N)
    for i in $(seq 1 "$VOLUMES"); do
        /usr/bin/time -a -o "$RUN_DIR/cli-cpu" -f '%U %S' \
            "$BLOCKBACK" --quiet --store "rbd:$BACKUP_POOL" --catalog "$RUN_DIR/catalog.sqlite" \
            --ceph-conf "$CEPH_CONF" --ceph-id "$CEPH_ID" --json backup create --incremental "rbd:$POOL/bench-svc-$i" >>"$RUN_DIR/cli-json"
    done
    end=$(date +%s%N)
    T_CLI+=("$(awk -v ns=$((end - start)) 'BEGIN { printf "%.3f", ns / 1e9 }')")
    CPU_CLI+=("${T_CLI[-1]} s: CLI $(awk '{ s += $1 + $2 } END { printf "%.1f", s }' "$RUN_DIR/cli-cpu") s CPU, machine $(ticks_to_secs $(($(cpu_busy_ticks) - machine))) s")
    log "CLI round: ${CPU_CLI[-1]}"
}

# BURSTS bursts of 200 list/show requests at once, a second apart, while 4
# full backups run; sets P99_MS and P50_MS (medians over the bursts, each
# burst's own in P99_ALL), ANSWERS and ERRORS (summed), RUNNING_DURING (jobs
# still running after the last burst), and SERVICE_RSS_KIB (the service's
# peak RSS, VmHWM). One burst lasts ~50 ms on this machine, so a single one
# is a single sample of the scheduler's luck; the median of several is
# what the other rows' medians of runs are.
latency_under_load() {
    local backup line i p99s=() p50s=()
    log "API latency: $BURSTS bursts of $REQUESTS concurrent requests while $CONCURRENCY backups run"
    submit_all full $(seq 1 "$CONCURRENCY")
    client running "$CONCURRENCY" 60 || exit 2
    backup=$(api "$URL/api/v1/backups?limit=1" | json_field '["items"][0]["id"]')
    ANSWERS=0
    ERRORS=0
    for ((i = 1; i <= BURSTS; i++)); do
        line=$(burst "$REQUESTS" "/api/v1/backups?limit=50" "/api/v1/backups/$backup")
        log "latency burst $i/$BURSTS: $line"
        ANSWERS=$((ANSWERS + $(sed -n 's/.*answers=\([0-9]*\).*/\1/p' <<<"$line")))
        ERRORS=$((ERRORS + $(sed -n 's/.*errors=\([0-9]*\).*/\1/p' <<<"$line")))
        p50s+=("$(sed -n 's/.*p50_ms=\([0-9.]*\).*/\1/p' <<<"$line")")
        p99s+=("$(sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' <<<"$line")")
        ((i == BURSTS)) || sleep 1
    done
    RUNNING_DURING=$(api "$URL/api/v1/jobs?state=running" | json_field '.__len__()')
    SERVICE_RSS_KIB=$(awk '/VmHWM/ { print $2 }' "/proc/$SERVICE_PID/status")
    P50_MS=$(median "${p50s[@]}")
    P99_MS=$(median "${p99s[@]}")
    P99_ALL="${p99s[*]}"
    wait_jobs "${IDS[@]}"
}

# Seconds per engine phase summed over all timed backups: the service's
# from its debug log (the incremental rounds' jobs), the CLI's from --json.
phase_sums() {
    python3 - "$RUN_DIR" <<'PY'
import collections, json, re, sys
run = sys.argv[1]
def show(sums):
    return ", ".join(f"{k} {v:.2f}" for k, v in sorted(sums.items(), key=lambda kv: -kv[1]))
jobs = set(open(f"{run}/api-jobs").read().split())
api = collections.Counter()
for line in open(f"{run}/serve.log"):
    m = re.search(r'job_id=([0-9a-f-]+).*phase done phase="?([a-z_ -]+?)"? seconds=([0-9.e-]+)', line)
    if m and m.group(1) in jobs:
        api[m.group(2)] += float(m.group(3))
cli = collections.Counter()
text, at, decoder = open(f"{run}/cli-json").read(), 0, json.JSONDecoder()
while text[at:].strip():
    shown, at = decoder.raw_decode(text, at + len(text[at:]) - len(text[at:].lstrip()))
    for k, v in shown.get("phases", {}).items():
        cli[k] += v
print(f"Engine phases, s summed over the timed backups (API jobs run 4 at once): API: {show(api)}; CLI: {show(cli)}.")
PY
}

report() {
    local api cli r
    api=$(median "${T_API[@]}")
    cli=$(median "${T_CLI[@]}")
    echo "Volumes: $VOLUMES x $SIZE (seed $SEED_BASE), $CHANGE_PERCENT% changed per round;" \
        "service max_running = $CONCURRENCY; medians of $RUNS runs; $(latency_note)."
    echo "API runs: ${T_API[*]} s; CLI runs: ${T_CLI[*]} s."
    echo "CPU per round (API, first created -> last finished): $(IFS=';'; echo "${CPU_API[*]}")."
    echo "CPU per round (CLI, wall): $(IFS=';'; echo "${CPU_CLI[*]}")."
    phase_sums || echo "(phase sums unavailable)"
    echo "Machine: $(nproc) cores, load at start $LOAD_START, at end $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
    echo '| benchmark | baseline | blockback serve | ratio | target | verdict | notes |'
    echo '|---|---|---|---|---|---|---|'
    r=$(ratio "$api" "$cli")
    printf '| %s incrementals, API with %s at once | CLI one after another %s s | %s s | %s | <= %s | %s | - |\n' \
        "$VOLUMES" "$CONCURRENCY" "$cli" "$api" "$r" "$TARGET_CONCURRENT" "$(verdict "$r" "$TARGET_CONCURRENT")"
    r=$(ratio "$P99_MS" "$P99_LIMIT_MS")
    printf '| p99 of %s concurrent list/show, %s jobs running (median of %s bursts) | limit %s ms | %s ms | %s | <= 1.0 | %s | p99s %s ms; %s answers, %s errors, p50 %s ms |\n' \
        "$REQUESTS" "$RUNNING_DURING" "$BURSTS" "$P99_LIMIT_MS" "$P99_MS" "$r" \
        "$( [[ $(verdict "$r" 1.0) == PASS && $ERRORS == 0 && $ANSWERS == $((REQUESTS * BURSTS)) ]] && echo PASS || echo FAIL)" "$P99_ALL" "$ANSWERS" "$ERRORS" "$P50_MS"
    r=$(ratio "$SERVICE_RSS_KIB" "$SERVICE_RSS_LIMIT_KIB")
    printf '| peak RSS of the service, %s running jobs | limit 512 MiB | %s | %s | <= 1.0 | %s | - |\n' \
        "$CONCURRENCY" "$(mib $((SERVICE_RSS_KIB * 1024)))" "$r" "$(verdict "$r" 1.0)"
}

main() {
    parse_args "$@"
    command -v ab >/dev/null || { echo "$SCRIPT: ApacheBench missing (apt-get install apache2-utils)" >&2; exit 2; }
    setup_rbd
    RUN_DIR=$BENCH_DIR/service-run
    rm -rf "$RUN_DIR"
    mkdir -p "$RUN_DIR"
    trap cleanup EXIT
    trap 'exit 2' INT TERM
    generate
    start_service
    make_volumes
    log "full backups of the $VOLUMES volumes (setup, not timed)"
    local run
    submit_all full $(seq 1 "$VOLUMES")
    wait_jobs "${IDS[@]}"
    T_API=()
    T_CLI=()
    CPU_API=()
    CPU_CLI=()
    LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
    for run in $(seq 1 "$RUNS"); do in_turn "$run" with_cli through_api; done
    latency_under_load
    report | tee "$BENCH_DIR/results-service.md" >/dev/null
    publish "$BENCH_DIR/results-service.md"
}

main "$@"
