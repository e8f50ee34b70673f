#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests need (Rust
# components, Ceph packages), starts a throwaway single-node Ceph cluster,
# runs formatting, lint and every test against it, and stops the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup component add rustfmt clippy >/dev/null 2>&1 || true
scripts/ceph-cluster.sh install

ceph_dir=$(mktemp -d /tmp/blockback-ceph.XXXXXX)
cleanup() { scripts/ceph-cluster.sh stop "$ceph_dir" || true; rm -rf "$ceph_dir"; }
trap cleanup EXIT
conf=$(scripts/ceph-cluster.sh start "$ceph_dir" | tail -n 1)
export BLOCKBACK_TEST_CEPH_CONF="$conf"
export BLOCKBACK_REQUIRE_CEPH=1

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
log=$(mktemp /tmp/blockback-test.XXXXXX)
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
scripts/fuzz.sh "${FUZZ_SECONDS:-60}"
# One closing line for every cargo test binary together.
awk '/^test result:/ { p += $4; f += $6; i += $8 }
     END { printf "tests: %d passed, %d failed, %d skipped\n", p, f, i }' "$log"
rm -f "$log"
