#!/usr/bin/env python3
"""SmolVLM / Idefics3 checkpoints pinhole never saw, checked token for token (run by hand).

Draws model configs from a seed (none of them a fixture's: vision and text widths, heads, GQA
ratio, patch and image size, scale_factor, tiling, tied or untied head, rope_theta, smolvlm or
idefics3, key layout, bf16 or f32 storage), builds each with transformers
(tools/make_smolvlm_fixtures.py's make_variant: random weights, tokenizer with the real special
tokens, save_pretrained, reload, greedy generate), then runs `pinhole generate --json` on every
case and compares the prompt ids and the greedy ids with transformers':

    /work/venv/bin/python tools/check_smolvlm_unseen.py --pinhole target/debug/pinhole
    /work/venv/bin/python tools/check_smolvlm_unseen.py --seed 7 --count 5 --keep /tmp/unseen

`--fullwidth` builds one SmolVLM-256M-shaped random model instead (SigLIP 768 wide, patch 16,
512 px tiles up to 4x4 + global, scale_factor 4 = 64 tokens per tile; SmolLM2-135M's decoder
widths: 576 / 1536, 9 heads, 3 KV heads, rope_theta 100000; vocabulary 49280, untied head; one
layer each unless --layers, bf16 as published) and checks it the same way (slow on a CPU
adapter: minutes); `--vision-layers` / `--text-layers` set the depths apart (the real model: 12 / 30),
`--no-split` turns image splitting off (one 512 px tile per image); `--keep DIR` keeps it for
`pinhole bench model --model DIR/smolvlm-256m-v1-t1/model` (the folder is named by its depths).

The single-turn question after the image goes through pinhole's own chat template rendering
(`--prompt`); the other cases pass transformers' rendered prompt with `--raw-prompt`. Exit
status 1 when any case differs. Nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_smolvlm_fixtures as fx  # noqa: E402

REPO = fx.REPO


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def draw_variant(rng: random.Random, k: int) -> dict:
    """A random config that transformers accepts and that differs from every fixture's."""
    model_type = rng.choice(["smolvlm", "idefics3"])
    while True:
        patch = rng.choice([2, 3, 4, 5, 6, 7, 8])
        side = rng.choice([s for s in range(4, 13) if s not in fx.NON_IDENTITY_SIDES])
        scale = rng.choice([d for d in divisors(side) if d > 1] or [1])
        if scale > 1:
            break
    image_size = patch * side
    v_heads = rng.choice([1, 2, 3, 4])
    v_hidden = v_heads * rng.choice([4, 6, 8, 10, 12])
    t_kv = rng.choice([1, 2, 3])
    t_heads = t_kv * rng.choice([1, 2, 3, 4])
    t_hidden = t_heads * rng.choice([4, 6, 8, 10, 12, 16])
    # transformers wants hidden % heads == 0; head_dim may still differ from hidden / heads.
    head_dim = rng.choice([t_hidden // t_heads, rng.choice([4, 6, 8, 12, 16])])
    splitting = rng.random() < 0.8
    tiles_per_side = rng.choice([2, 3, 4, 5])
    bos = "<|begin_of_text|>" if model_type == "idefics3" else None
    seed = rng.randrange(1 << 30)
    template = fx.IDEFICS3_TEMPLATE if bos else fx.SMOLVLM_TEMPLATE
    tok_vocab = 420 + (1 if bos else 0)
    return dict(
        doc=f"unseen checkpoint {k}",
        model_type=model_type,
        seed=seed,
        vision=dict(hidden_size=v_hidden, intermediate_size=rng.choice([16, 24, 40, 56]),
                    num_hidden_layers=rng.choice([1, 2, 3]), num_attention_heads=v_heads,
                    image_size=image_size, patch_size=patch),
        scale_factor=scale,
        text=dict(hidden_size=t_hidden, intermediate_size=rng.choice([32, 48, 72, 100]),
                  num_hidden_layers=rng.choice([1, 2, 3]), num_attention_heads=t_heads,
                  num_key_value_heads=t_kv, head_dim=head_dim,
                  max_position_embeddings=4096, rope_theta=rng.choice([10000.0, 50000.0, 100000.0, 273000.0, 1e6])),
        tie=rng.random() < 0.5,
        processor=dict(size={"longest_edge": image_size * tiles_per_side},
                       max_image_size={"longest_edge": image_size}, do_image_splitting=splitting),
        vocab=(tok_vocab, tok_vocab + rng.choice([0, 3, 11, 29])),
        template=template,
        template_file=rng.choice(["jinja", "json"]),
        bos=bos,
        strip_model_prefix=rng.random() < 0.5,
        save_dtype=rng.choice(["float32", "bfloat16"]),
        cases=["describe", "tall", "multiturn", "jpeg"],
        min_generated=1,
        # From the variant's own seed (the draws above stay what they were): EOS rows of the
        # head scaled down (long generations) or up (so some cases stop on <end_of_utterance>).
        eos_gain=random.Random(seed).choice([0.1, 1.0, 4.0, 8.0]),
    )


def fullwidth_variant(vision_layers: int, text_layers: int, split: bool = True) -> dict:
    """SmolVLM-256M-Instruct's widths with random weights (its tokenizer is replaced by the small
    one of the fixtures, so only the first ids of the 49280-row vocabulary are ever prompted).
    SmolVLM-256M-Instruct itself has 12 vision and 30 text layers."""
    return dict(
        doc=f"SmolVLM-256M widths, {vision_layers} vision / {text_layers} text layer(s)"
            + ("" if split else ", do_image_splitting false"),
        model_type="smolvlm",
        seed=256,
        vision=dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=vision_layers, num_attention_heads=12,
                    image_size=512, patch_size=16),
        scale_factor=4,
        text=dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=text_layers, num_attention_heads=9,
                  num_key_value_heads=3, head_dim=64, max_position_embeddings=8192, rope_theta=100000.0),
        tie=False,
        processor=dict(size={"longest_edge": 2048}, max_image_size={"longest_edge": 512}, do_image_splitting=split),
        vocab=(420, 49280),
        template=fx.SMOLVLM_TEMPLATE,
        template_file="jinja",
        save_dtype="bfloat16",
        cases=["describe", "tall"],
        min_generated=1,
    )


