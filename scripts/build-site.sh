#!/usr/bin/env bash
# Builds the browser bundles into target/site — the layout cargo-leptos produces, without needing
# cargo-leptos (whose install alone takes a quarter of an hour on a small machine):
#   target/site/pkg/iothub-<page>.<hash>.js, .wasm  (for each page that runs in the browser:
#                                             cargo --features <page> → wasm-bindgen →
#                                             wasm-opt -Oz --converge)
#   target/site/pkg/iothub.<hash>.css        (style/main.css; also as iothub.css for the
#                                             static pages: offline page, API docs)
#   target/site/pkg/*.gz, *.br               (each, gzip -9 and brotli -q 11: served as is)
#   target/site/pkg/bundle.txt               (which names the pages load; read at start)
#   target/site/*                            (public/)
# A page's bundle holds that page's code only (frontend/src/lib.rs): a phone opening the
# overview downloads neither the device page's charts nor the Alarms page's forms. The
# sign-in page is plain HTML and loads none.
# <hash> is the first 16 hex digits of the file's SHA-256, so a name always means the same
# bytes and the hub lets browsers keep them for a year (Cache-Control: immutable).
# Prints each page's wasm size, raw, gzipped and brotli, and fails when a gzipped wasm is over
# the budget (WASM_BUDGET_KIB, default below): a bundle may only grow by someone deciding it may.
set -euo pipefail
cd "$(dirname "$0")/.."

name=iothub
site=target/site
pkg="$site/pkg"
cargo_target="${CARGO_TARGET_DIR:-target}"
pages="overview device tokens alarms"
# A page's release wasm, gzip -9, at most (KiB). Issue #20 aims at 300.
# History, when there was one bundle for every page: 372 KiB for the first budget; +21 for
# roles and the API tokens section; +15 for switches and sliders (each reactive binding costs
# ~0.5 KiB); +77 for alarms in the dashboard (the Alarms page with its rule form and history
# 40 KiB, measured by building without it); +5 for editing rules; +9 for automation runs, less 4
# won back by loading the Alarms page's lists in an effect instead of a resource with its
# suspense; +1 for the phone layout; +5 for the paged overview, less 4 won back by naming the
# charts' font family as a value (plotters lowercases a family given as text, which pulled in
# Unicode case tables); +29 for reading charts (the crosshair, drag to zoom and fields on one
# chart 23 KiB, the form picking the fields 6 KiB; erasing the crosshair's view types with
# into_any() made it 7 KiB bigger, not smaller): 535 KiB, 533 used. A bundle per page then
# took the biggest, the device page's, to 399 KiB; the page's data inside the page (no
# resource and suspense) and no Leptos actions to 345; no `<Show>` (its children are a
# type-erased view) and rule conditions decoded through a flat struct instead of serde's
# buffering of an internally tagged enum to 336; +2 for the banner of a hub cut off from the
# others (--cluster-nats): 338; the page data and the live events decoded from bytes like the
# server functions' answers (serde_json's reader is a type parameter: from_str and from_slice
# made two copies of every type's decoder) to 332; then, to issue #20's 300: numbers typed
# into forms read by serde_json's reader instead of Rust's float parser and its tables, and no
# stable sort, to 315; no device patterns matched in the browser (wildmatch's Unicode case
# tables) to 308; wasm-opt --converge and --low-memory-unused to 304; the device page's command
# form without the keyed list of devices to 300; the alarm rules read by each page as far as
# it needs them to 296.
budget_kib=${WASM_BUDGET_KIB:-300}

