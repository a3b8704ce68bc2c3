#!/usr/bin/env bash
# Starts a NATS server (Debian's nats-server, JetStream on) on 127.0.0.1 for the tests of
# several hubs as one (--cluster-nats), once: later runs reuse it. Prints its URL on stdout and
# nothing else (scripts/test.sh captures it). The tests that stop and restart it use
# `scripts/nats-for-tests.sh stop`.
set -euo pipefail
dir="${TMPDIR:-/tmp}/iothub-nats"
port=14222
mkdir -p "$dir"
running() { [[ -f "$dir/pid" ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; }
if [[ "${1:-}" == stop ]]; then
  if running; then
    kill "$(cat "$dir/pid")"
    for _ in $(seq 50); do running || exit 0; sleep 0.1; done
    echo "nats-server did not stop" >&2
    exit 1
  fi
  exit 0
fi
if running; then
  echo "nats://127.0.0.1:$port"
  exit 0
fi
/usr/sbin/nats-server --addr 127.0.0.1 --port "$port" --jetstream --store_dir "$dir/store" \
  --pid "$dir/pid" --log "$dir/nats.log" >/dev/null 2>&1 &
for _ in $(seq 50); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "nats://127.0.0.1:$port"
    exit 0
  fi
  sleep 0.1
done
echo "nats-server did not start; see $dir/nats.log" >&2
exit 1
