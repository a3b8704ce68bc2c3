#!/usr/bin/env bash
# Checks the systemd unit (packaging/iothub.service) and its serial-port drop-in
# (packaging/serial.conf) with `systemd-analyze verify`, which also lints them: any line it
# prints (an unknown key, a bad value) fails the check. ExecStart points at the hub binary
# given as $1 (default: the debug build), since verify wants the binary to exist.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=$(realpath "${1:-${CARGO_TARGET_DIR:-target}/debug/iothub}")
[ -x "$binary" ] || { echo "no hub binary at $binary (build it first)" >&2; exit 1; }
command -v systemd-analyze >/dev/null || { echo "systemd-analyze is missing: apt-get install systemd" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/iothub.service.d"
sed "s|/usr/local/bin/iothub|$binary|" packaging/iothub.service > "$work/iothub.service"
cp packaging/serial.conf "$work/iothub.service.d/serial.conf"
for dropins in without with; do
  [ "$dropins" = without ] && mv "$work/iothub.service.d" "$work/dropins.off"
  [ "$dropins" = with ] && mv "$work/dropins.off" "$work/iothub.service.d"
  out=$(cd "$work" && SYSTEMD_UNIT_PATH="$work:" systemd-analyze verify "$work/iothub.service" 2>&1) || {
    echo "$out" >&2; echo "systemd-analyze verify failed ($dropins serial.conf)" >&2; exit 1; }
  if [ -n "$out" ]; then
    echo "$out" >&2
    echo "systemd-analyze verify complained ($dropins serial.conf)" >&2
    exit 1
  fi
done
echo "systemd unit ok (with and without serial.conf)"
