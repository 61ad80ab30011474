#!/usr/bin/env python3
"""Build a small Gemma/PaliGemma-style tokenizer from scratch (no model hub).

The result mimics the structure of Gemma's ``tokenizer.json``:

* model: BPE with ``byte_fallback=True`` (``<0x00>``..``<0xFF>`` are ordinary vocab
  entries), ``fuse_unk=True``, ``unk_token="<unk>"``, no dropout, no
  continuing-subword prefix / end-of-word suffix;
* normalizer: ``Replace(" " -> "▁")`` (U+2581) and nothing else (Gemma does NOT prepend
  a dummy "▁" to the first word);
* pre_tokenizer: none;
* decoder: ``Sequence[Replace("▁" -> " "), ByteFallback, Fuse]``;
* post_processor: TemplateProcessing ``<bos> $A`` (as in Gemma). The PaliGemma processor
  disables it and writes ``<bos>`` into the prompt text itself.

Vocabulary layout (ids):

====================  =====================================================
0                     ``<pad>``   (special)
1                     ``<eos>``   (special)
2                     ``<bos>``   (special)
3                     ``<unk>``   (special)
4                     ``<image>`` (special)
5 .. 1028             ``<loc0000>`` .. ``<loc1023>`` (added, not special)
1029 .. 1156          ``<seg000>`` .. ``<seg127>`` (added, not special)
1157 .. 1412          ``<0x00>`` .. ``<0xFF>`` byte-fallback tokens
1413 ..               learned BPE alphabet (incl. "\\n" and "▁") then merges
.. vocab_size-1       ``<unusedN>`` filler if the corpus cannot fill the request
====================  =====================================================

Usage as a library::

    from gemma_tokenizer import build_tokenizer, save_tokenizer_files
    tok = build_tokenizer(vocab_size=1600)          # tokenizers.Tokenizer
    save_tokenizer_files(tok, "out_dir", image_seq_length=16, image_size=32)

CLI::

    python tools/gemma_tokenizer.py OUT_DIR [--vocab-size N] [--image-size 32 --image-seq-length 16]
"""

from __future__ import annotations

import argparse
import json
import os

from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

PAD, EOS, BOS, UNK, IMAGE = "<pad>", "<eos>", "<bos>", "<unk>", "<image>"
SPECIAL_TOKENS = [PAD, EOS, BOS, UNK, IMAGE]
LOC_TOKENS = [f"<loc{i:04d}>" for i in range(1024)]
SEG_TOKENS = [f"<seg{i:03d}>" for i in range(128)]
BYTE_TOKENS = [f"<0x{i:02X}>" for i in range(256)]
RESERVED = SPECIAL_TOKENS + LOC_TOKENS + SEG_TOKENS + BYTE_TOKENS
NUM_RESERVED = len(RESERVED)  # 1413

DEFAULT_VOCAB_SIZE = 1600

# A small built-in English corpus: captions of coloured shapes plus general text.
# Only ASCII (plus newline) is used so that any non-ASCII character goes through
# byte fallback.
_CAPTION_WORDS = {
    "colours": ["red", "green", "blue", "yellow", "orange", "purple", "black", "white", "gray", "pink", "brown"],
    "shapes": ["circle", "square", "triangle", "rectangle", "star", "line", "dot", "ring", "box", "shape"],
    "places": ["left", "right", "top", "bottom", "center", "middle", "corner", "edge", "background"],
    "sizes": ["small", "large", "big", "tiny", "little", "wide", "tall", "thin"],
}

_GENERAL_TEXT = """\
A picture of a red circle on a white background.
The image shows a blue square next to a green triangle.
There is a small yellow star in the top left corner.
Two circles and one square are drawn on a gray background.
What is this? This is a picture of some simple shapes.
answer en what is this?
caption en
detect circle
describe the image in detail
How many shapes are there in the picture? There are three shapes.
The large orange rectangle is at the bottom of the image.
A purple ring is in the middle, and a black line goes from left to right.
The quick brown fox jumps over the lazy dog.
She sells sea shells by the sea shore.
It was a bright cold day in April, and the clocks were striking thirteen.
In the beginning there was nothing but a blank page and a pencil.
We went to the park and saw a dog playing with a ball.
The weather today is sunny with a few clouds in the sky.
Please answer the question with a short sentence.
This model can read text, look at images and write captions.
The cat is sitting on the table next to a cup of coffee.
A man is riding a bicycle down the street near the river.
There are 3 apples, 12 oranges and 7 bananas on the plate.
The train leaves at 10 and arrives at 4 in the afternoon.
Numbers: 0 1 2 3 4 5 6 7 8 9 10 11 12 20 42 100 256 1024.
Is there a circle in the image? Yes, there is one red circle.
Is there a dog in the image? No, there is no dog.
Where is the triangle? The triangle is on the right side.
What color is the square? The square is blue.
segment the star
detect square ; triangle
answer en where is the circle?
answer en how many shapes?
caption en a simple scene with colored shapes
Hello, world! How are you today? I am fine, thank you.
The house has a red door, two windows and a small garden.
Children were playing in the snow while their parents watched.
He opened the box and found an old map inside.
The little boat sailed across the lake under the moon.
Good morning. Good night. See you later.
(This sentence has parentheses, commas, and a colon: see?)
"Quoted text" and 'single quotes' - plus a dash.
"""


