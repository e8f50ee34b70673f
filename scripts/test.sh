#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests need (Rust
# components, Ceph packages), starts a throwaway single-node Ceph cluster,
# runs formatting, lint, every test and the fuzz target against it, and
# stops the cluster. Likewise a throwaway PostgreSQL server (Debian's
# packages) on a loopback port for the shared-catalog tests.
#
# Every step runs even when an earlier one failed, so one run shows every
# problem; the closing lines count the tests and name the failed steps, and
# the exit status is non-zero when any step failed. Only a setup failure
# (packages, the cluster) stops at once: nothing could run without it.
set -uo pipefail
cd "$(dirname "$0")/.."

rustup component add rustfmt clippy >/dev/null 2>&1 || true
scripts/ceph-cluster.sh install || { echo "test.sh: installing Ceph failed" >&2; exit 1; }
# NBD clients for the nbd tests (nbdinfo, nbdcopy; qemu-img, qemu-io).
install_nbd_clients() {
    command -v nbdcopy >/dev/null && command -v qemu-io >/dev/null && return 0
    export DEBIAN_FRONTEND=noninteractive
    local packages=(libnbd-bin qemu-utils)
    apt-get install -y --no-install-recommends "${packages[@]}" >&2 ||
        { apt-get update >&2 && apt-get install -y --no-install-recommends "${packages[@]}" >&2; }
}
install_nbd_clients || { echo "test.sh: installing libnbd-bin and qemu-utils failed" >&2; exit 1; }
scripts/postgres.sh install || { echo "test.sh: installing PostgreSQL failed" >&2; exit 1; }

ceph_dir=$(mktemp -d /tmp/blockback-ceph.XXXXXX)
python_dir=$(mktemp -d /tmp/blockback-python.XXXXXX)
postgres_dir=$(mktemp -d /tmp/blockback-postgres.XXXXXX)
log=$(mktemp /tmp/blockback-test.XXXXXX)
cleanup() {
    scripts/ceph-cluster.sh stop "$ceph_dir" || true
    scripts/postgres.sh stop "$postgres_dir" || true
    rm -rf "$ceph_dir" "$python_dir" "$postgres_dir"
    rm -f "$log"
}
trap cleanup EXIT
# CEPH_MON_PORT (if the user set one) is meant for this cluster only; the
# tests that start clusters of their own pick free ports themselves.
conf=$(scripts/ceph-cluster.sh start "$ceph_dir" | tail -n 1)
[[ -f "$conf" ]] || { echo "test.sh: the Ceph test cluster did not start" >&2; exit 1; }
export BLOCKBACK_TEST_CEPH_CONF="$conf"
export BLOCKBACK_REQUIRE_CEPH=1
# One venv for the Python-based tests (Cinder's own driver...).
python=$(scripts/python-env.sh "$python_dir" | tail -n 1)
[[ -x "$python" ]] || { echo "test.sh: the Python test environment did not install" >&2; exit 1; }
export BLOCKBACK_TEST_PYTHON="$python"
export BLOCKBACK_REQUIRE_PYTHON=1
postgres_url=$(scripts/postgres.sh start "$postgres_dir" | tail -n 1)
[[ "$postgres_url" == postgres://* ]] || { echo "test.sh: the PostgreSQL test server did not start" >&2; exit 1; }
export BLOCKBACK_TEST_POSTGRES_URL="$postgres_url"
export BLOCKBACK_REQUIRE_POSTGRES=1

failed=()
# Runs one step; a failure is remembered, not fatal.
step() {
    local name=$1
    shift
    echo "test.sh: == $name" >&2
    "$@" || failed+=("$name")
}

step fmt cargo fmt --all -- --check
step clippy cargo clippy --workspace --all-targets -- -D warnings
step tests bash -c 'set -o pipefail; cargo test --workspace --no-fail-fast 2>&1 | tee "$1"' _ "$log"
step fuzz scripts/fuzz.sh "${FUZZ_SECONDS:-60}"

if ((${#failed[@]})); then
    echo "test.sh: FAILED steps: ${failed[*]}"
else
    echo "test.sh: all steps passed"
fi
# One closing line for every cargo test binary together.
awk '/^test result:/ { p += $4; f += $6; i += $8 }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, i }' "$log"
((${#failed[@]} == 0))
