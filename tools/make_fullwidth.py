#!/usr/bin/env python3
"""Write a random checkpoint at a real model's widths, in the Hub's layout, for benchmarks.

    /work/venv/bin/python tools/make_fullwidth.py --arch paligemma-3b-224 --layers 1 \\
        --dtype bf16 --out /tmp/pg3b-l1 --seed 0 [--vision-layers N] [--check]

Architectures (every width as the real checkpoint; only the depth is chosen):

* ``paligemma-3b-224``: SigLIP-So400m 224 px / patch 14 (256 image tokens) + Gemma-2B
  (2048 / 16384, 8 heads, 1 KV head, head_dim 256, vocab 257216), like
  google/paligemma-3b-pt-224. Full depth: 27 vision and 18 text layers.
* ``paligemma2-3b-224``: the same vision tower + Gemma 2 2B (2304 / 9216, 8 heads, 4 KV heads,
  softcapping, sliding window 4096), like google/paligemma2-3b-pt-224. Full depth: 27 / 26.

``--layers N`` sets the text depth and, unless ``--vision-layers`` is given, the vision depth
(both capped at the real depth; 0 or ``full`` means the real depth).

The folder is what ``save_pretrained`` writes (config.json, generation_config.json, sharded
safetensors with an index when over ``--max-shard-size``), plus tokenizer files with the real
special-token ids (<pad> 0, <eos> 1, <bos> 2, <unk> 3, <loc0000> 256000 .. <loc1023> 257023,
<seg000> 257024 .. <seg127> 257151, <image> 257152) and a small learned BPE (see
gemma_tokenizer.py), so transformers' ``AutoProcessor`` / ``PaliGemmaForConditionalGeneration``
load it and pinhole reads it as a real checkpoint. Weights are random with the larger-than-default
init scale of the test fixtures (make_paligemma_fixtures.randomize), which makes greedy decoding
emit varied tokens rather than one token again and again; ``--check`` runs transformers'
greedy generation on a test image and prints the ids (and fails if they are all the same).

Nothing here is committed: benchmarks (tools/bench-vs-transformers.py, tools/bench-gpu.sh)
generate their models on demand. A 1-layer paligemma-3b-224 is 1.3 GB in bf16 and takes about
a minute on 2 cores; full depth is 5.9 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gemma_tokenizer import (  # noqa: E402
    BOS, BYTE_TOKENS, EOS, IMAGE, LOC_TOKENS, PAD, SEG_TOKENS, UNK, _train_bpe, default_corpus,
    save_tokenizer_files,
)

SIGLIP_SO400M_224 = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                         image_size=224, patch_size=14)
ARCHS = {
    "paligemma-3b-224": dict(
        vision=SIGLIP_SO400M_224,
        text=dict(model_type="gemma", hidden_size=2048, intermediate_size=16384, num_hidden_layers=18,
                  num_attention_heads=8, num_key_value_heads=1, head_dim=256),
        # make_paligemma_fixtures' gains, retuned for the real width: at 2048 wide the scaled
        # token embedding (x sqrt(2048)) outweighs one layer's output unless the embedding is
        # small and the layer outputs large, and greedy decoding then repeats the last prompt
        # token (emb 0.3 / out 40 did; emb 0.05 / out 80 gives 8 distinct tokens of 8).
        gain=dict(emb=0.05, finalnorm=3.0, out=80.0),
    ),
    "paligemma2-3b-224": dict(
        vision=SIGLIP_SO400M_224,
        text=dict(model_type="gemma2", hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                  num_attention_heads=8, num_key_value_heads=4, head_dim=256, query_pre_attn_scalar=256,
                  attn_logit_softcapping=50.0, final_logit_softcapping=30.0, sliding_window=4096,
                  hidden_activation="gelu_pytorch_tanh"),
        gain=dict(emb=0.05, finalnorm=3.0, postnorm=6.0, out=80.0),
    ),
}
VOCAB = 257216
FIRST_LOC = 256000
IMAGE_ID = 257152
DTYPES = {"bf16": torch.bfloat16, "f16": torch.float16, "f32": torch.float32}


def build_full_tokenizer():
    """A Gemma-style tokenizer whose special, <loc> and <seg> tokens sit at PaliGemma's ids."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors

    learned, merges = _train_bpe(1200, default_corpus())
    head = [PAD, EOS, BOS, UNK] + BYTE_TOKENS
    tokens = head + [t for t in learned if t not in head]
    tokens += [f"<unused{i}>" for i in range(FIRST_LOC - len(tokens))]
    tokens += LOC_TOKENS + SEG_TOKENS + [IMAGE]
    tokens += [f"<unused{i}>" for i in range(FIRST_LOC, FIRST_LOC + VOCAB - len(tokens))]
    assert len(tokens) == VOCAB and len(set(tokens)) == VOCAB
    assert tokens.index(IMAGE) == IMAGE_ID and tokens.index(LOC_TOKENS[0]) == FIRST_LOC
    vocab = {t: i for i, t in enumerate(tokens)}
    known = set(vocab)
    merges = [m for m in merges if m[0] in known and m[1] in known and m[0] + m[1] in known]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=UNK, fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Replace(" ", "\u2581")
    tok.pre_tokenizer = None
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS}:0 $A:0", pair=f"{BOS}:0 $A:0 {BOS}:1 $B:1", special_tokens=[(BOS, 2)]
    )
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in [PAD, EOS, BOS, UNK, IMAGE]])
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in LOC_TOKENS + SEG_TOKENS])
    for t, i in [(PAD, 0), (EOS, 1), (BOS, 2), (UNK, 3), (IMAGE, IMAGE_ID), (LOC_TOKENS[0], FIRST_LOC),
                 (SEG_TOKENS[-1], IMAGE_ID - 1)]:
        assert tok.token_to_id(t) == i, (t, tok.token_to_id(t), i)
    return tok