def stop_note(e: dict) -> str:
    """Which EOS a case stopped on (make_variant's eos ids: <|im_end|>, <end_of_utterance>)."""
    if not e["stopped_on_eos"]:
        return ""
    last = e["generated_ids"][-1]
    return ", stops on <end_of_utterance>" if last == e["eos_token_ids"][-1] else f", stops on EOS id {last}"


def pinhole_generate(binary: list[str], model: str, image: str, prompt: str, raw: bool, n: int) -> dict:
    args = binary + ["generate", "--model", model, "--image", image, "--prompt", prompt,
                     "--max-new-tokens", str(n), "--json"] + (["--raw-prompt"] if raw else [])
    r = subprocess.run(args, capture_output=True, text=True, cwd=REPO, env={**os.environ, "XDG_RUNTIME_DIR": "/tmp"})
    if r.returncode != 0:
        return {"error": r.stderr.strip()}
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--count", type=int, default=4)
    ap.add_argument("--pinhole", help="the pinhole binary (default: cargo run -q -p pinhole-cli --)")
    ap.add_argument("--keep", help="keep the checkpoints in this folder (default: a temporary one, removed)")
    ap.add_argument("--fullwidth", action="store_true", help="one SmolVLM-256M-shaped model instead")
    ap.add_argument("--layers", type=int, default=1, help="--fullwidth: vision and text layers (default 1)")
    ap.add_argument("--vision-layers", type=int, help="--fullwidth: vision layers (default --layers; the real model: 12)")
    ap.add_argument("--text-layers", type=int, help="--fullwidth: text layers (default --layers; the real model: 30)")
    ap.add_argument("--no-split", action="store_true", help="--fullwidth: do_image_splitting false (one 512 px tile)")
    args = ap.parse_args()
    binary = [os.path.abspath(args.pinhole)] if args.pinhole else ["cargo", "run", "-q", "-p", "pinhole-cli", "--"]
    fx.check_position_ids_identity()
    fx.make_tall_image()
    root = args.keep or tempfile.mkdtemp(prefix="pinhole-unseen-")
    os.makedirs(root, exist_ok=True)
    rng = random.Random(args.seed)
    failures = 0
    checked = 0
    stopped = 0  # cases that ended on <end_of_utterance> / EOS in both
    try:
        vl, tl = args.vision_layers or args.layers, args.text_layers or args.layers
        fw_name = f"smolvlm-256m-v{vl}-t{tl}" + ("-nosplit" if args.no_split else "")
        todo = ([(fw_name, fullwidth_variant(vl, tl, not args.no_split))] if args.fullwidth else
                [(f"unseen-{args.seed}-{k}", draw_variant(rng, k)) for k in range(args.count)])
        for name, v in todo:
            summary = {key: v.get(key) for key in ("model_type", "vision", "scale_factor", "text", "tie", "processor",
                                                "strip_model_prefix", "save_dtype", "template_file")}
            print(f"\n== {name}: {json.dumps(summary)}", flush=True)
            exp = fx.make_variant(name, v, root, None)
            model = os.path.join(root, name, "model")
            for case, e in exp["cases"].items():
                msgs = e["messages"]
                first = msgs[0]["content"]
                plain = len(msgs) == 1 and first[0]["type"] == "image" and first[1]["type"] == "text"
                prompt, raw = (first[1]["text"], False) if plain else (e["prompt_text"], True)
                got = pinhole_generate(binary, model, os.path.join(fx.IMAGES, e["image"]), prompt, raw,
                                       len(e["generated_ids"]))
                ok = (got.get("prompt_ids") == e["input_ids"] and got.get("token_ids") == e["generated_ids"])
                checked += 1
                tiles = f"{e['rows']}x{e['cols']}+1" if e["rows"] else "1"
                stopped += int(ok and e["stopped_on_eos"])
                how = "template" if not raw else "raw"
                print(f"   {case:9s} tiles {tiles:6s} {how:8s} {'same ids' if ok else 'DIFFERENT'} "
                      f"({len(e['input_ids'])} prompt ids, {len(e['generated_ids'])} generated, "
                      f"margin {e['min_greedy_margin']:.4f}{stop_note(e)})", flush=True)
                if not ok:
                    failures += 1
                    print(f"     transformers: {e['generated_ids']}\n     pinhole:      {got.get('token_ids')} "
                          f"{got.get('error', '')}")
                    if got.get("prompt_ids") != e["input_ids"]:
                        print(f"     prompt ids differ: {got.get('prompt_ids')} vs {e['input_ids']}")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"\n{checked - failures}/{checked} cases equal to transformers ({stopped} of them stopped on EOS)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
