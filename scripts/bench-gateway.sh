#!/usr/bin/env bash
# Benchmarks the device gateway with the release build, everything on 127.0.0.1:
#
#  1. Throughput: 100 WebSocket devices send CSV lines (`ID,COUNTER,TEMP`) as fast as they can
#     for 10 s; the server is then stopped gracefully (it flushes its store) and the readings in
#     the SQLite store are counted. Reported: stored readings / elapsed seconds, where elapsed
#     runs from the start of sending until the server had read every line sent, and stored
#     readings per CPU-second of the server. Each batch size (lines per frame) is run BENCH_RUNS
#     times on a fresh server and data folder; every run and the median are printed.
#     For WebSocket devices each run is followed by the same load against the peer,
#     scripts/peer/tornado_hub.py: the original Python (Tornado) design of the hub, which keeps
#     readings in a list and appends them to per-day CSV files every 200 ms. It runs from a venv
#     in ${XDG_CACHE_HOME:-~/.cache}/iothub/peer-venv (made here, tornado from
#     scripts/peer/requirements.txt); its stored readings are the data lines of its CSV files.
#     Printed: PEER medians and RATIO hub/peer lines beside the hub's MEDIAN lines.
#  2. Memory: 10,000 idle devices (one line each, then only answering pings); the server's
#     resident memory (VmRSS) before and after, per connection (median of BENCH_MEMORY_RUNS,
#     by default BENCH_RUNS, runs).
#
# Knobs (environment): BENCH_RUNS=3 BENCH_DURATION=10 BENCH_CONNECTIONS=100 BENCH_BATCHES="1 10"
# BENCH_TRANSPORTS="ws tcp" BENCH_LOAD_THREADS=1 BENCH_IDLE_CONNECTIONS=10000
# BENCH_IDLE_DURATION=30 BENCH_MEMORY_RUNS=$BENCH_RUNS BENCH_CONNECT_CONCURRENCY=200 BENCH_SETTLE=3
# BENCH_SKIP_THROUGHPUT=1
# BENCH_SKIP_MEMORY=1 BENCH_PEER=0 (no Python peer) BENCH_PROFILE=server-release (the cargo
# profile built and measured; dev uses the debug binaries that `cargo test` leaves, for a quick
# trial in CI) BENCH_KEEP=1 (keep the temp folder with server logs, databases and CSV files).
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${BENCH_RUNS:-3}
DURATION=${BENCH_DURATION:-10}
CONNECTIONS=${BENCH_CONNECTIONS:-100}
BATCHES=${BENCH_BATCHES:-"1 10"}
# Device transports measured: WebSocket (/ws/device) and raw TCP lines (--tcp-listen).
TRANSPORTS=${BENCH_TRANSPORTS:-"ws tcp"}
# Worker threads of the load generator. It shares the machine with the server; one thread
# leaves the other cores to the server under test.
LOAD_THREADS=${BENCH_LOAD_THREADS:-1}
# SO_SNDBUF of each load connection. Linux autotunes send buffers up to megabytes, so senders
# faster than the server would queue minutes of lines that the server must still read (and
# store) after the sending phase; a small buffer, as on a real device, keeps that tail short.
SEND_BUFFER=${BENCH_SEND_BUFFER:-16384}
IDLE_CONNECTIONS=${BENCH_IDLE_CONNECTIONS:-10000}
IDLE_DURATION=${BENCH_IDLE_DURATION:-30}
CONNECT_CONCURRENCY=${BENCH_CONNECT_CONCURRENCY:-200}
SETTLE=${BENCH_SETTLE:-3}
MEMORY_RUNS=${BENCH_MEMORY_RUNS:-$RUNS}
# Per-device limit for the throughput runs: high enough never to refuse a reading.
MAX_RATE=10000000
# The Python peer (WebSocket only): BENCH_PEER=0 leaves it out.
PEER=${BENCH_PEER:-1}
PEER_VENV="${XDG_CACHE_HOME:-$HOME/.cache}/iothub/peer-venv"
PEER_REQUIREMENTS=scripts/peer/requirements.txt
PROFILE=${BENCH_PROFILE:-server-release}
# cargo's output folder for a profile: dev and test build into debug/, release and bench into
# release/, a custom profile into its own name.
. scripts/profile-dir.sh
PROFILE_DIR=$(profile_dir "$PROFILE")
TARGET_DIR=${CARGO_TARGET_DIR:-target}
IOTHUB="$TARGET_DIR/$PROFILE_DIR/iothub"
LOAD="$TARGET_DIR/$PROFILE_DIR/iothub-load"

