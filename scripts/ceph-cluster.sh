#!/usr/bin/env bash
# A throwaway single-node Ceph cluster for blockback's tests and benchmarks.
#
#   ceph-cluster.sh install     install the Debian packages when missing
#   ceph-cluster.sh start DIR   start (or reuse) a cluster living entirely in DIR;
#                               the last line on stdout is the ceph.conf path
#   ceph-cluster.sh stop DIR    stop its daemons (by pid) and wait for them
#   ceph-cluster.sh down DIR    kill its daemons at once (SIGKILL, an outage),
#                               keeping all data
#   ceph-cluster.sh client-conf CONF MS
#                               print CONF with the client latency profile of
#                               MS milliseconds (0: none) in place of any
#                               profile it had (for benches on any cluster)
#   ceph-cluster.sh up DIR      restart the daemons of a stopped or downed
#                               cluster on its data (same fsid, mon store, OSD);
#                               the last line on stdout is the ceph.conf path
#                               (the monitor's port must still be free: a
#                               cluster started meanwhile may have taken it)
#
# One monitor on 127.0.0.1 (port outside the OSD range 6800-7300), one
# bluestore OSD on a sparse file, pools `volumes` and `backups`, cephx on,
# no mgr. Conf, keyrings, run dir, logs, sockets and pids all live in DIR.
# Users: client.admin (DIR/ceph.client.admin.keyring) and client.blockback
# (DIR/ceph.client.blockback.keyring, rbd caps on both pools).
#
# Environment: CEPH_MON_PORT (default: first free port from 16789; the
# choice and the monitor's bind happen under a machine-wide lock, so
# clusters started at the same time never pick the same port),
# CEPH_BLOCK_SIZE_GB (default 30), CEPH_START_TIMEOUT seconds (default 120),
# CEPH_CLIENT_LATENCY_MS (default unset: no delay): every client of the
# cluster (rbd, ceph, librbd in blockback) waits a uniform 0..MS ms for each
# OSD reply, as on a networked cluster; the daemons are unaffected. `start`
# and `up` write it into DIR/ceph.conf (or take it out when unset), also for
# a cluster already running: clients read the conf when they connect.
set -euo pipefail

PACKAGES=(ceph-mon ceph-osd ceph-common)
POOLS=(volumes backups)
BLOCK_GB=${CEPH_BLOCK_SIZE_GB:-30}
TIMEOUT=${CEPH_START_TIMEOUT:-120}

log() { echo "ceph-cluster: $*" >&2; }

# The client latency profile lives between these lines of a ceph.conf.
LATENCY_BEGIN='# >>> client latency profile (ceph-cluster.sh)'
LATENCY_END='# <<< client latency profile'

# latency_section MS: the [client] section delaying each OSD reply by a
# uniform 0..MS ms (messenger delay injection on the receiving side).
latency_section() {
    local ms=$1
    [[ $ms =~ ^[0-9]+([.][0-9]+)?$ ]] || die "latency must be a number of milliseconds, got '$ms'"
    awk -v ms="$ms" 'BEGIN { exit !(ms > 0) }' || return 0
    echo "$LATENCY_BEGIN"
    echo "[client]"
    echo "ms inject delay type = osd"
    echo "ms inject delay probability = 1"
    echo "ms inject delay max = $(awk -v ms="$ms" 'BEGIN { printf "%g", ms / 1000 }')"
    echo "$LATENCY_END"
}

# with_latency CONF MS: CONF's text without its latency profile, plus the
# profile for MS (none for 0).
with_latency() {
    local file=$1 ms=$2 section
    section=$(latency_section "$ms")
    awk -v b="$LATENCY_BEGIN" -v e="$LATENCY_END" '
        $0 == b { skip = 1; next }
        $0 == e { skip = 0; next }
        !skip' "$file"
    [[ -z $section ]] || printf '%s\n' "$section"
}

# Rewrites DIR/ceph.conf with the profile CEPH_CLIENT_LATENCY_MS asks for.
apply_latency() {
    local ms=${CEPH_CLIENT_LATENCY_MS:-0} text
    text=$(with_latency "$(conf)" "$ms") || exit 1
    printf '%s\n' "$text" >"$(conf).tmp" && mv "$(conf).tmp" "$(conf)"
    [[ $ms == 0 ]] || log "client latency profile: 0-${ms} ms per OSD reply"
}

