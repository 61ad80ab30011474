#!/usr/bin/env python3
"""Independent, minimal PaliGemma (1 and 2) forward pass written from the semantics
documented in tools/README.md -- it does NOT import transformers' modelling code.

It reads a fixture's `model/` folder (config.json + *.safetensors, any of the tensor
naming schemes) and the fixture's `expected.safetensors` inputs, recomputes
vision_out / projector_out / prefill_logits and the greedy continuation (full
recompute every step, no KV cache) and compares with what transformers produced.

    /work/venv/bin/python tools/reference_paligemma.py            # all fixtures
    /work/venv/bin/python tools/reference_paligemma.py pg2

This is the executable version of the "semantics to match" list for the Rust side.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys

import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "tests", "fixtures")


def canonical_name(name: str) -> str:
    """Map every PaliGemma tensor-naming scheme onto one:
    Hub / transformers-5 save:  language_model.model.X, vision_tower[.vision_model].X, multi_modal_projector.X
    transformers 4.5x save:     model.language_model.X, model.vision_tower.vision_model.X, model.multi_modal_projector.X, lm_head.weight
    ->                          language_model.X, vision_tower.X, multi_modal_projector.X, lm_head.weight
    """
    name = re.sub(r"^model\.", "", name)
    name = re.sub(r"^language_model\.model\.", "language_model.", name)
    name = re.sub(r"^language_model\.lm_head\.", "lm_head.", name)
    name = re.sub(r"^vision_tower\.vision_model\.", "vision_tower.", name)
    return name


def load_weights(model_dir: str) -> dict[str, torch.Tensor]:
    w = {}
    for fn in sorted(os.listdir(model_dir)):
        if fn.endswith(".safetensors"):
            for k, t in load_file(os.path.join(model_dir, fn)).items():
                w[canonical_name(k)] = t.float()  # bf16/f16 -> f32 is exact
    return w


def layer_norm(x, w, b, eps):
    return F.layer_norm(x, (x.shape[-1],), w, b, eps)


def gemma_rms_norm(x, w, eps):
    # computed in f32; the learned weight is an offset: scale = 1 + w
    x32 = x.float()
    return x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps) * (1.0 + w.float())


def linear(x, w, b=None):
    return F.linear(x, w, b)


def vision_tower(w, vc, pixel_values):
    """pixel_values [3, H, W] -> [num_patches, vision_hidden] (after post_layernorm)."""
    p = vc["patch_size"]
    x = F.conv2d(pixel_values[None], w["vision_tower.embeddings.patch_embedding.weight"],
                 w["vision_tower.embeddings.patch_embedding.bias"], stride=p)  # [1, D, H/p, W/p]
    x = x.flatten(2).transpose(1, 2)[0]  # row-major patches: index = row * (W/p) + col
    x = x + w["vision_tower.embeddings.position_embedding.weight"]
    D = x.shape[-1]
    nh = vc["num_attention_heads"]
    hd = D // nh
    eps = vc.get("layer_norm_eps", 1e-6)
    for i in range(vc["num_hidden_layers"]):
        pre = f"vision_tower.encoder.layers.{i}."
        h = layer_norm(x, w[pre + "layer_norm1.weight"], w[pre + "layer_norm1.bias"], eps)
        q = linear(h, w[pre + "self_attn.q_proj.weight"], w[pre + "self_attn.q_proj.bias"])
        k = linear(h, w[pre + "self_attn.k_proj.weight"], w[pre + "self_attn.k_proj.bias"])
        v = linear(h, w[pre + "self_attn.v_proj.weight"], w[pre + "self_attn.v_proj.bias"])
        q, k, v = (t.view(-1, nh, hd).transpose(0, 1) for t in (q, k, v))
        a = torch.softmax(q @ k.transpose(1, 2) * hd**-0.5, dim=-1) @ v  # no mask at all
        a = a.transpose(0, 1).reshape(-1, D)
        x = x + linear(a, w[pre + "self_attn.out_proj.weight"], w[pre + "self_attn.out_proj.bias"])
        h = layer_norm(x, w[pre + "layer_norm2.weight"], w[pre + "layer_norm2.bias"], eps)
        h = F.gelu(linear(h, w[pre + "mlp.fc1.weight"], w[pre + "mlp.fc1.bias"]), approximate="tanh")
        x = x + linear(h, w[pre + "mlp.fc2.weight"], w[pre + "mlp.fc2.bias"])
    return layer_norm(x, w["vision_tower.post_layernorm.weight"], w["vision_tower.post_layernorm.bias"], eps)


def rope(x, pos, theta):
    """x [heads, L, hd]; rotate-half convention (NOT interleaved pairs)."""
    hd = x.shape[-1]
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    ang = pos[:, None].float() * inv_freq[None]  # [L, hd/2]
    emb = torch.cat([ang, ang], -1)
    cos, sin = emb.cos(), emb.sin()
    x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
    return x * cos + torch.cat([-x2, x1], -1) * sin


def allowed_mask(token_type_ids, sliding_window=None):
    """[L, L] bool. Causal, plus full bidirectional attention among the prefix tokens
    (token_type_ids == 0). Sliding layers additionally require k > q - window, but the
    prefix block is OR-ed on top, so inside the prefix the window does not apply."""
    L = token_type_ids.shape[0]
    q = torch.arange(L)[:, None]
    k = torch.arange(L)[None, :]
    causal = k <= q
    if sliding_window is not None:
        causal = causal & (k > q - sliding_window)
    prefix = (token_type_ids == 0)
    block = prefix[:, None] & prefix[None, :]
    return causal | block


def text_model(w, tc, inputs_embeds, token_type_ids):
    """inputs_embeds [L, H] (already scaled / merged) -> logits [L, vocab]."""
    is_g2 = tc["model_type"] == "gemma2"
    L, H = inputs_embeds.shape
    nh, nkv = tc["num_attention_heads"], tc["num_key_value_heads"]
    hd = tc.get("head_dim") or H // nh
    eps = tc.get("rms_norm_eps", 1e-6)
    theta = (tc.get("rope_parameters") or {}).get("rope_theta", tc.get("rope_theta", 10000.0))
    scale = (tc["query_pre_attn_scalar"] if is_g2 else hd) ** -0.5
    softcap = tc.get("attn_logit_softcapping") if is_g2 else None
    pos = torch.arange(L) + 1  # PaliGemma positions are 1-based
    layer_types = tc.get("layer_types") or ["full_attention"] * tc["num_hidden_layers"]
    x = inputs_embeds
    for i in range(tc["num_hidden_layers"]):
        pre = f"language_model.layers.{i}."
        window = tc["sliding_window"] if layer_types[i] == "sliding_attention" else None
        mask = allowed_mask(token_type_ids, window)
        h = gemma_rms_norm(x, w[pre + "input_layernorm.weight"], eps)
        q = linear(h, w[pre + "self_attn.q_proj.weight"]).view(L, nh, hd).transpose(0, 1)
        k = linear(h, w[pre + "self_attn.k_proj.weight"]).view(L, nkv, hd).transpose(0, 1)
        v = linear(h, w[pre + "self_attn.v_proj.weight"]).view(L, nkv, hd).transpose(0, 1)
        q, k = rope(q, pos, theta), rope(k, pos, theta)
        k = k.repeat_interleave(nh // nkv, 0)  # query head j uses kv head j // (nh/nkv)
        v = v.repeat_interleave(nh // nkv, 0)
        s = q @ k.transpose(1, 2) * scale
        if softcap is not None:
            s = torch.tanh(s / softcap) * softcap
        s = s.masked_fill(~mask, float("-inf"))
        a = (torch.softmax(s, -1) @ v).transpose(0, 1).reshape(L, nh * hd)
        a = linear(a, w[pre + "self_attn.o_proj.weight"])
        if is_g2:
            a = gemma_rms_norm(a, w[pre + "post_attention_layernorm.weight"], eps)
            x = x + a
            h = gemma_rms_norm(x, w[pre + "pre_feedforward_layernorm.weight"], eps)
        else:
            x = x + a
            h = gemma_rms_norm(x, w[pre + "post_attention_layernorm.weight"], eps)
        act = tc.get("hidden_activation") or tc.get("hidden_act") or "gelu_pytorch_tanh"
        assert act in ("gelu_pytorch_tanh", "gelu"), act  # Gemma's "gelu" also means the tanh form
        m = F.gelu(linear(h, w[pre + "mlp.gate_proj.weight"]), approximate="tanh") * linear(h, w[pre + "mlp.up_proj.weight"])
        m = linear(m, w[pre + "mlp.down_proj.weight"])
        if is_g2:
            m = gemma_rms_norm(m, w[pre + "post_feedforward_layernorm.weight"], eps)
        x = x + m
    x = gemma_rms_norm(x, w["language_model.norm.weight"], eps)
    lm_head = w.get("lm_head.weight", w["language_model.embed_tokens.weight"])  # tied by default
    logits = x @ lm_head.T
    if is_g2 and tc.get("final_logit_softcapping") is not None:
        c = tc["final_logit_softcapping"]
        logits = torch.tanh(logits / c) * c
    return logits


def embed(w, cfg, input_ids, projector_out):
    H = cfg["text_config"]["hidden_size"]
    E = w["language_model.embed_tokens.weight"]
    # normaliser sqrt(H) is rounded to the compute dtype (f32 here; bf16 -> e.g. 6.9375 for H=48)
    x = E[input_ids] * torch.tensor(math.sqrt(H), dtype=torch.float32)
    img = input_ids == cfg["image_token_index"]
    assert int(img.sum()) == projector_out.shape[0]
    x[img] = projector_out  # image features are NOT multiplied by sqrt(H) (nor divided)
    return x


@torch.no_grad()
def check_fixture(name: str) -> dict:
    fdir = os.path.join(FIXTURES, name)
    with open(os.path.join(fdir, "model", "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(fdir, "expected.json")) as f:
        exp = json.load(f)
    ref = load_file(os.path.join(fdir, "expected.safetensors"))
    w = load_weights(os.path.join(fdir, "model"))
    tc, vc = cfg["text_config"], cfg["vision_config"]

    vis = vision_tower(w, vc, ref["pixel_values"])
    proj = linear(vis, w["multi_modal_projector.linear.weight"], w["multi_modal_projector.linear.bias"])
    ids = ref["input_ids"]
    tt = ref["token_type_ids"]
    logits = text_model(w, tc, embed(w, cfg, ids, proj), tt)

    res = {
        "vision_out": float((vis - ref["vision_out"]).abs().max()),
        "projector_out": float((proj - ref["projector_out"]).abs().max()),
        "prefill_logits": float((logits - ref["prefill_logits"]).abs().max()),
    }
    # greedy decode, full recompute every step; generated tokens have token_type 1
    eos = set(exp["eos_token_ids"])
    seq, types, out, gen_logits = ids.clone(), tt.clone(), [], []
    for _ in range(exp["max_new_tokens"]):
        lg = text_model(w, tc, embed(w, cfg, seq, proj), types)[-1]
        gen_logits.append(lg)
        nxt = int(lg.argmax())
        out.append(nxt)
        if nxt in eos:
            break
        seq = torch.cat([seq, torch.tensor([nxt])])
        types = torch.cat([types, torch.tensor([1])])
    res["generated_logits"] = float((torch.stack(gen_logits) - ref["generated_logits"][: len(out)]).abs().max())
    res["generated_ids_equal"] = out == exp["generated_ids"]
    return res


def main() -> None:
    names = sys.argv[1:] or sorted(
        d for d in os.listdir(FIXTURES) if os.path.exists(os.path.join(FIXTURES, d, "model", "config.json"))
    )
    ok = True
    for n in names:
        r = check_fixture(n)
        good = r["generated_ids_equal"] and all(
            r[k] < 2e-3 for k in ("vision_out", "projector_out", "prefill_logits", "generated_logits")
        )
        ok &= good
        print(f"{n}: {'OK ' if good else 'BAD'} " + " ".join(f"{k}={v:.2e}" if isinstance(v, float) else f"{k}={v}"
                                                       for k, v in r.items()))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
