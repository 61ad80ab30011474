#!/usr/bin/env python3
"""Evaluate the bundled `pinhole-shapes` model on held-out scenes: transformers vs pinhole.

Renders N held-out scenes with `tools/shapes.py` (a seed no training chunk uses), and asks
three questions of each: `caption en`, `answer en how many <shape>s?` and `detect <shape>`
(the shape picked per scene from the seed). Answers come from

* transformers' greedy `generate` (PaliGemmaForConditionalGeneration, the reference), and
* every pinhole run given with `--pinhole LABEL=MODEL_DIR` (the `pinhole caption` command of
  `--bin`, one process per distinct prompt, images in order), and
* answers produced elsewhere (e.g. headless Chromium) given with `--answers LABEL=FILE.json`
  (a JSON object: "<image file>\\t<prompt>" -> answer text).

Scores per run: caption exact match, counting accuracy, detection (share of ground-truth
boxes matched, in order, by a predicted box of the right label with IoU >= 0.5), and the
share of answers identical to transformers'. Writes OUT/results.json and prints a Markdown
table (the one in the README).

    python tools/eval_shapes.py --model models/pinhole-shapes --out /tmp/eval --count 500 \\
        --bin target/release/pinhole --pinhole "pinhole f32=models/pinhole-shapes" \\
        --pinhole "pinhole 4-bit=/tmp/shapes-q4"
    node tools/eval-web.mjs --eval /tmp/eval --out /tmp/eval/web.json      # headless Chromium
    python tools/eval_shapes.py --model models/pinhole-shapes --out /tmp/eval --count 500 \\
        --reuse --answers "pinhole in headless Chromium=/tmp/eval/web.json"

A run that answered only some scenes (the browser run can be stopped early: SwiftShader is
slow) is scored on the scenes it answered; the table's "scenes" column says how many.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import shapes  # noqa: E402

LOC = re.compile(r"<loc(\d{4})><loc(\d{4})><loc(\d{4})><loc(\d{4})>\s*([a-z]*)")


def parse_boxes(text: str) -> list[tuple[list[int], str]]:
    return [([int(m.group(i)) for i in range(1, 5)], m.group(5)) for m in LOC.finditer(text)]


def iou(a, b) -> float:
    iy = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    ix = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iy * ix
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def make_items(out: str, count: int, seed: int) -> list[dict]:
    """Scenes as PNG files plus the three (prompt, expected answer) items of each."""
    img_dir = os.path.join(out, "scenes")
    os.makedirs(img_dir, exist_ok=True)
    rng = random.Random(seed)
    items = []
    for i in range(count):
        sc = shapes.random_scene(rng)
        name = f"scene_{i:05d}.png"
        path = os.path.join(img_dir, name)
        shapes.render(sc).save(path)
        shape = rng.choice(shapes.SHAPES)
        # detection asks for a shape that is present 3 times out of 4, so most items have boxes
        present = [s["shape"] for s in sc["shapes"]]
        dshape = rng.choice(present) if rng.random() < 0.75 else rng.choice(shapes.SHAPES)
        for task, prompt, answer in (
            ("caption", "caption en", shapes.caption(sc)),
            ("count", f"answer en how many {shape}s?", shapes.count_answer(sc, shape)),
            ("detect", f"detect {dshape}", shapes.detect_answer(sc, dshape)),
        ):
            items.append({"image": name, "path": path, "task": task, "prompt": prompt, "expected": answer})
    return items


def run_transformers(model_dir: str, items: list[dict], batch: int = 1) -> dict[str, str]:
    """transformers' greedy answers. One prompt at a time by default: that is what a user gets.
    Batching changes the float rounding of the CPU matmuls, and exact logit ties (frequent
    between neighbouring <loc> bins, whose training targets overlap) then flip, so a batched
    reference can differ from a single-prompt run, and from pinhole, by a location bin."""
    import torch
    from PIL import Image
    from transformers import AutoProcessor, PaliGemmaForConditionalGeneration

    torch.manual_seed(0)
    model = PaliGemmaForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32).eval()
    proc = AutoProcessor.from_pretrained(model_dir)
    out: dict[str, str] = {}
    by_prompt: dict[str, list[dict]] = {}
    for it in items:
        by_prompt.setdefault(it["prompt"], []).append(it)
    # one prompt per batch: every row has the same length, so no padding is involved
    for prompt, group in by_prompt.items():
        for s in range(0, len(group), batch):
            part = group[s : s + batch]
            imgs = [Image.open(it["path"]).convert("RGB") for it in part]
            enc = proc(text=[prompt] * len(part), images=imgs, return_tensors="pt")
            n = enc["input_ids"].shape[1]
            with torch.no_grad():
                gen = model.generate(**enc, max_new_tokens=48, do_sample=False)
            for it, row in zip(part, gen[:, n:]):
                out[key(it)] = proc.decode(row, skip_special_tokens=True).strip()
    return out


def run_pinhole(binary: str, model_dir: str, items: list[dict]) -> dict[str, str]:
    out: dict[str, str] = {}
    by_prompt: dict[str, list[dict]] = {}
    for it in items:
        by_prompt.setdefault(it["prompt"], []).append(it)
    for prompt, group in by_prompt.items():
        cmd = [binary, "caption", "--model", model_dir, "--prompt", prompt, "--max-new-tokens", "48"]
        cmd += [it["path"] for it in group]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            sys.exit(f"pinhole failed for prompt {prompt!r}: {res.stderr.strip()}")
        # one line per image, empty when the answer is empty (e.g. no box to detect)
        lines = res.stdout.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if len(lines) != len(group):
            sys.exit(f"pinhole printed {len(lines)} lines for {len(group)} images ({prompt!r})")
        for it, line in zip(group, lines):
            out[key(it)] = line.strip()
    return out


def key(it: dict) -> str:
    return f"{it['image']}\t{it['prompt']}"


def score(items: list[dict], answers: dict[str, str], reference: dict[str, str] | None) -> dict:
    # A run may answer only part of the items (e.g. the slow browser run): score what it
    # answered and say how many scenes that was.
    items = [it for it in items if key(it) in answers]
    caps = [it for it in items if it["task"] == "caption"]
    counts = [it for it in items if it["task"] == "count"]
    dets = [it for it in items if it["task"] == "detect"]
    res = {
        "scenes": len({it["image"] for it in items}),
        "answered": {t: sum(it["task"] == t for it in items) for t in ("caption", "count", "detect")},
        "caption_exact": sum(answers[key(it)] == it["expected"] for it in caps) / len(caps) if caps else None,
        "count_accuracy": sum(answers[key(it)] == it["expected"] for it in counts) / len(counts) if counts else None,
    }
    gt_boxes = hit = 0
    empty_ok = empty_n = 0
    for it in dets:
        want = parse_boxes(it["expected"])
        got = parse_boxes(answers[key(it)])
        if not want:
            empty_n += 1
            empty_ok += not got
        gt_boxes += len(want)
        for i, (wb, wl) in enumerate(want):
            if i < len(got) and got[i][1] == wl and iou(got[i][0], wb) >= 0.5:
                hit += 1
    res["detect_box_iou50"] = hit / gt_boxes if gt_boxes else None
    res["detect_absent_correct"] = empty_ok / empty_n if empty_n else None
    if reference is not None:
        res["agree_with_transformers"] = sum(answers[key(it)] == reference[key(it)] for it in items) / max(1, len(items))
    return res


def write_examples(out: str, items: list[dict], ref: dict[str, str], n: int) -> None:
    """Scenes for the CI tests, with transformers' answers (what pinhole must reproduce token for
    token) and the ground truth. Only scenes transformers gets right are kept (caption and count
    exact; every box of the right label at IoU >= 0.5), half of them with boxes to detect, so a
    failing test is pinhole's fault, not the model's."""
    import shutil

    os.makedirs(out, exist_ok=True)
    by_image: dict[str, list[dict]] = {}
    for it in items:
        by_image.setdefault(it["image"], []).append(it)

    def correct(it: dict) -> bool:
        got = ref[key(it)]
        if it["task"] != "detect":
            return got == it["expected"]
        want, boxes = parse_boxes(it["expected"]), parse_boxes(got)
        return len(want) == len(boxes) and all(
            wl == gl and iou(wb, gb) >= 0.5 for (wb, wl), (gb, gl) in zip(want, boxes)
        ) and (bool(want) or not got)

    chosen: dict[str, list[dict]] = {}
    with_boxes = 0
    for name, its in by_image.items():
        if len(chosen) == n:
            break
        has_box = any(it["task"] == "detect" and it["expected"] for it in its)
        if not has_box and len(chosen) - with_boxes >= n // 2:
            continue
        if all(correct(it) for it in its):
            with_boxes += has_box
            shutil.copy(its[0]["path"], os.path.join(out, name))
            chosen[name] = [
                {"task": it["task"], "prompt": it["prompt"], "answer": ref[key(it)], "truth": it["expected"]}
                for it in its
            ]
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(chosen, f, indent=1)
        f.write("\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="the model folder transformers loads (f32)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--seed", type=int, default=777_777, help="scene seed (training used seeds < 10^9 per chunk)")
    ap.add_argument("--bin", default="target/release/pinhole")
    ap.add_argument("--pinhole", action="append", default=[], metavar="LABEL=MODEL_DIR")
    ap.add_argument("--answers", action="append", default=[], metavar="LABEL=FILE.json")
    ap.add_argument(
        "--write-examples",
        metavar="DIR",
        help="also copy the first --examples scenes whose answers transformers gets right into DIR, with"
        " expected.json (prompt -> answer) for the test suite",
    )
    ap.add_argument("--examples", type=int, default=8)
    ap.add_argument(
        "--transformers-batch",
        type=int,
        default=1,
        help="prompts per transformers generate() call (1: exactly a single-prompt run; larger is"
        " faster but may flip exact logit ties)",
    )
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="take the runs already in OUT/results.json (same --count and --seed) instead of running"
        " them again; add new ones with --pinhole / --answers",
    )
    a = ap.parse_args()

    items = make_items(a.out, a.count, a.seed)
    with open(os.path.join(a.out, "items.json"), "w") as f:
        json.dump([{k: v for k, v in it.items() if k != "path"} for it in items], f, indent=1)
    runs: dict[str, dict[str, str]] = {}
    if a.reuse:
        with open(os.path.join(a.out, "results.json")) as f:
            prev = json.load(f)
        if (prev["count"], prev["seed"]) != (a.count, a.seed):
            sys.exit(f"--reuse: {a.out}/results.json has count {prev['count']} seed {prev['seed']}")
        runs.update(prev["answers"])
        if prev.get("transformers_batch", 64) != a.transformers_batch:
            del runs["transformers"]  # recorded with another batch size: run it again
    if "transformers" not in runs:
        t = time.time()
        runs["transformers"] = run_transformers(a.model, items, a.transformers_batch)
        print(f"transformers: {time.time() - t:.0f}s", file=sys.stderr)
    runs = {"transformers": runs.pop("transformers"), **runs}
    for spec in a.pinhole:
        label, model_dir = spec.split("=", 1)
        t = time.time()
        runs[label] = run_pinhole(a.bin, model_dir, items)
        print(f"{label}: {time.time() - t:.0f}s", file=sys.stderr)
    for spec in a.answers:
        label, path = spec.split("=", 1)
        with open(path) as f:
            runs[label] = json.load(f)
    ref = runs["transformers"]
    results = {label: score(items, ans, None if label == "transformers" else ref) for label, ans in runs.items()}
    if a.write_examples:
        write_examples(a.write_examples, items, ref, a.examples)
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(
            {
                "count": a.count,
                "seed": a.seed,
                "transformers_batch": a.transformers_batch,
                "results": results,
                "answers": runs,
            },
            f,
            indent=1,
        )

    print(f"| run (of {a.count} held-out scenes) | scenes | caption exact | counting | boxes IoU≥0.5 | absent → no box | same answer as transformers |")
    print("|---|---|---|---|---|---|---|")
    for label, r in results.items():
        agree = f"{r['agree_with_transformers'] * 100:.1f}%" if "agree_with_transformers" in r else "(reference)"
        n = r["answered"]
        # scenes answered; per task (caption / count / detect) when a partial run differs
        scenes = str(r["scenes"]) if len(set(n.values())) == 1 else "{caption} / {count} / {detect}".format(**n)
        cap, cnt, box, absent = (
            "–" if r[k] is None else f"{r[k] * 100:.1f}%"
            for k in ("caption_exact", "count_accuracy", "detect_box_iou50", "detect_absent_correct")
        )
        print(f"| {label} | {scenes} | {cap} | {cnt} | {box} | {absent} | {agree} |")


if __name__ == "__main__":
    main()