rm -rf "$site"
mkdir -p "$pkg"
hashed() { echo "$1.$(sha256sum "$2" | cut -c1-16).$3"; }
cp style/main.css "$pkg/$name.css"
css=$(hashed "$name" "$pkg/$name.css" css)
cp "$pkg/$name.css" "$pkg/$css"
echo "css $css" >"$pkg/bundle.txt"
compressed="$pkg/$css $pkg/$name.css"
# wasm-bindgen and wasm-opt take half a minute a page: their output is kept per page and input
# (a second run on unchanged code, the benchmark after the test build, copies it), and they run
# beside the next page's link, which keeps one core busy.
# --converge repeats -Oz until the module stops shrinking: 3 KiB gzip less on the device page
# for 17 s more per page. --low-memory-unused lets it fold constant offsets into loads and
# stores (2 KiB): true of Rust's wasm, whose stack sits below its data and reaches the lowest
# kilobyte only a kilobyte before it overflows.
wasm_opt_flags="-Oz --converge --low-memory-unused --enable-bulk-memory \
  --enable-nontrapping-float-to-int \
  --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue"
declare -A cached
pids=()
for page in $pages; do
  # Only the frontend crate's features change between pages: the rest is built once, and each
  # page costs a link (with LTO).
  cargo build --locked -p frontend --lib --target wasm32-unknown-unknown --release --features "$page"
  input="$cargo_target/wasm32-unknown-unknown/release/frontend.wasm"
  dir="$cargo_target/site-cache/$page-$( (cat "$input"; echo "$wasm_opt_flags") | sha256sum | cut -c1-32)"
  cached[$page]=$dir
  out="$name-$page"
  if [[ ! -f "$dir/$out.js" ]]; then
    rm -rf "$cargo_target/site-cache/$page-"*
    mkdir -p "$dir.tmp"
    cp "$input" "$dir.tmp/frontend.wasm" # the next page's build writes over the input
    (
      wasm-bindgen --target web --no-typescript --out-dir "$dir.tmp" --out-name "$out" \
        "$dir.tmp/frontend.wasm"
      # shellcheck disable=SC2086 # the flags are words
      node_modules/.bin/wasm-opt $wasm_opt_flags "$dir.tmp/${out}_bg.wasm" -o "$dir.tmp/${out}_bg.wasm"
      rm "$dir.tmp/frontend.wasm"
      mv "$dir.tmp" "$dir"
    ) &
    pids+=($!)
  fi
done
for pid in "${pids[@]}"; do
  wait "$pid" || { echo "build-site: wasm-bindgen or wasm-opt failed" >&2; exit 1; }
done
for page in $pages; do
  out="$name-$page"
  cp "${cached[$page]}/${out}_bg.wasm" "${cached[$page]}/$out.js" "$pkg/"
  # Content-hashed names. The JavaScript glue is given the wasm's name by the page (the
  # hydration script passes it), so renaming either breaks nothing inside them.
  wasm=$(hashed "$out" "$pkg/${out}_bg.wasm" wasm)
  js=$(hashed "$out" "$pkg/$out.js" js)
  mv "$pkg/${out}_bg.wasm" "$pkg/$wasm"
  mv "$pkg/$out.js" "$pkg/$js"
  printf 'js %s %s\nwasm %s %s\n' "$page" "$js" "$page" "$wasm" >>"$pkg/bundle.txt"
  compressed="$compressed $pkg/$js $pkg/$wasm"
done

# Compressed once here rather than per request: the server sends the .br or .gz to browsers
# that accept it (all do).
for file in $compressed; do
  gzip -9 -k -f "$file"
  brotli -q 11 -k -f "$file"
done
cp -r public/. "$site/"

over=""
echo "site built in $site:"
while read -r kind page file; do
  [ "$kind" = wasm ] || continue
  raw=$(wc -c <"$pkg/$file")
  gz=$(gzip -9 -c "$pkg/$file" | wc -c)
  br=$(wc -c <"$pkg/$file.br")
  echo "  $page page: $file $((raw / 1024)) KiB raw, $((gz / 1024)) KiB gzip, $((br / 1024)) KiB brotli"
  if [ "$gz" -gt $((budget_kib * 1024)) ]; then
    over="$over $page ($file, $((gz / 1024)) KiB gzip)"
  fi
done <"$pkg/bundle.txt"
if [ -n "$over" ]; then
  echo "a browser bundle is over its budget of $budget_kib KiB gzip (WASM_BUDGET_KIB in scripts/build-site.sh):$over" >&2
  exit 1
fi
