#!/usr/bin/env bash
# Several hubs as one (--cluster-nats) on one machine, with Debian's nats-server:
#   1. readings/s taken by one hub alone, and by two hubs linked through NATS, each with half
#      the devices and both loads at once (their sum), with the hubs' CPU-seconds: what the
#      link costs (each hub also applies every reading of the other);
#   2. device → live stream latency (iothub-bench-live) with the devices on the same hub as the
#      stream, and on the other hub (--device-base): what the way through NATS adds.
# Each hub keeps its own SQLite store here (a shared PostgreSQL is what a real system has; this
# measures the link). Medians of BENCH_CLUSTER_RUNS (3) runs. Knobs: BENCH_CLUSTER_CONNECTIONS
# (100 devices flooding, one line per frame), BENCH_CLUSTER_DURATION (10 s),
# BENCH_CLUSTER_LIVE_DEVICES (100), BENCH_CLUSTER_LIVE_RATE (10 readings/s each),
# BENCH_CLUSTER_LIVE_DURATION (10 s), BENCH_PROFILE (server-release; dev for the quick form).
# Prints RUN lines, then the MEDIAN lines scripts/bench.sh reads.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${BENCH_CLUSTER_RUNS:-3}
CONNECTIONS=${BENCH_CLUSTER_CONNECTIONS:-100}
DURATION=${BENCH_CLUSTER_DURATION:-10}
LIVE_DEVICES=${BENCH_CLUSTER_LIVE_DEVICES:-100}
LIVE_RATE=${BENCH_CLUSTER_LIVE_RATE:-10}
LIVE_DURATION=${BENCH_CLUSTER_LIVE_DURATION:-10}
PROFILE=${BENCH_PROFILE:-server-release}
. scripts/profile-dir.sh
PROFILE_DIR=$(profile_dir "$PROFILE")
BIN="${CARGO_TARGET_DIR:-target}/$PROFILE_DIR"
NATS_SERVER=${NATS_SERVER:-/usr/sbin/nats-server}
[ -x "$NATS_SERVER" ] || { echo "bench-cluster: $NATS_SERVER is missing (apt install nats-server)" >&2; exit 1; }
cargo build --locked -p server --profile "$PROFILE" --bins
CLK_TCK=$(getconf CLK_TCK)
ulimit -n 65536 2> /dev/null || true

work=$(mktemp -d "${TMPDIR:-/tmp}/iothub-bench-cluster.XXXXXX")
pids=()
cleanup() {
    for pid in "${pids[@]}"; do stop_hub "$pid"; done
    rm -rf "$work"
}
trap cleanup EXIT

cpu_seconds() { awk -v hz="$CLK_TCK" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat"; }
field() { tr ' ' '\n' <<< "$2" | sed -n "s/^$1=//p" | head -n 1; }

# A free port on 127.0.0.1.
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start_nats() {
    NATS_PORT=$(free_port)
    "$NATS_SERVER" --addr 127.0.0.1 --port "$NATS_PORT" --jetstream --store_dir "$work/nats" \
        > "$work/nats.log" 2>&1 &
    NATS_PID=$!
    pids+=("$NATS_PID")
    for _ in $(seq 100); do
        (exec 3<> "/dev/tcp/127.0.0.1/$NATS_PORT") 2> /dev/null && return 0
        sleep 0.1
    done
    echo "bench-cluster: nats-server did not start" >&2
    exit 1
}

# Starts a hub named $1 (extra flags follow); sets HUB_PID and HUB_ADDR (host:port).
start_hub() {
    local name=$1 dir="$work/$1"
    shift
    mkdir -p "$dir"
    "$BIN/iothub" serve --bind 127.0.0.1:0 --data-dir "$dir/data" --site-root target/site \
        --admin-password bench-password --allow-tokenless-devices --max-devices 1000000 \
        --max-readings-per-sec 10000000 --ready-file "$dir/ready.json" "$@" > "$dir/log" 2>&1 &
    HUB_PID=$!
    pids+=("$HUB_PID")
    for _ in $(seq 300); do
        [ -s "$dir/ready.json" ] && break
        kill -0 "$HUB_PID" 2> /dev/null || { cat "$dir/log" >&2; exit 1; }
        sleep 0.1
    done
    HUB_ADDR=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["dashboard"].split("://")[1])' "$dir/ready.json")
}

stop_hub() { kill -TERM "$1" 2> /dev/null || true; wait "$1" 2> /dev/null || true; }

# Floods hub $1 (host:port) with $2 devices named from $3 on; prints the load's done line.
flood() {
    "$BIN/iothub-load" --url "ws://$1/ws/device" --connections "$2" --first-id "$3" \
        --duration "$DURATION" --batch 1 --drain-timeout 600 2> /dev/null | grep '^phase=done'
}

