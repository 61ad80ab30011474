#!/usr/bin/env bash
# bench-gpu.sh — pinhole vs transformers on a real GPU, in one command of about ten minutes.
#
# For a Linux machine with an NVIDIA GPU (H100/H200 class), torch + transformers installed,
# no network and no Rust toolchain. It needs:
#   * a release `pinhole` built beforehand (`cargo build --release -p pinhole-cli`), passed
#     with --pinhole or found at target/release/pinhole;
#   * a Vulkan loader (libvulkan.so.1) and the NVIDIA Vulkan driver's ICD file. Where the
#     machine lacks the loader, bring Debian's libvulkan1 .deb and unpack it first; the ICD is
#     looked for in the usual places (VK_DRIVER_FILES overrides).
#
# What it does, writing everything under --out (default ./bench-gpu-out):
#   1. `pinhole info --json`: refuses to go on if the adapter is a CPU/software one (llvmpipe,
#      SwiftShader) unless --allow-cpu-adapter (used to test this script without a GPU).
#   2. tools/make_fullwidth.py: a random PaliGemma-3B (paligemma-3b-224 widths) at --layers
#      (default: full depth, 27 vision / 18 text layers, 5.9 GB bf16) in --work.
#   3. `pinhole quantize`: its 4-bit copy.
#   4. `pinhole bench kernels --json` (GEMV/GEMM/attention against the copy kernel).
#   5. tools/bench-vs-transformers.py: pinhole (weights f16) and transformers (--device,
#      default cuda, --dtype float16, sdpa) on the same folder, same picture and prompt;
#      `pinhole bench model` on the 4-bit folder.
#   6. One Markdown table (bench-gpu.md, also printed) for BENCHMARKS.md: load, time to first
#      token, decode ms/token and tokens/s, roofline fraction, tokens identical or not, and
#      the GEMV rows of the kernel benchmark.
#
# Usage:
#   tools/bench-gpu.sh [--pinhole BIN] [--python PY] [--out DIR] [--work DIR] [--layers full|N]
#                      [--runs 3] [--max-new-tokens 16] [--device cuda|cpu] [--dtype float16]
#                      [--allow-cpu-adapter] [--keep-model]
#
# Without a GPU it can be checked end to end on llvmpipe at a tiny depth (minutes on 2 cores):
#   tools/bench-gpu.sh --allow-cpu-adapter --device cpu --dtype float32 --layers 1 \
#       --runs 1 --max-new-tokens 3
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"
pinhole="${PINHOLE_BIN:-$repo/target/release/pinhole}"
py="${PYTHON:-python3}"
out="$PWD/bench-gpu-out"
work=""
layers="full"
runs=3
new_tokens=16
device="cuda"
dtype="float16"
allow_cpu=0
keep_model=0

die() { printf 'bench-gpu.sh: %s\n' "$*" >&2; exit 2; }
step() { printf '\n==> [%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --pinhole) pinhole="$2"; shift 2 ;;
    --python) py="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --layers) layers="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --max-new-tokens) new_tokens="$2"; shift 2 ;;
    --device) device="$2"; shift 2 ;;
    --dtype) dtype="$2"; shift 2 ;;
    --allow-cpu-adapter) allow_cpu=1; shift ;;
    --keep-model) keep_model=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

[ -x "$pinhole" ] || die "no pinhole binary at $pinhole: build it first (cargo build --release -p pinhole-cli) and pass --pinhole BIN"
"$py" -c 'import torch, transformers, PIL, safetensors' 2>/dev/null \
  || die "$py cannot import torch, transformers, PIL and safetensors: pass --python with an environment that has them"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
if [ -z "$work" ]; then work="$(mktemp -d "${TMPDIR:-/tmp}/bench-gpu.XXXXXX")"; fi
mkdir -p "$work"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}"
t_start=$(date +%s)

# The NVIDIA Vulkan ICD, where the driver put it (containers often mount it under /usr/local/nvidia).
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ]; then
  for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json \
             /etc/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$icd" ]; then export VK_DRIVER_FILES="$icd"; break; fi
  done
fi

