#!/usr/bin/env python3
"""Create tiny random BLIP-2 + Phi checkpoints (the TinyGPT-V design) + reference outputs.

Everything is generated from scratch with fixed seeds (no model hub access):

    /work/venv/bin/python tools/make_blip2_phi_fixtures.py              # all variants
    /work/venv/bin/python tools/make_blip2_phi_fixtures.py blip2-phi    # one variant

Output (see tools/README.md):

    tests/fixtures/<variant>/model/               save_pretrained() output + processor files
    tests/fixtures/<variant>/expected.safetensors vision / Q-Former / projection outputs, logits, ids
    tests/fixtures/<variant>/expected.json        prompt, ids, tokens, text, checks

The models are `Blip2ForConditionalGeneration` with `text_config.model_type = "phi"`, run in
float32 with transformers' own modelling code. The test images come from
make_paligemma_fixtures.py (tests/fixtures/images).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil

import torch
from PIL import Image
from safetensors.torch import save_file

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(REPO, "tests", "fixtures")
IMAGES = os.path.join(FIXTURES, "images")

torch.set_num_threads(1)

EOT = "<|endoftext|>"  # Phi's bos = eos = pad token
IMAGE = "<image>"
MAX_NEW_TOKENS = 16

CORPUS = [
    "A picture of a red circle on a white background.",
    "The image shows a blue square next to a green triangle.",
    "There is a small yellow star in the top left corner.",
    "Two circles and one square are drawn on a gray background.",
    "Question: what is this? Answer: a picture of some simple shapes.",
    "Question: how many shapes are there? Answer: three.",
    "Describe the image in detail.",
    "a photo of a cat sitting on a table next to a cup of tea",
] * 4


def build_tokenizer(vocab_size: int, add_bos: bool):
    """A small GPT-2 style byte-level BPE (like Phi's CodeGen tokenizer): id 0 is
    `<|endoftext|>`, id 1 `<image>`. With `add_bos`, a TemplateProcessing post-processor puts
    `<|endoftext|>` in front of every text (Phi's own tokenizer adds nothing)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT, IMAGE],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    if add_bos:
        tok.post_processor = processors.TemplateProcessing(single=f"{EOT} $A", special_tokens=[(EOT, 0)])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    assert tok.token_to_id(EOT) == 0 and tok.token_to_id(IMAGE) == 1
    return tok


VARIANTS = {
    "blip2-phi": dict(
        doc="BLIP-2 + Phi: GQA in Phi, partial rotary 0.5, Q-Former with cross-attention on layers 0 and 2",
        seed=7,
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                    image_size=32, patch_size=8),
        qformer=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=3, num_attention_heads=2,
                     cross_attention_frequency=2),
        text=dict(hidden_size=32, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, partial_rotary_factor=0.5, qk_layernorm=False,
                  max_position_embeddings=128, rope_theta=10000.0),
        num_query_tokens=8,
        vocab=(400, 400),
        add_bos=False,
        image="shapes_64.png",
        prompt="Question: what is this? Answer:",
    ),
    "blip2-phi-qkln": dict(
        doc="BLIP-2 + Phi with qk_layernorm (TinyGPT-V's Phi change), head_dim 20 with partial rotary "
            "0.4 (8 dims), odd model vocab above the tokenizer's, BOS added by the tokenizer, "
            "non-square image, cross-attention on every Q-Former layer",
        seed=23,
        vision=dict(hidden_size=24, intermediate_size=40, num_hidden_layers=2, num_attention_heads=3,
                    image_size=48, patch_size=16),
        qformer=dict(hidden_size=24, intermediate_size=36, num_hidden_layers=2, num_attention_heads=2,
                     cross_attention_frequency=1),
        text=dict(hidden_size=40, intermediate_size=80, num_hidden_layers=3, num_attention_heads=2,
                  num_key_value_heads=2, partial_rotary_factor=0.4, qk_layernorm=True,
                  max_position_embeddings=96, rope_theta=500.0),
        num_query_tokens=6,
        vocab=(360, 373),
        add_bos=True,
        image="shapes_50x37.png",
        prompt="Describe the image in detail.",
    ),
}


def build_config(v: dict, tok_vocab: int, model_vocab: int):
    from transformers import Blip2Config

    text = dict(v["text"])
    factor = text.pop("partial_rotary_factor")
    theta = text.pop("rope_theta")
    text.update(
        model_type="phi",
        vocab_size=model_vocab,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=0,
        hidden_act="gelu_new",
        rope_parameters={"rope_type": "default", "rope_theta": theta, "partial_rotary_factor": factor},
        tie_word_embeddings=False,
    )
    cfg = Blip2Config(
        vision_config=dict(v["vision"]),
        qformer_config=dict(v["qformer"]),
        text_config=text,
        num_query_tokens=v["num_query_tokens"],
        image_token_index=1,
    )
    assert cfg.qformer_config.encoder_hidden_size == v["vision"]["hidden_size"]
    return cfg


