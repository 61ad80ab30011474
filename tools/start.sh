#!/usr/bin/env bash
# `npm start`: build the wasm package (tools/build-web.sh: cargo for wasm32 + wasm-bindgen, each
# installed only when missing) and serve the demo with the default model on 127.0.0.1.
# Arguments go to tools/serve.mjs: `npm start -- --port 9000 --model path/to/paligemma`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f tools/build-web.sh ]; then
  echo "start: tools/build-web.sh is missing; this checkout has no browser build" >&2
  exit 1
fi
bash tools/build-web.sh
exec node tools/serve.mjs --port "${PORT:-8080}" "$@"