step "adapter (pinhole info --json)"
if ! "$pinhole" info --json >"$out/info.json" 2>"$out/info.err"; then
  cat "$out/info.err" >&2
  die "pinhole found no usable adapter. Is libvulkan.so.1 installed (ldconfig -p | grep libvulkan) and the NVIDIA ICD visible (VK_DRIVER_FILES=.../nvidia_icd.json)?"
fi
"$py" - "$out/info.json" "$allow_cpu" <<'EOF'
import json, sys
a = json.load(open(sys.argv[1]))
a = a.get("adapter", a)
print(f"adapter: {a.get('name')} ({a.get('backend')}, {a.get('device_type')})", file=sys.stderr)
if (a.get("software") or str(a.get("device_type", "")).lower() == "cpu") and sys.argv[2] != "1":
    sys.exit(f"bench-gpu.sh: the adapter is a CPU/software one ({a.get('name')}): the GPU driver was not found. "
             "Set VK_DRIVER_FILES to the NVIDIA ICD json, or pass --allow-cpu-adapter to test the script.")
EOF
if [ "$device" = cuda ]; then
  "$py" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "torch sees no CUDA device: pass --device cpu to compare against the CPU")'
fi

model="$work/pg3b-$layers"
step "random PaliGemma-3B, layers=$layers, bf16 -> $model"
if [ -f "$model/config.json" ] && [ -f "$model/.complete" ]; then
  echo "reusing $model" >&2
else
  rm -rf "$model"
  "$py" "$repo/tools/make_fullwidth.py" --arch paligemma-3b-224 --layers "$layers" --dtype bf16 \
    --out "$model" --seed 0 >&2
  touch "$model/.complete"
fi

step "4-bit copy (pinhole quantize)"
if [ -f "$model-q4/.complete" ]; then
  echo "reusing $model-q4" >&2
else
  rm -rf "$model-q4"
  "$pinhole" quantize --model "$model" --out "$model-q4" --quiet
  touch "$model-q4/.complete"
fi

step "pinhole bench kernels --json"
"$pinhole" bench kernels --json --runs "$runs" >"$out/kernels.json"

step "pinhole (f16) vs transformers ($device, $dtype) on the same folder"
# A token mismatch makes bench-vs-transformers exit 1; the table still says so, keep going.
set +e
"$py" "$repo/tools/bench-vs-transformers.py" --model "$model" --pinhole "$pinhole" --runs "$runs" \
  --max-new-tokens "$new_tokens" --device "$device" --dtype "$dtype" --pinhole-arg=--dtype=f16 \
  --json "$out/f16.json" >"$out/f16.md"
rc_f16=$?
set -e
[ -f "$out/f16.json" ] || die "bench-vs-transformers.py failed (exit $rc_f16); see above"

step "pinhole bench model on the 4-bit folder"
"$pinhole" bench model --model "$model-q4" --runs "$runs" --max-new-tokens "$new_tokens" --json \
  | tail -n 1 >"$out/q4.json"

step "pinhole bench model with --f16-math (f16 arithmetic in the tiled GEMM)"
# Opt-in, needs shader-f16: where the adapter lacks it the command fails and the table says so.
if ! "$pinhole" bench model --model "$model" --dtype f16 --f16-math --runs "$runs" --max-new-tokens "$new_tokens" \
  --json | tail -n 1 >"$out/f16math.json"; then
  echo "--f16-math not available on this adapter" >&2
  rm -f "$out/f16math.json"
fi

step "table"
"$py" - "$out" "$layers" "$(( $(date +%s) - t_start ))" <<'EOF' | tee "$out/bench-gpu.md"
import json, os, sys
out, layers, secs = sys.argv[1], sys.argv[2], int(sys.argv[3])
both = json.load(open(os.path.join(out, "f16.json")))
p16, t = both["pinhole"], both["transformers"]
q4 = json.load(open(os.path.join(out, "q4.json")))
k = json.load(open(os.path.join(out, "kernels.json")))
a = p16["adapter"]

def ms(v):
    return "–" if v is None else (f"{v / 1e3:.2f} s" if v >= 1000 else f"{v:.1f} ms")

def ratio(p, tv):
    return "–" if not tv else f"{p / tv:.2f}×"

