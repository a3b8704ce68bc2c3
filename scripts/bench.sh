#!/usr/bin/env bash
# The product's headline figures, with one command (not part of the test command): builds the
# release server and bundle, drives the real server over loopback with the bundled tools, and
# prints a table. Every part also prints its own details above the table.
#
#   1. scripts/bench-gateway.sh: readings/s stored with 100 WebSocket and raw TCP devices, one
#      and ten lines per frame (median of 3 runs), beside the same load against the original
#      Python design (scripts/peer/tornado_hub.py, WebSocket only) with the ratio hub/peer per
#      CPU-second; server memory per idle connection with 10,000 connections;
#   2. scripts/bench-store.sh --backend sqlite: the 24 h history window over 10 M stored value
#      rows (median of 7), through the store and through the HTTP server function;
#   3. iothub-bench-live against a fresh release server, with 1,000 and with 10,000 devices at
#      1 Hz: device → live-stream latency (the overview's stream), time to first byte and size
#      of the overview page, and the hub's peak RSS (3 runs each, medians);
#   4. criterion (`cargo bench`): line parsing per dialect, drawing a 1,000-point chart;
#   5. scripts/bench-dashboard.sh: the overview in headless chromium with 200 devices at 10 Hz
#      and 10,000 at 1 Hz (frames/s, long tasks), a 1,000-point chart redrawn live in wasm;
#   6. the release .wasm size;
#   7. scripts/bench-cluster.sh: several hubs as one (--cluster-nats, Debian's nats-server):
#      readings/s of one hub vs two linked hubs on this machine, and device → live stream
#      latency with the devices on the stream's hub vs on the other.
#
# Takes about half an hour on 2 cores. Knobs: BENCH_LIVE_RUNS=3 BENCH_LIVE_DEVICES="1000 10000"
# BENCH_LIVE_DURATION=20, BENCH_WARM_UP_S=1 BENCH_MEASURE_S=3 (criterion),
# BENCH_STORE_ARGS (e.g. "--rows 100000"), BENCH_SKIP_GATEWAY=1 (step 1), BENCH_SKIP_STORE=1 (step 2), BENCH_SKIP_LIVE=1 (step
# 3), BENCH_SKIP_CRITERION=1 (step 4), BENCH_SKIP_DASHBOARD=1 (step 5; its knobs BENCH_FLEETS,
# BENCH_SECONDS, BENCH_DASHBOARD_RUNS), BENCH_PROFILE=server-release (the cargo profile built and
# measured; dev takes the debug binaries `cargo test` already built), and those of
# scripts/bench-gateway.sh (BENCH_RUNS, BENCH_DURATION, BENCH_BATCHES="1 10", BENCH_PEER=0,
# BENCH_IDLE_CONNECTIONS, BENCH_IDLE_DURATION, …). A quick trial run:
#   BENCH_RUNS=1 BENCH_DURATION=2 BENCH_IDLE_CONNECTIONS=200 BENCH_IDLE_DURATION=5 \
#   BENCH_STORE_ARGS="--rows 100000" BENCH_LIVE_RUNS=1 BENCH_LIVE_DEVICES=100 bash scripts/bench.sh
# and a quicker form for the test command (scripts/test.sh), after `cargo test`: debug builds,
# tiny loads, every part run once to prove the benchmark works (its figures mean nothing).
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET_DIR=${CARGO_TARGET_DIR:-target}
PROFILE=${BENCH_PROFILE:-server-release}
export BENCH_PROFILE=$PROFILE
# cargo's output folder for a profile: dev and test build into debug/, release and bench into
# release/, a custom profile into its own name.
. scripts/profile-dir.sh
PROFILE_DIR=$(profile_dir "$PROFILE")
BIN="$TARGET_DIR/$PROFILE_DIR"
LIVE_RUNS=${BENCH_LIVE_RUNS:-3}
# Fleet sizes for step 3, each its own runs.
LIVE_DEVICES=${BENCH_LIVE_DEVICES:-1000 10000}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
ulimit -n 65536 2> /dev/null || ulimit -n "$(ulimit -Hn)"

step() { printf '\n######## %s\n' "$*"; }

step "build"
bash scripts/setup.sh
bash scripts/build-site.sh | tee "$out/site.txt"
cargo build --locked -p server --profile "$PROFILE" --bins

