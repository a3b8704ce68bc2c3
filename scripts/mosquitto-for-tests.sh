#!/usr/bin/env bash
# Starts a Mosquitto broker (Debian's) on 127.0.0.1 for the MQTT bridge tests, once: later
# runs reuse it. Prints its URL on stdout and nothing else (scripts/test.sh captures it).
set -euo pipefail
dir="${TMPDIR:-/tmp}/iothub-mosquitto"
port=18883
mkdir -p "$dir"
if [[ -f "$dir/pid" ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
  echo "mqtt://127.0.0.1:$port"
  exit 0
fi
cat >"$dir/mosquitto.conf" <<CONF
listener $port 127.0.0.1
allow_anonymous true
persistence false
pid_file $dir/pid
log_dest file $dir/mosquitto.log
# Run as whoever started it (as root it would switch to the mosquitto user, who cannot
# write here).
user $(id -un)
CONF
/usr/sbin/mosquitto -c "$dir/mosquitto.conf" -d >&2
for _ in $(seq 50); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "mqtt://127.0.0.1:$port"
    exit 0
  fi
  sleep 0.1
done
echo "mosquitto did not start; see $dir/mosquitto.log" >&2
exit 1
