#!/usr/bin/env bash
# The browser tests (called by tools/test.sh). Installs what is missing and nothing else:
# Debian's chromium + chromium-driver (apt), the devDependencies pinned in package-lock.json
# (playwright-core, typescript, vite, webpack: npm ci; playwright-core
# never downloads a browser), the wasm package (tools/build-web.sh; its kernel-test build too when
# kernels.test.mjs runs). Then runs every
# tests/browser/*.test.mjs one file at a time (SwiftShader is slow and the cores are few).
# PINHOLE_SKIP_INSTALL=1 only checks; PINHOLE_BROWSER_TESTS="api kernels" runs a subset.
set -euo pipefail
cd "$(dirname "$0")/../.."

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root to run: $*" >&2; return 1; fi
}

CHROMIUM="${PINHOLE_CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$CHROMIUM" ]; then
  if [ -n "${PINHOLE_SKIP_INSTALL:-}" ]; then echo "$CHROMIUM is missing (PINHOLE_SKIP_INSTALL is set)" >&2; exit 1; fi
  echo "installing Debian's chromium and chromium-driver"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi

if ! node -e "for (const m of ['playwright-core', 'typescript/package.json', 'vite', 'webpack']) require.resolve(m)" >/dev/null 2>&1; then
  if [ -n "${PINHOLE_SKIP_INSTALL:-}" ]; then echo "a devDependency is missing: run npm ci" >&2; exit 1; fi
  echo "installing the devDependencies (npm ci; no browser download)"
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund
fi

bash tools/build-web.sh

export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
files=()
if [ -n "${PINHOLE_BROWSER_TESTS:-}" ]; then
  for t in $PINHOLE_BROWSER_TESTS; do files+=("tests/browser/$t.test.mjs"); done
else
  files=(tests/browser/*.test.mjs)
fi
# The kernel test cases are only in the test build of the wasm (not in the published pkg/).
if printf '%s\n' "${files[@]}" | grep -q 'kernels.test.mjs'; then bash tools/build-web.sh --kernel-tests; fi
node --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
