#!/usr/bin/env bash
# Benchmarks the device gateway with the release build, everything on 127.0.0.1:
#
#  1. Throughput: 100 WebSocket devices send CSV lines (`ID,COUNTER,TEMP`) as fast as they can
#     for 10 s; the server is then stopped gracefully (it flushes its store) and the readings in
#     the SQLite store are counted. Reported: stored readings / elapsed seconds, where elapsed
#     runs from the start of sending until the server had read every line sent. Each batch size
#     (lines per frame) is run BENCH_RUNS times on a fresh server and data folder; every run and
#     the median are printed.
#  2. Memory: 10,000 idle devices (one line each, then only answering pings); the server's
#     resident memory (VmRSS) before and after, per connection.
#
# Knobs (environment): BENCH_RUNS=3 BENCH_DURATION=10 BENCH_CONNECTIONS=100 BENCH_BATCHES="1 10"
# BENCH_LOAD_THREADS=1 BENCH_IDLE_CONNECTIONS=10000 BENCH_IDLE_DURATION=30
# BENCH_CONNECT_CONCURRENCY=200 BENCH_SETTLE=3 BENCH_SKIP_THROUGHPUT=1 BENCH_SKIP_MEMORY=1
# BENCH_KEEP=1 (keep the temp folder with server logs and databases).
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
# Per-device limit for the throughput runs: high enough never to refuse a reading.
MAX_RATE=10000000
TARGET_DIR=${CARGO_TARGET_DIR:-target}
IOTHUB="$TARGET_DIR/server-release/iothub"
LOAD="$TARGET_DIR/server-release/iothub-load"

die() {
    echo "bench-gateway: $*" >&2
    exit 1
}

command -v python3 > /dev/null || die "python3 is needed (its sqlite3 module counts the stored readings)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/iothub-bench.XXXXXX")
SERVER_PID=""
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
echo "== building (release profile server-release)"
cargo build --locked -p server --profile server-release --bins
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

# Starts `iothub serve` on 127.0.0.1:0 with a fresh data folder in $1; extra flags follow.
# Sets SERVER_PID, SERVER_ADDR, TCP_ADDR, SERVER_LOG, SERVER_DB.
start_server() {
    local dir=$1
    shift
    mkdir -p "$dir"
    SERVER_LOG="$dir/server.log"
    SERVER_DB="$dir/data/iothub.db"
    "$IOTHUB" serve --bind 127.0.0.1:0 --data-dir "$dir/data" --site-root "$dir/no-site" \
        --simulate 0 --allow-tokenless-devices --tcp-listen 127.0.0.1:0 \
        --admin-password bench-gateway "$@" > "$SERVER_LOG" 2>&1 &
    SERVER_PID=$!
    SERVER_ADDR=""
    for _ in $(seq 300); do
        SERVER_ADDR=$(sed -n 's#.*dashboard listening on http://\([0-9.]*:[0-9]*\).*#\1#p' "$SERVER_LOG" | head -n 1)
        TCP_ADDR=$(sed -n 's#.*raw TCP devices: listening on \([0-9.]*:[0-9]*\).*#\1#p' "$SERVER_LOG" | head -n 1)
        [ -n "$SERVER_ADDR" ] && [ -n "$TCP_ADDR" ] && return 0
        if exited "$SERVER_PID"; then
            cat "$SERVER_LOG" >&2
            die "the server exited during start-up"
        fi
        sleep 0.1
    done
    cat "$SERVER_LOG" >&2
    die "the server did not print its address within 30 s"
}

# SIGTERM and wait (up to 120 s) for the graceful stop, which flushes the store.
stop_server() {
    local started=$SECONDS
    kill -TERM "$SERVER_PID"
    for _ in $(seq 1200); do
        exited "$SERVER_PID" && break
        sleep 0.1
    done
    if ! exited "$SERVER_PID"; then
        tail -n 20 "$SERVER_LOG" >&2
        die "the server did not stop within 120 s of SIGTERM"
    fi
    local rc=0
    wait "$SERVER_PID" || rc=$?
    SERVER_PID=""
    [ "$rc" = 0 ] || {
        tail -n 20 "$SERVER_LOG" >&2
        die "the server exited with status $rc"
    }
    STOP_S=$((SECONDS - started))
}

