#!/usr/bin/env python3
"""Create tiny random SmolVLM / Idefics3 checkpoints + what transformers makes of them.

Everything is generated from scratch with fixed seeds (no model hub access):

    /work/venv/bin/python tools/make_smolvlm_fixtures.py                 # all variants
    /work/venv/bin/python tools/make_smolvlm_fixtures.py smolvlm         # one variant
    /work/venv/bin/python tools/make_smolvlm_fixtures.py --seed 99 --out /tmp/unseen smolvlm
                                                                         # a checkpoint the tests never saw

Output (see tools/README.md):

    tests/fixtures/<variant>/model/                  save_pretrained() output (model + processor)
    tests/fixtures/<variant>/<case>.safetensors      per case: pixel values per tile, input ids,
                                                     vision / connector outputs, logits, greedy ids
    tests/fixtures/<variant>/expected.json           per case: prompt text, ids, tiles, tokens, text

The models are `SmolVLMForConditionalGeneration` / `Idefics3ForConditionalGeneration` (SigLIP-style
vision tower, pixel-shuffle connector, Llama decoder) run in float32 with transformers' own code;
the processors are the PIL-backend ones transformers 5 picks without torchvision
(`SmolVLMImageProcessorPil`, Lanczos resampling). SmolVLMProcessor needs `num2words`.
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

MAX_NEW_TOKENS = 14

CORPUS = [
    "User: Describe this image. Assistant: A red circle on a white background.",
    "The image shows a blue square next to a green triangle.",
    "There is a small yellow star in the top left corner of the picture.",
    "Two circles and one square are drawn on a gray background.",
    "What is in the picture? How many shapes are there? Three.",
    "Describe the image in detail, please.",
    "a photo of a cat sitting on a table next to a cup of tea",
    "Où est le cercle ? Il est à gauche.",
] * 4

# SmolLM2's special tokens, then the image tokens of the SmolVLM / Idefics3 processors.
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
IMAGE_SPECIAL = ["<fake_token_around_image>", "<image>", "<end_of_utterance>"]
IMAGE_ADDED = ["<global-img>"] + [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]

# SmolVLM-256M-Instruct's chat template (chat_template.json of the Hub repository).
SMOLVLM_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n"
    "{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
# Idefics3-8B-Llama3's: the same with the Llama 3 BOS in front.
IDEFICS3_TEMPLATE = SMOLVLM_TEMPLATE.replace("<|im_start|>", "<|begin_of_text|>", 1)

CASES = {
    # name: image, messages (the image goes where {"type": "image"} is)
    "describe": dict(
        image="shapes_50x37.png",
        messages=[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe this image."}]}],
    ),
    "tall": dict(
        image="tall_20x60.png",
        messages=[{"role": "user", "content": [{"type": "text", "text": "What is in the picture?"}, {"type": "image"}]}],
    ),
    "multiturn": dict(
        image="shapes_64.png",
        messages=[
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many shapes are there?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "Three."}]},
            {"role": "user", "content": [{"type": "text", "text": "Où est le cercle ?"}]},
        ],
    ),
    "jpeg": dict(
        image="gradient_40x56.jpg",
        messages=[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the image in detail, please."}]}],
    ),
}

VARIANTS = {
    "smolvlm": dict(
        doc="SmolVLM: splitting with longest_edge 3 tiles (up to 3x3 + global), scale_factor 4, "
            "GQA, untied LM head, rope_theta 100000",
        model_type="smolvlm",
        seed=21,
        vision=dict(hidden_size=24, intermediate_size=40, num_hidden_layers=2, num_attention_heads=2,
                    image_size=32, patch_size=4),
        scale_factor=4,
        text=dict(hidden_size=48, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=512, rope_theta=100000.0),
        tie=False,
        processor=dict(size={"longest_edge": 96}, max_image_size={"longest_edge": 32}, do_image_splitting=True),
        vocab=(420, 431),
        template=SMOLVLM_TEMPLATE,
        template_file="jinja",
        cases=["describe", "tall", "multiturn"],
    ),
    "smolvlm-nosplit": dict(
        doc="SmolVLM with do_image_splitting false (one 32x32 image), tied embeddings, chat template "
            "in chat_template.json (the transformers 4 layout)",
        model_type="smolvlm",
        seed=12,
        vision=dict(hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=3,
                    image_size=32, patch_size=8),
        scale_factor=2,
        text=dict(hidden_size=48, intermediate_size=80, num_hidden_layers=3, num_attention_heads=3,
                  num_key_value_heads=1, max_position_embeddings=256, rope_theta=10000.0),
        tie=True,
        processor=dict(size={"longest_edge": 64}, max_image_size={"longest_edge": 32}, do_image_splitting=False),
        vocab=(400, 400),
        template=SMOLVLM_TEMPLATE,
        template_file="json",
        cases=["describe", "multiturn"],
    ),
    "idefics3": dict(
        doc="Idefics3: Llama-3 style BOS added by the tokenizer and the template, splitting up to "
            "4x4 + global, scale_factor 2, checkpoint without the `model.` prefix (base-model layout)",
        model_type="idefics3",
        seed=13,
        vision=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                    image_size=24, patch_size=6),
        scale_factor=2,
        text=dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=4, max_position_embeddings=1024, rope_theta=500000.0),
        tie=False,
        processor=dict(size={"longest_edge": 96}, max_image_size={"longest_edge": 24}, do_image_splitting=True),
        vocab=(420, 437),
        template=IDEFICS3_TEMPLATE,
        template_file="jinja",
        bos="<|begin_of_text|>",
        strip_model_prefix=True,
        cases=["describe", "multiturn"],
    ),
    "smolvlm-eos": dict(
        doc="SmolVLM whose LM head favours the stop tokens (eos_gain up): greedy decoding ends on "
            "<end_of_utterance> after 2-3 tokens, so the stop itself is compared (generation_config "
            "lists <|im_end|> and <end_of_utterance>, as the Hub's SmolVLM checkpoints do)",
        model_type="smolvlm",
        seed=48,
        vision=dict(hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=3,
                    image_size=32, patch_size=8),
        scale_factor=2,
        text=dict(hidden_size=48, intermediate_size=80, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=256, rope_theta=100000.0),
        tie=False,
        processor=dict(size={"longest_edge": 64}, max_image_size={"longest_edge": 32}, do_image_splitting=True),
        vocab=(400, 400),
        template=SMOLVLM_TEMPLATE,
        template_file="jinja",
        eos_gain=7.0,
        min_generated=2,
        cases=["describe", "multiturn"],
    ),
    "smolvlm-bf16": dict(
        doc="SmolVLM stored in bfloat16 (as the Hub's SmolVLM checkpoints are) and sharded "
            "(model.safetensors.index.json); widths that are multiples of 32 so most matrices "
            "quantize to 4 bits; splitting up to 2x2 + global; reference outputs computed in "
            "float32 from the bf16 weights",
        model_type="smolvlm",
        seed=31,
        vision=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                    image_size=32, patch_size=4),
        scale_factor=2,
        text=dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=512, rope_theta=100000.0),
        tie=False,
        processor=dict(size={"longest_edge": 64}, max_image_size={"longest_edge": 32}, do_image_splitting=True),
        vocab=(420, 431),
        template=SMOLVLM_TEMPLATE,
        template_file="jinja",
        save_dtype="bfloat16",
        max_shard_size="200KB",
        cases=["describe", "multiturn"],
    ),
}


def make_tall_image() -> None:
    """tall_20x60.png: a narrow vertical test image (splits into one column of tiles)."""
    path = os.path.join(IMAGES, "tall_20x60.png")
    if os.path.exists(path):
        return
    import numpy as np

    y, x = np.mgrid[0:60, 0:20]
    img = np.stack([(x * 12) % 256, (y * 4) % 256, ((x + y) * 7) % 256], -1).astype("uint8")
    img[20:30, 5:15] = [250, 30, 30]
    Image.fromarray(img, "RGB").save(path, optimize=False)


def build_tokenizer(vocab_size: int, bos: str | None):
    """A small GPT-2 style byte-level BPE (SmolLM2's kind) with SmolVLM's special tokens. With
    `bos`, a TemplateProcessing post-processor puts it in front of every text (Llama 3 style)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    specials = SPECIAL + ([bos] if bos else [])
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(IMAGE_SPECIAL) - len(IMAGE_ADDED),
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer)
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in IMAGE_SPECIAL])
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in IMAGE_ADDED])
    if bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", special_tokens=[(bos, tok.token_to_id(bos))]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    assert tok.get_vocab_size() <= vocab_size
    return tok