def default_corpus() -> list[str]:
    """Deterministic list of training lines (contains "\\n" characters)."""
    lines = [line + "\n" for line in _GENERAL_TEXT.splitlines()]
    cw = _CAPTION_WORDS
    for i, colour in enumerate(cw["colours"]):
        for j, shape in enumerate(cw["shapes"]):
            place = cw["places"][(i + j) % len(cw["places"])]
            size = cw["sizes"][(i * 3 + j) % len(cw["sizes"])]
            lines.append(f"a {size} {colour} {shape} in the {place}\n")
            if (i + j) % 3 == 0:
                lines.append(f"The {shape} is {colour}. It is {size} and near the {place}.\n")
    # paragraphs with blank lines so "\n\n" also appears
    lines.append("First paragraph.\n\nSecond paragraph.\n")
    return lines


def _train_bpe(num_learned: int, corpus: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Train a BPE on `corpus`, returning (ordered learned vocab, merges)."""
    trainer_tok = Tokenizer(models.BPE())
    trainer_tok.normalizer = normalizers.Replace(" ", "\u2581")
    # For training only: keep merges inside words ("▁word") and keep "\n" isolated.
    trainer_tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split("\n", behavior="isolated"),
            pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="never", split=True),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=num_learned,
        min_frequency=2,
        show_progress=False,
        special_tokens=[],
        initial_alphabet=["\n", "\u2581"],
        max_token_length=12,
    )
    trainer_tok.train_from_iterator(corpus, trainer=trainer)
    data = json.loads(trainer_tok.to_str())
    vocab = sorted(data["model"]["vocab"].items(), key=lambda kv: kv[1])
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in data["model"]["merges"]]
    return [t for t, _ in vocab], merges


def build_tokenizer(vocab_size: int = DEFAULT_VOCAB_SIZE, corpus: list[str] | None = None) -> Tokenizer:
    """Return a Gemma-style `tokenizers.Tokenizer` with exactly `vocab_size` entries."""
    if vocab_size < NUM_RESERVED + 64:
        raise ValueError(f"vocab_size must be >= {NUM_RESERVED + 64}")
    corpus = default_corpus() if corpus is None else corpus
    learned, merges = _train_bpe(vocab_size - NUM_RESERVED, corpus)
    if any(t in RESERVED for t in learned):
        raise RuntimeError("learned token collides with a reserved token")
    tokens = RESERVED + learned
    n_unused = vocab_size - len(tokens)
    tokens += [f"<unused{i}>" for i in range(n_unused)]
    assert len(tokens) == vocab_size and len(set(tokens)) == vocab_size
    vocab = {t: i for i, t in enumerate(tokens)}

    tok = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=merges,
            unk_token=UNK,
            fuse_unk=True,
            byte_fallback=True,
            dropout=None,
        )
    )
    tok.normalizer = normalizers.Replace(" ", "\u2581")
    tok.pre_tokenizer = None
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    # Like Gemma's tokenizer.json: encode(add_special_tokens=True) prepends <bos>.
    # (transformers 5 takes add_bos behaviour from this post-processor; the
    # PaliGemma processor turns it off and writes "<bos>" into the text itself.)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS}:0 $A:0", pair=f"{BOS}:0 $A:0 {BOS}:1 $B:1", special_tokens=[(BOS, 2)]
    )
    # Added tokens are matched before normalisation, atomically.
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SPECIAL_TOKENS])
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in LOC_TOKENS + SEG_TOKENS])
    for t in RESERVED[: NUM_RESERVED - 256]:
        assert tok.token_to_id(t) == vocab[t]
    return tok


def _added_tokens_decoder(tok: Tokenizer) -> dict:
    out = {}
    for idx, at in sorted(tok.get_added_tokens_decoder().items()):
        out[str(idx)] = {
            "content": at.content,
            "lstrip": at.lstrip,
            "normalized": at.normalized,
            "rstrip": at.rstrip,
            "single_word": at.single_word,
            "special": at.special,
        }
    return out


def save_tokenizer_files(
    tok: Tokenizer,
    out_dir: str,
    image_seq_length: int | None = None,
    image_size: int | None = None,
) -> None:
    """Write tokenizer.json, tokenizer_config.json, special_tokens_map.json and,
    when `image_size`/`image_seq_length` are given, preprocessor_config.json and
    processor_config.json so that `AutoProcessor.from_pretrained(out_dir)` gives a
    PaliGemmaProcessor (GemmaTokenizer + SiglipImageProcessor)."""
    os.makedirs(out_dir, exist_ok=True)
    tok.save(os.path.join(out_dir, "tokenizer.json"), pretty=False)
    tokenizer_config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": _added_tokens_decoder(tok),
        "bos_token": BOS,
        "clean_up_tokenization_spaces": False,
        "eos_token": EOS,
        "mask_token": None,
        "model_max_length": 1000000000000000019884624838656,
        "pad_token": PAD,
        "padding_side": "left",
        "processor_class": "PaliGemmaProcessor",
        "sp_model_kwargs": {},
        "spaces_between_special_tokens": False,
        "tokenizer_class": "GemmaTokenizer",
        "unk_token": UNK,
        "use_default_system_prompt": False,
    }
    special_tokens_map = {
        "additional_special_tokens": [
            {"content": IMAGE, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
        ],
        "bos_token": {"content": BOS, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False},
        "eos_token": {"content": EOS, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False},
        "pad_token": {"content": PAD, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False},
        "unk_token": {"content": UNK, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False},
    }
    _write_json(os.path.join(out_dir, "tokenizer_config.json"), tokenizer_config, compact=True)
    _write_json(os.path.join(out_dir, "special_tokens_map.json"), special_tokens_map)
    if image_size is not None:
        if image_seq_length is None:
            raise ValueError("image_seq_length is required with image_size")
        preprocessor_config = {
            "do_convert_rgb": None,
            "do_normalize": True,
            "do_rescale": True,
            "do_resize": True,
            "image_mean": [0.5, 0.5, 0.5],
            "image_processor_type": "SiglipImageProcessor",
            "image_seq_length": image_seq_length,
            "image_std": [0.5, 0.5, 0.5],
            "processor_class": "PaliGemmaProcessor",
            "resample": 3,
            "rescale_factor": 0.00392156862745098,
            "size": {"height": image_size, "width": image_size},
        }
        _write_json(os.path.join(out_dir, "preprocessor_config.json"), preprocessor_config)
        _write_json(os.path.join(out_dir, "processor_config.json"), {"processor_class": "PaliGemmaProcessor"})


def _write_json(path: str, obj, compact: bool = False) -> None:
    with open(path, "w", encoding="utf-8") as f:
        if compact:  # one top-level key per line, nested values on one line
            items = [f"  {json.dumps(k)}: {json.dumps(obj[k], ensure_ascii=False)}" for k in sorted(obj)]
            f.write("{\n" + ",\n".join(items) + "\n}")
        else:
            json.dump(obj, f, indent=2, ensure_ascii=False, sort_keys=True)
        f.write("\n")


SELF_TEST_STRINGS = [
    "caption en\n",
    "answer en what is this?\n",
    "detect circle\n",
    "\n",
    "\n\n",
    "  two  spaces ",
    "caf\u00e9 na\u00efve \u2603 \U0001F600 \u4e2d\u6587",
    "<image><image><bos>caption en\n",
    "<loc0000><loc1023><seg127> circle",
    "Hello, World! 12345 xyzzy QWERTY",
    "tabs\tand\rcarriage",
]


def self_test(tok: Tokenizer) -> None:
    """Sanity checks: single "\\n" token, byte fallback, round trips."""
    nl = tok.encode("\n", add_special_tokens=False)
    assert len(nl.ids) == 1 and nl.tokens == ["\n"], nl.tokens
    enc = tok.encode("\u00e9", add_special_tokens=False)
    assert enc.tokens == ["<0xC3>", "<0xA9>"], enc.tokens
    for s in SELF_TEST_STRINGS:
        ids = tok.encode(s, add_special_tokens=False).ids
        assert UNK not in tok.encode(s, add_special_tokens=False).tokens, s
        dec = tok.decode(ids, skip_special_tokens=False)
        assert dec == s, (s, dec)


def check_with_transformers(out_dir: str, tok: Tokenizer) -> None:
    """Load `out_dir` with transformers and check it encodes/decodes exactly like `tok`."""
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(out_dir)
    assert len(hf) == tok.get_vocab_size(), (len(hf), tok.get_vocab_size())
    for s in SELF_TEST_STRINGS:
        a = tok.encode(s, add_special_tokens=False).ids
        b = hf(s, add_special_tokens=False)["input_ids"]
        assert a == b, (s, a, b)
        assert hf.decode(b) == tok.decode(a, skip_special_tokens=False), s
    assert hf("hi")["input_ids"][0] == tok.token_to_id(BOS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out_dir")
    ap.add_argument("--vocab-size", type=int, default=DEFAULT_VOCAB_SIZE)
    ap.add_argument("--image-size", type=int, default=None, help="also write preprocessor_config.json")
    ap.add_argument("--image-seq-length", type=int, default=None)
    ap.add_argument("--no-hf-check", action="store_true", help="skip the transformers round-trip check")
    args = ap.parse_args()
    tok = build_tokenizer(args.vocab_size)
    self_test(tok)
    save_tokenizer_files(tok, args.out_dir, args.image_seq_length, args.image_size)
    if not args.no_hf_check:
        check_with_transformers(args.out_dir, tok)
    n_unused = sum(1 for t in tok.get_vocab() if t.startswith("<unused"))
    print(f"wrote {args.out_dir}: vocab_size={tok.get_vocab_size()} (unused filler: {n_unused})")


if __name__ == "__main__":
    main()
