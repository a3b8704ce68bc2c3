#!/usr/bin/env bash
# Builds everything (release) and starts the hub on http://localhost:3000 with an embedded
# SQLite store in ./data. Extra arguments go to `iothub serve`; by default five simulated
# devices are started so there is something to see (pass --simulate 0 for none).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
bash scripts/build-site.sh
cargo build --locked -p server --profile server-release
exec "${CARGO_TARGET_DIR:-target}/server-release/iothub" serve --site-root target/site --simulate 5 "$@"
