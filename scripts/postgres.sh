#!/usr/bin/env bash
# A throwaway PostgreSQL server for blockback's tests and benchmarks.
#
#   postgres.sh install     install Debian's packages when missing
#   postgres.sh start DIR   start (or reuse) a server living entirely in DIR;
#                           the last line on stdout is its URL
#                           (postgres://blockback:PASSWORD@127.0.0.1:PORT/blockback)
#   postgres.sh stop DIR    stop it (fast shutdown) and wait for it
#
# The server listens on 127.0.0.1 only, on the first free port from 15432
# (chosen under a machine-wide lock, so servers started at the same time
# never pick the same one; POSTGRES_PORT forces one), with its socket in
# DIR/run. Password (scram) authentication over TCP for the `blockback`
# superuser; the password is generated into DIR/password. initdb and the
# server refuse to run as root, so as root both run as the `postgres` user
# that Debian's package creates (DIR is handed to it).
set -euo pipefail

PACKAGES=(postgresql)
TIMEOUT=${POSTGRES_START_TIMEOUT:-60}

log() { echo "postgres: $*" >&2; }
die() {
    log "FAILED: $*"
    local f
    for f in "${DIR:-/nonexistent}"/{initdb,server}.log; do
        [[ -f "$f" ]] && tail -n 30 "$f" >&2
    done
    exit 1
}
usage() {
    echo "usage: $0 install | start DIR | stop DIR" >&2
    exit 2
}

# Debian installs the server outside the PATH, by major version.
bindir() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    [[ -n "$d" && -x "$d/initdb" && -x "$d/pg_ctl" ]] || return 1
    echo "$d"
}

cmd_install() {
    if bindir >/dev/null; then
        log "packages already installed"
        return 0
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y --no-install-recommends "${PACKAGES[@]}" >&2; then
        apt-get update >&2
        apt-get install -y --no-install-recommends "${PACKAGES[@]}" >&2
    fi
    # Debian's package starts a cluster of its own; ours never uses it.
    bindir >/dev/null || die "packages installed but initdb/pg_ctl still missing"
}

# Runs a server tool as a user PostgreSQL accepts.
as_owner() {
    if ((EUID == 0)); then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

PORT_LOCK=/tmp/blockback-postgres-port.lock

pick_port() {
    if [[ -n "${POSTGRES_PORT:-}" ]]; then
        echo "$POSTGRES_PORT"
        return
    fi
    local p
    for ((p = 15432; p < 15532; p++)); do
        # A socket file of another server counts too (its lock file).
        if ! port_in_use "$p"; then
            echo "$p"
            return
        fi
    done
    die "no free port in 15432-15531"
}

url() {
    echo "postgres://blockback:$(cat "$DIR/password")@127.0.0.1:$(cat "$DIR/port")/blockback"
}

running() {
    [[ -f "$DIR/data/postmaster.pid" && -f "$DIR/port" ]] &&
        as_owner "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1
}

cmd_start() {
    BIN=$(bindir) || die "PostgreSQL is not installed: run '$0 install'"
    if running; then
        log "server in $DIR already running"
        url
        return 0
    fi
    # A server left from before (a stale pid file after a reboot) goes
    # first; in a subshell, so its failure cannot end this script.
    (cmd_stop) >/dev/null 2>&1 || true
    rm -rf "$DIR/data" "$DIR/run" "$DIR"/{initdb,server}.log "$DIR/port" "$DIR/password"
    mkdir -p "$DIR/run"
    head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$DIR/password"
    touch "$DIR/initdb.log" "$DIR/server.log"
    if ((EUID == 0)); then chown -R postgres: "$DIR"; fi
    chmod 700 "$DIR"
    as_owner "$BIN/initdb" -D "$DIR/data" -U blockback --pwfile="$DIR/password" \
        --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C >"$DIR/initdb.log" 2>&1 ||
        die "initdb"
    exec 9>>"$PORT_LOCK"
    flock -w "$TIMEOUT" 9 || die "timed out waiting for $PORT_LOCK"
    local port
    port=$(pick_port)
    echo "$port" >"$DIR/port"
    log "starting in $DIR (127.0.0.1:$port)"
    # -w: returns once the server accepts connections. 9>&-: the server
    # must not keep the port lock open.
    as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t "$TIMEOUT" \
        -o "-p $port -k $DIR/run -c listen_addresses=127.0.0.1 -c max_connections=200" \
        start >&2 9>&- || die "pg_ctl start"
    exec 9>&-
    as_owner psql -h "$DIR/run" -p "$port" -U blockback -d postgres -qAt \
        -c "CREATE DATABASE blockback" >&2 || die "creating the database"
    log "ready"
    url
}

cmd_stop() {
    BIN=$(bindir) || return 0
    [[ -f "$DIR/data/postmaster.pid" ]] || return 0
    # A pid file whose server is gone (killed, machine restarted): nothing
    # to stop.
    as_owner "$BIN/pg_ctl" -D "$DIR/data" status >/dev/null 2>&1 || return 0
    as_owner "$BIN/pg_ctl" -D "$DIR/data" -m fast -w -t "$TIMEOUT" stop >&2 ||
        die "pg_ctl stop"
    log "stopped server in $DIR"
}

main() {
    [[ $# -ge 1 ]] || usage
    case "$1" in
    install) cmd_install ;;
    start | stop)
        [[ $# -eq 2 ]] || usage
        mkdir -p "$2"
        DIR=$(cd "$2" && pwd)
        "cmd_$1"
        ;;
    *) usage ;;
    esac
}

main "$@"