for run in $(seq 1 "$RUNS"); do
    # 1. Throughput: one hub alone, then two linked hubs, half the devices each.
    start_hub "one-$run"
    one=$HUB_PID
    done_line=$(flood "$HUB_ADDR" "$CONNECTIONS" 1)
    echo "RUN throughput hubs=1 readings_per_s=$(field sent_per_s "$done_line") readings=$(field sent "$done_line") cpu_s=$(cpu_seconds "$one")"
    stop_hub "$one"

    start_nats
    link=(--cluster-nats "nats://127.0.0.1:$NATS_PORT")
    start_hub "a-$run" "${link[@]}" --cluster-hub-id a
    a=$HUB_PID a_addr=$HUB_ADDR
    start_hub "b-$run" "${link[@]}" --cluster-hub-id b
    b=$HUB_PID b_addr=$HUB_ADDR
    half=$((CONNECTIONS / 2))
    flood "$a_addr" "$half" 1 > "$work/a.done" &
    flood_a=$!
    flood "$b_addr" "$half" $((half + 1)) > "$work/b.done"
    wait "$flood_a"
    rate_a=$(field sent_per_s "$(cat "$work/a.done")")
    rate_b=$(field sent_per_s "$(cat "$work/b.done")")
    sent=$(($(field sent "$(cat "$work/a.done")") + $(field sent "$(cat "$work/b.done")")))
    echo "RUN throughput hubs=2 readings_per_s=$(python3 -c "print(round($rate_a + $rate_b, 1))") readings=$sent cpu_s=$(python3 -c "print(round($(cpu_seconds "$a") + $(cpu_seconds "$b"), 2))")"

    # 2. Latency, on two fresh hubs (the flood's devices would fill the overview's first page,
    # whose devices the stream carries): the stream on A, the devices on A, then on B.
    stop_hub "$a"
    stop_hub "$b"
    start_hub "la-$run" "${link[@]}" --cluster-hub-id a
    a=$HUB_PID a_addr=$HUB_ADDR
    start_hub "lb-$run" "${link[@]}" --cluster-hub-id b
    b=$HUB_PID b_addr=$HUB_ADDR
    for where in same other; do
        device_base="http://$a_addr/"
        [ "$where" = other ] && device_base="http://$b_addr/"
        line=$("$BIN/iothub-bench-live" --base "http://$a_addr/" --device-base "$device_base" \
            --devices "$LIVE_DEVICES" --rate "$LIVE_RATE" --duration "$LIVE_DURATION" --warmup 1 \
            --pages 1 --password bench-password 2> /dev/null | grep '^phase=latency')
        echo "RUN latency devices_on=$where $line"
    done
    stop_hub "$a"
    stop_hub "$b"
    stop_hub "$NATS_PID"
    pids=()
done > "$work/runs.txt"
cat "$work/runs.txt"

python3 - "$work/runs.txt" "$RUNS" "$CONNECTIONS" "$DURATION" "$LIVE_DEVICES" "$LIVE_RATE" << 'PY'
import statistics, sys
runs = [dict(kv.split("=", 1) for kv in line.split()[2:]) | {"kind": line.split()[1]}
        for line in open(sys.argv[1]) if line.startswith("RUN ")]
n, conns, secs, live_devices, live_rate = sys.argv[2:]
med = lambda xs: statistics.median(xs)
thr = lambda hubs: [r for r in runs if r["kind"] == "throughput" and r["hubs"] == hubs]
rate = lambda hubs: med([float(r["readings_per_s"]) for r in thr(hubs)])
per_cpu = lambda hubs: med([float(r["readings"]) / max(float(r["cpu_s"]), 0.01) for r in thr(hubs)])
print(f"MEDIAN cluster throughput ({n} runs, {conns} devices, {secs} s): "
      f"one={rate('1'):.0f} two={rate('2'):.0f} one_per_cpu_s={per_cpu('1'):.0f} two_per_cpu_s={per_cpu('2'):.0f}")
lat = lambda where, key: med([float(r[key]) for r in runs if r["kind"] == "latency" and r["devices_on"] == where])
print(f"MEDIAN cluster latency ({n} runs, {live_devices} devices at {live_rate} Hz): "
      f"same_p50={lat('same', 'p50_ms'):.1f} same_p99={lat('same', 'p99_ms'):.1f} "
      f"other_p50={lat('other', 'p50_ms'):.1f} other_p99={lat('other', 'p99_ms'):.1f}")
PY