if [ "${BENCH_SKIP_GATEWAY:-0}" != 1 ]; then
    step "1. device gateway"
    BENCH_BATCHES=${BENCH_BATCHES:-"1 10"} bash scripts/bench-gateway.sh | tee "$out/gateway.txt"
fi

if [ "${BENCH_SKIP_STORE:-0}" != 1 ]; then
    step "2. store (SQLite)"
    # shellcheck disable=SC2086 # extra arguments, split on purpose
    bash scripts/bench-store.sh --backend sqlite ${BENCH_STORE_ARGS:-} | tee "$out/store.txt"
fi

if [ "${BENCH_SKIP_LIVE:-0}" != 1 ]; then
    for devices in $LIVE_DEVICES; do
    step "3. live latency and page render, $devices devices"
    for run in $(seq 1 "$LIVE_RUNS"); do
        data=$(mktemp -d)
        rm -f "$out/ready.json"
        # The server writes its addresses to --ready-file once every listener is bound.
        "$BIN/iothub" serve --bind 127.0.0.1:0 --data-dir "$data" \
            --site-root target/site --admin-password bench-password --allow-tokenless-devices \
            --ready-file "$out/ready.json" > "$out/server.log" 2>&1 &
        server=$!
        base=""
        for _ in $(seq 1 300); do
            if [ -s "$out/ready.json" ]; then
                base=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["dashboard"])' "$out/ready.json")
                break
            fi
            kill -0 "$server" 2> /dev/null || break
            sleep 0.1
        done
        [ -n "$base" ] || {
            cat "$out/server.log" >&2
            kill -TERM "$server" 2> /dev/null || true
            echo "bench: the server did not write $out/ready.json" >&2
            exit 1
        }
        "$BIN/iothub-bench-live" --base "$base" --devices "$devices" \
            --password bench-password --rate 1 --duration "${BENCH_LIVE_DURATION:-20}" | tee -a "$out/live.txt"
        # The hub's memory with every device still connected (they close when the tool ends,
        # so this is just after: a little low, never high).
        echo "phase=rss devices=$devices kib=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")" | tee -a "$out/live.txt"
        kill -TERM "$server"
        wait "$server" || true
        rm -rf "$data"
        echo "   run $run done"
    done
    done
fi

if [ "${BENCH_SKIP_CRITERION:-0}" != 1 ]; then
    step "4. criterion"
    timing=(--warm-up-time "${BENCH_WARM_UP_S:-1}" --measurement-time "${BENCH_MEASURE_S:-3}")
    cargo bench --locked --profile "$PROFILE" -p server --bench parse -- \
        "${timing[@]}" 2>&1 | tee "$out/parse.txt"
    cargo bench --locked --profile "$PROFILE" -p app --features ssr --bench chart -- \
        "${timing[@]}" 2>&1 | tee "$out/chart.txt"
fi

if [ "${BENCH_SKIP_DASHBOARD:-0}" != 1 ]; then
    step "5. the dashboard in the browser"
    BENCH_SITE_BUILT=1 bash scripts/bench-dashboard.sh | tee "$out/dashboard.txt"
fi

# BENCH_SKIP_CLUSTER=1 leaves it out; its knobs are scripts/bench-cluster.sh's.
if [ "${BENCH_SKIP_CLUSTER:-0}" != 1 ]; then
    step "7. several hubs as one"
    bash scripts/bench-cluster.sh | tee "$out/cluster.txt"
fi

step "figures"
echo "date: $(date -u '+%Y-%m-%d') · $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) · $(rustc --version | cut -d' ' -f1-2) · source $(git rev-parse --short HEAD 2> /dev/null || echo '?')"
python3 - "$out" << 'EOF'
import re, statistics, sys, pathlib
out = pathlib.Path(sys.argv[1])
# A step left out (BENCH_SKIP_*) has no file: its rows are left out of the table.
text = lambda name: (out / name).read_text() if (out / name).exists() else ""

def find(pattern, name, group=1):
    m = re.search(pattern, text(name))
    return m.group(group) if m else "?"

