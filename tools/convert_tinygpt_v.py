#!/usr/bin/env python3
"""Convert a TinyGPT-V checkpoint (MiniGPT-4 code base: EVA ViT-g + BLIP-2 Q-Former + two
projections + Phi-2 with LoRA) into the Hugging Face BLIP-2 + Phi layout pinhole loads.

    python tools/convert_tinygpt_v.py OUT_DIR CKPT [CKPT ...] [--tokenizer DIR] [--lora-alpha 16]
    python tools/convert_tinygpt_v.py --selftest      # synthetic checkpoint -> tests/fixtures/tinygpt-v-synth

CKPT files are `.pth` (a `{"model": state_dict}` dict or a plain state dict, as MiniGPT-4 saves
them) or `.safetensors`; they are merged in order, later files winning. TinyGPT-V's training
checkpoints hold only the trained parameters, so pass the base weights (the EVA ViT / Q-Former
/ Phi-2 files, renamed to the full-model key names) first and the stage checkpoint last.

Key names read (the released code's `MiniGPT4` module):

| TinyGPT-V                                              | written as                                        |
|--------------------------------------------------------|---------------------------------------------------|
| `visual_encoder.cls_token` / `pos_embed`               | `vision_model.embeddings.class_embedding` / `position_embedding` |
| `visual_encoder.patch_embed.proj.*`                    | `vision_model.embeddings.patch_embedding.*`       |
| `visual_encoder.blocks.N.norm1/norm2.*`                | `vision_model.encoder.layers.N.layer_norm1/2.*`   |
| `visual_encoder.blocks.N.attn.qkv.weight`, `q_bias`, `v_bias`, `attn.proj.*` | `...self_attn.qkv.weight`, `q_bias`, `v_bias`, `projection.*` |
| `visual_encoder.blocks.N.mlp.fc1/fc2.*`                | `...mlp.fc1/fc2.*`                                |
| `ln_vision.*` (eps 1e-5)                               | `vision_model.post_layernorm.*` (`pinhole_post_layernorm_eps`) |
| `Qformer.bert.embeddings.LayerNorm.*`                  | `qformer.layernorm.*`                             |
| `Qformer.bert.encoder.layer.N.{attention,crossattention}.self.{query,key,value}` | `qformer.encoder.layer.N.{..}.attention.{..}` |
| `Qformer.bert.encoder.layer.N.{..}.output.*`, `intermediate_query`, `output_query` | same under `qformer.encoder.layer.N.` |
| `query_tokens`                                         | `query_tokens`                                    |
| `llama_proj.*`, `llama_proj2.*`                        | `language_projection.*`, `language_projection_2.*` (`pinhole_projection_hidden`) |
| `llama_model[.base_model.model].model.*`, `lm_head.*`  | `language_model.model.*`, `language_model.lm_head.*` |
| Phi `self_attn.query_key_value` (per-head `[q k v]`)   | `self_attn.q_proj` / `k_proj` / `v_proj`          |
| Phi `self_attn.{q,k}_layernorm`, `post_layernorm`      | same (`qk_layernorm`, `pinhole_post_attention_rmsnorm_eps`) |
| LoRA `X.lora_A[.default].weight`, `X.lora_B[...]`      | merged: `W + (alpha / r) · B · A`                  |

Q-Former text-side weights (`intermediate`, `output`, word/position embeddings, `cls`) are
dropped: an image-only Q-Former never runs them.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import sys

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


class ConvertError(Exception):
    pass


def load_state(paths: list[str]) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for p in paths:
        if p.endswith(".safetensors"):
            from safetensors.torch import load_file

            part = load_file(p)
        else:
            obj = torch.load(p, map_location="cpu", weights_only=True)
            part = obj.get("model", obj) if isinstance(obj, dict) else None
            if not isinstance(part, dict):
                raise ConvertError(f"{p}: not a state dict (or a dict with a 'model' state dict)")
        state.update({k: v for k, v in part.items() if isinstance(v, torch.Tensor)})
    return state


def merge_lora(state: dict[str, torch.Tensor], alpha: float) -> dict[str, torch.Tensor]:
    """Folds every `X.lora_A[.default].weight` / `X.lora_B[...]` pair into `X.weight` (or PEFT's
    `X.base_layer.weight`) and drops the LoRA tensors."""
    out = dict(state)
    a_keys = [k for k in state if re.search(r"\.lora_A(\.default)?\.weight$", k)]
    for a_key in a_keys:
        mod = re.sub(r"\.lora_A(\.default)?\.weight$", "", a_key)
        b_key = a_key.replace("lora_A", "lora_B")
        if b_key not in state:
            raise ConvertError(f"{a_key} has no matching {b_key}")
        base = next((k for k in (f"{mod}.base_layer.weight", f"{mod}.weight") if k in state), None)
        if base is None:
            raise ConvertError(f"LoRA weights for {mod} but no base weight {mod}.weight in the checkpoints")
        a, b = state[a_key].float(), state[b_key].float()
        r = a.shape[0]
        merged = state[base].float() + (alpha / r) * (b @ a)
        out[f"{mod}.weight"] = merged
        for k in (a_key, b_key):
            out.pop(k, None)
        if base.endswith(".base_layer.weight"):
            out.pop(base)
            bias = f"{mod}.base_layer.bias"
            if bias in out:
                out[f"{mod}.bias"] = out.pop(bias)
    return out


def count_layers(state, prefix: str) -> int:
    idx = {int(m.group(1)) for k in state for m in [re.match(re.escape(prefix) + r"(\d+)\.", k)] if m}
    if not idx:
        return 0
    if idx != set(range(max(idx) + 1)):
        raise ConvertError(f"layers under {prefix} are not numbered 0..N: {sorted(idx)}")
    return max(idx) + 1


def need(state, key: str) -> torch.Tensor:
    if key not in state:
        raise ConvertError(f"tensor '{key}' is missing from the checkpoints")
    return state[key]


def convert_state(state: dict[str, torch.Tensor], args) -> tuple[dict[str, torch.Tensor], dict]:
    state = merge_lora(state, args.lora_alpha)
    # The LLM prefix: with LoRA wrapping `llama_model.base_model.model.`, else `llama_model.`.
    llm = "llama_model.base_model.model." if any(k.startswith("llama_model.base_model.model.") for k in state) else "llama_model."
    out: dict[str, torch.Tensor] = {}

    # ---- vision (EVA ViT) + ln_vision
    for k in state:
        if k.startswith("visual_encoder.") and ("gamma_" in k or "relative_position" in k or k.endswith("rope")):
            raise ConvertError(f"{k}: layer scale / relative position bias EVA variants are not supported")
    cls = need(state, "visual_encoder.cls_token")
    e = cls.shape[-1]
    pos = need(state, "visual_encoder.pos_embed")
    pw = need(state, "visual_encoder.patch_embed.proj.weight")
    patch = pw.shape[-1]
    side = math.isqrt(pos.shape[1] - 1)
    if side * side != pos.shape[1] - 1:
        raise ConvertError(f"visual_encoder.pos_embed has {pos.shape[1]} rows, not 1 + a square")
    out["vision_model.embeddings.class_embedding"] = cls.reshape(1, 1, e)
    out["vision_model.embeddings.position_embedding"] = pos.reshape(1, -1, e)
    out["vision_model.embeddings.patch_embedding.weight"] = pw
    out["vision_model.embeddings.patch_embedding.bias"] = need(state, "visual_encoder.patch_embed.proj.bias")
    v_layers = count_layers(state, "visual_encoder.blocks.")
    for i in range(v_layers):
        s, d = f"visual_encoder.blocks.{i}.", f"vision_model.encoder.layers.{i}."
        for a, b in [("norm1", "layer_norm1"), ("norm2", "layer_norm2"), ("attn.proj", "self_attn.projection"),
                     ("mlp.fc1", "mlp.fc1"), ("mlp.fc2", "mlp.fc2")]:
            out[d + b + ".weight"] = need(state, s + a + ".weight")
            out[d + b + ".bias"] = need(state, s + a + ".bias")
        out[d + "self_attn.qkv.weight"] = need(state, s + "attn.qkv.weight")
        out[d + "self_attn.q_bias"] = need(state, s + "attn.q_bias")
        out[d + "self_attn.v_bias"] = need(state, s + "attn.v_bias")
    out["vision_model.post_layernorm.weight"] = need(state, "ln_vision.weight")
    out["vision_model.post_layernorm.bias"] = need(state, "ln_vision.bias")
    v_inter = out["vision_model.encoder.layers.0.mlp.fc1.weight"].shape[0]

    # ---- Q-Former
    qt = need(state, "query_tokens")
    hq = qt.shape[-1]
    out["query_tokens"] = qt.reshape(1, -1, hq)
    out["qformer.layernorm.weight"] = need(state, "Qformer.bert.embeddings.LayerNorm.weight")
    out["qformer.layernorm.bias"] = need(state, "Qformer.bert.embeddings.LayerNorm.bias")
    q_layers = count_layers(state, "Qformer.bert.encoder.layer.")
    cross = []
    for i in range(q_layers):
        s, d = f"Qformer.bert.encoder.layer.{i}.", f"qformer.encoder.layer.{i}."
        blocks = ["attention"]
        if s + "crossattention.self.query.weight" in state:
            blocks.append("crossattention")
            cross.append(i)
        for blk in blocks:
            for n in ["query", "key", "value"]:
                for t in ["weight", "bias"]:
                    out[f"{d}{blk}.attention.{n}.{t}"] = need(state, f"{s}{blk}.self.{n}.{t}")
            for n in ["output.dense", "output.LayerNorm"]:
                for t in ["weight", "bias"]:
                    out[f"{d}{blk}.{n}.{t}"] = need(state, f"{s}{blk}.{n}.{t}")
        for n in ["intermediate_query.dense", "output_query.dense", "output_query.LayerNorm"]:
            for t in ["weight", "bias"]:
                out[f"{d}{n}.{t}"] = need(state, f"{s}{n}.{t}")
    if not cross:
        raise ConvertError("no Q-Former layer has cross-attention weights (Qformer.bert.encoder.layer.N.crossattention.*)")
    freq = cross[1] - cross[0] if len(cross) > 1 else q_layers
    if cross != list(range(0, q_layers, freq)):
        raise ConvertError(f"Q-Former cross-attention layers {cross} are not every k-th layer from 0")
    q_inter = out["qformer.encoder.layer.0.intermediate_query.dense.weight"].shape[0]

    # ---- projections
    p1 = need(state, "llama_proj.weight")
    out["language_projection.weight"] = p1
    out["language_projection.bias"] = need(state, "llama_proj.bias")
    two = "llama_proj2.weight" in state
    if two:
        out["language_projection_2.weight"] = state["llama_proj2.weight"]
        out["language_projection_2.bias"] = need(state, "llama_proj2.bias")

    # ---- Phi
    emb = need(state, llm + "model.embed_tokens.weight")
    vocab, h = emb.shape
    nh = args.text_heads
    if h % nh:
        raise ConvertError(f"Phi hidden size {h} is not a multiple of --text-heads {nh}")
    hd = h // nh
    t_layers = count_layers(state, llm + "model.layers.")
    out["language_model.model.embed_tokens.weight"] = emb
    qk_ln = post_ln = False
    for i in range(t_layers):
        s, d = f"{llm}model.layers.{i}.", f"language_model.model.layers.{i}."
        fused = s + "self_attn.query_key_value.weight"
        if fused in state:
            # TinyGPT-V's Phi: one Linear, viewed as [heads, 3, head_dim] (Bloom's _split_heads).
            w = state[fused].reshape(nh, 3, hd, h)
            b = need(state, s + "self_attn.query_key_value.bias").reshape(nh, 3, hd)
            for j, n in enumerate(["q_proj", "k_proj", "v_proj"]):
                out[f"{d}self_attn.{n}.weight"] = w[:, j].reshape(nh * hd, h).contiguous()
                out[f"{d}self_attn.{n}.bias"] = b[:, j].reshape(nh * hd).contiguous()
        else:
            for n in ["q_proj", "k_proj", "v_proj"]:
                for t in ["weight", "bias"]:
                    out[f"{d}self_attn.{n}.{t}"] = need(state, f"{s}self_attn.{n}.{t}")
        for n in ["self_attn.dense", "mlp.fc1", "mlp.fc2", "input_layernorm"]:
            for t in ["weight", "bias"]:
                out[f"{d}{n}.{t}"] = need(state, f"{s}{n}.{t}")
        if s + "self_attn.q_layernorm.weight" in state:
            qk_ln = True
            for n in ["q_layernorm", "k_layernorm"]:
                for t in ["weight", "bias"]:
                    out[f"{d}self_attn.{n}.{t}"] = need(state, f"{s}self_attn.{n}.{t}")
        if s + "post_layernorm.weight" in state:
            post_ln = True
            out[f"{d}post_layernorm.weight"] = state[s + "post_layernorm.weight"]
    for t in ["weight", "bias"]:
        out[f"language_model.model.final_layernorm.{t}"] = need(state, f"{llm}model.final_layernorm.{t}")
        out[f"language_model.lm_head.{t}"] = need(state, f"{llm}lm_head.{t}")
    inter = out["language_model.model.layers.0.mlp.fc1.weight"].shape[0]
    if (p2 := out.get("language_projection_2.weight")) is not None:
        if p2.shape != (h, p1.shape[0]):
            raise ConvertError(f"llama_proj2.weight is {tuple(p2.shape)}, expected {(h, p1.shape[0])}")
    elif p1.shape != (h, hq):
        raise ConvertError(f"llama_proj.weight is {tuple(p1.shape)}, expected {(h, hq)}")

    config = {
        "architectures": ["Blip2ForConditionalGeneration"],
        "model_type": "blip-2",
        "dtype": "float32",
        "num_query_tokens": int(qt.shape[-2]),
        "vision_config": {
            "model_type": "blip_2_vision_model", "hidden_size": e, "intermediate_size": v_inter,
            "num_hidden_layers": v_layers, "num_attention_heads": args.vision_heads,
            "image_size": side * patch, "patch_size": patch, "hidden_act": "gelu",
            "layer_norm_eps": 1e-6, "qkv_bias": True, "pinhole_post_layernorm_eps": 1e-5,
        },
        "qformer_config": {
            "model_type": "blip_2_qformer", "hidden_size": hq, "intermediate_size": q_inter,
            "num_hidden_layers": q_layers, "num_attention_heads": args.qformer_heads,
            "cross_attention_frequency": freq, "encoder_hidden_size": e, "hidden_act": "gelu",
            "layer_norm_eps": 1e-12,
        },
        "text_config": {
            "model_type": "phi", "vocab_size": vocab, "hidden_size": h, "intermediate_size": inter,
            "num_hidden_layers": t_layers, "num_attention_heads": nh, "num_key_value_heads": nh,
            "hidden_act": "gelu_new", "layer_norm_eps": 1e-5, "max_position_embeddings": args.max_positions,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                                "partial_rotary_factor": args.partial_rotary_factor},
            "qk_layernorm": qk_ln, "tie_word_embeddings": False,
            "bos_token_id": args.eos_id, "eos_token_id": args.eos_id,
        },
        "eos_token_id": args.eos_id,
    }
    if two:
        config["pinhole_projection_hidden"] = int(p1.shape[0])
    if post_ln:
        config["text_config"]["pinhole_post_attention_rmsnorm_eps"] = 1e-6
    return out, config


def write_model(out_dir: str, tensors: dict[str, torch.Tensor], config: dict, tokenizer_dir: str | None) -> None:
    """Writes config.json, model.safetensors, the processor config and (optionally) the
    tokenizer files. Everything goes to `<out_dir>.partial` first and is renamed at the end."""
    from safetensors.torch import save_file

    tmp = out_dir.rstrip("/") + ".partial"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    os.makedirs(tmp)
    save_file({k: v.float().contiguous() for k, v in tensors.items()}, os.path.join(tmp, "model.safetensors"),
              metadata={"format": "pt"})
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    size = config["vision_config"]["image_size"]
    proc = {
        "image_processor": {
            "image_processor_type": "BlipImageProcessor", "do_resize": True, "size": {"height": size, "width": size},
            "resample": 3, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
            "image_mean": CLIP_MEAN, "image_std": CLIP_STD, "do_convert_rgb": True,
        },
        "num_query_tokens": config["num_query_tokens"],
        "processor_class": "Blip2Processor",
    }
    with open(os.path.join(tmp, "processor_config.json"), "w") as f:
        json.dump(proc, f, indent=2)
    with open(os.path.join(tmp, "generation_config.json"), "w") as f:
        json.dump({"eos_token_id": config["eos_token_id"], "bos_token_id": config["eos_token_id"]}, f, indent=2)
    if tokenizer_dir:
        for fn in ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]:
            if os.path.exists(os.path.join(tokenizer_dir, fn)):
                shutil.copy(os.path.join(tokenizer_dir, fn), os.path.join(tmp, fn))
    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.rename(tmp, out_dir)


# --------------------------------------------------------------------------- self-test

def synthetic_state(seed: int = 9) -> tuple[dict[str, torch.Tensor], dict]:
    """A random checkpoint with TinyGPT-V's key names and (tiny) shapes: LoRA on the Phi
    `query_key_value` and `dense` (PEFT names), q/k LayerNorms and the post-attention RMSNorm."""
    g = torch.Generator().manual_seed(seed)
    dims = dict(e=24, v_layers=2, v_heads=2, patch=8, side=4, v_inter=40, hq=16, q_layers=2, q_heads=2,
                q_inter=24, nq=4, proj_hidden=36, h=32, nh=2, t_layers=2, inter=64, vocab=300, r=4)
    d = dims

    def rnd(*shape, std=None):
        std = std if std is not None else 1.0 / math.sqrt(shape[-1]) if len(shape) > 1 else 0.1
        return torch.randn(*shape, generator=g) * std

    def norm(n):
        return 1.0 + torch.randn(n, generator=g) * 0.2

    s: dict[str, torch.Tensor] = {}
    e = d["e"]
    s["visual_encoder.cls_token"] = rnd(1, 1, e, std=1.0)
    s["visual_encoder.pos_embed"] = rnd(1, d["side"] ** 2 + 1, e, std=1.0)
    s["visual_encoder.patch_embed.proj.weight"] = rnd(e, 3, d["patch"], d["patch"], std=1 / math.sqrt(3 * 64))
    s["visual_encoder.patch_embed.proj.bias"] = rnd(e)
    for i in range(d["v_layers"]):
        p = f"visual_encoder.blocks.{i}."
        s[p + "norm1.weight"], s[p + "norm1.bias"] = norm(e), rnd(e)
        s[p + "norm2.weight"], s[p + "norm2.bias"] = norm(e), rnd(e)
        s[p + "attn.qkv.weight"] = rnd(3 * e, e)
        s[p + "attn.q_bias"], s[p + "attn.v_bias"] = rnd(e), rnd(e)
        s[p + "attn.proj.weight"], s[p + "attn.proj.bias"] = rnd(e, e), rnd(e)
        s[p + "mlp.fc1.weight"], s[p + "mlp.fc1.bias"] = rnd(d["v_inter"], e), rnd(d["v_inter"])
        s[p + "mlp.fc2.weight"], s[p + "mlp.fc2.bias"] = rnd(e, d["v_inter"]), rnd(e)
    s["ln_vision.weight"], s["ln_vision.bias"] = norm(e), rnd(e)
    hq = d["hq"]
    s["query_tokens"] = rnd(1, d["nq"], hq, std=1.0)
    s["Qformer.bert.embeddings.LayerNorm.weight"], s["Qformer.bert.embeddings.LayerNorm.bias"] = norm(hq), rnd(hq)
    for i in range(d["q_layers"]):
        p = f"Qformer.bert.encoder.layer.{i}."
        for blk, kin in [("attention", hq), ("crossattention", e)]:
            if blk == "crossattention" and i % 2:
                continue
            s[f"{p}{blk}.self.query.weight"], s[f"{p}{blk}.self.query.bias"] = rnd(hq, hq), rnd(hq)
            s[f"{p}{blk}.self.key.weight"], s[f"{p}{blk}.self.key.bias"] = rnd(hq, kin), rnd(hq)
            s[f"{p}{blk}.self.value.weight"], s[f"{p}{blk}.self.value.bias"] = rnd(hq, kin), rnd(hq)
            s[f"{p}{blk}.output.dense.weight"], s[f"{p}{blk}.output.dense.bias"] = rnd(hq, hq), rnd(hq)
            s[f"{p}{blk}.output.LayerNorm.weight"], s[f"{p}{blk}.output.LayerNorm.bias"] = norm(hq), rnd(hq)
        s[p + "intermediate_query.dense.weight"], s[p + "intermediate_query.dense.bias"] = rnd(d["q_inter"], hq), rnd(d["q_inter"])
        s[p + "output_query.dense.weight"], s[p + "output_query.dense.bias"] = rnd(hq, d["q_inter"]), rnd(hq)
        s[p + "output_query.LayerNorm.weight"], s[p + "output_query.LayerNorm.bias"] = norm(hq), rnd(hq)
        # text-side weights the converter must drop
        s[p + "intermediate.dense.weight"] = rnd(d["q_inter"], hq)
    s["llama_proj.weight"], s["llama_proj.bias"] = rnd(d["proj_hidden"], hq), rnd(d["proj_hidden"])
    h = d["h"]
    s["llama_proj2.weight"], s["llama_proj2.bias"] = rnd(h, d["proj_hidden"]), rnd(h)
    llm = "llama_model.base_model.model."
    s[llm + "model.embed_tokens.weight"] = rnd(d["vocab"], h, std=0.5)
    hd = h // d["nh"]
    for i in range(d["t_layers"]):
        p = f"{llm}model.layers.{i}."
        s[p + "input_layernorm.weight"], s[p + "input_layernorm.bias"] = norm(h), rnd(h)
        s[p + "self_attn.query_key_value.base_layer.weight"] = rnd(3 * h, h, std=3 / math.sqrt(h))
        s[p + "self_attn.query_key_value.base_layer.bias"] = rnd(3 * h)
        s[p + "self_attn.query_key_value.lora_A.default.weight"] = rnd(d["r"], h)
        s[p + "self_attn.query_key_value.lora_B.default.weight"] = rnd(3 * h, d["r"])
        s[p + "self_attn.dense.base_layer.weight"] = rnd(h, h, std=4 / math.sqrt(h))
        s[p + "self_attn.dense.base_layer.bias"] = rnd(h)
        s[p + "self_attn.dense.lora_A.default.weight"] = rnd(d["r"], h)
        s[p + "self_attn.dense.lora_B.default.weight"] = rnd(h, d["r"])
        s[p + "self_attn.q_layernorm.weight"], s[p + "self_attn.q_layernorm.bias"] = norm(hd), rnd(hd)
        s[p + "self_attn.k_layernorm.weight"], s[p + "self_attn.k_layernorm.bias"] = norm(hd), rnd(hd)
        s[p + "post_layernorm.weight"] = norm(h)
        s[p + "mlp.fc1.weight"], s[p + "mlp.fc1.bias"] = rnd(d["inter"], h), rnd(d["inter"])
        s[p + "mlp.fc2.weight"], s[p + "mlp.fc2.bias"] = rnd(h, d["inter"], std=4 / math.sqrt(d["inter"])), rnd(h)
    s[llm + "model.final_layernorm.weight"], s[llm + "model.final_layernorm.bias"] = norm(h), rnd(h)
    s[llm + "lm_head.weight"], s[llm + "lm_head.bias"] = rnd(d["vocab"], h), rnd(d["vocab"])
    s[llm + "lm_head.bias"][0] -= 30.0  # EOS (id 0) never wins: the greedy run is full length
    return s, dims


@torch.no_grad()
def reference_forward(s: dict[str, torch.Tensor], d: dict, pixels: torch.Tensor, ids: list[int], n_new: int,
                      alpha: float, partial: float):
    """TinyGPT-V's forward in the ORIGINAL layout (EVA blocks with fused qkv, LAVIS Q-Former,
    llama_proj -> llama_proj2, Phi with per-head fused qkv, unmerged LoRA, q/k LayerNorm and
    the post-attention RMSNorm), written from the released code, independent of transformers
    and of the converter. Image features go before the text ids (`<ImageHere>` at the start)."""
    F = torch.nn.functional
    ln = lambda x, p, eps: F.layer_norm(x, x.shape[-1:], s[p + ".weight"], s[p + ".bias"], eps)  # noqa: E731
    lin = lambda x, p: F.linear(x, s[p + ".weight"], s.get(p + ".bias"))  # noqa: E731

    def attn(q, k, v, heads, causal=False):
        T, S_ = q.shape[0], k.shape[0]
        q, k, v = (t.reshape(t.shape[0], heads, -1).transpose(0, 1) for t in (q, k, v))
        sc = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])
        if causal:
            sc = sc.masked_fill(torch.ones(T, S_, dtype=torch.bool).triu(S_ - T + 1), float("-inf"))
        return (sc.softmax(-1) @ v).transpose(0, 1).reshape(T, -1)

    # EVA ViT: cls + patches + pos, blocks, (no final norm) then ln_vision (eps 1e-5)
    e = d["e"]
    x = F.conv2d(pixels[None], s["visual_encoder.patch_embed.proj.weight"], s["visual_encoder.patch_embed.proj.bias"],
                 stride=d["patch"]).flatten(2)[0].T
    x = torch.cat([s["visual_encoder.cls_token"].reshape(1, e), x]) + s["visual_encoder.pos_embed"][0]
    for i in range(d["v_layers"]):
        p = f"visual_encoder.blocks.{i}."
        hh = ln(x, p + "norm1", 1e-6)
        bias = torch.cat([s[p + "attn.q_bias"], torch.zeros(e), s[p + "attn.v_bias"]])
        q, k, v = F.linear(hh, s[p + "attn.qkv.weight"], bias).split(e, -1)
        x = x + lin(attn(q, k, v, d["v_heads"]), p + "attn.proj")
        x = x + lin(F.gelu(lin(ln(x, p + "norm2", 1e-6), p + "mlp.fc1")), p + "mlp.fc2")
    img = ln(x, "ln_vision", 1e-5)

    # Q-Former (BertModel with query_embeds only)
    qx = ln(s["query_tokens"][0], "Qformer.bert.embeddings.LayerNorm", 1e-12)
    for i in range(d["q_layers"]):
        p = f"Qformer.bert.encoder.layer.{i}."
        for blk, src in [("attention", None), ("crossattention", img)]:
            if f"{p}{blk}.self.query.weight" not in s:
                continue
            kv = qx if src is None else src
            a = attn(lin(qx, f"{p}{blk}.self.query"), lin(kv, f"{p}{blk}.self.key"), lin(kv, f"{p}{blk}.self.value"),
                     d["q_heads"])
            qx = ln(lin(a, f"{p}{blk}.output.dense") + qx, f"{p}{blk}.output.LayerNorm", 1e-12)
        ff = lin(F.gelu(lin(qx, p + "intermediate_query.dense")), p + "output_query.dense")
        qx = ln(ff + qx, p + "output_query.LayerNorm", 1e-12)
    proj = lin(lin(qx, "llama_proj"), "llama_proj2")

    # Phi-2 (TinyGPT-V variant) with LoRA applied on the fly
    llm = "llama_model.base_model.model."
    h, nh = d["h"], d["nh"]
    hd = h // nh
    rd = int(hd * partial)

    def lora_lin(x, p):
        y = F.linear(x, s[p + ".base_layer.weight"], s[p + ".base_layer.bias"])
        a, b = s[p + ".lora_A.default.weight"], s[p + ".lora_B.default.weight"]
        return y + (alpha / a.shape[0]) * (x @ a.T @ b.T)

    inv = 1.0 / (10000.0 ** (torch.arange(0, rd, 2, dtype=torch.int64).float() / rd))

    def rope(t, pos):  # t [S, nh, hd]
        f = pos[:, None].float() * inv[None]
        emb = torch.cat([f, f], -1)
        cos, sin = emb.cos()[:, None], emb.sin()[:, None]
        r, rest = t[..., :rd], t[..., rd:]
        r1, r2 = r[..., : rd // 2], r[..., rd // 2:]
        return torch.cat([r * cos + torch.cat([-r2, r1], -1) * sin, rest], -1)

    def lm(seq_emb):
        S_ = seq_emb.shape[0]
        x = seq_emb
        for i in range(d["t_layers"]):
            p = f"{llm}model.layers.{i}."
            hh = ln(x, p + "input_layernorm", 1e-5)
            qkv = lora_lin(hh, p + "self_attn.query_key_value").reshape(S_, nh, 3, hd)
            q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
            q = ln(q, p + "self_attn.q_layernorm", 1e-5)
            k = ln(k, p + "self_attn.k_layernorm", 1e-5)
            pos = torch.arange(S_)
            q, k = rope(q, pos), rope(k, pos)
            a = attn(q.reshape(S_, h), k.reshape(S_, h), v.reshape(S_, h), nh, causal=True)
            a = lora_lin(a, p + "self_attn.dense")
            a = a * torch.rsqrt(a.pow(2).mean(-1, keepdim=True) + 1e-6) * s[p + "post_layernorm.weight"]
            m = lin(F.gelu(lin(hh, p + "mlp.fc1"), approximate="tanh"), p + "mlp.fc2")
            x = a + m + x
        x = ln(x, llm + "model.final_layernorm", 1e-5)
        return lin(x, llm + "lm_head")

    table = s[llm + "model.embed_tokens.weight"]
    seq = torch.cat([proj, table[torch.tensor(ids)]])
    logits = lm(seq)
    prefill = logits
    gen, gen_logits = [], []
    for _ in range(n_new):
        last = logits[-1]
        t = int(last.argmax())
        gen.append(t)
        gen_logits.append(last)
        seq = torch.cat([seq, table[t][None]])
        logits = lm(seq)
    return img, qx, proj, prefill, gen, torch.stack(gen_logits)


def build_synth_tokenizer(out_dir: str, vocab_model: int) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=290, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(["Question: what is in the picture? Answer: a red circle and a blue square."] * 4, trainer)
    assert tok.get_vocab_size() <= vocab_model
    tok.save(os.path.join(out_dir, "tokenizer.json"))


@torch.no_grad()
def selftest() -> None:
    """Builds a synthetic TinyGPT-V checkpoint, converts it, checks the conversion against the
    original-layout forward pass, and writes tests/fixtures/tinygpt-v-synth (the converted
    model plus the reference outputs) for pinhole's Rust tests."""
    import tempfile

    from PIL import Image
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    state, d = synthetic_state()
    alpha, partial = 16.0, 0.5
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "tinygpt_v_stage4.pth")
        torch.save({"model": state}, ckpt)
        ns = argparse.Namespace(lora_alpha=alpha, text_heads=d["nh"], vision_heads=d["v_heads"],
                                qformer_heads=d["q_heads"], partial_rotary_factor=partial, max_positions=64, eos_id=0)
        tensors, config = convert_state(load_state([ckpt]), ns)
    assert not any("lora" in k or "intermediate.dense" in k.split("layer.")[-1][:19] for k in tensors), "leftovers"
    assert config["pinhole_projection_hidden"] == d["proj_hidden"]
    assert config["qformer_config"]["cross_attention_frequency"] == 2
    assert config["text_config"]["qk_layernorm"] and config["text_config"]["pinhole_post_attention_rmsnorm_eps"] == 1e-6

    # merged LoRA equals base + scaled update; split qkv picks per-head rows
    p = "llama_model.base_model.model.model.layers.0.self_attn.query_key_value."
    merged = state[p + "base_layer.weight"] + (alpha / d["r"]) * state[p + "lora_B.default.weight"] @ state[p + "lora_A.default.weight"]
    hd = d["h"] // d["nh"]
    q_rows = torch.cat([merged[hh * 3 * hd: hh * 3 * hd + hd] for hh in range(d["nh"])])
    torch.testing.assert_close(tensors["language_model.model.layers.0.self_attn.q_proj.weight"], q_rows, rtol=0, atol=0)

    out_dir = os.path.join(REPO, "tests", "fixtures", "tinygpt-v-synth")
    model_dir = os.path.join(out_dir, "model")
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)
    write_model(model_dir, tensors, config, None)
    build_synth_tokenizer(model_dir, d["vocab"])

    # The reference run: pixels as the BLIP processor makes them from a fixture image.
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    prompt = "Question: what is in the picture? Answer:"
    ids = tok.encode(prompt).ids
    img = Image.open(os.path.join(REPO, "tests", "fixtures", "images", "shapes_64.png")).convert("RGB")
    size = d["side"] * d["patch"]
    import numpy as np

    arr = np.asarray(img.resize((size, size), Image.BICUBIC)).astype(np.float64) * (1 / 255)
    arr = arr.astype(np.float32)
    arr = (arr - np.array(CLIP_MEAN, dtype=np.float32)) / np.array(CLIP_STD, dtype=np.float32)
    pixels = torch.from_numpy(arr).permute(2, 0, 1).contiguous()
    n_new = 14
    img_f, qf, proj, prefill, gen, gen_logits = reference_forward(state, d, pixels, ids, n_new, alpha, partial)
    top2 = gen_logits.topk(2, -1).values
    margins = (top2[:, 0] - top2[:, 1]).tolist()
    nq = d["nq"]
    input_ids = [0] * nq + ids  # image rows first (no image token in this config)
    save_file({
        "pixel_values": pixels,
        "input_ids": torch.tensor(input_ids, dtype=torch.int64),
        "vision_out": img_f.contiguous(), "qformer_out": qf.contiguous(), "projector_out": proj.contiguous(),
        "prefill_logits": prefill.contiguous(), "generated_ids": torch.tensor(gen, dtype=torch.int64),
        "generated_logits": gen_logits.contiguous(),
    }, os.path.join(out_dir, "expected.safetensors"))
    with open(os.path.join(out_dir, "expected.json"), "w") as f:
        json.dump({
            "variant": "tinygpt-v-synth",
            "description": "synthetic TinyGPT-V checkpoint (original key names, LoRA, fused qkv) converted by "
                           "tools/convert_tinygpt_v.py; reference = original-layout forward in plain torch",
            "image": "shapes_64.png", "prompt": prompt, "input_ids": input_ids, "generated_ids": gen,
            "eos_token_ids": [0], "min_greedy_margin": min(margins), "torch_version": torch.__version__,
        }, f, indent=2)
        f.write("\n")
    print(f"selftest ok: generated={gen} min_margin={min(margins):.4f} -> {out_dir}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir", nargs="?")
    ap.add_argument("checkpoints", nargs="*")
    ap.add_argument("--tokenizer", help="folder with Phi-2's tokenizer.json to copy")
    ap.add_argument("--lora-alpha", type=float, default=16.0, help="LoRA alpha (TinyGPT-V: 16); scale = alpha / r")
    ap.add_argument("--text-heads", type=int, default=32, help="Phi attention heads (Phi-2: 32)")
    ap.add_argument("--vision-heads", type=int, default=16, help="EVA ViT heads (ViT-g: 16)")
    ap.add_argument("--qformer-heads", type=int, default=12)
    ap.add_argument("--partial-rotary-factor", type=float, default=0.4, help="Phi-2: 0.4")
    ap.add_argument("--max-positions", type=int, default=2048)
    ap.add_argument("--eos-id", type=int, default=50256, help="Phi-2's <|endoftext|>")
    ap.add_argument("--selftest", action="store_true")
    args = ap.parse_args()
    if args.selftest:
        selftest()
        return
    if not args.out_dir or not args.checkpoints:
        ap.error("give OUT_DIR and at least one checkpoint (or --selftest)")
    try:
        tensors, config = convert_state(load_state(args.checkpoints), args)
        write_model(args.out_dir, tensors, config, args.tokenizer)
    except ConvertError as e:
        sys.exit(f"convert_tinygpt_v: {e}")
    print(f"wrote {args.out_dir}: {len(tensors)} tensors")


if __name__ == "__main__":
    main()