# Prints "STORED SPAN_S PEAK IN_WINDOW ACCEPTED" for the database $1 and the sending window
# [$2, $3] (Unix ms): stored readings (distinct device/time/seq); seconds between the first and
# the last one's receive time; the busiest wall-clock second; readings received within the
# window; and the highest reading number the server handed out (the registry numbers every
# accepted reading 1, 2, 3, ..., so ACCEPTED = STORED means none was lost between them).
count_stored() {
    python3 - "$@" << 'EOF'
import sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
t0, t1 = int(sys.argv[2]), int(sys.argv[3])
db.execute(
    "CREATE TEMP TABLE r AS SELECT DISTINCT device_id, received_ms, seq FROM readings"
)
n, first, last, accepted = db.execute(
    "SELECT COUNT(*), MIN(received_ms), MAX(received_ms), MAX(seq) FROM r"
).fetchone()
(peak,) = db.execute(
    "SELECT COALESCE(MAX(c), 0) FROM (SELECT COUNT(*) AS c FROM r GROUP BY received_ms / 1000)"
).fetchone()
(in_window,) = db.execute(
    "SELECT COUNT(*) FROM r WHERE received_ms >= ? AND received_ms < ?", (t0, t1)
).fetchone()
print(n, f"{((last or 0) - (first or 0)) / 1000:.2f}", peak, in_window, accepted or 0)
EOF
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

echo
echo "== conditions"
echo "date:        $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "host:        nproc=$(nproc), $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo 2> /dev/null || echo '?'), $(awk '/MemTotal/ {printf "%.1f GiB RAM", $2 / 1048576}' /proc/meminfo)"
echo "kernel:      $(uname -sr)"
echo "source:      $(git rev-parse --short HEAD 2> /dev/null || echo 'not a git checkout')$(git status --porcelain 2> /dev/null | grep -q . && echo ' (with uncommitted changes)' || true)"
echo "load avg:    $(cut -d' ' -f1-3 /proc/loadavg) (other work on this machine competes for the same cores)"
echo "open files:  $have_fds"
echo "load tool:   $LOAD (threads=$LOAD_THREADS, send buffer $SEND_BUFFER B), same machine as the server, over loopback"

RESULTS="$WORK/throughput.tsv"
: > "$RESULTS"

if [ "${BENCH_SKIP_THROUGHPUT:-0}" != 1 ]; then
    echo
    echo "== throughput: $CONNECTIONS connections, ${DURATION} s at full speed, $RUNS runs per batch size"
    echo "   server: --max-readings-per-sec $MAX_RATE, other flags default (flush every 250 ms / 5000 values)"
    for transport in $TRANSPORTS; do
    for batch in $BATCHES; do
        for run in $(seq "$RUNS"); do
            dir="$WORK/tp-$transport-b$batch-r$run"
            start_server "$dir" --max-readings-per-sec "$MAX_RATE"
            load1=$(cut -d' ' -f1 /proc/loadavg)
            cpu_before=$(cpu_seconds "$SERVER_PID")
            # In the background and waited for, so that a signal to this script ends the run at
            # once (bash runs traps only between foreground commands).
            case $transport in
                ws) url="ws://$SERVER_ADDR/ws/device" ;;
                tcp) url="tcp://$TCP_ADDR" ;;
                *) die "BENCH_TRANSPORTS: unknown transport $transport (ws, tcp)" ;;
            esac
            "$LOAD" --url "$url" --connections "$CONNECTIONS" \
                --duration "$DURATION" --batch "$batch" --threads "$LOAD_THREADS" \
                --connect-concurrency "$CONNECT_CONCURRENCY" --send-buffer "$SEND_BUFFER" \
                --drain-timeout 600 > "$dir/load.out" 2> "$dir/load.err" &
            LOAD_PID=$!
            rc=0
            wait "$LOAD_PID" || rc=$?
            LOAD_PID=""
            [ "$rc" = 0 ] || {
                cat "$dir/load.err" >&2
                die "the load tool failed with status $rc (batch $batch, run $run)"
            }
            out=$(cat "$dir/load.out")
            cpu_after=$(cpu_seconds "$SERVER_PID")
            threads=$(thread_cpu "$SERVER_PID")
            rss_kib=$(status_kib "$SERVER_PID" VmRSS)
            done_line=$(grep '^phase=done' <<< "$out" || true)
            [ -n "$done_line" ] || die "no summary from the load tool: $out"
            stop_server
            [ -f "$SERVER_DB" ] || die "no database at $SERVER_DB"
            t0=$(field send_start_unix_ms "$done_line")
            t1=$(field send_end_unix_ms "$done_line")
            read -r stored span_s peak_s in_window accepted <<< "$(count_stored "$SERVER_DB" "$t0" "$t1")"
            sent=$(field sent "$done_line")
            elapsed=$(field elapsed_s "$done_line")
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
                "$transport/$batch" "$run" "$(field connected "$done_line")" "$sent" \
                "$(field errors_received "$done_line")" "$stored" "$(field send_s "$done_line")" \
                "$elapsed" "$(awk -v a="$cpu_before" -v b="$cpu_after" 'BEGIN {printf "%.2f", b - a}')" \
                "$(field client_cpu_s "$done_line")" "$load1" "$STOP_S" \
                "$(field closed_early "$done_line")" "$(field drain_timeouts "$done_line")" \
                "$rss_kib" "$(log_problems "$SERVER_LOG")" "$span_s" "$peak_s" \
                "$(field closed_uncleanly "$done_line")" "$in_window" "$(field send_s "$done_line")" \
                "$accepted" >> "$RESULTS"
            echo "   $transport batch=$batch run=$run: $done_line"
            echo "     stored=$stored accepted=$accepted received_while_sending=$in_window first-to-last_received_s=$span_s busiest_second=$peak_s"
            echo "     server CPU s by thread: $threads"
            echo "     server_cpu_s=$(awk -v a="$cpu_before" -v b="$cpu_after" 'BEGIN {printf "%.2f", b - a}') server_rss_kib=$rss_kib stop_s=$STOP_S log: $(log_problems "$SERVER_LOG")"
            if [ -s "$dir/load.err" ]; then sed 's/^/     load: /' "$dir/load.err"; fi
        done
    done
    done
    echo
    python3 - "$RESULTS" << 'EOF'
