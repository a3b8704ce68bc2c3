#!/usr/bin/env bash
# Benchmarks the readings store on both back ends with the release build (iothub-bench-store):
#
#  1. ingest through the store's batching writer (Store::append_batch, flush every 250 ms / 100,000
#     values, then close()): readings/s actually stored (counted in the database afterwards);
#  2. the dashboard's history query (Store::series, 24 h of one device, 1000 points) over a
#     database of 10 million value rows: every run and the median, directly and through the
#     HTTP server function; the query plan is printed too;
#  3. CSV export of one device's full history (Store::export): readings/s and MB/s.
#
# PostgreSQL comes from scripts/postgres-for-tests.sh (installed/started if needed; needs root or
# sudo) unless IOTHUB_TEST_POSTGRES_URL is already set. The SQLite file lives in a temporary
# folder and the PostgreSQL database is dropped afterwards.
#
# Extra arguments go to the tool, e.g. `scripts/bench-store.sh --backend sqlite --rows 1000000`
# (see `--help`: --backend sqlite|postgres|both, --rows, --devices, --fields, --repeat,
# --export-repeat, --no-http, --flush-interval-ms, --flush-rows).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET_DIR=${CARGO_TARGET_DIR:-target}
# The cargo profile built and measured (BENCH_PROFILE=dev: the debug build `cargo test` made,
# for a quick check that the benchmark runs, not for figures).
PROFILE=${BENCH_PROFILE:-server-release}
. scripts/profile-dir.sh
PROFILE_DIR=$(profile_dir "$PROFILE")
BENCH="$TARGET_DIR/$PROFILE_DIR/iothub-bench-store"

echo "== building (profile $PROFILE)" >&2
cargo build --locked -p server --profile "$PROFILE" --bin iothub-bench-store
[ -x "$BENCH" ] || {
    echo "bench-store: missing $BENCH after the build" >&2
    exit 1
}

needs_postgres=1
for arg in "$@"; do
    case "$arg" in
        sqlite | --backend=sqlite) needs_postgres=0 ;;
    esac
done
if [ "$needs_postgres" = 1 ] && [ -z "${IOTHUB_TEST_POSTGRES_URL:-}" ]; then
    echo "== starting PostgreSQL (scripts/postgres-for-tests.sh)" >&2
    IOTHUB_TEST_POSTGRES_URL=$(bash scripts/postgres-for-tests.sh)
    export IOTHUB_TEST_POSTGRES_URL
fi

echo "source: $(git rev-parse --short HEAD 2> /dev/null || echo 'not a git checkout')$(git status --porcelain 2> /dev/null | grep -q . && echo ' (with uncommitted changes)' || true)"
echo "kernel: $(uname -sr)"
exec "$BENCH" "$@"