cmd_client_conf() {
    [[ -r $1 ]] || die "cannot read $1"
    with_latency "$1" "$2"
}

die() {
    log "FAILED: $*"
    dump_logs
    # A half-started cluster would hold its ports and files: stop it.
    if [[ "${STARTING:-0}" == 1 ]]; then
        STARTING=0
        cmd_stop || true
    fi
    exit 1
}

# Shows what the daemons said; the usual reason a start fails.
dump_logs() {
    [[ -n "${DIR:-}" && -d "${DIR}/log" ]] || return 0
    local f
    for f in "$DIR"/log/*.log; do
        [[ -f "$f" ]] || continue
        echo "----- tail of $f -----" >&2
        tail -n 40 "$f" >&2 || true
    done
}

usage() {
    echo "usage: $0 install | start DIR | stop DIR | down DIR | up DIR | client-conf CONF MS" >&2
    exit 2
}

cmd_install() {
    if have_packages; then
        log "packages already installed"
        return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    # Only refresh the index when a plain install fails (no network for that
    # otherwise, and it is slow).
    if ! apt-get install -y --no-install-recommends "${PACKAGES[@]}" >&2; then
        apt-get update >&2
        apt-get install -y --no-install-recommends "${PACKAGES[@]}" >&2
    fi
    have_packages || die "packages installed but tools still missing"
}

have_packages() {
    local tool
    for tool in ceph-mon ceph-osd ceph rbd ceph-authtool monmaptool; do
        command -v "$tool" >/dev/null 2>&1 || return 1
    done
    # Not `ldconfig -p | grep -q`: grep exits at the first match, ldconfig
    # then dies of SIGPIPE and pipefail turns that into a spurious failure.
    local libs
    libs=$(ldconfig -p)
    grep -q 'librbd\.so\.1' <<<"$libs" && grep -q 'librados\.so\.2' <<<"$libs"
}

# --- helpers bound to DIR ----------------------------------------------------

conf() { echo "$DIR/ceph.conf"; }

# ceph/rbd as client.admin, never hanging forever.
c_ceph() { timeout 60 ceph -c "$(conf)" --connect-timeout 30 "$@"; }
c_rbd() { timeout 60 rbd -c "$(conf)" "$@"; }

pid_alive() {
    local pidfile=$1 pid
    [[ -f "$pidfile" ]] || return 1
    pid=$(cat "$pidfile" 2>/dev/null) || return 1
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Held from choosing a free port until the monitor listens on it.
PORT_LOCK=/tmp/blockback-ceph-port.lock

lock_ports() {
    exec 9>>"$PORT_LOCK"
    flock -w "$TIMEOUT" 9 || die "timed out waiting for $PORT_LOCK"
}

unlock_ports() { exec 9>&-; }

pick_port() {
    if [[ -n "${CEPH_MON_PORT:-}" ]]; then
        echo "$CEPH_MON_PORT"
        return
    fi
    local p
    for ((p = 16789; p < 16889; p++)); do
        if ! port_in_use "$p"; then
            echo "$p"
            return
        fi
    done
    die "no free monitor port in 16789-16888"
}

# Waits until "$@" succeeds or TIMEOUT passes.
wait_for() {
    local what=$1
    shift
    local deadline=$((SECONDS + TIMEOUT))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "timed out after ${TIMEOUT}s waiting for $what"
        sleep 1
    done
}

write_conf() {
    local fsid=$1 port=$2
    cat >"$(conf)" <<EOF
[global]
fsid = $fsid
mon host = 127.0.0.1:$port
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind ipv6 = false
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
keyring = $DIR/\$cluster.\$name.keyring
run dir = $DIR/run
admin socket = $DIR/run/\$name.asok
pid file = $DIR/run/\$name.pid
log file = $DIR/log/\$name.log
osd pool default size = 1
osd pool default min size = 1
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool delete = true
mon allow pool size one = true
mon warn on pool no redundancy = false

[mon]
mon data = $DIR/\$name
keyring = \$mon_data/keyring
paxos propose interval = 0.05
# A throwaway cluster on a shared disk: the monitor must not refuse to start
# because the host's file system is below 5% free (its default guard).
mon data avail crit = 0

[osd]
osd data = $DIR/\$name
keyring = \$osd_data/keyring
osd objectstore = bluestore
# Outside the osd data dir (inside it fails with ELOOP).
bluestore block path = $DIR/\$name.block
bluestore block create = false
osd memory target = 1073741824
EOF
}

make_keys() {
    ceph-authtool --create-keyring "$DIR/ceph.mon.keyring" --gen-key -n mon. \
        --cap mon 'allow *' >&2
    ceph-authtool --create-keyring "$DIR/ceph.client.admin.keyring" --gen-key \
        -n client.admin --cap mon 'allow *' --cap osd 'allow *' \
        --cap mds 'allow *' --cap mgr 'allow *' >&2
    ceph-authtool "$DIR/ceph.mon.keyring" \
        --import-keyring "$DIR/ceph.client.admin.keyring" >&2
}

start_mon() {
    local fsid=$1 port=$2
    monmaptool --create --add a "127.0.0.1:$port" --fsid "$fsid" "$DIR/monmap" >&2
    ceph-mon -c "$(conf)" --mkfs -i a --monmap "$DIR/monmap" \
        --keyring "$DIR/ceph.mon.keyring" >&2 || die "ceph-mon --mkfs"
    # 9>&-: the daemon must not keep the port lock open.
    ceph-mon -c "$(conf)" -i a >&2 9>&- || die "ceph-mon start"
    wait_for "the monitor to answer" c_ceph mon stat
}

start_osd() {
    local uuid id
    uuid=$(cat /proc/sys/kernel/random/uuid)
    id=$(c_ceph osd create "$uuid") || die "ceph osd create"
    [[ "$id" == 0 ]] || die "expected osd id 0, got '$id'"
    mkdir -p "$DIR/osd.0"
    # Sparse: costs only what is written. Big, because with no mgr nothing
    # sets full flags and an OSD whose device fills up aborts.
    truncate -s "${BLOCK_GB}G" "$DIR/osd.0.block"
    c_ceph auth get-or-create osd.0 mon 'allow profile osd' osd 'allow *' \
        mgr 'allow profile osd' -o "$DIR/osd.0/keyring" >&2 || die "osd key"
    ceph-osd -c "$(conf)" -i 0 --mkfs --osd-uuid "$uuid" >&2 || die "ceph-osd --mkfs"
    c_ceph osd crush add osd.0 1 root=default >&2 || die "crush add"
    ceph-osd -c "$(conf)" -i 0 >&2 || die "ceph-osd start"
    wait_for "osd.0 to be up" osd_up
}

osd_up() { local dump; dump=$(c_ceph osd dump) && grep -q '^osd\.0 up' <<<"$dump"; }

make_pools() {
    local pool
    for pool in "${POOLS[@]}"; do
        c_ceph osd pool create "$pool" 8 8 >&2 || die "pool create $pool"
        c_rbd pool init "$pool" >&2 || die "rbd pool init $pool"
    done
}

make_client_user() {
    c_ceph auth get-or-create client.blockback mon 'profile rbd' \
        osd "profile rbd pool=${POOLS[0]}, profile rbd pool=${POOLS[1]}" \
        -o "$DIR/ceph.client.blockback.keyring" >&2 || die "client.blockback"
    chmod 600 "$DIR/ceph.client.blockback.keyring"
}

# The cluster serves I/O once an image can be created and removed.
probe_io() {
    local img="bb-probe-$$-$RANDOM"
    c_rbd create "${POOLS[0]}/$img" --size 1M && c_rbd rm "${POOLS[0]}/$img"
}

cluster_running() {
    pid_alive "$DIR/run/mon.a.pid" && pid_alive "$DIR/run/osd.0.pid" && probe_io
}

# Removes only what this script creates, so a mistyped DIR loses nothing else.
wipe_dir() {
    rm -rf "$DIR/mon.a" "$DIR/osd.0" "$DIR/run" "$DIR/log" "$DIR/monmap" \
        "$DIR/osd.0.block" "$DIR/ceph.conf" "$DIR"/ceph.*.keyring
}

cmd_start() {
    if [[ -f "$(conf)" ]] && cluster_running >/dev/null 2>&1; then
        log "cluster in $DIR already running"
        apply_latency
        conf
        return 0
    fi
    cmd_stop >/dev/null 2>&1 || true
    have_packages || die "Ceph is not installed: run '$0 install'"
    STARTING=1
    wipe_dir
    mkdir -p "$DIR/run" "$DIR/log"
    local fsid port
    fsid=$(cat /proc/sys/kernel/random/uuid)
    lock_ports
    port=$(pick_port)
    log "starting in $DIR (monitor 127.0.0.1:$port)"
    write_conf "$fsid" "$port"
    apply_latency
    make_keys
    start_mon "$fsid" "$port"
    unlock_ports
    start_osd
    make_pools
    make_client_user
    wait_for "the cluster to serve I/O" probe_io
    STARTING=0
    log "ready"
    conf
}

stop_pidfile() {
    local pidfile=$1 pid i
    pid=$(cat "$pidfile" 2>/dev/null) || return 0
    [[ -n "$pid" ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for ((i = 0; i < 300; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "$pidfile: pid $pid ignored SIGTERM, sending SIGKILL"
            kill -9 "$pid" 2>/dev/null || true
            sleep 0.5
        fi
    fi
    rm -f "$pidfile"
}

# An outage, not a shutdown: no daemon gets to tell the monitor or its
# clients anything. The data stays for `up`.
cmd_down() {
    local pidfile pid
    [[ -d "$DIR/run" ]] || return 0
    for pidfile in "$DIR/run/osd.0.pid" "$DIR/run/mon.a.pid"; do
        pid=$(cat "$pidfile" 2>/dev/null) || continue
        [[ -n "$pid" ]] && kill -9 "$pid" 2>/dev/null || true
    done
    for pidfile in "$DIR/run/osd.0.pid" "$DIR/run/mon.a.pid"; do
        wait_gone "$pidfile"
        rm -f "$pidfile"
    done
    log "killed the daemons of $DIR (data kept)"
}

# Waits (up to 10 s) until the pid in $1 has exited.
wait_gone() {
    local pid i
    pid=$(cat "$1" 2>/dev/null) || return 0
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    die "pid $pid of $1 is still alive"
}

# Restarts the daemons on the data `start` made: the monitor keeps its store
# (fsid, monmap, osdmap, keys), the OSD its data dir and block file, so pools
# and images are as they were. Waits until both pools serve I/O.
cmd_up() {
    [[ -f "$(conf)" && -d "$DIR/mon.a" && -f "$DIR/osd.0/keyring" ]] ||
        die "no cluster data in $DIR: use start"
    have_packages || die "Ceph is not installed: run '$0 install'"
    apply_latency
    mkdir -p "$DIR/run" "$DIR/log"
    pid_alive "$DIR/run/mon.a.pid" || {
        ceph-mon -c "$(conf)" -i a >&2 || die "ceph-mon start"
    }
    wait_for "the monitor to answer" c_ceph mon stat
    pid_alive "$DIR/run/osd.0.pid" || {
        ceph-osd -c "$(conf)" -i 0 >&2 || die "ceph-osd start"
    }
    # `osd dump` may still show the killed instance as up; only I/O tells.
    wait_for "the cluster to serve I/O" probe_all_pools
    log "up"
    conf
}

probe_all_pools() {
    local pool img="bb-probe-$$-$RANDOM"
    for pool in "${POOLS[@]}"; do
        c_rbd create "$pool/$img" --size 1M && c_rbd rm "$pool/$img" || return 1
    done
}

cmd_stop() {
    local pidfile
    [[ -d "$DIR/run" ]] || return 0
    # The OSD first: it would otherwise wait for the monitor to come back.
    for pidfile in "$DIR/run/osd.0.pid" "$DIR/run/mon.a.pid"; do
        stop_pidfile "$pidfile"
    done
    log "stopped cluster in $DIR"
}

main() {
    [[ $# -ge 1 ]] || usage
    case "$1" in
    install) cmd_install ;;
    client-conf)
        [[ $# -eq 3 ]] || usage
        cmd_client_conf "$2" "$3"
        ;;
    start | stop | down | up)
        [[ $# -eq 2 ]] || usage
        mkdir -p "$2"
        DIR=$(cd "$2" && pwd)
        "cmd_$1"
        ;;
    *) usage ;;
    esac
}

main "$@"
