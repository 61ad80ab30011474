#!/usr/bin/env python3
"""pinhole and transformers side by side on one model folder: load, time to first token,
decode per token, and whether the greedy tokens are identical.

    /work/venv/bin/python tools/bench-vs-transformers.py --model DIR [--pinhole target/release/pinhole]
        [--image IMG] [--prompt "caption en"] [--max-new-tokens 6] [--runs 3] [--device cpu|cuda]
        [--dtype float32|float16] [--threads N] [--pinhole-arg=--dtype=f16 ...] [--json OUT]

pinhole runs as `pinhole bench model --json` (its own medians over --runs after a warm-up);
transformers loads the folder with `from_pretrained` (float32 on the CPU by default, sdpa
attention; a TinyGPT-V folder through make_fullwidth.load_transformers, which adds its three
pieces to transformers' BLIP-2 + Phi) and is timed the same way: load once (the first load after the OS cached the files
is not special-cased; run twice to see both), then per run `generate(max_new_tokens=1)` for the
time to first token and `generate(max_new_tokens=N)` for the rest, decode per token being
(t_N - t_1) / (N - 1). Medians over the runs. The table is printed as Markdown for
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def test_picture(path: str) -> None:
    """The same picture `pinhole bench model` draws when no image is given."""
    from PIL import Image

    w, h = 320, 240
    im = Image.new("RGB", (w, h))
    px = im.load()
    for y in range(h):
        for x in range(w):
            dx, dy = x - 200, y - 120
            px[x, y] = (220, 40, 40) if dx * dx + dy * dy < 60 * 60 else (x * 255 // w, y * 255 // h, 128)
    im.save(path)


def run_pinhole(args, image: str) -> dict:
    cmd = [args.pinhole, "bench", "model", "--model", args.model, "--image", image, "--prompt", args.prompt,
           "--max-new-tokens", str(args.max_new_tokens), "--runs", str(args.runs), "--json", *args.pinhole_arg]
    t = time.time()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    print(f"pinhole: {time.time() - t:.0f} s", file=sys.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_transformers(args, image: str) -> dict:
    import torch
    import transformers
    from PIL import Image

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from make_fullwidth import load_transformers

    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = getattr(torch, args.dtype)
    dev = args.device

    def sync():
        if dev == "cuda":
            torch.cuda.synchronize()

    t0 = time.perf_counter()
    proc, model = load_transformers(args.model, dtype)
    model = model.to(dev)
    sync()
    load_ms = (time.perf_counter() - t0) * 1e3
    im = Image.open(image).convert("RGB")

    def gen(n):
        sync()
        t = time.perf_counter()
        inputs = proc(text=args.prompt, images=im, return_tensors="pt").to(dev)
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=n, do_sample=False)
        sync()
        seq = out[0]
        # PaliGemma returns prompt + new ids; BLIP-2 with a decoder-only model may return only the new ones
        new = seq[inputs["input_ids"].shape[1]:] if seq.shape[0] > n else seq
        return (time.perf_counter() - t) * 1e3, new.tolist()

    gen(2)  # warm-up
    ttft, per_token, ids = [], [], None
    for _ in range(args.runs):
        t1, _ = gen(1)
        tn, ids = gen(args.max_new_tokens)
        ttft.append(t1)
        per_token.append((tn - t1) / max(len(ids) - 1, 1))
    return {
        "version": transformers.__version__,
        "torch": torch.__version__,
        "device": dev,
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "load_ms": load_ms,
        "ttft_ms": statistics.median(ttft),
        "decode_ms_per_token": statistics.median(per_token),
        "token_ids": ids,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--pinhole", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "pinhole"))
    ap.add_argument("--image", default=None)
    ap.add_argument("--prompt", default=None, help="default: `caption en` (PaliGemma), "
                    "`Question: what is in the picture? Answer:` (BLIP-2)")
    ap.add_argument("--max-new-tokens", type=int, default=6)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--pinhole-arg", action="append", default=[], help="extra argument for `pinhole bench model`")
    ap.add_argument("--json", default=None, help="also write both results here")
    ap.add_argument("--skip-transformers", action="store_true")
    args = ap.parse_args()

    if args.prompt is None:
        with open(os.path.join(args.model, "config.json")) as f:
            blip2 = json.load(f).get("model_type") == "blip-2"
        args.prompt = "Question: what is in the picture? Answer:" if blip2 else "caption en"
    with tempfile.TemporaryDirectory() as tmp:
        image = args.image
        if image is None:
            image = os.path.join(tmp, "picture.png")
            test_picture(image)
        p = run_pinhole(args, image)
        t = None if args.skip_transformers else run_transformers(args, image)

    pd = p["decode"]
    rows = [
        ("load", p["load"]["ms"], t and t["load_ms"]),
        ("time to first token (image encode + prefill)", p["time_to_first_token_ms"], t and t["ttft_ms"]),
        ("decode, per token", pd["step_ms"], t and t["decode_ms_per_token"]),
    ]
    a = p["adapter"]
    print(f"\nmodel: {args.model} ({p['model_family']}, pinhole weights {p['weight_dtype']}); "
          f"prompt {args.prompt!r}, {args.max_new_tokens} new tokens; medians of {args.runs} runs")
    print(f"pinhole: {args.pinhole}, {a.get('name')} ({a.get('backend')})" +
          (f"; transformers {t['version']} (torch {t['torch']}, {t['device']}, {t['dtype']}, "
           f"{t['threads']} threads, sdpa)" if t else ""))
    print()
    print("| | pinhole | transformers | pinhole ÷ transformers |")
    print("|---|---:|---:|---:|")
    for name, pv, tv in rows:
        ratio = f"{pv / tv:.2f}×" if tv else "–"
        tv_s = f"{tv / 1e3:.2f} s" if tv and tv >= 1000 else (f"{tv:.1f} ms" if tv else "–")
        pv_s = f"{pv / 1e3:.2f} s" if pv >= 1000 else f"{pv:.1f} ms"
        print(f"| {name} | {pv_s} | {tv_s} | {ratio} |")
    print()
    print(f"pinhole detail: load {p['load']['mb_per_s']:.0f} MB/s, image encode {p['image_encode_ms']:.1f} ms, "
          f"prefill {p['prefill_ms']:.1f} ms, {pd['tokens_per_s']:.2f} tokens/s, "
          f"{pd['dispatches_per_step']:.0f} dispatches/step, host CPU {pd['host_cpu_ms_per_step'] or float('nan'):.2f} "
          f"ms/step, {pd['weight_bytes_per_token'] / 1e6:.1f} MB weights/token, roofline "
          f"{pd['roofline_fraction'] * 100:.1f} % of a {pd['copy_gb_per_s']:.1f} GB/s copy")
    if t:
        same = p["token_ids"] == t["token_ids"]
        print(f"tokens identical: {'yes' if same else 'NO'} (pinhole {p['token_ids']}, transformers {t['token_ids']})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"pinhole": p, "transformers": t}, f, indent=1)
    if t and p["token_ids"] != t["token_ids"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
