#!/usr/bin/env python3
"""Train `pinhole-shapes`, the bundled default model, from scratch on synthetic shape scenes.

The model is an ordinary PaliGemma (SigLIP vision tower + linear projector + Gemma decoder)
built with transformers' `PaliGemmaForConditionalGeneration`, so the saved folder loads
unchanged in transformers and in pinhole. It learns three PaliGemma-style tasks on the
scenes of `tools/shapes.py`: `caption en`, `answer en how many <shape>s?` and
`detect <shape>` (with `<locYYYY>` boxes).

    python tools/train_shapes.py --out models/pinhole-shapes [--steps 8000] [--batch 512]

Runs on CUDA when available (a few minutes on one datacenter GPU), else on the CPU (hours).
Deterministic for a given seed and device. Writes the model folder and `training_log.json`
(loss curve and held-out exact-match per task).

Exact match is measured teacher-forced: every answer token and the final <eos> must be the
argmax given the correct previous tokens, which is exactly "greedy decoding reproduces the
answer and stops".
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import random
import sys
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shapes  # noqa: E402
from gemma_tokenizer import build_tokenizer, default_corpus, save_tokenizer_files  # noqa: E402

IMAGE_SIZE = 64
PATCH = 16  # 4x4 = 16 image tokens: small enough to train on a CPU; the linear patch
# embedding still sees every pixel, so boxes are located to well under a patch
NUM_IMAGE_TOKENS = (IMAGE_SIZE // PATCH) ** 2
VOCAB = 1664
LOC0 = 5  # id of <loc0000> in the Gemma-style tokenizer (tools/gemma_tokenizer.py)
LOC_SIGMA = 6.0  # bins (of 1024) of the soft location targets; one 64-px pixel is 16 bins
PAD, EOS, BOS, IMAGE_ID = 0, 1, 2, 4
TASK_WEIGHTS = {"caption": 0.4, "count": 0.3, "detect": 0.3}

_TOK = None


def config():
    from transformers import PaliGemmaConfig

    text = dict(
        model_type="gemma",
        vocab_size=VOCAB,
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=256,
        hidden_activation="gelu_pytorch_tanh",
        rms_norm_eps=1e-6,
        pad_token_id=PAD,
        eos_token_id=EOS,
        bos_token_id=BOS,
    )
    vision = dict(
        model_type="siglip_vision_model",
        hidden_size=128,
        intermediate_size=384,
        num_hidden_layers=3,
        num_attention_heads=4,
        image_size=IMAGE_SIZE,
        patch_size=PATCH,
        vision_use_head=False,
    )
    cfg = PaliGemmaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=IMAGE_ID,
        vocab_size=VOCAB,
        projection_dim=128,
        hidden_size=128,
        bos_token_id=BOS,
        eos_token_id=EOS,
        pad_token_id=PAD,
    )
    return cfg


def _init_worker(tok_path: str) -> None:
    global _TOK
    from tokenizers import Tokenizer

    _TOK = Tokenizer.from_file(tok_path)


def _enc(text: str) -> list[int]:
    return _TOK.encode(text, add_special_tokens=False).ids if text else []


def _make_chunk(args):
    """Render `n` scenes from `seed`: pixels exactly as the processor sees them (PIL bicubic to
    64x64, uint8) and the token ids of every task."""
    seed, n = args
    rng = random.Random(seed)
    pix = np.empty((n, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    seqs = []
    for i in range(n):
        sc = shapes.random_scene(rng)
        img = shapes.render(sc).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BICUBIC)
        pix[i] = np.asarray(img)
        per = []
        for prompt, answer in shapes.tasks(sc):
            per.append((_enc(prompt + "\n"), _enc(answer) + [EOS]))
        seqs.append(per)
    return pix, seqs


def make_data(tok_path: str, n: int, seed: int, workers: int):
    chunk = 2000
    jobs = [(seed * 1_000_003 + i, min(chunk, n - i * chunk)) for i in range((n + chunk - 1) // chunk)]
    with mp.get_context("fork").Pool(workers, initializer=_init_worker, initargs=(tok_path,)) as pool:
        parts = pool.map(_make_chunk, jobs)
    pix = np.concatenate([p for p, _ in parts])
    seqs = [s for _, ss in parts for s in ss]
    return pix, seqs


# tasks() order: caption, then (count, detect) per shape
def pick_task(rng: random.Random) -> int:
    r = rng.random()
    if r < TASK_WEIGHTS["caption"]:
        return 0
    shape = rng.randrange(3)
    return 1 + 2 * shape + (0 if r < TASK_WEIGHTS["caption"] + TASK_WEIGHTS["count"] else 1)


def batch(pix, seqs, idx, task_idx, device):
    rows = []
    for i, t in zip(idx, task_idx):
        prompt, answer = seqs[i][t]
        rows.append(([IMAGE_ID] * NUM_IMAGE_TOKENS + [BOS] + prompt, answer))
    L = max(len(p) + len(a) for p, a in rows)
    B = len(rows)
    ids = torch.full((B, L), PAD, dtype=torch.long)
    tt = torch.ones((B, L), dtype=torch.long)
    am = torch.zeros((B, L), dtype=torch.long)
    target = torch.full((B, L), -100, dtype=torch.long)
    for b, (p, a) in enumerate(rows):
        s = p + a
        ids[b, : len(s)] = torch.tensor(s)
        tt[b, : len(p)] = 0
        am[b, : len(s)] = 1
        # logits at position j predict token j+1
        target[b, len(p) - 1 : len(s) - 1] = torch.tensor(a)
    px = torch.from_numpy(pix[idx]).to(device).permute(0, 3, 1, 2).float() / 255.0
    px = (px - 0.5) / 0.5
    return ids.to(device), tt.to(device), am.to(device), target.to(device), px


def loss_and_exact(model, ids, tt, am, target, px):
    out = model(input_ids=ids, token_type_ids=tt, attention_mask=am, pixel_values=px)
    logits = out.logits.float()
    logp = torch.log_softmax(logits, -1)
    flat_t = target.reshape(-1)
    flat_lp = logp.reshape(-1, logp.shape[-1])
    valid = flat_t != -100
    is_loc = (flat_t >= LOC0) & (flat_t < LOC0 + 1024)
    plain = valid & ~is_loc
    nll = -flat_lp[plain].gather(1, flat_t[plain, None]).sum()
    if is_loc.any():
        # Location targets: a narrow Gaussian over neighbouring bins instead of one bin, so a box
        # that is off by a pixel is a small error rather than as wrong as any other token.
        # The argmax (what greedy decoding emits) is still the exact bin.
        bins = torch.arange(1024, device=logits.device, dtype=torch.float32)
        t = (flat_t[is_loc] - LOC0).float()[:, None]
        q = torch.softmax(-((bins[None, :] - t) ** 2) / (2 * LOC_SIGMA**2), -1)
        nll = nll - (q * flat_lp[is_loc][:, LOC0 : LOC0 + 1024]).sum()
    loss = nll / valid.sum().clamp(min=1)
    pred = logits.argmax(-1)
    ok = ((pred == target) | (target == -100)).all(dim=1)
    return loss, ok, pred


def iou(a, b) -> float:
    iy = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ix = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iy * ix
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def boxes_ok(pred_row, target_row) -> bool:
    """Teacher-forced detection check: every non-location token exact, and each predicted box
    (4 location argmaxes) overlaps its target box with IoU >= 0.5. Exact location tokens
    would demand 1/1024 precision from a 64-pixel image, which no detector has."""
    locs_p, locs_t = [], []
    for p, t in zip(pred_row, target_row):
        if t == -100:
            continue
        if LOC0 <= t < LOC0 + 1024:
            if not LOC0 <= p < LOC0 + 1024:
                return False
            locs_p.append(p - LOC0)
            locs_t.append(t - LOC0)
        elif p != t:
            return False
    for i in range(0, len(locs_t), 4):
        if iou(locs_p[i : i + 4], locs_t[i : i + 4]) < 0.5:
            return False
    return True


@torch.no_grad()
def evaluate(model, pix, seqs, device, n_per_task=512):
    model.eval()
    res = {}
    for name, tasks in (("caption", [0]), ("count", [1, 3, 5]), ("detect", [2, 4, 6])):
        oks = []
        for start in range(0, n_per_task, 256):
            idx = list(range(start, min(n_per_task, start + 256)))
            tix = [tasks[i % len(tasks)] for i in idx]
            ids, tt, am, target, px = batch(pix, seqs, idx, tix, device)
            _, ok, pred = loss_and_exact(model, ids, tt, am, target, px)
            if name == "detect":
                ok = torch.tensor([boxes_ok(p, t) for p, t in zip(pred.tolist(), target.tolist())])
            oks.append(ok.float().cpu())
        res[name] = float(torch.cat(oks).mean())
    model.train()
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=8000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--scenes", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument("--eval-every", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=300, help="linear warm-up steps")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    ap.add_argument(
        "--train-seconds",
        type=float,
        default=0,
        help="wall-clock budget for the training loop: the learning-rate schedule follows"
        " max(step/steps, elapsed/budget), so it still anneals fully when the budget ends first",
    )
    a = ap.parse_args()

    from transformers import PaliGemmaForConditionalGeneration

    torch.manual_seed(a.seed)
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    t0 = time.time()

    os.makedirs(a.out, exist_ok=True)
    tok = build_tokenizer(VOCAB, corpus=shapes.corpus_lines() + default_corpus())
    save_tokenizer_files(tok, a.out, image_seq_length=NUM_IMAGE_TOKENS, image_size=IMAGE_SIZE)
    tok_path = os.path.join(a.out, "tokenizer.json")

    pix, seqs = make_data(tok_path, a.scenes, a.seed, a.workers)
    # held-out scenes come from a different seed stream than any training chunk
    vpix, vseqs = make_data(tok_path, 512, 10_000 + a.seed, a.workers)
    device = "cuda" if torch.cuda.is_available() else "cpu"  # after the fork()s of make_data
    print(f"data: {len(seqs)} train scenes, {len(vseqs)} held out, {time.time() - t0:.0f}s", flush=True)

    cfg = config()
    model = PaliGemmaForConditionalGeneration(cfg).to(device)
    model.train()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"parameters: {n_params} ({n_params * 4 / 1e6:.2f} MB in f32)", flush=True)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embed" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embed" not in n)]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
        lr=a.lr,
        betas=(0.9, 0.98),
    )
    warmup = min(a.warmup, a.steps // 10)

    def progress(step):
        p = step / a.steps
        if a.train_seconds:
            p = max(p, (time.time() - t_train) / a.train_seconds)
        return min(1.0, p)

    def lr_at(step, p):
        if step < warmup:
            return a.lr * (step + 1) / warmup
        return a.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * p)))

    rng = random.Random(a.seed)
    log = {"steps": [], "loss": [], "eval": [], "config": {"steps": a.steps, "batch": a.batch, "lr": a.lr,
                                                          "scenes": a.scenes, "seed": a.seed, "device": device,
                                                          "train_seconds": a.train_seconds}}
    run_loss, t_train = 0.0, time.time()
    step = 0
    for step in range(a.steps):
        p = progress(step)
        if p >= 1.0:
            print(f"training budget reached at step {step}", flush=True)
            break
        lr = lr_at(step, p)
        for g in opt.param_groups:
            g["lr"] = lr
        idx = [rng.randrange(len(seqs)) for _ in range(a.batch)]
        tix = [pick_task(rng) for _ in range(a.batch)]
        ids, tt, am, target, px = batch(pix, seqs, idx, tix, device)
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss, _, _ = loss_and_exact(model, ids, tt, am, target, px)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        run_loss += float(loss.detach())
        if (step + 1) % 50 == 0:
            log["steps"].append(step + 1)
            log["loss"].append(run_loss / 50)
            print(f"step {step + 1} loss {run_loss / 50:.4f} lr {lr:.2e} {time.time() - t_train:.0f}s", flush=True)
            run_loss = 0.0
        if (step + 1) % a.eval_every == 0 or step + 1 == a.steps:
            ev = evaluate(model, vpix, vseqs, device)
            log["eval"].append({"step": step + 1, **ev})
            print(f"eval step {step + 1}: {ev}", flush=True)
    else:
        step += 1
    log["trained_steps"] = step
    if not log["eval"] or log["eval"][-1]["step"] != step:
        ev = evaluate(model, vpix, vseqs, device)
        log["eval"].append({"step": step, **ev})
        print(f"eval step {step}: {ev}", flush=True)
    log["seconds"] = time.time() - t0

    model = model.float().cpu().eval()
    model.save_pretrained(a.out, safe_serialization=True)
    gen = {"bos_token_id": BOS, "eos_token_id": EOS, "pad_token_id": PAD, "max_new_tokens": 48}
    with open(os.path.join(a.out, "generation_config.json"), "w") as f:
        json.dump(gen, f, indent=2)
        f.write("\n")
    with open(os.path.join(a.out, "training_log.json"), "w") as f:
        json.dump(log, f)
        f.write("\n")
    print(f"saved to {a.out} after {time.time() - t0:.0f}s", flush=True)


if __name__ == "__main__":
    main()
