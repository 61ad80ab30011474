#!/usr/bin/env bash
# Builds the browser engine: crates/pinhole-web for wasm32-unknown-unknown (release), then
# wasm-bindgen's ES-module glue into pkg/ (gitignored), which js/ imports and npm publishes:
# without the kernel test cases and without the wasm `name` section (function names, ~0.5 MB).
# `--kernel-tests` builds the test variant instead (the kernel test cases behind
# Pinhole.runKernelTests(), names kept for readable panics) into pkg-kernel-tests/, which
# tests/browser/kernels.test.mjs serves as /pkg/.
# Installs what is missing: the wasm32 Rust target, and wasm-bindgen-cli at exactly the
# version of the wasm-bindgen crate in Cargo.lock (they must match; ~5 min to compile once).
# Set PINHOLE_SKIP_INSTALL=1 to only check. Usage: bash tools/build-web.sh [--dev] [--kernel-tests]
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
flag=--release
out=pkg
features=--no-default-features
bindgen_flags=(--remove-name-section --remove-producers-section)
for a in "$@"; do
  case "$a" in
    --dev) profile=debug; flag= ;;
    --kernel-tests) out=pkg-kernel-tests; features=; bindgen_flags=() ;;
    *) echo "build-web: unknown option $a (usage: bash tools/build-web.sh [--dev] [--kernel-tests])" >&2; exit 2 ;;
  esac
done

step() { printf '\n==> %s\n' "$*"; }

if ! rustup target list --installed 2>/dev/null | grep -q wasm32-unknown-unknown; then
  if [ -n "${PINHOLE_SKIP_INSTALL:-}" ]; then echo "the wasm32-unknown-unknown target is missing: rustup target add wasm32-unknown-unknown" >&2; exit 1; fi
  step "adding the wasm32-unknown-unknown Rust target"
  rustup target add wasm32-unknown-unknown
fi

want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if [ -z "$want" ]; then echo "build-web: no wasm-bindgen in Cargo.lock" >&2; exit 1; fi
have=$(wasm-bindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  if [ -n "${PINHOLE_SKIP_INSTALL:-}" ]; then echo "wasm-bindgen-cli $want is needed (found '${have:-none}'): cargo install wasm-bindgen-cli --version $want" >&2; exit 1; fi
  step "installing wasm-bindgen-cli $want (found '${have:-none}'); this takes a few minutes, once"
  cargo install wasm-bindgen-cli --version "$want"
fi

step "cargo build -p pinhole-web --target wasm32-unknown-unknown ($profile${features:+, $features})"
cargo build -p pinhole-web --target wasm32-unknown-unknown $flag $features

target_dir="${CARGO_TARGET_DIR:-target}"
wasm="$target_dir/wasm32-unknown-unknown/$profile/pinhole_web.wasm"
step "wasm-bindgen --target web --out-dir $out ${bindgen_flags[*]:-}"
rm -rf "$out.partial"
wasm-bindgen --target web "${bindgen_flags[@]}" --out-dir "$out.partial" "$wasm"
# Replace the output only once the new one is complete.
rm -rf "$out"
mv "$out.partial" "$out"

raw=$(wc -c < "$out/pinhole_web_bg.wasm")
gz=$(gzip -9 -c "$out/pinhole_web_bg.wasm" | wc -c)
js=$(cat js/*.js "$out/pinhole_web.js" | wc -c)
jsgz=$(cat js/*.js "$out/pinhole_web.js" | gzip -9 | wc -c)
printf '%s/pinhole_web_bg.wasm: %s bytes (%s gzip -9); JS (js/*.js + glue): %s bytes (%s gzip -9)\n' "$out" "$raw" "$gz" "$js" "$jsgz"
