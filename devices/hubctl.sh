#!/usr/bin/env bash
# Starts and stops the hub that the device tests run against, so that a test can stop it and
# start it again mid-stream: `hubctl.sh start|stop`. Everything about it is in $HUBCTL_DIR:
#   bin        the iothub binary          data/      its data folder (SQLite)
#   ports      "HTTP-ADDR TCP-ADDR" once the first start chose them (port 0 → free ports);
#              later starts bind the same ones, so devices find the hub where it was
#   hub.pid    the running hub            ready.json, hub.log
set -euo pipefail
dir=${HUBCTL_DIR:?HUBCTL_DIR is not set}
bin=$(cat "$dir/bin")

start() {
  local http=127.0.0.1:0 tcp=127.0.0.1:0
  if [ -f "$dir/ports" ]; then read -r http tcp < "$dir/ports"; fi
  rm -f "$dir/ready.json"
  # --site-root: no dashboard bundle is needed, and none is looked for in the caller's cwd.
  "$bin" serve --bind "$http" --tcp-listen "$tcp" --data-dir "$dir/data" \
    --admin-password-file "$dir/admin-password" --ready-file "$dir/ready.json" \
    --site-root "$dir/site" >> "$dir/hub.log" 2>&1 < /dev/null &
  local pid=$!
  echo "$pid" > "$dir/hub.pid"
  local waited=0
  # The ready file is written once every listener is bound: then devices can connect.
  until [ -s "$dir/ready.json" ]; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "hubctl: the hub exited while starting; the end of its log:" >&2
      tail -n 20 "$dir/hub.log" >&2
      exit 1
    fi
    if [ "$waited" -ge 300 ]; then
      echo "hubctl: the hub did not get ready within 30 s" >&2
      exit 1
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  if [ ! -f "$dir/ports" ]; then
    local ready
    ready=$(cat "$dir/ready.json")
    http=$(sed -E 's/.*"dashboard":"http:\/\/([^"]+)".*/\1/' <<< "$ready")
    tcp=$(sed -E 's/.*"tcp":"([^"]+)".*/\1/' <<< "$ready")
    echo "$http $tcp" > "$dir/ports"
  fi
}

stop() {
  [ -f "$dir/hub.pid" ] || return 0
  local pid
  pid=$(cat "$dir/hub.pid")
  # SIGTERM: the hub's graceful stop, which writes every reading it received before it exits.
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "hubctl: the hub ignored SIGTERM for 15 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$dir/hub.pid"
    exit 1
  fi
  rm -f "$dir/hub.pid"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: hubctl.sh start|stop" >&2; exit 2 ;;
esac