@torch.no_grad()
def randomize(model, seed: int) -> None:
    """Deterministic random weights, larger than transformers' init so every piece matters:

    * matrices / conv kernels: N(0, 1/fan_in), Phi q/k x 3 and dense/fc2 x 4 (so the layers,
      not the token embedding, dominate and greedy decoding is varied);
    * token embeddings, position embeddings, class token, query tokens: N(0, 1) (embeddings 0.5);
    * LayerNorm weights 1 + N(0, 0.2), RMSNorm weights 1 + N(0, 0.2), all biases N(0, 0.1);
    * the LM-head bias of `<|endoftext|>` (the EOS id) is lowered by 30 so greedy decoding
      runs the full 16 tokens instead of stopping at once.
    """
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        if name.endswith("bias") or name.endswith("q_bias") or name.endswith("v_bias"):
            val = torch.randn(p.shape, generator=g) * 0.1
        elif p.ndim == 1:  # norm weights
            val = 1.0 + torch.randn(p.shape, generator=g) * 0.2
        elif "embed_tokens" in name:
            val = torch.randn(p.shape, generator=g) * 0.5
        elif "position_embedding" in name or "class_embedding" in name or name == "query_tokens":
            val = torch.randn(p.shape, generator=g)
        else:
            std = 1.0 / math.sqrt(math.prod(p.shape[1:]))
            if "language_model" in name and ("q_proj" in name or "k_proj" in name):
                std *= 3.0
            if "language_model" in name and ("dense" in name or "fc2" in name):
                std *= 4.0
            val = torch.randn(p.shape, generator=g) * std
        p.copy_(val.to(p.dtype))
    model.language_model.lm_head.bias[0] -= 30.0


