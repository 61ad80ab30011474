#!/usr/bin/env bash
# The one command that runs every test of pinhole (called by `npm test` and by .ci/run).
# It installs what it needs when missing: Mesa's software Vulkan driver (so GPU kernels run on
# machines without a GPU), the wasm32 Rust target. Set PINHOLE_SKIP_INSTALL=1 to only check.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

if [ -z "${PINHOLE_SKIP_INSTALL:-}" ]; then
  if ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || ! ldconfig -p | grep -q libvulkan.so.1; then
    step "installing Mesa's software Vulkan driver (llvmpipe)"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
  fi
  if ! rustup target list --installed | grep -q wasm32-unknown-unknown; then
    step "adding the wasm32-unknown-unknown Rust target"
    rustup target add wasm32-unknown-unknown
  fi
  rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt
fi

# wgpu/Mesa print a warning without it; harmless but noisy.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test --workspace (GPU kernels on the first Vulkan adapter; llvmpipe without a GPU)"
cargo test --workspace --no-fail-fast

step "wasm32 build of the GPU runtime (the browser path compiles from the same source)"
cargo build -p pinhole-gpu --target wasm32-unknown-unknown

step "CLI smoke: pinhole info and a quick kernel benchmark"
cargo run -q -p pinhole-cli -- info >/dev/null
cargo run -q -p pinhole-cli -- bench kernels --quick --runs 1 --json >/dev/null

step "browser tests: the demo and the npm package in headless Chromium (SwiftShader WebGPU)"
bash tests/browser/run.sh

echo
echo "all pinhole tests passed"
