#!/usr/bin/env bash
# Release build for a Raspberry Pi 4/5 (or any arm64 Linux with glibc 2.34 or newer, e.g.
# Raspberry Pi OS 64-bit bookworm), cross-built on an x86_64 Debian machine with Debian's
# aarch64 cross toolchain, then tried under qemu-user (scripts/smoke-test.sh).
#
#   scripts/build-aarch64.sh               build, package, smoke-test
#   scripts/build-aarch64.sh --no-test     build and package only
#   scripts/build-aarch64.sh --site-built  take target/site as it is (scripts/test.sh has just
#                                          built it) instead of building it again
#
# Result: target/dist/iothub-<version>-aarch64-unknown-linux-gnu.tar.gz with the server binary,
# the browser bundle (site/, the same on every architecture) and the systemd unit. The README's
# "Raspberry Pi" section says how to install it.
set -euo pipefail
cd "$(dirname "$0")/.."

run_smoke_test=true
build_site=true
for arg in "$@"; do
  case "$arg" in
    --no-test) run_smoke_test=false ;;
    --site-built) build_site=false ;;
    *) echo "build-aarch64: unknown option $arg (--no-test, --site-built)" >&2; exit 2 ;;
  esac
done

triple=aarch64-unknown-linux-gnu
cargo_target="${CARGO_TARGET_DIR:-target}"
# The linker and the qemu runner for this target are set in .cargo/config.toml.
sysroot=/usr/aarch64-linux-gnu

bash scripts/setup.sh --aarch64
if $build_site; then
  bash scripts/build-site.sh
elif [[ ! -f target/site/pkg/bundle.txt ]]; then
  echo "build-aarch64: --site-built, but target/site has no bundle" >&2
  exit 1
fi
cargo build --locked -p server --bin iothub --profile server-release --target "$triple"

binary="$cargo_target/$triple/server-release/iothub"
machine=$(readelf -h "$binary" | awk -F: '/Machine/ { gsub(/^ +/, "", $2); print $2 }')
[[ "$machine" == AArch64 ]] || { echo "built $binary for '$machine', not AArch64" >&2; exit 1; }

version=$(qemu-aarch64 -L "$sysroot" "$binary" --version | awk '{print $2}')
name="iothub-$version-$triple"
stage="target/dist/$name"
rm -rf "$stage" "$stage.tar.gz"
mkdir -p "$stage"
install -m 0755 "$binary" "$stage/iothub"
aarch64-linux-gnu-strip "$stage/iothub"
cp -r target/site "$stage/site"
install -m 0644 packaging/iothub.service "$stage/iothub.service"
tar -C target/dist -czf "target/dist/$name.tar.gz" "$name"
echo "built target/dist/$name.tar.gz ($(($(stat -c %s "target/dist/$name.tar.gz") / 1024 / 1024)) MiB;" \
  "binary $(($(stat -c %s "$stage/iothub") / 1024 / 1024)) MiB, needs glibc" \
  "$(aarch64-linux-gnu-objdump -T "$stage/iothub" | grep -o 'GLIBC_[0-9.]*' | sort -Vu | tail -n1))"

if $run_smoke_test; then
  # Tried from the unpacked archive, as it would run on the Pi.
  unpacked=$(mktemp -d)
  trap 'rm -rf "$unpacked"' EXIT
  tar -C "$unpacked" -xzf "target/dist/$name.tar.gz"
  bash scripts/smoke-test.sh --runner "qemu-aarch64 -L $sysroot" \
    "$unpacked/$name/iothub" "$unpacked/$name/site"
fi
