#!/usr/bin/env bash
# Runs every check and test: format, clippy for the server (ssr) and browser (hydrate, wasm32)
# builds separately, all Rust tests, the browser tests in headless chromium, then the Raspberry Pi
# (aarch64) release build, tried under qemu.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
step() { printf '\n==> %s (%ss)\n' "$*" "$((SECONDS - started))"; }

step "setup"
bash scripts/setup.sh --browser

step "rustfmt"
cargo fmt --all -- --check

# A --workspace build would unify features and compile `app` with ssr and hydrate at once,
# so each side is linted on its own.
step "clippy: server side (ssr)"
cargo clippy --locked -p server -p app --all-targets -- -D warnings
step "clippy: browser side (hydrate, wasm32)"
cargo clippy --locked -p frontend -p app --target wasm32-unknown-unknown -- -D warnings

# Starts a test service with its script, which prints its URL; fails unless the URL has the
# scheme expected.
service_url() {
  local script=$1 scheme=$2 url
  url=$(bash "$script")
  if [[ "$url" != "$scheme"://* ]]; then
    echo "$script printed no $scheme:// URL: '$url'" >&2
    exit 1
  fi
  echo "$url"
}

step "PostgreSQL for the storage tests"
# The storage tests run on SQLite and on this server; the outage test stops and restarts it.
IOTHUB_TEST_POSTGRES_URL=$(service_url scripts/postgres-for-tests.sh postgres)
export IOTHUB_TEST_POSTGRES_URL
export IOTHUB_TEST_POSTGRES_CTL="pg_ctlcluster $(pg_lsclusters --no-header | awk 'NR==1 {print $1" "$2}')"

step "Mosquitto for the MQTT bridge tests"
IOTHUB_TEST_MQTT_URL=$(service_url scripts/mosquitto-for-tests.sh mqtt)
export IOTHUB_TEST_MQTT_URL

step "NATS for the tests of several hubs as one"
IOTHUB_TEST_NATS_URL=$(service_url scripts/nats-for-tests.sh nats)
export IOTHUB_TEST_NATS_URL

step "pebble for the ACME tests"
# The ACME tests start their own pebble (and its DNS server) per test, from this binary.
IOTHUB_TEST_PEBBLE=$(command -v pebble) || { echo "pebble is missing: apt-get install pebble" >&2; exit 1; }
export IOTHUB_TEST_PEBBLE

step "rust tests"
cargo test --locked -p server -p app

step "systemd unit (systemd-analyze verify)"
bash scripts/check-unit.sh

step "build the browser bundle"
bash scripts/build-site.sh

step "browser tests (headless chromium)"
IOTHUB_BIN="${CARGO_TARGET_DIR:-target}/debug/iothub" node --test --test-concurrency=1 end2end/

step "device libraries (devices/test.sh: C++ on the host and for an Uno, MicroPython under CPython)"
IOTHUB_BIN="${CARGO_TARGET_DIR:-target}/debug/iothub" bash devices/test.sh

# The benchmark (README: `bash scripts/bench.sh`) in a quick form on the debug builds above:
# every part runs once on a tiny load, with the Python peer, so a benchmark that breaks fails
# here. Its figures mean nothing.
step "benchmarks, quick form"
BENCH_PROFILE=dev BENCH_RUNS=1 BENCH_DURATION=2 BENCH_CONNECTIONS=20 BENCH_IDLE_CONNECTIONS=200 \
  BENCH_IDLE_DURATION=5 BENCH_SETTLE=1 BENCH_LIVE_RUNS=1 BENCH_LIVE_DEVICES=20 \
  BENCH_LIVE_DURATION=3 BENCH_WARM_UP_S=0.1 BENCH_MEASURE_S=0.2 \
  BENCH_STORE_ARGS="--rows 20000 --devices 5 --repeat 2 --export-repeat 1 --year-devices 3" \
  BENCH_FLEETS="20x2" BENCH_SECONDS=1 BENCH_DASHBOARD_RUNS=1 \
  BENCH_CLUSTER_RUNS=1 BENCH_CLUSTER_CONNECTIONS=10 BENCH_CLUSTER_DURATION=2 \
  BENCH_CLUSTER_LIVE_DEVICES=10 BENCH_CLUSTER_LIVE_RATE=5 BENCH_CLUSTER_LIVE_DURATION=3 \
  bash scripts/bench.sh > "${CARGO_TARGET_DIR:-target}/bench-quick.txt" 2>&1 || {
  tail -n 60 "${CARGO_TARGET_DIR:-target}/bench-quick.txt" >&2
  echo "the quick benchmark failed (whole output: ${CARGO_TARGET_DIR:-target}/bench-quick.txt)" >&2
  exit 1
}
sed -n '/^######## figures/,$p' "${CARGO_TARGET_DIR:-target}/bench-quick.txt"

step "Raspberry Pi build (aarch64 cross build, smoke test under qemu-user)"
bash scripts/build-aarch64.sh --site-built

step "all checks passed"