def build_config(v: dict, tok, model_vocab: int):
    from transformers import Idefics3Config, SmolVLMConfig

    text = dict(v["text"])
    theta = text.pop("rope_theta")
    eou = tok.token_to_id("<end_of_utterance>")
    text.update(
        model_type="llama",
        vocab_size=model_vocab,
        bos_token_id=tok.token_to_id(v.get("bos") or "<|im_start|>"),
        eos_token_id=eou,
        pad_token_id=tok.token_to_id("<|im_end|>"),
        hidden_act="silu",
        rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": theta},
        tie_word_embeddings=v["tie"],
    )
    cls = SmolVLMConfig if v["model_type"] == "smolvlm" else Idefics3Config
    cfg = cls(
        vision_config=dict(v["vision"]),
        text_config=text,
        scale_factor=v["scale_factor"],
        image_token_id=tok.token_to_id("<image>"),
        tie_word_embeddings=v["tie"],
    )
    return cfg


@torch.no_grad()
def randomize(model, seed: int, eos_ids: list[int], eos_gain: float = 0.1) -> None:
    """Deterministic random weights, larger than transformers' init so every piece matters:
    matrices N(0, 1/fan_in) (text q/k x3, o/down x4), embeddings N(0, 0.5), position
    embeddings N(0, 1), norm weights 1 + N(0, 0.2), biases N(0, 0.1). The EOS rows of the
    LM head are scaled by `eos_gain` (down, so greedy decoding runs long enough to compare many
    tokens; up, to make a checkpoint stop on <end_of_utterance>)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        if name.endswith("bias"):
            val = torch.randn(p.shape, generator=g) * 0.1
        elif p.ndim == 1:
            val = 1.0 + torch.randn(p.shape, generator=g) * 0.2
        elif "embed_tokens" in name:
            val = torch.randn(p.shape, generator=g) * 0.5
        elif "position_embedding" in name:
            val = torch.randn(p.shape, generator=g)
        else:
            std = 1.0 / math.sqrt(math.prod(p.shape[1:]))
            if "text_model" in name and ("q_proj" in name or "k_proj" in name):
                std *= 3.0
            if "text_model" in name and ("o_proj" in name or "down_proj" in name):
                std *= 4.0
            val = torch.randn(p.shape, generator=g) * std
        p.copy_(val.to(p.dtype))
    head = model.get_output_embeddings().weight
    for e in eos_ids:
        head[e] *= eos_gain


def write_json(path: str, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


# Patch-grid sides (1..=128) whose bucketized positions are NOT row-major 0..N²-1 in torch
# (float32 rounding of `arange(1/N, 1, 1/N)` against `i * (1/N)`). pinhole's
# `smolvlm::POSITION_BUCKET_EXCEPTIONS` holds the same list and refuses those sizes.
NON_IDENTITY_SIDES = [19, 25, 29, 31, 38, 40, 41, 43, 47, 49, 50, 54, 55, 58, 59, 61, 62, 67, 68, 71, 72, 73,
                      74, 76, 77, 80, 82, 83, 84, 86, 87, 93, 94, 97, 98, 99, 100, 101, 103, 107, 108, 109,
                      110, 111, 113, 115, 116, 118, 121, 122, 123, 124, 127]


def check_position_ids_identity() -> None:
    """SmolVLM's vision embeddings bucketize fractional patch coordinates; for a full patch mask
    (every tile the processor makes is a full square) the buckets are plain row-major positions
    except for the sides in NON_IDENTITY_SIDES (SmolVLM-256M: 32, Idefics3: 26, SmolVLM2: 27 are fine)."""
    bad = []
    for n in range(1, 129):
        boundaries = torch.arange(1 / n, 1.0, 1 / n)
        step = 1.0 / torch.tensor([n]).sum()
        coords = torch.clamp(torch.arange(n, dtype=torch.float32) * step, max=1.0 - 1e-6)
        b = torch.bucketize(coords, boundaries, right=True)
        if not torch.equal(b, torch.arange(n)):
            bad.append(n)
    assert bad == NON_IDENTITY_SIDES, bad


def to_legacy_template_json(model_dir: str) -> None:
    """Moves chat_template.jinja into chat_template.json ({"chat_template": ...}) as transformers 4 saved it."""
    p = os.path.join(model_dir, "chat_template.jinja")
    with open(p, encoding="utf-8") as f:
        t = f.read()
    os.remove(p)
    write_json(os.path.join(model_dir, "chat_template.json"), {"chat_template": t})


def strip_prefix(model_dir: str) -> None:
    """Rewrites model.safetensors without the `model.` prefix (what SmolVLMModel / Idefics3Model
    save; the ForConditionalGeneration class still loads it through base_model_prefix)."""
    from safetensors.torch import load_file

    p = os.path.join(model_dir, "model.safetensors")
    sd = load_file(p)
    out = {(k[len("model."):] if k.startswith("model.") else k): t for k, t in sd.items()}
    save_file(out, p, metadata={"format": "pt"})


def load_processor(model_dir: str, model_type: str):
    """The processor as a user gets it. `AutoProcessor.from_pretrained` cannot load SmolVLM's
    without torchvision (transformers 5.24 insists on the video processor, which needs it), so
    the parts are loaded with their Auto classes and put together as `from_pretrained` would."""
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    if model_type != "smolvlm":
        return AutoProcessor.from_pretrained(model_dir)
    from transformers.models.smolvlm.processing_smolvlm import SmolVLMProcessor
    from transformers.models.smolvlm.video_processing_smolvlm import SmolVLMVideoProcessor

    with open(os.path.join(model_dir, "processor_config.json"), encoding="utf-8") as f:
        image_seq_len = json.load(f)["image_seq_len"]
    if os.path.exists(os.path.join(model_dir, "chat_template.jinja")):
        with open(os.path.join(model_dir, "chat_template.jinja"), encoding="utf-8") as f:
            template = f.read()
    else:
        with open(os.path.join(model_dir, "chat_template.json"), encoding="utf-8") as f:
            template = json.load(f)["chat_template"]
    SmolVLMProcessor.check_argument_for_proper_class = lambda self, name, arg: None
    return SmolVLMProcessor(AutoImageProcessor.from_pretrained(model_dir), AutoTokenizer.from_pretrained(model_dir),
                            SmolVLMVideoProcessor(), image_seq_len=image_seq_len, chat_template=template)


@torch.no_grad()
def make_variant(name: str, v: dict, out_root: str, seed: int | None) -> dict:
    import transformers
    from transformers import AutoModelForImageTextToText, AutoProcessor, PreTrainedTokenizerFast
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil
    from transformers.models.idefics3.processing_idefics3 import Idefics3Processor
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil
    from transformers.models.smolvlm.processing_smolvlm import SmolVLMProcessor
    from transformers.models.smolvlm.video_processing_smolvlm import SmolVLMVideoProcessor

    seed = v["seed"] if seed is None else seed
    out_dir = os.path.join(out_root, name)
    model_dir = os.path.join(out_dir, "model")
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(model_dir)

    tok_vocab, model_vocab = v["vocab"]
    tok = build_tokenizer(tok_vocab, v.get("bos"))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=v.get("bos") or "<|im_start|>",
        eos_token="<end_of_utterance>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        additional_special_tokens=IMAGE_SPECIAL,
    )
    vis = v["vision"]
    image_seq_len = (vis["image_size"] // vis["patch_size"]) ** 2 // v["scale_factor"] ** 2
    pk = dict(v["processor"], resample=Image.Resampling.LANCZOS, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    if v["model_type"] == "smolvlm":
        # Without torchvision the video-processor mapping is a placeholder and the class check
        # fails; the video processor is not used for images.
        SmolVLMProcessor.check_argument_for_proper_class = lambda self, name, arg: None
        proc = SmolVLMProcessor(SmolVLMImageProcessorPil(**pk), fast, SmolVLMVideoProcessor(),
                                image_seq_len=image_seq_len, chat_template=v["template"])
    else:
        proc = Idefics3Processor(Idefics3ImageProcessorPil(**pk), fast, image_seq_len=image_seq_len,
                                 chat_template=v["template"])
    proc.save_pretrained(model_dir)
    if v["template_file"] == "json":
        to_legacy_template_json(model_dir)

    eos_ids = [tok.token_to_id("<|im_end|>"), tok.token_to_id("<end_of_utterance>")]
    cfg = build_config(v, tok, model_vocab)
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(cfg).eval()
    randomize(model, seed, eos_ids, v.get("eos_gain", 0.1))
    model.generation_config.eos_token_id = eos_ids
    model.generation_config.bos_token_id = cfg.text_config.bos_token_id
    model.generation_config.pad_token_id = tok.token_to_id("<|im_end|>")
    save_dtype = getattr(torch, v.get("save_dtype", "float32"))
    # A bf16/f16 checkpoint: the weights are rounded once here; the reference below runs in
    # float32 on the rounded weights (what pinhole computes with them).
    model.to(save_dtype)
    model.save_pretrained(model_dir, **({"max_shard_size": v["max_shard_size"]} if "max_shard_size" in v else {}))
    reference_state = {k: t.float().clone() for k, t in model.state_dict().items()}
    del model
    if v.get("strip_model_prefix"):
        strip_prefix(model_dir)

    # ---- reload like a user, in float32
    processor = load_processor(model_dir, v["model_type"])
    model, info = AutoModelForImageTextToText.from_pretrained(model_dir, dtype=torch.float32, output_loading_info=True)
    model.eval()
    bad = {k: val for k, val in info.items() if val}
    assert not bad, f"loading problems: {bad}"
    for k, t in model.state_dict().items():
        torch.testing.assert_close(t, reference_state[k], rtol=0, atol=0, msg=lambda m: f"{k}: {m}")
    assert type(processor.image_processor).__name__.endswith("ImageProcessorPil"), type(processor.image_processor)

    cases = {}
    for cname in v["cases"]:
        c = CASES[cname]
        image = Image.open(os.path.join(IMAGES, c["image"]))
        text = processor.apply_chat_template(c["messages"], add_generation_prompt=True)
        inputs = processor(text=text, images=[image], return_tensors="pt")
        input_ids = inputs["input_ids"]
        pixel_values = inputs["pixel_values"]  # [1, tiles, 3, H, W]
        S = input_ids.shape[1]
        rc = processor.image_processor(images=[image], return_row_col_info=True)
        rows, cols = int(rc["rows"][0][0]), int(rc["cols"][0][0])
        tiles = pixel_values.shape[1]
        assert tiles == (rows * cols + 1 if rows else 1), (tiles, rows, cols)
        assert bool(inputs["pixel_attention_mask"].all()), "pinhole expects unpadded tiles"

        vision_out = model.model.vision_model(pixel_values=pixel_values[0]).last_hidden_state
        connector_out = model.model.connector(vision_out)
        feats = model.get_image_features(pixel_values, inputs["pixel_attention_mask"]).pooler_output[0]
        torch.testing.assert_close(feats, connector_out.reshape(-1, connector_out.shape[-1]), rtol=0, atol=0)

        prefill_logits = model(**inputs, use_cache=False).logits[0].float()
        gen = model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, output_logits=True,
                             return_dict_in_generate=True)
        generated = gen.sequences[0][S:]
        gen_logits = torch.stack([l[0] for l in gen.logits]).float()
        assert torch.equal(gen_logits.argmax(-1), generated), "greedy argmax mismatch"
        torch.testing.assert_close(gen_logits[0], prefill_logits[-1], rtol=1e-5, atol=1e-5)
        # Fixtures compare many tokens; unseen checkpoints (tools/check_smolvlm_unseen.py) may stop
        # early on <end_of_utterance>, which is then part of what is compared.
        assert len(generated) >= v.get("min_generated", 12), f"{name}/{cname} stopped after {len(generated)} tokens"
        top2 = gen_logits.topk(2, dim=-1).values
        margins = (top2[:, 0] - top2[:, 1]).tolist()

        tensors = {
            "pixel_values": pixel_values[0].contiguous(),
            "input_ids": input_ids[0].to(torch.int64).contiguous(),
            "vision_out": vision_out.float().contiguous(),
            "connector_out": connector_out.reshape(-1, connector_out.shape[-1]).float().contiguous(),
            # the last 2 prompt rows (the fixtures stay small; the step logits follow)
            "prefill_logits": prefill_logits[-2:].contiguous(),
            "generated_ids": generated.to(torch.int64).contiguous(),
            "generated_logits": gen_logits.contiguous(),
        }
        save_file(tensors, os.path.join(out_dir, f"{cname}.safetensors"), metadata={"variant": name, "case": cname})
        cases[cname] = {
            "image": c["image"],
            "image_size_wh": list(image.size),
            "messages": c["messages"],
            "prompt_text": text,
            "rows": rows,
            "cols": cols,
            "tiles": tiles,
            "tile_size_hw": list(pixel_values.shape[-2:]),
            "input_ids": input_ids[0].tolist(),
            "eos_token_ids": eos_ids,
            "max_new_tokens": MAX_NEW_TOKENS,
            "stopped_on_eos": int(generated[-1]) in eos_ids,
            "generated_ids": generated.tolist(),
            "generated_text": processor.tokenizer.decode(generated, skip_special_tokens=True),
            "min_greedy_margin": min(margins),
        }
        print(f"{name}/{cname}: tiles={tiles} ({rows}x{cols}) S={S} generated={generated.tolist()} "
              f"min_margin={min(margins):.4f}")

    expected = {
        "variant": name,
        "description": v["doc"],
        "seed": seed,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
        "model_type": v["model_type"],
        "checkpoint_dtype": v.get("save_dtype", "float32"),
        "compute_dtype": "float32",
        "image_seq_len": image_seq_len,
        "image_processor_class": type(processor.image_processor).__name__,
        "cases": cases,
    }
    write_json(os.path.join(out_dir, "expected.json"), expected)
    size_b = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(out_dir) for f in fs)
    print(f"{name}: {size_b / 1e3:.0f} kB")
    assert out_root != FIXTURES or size_b < 1_100_000, f"{name} is {size_b} bytes; keep fixtures small"
    return expected


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("variants", nargs="*", help=f"subset of {list(VARIANTS)}")
    ap.add_argument("--seed", type=int, help="weight seed (default: the variant's); for unseen checkpoints")
    ap.add_argument("--out", default=FIXTURES, help="output folder (default tests/fixtures)")
    args = ap.parse_args()
    check_position_ids_identity()
    make_tall_image()
    for n in args.variants or list(VARIANTS):
        make_variant(n, VARIANTS[n], args.out, args.seed)


if __name__ == "__main__":
    main()