import statistics, sys
cols = ["batch", "run", "conns", "sent", "errors", "stored", "send_s", "elapsed_s",
        "srv_cpu_s", "cli_cpu_s", "load1", "stop_s", "closed_early", "drain_to", "rss_kib", "log",
        "span_s", "peak", "unclean", "in_window", "send_s2", "accepted"]
rows = [dict(zip(cols, line.rstrip("\n").split("\t"))) for line in open(sys.argv[1]) if line.strip()]
head = ("how", "run", "sent", "errors", "stored", "stored/sent", "lost", "elapsed_s", "stored/s",
        "while-sending/s", "peak 1s", "srv CPU", "cli CPU", "load1")
fmt = "{:>7} {:>3} {:>9} {:>6} {:>9} {:>11} {:>4} {:>9} {:>8} {:>15} {:>7} {:>7} {:>7} {:>5}"
print(fmt.format(*head))
by_batch = {}
for r in rows:
    sent, stored, el = int(r["sent"]), int(r["stored"]), float(r["elapsed_s"])
    rate = stored / el
    window_rate = int(r["in_window"]) / float(r["send_s2"])
    lost = int(r["accepted"]) - stored
    by_batch.setdefault(r["batch"], []).append((rate, window_rate, stored / max(sent, 1), el))
    print(fmt.format(r["batch"], r["run"], sent, r["errors"], stored, f"{stored / max(sent, 1):.4f}",
                     lost, f"{el:.2f}", f"{rate:.0f}", f"{window_rate:.0f}", r["peak"],
                     f"{100 * float(r['srv_cpu_s']) / el:.0f}%",
                     f"{100 * float(r['cli_cpu_s'] or 0) / el:.0f}%", r["load1"]))
    if (r["closed_early"], r["drain_to"], r["errors"], r["log"]) != ("0", "0", "0", "warn=0 error=0"):
        print(f"      ! closed_early={r['closed_early']} drain_timeouts={r['drain_to']} "
              f"errors={r['errors']} server log {r['log']}")
unclean = sum(int(r["unclean"] or 0) for r in rows)
if unclean:
    print(f"note: {unclean} of {sum(int(r['conns']) for r in rows)} connections ended without the server's "
          "close frame after the load tool closed them (see 'load:' lines above)")
for batch, v in by_batch.items():
    print(f"MEDIAN {batch} ({len(v)} runs): stored/s={statistics.median(x[0] for x in v):.0f}"
          f"  while-sending/s={statistics.median(x[1] for x in v):.0f}"
          f"  stored/sent={statistics.median(x[2] for x in v):.4f}"
          f"  elapsed_s={statistics.median(x[3] for x in v):.2f}")
print("stored/s = stored readings / elapsed_s, which runs from the start of sending until the")
print("  server had read every line sent (including lines still queued in socket buffers when")
print("  sending stopped); while-sending/s = stored readings the server received during the")
print("  sending phase / its length; lost = readings the server accepted (numbered) but did not")
print("  store; peak 1s = most readings received in one wall-clock second; srv/cli CPU = CPU")
print("  time / elapsed_s (100% = one core).")
EOF
fi

if [ "${BENCH_SKIP_MEMORY:-0}" != 1 ]; then
    echo
    echo "== memory: $IDLE_CONNECTIONS idle connections for ${IDLE_DURATION} s (server defaults: ping after 10 s of silence)"
    dir="$WORK/mem"
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
    python3 - "$rss_before" "$rss_after" "${rss_late:-}" "$rss_hwm" "$connected" "$SETTLE" << 'EOF'
import sys
before, after, late, hwm, n, settle = sys.argv[1:]
before, after, hwm, n = int(before), int(after), int(hwm), int(n)
print(f"   server VmRSS before:               {before:>9} KiB")
print(f"   server VmRSS {settle} s after all connected: {after:>9} KiB  -> "
      f"{(after - before) / n:.1f} KiB per idle connection ({n} connections)")
if late:
    late = int(late)
    print(f"   server VmRSS near the end (pinged): {late:>9} KiB  -> {(late - before) / n:.1f} KiB per connection")
print(f"   server VmHWM (peak):                {hwm:>9} KiB")
EOF
fi
