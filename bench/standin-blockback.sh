#!/usr/bin/env bash
# A stand-in for the blockback CLI, ONLY for testing run.sh before the real
# binary exists: it speaks the same command line but copies whole files, so it
# is neither incremental nor deduplicating (its store growth fails the target,
# as it should). Use: BLOCKBACK=bench/standin-blockback.sh bench/run.sh
set -euo pipefail

store="" catalog="" json=0
while [[ $# -gt 0 ]]; do
    case $1 in
        --store) store=$2; shift 2 ;;
        --catalog) catalog=$2; shift 2 ;;
        --json) json=1; shift ;;
        --quiet) shift ;;
        --ceph-conf) export CEPH_CONF=$2; shift 2 ;;
        --ceph-id) export CEPH_ARGS="--id $2"; shift 2 ;;
        *) break ;;
    esac
done
[[ -n $store && -n $catalog ]] || { echo "standin: --store and --catalog are required" >&2; exit 2; }

# With `--store rbd:POOL` each backup is an image POOL/standin-ID (the
# cluster comes from CEPH_CONF); sources `rbd:POOL/IMAGE` are exported whole.
rbd_pool=""
[[ $store == rbd:* ]] && rbd_pool=${store#rbd:}

store_backup() { # SOURCE ID
    if [[ -n $rbd_pool && $1 == rbd:* ]]; then
        rbd export --no-progress "${1#rbd:}" - | rbd import --no-progress - "$rbd_pool/standin-$2"
    elif [[ -n $rbd_pool ]]; then
        rbd import --no-progress "$1" "$rbd_pool/standin-$2"
    elif [[ $1 == rbd:* ]]; then
        rbd export --no-progress "${1#rbd:}" "$store/backups/$2"
    else
        cp --sparse=always "$1" "$store/backups/$2"
        sync "$store/backups/$2"
    fi
}

case "${1:-} ${2:-}" in
    "store init")
        [[ -n $rbd_pool ]] || mkdir -p "$store/backups"
        : >"$catalog"
        ;;
    "backup create")
        id=$(date +%s%N)
        store_backup "$3" "$id"
        echo "$id $3" >>"$catalog"
        if ((json)); then printf '{"id":"%s"}\n' "$id"; else echo "$id"; fi
        ;;
    "backup restore")
        [[ ! -e $4 ]] || { echo "standin: $4 exists" >&2; exit 1; }
        if [[ -n $rbd_pool ]]; then
            rbd export --no-progress "$rbd_pool/standin-$3" "$4"
        else
            cp --sparse=always "$store/backups/$3" "$4"
        fi
        ;;
    "backup delete")
        if [[ -n $rbd_pool ]]; then rbd rm --no-progress "$rbd_pool/standin-$3"; else rm "$store/backups/$3"; fi
        ;;
    "backup list") cat "$catalog" ;;
    "gc "*) ;;
    *) echo "standin: unknown command: $*" >&2; exit 2 ;;
esac
