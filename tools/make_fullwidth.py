#!/usr/bin/env python3
"""Write a random checkpoint at a real model's widths, in the Hub's layout, for benchmarks.

    /work/venv/bin/python tools/make_fullwidth.py --arch paligemma-3b-224 --layers 1 \\
        --dtype bf16 --out /tmp/pg3b-l1 --seed 0 [--vision-layers N] [--check [--pinhole BIN]]

Architectures (every width as the real checkpoint; only the depth is chosen):

* ``paligemma-3b-224``: SigLIP-So400m 224 px / patch 14 (256 image tokens) + Gemma-2B
  (2048 / 16384, 8 heads, 1 KV head, head_dim 256, vocab 257216), like
  google/paligemma-3b-pt-224. Full depth: 27 vision and 18 text layers.
* ``paligemma2-3b-224``: the same vision tower + Gemma 2 2B (2304 / 9216, 8 heads, 4 KV heads,
  softcapping, sliding window 4096), like google/paligemma2-3b-pt-224. Full depth: 27 / 26.

* ``tinygpt-v``: TinyGPT-V (BLIP-2's EVA ViT-g: 1408 wide, 16 heads, MLP 6144, 224 px / patch 14
  → 256 patches + the class token, `ln_vision` eps 1e-5; the BLIP-2 Q-Former: 768 wide, 12 heads,
  MLP 3072, cross-attention to the 1408-wide image rows on every 2nd layer, 32 query tokens;
  `llama_proj` 768 → 4096 and `llama_proj2` 4096 → 2560; Phi-2: 2560 wide, 32 heads, MLP 10240,
  partial rotary 0.4 (32 of 80 dims), vocab 51200, with TinyGPT-V's per-head Q/K LayerNorm and
  post-attention RMSNorm) in the layout ``tools/convert_tinygpt_v.py`` writes
  (``Blip2ForConditionalGeneration`` + Phi, the ``pinhole_*`` keys for the second projection,
  the RMSNorm and the ``ln_vision`` eps), plus ``image_token_index`` so transformers' processor
  and model accept it. Full depth: 39 vision, 12 Q-Former, 32 text layers.
* ``blip2-phi-2``: the same widths without TinyGPT-V's three changes (one 768 → 2560 projection,
  no Q/K LayerNorm, no post-attention RMSNorm): a stock ``Blip2ForConditionalGeneration`` with
  Phi-2 that transformers loads with no help.

``--layers N`` sets the text depth and, unless ``--vision-layers`` (``--qformer-layers``) is
given, the vision (Q-Former) depth (each capped at the real depth; 0 or ``full`` means the real
depth).

transformers has no class for TinyGPT-V's three changes, so ``load_transformers`` (used by
``--check`` and tools/bench-vs-transformers.py) builds ``Blip2ForConditionalGeneration`` from the
config and adds them itself: ``language_projection`` at 768 → 4096 followed by
``language_projection_2`` (a forward hook), an RMSNorm on each ``self_attn`` output (a forward
hook, weights ``layers.N.post_layernorm.weight``, eps 1e-6) and ``post_layernorm.eps`` = 1e-5,
in a subclass that ``from_pretrained`` loads (no missing, unexpected or mismatched tensor).
Everything else is transformers' own code.

The Phi folders carry a byte-level BPE with Phi-2's special id (``<|endoftext|>`` 50256 = bos =
eos = unk = pad; ids up to 50294 as in Phi-2's tokenizer, fillers where the small learned BPE
ends) and ``<image>`` at 50295 (Phi-2 has no image token; any free id below 51200 would do).

The folder is what ``save_pretrained`` writes (config.json, generation_config.json, sharded
safetensors with an index when over ``--max-shard-size``), plus tokenizer files with the real
special-token ids (<pad> 0, <eos> 1, <bos> 2, <unk> 3, <loc0000> 256000 .. <loc1023> 257023,
<seg000> 257024 .. <seg127> 257151, <image> 257152) and a small learned BPE (see
gemma_tokenizer.py), so transformers' ``AutoProcessor`` / ``PaliGemmaForConditionalGeneration``
load it and pinhole reads it as a real checkpoint. Weights are random with the larger-than-default
init scale of the test fixtures (make_paligemma_fixtures.randomize), which makes greedy decoding
emit varied tokens rather than one token again and again; ``--check`` runs transformers'
greedy generation on two test images and prompts and prints the ids (and fails if they are all
the same); with ``--pinhole BIN`` it also runs ``BIN generate --json`` on each and compares the
prompt ids and the greedy ids with transformers' (exit status 1 when they differ), and the
relative error of what ``--dump`` writes (pixels, vision, Q-Former, projection, first logits).
``--check-only --out DIR`` checks an existing folder; ``--pinhole-model`` runs pinhole on
another folder (a ``pinhole quantize`` copy, which transformers cannot read).

Nothing here is committed: benchmarks (tools/bench-vs-transformers.py, tools/bench-gpu.sh)
generate their models on demand. A 1-layer paligemma-3b-224 is 1.3 GB in bf16 and takes about
a minute on 2 cores; full depth is 5.9 GB. A 1-layer tinygpt-v is 0.77 GB in bf16.
"""

