#!/usr/bin/env bash
# Benchmarks the dashboard in headless chromium against the release server: the overview's
# live updates with each fleet of BENCH_FLEETS (frame rate, long tasks, updates coalesced),
# and the time to draw a 1,000-point chart in the browser (end2end/bench-dashboard.mjs).
# Knobs: BENCH_FLEETS="200x10 10000x1" (devices x readings/s each), BENCH_SECONDS=10,
# BENCH_DASHBOARD_RUNS=3,
# BENCH_PROFILE=server-release (dev: the debug server `cargo test` built), BENCH_SITE_BUILT=1
# (the bundle is already built: scripts/bench.sh and the test command build it first).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --browser
[ "${BENCH_SITE_BUILT:-0}" = 1 ] || bash scripts/build-site.sh
profile=${BENCH_PROFILE:-server-release}
case $profile in
    dev | test) dir=debug ;;
    release | bench) dir=release ;;
    *) dir=$profile ;;
esac
# The hub and iothub-bench-live, which connects the devices.
cargo build --locked -p server --bins --profile "$profile"
# One descriptor per device connection in each process, and some to spare.
ulimit -n 65536 2> /dev/null || ulimit -n "$(ulimit -Hn)"
IOTHUB_BIN="${CARGO_TARGET_DIR:-target}/$dir/iothub" node end2end/bench-dashboard.mjs
