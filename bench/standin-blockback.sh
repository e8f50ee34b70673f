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
        *) break ;;
    esac
done
[[ -n $store && -n $catalog ]] || { echo "standin: --store and --catalog are required" >&2; exit 2; }

case "${1:-} ${2:-}" in
    "store init")
        mkdir -p "$store/backups"
        : >"$catalog"
        ;;
    "backup create")
        id=$(date +%s%N)
        cp --sparse=always "$3" "$store/backups/$id"
        sync "$store/backups/$id"
        echo "$id $(realpath "$3")" >>"$catalog"
        if ((json)); then printf '{"id":"%s"}\n' "$id"; else echo "$id"; fi
        ;;
    "backup restore")
        [[ ! -e $4 ]] || { echo "standin: $4 exists" >&2; exit 1; }
        cp --sparse=always "$store/backups/$3" "$4"
        ;;
    "backup list") cat "$catalog" ;;
    "gc "*) ;;
    *) echo "standin: unknown command: $*" >&2; exit 2 ;;
esac