from __future__ import annotations

import argparse
import json
import math
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

# BLIP-2's vision tower (EVA ViT-g/14 without its last block) and Q-Former: transformers'
# Blip2VisionConfig / Blip2QFormerConfig defaults, which are BLIP-2's (and TinyGPT-V's) widths.
EVA_VIT_G_224 = dict(hidden_size=1408, intermediate_size=6144, num_hidden_layers=39, num_attention_heads=16,
                     image_size=224, patch_size=14, hidden_act="gelu", layer_norm_eps=1e-6, qkv_bias=True)
BLIP2_QFORMER = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                     cross_attention_frequency=2, hidden_act="gelu", layer_norm_eps=1e-12)
# Phi-2 (microsoft/phi-2's config; PhiConfig's defaults are Phi-1's 2048 / 8192 / 24 layers).
PHI_2 = dict(model_type="phi", hidden_size=2560, intermediate_size=10240, num_hidden_layers=32,
             num_attention_heads=32, num_key_value_heads=32, hidden_act="gelu_new", layer_norm_eps=1e-5,
             max_position_embeddings=2048, partial_rotary_factor=0.4, rope_theta=10000.0, qk_layernorm=True,
             vocab_size=51200, tie_word_embeddings=False)
PHI_EOT = "<|endoftext|>"
PHI_EOT_ID = 50256  # Phi-2's (CodeGen's) <|endoftext|>: bos = eos = unk = pad
PHI_TOKENIZER_SIZE = 50295  # Phi-2's tokenizer: 50257 + 38 added whitespace tokens
PHI_IMAGE_ID = 50295  # <image>: the first id after Phi-2's tokenizer (the model has 51200 rows)
# TinyGPT-V: eps of ln_vision (LAVIS: PyTorch's default) and of the post-attention RMSNorm.
LN_VISION_EPS = 1e-5
POST_ATTN_RMSNORM_EPS = 1e-6

SIGLIP_SO400M_224 = dict(hidden_size=1152, intermediate_size=4304, num_hidden_layers=27, num_attention_heads=16,
                         image_size=224, patch_size=14)