def write_json(path: str, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def saved_tensor_names(model_dir: str) -> list[str]:
    from safetensors import safe_open

    names = []
    for fn in sorted(os.listdir(model_dir)):
        if fn.endswith(".safetensors"):
            with safe_open(os.path.join(model_dir, fn), "pt") as f:
                names += list(f.keys())
    return names


@torch.no_grad()
def make_variant(name: str, v: dict) -> dict:
    import transformers
    from transformers import AutoProcessor, Blip2ForConditionalGeneration, Blip2Processor
    from transformers import PreTrainedTokenizerFast
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

    out_dir = os.path.join(FIXTURES, name)
    model_dir = os.path.join(out_dir, "model")
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(model_dir)

    # ---- tokenizer + processor, saved as transformers saves them
    tok_vocab, model_vocab = v["vocab"]
    tok = build_tokenizer(tok_vocab, v["add_bos"])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOT, eos_token=EOT, pad_token=EOT, unk_token=EOT
    )
    size = v["vision"]["image_size"]
    image_processor = BlipImageProcessorPil(size={"height": size, "width": size})
    Blip2Processor(image_processor, fast, num_query_tokens=v["num_query_tokens"]).save_pretrained(model_dir)

    # ---- random model
    cfg = build_config(v, tok_vocab, model_vocab)
    torch.manual_seed(v["seed"])
    model = Blip2ForConditionalGeneration(cfg).eval()
    randomize(model, v["seed"])
    model.generation_config.eos_token_id = 0
    model.generation_config.bos_token_id = 0
    model.generation_config.pad_token_id = 0
    model.save_pretrained(model_dir)
    reference_state = {k: t.float().clone() for k, t in model.state_dict().items()}
    del model

    # ---- reload like a user, in float32
    processor = AutoProcessor.from_pretrained(model_dir)
    model, info = Blip2ForConditionalGeneration.from_pretrained(
        model_dir, dtype=torch.float32, output_loading_info=True
    )
    model.eval()
    bad = {k: val for k, val in info.items() if val}
    assert not bad, f"loading problems: {bad}"
    for k, t in model.state_dict().items():
        torch.testing.assert_close(t, reference_state[k], rtol=0, atol=0, msg=lambda m: f"{k}: {m}")
    assert model.config.text_config.qk_layernorm == v["text"]["qk_layernorm"]

    image = Image.open(os.path.join(IMAGES, v["image"])).convert("RGB")
    prompt = v["prompt"]
    inputs = processor(images=image, text=prompt, return_tensors="pt")
    input_ids = inputs["input_ids"]
    pixel_values = inputs["pixel_values"]
    assert pixel_values.dtype == torch.float32
    S = input_ids.shape[1]
    assert int((input_ids == 1).sum()) == v["num_query_tokens"], "image tokens"

    # ---- intermediates, through the public modules
    vision_out = model.vision_model(pixel_values=pixel_values).last_hidden_state  # after post_layernorm
    qformer_out = model.qformer(
        query_embeds=model.query_tokens,
        encoder_hidden_states=vision_out,
        encoder_attention_mask=torch.ones(vision_out.shape[:-1], dtype=torch.long),
    ).last_hidden_state
    projector_out = model.language_projection(qformer_out)
    feats = model.get_image_features(pixel_values).pooler_output
    torch.testing.assert_close(feats, projector_out, rtol=0, atol=0)

    prefill_logits = model(**inputs, use_cache=False).logits[0].float()
    gen = model.generate(
        **inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, output_logits=True, return_dict_in_generate=True
    )
    seq = gen.sequences[0]
    generated = seq[S:] if seq.shape[0] > MAX_NEW_TOKENS else seq  # decoder-only: prompt + new
    gen_logits = torch.stack([l[0] for l in gen.logits]).float()
    assert generated.shape[0] == gen_logits.shape[0], (generated.shape, gen_logits.shape)
    assert torch.equal(gen_logits.argmax(-1), generated), "greedy argmax mismatch"
    torch.testing.assert_close(gen_logits[0], prefill_logits[-1], rtol=1e-5, atol=1e-5)
    assert len(generated) >= 12, f"stopped after {len(generated)} tokens"

    # cross-check: one forward over prompt + generated tokens agrees with the cached steps
    full = model(input_ids=torch.cat([input_ids, generated[None, :-1]], 1), pixel_values=pixel_values,
                 use_cache=False).logits[0, S - 1:]
    max_full_diff = float((full - gen_logits).abs().max())
    assert torch.equal(full.argmax(-1), generated)

    top2 = gen_logits.topk(2, dim=-1).values
    margins = (top2[:, 0] - top2[:, 1]).tolist()
    eos_ids = [0]
    tensors = {
        "pixel_values": pixel_values[0].contiguous(),
        "input_ids": input_ids[0].to(torch.int64).contiguous(),
        "vision_out": vision_out[0].float().contiguous(),
        "qformer_out": qformer_out[0].float().contiguous(),
        "projector_out": projector_out[0].float().contiguous(),
        "prefill_logits": prefill_logits.contiguous(),
        "generated_ids": generated.to(torch.int64).contiguous(),
        "generated_logits": gen_logits.contiguous(),
    }
    save_file(tensors, os.path.join(out_dir, "expected.safetensors"), metadata={"variant": name})
    expected = {
        "variant": name,
        "description": v["doc"],
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "model_dir": "model",
        "checkpoint_dtype": "float32",
        "compute_dtype": "float32",
        "attn_implementation": model.config._attn_implementation,
        "image_processor_class": type(processor.image_processor).__name__,
        "tokenizer_class": type(processor.tokenizer).__name__,
        "image": v["image"],
        "image_size_wh": list(image.size),
        "prompt": prompt,
        "num_query_tokens": v["num_query_tokens"],
        "input_ids": input_ids[0].tolist(),
        "input_tokens": processor.tokenizer.convert_ids_to_tokens(input_ids[0].tolist()),
        "max_new_tokens": MAX_NEW_TOKENS,
        "eos_token_ids": eos_ids,
        "stopped_on_eos": int(generated[-1]) in eos_ids,
        "generated_ids": generated.tolist(),
        "generated_tokens": processor.tokenizer.convert_ids_to_tokens(generated.tolist()),
        "generated_text": processor.tokenizer.decode(generated, skip_special_tokens=True),
        "min_greedy_margin": min(margins),
        "greedy_margins": margins,
        "checks": {"max_abs_diff_nocache_full_forward_vs_generate_logits": max_full_diff},
        "shapes": {k: list(t.shape) for k, t in tensors.items()},
        "checkpoint_tensor_names": sorted(saved_tensor_names(model_dir)),
    }
    write_json(os.path.join(out_dir, "expected.json"), expected)
    size_b = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(out_dir) for f in fs)
    print(
        f"{name}: S={S} generated={generated.tolist()} text={expected['generated_text']!r} "
        f"min_margin={min(margins):.4f} full_diff={max_full_diff:.2e} size={size_b / 1e6:.2f}MB"
    )
    assert size_b < 1_000_000, f"{name} is {size_b} bytes; keep fixtures under 1 MB"
    return expected


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="*", help=f"subset of {list(VARIANTS)}")
    args = ap.parse_args()
    for n in args.variants or list(VARIANTS):
        make_variant(n, VARIANTS[n])


if __name__ == "__main__":
    main()
