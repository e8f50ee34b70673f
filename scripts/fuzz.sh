#!/bin/sh
# Runs the diff reader fuzz target for SECONDS (default 60).
# Needs cargo-fuzz (`cargo install cargo-fuzz`); nightly features are
# enabled on the stable toolchain with RUSTC_BOOTSTRAP=1.
set -eu
seconds="${1:-60}"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install --locked cargo-fuzz
cd "$(dirname "$0")/../fuzz"
mkdir -p corpus/diff_reader
RUSTC_BOOTSTRAP=1 exec cargo fuzz run diff_reader corpus/diff_reader -- \
    -max_total_time="$seconds" -rss_limit_mb=1024 -max_len=65536