ARCHS = {
    "paligemma-3b-224": dict(
        family="paligemma",
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
        family="paligemma",
        vision=SIGLIP_SO400M_224,
        text=dict(model_type="gemma2", hidden_size=2304, intermediate_size=9216, num_hidden_layers=26,
                  num_attention_heads=8, num_key_value_heads=4, head_dim=256, query_pre_attn_scalar=256,
                  attn_logit_softcapping=50.0, final_logit_softcapping=30.0, sliding_window=4096,
                  hidden_activation="gelu_pytorch_tanh"),
        gain=dict(emb=0.05, finalnorm=3.0, postnorm=6.0, out=80.0),
    ),
    "tinygpt-v": dict(
        family="blip2",
        vision=EVA_VIT_G_224,
        qformer=BLIP2_QFORMER,
        num_query_tokens=32,
        text=PHI_2,
        tinygpt_v=True,
        # llama_proj 768 -> 4096, llama_proj2 4096 -> 2560 (TinyGPT-V's minigpt4 code).
        projection_hidden=4096,
        # make_blip2_phi_fixtures' gains (Phi q/k x3, dense/fc2 x4, token embedding 0.5): the
        # layer outputs outweigh the token embedding, so greedy decoding is varied.
        gain=dict(qk=3.0, out=4.0, emb=0.5),
    ),
    "blip2-phi-2": dict(
        family="blip2",
        vision=EVA_VIT_G_224,
        qformer=BLIP2_QFORMER,
        num_query_tokens=32,
        text={**PHI_2, "qk_layernorm": False},
        tinygpt_v=False,
        gain=dict(qk=3.0, out=4.0, emb=0.5),
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


# --------------------------------------------------------------------------- BLIP-2 + Phi

PHI_CORPUS = [
    "Question: what is in the picture? Answer: a red circle and a blue square.",
    "Describe the image in detail. The image shows a green triangle next to a yellow star.",
    "A photo of a cat sitting on a table next to a cup of tea.",
    "There are two circles and one square on a gray background.",
] * 4


def build_phi_tokenizer():
    """A GPT-2 style byte-level BPE whose special ids are Phi-2's: a small learned BPE, fillers
    up to id 50294, `<|endoftext|>` at 50256 and `<image>` at 50295 (both special)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    small = Tokenizer(models.BPE())
    small.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=700, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    small.train_from_iterator(PHI_CORPUS, trainer)
    model = json.loads(small.to_str())["model"]
    learned = sorted(model["vocab"], key=model["vocab"].get)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    tokens = learned + [f"<|filler{i}|>" for i in range(len(learned), PHI_TOKENIZER_SIZE)]
    tokens[PHI_EOT_ID] = PHI_EOT
    assert len(tokens) == PHI_TOKENIZER_SIZE and len(set(tokens)) == PHI_TOKENIZER_SIZE
    tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_special_tokens([AddedToken(PHI_EOT, normalized=False, special=True),
                            AddedToken("<image>", normalized=False, special=True)])
    assert tok.token_to_id(PHI_EOT) == PHI_EOT_ID and tok.token_to_id("<image>") == PHI_IMAGE_ID
    return tok


def save_blip2_processor(tok, out_dir: str, num_query_tokens: int, image_size: int) -> None:
    """tokenizer + `Blip2Processor` (the BLIP PIL image processor with CLIP's mean / std, as
    convert_tinygpt_v.py writes it), saved as transformers saves them."""
    from transformers import Blip2Processor, PreTrainedTokenizerFast
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=PHI_EOT, eos_token=PHI_EOT, pad_token=PHI_EOT,
                                   unk_token=PHI_EOT)
    ip = BlipImageProcessorPil(size={"height": image_size, "width": image_size},
                               image_mean=[0.48145466, 0.4578275, 0.40821073],
                               image_std=[0.26862954, 0.26130258, 0.27577711])
    proc = Blip2Processor(ip, fast, num_query_tokens=num_query_tokens)
    assert fast.convert_tokens_to_ids("<image>") == PHI_IMAGE_ID
    proc.save_pretrained(out_dir)


def build_blip2_config(arch: dict, text_layers: int, vision_layers: int, qformer_layers: int):
    from transformers import Blip2Config

    text = dict(arch["text"], num_hidden_layers=text_layers, bos_token_id=PHI_EOT_ID, eos_token_id=PHI_EOT_ID,
                pad_token_id=PHI_EOT_ID)
    factor, theta = text.pop("partial_rotary_factor"), text.pop("rope_theta")
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": theta, "partial_rotary_factor": factor}
    cfg = Blip2Config(vision_config=dict(arch["vision"], num_hidden_layers=vision_layers),
                      qformer_config=dict(arch["qformer"], num_hidden_layers=qformer_layers),
                      text_config=text, num_query_tokens=arch["num_query_tokens"], image_token_index=PHI_IMAGE_ID,
                      eos_token_id=PHI_EOT_ID)
    assert cfg.qformer_config.encoder_hidden_size == arch["vision"]["hidden_size"]
    return cfg


class PostAttentionRMSNorm(torch.nn.Module):
    """TinyGPT-V's `post_layernorm` on the attention output (LLaMA's RMSNorm: normalised in
    float32, then scaled by the weight)."""

    def __init__(self, hidden: int, eps: float):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(hidden))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def add_tinygpt_v_pieces(model, config: dict) -> None:
    """Adds TinyGPT-V's three changes (the ``pinhole_*`` keys of config.json) to a
    `Blip2ForConditionalGeneration`: the two-layer projection, the post-attention RMSNorm of
    every Phi layer and the `ln_vision` eps. New modules are created empty (the caller loads
    or randomizes them) in the dtype of the model's other weights."""
    dtype = model.language_projection.weight.dtype
    dev = model.language_projection.weight.device
    mid = config.get("pinhole_projection_hidden")
    if mid:
        qh = model.config.qformer_config.hidden_size
        th = model.config.text_config.hidden_size
        model.language_projection = torch.nn.Linear(qh, mid, device=dev, dtype=dtype)
        model.language_projection_2 = torch.nn.Linear(mid, th, device=dev, dtype=dtype)
        model.language_projection.register_forward_hook(lambda _m, _i, out: model.language_projection_2(out))
    eps = config.get("text_config", {}).get("pinhole_post_attention_rmsnorm_eps")
    if eps is not None:
        for layer in model.language_model.model.layers:
            norm = PostAttentionRMSNorm(model.config.text_config.hidden_size, eps).to(device=dev, dtype=dtype)
            layer.post_layernorm = norm
            layer.self_attn.register_forward_hook(lambda _m, _i, out, norm=norm: (norm(out[0]), *out[1:]))
    eps = config.get("vision_config", {}).get("pinhole_post_layernorm_eps")
    if eps is not None:
        model.vision_model.post_layernorm.eps = eps


def tinygpt_v_keys(arch: dict) -> dict:
    """The ``pinhole_*`` config keys convert_tinygpt_v.py writes, for an arch with
    ``tinygpt_v``; empty otherwise."""
    if not arch.get("tinygpt_v"):
        return {}
    return {"pinhole_projection_hidden": arch["projection_hidden"],
            "text_config": {"pinhole_post_attention_rmsnorm_eps": POST_ATTN_RMSNORM_EPS},
            "vision_config": {"pinhole_post_layernorm_eps": LN_VISION_EPS}}


def merge_config(path: str, extra: dict) -> None:
    with open(path) as f:
        cfg = json.load(f)
    for k, v in extra.items():
        if isinstance(v, dict):
            cfg[k].update(v)
        else:
            cfg[k] = v
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


@torch.no_grad()
def randomize_blip2(model, seed: int, gain: dict) -> None:
    """make_blip2_phi_fixtures.randomize at any width, with the gains as parameters:
    matrices N(0, 1/fan_in) (Phi q/k x gain["qk"], dense/fc2 x gain["out"]), token embedding
    N(0, gain["emb"]^2), class token / positions / query tokens N(0, 1), norm weights
    1 + N(0, 0.2), biases N(0, 0.1); the LM-head bias of <|endoftext|> lowered by 30 so greedy
    decoding runs the whole length."""
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        if name.endswith("bias"):
            val = torch.randn(p.shape, generator=g) * 0.1
        elif p.ndim == 1:
            val = 1.0 + torch.randn(p.shape, generator=g) * 0.2
        elif "embed_tokens" in name:
            val = torch.randn(p.shape, generator=g) * gain.get("emb", 1.0)
        elif "position_embedding" in name or "class_embedding" in name or name == "query_tokens":
            val = torch.randn(p.shape, generator=g)
        else:
            std = 1.0 / math.sqrt(math.prod(p.shape[1:]))
            if "language_model" in name and ("q_proj" in name or "k_proj" in name):
                std *= gain.get("qk", 1.0)
            if "language_model" in name and ("dense" in name or "fc2" in name):
                std *= gain.get("out", 1.0)
            val = torch.randn(p.shape, generator=g) * std
        p.copy_(val.to(p.dtype))
    model.language_model.lm_head.bias[PHI_EOT_ID] -= 30.0


def write_blip2(arch: dict, tmp: str, depths: dict, dtype, seed: int, gain: dict, max_shard_size: str) -> None:
    from transformers import Blip2ForConditionalGeneration

    save_blip2_processor(build_phi_tokenizer(), tmp, arch["num_query_tokens"], arch["vision"]["image_size"])
    cfg = build_blip2_config(arch, depths["text"], depths["vision"], depths["qformer"])
    extra = tinygpt_v_keys(arch)
    torch.manual_seed(seed)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        # Built on the CPU (not on the meta device as PaliGemma is), so that every buffer
        # transformers saves has its real value.
        model = Blip2ForConditionalGeneration(cfg).eval()
        add_tinygpt_v_pieces(model, extra)
    finally:
        torch.set_default_dtype(prev)
    randomize_blip2(model, seed, gain)
    model.generation_config.eos_token_id = PHI_EOT_ID
    model.generation_config.bos_token_id = PHI_EOT_ID
    model.generation_config.pad_token_id = PHI_EOT_ID
    model.save_pretrained(tmp, max_shard_size=max_shard_size)
    if extra:
        merge_config(os.path.join(tmp, "config.json"), extra)


def load_transformers(model_dir: str, dtype=torch.float32):
    """(processor, model) of a folder this script wrote, as transformers runs it: PaliGemma and
    stock BLIP-2 + Phi through `from_pretrained`; TinyGPT-V through `from_pretrained` of a
    subclass that adds add_tinygpt_v_pieces (every checkpoint tensor used, none missing)."""
    from transformers import AutoProcessor, Blip2ForConditionalGeneration
    from transformers import PaliGemmaForConditionalGeneration

    with open(os.path.join(model_dir, "config.json")) as f:
        raw = json.load(f)
    proc = AutoProcessor.from_pretrained(model_dir)
    if raw["model_type"] == "paligemma":
        model = PaliGemmaForConditionalGeneration.from_pretrained(model_dir, dtype=dtype, attn_implementation="sdpa")
        return proc, model.eval()
    if not any(k.startswith("pinhole_") for k in [*raw, *raw["text_config"], *raw["vision_config"]]):
        model, info = Blip2ForConditionalGeneration.from_pretrained(model_dir, dtype=dtype, attn_implementation="sdpa",
                                                                    output_loading_info=True)
        bad = {k: v for k, v in info.items() if v}
        assert not bad, f"loading problems: {bad}"
        return proc, model.eval()

    class TinyGPTV(Blip2ForConditionalGeneration):
        """transformers' BLIP-2 + Phi with TinyGPT-V's pieces, so that `from_pretrained` (its
        own loading path and checks) reads the folder."""

        def __init__(self, config):
            super().__init__(config)
            add_tinygpt_v_pieces(self, raw)

    model, info = TinyGPTV.from_pretrained(model_dir, dtype=dtype, attn_implementation="sdpa",
                                           output_loading_info=True)
    bad = {k: v for k, v in info.items() if v}
    assert not bad, f"loading problems: {bad}"
    model.generation_config.eos_token_id = PHI_EOT_ID
    model.generation_config.pad_token_id = PHI_EOT_ID
    return proc, model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", required=True, choices=sorted(ARCHS))
    ap.add_argument("--layers", default="1", help="text layers (and vision / Q-Former layers unless given); "
                    "0 or 'full' = the real depth")
    ap.add_argument("--vision-layers", default=None)
    ap.add_argument("--qformer-layers", default=None, help="BLIP-2 families: Q-Former layers (default --layers)")
    ap.add_argument("--dtype", default="bf16", choices=sorted(DTYPES))
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-shard-size", default="1GB", help="as save_pretrained's (default 1GB)")
    ap.add_argument("--gain", default=None, help='JSON overriding the init gains, e.g. {"out": 20}')
    ap.add_argument("--check", action="store_true", help="run transformers' greedy generation and print the ids")
    ap.add_argument("--check-only", action="store_true", help="only --check an existing --out")
    ap.add_argument("--pinhole", default=None, help="--check: also run this pinhole binary and compare the ids")
    ap.add_argument("--pinhole-arg", action="append", default=[], help="--check: extra `pinhole generate` argument")
    ap.add_argument("--pinhole-model", default=None, help="--check: run pinhole on this folder instead of --out "
                    "(e.g. its `pinhole quantize` copy, which transformers cannot read)")
    ap.add_argument("--new-tokens", type=int, default=8, help="--check: greedy tokens per case (default 8)")
    ap.add_argument("--force", action="store_true", help="replace --out if it exists")
    args = ap.parse_args()

    if args.check_only:
        sys.exit(check(args.out, args.new_tokens, args.pinhole, args.pinhole_arg, args.pinhole_model))
    arch = ARCHS[args.arch]

    def depth(v, full):
        n = full if str(v) in ("0", "full") else int(v)
        if not 1 <= n <= full:
            raise SystemExit(f"error: depth {v} is outside 1..{full} for {args.arch}")
        return n

    depths = {"text": depth(args.layers, arch["text"]["num_hidden_layers"]),
              "vision": depth(args.vision_layers or args.layers, arch["vision"]["num_hidden_layers"])}
    if arch["family"] == "blip2":
        depths["qformer"] = depth(args.qformer_layers or args.layers, arch["qformer"]["num_hidden_layers"])
    if os.path.exists(args.out) and os.listdir(args.out) and not args.force:
        raise SystemExit(f"error: {args.out} exists and is not empty (use --force to replace it)")

    t0 = time.time()
    tmp = args.out.rstrip("/") + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    dtype = DTYPES[args.dtype]
    gain = {**arch["gain"], **json.loads(args.gain or "{}")}
    if arch["family"] == "blip2":
        write_blip2(arch, tmp, depths, dtype, args.seed, gain, args.max_shard_size)
    else:
        write_paligemma(arch, tmp, depths, dtype, args.seed, gain, args.max_shard_size)
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    os.rename(tmp, args.out)
    size = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print(f"wrote {args.out}: {args.arch}, " + " / ".join(f"{n} {k}" for k, n in depths.items()) +
          f" layers, {args.dtype}, {size / 1e9:.2f} GB in {time.time() - t0:.0f} s")
    if args.check:
        sys.exit(check(args.out, args.new_tokens, args.pinhole, args.pinhole_arg, args.pinhole_model))


def write_paligemma(arch: dict, tmp: str, depths: dict, dtype, seed: int, gain: dict, max_shard_size: str) -> None:
    from make_paligemma_fixtures import randomize
    from transformers import PaliGemmaForConditionalGeneration

    tok = build_full_tokenizer()
    save_tokenizer_files(tok, tmp, image_seq_length=256, image_size=224)
    cfg = build_config(arch, depths["text"], depths["vision"])
    torch.manual_seed(seed)
    # Built in the storage dtype directly: at full depth an f32 copy would be 12 GB.
    prev = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device("meta"):
            model = PaliGemmaForConditionalGeneration(cfg)
        model = model.to_empty(device="cpu").eval()
    finally:
        torch.set_default_dtype(prev)
    randomize(model, seed, gain)
    model.tie_weights()
    model.to(dtype)
    model.save_pretrained(tmp, max_shard_size=max_shard_size)


def test_images(folder: str) -> list[str]:
    """Two drawn test pictures: shapes on grey (96x80) and tools/bench-vs-transformers.py's
    picture (a red disc on a colour gradient, 320x240)."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (96, 80), (220, 220, 220))
    d = ImageDraw.Draw(im)
    d.ellipse((6, 6, 40, 40), fill=(230, 30, 30))
    d.rectangle((50, 10, 90, 50), fill=(30, 60, 220))
    shapes = os.path.join(folder, "shapes.png")
    im.save(shapes)
    w, h = 320, 240
    im = Image.new("RGB", (w, h))
    px = im.load()
    for y in range(h):
        for x in range(w):
            dx, dy = x - 200, y - 120
            px[x, y] = (220, 40, 40) if dx * dx + dy * dy < 60 * 60 else (x * 255 // w, y * 255 // h, 128)
    picture = os.path.join(folder, "picture.png")
    im.save(picture)
    return [shapes, picture]


PROMPTS = {"paligemma": ["caption en", "detect circle"],
           "blip-2": ["Question: what is in the picture? Answer:", "Describe the image in detail."]}


def pinhole_generate(binary: str, model_dir: str, image: str, prompt: str, n: int, extra: list[str],
                     dump: str | None = None) -> dict:
    import subprocess

    cmd = [binary, "generate", "--model", model_dir, "--image", image, "--prompt", prompt, "--max-new-tokens",
           str(n), "--json", *extra] + (["--dump", dump] if dump else [])
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "XDG_RUNTIME_DIR": "/tmp"})
    if r.returncode != 0:
        return {"error": r.stderr.strip()[-2000:]}
    return json.loads(r.stdout.strip().splitlines()[-1])


@torch.no_grad()
def compare_dump(model, model_type: str, inputs, first_logits, path: str) -> dict:
    """max |pinhole - transformers| / max |transformers| of what `pinhole generate --dump` wrote:
    pixels, the vision tower's output, (BLIP-2) the Q-Former's, the projected image rows and the
    logits of the first generated token."""
    from safetensors.torch import load_file

    got = load_file(path)
    px = inputs["pixel_values"]
    ref = {"pixel_values": px[0]}
    if model_type == "blip-2":
        vision = model.vision_model(pixel_values=px).last_hidden_state
        q = model.qformer(query_embeds=model.query_tokens, encoder_hidden_states=vision,
                          encoder_attention_mask=torch.ones(vision.shape[:-1], dtype=torch.long)).last_hidden_state
        ref.update(vision_out=vision[0], qformer_out=q[0], projector_out=model.language_projection(q)[0])
    else:
        vision = model.model.vision_tower(px).last_hidden_state
        ref.update(vision_out=vision[0], projector_out=model.model.multi_modal_projector(vision)[0])
    ref["prefill_logits"] = first_logits
    errs = {}
    for k, r in ref.items():
        if k in got:
            g, r = got[k].float().flatten(), r.float().flatten()
            g = g[-r.numel():]  # the dump's logits may hold every prompt row; the last is the first token's
            if g.numel() == r.numel():
                errs[k] = float((g - r).abs().max() / r.abs().max().clamp_min(1e-30))
    return {k: float(f"{v:.2e}") for k, v in errs.items()}


def check(model_dir: str, n: int = 8, pinhole: str | None = None, pinhole_args: list[str] | None = None,
          pinhole_model: str | None = None) -> int:
    """transformers' greedy ids (CPU, float32) on two images and prompts; with `pinhole`, the
    same cases through `pinhole generate --json`, compared id for id. Returns the exit status."""
    import tempfile

    with open(os.path.join(model_dir, "config.json")) as f:
        model_type = json.load(f)["model_type"]
    proc, model = load_transformers(model_dir)
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for image, prompt in zip(test_images(tmp), PROMPTS[model_type]):
            from PIL import Image

            inputs = proc(text=prompt, images=Image.open(image).convert("RGB"), return_tensors="pt")
            s = inputs["input_ids"].shape[1]
            with torch.no_grad():
                out = model.generate(**inputs, max_new_tokens=n, do_sample=False, output_logits=True,
                                     return_dict_in_generate=True)
            seq = out.sequences[0]
            ids = (seq[s:] if seq.shape[0] > n else seq).tolist()
            top2 = torch.stack([lg[0].float() for lg in out.logits]).topk(2, -1)
            margins = (top2.values[:, 0] - top2.values[:, 1]).tolist()
            res = {"image": os.path.basename(image), "prompt": prompt, "prompt_len": s, "generated_ids": ids,
                   "distinct": len(set(ids)), "min_greedy_margin": round(min(margins), 4)}
            if len(ids) > 2 and len(set(ids)) == 1:
                print(json.dumps(res))
                raise SystemExit("error: greedy decoding repeats one token; change the init gains")
            if pinhole:
                dump = os.path.join(tmp, "dump")
                got = pinhole_generate(pinhole, pinhole_model or model_dir, image, prompt, n, pinhole_args or [],
                                       dump)
                if "error" in got:
                    # --dump records the prefill logits of every prompt row, [S, vocab] in one buffer:
                    # for PaliGemma-3B (260 x 257216 f32) that is over a 128 MiB binding limit
                    res["dump_error"] = got["error"]
                    got = pinhole_generate(pinhole, pinhole_model or model_dir, image, prompt, n,
                                           pinhole_args or [])
                if os.path.exists(os.path.join(dump, "dump.safetensors")):
                    res["rel_error"] = compare_dump(model, model_type, inputs, out.logits[0][0],
                                                    os.path.join(dump, "dump.safetensors"))
                res["pinhole_ids"] = got.get("token_ids")
                res["prompt_ids_equal"] = got.get("prompt_ids") == inputs["input_ids"][0].tolist()
                res["same"] = res["prompt_ids_equal"] and got.get("token_ids") == ids
                res["equal_ids"] = sum(a == b for a, b in zip(ids, got.get("token_ids") or []))
                if "error" in got:
                    res["pinhole_error"] = got["error"]
                if not res["same"]:
                    failures += 1
                    k = next((i for i, (a, b) in enumerate(zip(ids, got.get("token_ids") or [])) if a != b), None)
                    if k is not None:  # how close transformers' own choice was there
                        res["first_difference"] = {"step": k, "margin": round(margins[k], 4),
                                                   "top2": top2.indices[k].tolist()}
            print(json.dumps(res), flush=True)
    if pinhole:
        print(f"{2 - failures}/2 cases equal to transformers")
    return 1 if failures else 0


if __name__ == "__main__":
    main()
