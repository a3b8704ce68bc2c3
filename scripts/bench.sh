#!/usr/bin/env bash
# The product's headline figures, with one command (not part of the test command): builds the
# release server and bundle, drives the real server over loopback with the bundled tools, and
# prints a table. Every part also prints its own details above the table.
#
#   1. scripts/bench-gateway.sh: readings/s stored with 100 WebSocket devices (median of 3
#      runs), server memory per idle connection with 10,000 connections;
#   2. scripts/bench-store.sh --backend sqlite: the 24 h history window over 10 M stored value
#      rows (median of 7), through the store and through the HTTP server function;
#   3. iothub-bench-live against a fresh release server: device → live-stream latency with
#      1,000 devices at 1 Hz, and time to first byte of the overview page with those 1,000
#      devices (3 runs, medians);
#   4. criterion (`cargo bench`): line parsing per dialect, drawing a 1,000-point chart;
#   5. the release .wasm size.
#
# Raw TCP devices are not in the table: that transport does not exist yet (#7).
# Takes about a quarter of an hour on 2 cores. Knobs: BENCH_LIVE_RUNS=3 BENCH_LIVE_DEVICES=1000,
# BENCH_STORE_ARGS (e.g. "--rows 100000"), and those of scripts/bench-gateway.sh (BENCH_RUNS,
# BENCH_DURATION, BENCH_IDLE_CONNECTIONS, BENCH_IDLE_DURATION, …). A quick trial run:
#   BENCH_RUNS=1 BENCH_DURATION=2 BENCH_IDLE_CONNECTIONS=200 BENCH_IDLE_DURATION=5 \
#   BENCH_STORE_ARGS="--rows 100000" BENCH_LIVE_RUNS=1 BENCH_LIVE_DEVICES=100 bash scripts/bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET_DIR=${CARGO_TARGET_DIR:-target}
LIVE_RUNS=${BENCH_LIVE_RUNS:-3}
LIVE_DEVICES=${BENCH_LIVE_DEVICES:-1000}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
ulimit -n 65536 2> /dev/null || ulimit -n "$(ulimit -Hn)"

step() { printf '\n######## %s\n' "$*"; }

step "build"
bash scripts/setup.sh
bash scripts/build-site.sh | tee "$out/site.txt"
cargo build --locked -p server --profile server-release --bins

step "1. device gateway"
BENCH_BATCHES=1 bash scripts/bench-gateway.sh | tee "$out/gateway.txt"

step "2. store (SQLite)"
# shellcheck disable=SC2086 # extra arguments, split on purpose
bash scripts/bench-store.sh --backend sqlite ${BENCH_STORE_ARGS:-} | tee "$out/store.txt"

step "3. live latency and page render, $LIVE_DEVICES devices"
for run in $(seq 1 "$LIVE_RUNS"); do
    data=$(mktemp -d)
    "$TARGET_DIR/server-release/iothub" serve --bind 127.0.0.1:0 --data-dir "$data" \
        --site-root target/site --admin-password bench-password --allow-tokenless-devices \
        > "$out/server.log" 2>&1 &
    server=$!
    base=""
    for _ in $(seq 1 100); do
        base=$(grep -o 'listening on http://[0-9.:]*' "$out/server.log" | head -n1 | cut -d' ' -f3 || true)
        [ -n "$base" ] && break
        sleep 0.1
    done
    [ -n "$base" ] || { cat "$out/server.log" >&2; exit 1; }
    "$TARGET_DIR/server-release/iothub-bench-live" --base "$base" --devices "$LIVE_DEVICES" \
        --password bench-password --rate 1 --duration 20 | tee -a "$out/live.txt"
    kill -TERM "$server"
    wait "$server" || true
    rm -rf "$data"
    echo "   run $run done"
done

step "4. criterion"
cargo bench --locked --profile server-release -p server --bench parse -- \
    --warm-up-time 1 --measurement-time 3 2>&1 | tee "$out/parse.txt"
cargo bench --locked --profile server-release -p app --features ssr --bench chart -- \
    --warm-up-time 1 --measurement-time 3 2>&1 | tee "$out/chart.txt"