rows = []
gw_conns = find(r"== throughput: (\d+) connections", "gateway.txt")
gw_secs = find(r"== throughput: \d+ connections, (\S+) s at full speed", "gateway.txt")
gateway = text("gateway.txt")
per_cpu = lambda m: f" · {int(m['cpu']):,} per CPU-second" if m["cpu"] else ""
for m in re.finditer(r"^MEDIAN (?P<t>\w+)/(?P<b>\d+) \((?P<n>\d+) runs\): stored/s=(?P<rate>\d+)"
                     r"(?:\s+per_cpu_s=(?P<cpu>\d+))?", gateway, re.M):
    transport, batch = m["t"], int(m["b"])
    devices = {"ws": "WebSocket devices", "tcp": "raw TCP devices"}.get(transport, transport)
    unit = "frame" if transport == "ws" else "write"
    lines = "one CSV line" if batch == 1 else f"{batch} CSV lines"
    rows.append((f"readings/s stored, {gw_conns} {devices}, {lines} per {unit}, {gw_secs} s at full speed",
                 f"{int(m['rate']):,} (median of {m['n']} runs){per_cpu(m)}",
                 "counted in the store after a graceful stop; per CPU-second of the server"))
    key = rf"{transport}/{batch}"
    peer = re.search(rf"^PEER {key} \((?P<n>\d+) runs\): stored/s=(?P<rate>\d+)\s+per_cpu_s=(?P<cpu>\d+)",
                     gateway, re.M)
    if peer:
        rows.append(("the same load against the original Python design (Tornado peer)",
                     f"{int(peer['rate']):,} (median of {peer['n']} runs){per_cpu(peer)}",
                     "scripts/peer/tornado_hub.py, same load; data lines of its CSV files after a graceful stop"))
    ratio = re.search(rf"^RATIO {key}: per_cpu_s hub/peer=(\S+)\s+stored/s hub/peer=(\S+)", gateway, re.M)
    if ratio:
        rows.append((f"hub / Python peer, {devices}, {lines} per {unit}",
                     f"{ratio[1]} per CPU-second · {ratio[2]} per wall second", "ratio of the medians above"))
memory = re.search(r"^MEDIAN memory \((\d+) runs\): -> ([0-9.]+) KiB per idle connection \((\d+) connections",
                   gateway, re.M)
if memory:
    rows.append(("server RSS per idle device connection",
                 f"{memory[2]} KiB ({memory[3]} connections, median of {memory[1]} runs)",
                 "RSS before and 3 s after connecting, divided"))
live = text("live.txt")
parsed = lambda phase: [dict(kv.split("=") for kv in l.split()[1:]) for l in live.splitlines() if l.startswith(f"phase={phase} ")]
med = lambda xs, k: statistics.median(float(x[k]) for x in xs)
# The runs of each fleet size: bench-live prints latency then ttfb, the script then rss.
lat_all, ttfb_all, rss_all = parsed("latency"), parsed("ttfb"), parsed("rss")
for devices in sorted({x["devices"] for x in lat_all}, key=int):
    lat = [x for x in lat_all if x["devices"] == devices]
    ttfb = [t for t, l in zip(ttfb_all, lat_all) if l["devices"] == devices]
    rss = [x for x in rss_all if x["devices"] == devices]
    rows.append((f"device → live stream latency, {int(devices):,} devices × 1 Hz",
                 f"p50 {med(lat, 'p50_ms'):.1f} ms · p99 {med(lat, 'p99_ms'):.1f} ms "
                 f"(medians of {len(lat)} runs, {int(med(lat, 'readings'))} readings each)",
                 "a subscriber on the overview's live stream (its page: 48 devices); send time carried in each reading"))
    if ttfb:
        html = f" · {med(ttfb, 'html_bytes') / 1000:.0f} kB of HTML" if "html_bytes" in ttfb[0] else ""
        rows.append((f"overview page, time to first byte, {int(devices):,} devices online at 1 Hz",
                     f"median {med(ttfb, 'median_ms'):.1f} ms · p95 {med(ttfb, 'p95_ms'):.1f} ms{html}",
                     f"{ttfb[0]['pages']} GETs per run while the devices send"))
    if rss:
        rows.append((f"hub peak RSS, {int(devices):,} devices online at 1 Hz",
                     f"{med(rss, 'kib') / 1024:.0f} MiB (median of {len(rss)} runs)",
                     "VmHWM of the server at the end of the run"))
if text("store.txt"):
    value_rows = find(r"stored: \d+ readings, (\d+) value rows", "store.txt")
    history = find(r"median: ([0-9.]+) ms", "store.txt")
    rows.append((f"history query, 24 h window (≤ 2,000 points) over {value_rows} stored value rows (SQLite)",
                 f"{history} ms (median)", "Store::series, the query behind the device_series server function"))