die() {
    echo "bench-gateway: $*" >&2
    exit 1
}

command -v python3 > /dev/null || die "python3 is needed (its sqlite3 module counts the stored readings)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/iothub-bench.XXXXXX")
SERVER_PID=""
PEER_PID=""
LOAD_PID=""

# Ends a process this script started: SIGTERM, up to 10 s grace, then SIGKILL; reaps it.
end_process() {
    local pid=$1
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2> /dev/null; then
        kill -TERM "$pid" 2> /dev/null || true
        for _ in $(seq 100); do
            exited "$pid" && break
            sleep 0.1
        done
        exited "$pid" || kill -KILL "$pid" 2> /dev/null || true
    fi
    wait "$pid" 2> /dev/null || true
}

# True once the process is gone or a zombie (exited but not yet reaped).
exited() {
    local state
    state=$(awk '{print $3}' "/proc/$1/stat" 2> /dev/null || true)
    [ -z "$state" ] || [ "$state" = Z ]
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    end_process "$LOAD_PID"
    end_process "$SERVER_PID"
    end_process "$PEER_PID"
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "bench-gateway: kept $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Limits: each idle connection costs one descriptor in the server and one in the load tool (two
# processes, each needing IDLE_CONNECTIONS + some), and one local port.
want_fds=$((IDLE_CONNECTIONS + 1024))
ulimit -n 65536 2> /dev/null || ulimit -n "$(ulimit -Hn)" 2> /dev/null || true
have_fds=$(ulimit -n)
if [ "$have_fds" != unlimited ] && [ "$have_fds" -lt "$want_fds" ]; then
    die "open-file limit is $have_fds (hard limit $(ulimit -Hn)); $IDLE_CONNECTIONS connections need at least $want_fds. Raise it (e.g. 'ulimit -Hn 65536' as root, or LimitNOFILE= / limits.conf) or set BENCH_IDLE_CONNECTIONS lower."
fi
if [ -r /proc/sys/net/ipv4/ip_local_port_range ]; then
    read -r port_lo port_hi < /proc/sys/net/ipv4/ip_local_port_range
    if [ $((port_hi - port_lo + 1)) -lt $((IDLE_CONNECTIONS + 1000)) ]; then
        die "only $((port_hi - port_lo + 1)) local ports ($port_lo-$port_hi) for $IDLE_CONNECTIONS connections; widen net.ipv4.ip_local_port_range"
    fi
fi

# ---------------------------------------------------------------------------------------------
echo "== building (profile $PROFILE)"
cargo build --locked -p server --profile "$PROFILE" --bins
[ -x "$IOTHUB" ] && [ -x "$LOAD" ] || die "missing $IOTHUB or $LOAD after the build"

CLK_TCK=$(getconf CLK_TCK)

# Sleeps $1 whole seconds in steps of one, so that signals (traps) are handled within a second.
pause() {
    local i
    for ((i = 0; i < $1; i++)); do sleep 1; done
}

# CPU seconds (user + system) a process has used so far.
cpu_seconds() {
    awk -v hz="$CLK_TCK" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / hz }' "/proc/$1/stat"
}

# VmRSS (or another /proc/PID/status field) in KiB.
status_kib() {
    awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/status"
}

# The value of key=value in a line of the load tool's output.
field() {
    tr ' ' '\n' <<< "$2" | sed -n "s/^$1=//p" | head -n 1
}

# Prints the JSON string fields $2, $3, ... of the ready file $1, one per line ("-" for null or
# missing), without a URL's scheme (http://127.0.0.1:3000 -> 127.0.0.1:3000).
ready_fields() {
    python3 -c '
import json, sys
ready = json.load(open(sys.argv[1]))
for key in sys.argv[2:]:
    value = ready.get(key) or "-"
    print(str(value).split("://", 1)[-1].rstrip("/"))
' "$@"
}

# Waits (up to 30 s) for process $1 to write its ready file $2; on failure shows the log $3.
wait_ready() {
    for _ in $(seq 300); do
        [ -s "$2" ] && return 0
        if exited "$1"; then
            cat "$3" >&2
            die "$4 exited during start-up"
        fi
        sleep 0.1
    done
    cat "$3" >&2
    die "$4 did not write $2 within 30 s"
}