step "figures"
echo "date: $(date -u '+%Y-%m-%d') · $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) · $(rustc --version | cut -d' ' -f1-2) · source $(git rev-parse --short HEAD 2> /dev/null || echo '?')"
python3 - "$out" << 'EOF'
import re, statistics, sys, pathlib
out = pathlib.Path(sys.argv[1])
text = lambda name: (out / name).read_text()

def find(pattern, name, group=1):
    m = re.search(pattern, text(name))
    return m.group(group) if m else "?"

rows = []
gw_conns = find(r"== throughput: (\d+) connections", "gateway.txt")
gw_secs = find(r"== throughput: \d+ connections, (\S+) s at full speed", "gateway.txt")
for transport, label in [("ws", "WebSocket devices, one CSV line per frame"), ("tcp", "raw TCP devices, one CSV line per write")]:
    gw_runs = find(rf"MEDIAN {transport}/1 \((\d+) runs\)", "gateway.txt")
    gw_rate = find(rf"MEDIAN {transport}/1 \(\d+ runs\): stored/s=(\d+)", "gateway.txt")
    rows.append((f"readings/s stored, {gw_conns} {label}, {gw_secs} s at full speed",
                 f"{gw_rate} (median of {gw_runs} runs)", "counted in the store after a graceful stop"))
per_conn = find(r"-> ([0-9.]+) KiB per idle connection", "gateway.txt")
idle_n = find(r"per idle connection \((\d+) connections\)", "gateway.txt")
rows.append(("server RSS per idle device connection", f"{per_conn} KiB ({idle_n} connections)",
             "RSS before and 3 s after connecting, divided"))
live = text("live.txt")
lat = [dict(kv.split("=") for kv in l.split()[1:]) for l in live.splitlines() if l.startswith("phase=latency")]
ttfb = [dict(kv.split("=") for kv in l.split()[1:]) for l in live.splitlines() if l.startswith("phase=ttfb")]
med = lambda xs, k: statistics.median(float(x[k]) for x in xs)
devices = lat[0]["devices"] if lat else "?"
if lat:
    rows.append((f"device → live stream latency, {devices} devices × 1 Hz",
                 f"p50 {med(lat, 'p50_ms'):.1f} ms · p99 {med(lat, 'p99_ms'):.1f} ms "
                 f"(medians of {len(lat)} runs, {int(med(lat, 'readings'))} readings each)",
                 "a subscriber on the dashboard's live stream; send time carried in each reading"))
if ttfb:
    rows.append((f"overview page, time to first byte, {devices} devices online",
                 f"median {med(ttfb, 'median_ms'):.1f} ms · p95 {med(ttfb, 'p95_ms'):.1f} ms",
                 f"{ttfb[0]['pages']} GETs per run while the devices send"))
value_rows = find(r"stored: \d+ readings, (\d+) value rows", "store.txt")
history = find(r"median: ([0-9.]+) ms", "store.txt")
rows.append((f"history query, 24 h window (≤ 2,000 points) over {value_rows} stored value rows (SQLite)",
             f"{history} ms (median)", "Store::series, the query behind the device_series server function"))
for name, label in [("csv", "CSV"), ("key_value", "key=value"), ("json", "JSON"), ("registration", "registration (JSON)")]:
    t = find(rf"parse_line/{name}\s+time:\s+\[\S+ \S+ (\S+ \S+) \S+ \S+\]", "parse.txt")
    rows.append((f"parse one line: {label}", t, "criterion (cargo bench -p server --bench parse)"))
chart = find(r"render_series_svg/1000_points\s+time:\s+\[\S+ \S+ (\S+ \S+) \S+ \S+\]", "chart.txt")
rows.append(("draw a 1,000-point chart (plotters → SVG), native", chart,
             "criterion (cargo bench -p app --bench chart); in the browser see scripts/bench-dashboard.sh"))
raw = find(r"(\d+) KiB raw", "site.txt")
gz = find(r"(\d+) KiB gzip", "site.txt")
rows.append(("release .wasm after wasm-opt -Oz", f"{raw} KiB raw, {gz} KiB gzip", "scripts/build-site.sh"))
print("| figure | value | how |")
print("|---|---|---|")
for r in rows:
    print(f"| {r[0]} | {r[1]} | {r[2]} |")
EOF
