#!/usr/bin/env bash
# Checks the systemd unit (packaging/iothub.service) alone and with each of its drop-ins
# (packaging/*.conf) with `systemd-analyze verify`, which also lints them: any line it prints
# (an unknown key, a bad value) fails the check. ExecStart points at the hub binary given as
# $1 (default: the debug build), since verify wants the binary to exist.
set -euo pipefail
cd "$(dirname "$0")/.."
binary=$(realpath "${1:-${CARGO_TARGET_DIR:-target}/debug/iothub}")
[ -x "$binary" ] || { echo "no hub binary at $binary (build it first)" >&2; exit 1; }
command -v systemd-analyze >/dev/null || { echo "systemd-analyze is missing: apt-get install systemd" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s|/usr/local/bin/iothub|$binary|" packaging/iothub.service > "$work/iothub.service"
checked=()
for dropin in none packaging/*.conf; do
  rm -rf "$work/iothub.service.d"
  mkdir -p "$work/iothub.service.d"
  [ "$dropin" = none ] || cp "$dropin" "$work/iothub.service.d/"
  name=$(basename "$dropin")
  out=$(cd "$work" && SYSTEMD_UNIT_PATH="$work:" systemd-analyze verify "$work/iothub.service" 2>&1) || {
    echo "$out" >&2; echo "systemd-analyze verify failed (drop-in: $name)" >&2; exit 1; }
  if [ -n "$out" ]; then
    echo "$out" >&2
    echo "systemd-analyze verify complained (drop-in: $name)" >&2
    exit 1
  fi
  checked+=("$name")
done
echo "systemd unit ok (drop-ins: ${checked[*]})"