# Starts `iothub serve` on 127.0.0.1:0 with a fresh data folder in $1; extra flags follow.
# Sets SERVER_PID, SERVER_ADDR, TCP_ADDR (host:port), SERVER_LOG, SERVER_DB. The addresses come
# from the server's --ready-file, written once every listener is bound.
start_server() {
    local dir=$1
    shift
    mkdir -p "$dir"
    SERVER_LOG="$dir/server.log"
    SERVER_DB="$dir/data/iothub.db"
    rm -f "$dir/ready.json"
    "$IOTHUB" serve --bind 127.0.0.1:0 --data-dir "$dir/data" --site-root "$dir/no-site" \
        --simulate 0 --allow-tokenless-devices --tcp-listen 127.0.0.1:0 --max-devices 1000000 \
        --ready-file "$dir/ready.json" --admin-password bench-gateway "$@" > "$SERVER_LOG" 2>&1 &
    SERVER_PID=$!
    wait_ready "$SERVER_PID" "$dir/ready.json" "$SERVER_LOG" "the server"
    local addrs
    addrs=$(ready_fields "$dir/ready.json" dashboard tcp) || die "cannot read $dir/ready.json"
    SERVER_ADDR=${addrs%%$'\n'*}
    TCP_ADDR=${addrs#*$'\n'}
    [ "$SERVER_ADDR" != - ] || die "no dashboard address in $dir/ready.json"
}

# Starts the Python peer on 127.0.0.1:0, CSV files in $1/data. Sets PEER_PID, PEER_URL,
# PEER_LOG, PEER_DATA.
start_peer() {
    local dir=$1
    mkdir -p "$dir"
    PEER_LOG="$dir/peer.log"
    PEER_DATA="$dir/data"
    rm -f "$dir/ready.json"
    "$PEER_VENV/bin/python" scripts/peer/tornado_hub.py --port 0 --data-dir "$PEER_DATA" \
        --ready-file "$dir/ready.json" > "$PEER_LOG" 2>&1 &
    PEER_PID=$!
    wait_ready "$PEER_PID" "$dir/ready.json" "$PEER_LOG" "the peer"
    PEER_URL=$(ready_fields "$dir/ready.json" ws) || die "cannot read $dir/ready.json"
    PEER_URL="ws://$PEER_URL"
}

# SIGTERM to process $1 and wait (up to 120 s) for its graceful stop, which writes what it
# still holds; it must exit with status 0. $2 is its log, $3 what it is. Sets STOP_S.
graceful_stop() {
    local pid=$1 log=$2 what=$3 started=$SECONDS
    kill -TERM "$pid"
    for _ in $(seq 1200); do
        exited "$pid" && break
        sleep 0.1
    done
    if ! exited "$pid"; then
        tail -n 20 "$log" >&2
        die "$what did not stop within 120 s of SIGTERM"
    fi
    local rc=0
    wait "$pid" || rc=$?
    [ "$rc" = 0 ] || {
        tail -n 20 "$log" >&2
        die "$what exited with status $rc"
    }
    STOP_S=$((SECONDS - started))
}

stop_server() {
    graceful_stop "$SERVER_PID" "$SERVER_LOG" "the server"
    SERVER_PID=""
}

stop_peer() {
    graceful_stop "$PEER_PID" "$PEER_LOG" "the peer"
    PEER_PID=""
}

# Prints "STORED SPAN_S PEAK IN_WINDOW ACCEPTED" for the database $1 and the sending window
# [$2, $3] (Unix ms): stored readings (the store keeps them in blocks, one per device per
# flush, each with its count and first and last receive time); seconds between the first and
# the last receive time; the busiest wall-clock second and the readings received within the
# window (both by each block's first time: a block spans one flush interval, 250 ms); and the
# highest reading number the server handed out (the registry numbers every accepted reading
# 1, 2, 3, ..., so ACCEPTED = STORED means none was lost between them).
count_stored() {
    python3 - "$@" << 'EOF'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
t0, t1 = int(sys.argv[2]), int(sys.argv[3])
n, first, last, accepted = db.execute(
    "SELECT COALESCE(SUM(readings), 0), MIN(first_ms), MAX(last_ms), MAX(last_seq) FROM blocks"
).fetchone()
(peak,) = db.execute(
    "SELECT COALESCE(MAX(c), 0) FROM (SELECT SUM(readings) AS c FROM blocks GROUP BY first_ms / 1000)"
).fetchone()
(in_window,) = db.execute(
    "SELECT COALESCE(SUM(readings), 0) FROM blocks WHERE first_ms >= ? AND first_ms < ?", (t0, t1)
).fetchone()
print(n, f"{((last or 0) - (first or 0)) / 1000:.2f}", peak, in_window, accepted or 0)
EOF
}

# Readings the peer stored: the data lines (all but the header) of its CSV files in $1.
count_peer_stored() {
    local file n=0
    for file in "$1"/readings-*.csv; do
        [ -e "$file" ] || continue
        n=$((n + $(tail -n +2 "$file" | wc -l)))
    done
    echo "$n"
}

# Makes the peer's venv ($PEER_VENV) with the pinned tornado, unless it already has exactly
# $PEER_REQUIREMENTS (a copy is kept in the venv). Debian's python3 needs python3-venv for
# `python3 -m venv`; it is installed if missing (as root, or with sudo).
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
setup_peer() {
    if [ -x "$PEER_VENV/bin/python" ] && cmp -s "$PEER_REQUIREMENTS" "$PEER_VENV/requirements.txt"; then
        return 0
    fi
    local no_venv="python3 -m venv needs Debian's python3-venv: apt-get install python3-venv (or BENCH_PEER=0 leaves out the peer)"
    echo "== making the peer's venv $PEER_VENV ($(grep -v '^#' "$PEER_REQUIREMENTS" | xargs))"
    rm -rf "$PEER_VENV"
    mkdir -p "$(dirname "$PEER_VENV")"
    if ! python3 -m venv "$PEER_VENV" > "$WORK/venv.log" 2>&1; then
        rm -rf "$PEER_VENV"
        if command -v apt-get > /dev/null && ! dpkg -s python3-venv > /dev/null 2>&1; then
            echo "bench-gateway: python3 -m venv failed; installing python3-venv from Debian"
            as_root apt-get update -qq || die "$no_venv"
            as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv > /dev/null \
                || die "$no_venv"
        fi
        python3 -m venv "$PEER_VENV" > "$WORK/venv.log" 2>&1 || {
            cat "$WORK/venv.log" >&2
            rm -rf "$PEER_VENV"
            die "$no_venv"
        }
    fi
    "$PEER_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        -r "$PEER_REQUIREMENTS" || die "could not install $PEER_REQUIREMENTS into $PEER_VENV"
    cp "$PEER_REQUIREMENTS" "$PEER_VENV/requirements.txt"
}

# CPU seconds per thread name of process $1, e.g. "tokio-rt-worker=12.30 sqlx-sqlite-wor=8.10".
thread_cpu() {
    local t
    for t in /proc/"$1"/task/*; do
        printf '%s %s\n' "$(tr ' ' _ < "$t/comm")" "$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "$t/stat")"
    done | awk -v hz="$CLK_TCK" '{ cpu[$1] += $2 } END { for (n in cpu) printf "%s=%.2f ", n, cpu[n] / hz }'
}

# Counts of WARN/ERROR lines in a server log, leaving out the warning the benchmark asks for
# (devices connect without tokens).
log_problems() {
    printf 'warn=%s error=%s' "$(grep ' WARN ' "$1" | grep -vc 'allow-tokenless-devices' || true)" \
        "$(grep -c ' ERROR ' "$1" || true)"
}

# The peer runs beside the WebSocket throughput runs.
PEER_ON=0
if [ "$PEER" != 0 ] && [ "${BENCH_SKIP_THROUGHPUT:-0}" != 1 ] && [[ " $TRANSPORTS " == *" ws "* ]]; then
    PEER_ON=1
    setup_peer
fi

echo
echo "== conditions"
echo "date:        $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "host:        nproc=$(nproc), $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2> /dev/null || echo '?'), $(awk '/MemTotal/ {printf "%.1f GiB RAM", $2 / 1048576}' /proc/meminfo)"
echo "kernel:      $(uname -sr)"
echo "source:      $(git rev-parse --short HEAD 2> /dev/null || echo 'not a git checkout')$(git status --porcelain 2> /dev/null | grep -q . && echo ' (with uncommitted changes)' || true)"
echo "load avg:    $(cut -d' ' -f1-3 /proc/loadavg) (other work on this machine competes for the same cores)"
echo "open files:  $have_fds"
echo "load tool:   $LOAD (threads=$LOAD_THREADS, send buffer $SEND_BUFFER B), same machine as the server, over loopback"
if [ "$PEER_ON" = 1 ]; then
    echo "peer:        scripts/peer/tornado_hub.py, $("$PEER_VENV/bin/python" -c 'import sys, tornado; print(f"Python {sys.version.split()[0]}, tornado {tornado.version}")'), one process (the original Python design), WebSocket only"
fi

# Runs the load tool against the URL $1 with the throughput flags, batch size $3; its output
# goes to $2/load.out and $2/load.err. Sets DONE_LINE (its phase=done line).
run_load() {
    local url=$1 dir=$2 batch=$3 rc=0
    # In the background and waited for, so that a signal to this script ends the run at once
    # (bash runs traps only between foreground commands).
    "$LOAD" --url "$url" --connections "$CONNECTIONS" \
        --duration "$DURATION" --batch "$batch" --threads "$LOAD_THREADS" \
        --connect-concurrency "$CONNECT_CONCURRENCY" --send-buffer "$SEND_BUFFER" \
        --drain-timeout 600 > "$dir/load.out" 2> "$dir/load.err" &
    LOAD_PID=$!
    wait "$LOAD_PID" || rc=$?
    LOAD_PID=""
    [ "$rc" = 0 ] || {
        cat "$dir/load.err" >&2
        die "the load tool failed with status $rc against $url (batch $batch, run ${run:-?})"
    }
    DONE_LINE=$(grep '^phase=done' "$dir/load.out" || true)
    [ -n "$DONE_LINE" ] || die "no summary from the load tool: $(cat "$dir/load.out")"
}

# Counts of WARNING/ERROR lines in the peer's log.
peer_log_problems() {
    printf 'warn=%s error=%s' "$(grep -c '^WARNING' "$1" || true)" "$(grep -c '^ERROR' "$1" || true)"
}

RESULTS="$WORK/throughput.tsv"
PEER_RESULTS="$WORK/throughput-peer.tsv"
: > "$RESULTS"
: > "$PEER_RESULTS"

if [ "${BENCH_SKIP_THROUGHPUT:-0}" != 1 ]; then
    echo
    echo "== throughput: $CONNECTIONS connections, ${DURATION} s at full speed, $RUNS runs per batch size"
    echo "   server: --max-readings-per-sec $MAX_RATE, other flags default (flush every 250 ms / 5000 values)"
    if [ "$PEER_ON" = 1 ]; then
        echo "   peer: the same load after each WebSocket run (hub run, peer run, alternating)"
    fi
    for transport in $TRANSPORTS; do
    for batch in $BATCHES; do
        for run in $(seq "$RUNS"); do
            dir="$WORK/tp-$transport-b$batch-r$run"
            start_server "$dir" --max-readings-per-sec "$MAX_RATE"
            load1=$(cut -d' ' -f1 /proc/loadavg)
            cpu_before=$(cpu_seconds "$SERVER_PID")
            case $transport in
                ws) url="ws://$SERVER_ADDR/ws/device" ;;
                tcp)
                    [ "$TCP_ADDR" != - ] || die "the server reported no raw TCP address"
                    url="tcp://$TCP_ADDR"
                    ;;
                *) die "BENCH_TRANSPORTS: unknown transport $transport (ws, tcp)" ;;
            esac
            run_load "$url" "$dir" "$batch"
            done_line=$DONE_LINE
            cpu_after=$(cpu_seconds "$SERVER_PID")
            threads=$(thread_cpu "$SERVER_PID")
            rss_kib=$(status_kib "$SERVER_PID" VmRSS)
            stop_server
            [ -f "$SERVER_DB" ] || die "no database at $SERVER_DB"
            t0=$(field send_start_unix_ms "$done_line")
            t1=$(field send_end_unix_ms "$done_line")
            read -r stored span_s peak_s in_window accepted <<< "$(count_stored "$SERVER_DB" "$t0" "$t1")"
            sent=$(field sent "$done_line")
            elapsed=$(field elapsed_s "$done_line")
            server_cpu=$(awk -v a="$cpu_before" -v b="$cpu_after" 'BEGIN {printf "%.2f", b - a}')
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
                "$transport/$batch" "$run" "$(field connected "$done_line")" "$sent" \
                "$(field errors_received "$done_line")" "$stored" "$(field send_s "$done_line")" \
                "$elapsed" "$server_cpu" \
                "$(field client_cpu_s "$done_line")" "$load1" "$STOP_S" \
                "$(field closed_early "$done_line")" "$(field drain_timeouts "$done_line")" \
                "$rss_kib" "$(log_problems "$SERVER_LOG")" "$span_s" "$peak_s" \
                "$(field closed_uncleanly "$done_line")" "$in_window" "$(field send_s "$done_line")" \
                "$accepted" >> "$RESULTS"
            echo "   $transport batch=$batch run=$run: $done_line"
            echo "     stored=$stored accepted=$accepted received_while_sending=$in_window first-to-last_received_s=$span_s busiest_second=$peak_s"
            echo "     server CPU s by thread: $threads"
            echo "     server_cpu_s=$server_cpu server_rss_kib=$rss_kib stop_s=$STOP_S log: $(log_problems "$SERVER_LOG")"
            if [ -s "$dir/load.err" ]; then sed 's/^/     load: /' "$dir/load.err"; fi

            # The same load against the Python peer.
            [ "$transport" = ws ] && [ "$PEER_ON" = 1 ] || continue
            pdir="$dir/peer"
            start_peer "$pdir"
            load1=$(cut -d' ' -f1 /proc/loadavg)
            cpu_before=$(cpu_seconds "$PEER_PID")
            run_load "$PEER_URL" "$pdir" "$batch"
            done_line=$DONE_LINE
            cpu_after=$(cpu_seconds "$PEER_PID")
            rss_kib=$(status_kib "$PEER_PID" VmRSS)
            stop_peer
            stored=$(count_peer_stored "$PEER_DATA")
            peer_cpu=$(awk -v a="$cpu_before" -v b="$cpu_after" 'BEGIN {printf "%.2f", b - a}')
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
                "$transport/$batch" "$run" "$(field connected "$done_line")" \
                "$(field sent "$done_line")" "$(field errors_received "$done_line")" "$stored" \
                "$(field send_s "$done_line")" "$(field elapsed_s "$done_line")" "$peer_cpu" \
                "$(field client_cpu_s "$done_line")" "$load1" "$STOP_S" \
                "$(field closed_early "$done_line")" "$(field drain_timeouts "$done_line")" \
                "$rss_kib" "$(peer_log_problems "$PEER_LOG")" \
                "$(field closed_uncleanly "$done_line")" >> "$PEER_RESULTS"
            echo "   peer $transport batch=$batch run=$run: $done_line"
            echo "     stored=$stored peer_cpu_s=$peer_cpu peer_rss_kib=$rss_kib stop_s=$STOP_S log: $(peer_log_problems "$PEER_LOG")"
            if [ -s "$pdir/load.err" ]; then sed 's/^/     load: /' "$pdir/load.err"; fi
        done
    done
    done
    echo
    python3 - "$RESULTS" "$PEER_RESULTS" << 'EOF'
import statistics, sys
cols = ["batch", "run", "conns", "sent", "errors", "stored", "send_s", "elapsed_s",
        "srv_cpu_s", "cli_cpu_s", "load1", "stop_s", "closed_early", "drain_to", "rss_kib", "log",
        "span_s", "peak", "unclean", "in_window", "send_s2", "accepted"]
peer_cols = ["batch", "run", "conns", "sent", "errors", "stored", "send_s", "elapsed_s",
             "srv_cpu_s", "cli_cpu_s", "load1", "stop_s", "closed_early", "drain_to", "rss_kib",
             "log", "unclean"]
read = lambda path, names: [dict(zip(names, line.rstrip("\n").split("\t")))
                            for line in open(path) if line.strip()]
rows, peer_rows = read(sys.argv[1], cols), read(sys.argv[2], peer_cols)
median = statistics.median

def per_cpu(r):
    return int(r["stored"]) / max(float(r["srv_cpu_s"]), 0.01)

def problems(r):
    if (r["closed_early"], r["drain_to"], r["errors"], r["log"]) != ("0", "0", "0", "warn=0 error=0"):
        print(f"      ! closed_early={r['closed_early']} drain_timeouts={r['drain_to']} "
              f"errors={r['errors']} log {r['log']}")

head = ("how", "run", "sent", "errors", "stored", "stored/sent", "lost", "elapsed_s", "stored/s",
        "while-sending/s", "peak 1s", "per CPU s", "srv CPU", "cli CPU", "load1")
fmt = "{:>7} {:>3} {:>9} {:>6} {:>9} {:>11} {:>4} {:>9} {:>8} {:>15} {:>7} {:>9} {:>7} {:>7} {:>5}"
print("hub:")
print(fmt.format(*head))
by_batch = {}
for r in rows:
    sent, stored, el = int(r["sent"]), int(r["stored"]), float(r["elapsed_s"])
    rate = stored / el
    window_rate = int(r["in_window"]) / float(r["send_s2"])
    lost = int(r["accepted"]) - stored
    by_batch.setdefault(r["batch"], []).append((rate, window_rate, stored / max(sent, 1), el, per_cpu(r)))
    print(fmt.format(r["batch"], r["run"], sent, r["errors"], stored, f"{stored / max(sent, 1):.4f}",
                     lost, f"{el:.2f}", f"{rate:.0f}", f"{window_rate:.0f}", r["peak"],
                     f"{per_cpu(r):.0f}", f"{100 * float(r['srv_cpu_s']) / el:.0f}%",
                     f"{100 * float(r['cli_cpu_s'] or 0) / el:.0f}%", r["load1"]))
    problems(r)
peer_batch = {}
if peer_rows:
    head = ("how", "run", "sent", "errors", "stored", "stored/sent", "elapsed_s", "stored/s",
            "per CPU s", "srv CPU", "cli CPU", "rss_kib", "stop_s", "load1")
    fmt = "{:>7} {:>3} {:>9} {:>6} {:>9} {:>11} {:>9} {:>8} {:>9} {:>7} {:>7} {:>7} {:>6} {:>5}"
    print("peer (scripts/peer/tornado_hub.py, the original Python design):")
    print(fmt.format(*head))
    for r in peer_rows:
        sent, stored, el = int(r["sent"]), int(r["stored"]), float(r["elapsed_s"])
        peer_batch.setdefault(r["batch"], []).append((stored / el, per_cpu(r), stored / max(sent, 1), el))
        print(fmt.format(r["batch"], r["run"], sent, r["errors"], stored, f"{stored / max(sent, 1):.4f}",
                         f"{el:.2f}", f"{stored / el:.0f}", f"{per_cpu(r):.0f}",
                         f"{100 * float(r['srv_cpu_s']) / el:.0f}%",
                         f"{100 * float(r['cli_cpu_s'] or 0) / el:.0f}%", r["rss_kib"], r["stop_s"],
                         r["load1"]))
        problems(r)
unclean = sum(int(r["unclean"] or 0) for r in rows + peer_rows)
if unclean:
    print(f"note: {unclean} of {sum(int(r['conns']) for r in rows + peer_rows)} connections ended without the "
          "server's close frame after the load tool closed them (see 'load:' lines above)")
for batch, v in by_batch.items():
    print(f"MEDIAN {batch} ({len(v)} runs): stored/s={median(x[0] for x in v):.0f}"
          f"  per_cpu_s={median(x[4] for x in v):.0f}"
          f"  while-sending/s={median(x[1] for x in v):.0f}"
          f"  stored/sent={median(x[2] for x in v):.4f}"
          f"  elapsed_s={median(x[3] for x in v):.2f}")
    if batch in peer_batch:
        p = peer_batch[batch]
        print(f"PEER {batch} ({len(p)} runs): stored/s={median(x[0] for x in p):.0f}"
              f"  per_cpu_s={median(x[1] for x in p):.0f}"
              f"  stored/sent={median(x[2] for x in p):.4f}"
              f"  elapsed_s={median(x[3] for x in p):.2f}")
        ratio = lambda hub, peer: f"{hub / peer:.2f}x" if peer > 0 else "?"
        print(f"RATIO {batch}: per_cpu_s hub/peer={ratio(median(x[4] for x in v), median(x[1] for x in p))}"
              f"  stored/s hub/peer={ratio(median(x[0] for x in v), median(x[0] for x in p))}")
print("stored/s = stored readings / elapsed_s, which runs from the start of sending until the")
print("  server had read every line sent (including lines still queued in socket buffers when")
print("  sending stopped); while-sending/s = stored readings the server received during the")
print("  sending phase / its length; lost = readings the server accepted (numbered) but did not")
print("  store; peak 1s = most readings received in one wall-clock second; per CPU s = stored")
print("  readings / the server's CPU seconds (user + system) while the load tool ran (connect,")
print("  send, drain; not the final write at the stop); srv/cli CPU = CPU time / elapsed_s (100% =")
print("  one core). PEER = the same for the Python peer (stored = data lines of its CSV files);")
print("  RATIO = hub median / peer median.")
EOF
fi

if [ "${BENCH_SKIP_MEMORY:-0}" != 1 ]; then
    echo
    echo "== memory: $IDLE_CONNECTIONS idle connections for ${IDLE_DURATION} s, $MEMORY_RUNS runs (server defaults: ping after 10 s of silence)"
    # RSS depends on how the allocator's pages happen to fill: a single run can be off by a
    # few hundred bytes per connection, so the figure is a median, like the others.
    : > "$WORK/memory-runs"
    for memory_run in $(seq "$MEMORY_RUNS"); do
    echo "   -- run $memory_run"
    dir="$WORK/mem$memory_run"
    start_server "$dir"
    sleep 1
    rss_before=$(status_kib "$SERVER_PID" VmRSS)
    fds_before=$(find "/proc/$SERVER_PID/fd" -mindepth 1 -maxdepth 1 | wc -l)
    "$LOAD" --idle --url "ws://$SERVER_ADDR/ws/device" --connections "$IDLE_CONNECTIONS" \
        --duration "$IDLE_DURATION" --first-id 100000 --threads "$LOAD_THREADS" \
        --connect-concurrency "$CONNECT_CONCURRENCY" > "$dir/load.out" 2> "$dir/load.err" &
    LOAD_PID=$!
    # The load tool prints phase=connected once every connect has finished (at most its
    # --connect-timeout, 60 s).
    connected_line=""
    for _ in $(seq 900); do
        connected_line=$(grep '^phase=connected' "$dir/load.out" || true)
        [ -n "$connected_line" ] && break
        exited "$LOAD_PID" && break
        sleep 0.1
    done
    [ -n "$connected_line" ] || {
        cat "$dir/load.err" >&2
        die "the load tool did not report its connections"
    }
    echo "   $connected_line"
    connected=$(field connected "$connected_line")
    [ "$connected" -gt 0 ] || die "no idle connection succeeded"
    pause "$SETTLE"
    rss_after=$(status_kib "$SERVER_PID" VmRSS)
    fds_after=$(find "/proc/$SERVER_PID/fd" -mindepth 1 -maxdepth 1 | wc -l)
    client_rss=$(status_kib "$LOAD_PID" VmRSS)
    # Again near the end, after the keepalive pings (every 10 s of silence) went round.
    late_wait=$((IDLE_DURATION - SETTLE - 3))
    rss_late=""
    if [ "$late_wait" -gt 0 ]; then
        pause "$late_wait"
        rss_late=$(status_kib "$SERVER_PID" VmRSS)
        fds_late=$(find "/proc/$SERVER_PID/fd" -mindepth 1 -maxdepth 1 | wc -l)
    fi
    rc=0
    wait "$LOAD_PID" || rc=$?
    LOAD_PID=""
    [ "$rc" = 0 ] || {
        cat "$dir/load.err" >&2
        die "the load tool failed (status $rc)"
    }
    done_line=$(grep '^phase=done' "$dir/load.out" || true)
    rss_hwm=$(status_kib "$SERVER_PID" VmHWM)
    stop_server
    echo "   $done_line"
    if [ -s "$dir/load.err" ]; then sed 's/^/   load: /' "$dir/load.err"; fi
    echo "   server fds: before=$fds_before with connections=$fds_after${rss_late:+ late=$fds_late}"
    echo "   load tool VmRSS with $connected connections: $client_rss KiB"
    echo "   server stop (SIGTERM to exit): ${STOP_S} s; server log: $(log_problems "$SERVER_LOG")"
    python3 - "$rss_before" "$rss_after" "${rss_late:-}" "$rss_hwm" "$connected" "$SETTLE" "$WORK/memory-runs" << 'EOF'
import sys
before, after, late, hwm, n, settle, runs = sys.argv[1:]
before, after, hwm, n = int(before), int(after), int(hwm), int(n)
print(f"   server VmRSS before:               {before:>9} KiB")
print(f"   server VmRSS {settle} s after all connected: {after:>9} KiB  -> "
      f"{(after - before) / n:.2f} KiB per connection ({n} connections)")
if late:
    late = int(late)
    print(f"   server VmRSS near the end (pinged): {late:>9} KiB  -> {(late - before) / n:.2f} KiB per connection")
print(f"   server VmHWM (peak):                {hwm:>9} KiB")
with open(runs, "a") as f:
    f.write(f"{(after - before) / n} {n}\n")
EOF
    done
    python3 - "$WORK/memory-runs" "$SETTLE" << 'EOF'
import statistics, sys
runs = [line.split() for line in open(sys.argv[1])]
per = [float(r[0]) for r in runs]
n = min(int(r[1]) for r in runs)
print(f"MEDIAN memory ({len(per)} runs): -> {statistics.median(per):.1f} KiB per idle connection "
      f"({n} connections; runs: {', '.join(f'{p:.2f}' for p in per)}; RSS before and {sys.argv[2]} s after connecting)")
EOF
fi
