#!/usr/bin/env bash
# Smoke test of a built hub binary, as a person would try it after installing: it prints its
# version, serves the dashboard with two simulated devices, answers /healthz, serves the browser
# bundle, asks for a sign-in, counts the devices and readings in /metrics once signed in, stops
# cleanly on SIGTERM with every reading on disk, and writes a backup that holds them.
#
#   scripts/smoke-test.sh [--runner "qemu-aarch64 -L /usr/aarch64-linux-gnu"] BINARY SITE_ROOT
#
# The runner is what the binary is started with; CI uses it to try the Raspberry Pi build on an
# x86_64 machine (scripts/build-aarch64.sh).
set -euo pipefail

runner=()
if [[ "${1:-}" == "--runner" ]]; then
  read -r -a runner <<<"$2"
  shift 2
fi
if (($# != 2)); then
  echo "usage: $0 [--runner COMMAND] BINARY SITE_ROOT" >&2
  exit 2
fi
binary=$1
site=$2
password=smoke-test-password

work=$(mktemp -d)
hub_pid=
cleanup() {
  [[ -n "$hub_pid" ]] && kill -KILL "$hub_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "smoke test FAILED: $*" >&2
  if [[ -s "$work/hub.log" ]]; then
    echo "--- hub log (last 40 lines) ---" >&2
    tail -n 40 "$work/hub.log" >&2
  fi
  exit 1
}
hub() { "${runner[@]}" "$binary" "$@"; }
# Waits up to $1 seconds for the command after it to succeed. Emulated, the hub starts slowly.
eventually() {
  local deadline=$((SECONDS + $1))
  shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.5
  done
}
metric() { # the value of one metric in the last /metrics answer
  awk -v name="$1" '$1 == name { print int($2) }' "$work/metrics"
}

version=$(hub --version) || fail "--version exited with $?"
[[ "$version" =~ ^iothub\ [0-9]+\.[0-9]+\.[0-9]+ ]] || fail "--version printed '$version'"
echo "smoke: $version"

# Started directly, not through the hub function: $! must be the hub (or qemu, which passes
# signals on to it), not a subshell that SIGTERM would end instead.
"${runner[@]}" "$binary" serve --bind 127.0.0.1:0 --data-dir "$work/data" --site-root "$site" \
  --admin-password "$password" --simulate 2 --simulate-rate 5 >"$work/hub.log" 2>&1 &
hub_pid=$!

listening() { grep -o 'dashboard listening on http://[0-9.:]*' "$work/hub.log" >/dev/null; }
eventually 120 listening || fail "the hub did not start listening within 120 s"
base=$(grep -o 'dashboard listening on http://[0-9.:]*' "$work/hub.log" | head -n1 | awk '{print $4}')
echo "smoke: hub listening on $base"

[[ "$(curl -fsS "$base/healthz")" == ok ]] || fail "/healthz did not answer ok"
front=$(curl -sS -o /dev/null -w "%{http_code} %{redirect_url}" -H "Accept: text/html" "$base/")
[[ "$front" == "303 $base/login"* ]] || fail "/ without a session answered '$front', not a redirect to /login"

login=$(curl -sS -o /dev/null -w '%{http_code}' -c "$work/cookies" \
  --data-urlencode user=admin --data-urlencode "password=$password" "$base/login")
[[ "$login" == 303 ]] || fail "signing in answered $login"

# The bundles' names carry a hash of their content; each page says which is its own.
wasm=$(curl -fsS -b "$work/cookies" "$base/" | grep -o '/pkg/iothub-overview\.[0-9a-f]*\.wasm' | head -n1)
[[ -n "$wasm" ]] || fail "the overview loads no hashed wasm bundle of its own"
curl -fsS -o /dev/null "$base$wasm" || fail "the browser bundle $wasm is not served from $site"

readings_flowing() {
  curl -fsS -b "$work/cookies" "$base/metrics" >"$work/metrics" || return 1
  [[ "$(metric iothub_devices_online)" == 2 && "$(metric iothub_readings_total)" -ge 10 ]]
}
eventually 60 readings_flowing ||
  fail "/metrics never showed 2 devices online and 10 readings: $(grep -E '^iothub_(devices_online|readings_total) ' "$work/metrics" | tr '\n' ' ')"
seen=$(metric iothub_readings_total)
echo "smoke: 2 simulated devices online, $seen readings received"

kill -TERM "$hub_pid"
status=0
wait "$hub_pid" || status=$?
hub_pid=
((status == 0)) || fail "the hub exited with $status on SIGTERM"
! grep -qi 'panicked' "$work/hub.log" || fail "the hub panicked"

# The store keeps readings in blocks, each with its count.
hub backup "$work/backup.db" --data-dir "$work/data" >>"$work/hub.log" 2>&1 || fail "backup failed"
stored=$(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("select coalesce(sum(readings), 0) from blocks").fetchone()[0])' "$work/backup.db")
((stored >= seen)) || fail "the backup holds $stored readings, the hub had received $seen"
echo "smoke: stopped cleanly; the backup holds all $stored readings"
echo "smoke test passed"
