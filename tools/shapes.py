#!/usr/bin/env python3
"""Synthetic shape scenes: the task the bundled `pinhole-shapes` model is trained on.

A scene is 1-3 coloured shapes (circle / square / triangle x 6 colours) on a plain pale
background, with no two shapes overlapping and their centres far enough apart left-to-right
that "listed left to right" is never ambiguous. Everything a model must answer is a pure
function of the scene:

* caption   ``caption en``                -> ``a red circle, a blue square and a green triangle``
* counting  ``answer en how many circles?`` -> ``2``
* detection ``detect circle``             -> ``<loc0012><loc0034><loc0456><loc0478> circle ; ...``
  (PaliGemma's box format: y_min, x_min, y_max, x_max on a 0..1023 grid, left to right,
  `` ; `` between boxes; no box at all when the shape is absent)

Only Python and Pillow are needed. CLI::

    python tools/shapes.py --out DIR --count N --seed S [--size 128]

writes ``DIR/scene_00000.png`` ... and ``DIR/captions.json`` (file name -> caption) plus
``DIR/scenes.json`` (file name -> shapes with boxes, and every task's prompt/answer).
"""

from __future__ import annotations

import argparse
import json
import os
import random

from PIL import Image, ImageDraw

SHAPES = ["circle", "square", "triangle"]
COLOURS = {
    "red": (220, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 200, 30),
    "purple": (140, 60, 180),
    "orange": (245, 130, 30),
}
DEFAULT_SIZE = 128
SUPERSAMPLE = 2  # draw at 2x and box-filter down: soft edges like a photographed drawing


def random_scene(rng: random.Random, size: int = DEFAULT_SIZE) -> dict:
    """A scene description: background colour and shapes sorted left to right."""
    n = rng.choice([1, 2, 3])
    shapes: list[dict] = []
    tries = 0
    while len(shapes) < n:
        tries += 1
        if tries > 200:  # the first shapes left no room: start over
            shapes, tries = [], 0
        side = rng.uniform(0.17, 0.33) * size
        x0 = rng.uniform(0.03 * size, size * 0.97 - side)
        y0 = rng.uniform(0.03 * size, size * 0.97 - side)
        box = (x0, y0, x0 + side, y0 + side)
        cx = x0 + side / 2
        ok = True
        for s in shapes:
            b = s["box"]
            overlap = not (box[2] + 2 <= b[0] or b[2] + 2 <= box[0] or box[3] + 2 <= b[1] or b[3] + 2 <= box[1])
            # centres at least 8% of the width apart so left-to-right order is unambiguous
            if overlap or abs(cx - (b[0] + b[2]) / 2) < 0.08 * size:
                ok = False
                break
        if not ok:
            continue
        shapes.append({"shape": rng.choice(SHAPES), "colour": rng.choice(list(COLOURS)), "box": box})
    shapes.sort(key=lambda s: (s["box"][0] + s["box"][2]) / 2)
    bg = tuple(rng.randint(205, 255) for _ in range(3))
    jitter = [tuple(rng.randint(-18, 18) for _ in range(3)) for _ in shapes]
    return {"size": size, "background": bg, "shapes": shapes, "jitter": jitter}


def render(scene: dict) -> Image.Image:
    size = scene["size"]
    k = SUPERSAMPLE
    img = Image.new("RGB", (size * k, size * k), scene["background"])
    d = ImageDraw.Draw(img)
    for s, j in zip(scene["shapes"], scene["jitter"]):
        base = COLOURS[s["colour"]]
        fill = tuple(max(0, min(255, c + dj)) for c, dj in zip(base, j))
        x0, y0, x1, y1 = (v * k for v in s["box"])
        if s["shape"] == "circle":
            d.ellipse((x0, y0, x1, y1), fill=fill)
        elif s["shape"] == "square":
            d.rectangle((x0, y0, x1, y1), fill=fill)
        else:
            d.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=fill)
    return img.resize((size, size), Image.Resampling.BOX)


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption(scene: dict) -> str:
    parts = [f"{article(s['colour'])} {s['colour']} {s['shape']}" for s in scene["shapes"]]
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def count_answer(scene: dict, shape: str) -> str:
    return str(sum(1 for s in scene["shapes"] if s["shape"] == shape))


def loc(v: float, size: int) -> str:
    return f"<loc{min(1023, max(0, int(v / size * 1024))):04d}>"


def detect_answer(scene: dict, shape: str) -> str:
    size = scene["size"]
    boxes = []
    for s in scene["shapes"]:
        if s["shape"] == shape:
            x0, y0, x1, y1 = s["box"]
            boxes.append(loc(y0, size) + loc(x0, size) + loc(y1, size) + loc(x1, size) + " " + shape)
    return " ; ".join(boxes)


def tasks(scene: dict) -> list[tuple[str, str]]:
    """Every (prompt, answer) pair the model is trained on for this scene."""
    out = [("caption en", caption(scene))]
    for shape in SHAPES:
        out.append((f"answer en how many {shape}s?", count_answer(scene, shape)))
        out.append((f"detect {shape}", detect_answer(scene, shape)))
    return out


def corpus_lines() -> list[str]:
    """Text for training the tokenizer: every word and prompt the task uses."""
    rng = random.Random(1)
    lines = []
    for _ in range(3000):
        sc = random_scene(rng)
        for p, a in tasks(sc):
            lines.append(p + "\n")
            if a and not a.startswith("<loc"):
                lines.append(a + "\n")
    lines += [" ; circle\n", " ; square\n", " ; triangle\n"]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=DEFAULT_SIZE)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = random.Random(a.seed)
    captions, scenes = {}, {}
    for i in range(a.count):
        sc = random_scene(rng, a.size)
        name = f"scene_{i:05d}.png"
        render(sc).save(os.path.join(a.out, name), optimize=True)
        captions[name] = caption(sc)
        scenes[name] = {
            "shapes": [{"shape": s["shape"], "colour": s["colour"], "box_xyxy": [round(v, 2) for v in s["box"]]}
                       for s in sc["shapes"]],
            "tasks": [{"prompt": p, "answer": ans} for p, ans in tasks(sc)],
        }
    for fname, obj in (("captions.json", captions), ("scenes.json", scenes)):
        with open(os.path.join(a.out, fname), "w") as f:
            json.dump(obj, f, indent=1)
            f.write("\n")
    print(f"wrote {a.count} scenes to {a.out}")


if __name__ == "__main__":
    main()