if text("parse.txt"):
    for name, label in [("csv", "CSV"), ("key_value", "key=value"), ("json", "JSON"), ("registration", "registration (JSON)")]:
        t = find(rf"parse_line/{name}\s+time:\s+\[\S+ \S+ (\S+ \S+) \S+ \S+\]", "parse.txt")
        rows.append((f"parse one line: {label}", t, "criterion (cargo bench -p server --bench parse)"))
if text("chart.txt"):
    chart = find(r"render_chart/1000_points\s+time:\s+\[\S+ \S+ (\S+ \S+) \S+ \S+\]", "chart.txt")
    rows.append(("draw a 1,000-point chart (plotters → SVG), native", chart,
                 "criterion (cargo bench -p app --bench chart); in the browser see scripts/bench-dashboard.sh"))
dashboard = text("dashboard.txt")
for line in dashboard.splitlines():
    if not line.startswith("phase="):
        continue
    f = dict(kv.split("=", 1) for kv in line.split())
    if f["phase"] == "browser":
        devices, rate = int(f["devices"]), int(f["rate"])
        rows.append((f"overview in headless chromium, {devices:,} devices at {rate} Hz ({devices * rate:,} readings/s)",
                     f"{f['fps']} frames/s · {f['long_tasks']} long tasks (> 50 ms, {f['long_task_ms']} ms in all) · "
                     f"{f['updates_per_s']} page updates/s · {f['cards']} cards",
                     f"scripts/bench-dashboard.sh: {f['seconds']} s after a 2 s warm-up, "
                     f"medians of {f['runs']} runs (long tasks: the worst run)"))
    elif f["phase"] == "chart":
        rows.append((f"a {f['points']}-point chart redrawn live in the browser (plotters → SVG, wasm)",
                     f"median {f['median_ms']} ms · p95 {f['p95_ms']} ms · max {f['max_ms']} ms ({f['samples']} redraws)",
                     "same script, from the time each chart records (data-render-ms)"))
bundles = re.findall(r"(\w+) page: \S+ (\d+) KiB raw, (\d+) KiB gzip, (\d+) KiB brotli", text("site.txt"))
if len(bundles) != 4:
    sys.exit(f"bench: expected the sizes of 4 page bundles in site.txt, found {len(bundles)}")
for page, raw, gz, br in bundles:
    rows.append((f"release .wasm after wasm-opt, the {page} page's bundle",
                 f"{raw} KiB raw, {gz} KiB gzip, {br} KiB brotli (what browsers get)",
                 "scripts/build-site.sh"))
cluster = text("cluster.txt")
thr = re.search(r"^MEDIAN cluster throughput \((\d+) runs, (\d+) devices, (\S+) s\): one=(\d+) two=(\d+) "
                r"one_per_cpu_s=(\d+) two_per_cpu_s=(\d+)", cluster, re.M)
if thr:
    rows.append((f"readings/s, {thr[2]} WebSocket devices flooding: one hub vs two hubs linked through NATS (each half the devices)",
                 f"one {int(thr[4]):,} ({int(thr[6]):,} per CPU-second) · two {int(thr[5]):,} ({int(thr[7]):,} per CPU-second, "
                 f"each hub also showing the other's) (medians of {thr[1]} runs)",
                 "scripts/bench-cluster.sh: iothub-load, one machine, each hub its own SQLite store"))
lat = re.search(r"^MEDIAN cluster latency \((\d+) runs, (\d+) devices at (\S+) Hz\): same_p50=(\S+) same_p99=(\S+) "
                r"other_p50=(\S+) other_p99=(\S+)", cluster, re.M)
if lat:
    rows.append((f"device → live stream latency across hubs, {lat[2]} devices at {lat[3]} Hz",
                 f"devices on the stream's hub: p50 {lat[4]} ms · p99 {lat[5]} ms; on the other hub: p50 {lat[6]} ms · "
                 f"p99 {lat[7]} ms (medians of {lat[1]} runs)",
                 "scripts/bench-cluster.sh: iothub-bench-live --device-base"))
print("| figure | value | how |")
print("|---|---|---|")
for r in rows:
    print(f"| {r[0]} | {r[1]} | {r[2]} |")
EOF