def build_config(arch: dict, text_layers: int, vision_layers: int):
    from transformers import PaliGemmaConfig

    text = dict(arch["text"], num_hidden_layers=text_layers, vocab_size=VOCAB, pad_token_id=0, eos_token_id=1,
                bos_token_id=2)
    if text["model_type"] == "gemma2":
        text["layer_types"] = ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(text_layers)]
    vision = dict(arch["vision"], num_hidden_layers=vision_layers, model_type="siglip_vision_model",
                  vision_use_head=False)
    cfg = PaliGemmaConfig(vision_config=vision, text_config=text, image_token_index=IMAGE_ID, vocab_size=VOCAB,
                          projection_dim=text["hidden_size"], hidden_size=text["hidden_size"], bos_token_id=2,
                          eos_token_id=1, pad_token_id=0)
    assert cfg.text_config.num_image_tokens == 256
    return cfg


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", required=True, choices=sorted(ARCHS))
    ap.add_argument("--layers", default="1", help="text layers (and vision layers unless --vision-layers); "
                    "0 or 'full' = the real depth")
    ap.add_argument("--vision-layers", default=None)
    ap.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-shard-size", default="1GB", help="as save_pretrained's (default 1GB)")
    ap.add_argument("--gain", default=None, help='JSON overriding the init gains, e.g. {"out": 20}')
    ap.add_argument("--check", action="store_true", help="run transformers' greedy generation and print the ids")
    ap.add_argument("--force", action="store_true", help="replace --out if it exists")
    args = ap.parse_args()

    arch = ARCHS[args.arch]

    def depth(v, full):
        n = full if str(v) in ("0", "full") else int(v)
        if not 1 <= n <= full:
            raise SystemExit(f"error: depth {v} is outside 1..{full} for {args.arch}")
        return n

    text_layers = depth(args.layers, arch["text"]["num_hidden_layers"])
    vision_layers = depth(args.vision_layers or args.layers, arch["vision"]["num_hidden_layers"])
    if os.path.exists(args.out) and os.listdir(args.out) and not args.force:
        raise SystemExit(f"error: {args.out} exists and is not empty (use --force to replace it)")

    from make_paligemma_fixtures import randomize
    from transformers import PaliGemmaForConditionalGeneration

    t0 = time.time()
    tmp = args.out.rstrip("/") + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    tok = build_full_tokenizer()
    save_tokenizer_files(tok, tmp, image_seq_length=256, image_size=224)

    cfg = build_config(arch, text_layers, vision_layers)
    dtype = DTYPES[args.dtype]
    torch.manual_seed(args.seed)
    # Built in the storage dtype directly: at full depth an f32 copy would be 12 GB.
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device("meta"):
            model = PaliGemmaForConditionalGeneration(cfg)
        model = model.to_empty(device="cpu").eval()
    finally:
        torch.set_default_dtype(prev)
    randomize(model, args.seed, {**arch["gain"], **json.loads(args.gain or "{}")})
    model.tie_weights()
    model.to(dtype)
    model.save_pretrained(tmp, max_shard_size=args.max_shard_size)
    del model
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    os.rename(tmp, args.out)
    size = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print(f"wrote {args.out}: {args.arch}, {vision_layers} vision / {text_layers} text layers, {args.dtype}, "
          f"{size / 1e9:.2f} GB in {time.time() - t0:.0f} s")
    if args.check:
        check(args.out)


def check(model_dir: str, n: int = 8) -> list[int]:
    """Greedy ids of transformers on a drawn test image (CPU, float32)."""
    from PIL import Image, ImageDraw
    from transformers import AutoProcessor, PaliGemmaForConditionalGeneration

    im = Image.new("RGB", (96, 80), (220, 220, 220))
    d = ImageDraw.Draw(im)
    d.ellipse((6, 6, 40, 40), fill=(230, 30, 30))
    d.rectangle((50, 10, 90, 50), fill=(30, 60, 220))
    proc = AutoProcessor.from_pretrained(model_dir)
    model = PaliGemmaForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
    inputs = proc(text="caption en", images=im, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=n, do_sample=False)
    ids = out[0, inputs["input_ids"].shape[1]:].tolist()
    print(json.dumps({"generated_ids": ids, "distinct": len(set(ids))}))
    if len(ids) > 2 and len(set(ids)) == 1:
        raise SystemExit("error: greedy decoding repeats one token; change the init gains")
    return ids


if __name__ == "__main__":
    main()
