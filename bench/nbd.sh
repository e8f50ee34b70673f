#!/usr/bin/env bash
# bench/nbd.sh: serving a backup over NBD, side by side with a restore of
# the same backup in one run, RUNS times each, medians.
#
#   bench/nbd.sh [--size 1G] [--runs 3] [--keep]
#
# Rows:
#   sequential read   nbdcopy of the export to a file  vs  `backup restore`
#                     of the backup to a new file; target ratio <= 1.2
#   random 4 KiB read fio (nbd engine, one job, queue depth 1, 10 s) on the
#                     export: p50 and p99 completion latency
#   first byte        from starting `blockback nbd` to the first 4 KiB read
#                     answered (qemu-io retried until it connects; includes
#                     qemu-io's own start); target < 0.5 s
#
# The image is half random data, half holes, in a local store (--size,
# default 1G). Needs libnbd-bin, qemu-utils and fio (apt-get install).
# Environment: BENCH_DIR (default bench/out), BLOCKBACK (default: a release
# build), SKIP_BUILD=1.
set -Eeuo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPT=nbd.sh
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
SIZE=1G
TARGET_SEQ=1.2
TARGET_TTFB=0.5

setup() {
    for tool in nbdcopy nbdinfo qemu-io fio; do
        command -v "$tool" >/dev/null ||
            { echo "$SCRIPT: $tool missing (apt-get install libnbd-bin qemu-utils fio)" >&2; exit 2; }
    done
    setup_common
    RUN_DIR=$BENCH_DIR/nbd-run
    rm -rf "$RUN_DIR"
    mkdir -p "$RUN_DIR"
    BB=("$BLOCKBACK" --store "$RUN_DIR/store" --catalog "$RUN_DIR/catalog.db")
    SOCK=$RUN_DIR/nbd.sock
    SERVER_PID=
    trap cleanup EXIT
}

cleanup() {
    stop_server
    ((KEEP)) || rm -rf "$RUN_DIR"
}

stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}

# Half data, half holes: random 8 MiB extents every 16 MiB.
make_source() {
    local bytes mib i
    bytes=$(numfmt --from=iec "$SIZE")
    mib=$((bytes / 1048576))
    truncate -s "$bytes" "$RUN_DIR/src.img"
    for ((i = 0; i + 8 <= mib; i += 16)); do
        head -c 8M /dev/urandom | dd of="$RUN_DIR/src.img" bs=1M seek="$i" conv=notrunc status=none
    done
    ID=$("${BB[@]}" --json backup create "$RUN_DIR/src.img" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')
    URI="nbd+unix:///$ID?socket=$SOCK"
}

start_server() {
    "${BB[@]}" nbd "$ID" --listen "unix:$SOCK" >/dev/null 2>"$RUN_DIR/server.log" &
    SERVER_PID=$!
}

now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc -l; }

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

time_restore() {
    rm -f "$RUN_DIR/restored.img"
    local t; t=$(now)
    "${BB[@]}" --quiet backup restore "$ID" "$RUN_DIR/restored.img" >/dev/null
    elapsed "$t"
}

time_nbdcopy() {
    rm -f "$RUN_DIR/copied.img"
    local t; t=$(now)
    nbdcopy "$URI" "$RUN_DIR/copied.img"
    elapsed "$t"
}

time_first_byte() {
    local t; t=$(now)
    start_server
    until qemu-io -f raw -r -c 'read 0 4k' "$URI" >/dev/null 2>&1; do :; done
    elapsed "$t"
    stop_server
}

# fio's completion latency percentiles (microseconds): "p50 p99".
random_reads() {
    fio --name=randread --ioengine=nbd --uri="$URI" --rw=randread --bs=4k \
        --iodepth=1 --runtime=10 --time_based --output-format=json 2>/dev/null |
        python3 -c '
import json, sys
# fio'"'"'s nbd engine prints "fio: connected to NBD server" on stdout first.
text = sys.stdin.read()
p = json.loads(text[text.index("{"):])["jobs"][0]["read"]["clat_ns"]["percentile"]
print("%.0f %.0f" % (p["50.000000"] / 1000, p["99.000000"] / 1000))'
}

main() {
    parse_args "$@"
    setup
    log "making a $SIZE source (half data) and backing it up"
    make_source
    local restore=() copy=() ttfb=() lat=() r
    for ((r = 1; r <= RUNS; r++)); do
        log "run $r/$RUNS"
        restore+=("$(time_restore)")
        start_server
        until nbdinfo --size "$URI" >/dev/null 2>&1; do sleep 0.05; done
        copy+=("$(time_nbdcopy)")
        cmp -s "$RUN_DIR/copied.img" "$RUN_DIR/src.img" || { echo "$SCRIPT: nbdcopy differs from the source" >&2; exit 1; }
        lat+=("$(random_reads)")
        stop_server
        ttfb+=("$(time_first_byte)")
    done
    local mr mc mt p50 p99
    mr=$(printf '%s\n' "${restore[@]}" | median)
    mc=$(printf '%s\n' "${copy[@]}" | median)
    mt=$(printf '%s\n' "${ttfb[@]}" | median)
    p50=$(printf '%s\n' "${lat[@]}" | awk '{ print $1 }' | median)
    p99=$(printf '%s\n' "${lat[@]}" | awk '{ print $2 }' | median)
    echo
    echo "bench/nbd.sh: $SIZE image (half data), local store, $RUNS runs, medians; $(nproc) cores"
    echo
    echo "| row | blockback nbd | baseline | ratio | target |"
    echo "|---|---|---|---|---|"
    printf '| sequential read (nbdcopy vs backup restore) | %.2f s | %.2f s | %.2f | <= %s |\n' \
        "$mc" "$mr" "$(echo "$mc / $mr" | bc -l)" "$TARGET_SEQ"
    printf '| random 4 KiB read, QD1 (fio nbd) | p50 %s us, p99 %s us | | | reported |\n' "$p50" "$p99"
    printf '| time to first byte (start to first 4 KiB read) | %.3f s | | | < %s s |\n' "$mt" "$TARGET_TTFB"
}

main "$@"
