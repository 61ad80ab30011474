#!/usr/bin/env python3
"""Create tiny random PaliGemma checkpoints + reference outputs for pinhole's tests.

Everything is generated from scratch with fixed seeds (no model hub access):

    /work/venv/bin/python tools/make_paligemma_fixtures.py            # all variants
    /work/venv/bin/python tools/make_paligemma_fixtures.py pg2        # one variant
    /work/venv/bin/python tools/make_paligemma_fixtures.py --images   # images + resize fixture only

Output layout (see tools/README.md for the tensor list):

    tests/fixtures/images/*.png|jpg           test images (drawn with PIL)
    tests/fixtures/image-resize/              processor resize/normalise reference
    tests/fixtures/<variant>/model/           save_pretrained() output + processor files
    tests/fixtures/<variant>/expected.safetensors
    tests/fixtures/<variant>/expected.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
from PIL import Image, ImageDraw
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gemma_tokenizer import build_tokenizer, save_tokenizer_files, self_test  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
IMAGES = os.path.join(FIXTURES, "images")

torch.set_num_threads(1)

# --------------------------------------------------------------------------- images


def make_images() -> dict[str, str]:
    """Draw the test images deterministically. Returns name -> path."""
    os.makedirs(IMAGES, exist_ok=True)
    out = {}

    # 64x64 scene: red circle, blue square, green triangle on light gray.
    im = Image.new("RGB", (64, 64), (220, 220, 220))
    d = ImageDraw.Draw(im)
    d.ellipse((6, 6, 30, 30), fill=(230, 30, 30), outline=(120, 0, 0))
    d.rectangle((36, 8, 58, 30), fill=(30, 60, 220))
    d.polygon([(10, 58), (30, 36), (50, 58)], fill=(40, 180, 60))
    d.line((34, 40, 62, 62), fill=(0, 0, 0), width=2)
    out["shapes_64.png"] = im

    # 50x37 (W x H) non-square scene; needs a non-uniform resize.
    im = Image.new("RGB", (50, 37), (250, 245, 230))
    d = ImageDraw.Draw(im)
    d.ellipse((28, 4, 46, 22), fill=(250, 200, 0))
    d.rectangle((3, 12, 22, 33), fill=(150, 40, 160))
    d.line((0, 36, 49, 25), fill=(20, 120, 200), width=3)
    for x in range(0, 50, 7):  # a few high-frequency dots to exercise the filter
        d.point((x, 2), fill=(0, 0, 0))
    out["shapes_50x37.png"] = im

    # 40x56 "photo": smooth gradients + a disc, saved as baseline JPEG (quality 90).
    yy, xx = np.mgrid[0:56, 0:40].astype(np.float32)
    arr = np.stack(
        [
            80 + 150 * xx / 39,
            60 + 120 * yy / 55,
            200 - 100 * np.abs(np.sin(xx / 6.0 + yy / 9.0)),
        ],
        axis=-1,
    )
    disc = (xx - 22) ** 2 + (yy - 30) ** 2 < 90
    arr[disc] = [240, 240, 60]
    im = Image.fromarray(np.clip(arr + 0.5, 0, 255).astype(np.uint8), "RGB")
    out["gradient_40x56.jpg"] = im

    paths = {}
    for name, im in out.items():
        path = os.path.join(IMAGES, name)
        if name.endswith(".jpg"):
            im.save(path, format="JPEG", quality=90, subsampling=0, optimize=False, progressive=False)
        else:
            im.save(path, format="PNG", optimize=False)
        paths[name] = path
    return paths


def load_image(name: str) -> Image.Image:
    # What a user does: Image.open(path).convert("RGB") is not even needed, the
    # processor converts to RGB itself (do_convert_rgb).
    return Image.open(os.path.join(IMAGES, name))


# --------------------------------------------------------------------------- variants

# Every variant: Siglip vision tower + Gemma/Gemma2 text model, all tiny.
VARIANTS: dict[str, dict] = {
    "pg1-mqa": dict(
        doc="PaliGemma 1 (Gemma), multi-query attention (1 KV head), 32px / patch 8 = 16 image tokens",
        vocab_size=1600,
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                    image_size=32, patch_size=8),
        text=dict(model_type="gemma", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=2, num_key_value_heads=1, head_dim=16),
        image="shapes_64.png",
        prompt="caption en",
        seed=2,
        gain=dict(emb=0.3, finalnorm=3.0),
    ),
    "pg1-gqa": dict(
        doc="PaliGemma 1 (Gemma), 4 heads / 2 KV heads, head_dim 24 != 64/4, 48px / patch 16 = 9 image tokens, "
        "odd vocab, non-square input image",
        vocab_size=1637,
        vision=dict(hidden_size=48, intermediate_size=80, num_hidden_layers=2, num_attention_heads=3,
                    image_size=48, patch_size=16),
        text=dict(model_type="gemma", hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=24, rope_parameters=dict(
                      rope_type="default", rope_theta=10000.0)),
        image="shapes_50x37.png",
        prompt="answer en what is this?",
        seed=4,  # this seed happens to emit <eos> after 14 tokens: exercises EOS stopping
        gain=dict(emb=0.3, finalnorm=3.0),
    ),
    "pg2": dict(
        doc="PaliGemma 2 (Gemma 2): softcapping, query_pre_attn_scalar 24 != head_dim 16, sliding window 8 "
        "(smaller than the prefix) on layers 0 and 2, 3 text layers",
        vocab_size=1600,
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                    image_size=32, patch_size=8),
        text=dict(model_type="gemma2", hidden_size=64, intermediate_size=128, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=24,
                  attn_logit_softcapping=50.0, final_logit_softcapping=30.0, sliding_window=8,
                  layer_types=["sliding_attention", "full_attention", "sliding_attention"],
                  hidden_activation="gelu_pytorch_tanh"),
        image="shapes_64.png",
        prompt="detect circle",
        seed=3,
        gain=dict(emb=0.3, finalnorm=3.0, postnorm=6.0),
    ),
    "pg1-bf16-sharded": dict(
        doc="PaliGemma 1 (Gemma) stored in bfloat16 (like real checkpoints) and sharded "
        "(model.safetensors.index.json) with the Hub's tensor names (vision_tower.vision_model.*); "
        "reference outputs computed in float32 from the bf16 weights; prompt exercises byte fallback",
        vocab_size=1600,
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                    image_size=32, patch_size=8),
        text=dict(model_type="gemma", hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                  num_attention_heads=2, num_key_value_heads=1, head_dim=32),
        image="gradient_40x56.jpg",
        prompt="answer en où est le cercle?",
        seed=2,
        gain=dict(emb=0.3, finalnorm=3.0),
        save_dtype=torch.bfloat16,
        max_shard_size="150KB",
        hub_names=True,
    ),
}

MAX_NEW_TOKENS = 16
IMAGE_TOKEN_ID = 4


def build_config(v: dict):
    from transformers import PaliGemmaConfig

    text = dict(v["text"])
    text.update(vocab_size=v["vocab_size"], pad_token_id=0, eos_token_id=1, bos_token_id=2)
    vision = dict(v["vision"])
    vision.update(model_type="siglip_vision_model", vision_use_head=False)
    num_image_tokens = (vision["image_size"] // vision["patch_size"]) ** 2
    cfg = PaliGemmaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=IMAGE_TOKEN_ID,
        vocab_size=v["vocab_size"],
        projection_dim=text["hidden_size"],
        hidden_size=text["hidden_size"],
        bos_token_id=2,
        eos_token_id=1,
        pad_token_id=0,
    )
    assert cfg.text_config.num_image_tokens == num_image_tokens
    return cfg, num_image_tokens


DEFAULT_GAIN = dict(emb=0.5, qk=4.0, out=10.0)


@torch.no_grad()
def randomize(model, seed: int, gain: dict | None = None) -> None:
    """Deterministic, larger-than-default random weights so greedy decoding is varied.

    * matrices / conv kernels: N(0, 1/fan_in); text q/k projections x gain["qk"], text
      o_proj/down_proj x gain["out"] (so the layers, not the tied token embedding, dominate
      the residual stream and greedy decoding does not just repeat the last token)
    * token embeddings (tied LM head): N(0, gain["emb"]^2); vision position embeddings: N(0, 1)
    * Gemma RMSNorm weights (used as 1 + w): N(0, 0.2)
    * LayerNorm weights: 1 + N(0, 0.2); all biases: N(0, 0.1)
    """
    gain = {**DEFAULT_GAIN, **(gain or {})}
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        if p.ndim == 1:
            if name.endswith("bias"):
                val = torch.randn(p.shape, generator=g) * 0.1
            elif "language_model" in name:  # Gemma RMSNorm: scale is (1 + w)
                val = torch.randn(p.shape, generator=g) * 0.2
                if "post_attention_layernorm" in name or "post_feedforward_layernorm" in name:
                    # Gemma 2 normalises the sub-layer outputs: its post norms set their size
                    val += gain.get("postnorm", 0.0)
                if name.endswith("language_model.norm.weight"):  # final norm: sharpens the logits
                    val += gain.get("finalnorm", 0.0)
            else:  # Siglip LayerNorm
                val = 1.0 + torch.randn(p.shape, generator=g) * 0.2
        elif "embed_tokens" in name:
            val = torch.randn(p.shape, generator=g) * gain.get("emb", 1.0)
        elif "position_embedding" in name:
            val = torch.randn(p.shape, generator=g)
        else:
            fan_in = math.prod(p.shape[1:])
            std = 1.0 / math.sqrt(fan_in)
            if ("q_proj" in name or "k_proj" in name) and "language_model" in name:
                std *= gain.get("qk", 1.0)
            if ("o_proj" in name or "down_proj" in name) and "language_model" in name:
                std *= gain.get("out", 1.0)
            val = torch.randn(p.shape, generator=g) * std
        p.copy_(val.to(p.dtype))


def write_json(path: str, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


@torch.no_grad()
def make_variant(name: str, v: dict) -> dict:
    import transformers
    from transformers import AutoProcessor, PaliGemmaForConditionalGeneration

    out_dir = os.path.join(FIXTURES, name)
    model_dir = os.path.join(out_dir, "model")
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(model_dir)

    # ---- tokenizer + processor files
    cfg, num_image_tokens = build_config(v)
    tok = build_tokenizer(v["vocab_size"])
    self_test(tok)
    save_tokenizer_files(tok, model_dir, image_seq_length=num_image_tokens, image_size=v["vision"]["image_size"])

    # ---- random model, saved like a real checkpoint
    torch.manual_seed(v["seed"])
    model = PaliGemmaForConditionalGeneration(cfg).eval()
    randomize(model, v["seed"], v.get("gain"))
    save_dtype = v.get("save_dtype", torch.float32)
    model.to(save_dtype)
    save_kwargs = {}
    if "max_shard_size" in v:
        save_kwargs["max_shard_size"] = v["max_shard_size"]
    model.save_pretrained(model_dir, **save_kwargs)
    reference_state = {k: t.float().clone() for k, t in model.state_dict().items()}
    del model
    if v.get("hub_names"):
        rename_to_hub_names(model_dir)

    # ---- reload exactly like a user, but compute in float32
    processor = AutoProcessor.from_pretrained(model_dir)
    model, info = PaliGemmaForConditionalGeneration.from_pretrained(
        model_dir, dtype=torch.float32, output_loading_info=True
    )
    model.eval()
    bad = {k: val for k, val in info.items() if val}  # missing / unexpected / mismatched keys
    assert not bad, f"loading problems: {bad}"
    for k, t in model.state_dict().items():
        torch.testing.assert_close(t, reference_state[k], rtol=0, atol=0, msg=lambda m: f"{k}: {m}")
    saved_names = sorted(saved_tensor_names(model_dir))
    image = load_image(v["image"])
    prompt = v["prompt"]
    inputs = processor(text=prompt, images=image, return_tensors="pt")
    input_ids = inputs["input_ids"]
    token_type_ids = inputs["token_type_ids"]
    pixel_values = inputs["pixel_values"]
    assert pixel_values.dtype == torch.float32
    S = input_ids.shape[1]

    # intermediate tensors
    vision_out = model.model.vision_tower(pixel_values).last_hidden_state  # after post_layernorm
    projector_out = model.model.multi_modal_projector(vision_out)  # no scaling applied
    feats = model.model.get_image_features(pixel_values).pooler_output
    torch.testing.assert_close(feats, projector_out, rtol=0, atol=0)

    fwd = model(**inputs, use_cache=False)
    prefill_logits = fwd.logits[0].float()

    gen = model.generate(
        **inputs,
        max_new_tokens=MAX_NEW_TOKENS,
        do_sample=False,
        output_logits=True,
        return_dict_in_generate=True,
    )
    seq = gen.sequences[0]
    generated = seq[S:]
    gen_logits = torch.stack([l[0] for l in gen.logits]).float()  # [N, vocab] raw logits per step
    assert torch.equal(gen_logits.argmax(-1), generated), "greedy argmax mismatch"
    assert int(prefill_logits[-1].argmax()) == int(generated[0])
    torch.testing.assert_close(gen_logits[0], prefill_logits[-1], rtol=1e-5, atol=1e-5)

    # ---- cross-checks (not stored): eager attention, and full no-cache forward of prompt+generation
    eager = PaliGemmaForConditionalGeneration.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    full_ids = seq[None]
    full_tt = torch.cat([token_type_ids, torch.ones(1, len(generated), dtype=token_type_ids.dtype)], 1)
    full = eager(input_ids=full_ids, pixel_values=pixel_values, token_type_ids=full_tt, use_cache=False)
    full_logits = full.logits[0, S - 1 : -1]
    max_full_diff = float((full_logits - gen_logits).abs().max())
    assert torch.equal(full_logits.argmax(-1), generated), "no-cache full forward disagrees with generate"
    eager_prefill = eager(**inputs, use_cache=False).logits[0]
    max_eager_diff = float((eager_prefill - prefill_logits).abs().max())

    checks = {
        "max_abs_diff_eager_vs_default_prefill_logits": max_eager_diff,
        "max_abs_diff_nocache_full_forward_vs_generate_logits": max_full_diff,
    }
    if getattr(eager.config.text_config, "sliding_window", None) is not None:
        checks.update(gemma2_checks(eager, inputs, generated))

    # margins between best and second-best logit (robustness of the greedy path)
    top2 = gen_logits.topk(2, dim=-1).values
    margins = (top2[:, 0] - top2[:, 1]).tolist()

    eos_ids = model.generation_config.eos_token_id
    eos_ids = eos_ids if isinstance(eos_ids, list) else [eos_ids]
    stopped_on_eos = int(generated[-1]) in eos_ids

    tensors = {
        "pixel_values": pixel_values[0].contiguous(),
        "input_ids": input_ids[0].to(torch.int64).contiguous(),
        "token_type_ids": token_type_ids[0].to(torch.int64).contiguous(),
        "vision_out": vision_out[0].float().contiguous(),
        "projector_out": projector_out[0].float().contiguous(),
        "prefill_logits": prefill_logits.contiguous(),
        "generated_ids": generated.to(torch.int64).contiguous(),
        "generated_logits": gen_logits.contiguous(),
    }
    save_file(tensors, os.path.join(out_dir, "expected.safetensors"), metadata={"variant": name})

    tc = model.config.text_config
    expected = {
        "variant": name,
        "description": v["doc"],
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "model_dir": "model",
        "checkpoint_dtype": str(save_dtype).replace("torch.", ""),
        "compute_dtype": "float32",
        "attn_implementation": model.config._attn_implementation,
        "text_attn_implementation": tc._attn_implementation,
        "image_processor_class": type(processor.image_processor).__name__,
        "tokenizer_class": type(processor.tokenizer).__name__,
        "image": v["image"],
        "image_size_wh": list(image.size),
        "prompt": prompt,
        "processor_text": processor.tokenizer.decode(input_ids[0]),
        "num_image_tokens": num_image_tokens,
        "prefix_len": S,
        "input_ids": input_ids[0].tolist(),
        "token_type_ids": token_type_ids[0].tolist(),
        "input_tokens": processor.tokenizer.convert_ids_to_tokens(input_ids[0].tolist()),
        "max_new_tokens": MAX_NEW_TOKENS,
        "do_sample": False,
        "eos_token_ids": eos_ids,
        "stopped_on_eos": stopped_on_eos,
        "generated_ids": generated.tolist(),
        "generated_tokens": processor.tokenizer.convert_ids_to_tokens(generated.tolist()),
        "generated_text": processor.decode(generated, skip_special_tokens=True),
        "generated_text_with_special": processor.decode(generated, skip_special_tokens=False),
        "full_text": processor.decode(seq, skip_special_tokens=True),
        "min_greedy_margin": min(margins),
        "greedy_margins": margins,
        "checks": checks,
        "shapes": {k: list(t.shape) for k, t in tensors.items()},
        "dtypes": {k: str(t.dtype).replace("torch.", "") for k, t in tensors.items()},
        "checkpoint_tensor_names": saved_names,
    }
    write_json(os.path.join(out_dir, "expected.json"), expected)
    size = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(out_dir) for f in fs)
    print(
        f"{name}: S={S} generated={generated.tolist()} text={expected['generated_text']!r} "
        f"min_margin={min(margins):.4f} eager_diff={max_eager_diff:.2e} full_diff={max_full_diff:.2e} "
        f"size={size / 1e6:.2f}MB"
    )
    return expected


def saved_tensor_names(model_dir: str) -> list[str]:
    from safetensors import safe_open

    names = []
    for fn in sorted(os.listdir(model_dir)):
        if fn.endswith(".safetensors"):
            with safe_open(os.path.join(model_dir, fn), "pt") as f:
                names += list(f.keys())
    return names


def rename_to_hub_names(model_dir: str) -> None:
    """Rewrite the shards with the tensor names used by the PaliGemma checkpoints on the Hub
    (``vision_tower.vision_model.*``); transformers 5 writes ``vision_tower.*`` itself but
    loads both spellings."""
    from safetensors import safe_open

    def hub(name: str) -> str:
        if name.startswith("vision_tower.") and not name.startswith("vision_tower.vision_model."):
            return "vision_tower.vision_model." + name[len("vision_tower.") :]
        return name

    for fn in sorted(os.listdir(model_dir)):
        if fn.endswith(".safetensors"):
            path = os.path.join(model_dir, fn)
            with safe_open(path, "pt") as f:
                meta = f.metadata()
                tensors = {hub(k): f.get_tensor(k) for k in f.keys()}
            save_file(tensors, path, metadata=meta)
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            idx = json.load(f)
        idx["weight_map"] = {hub(k): val for k, val in sorted(idx["weight_map"].items())}
        with open(index, "w") as f:
            json.dump(idx, f, indent=2, sort_keys=True)
            f.write("\n")


@torch.no_grad()
def gemma2_checks(eager, inputs, generated) -> dict:
    """Show which Gemma 2 features change the numbers of this fixture (eager attention,
    compared with the same eager model with one feature switched off)."""
    tc = eager.config.text_config
    attn_layers = [layer.self_attn for layer in eager.model.language_model.layers]
    S = inputs["input_ids"].shape[1]

    def run():
        pre = eager(**inputs, use_cache=False).logits[0]
        g = eager.generate(
            **inputs, max_new_tokens=len(generated), do_sample=False, output_logits=True,
            return_dict_in_generate=True,
        )
        return pre, torch.stack([x[0] for x in g.logits]), g.sequences[0, S:]

    base_pre, base_gl, base_ids = run()
    assert torch.equal(base_ids, generated)
    out = {}

    def record(tag, pre, gl, ids):
        n = min(len(gl), len(base_gl))
        out[f"{tag}.max_abs_diff_prefill_logits"] = float((pre - base_pre).abs().max())
        out[f"{tag}.max_abs_diff_generated_logits"] = float((gl[:n] - base_gl[:n]).abs().max())
        out[f"{tag}.same_generated_ids"] = bool(torch.equal(ids, base_ids))

    # 1. sliding window: no effect inside the bidirectional prefix, matters while decoding.
    #    (the masks read config.sliding_window at call time)
    saved = tc.sliding_window
    tc.sliding_window = 1_000_000
    try:
        record("sliding_window_off", *run())
    finally:
        tc.sliding_window = saved
    # 2. attention-logit soft-capping (copied onto each attention module at init)
    saved = [a.attn_logit_softcapping for a in attn_layers]
    for a in attn_layers:
        a.attn_logit_softcapping = None
    try:
        record("attn_softcap_off", *run())
    finally:
        for a, val in zip(attn_layers, saved):
            a.attn_logit_softcapping = val
    # 3. final-logit soft-capping (read from the config in PaliGemmaForConditionalGeneration.forward)
    saved = tc.final_logit_softcapping
    tc.final_logit_softcapping = None
    try:
        pre, gl, ids = run()
        record("final_softcap_off", pre, gl, ids)
        out["final_softcap_off.max_abs_prefill_logit"] = float(pre.abs().max())
    finally:
        tc.final_logit_softcapping = saved
    return out


# --------------------------------------------------------------------------- resize fixture


def make_resize_fixture() -> None:
    """Reference for the processor's image path alone (PIL bicubic resize, rescale, normalise)."""
    from transformers import SiglipImageProcessor

    try:
        from transformers import SiglipImageProcessorPil as PilProc
    except ImportError:  # pragma: no cover
        PilProc = SiglipImageProcessor

    out_dir = os.path.join(FIXTURES, "image-resize")
    os.makedirs(out_dir, exist_ok=True)
    tensors = {}
    cases = []
    for img_name, sizes in [("shapes_50x37.png", [32, 48, 224]), ("gradient_40x56.jpg", [32]), ("shapes_64.png", [32])]:
        img = load_image(img_name)
        key = img_name.rsplit(".", 1)[0].replace("-", "_")
        decoded = np.array(img.convert("RGB"))  # [H, W, 3] uint8
        tensors[f"{key}.decoded_u8"] = torch.from_numpy(decoded.copy())
        for size in sizes:
            proc = PilProc(size={"height": size, "width": size})
            pv = proc(images=img, return_tensors="pt")["pixel_values"][0]  # [3, size, size] f32
            resized = np.array(img.convert("RGB").resize((size, size), resample=Image.BICUBIC))  # [size,size,3]
            # the processor == PIL bicubic on uint8, then float32(u8 * (1/255) in f64), then (x-0.5)/0.5 in f32
            manual = ((resized.astype(np.float64) * (1 / 255)).astype(np.float32) - np.float32(0.5)) / np.float32(0.5)
            assert np.array_equal(manual.transpose(2, 0, 1), pv.numpy()), "processor != PIL bicubic recipe"
            tensors[f"{key}.resized{size}_u8"] = torch.from_numpy(resized.copy())
            tensors[f"{key}.pixel_values{size}"] = pv.contiguous()
            w, h = img.size
            cases.append(
                {
                    "image": img_name,
                    "input_size_wh": [w, h],
                    "target": size,
                    # Pillow >= 13 (PR #9549); Pillow <= 12 always does horizontal first
                    "pass_order": "vertical_first"
                    if (h - size) > 0 and (h - size) > 2 * (w - size)
                    else "horizontal_first",
                    "decoded_u8": f"{key}.decoded_u8",
                    "resized_u8": f"{key}.resized{size}_u8",
                    "pixel_values": f"{key}.pixel_values{size}",
                }
            )
    save_file(tensors, os.path.join(out_dir, "expected.safetensors"))
    import transformers
    import PIL

    write_json(
        os.path.join(out_dir, "expected.json"),
        {
            "transformers_version": transformers.__version__,
            "pillow_version": PIL.__version__,
            "image_processor_class": PilProc.__name__,
            "recipe": "PIL Image.resize((W,H), BICUBIC) on the uint8 RGB image (no reducing_gap), "
            "then float32(u8 as f64 * (1/255)), then (x - 0.5) / 0.5 in float32, HWC -> CHW. "
            "Bit-exact NumPy spec of the resize: tools/pil_resize_reference.py",
            "cases": cases,
            "shapes": {k: list(t.shape) for k, t in tensors.items()},
            "dtypes": {k: str(t.dtype).replace("torch.", "") for k, t in tensors.items()},
        },
    )
    print(f"image-resize: {len(cases)} cases")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="*", help=f"subset of {list(VARIANTS)}")
    ap.add_argument("--images", action="store_true", help="only images + image-resize fixture")
    args = ap.parse_args()
    make_images()
    make_resize_fixture()
    if args.images:
        return
    names = args.variants or list(VARIANTS)
    for n in names:
        make_variant(n, VARIANTS[n])


if __name__ == "__main__":
    main()
