#!/usr/bin/env bash
# Benchmarks the dashboard in headless chromium against the release server: live updates with
# 200 devices at 10 Hz (coalescing, frame rate, long tasks) and the time to draw a 1,000-point
# chart in the browser. Knobs: BENCH_DEVICES=200 BENCH_RATE=10 BENCH_SECONDS=10.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --browser
bash scripts/build-site.sh
cargo build --locked -p server --bin iothub --profile server-release
IOTHUB_BIN="${CARGO_TARGET_DIR:-target}/server-release/iothub" node end2end/bench-dashboard.mjs