print(f"### PaliGemma-3B widths, depth {layers} (random, bf16 checkpoint): {a.get('name')} ({a.get('backend')})\n")
tdesc = (f"transformers {t['version']} (torch {t['torch']}, {t['device']}, {t['dtype']}, sdpa)" if t else "transformers: not run")
print(f"`tools/bench-gpu.sh`, {p16['runs']} runs, medians after a warm-up; {tdesc}; prompt {p16['prompt']!r}.\n")
print("| | pinhole f16 | pinhole 4-bit | transformers | f16 ÷ transformers | 4-bit ÷ transformers |")
print("|---|---:|---:|---:|---:|---:|")
rows = [
    ("load", p16["load"]["ms"], q4["load"]["ms"], t and t["load_ms"]),
    ("time to first token", p16["time_to_first_token_ms"], q4["time_to_first_token_ms"], t and t["ttft_ms"]),
    ("decode, per token", p16["decode"]["step_ms"], q4["decode"]["step_ms"], t and t["decode_ms_per_token"]),
]
for name, a16, a4, tv in rows:
    print(f"| {name} | {ms(a16)} | {ms(a4)} | {ms(tv)} | {ratio(a16, tv)} | {ratio(a4, tv)} |")
for name, key in [("image encode", "image_encode_ms"), ("prefill", "prefill_ms")]:
    print(f"| {name} | {ms(p16[key])} | {ms(q4[key])} | | | |")
d16, d4 = p16["decode"], q4["decode"]
print(f"| tokens/s | {d16['tokens_per_s']:.1f} | {d4['tokens_per_s']:.1f} | "
      f"{(1e3 / t['decode_ms_per_token']) if t else float('nan'):.1f} | | |")
print(f"| weights read per token | {d16['weight_bytes_per_token'] / 1e6:.0f} MB | {d4['weight_bytes_per_token'] / 1e6:.0f} MB | | | |")
print(f"| decode roofline (÷ copy {d16['copy_gb_per_s']:.1f} GB/s) | {d16['roofline_fraction'] * 100:.0f} % | "
      f"{d4['roofline_fraction'] * 100:.0f} % | | | |")
print(f"| dispatches / host CPU per step | {d16['dispatches_per_step']:.0f} / {d16['host_cpu_ms_per_step'] or float('nan'):.2f} ms | "
      f"{d4['dispatches_per_step']:.0f} / {d4['host_cpu_ms_per_step'] or float('nan'):.2f} ms | | | |")
same = t and p16["token_ids"] == t["token_ids"]
print(f"\nTokens: pinhole f16 {p16['token_ids']}" + (f", transformers {t['token_ids']} ({'identical' if same else 'DIFFERENT'})" if t else "")
      + f"; 4-bit {q4['token_ids']}.")
fm = os.path.join(out, "f16math.json")
if os.path.exists(fm):
    m = json.load(open(fm))
    print(f"\nWith `--f16-math` (f16 weights, f16 arithmetic in the tiled GEMM): time to first token "
          f"{ms(m['time_to_first_token_ms'])} (image encode {ms(m['image_encode_ms'])}, prefill {ms(m['prefill_ms'])}) "
          f"against {ms(p16['time_to_first_token_ms'])} without; tokens {m['token_ids']}"
          f" ({'same as' if m['token_ids'] == p16['token_ids'] else 'differ from'} f32 arithmetic's).")
else:
    print("\n`--f16-math`: not available on this adapter (no shader-f16).")
print(f"\nKernels (`pinhole bench kernels`, copy baseline {k['copy_baseline']['gbps']:.1f} GB/s):\n")
print("| kernel | shape | median ms | GFLOP/s | GB/s | × copy |")
print("|---|---|---:|---:|---:|---:|")
for r in k["kernels"]:
    if any(s in r["name"] for s in ("gemv", "gemm", "attention")):
        f = lambda v, d=1: "–" if v is None else f"{v:.{d}f}"
        print(f"| {r['name']} | {r['shape']} | {f(r['median_ms'], 3)} | {f(r['gflops'])} | {f(r['gbps'])} | {f(r['copy_ratio'], 2)} |")
print(f"\n(whole script: {secs} s)")
EOF

if [ "$keep_model" = 0 ] && [[ "$work" == "${TMPDIR:-/tmp}"/bench-gpu.* ]]; then rm -rf "$work"; fi
step "done: $out/bench-gpu.md"
