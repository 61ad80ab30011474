#!/usr/bin/env python3
"""Bit-exact NumPy re-implementation of Pillow's BICUBIC resize of 8-bit RGB images
(Pillow's src/libImaging/Resample.c), i.e. what PaliGemma's image processor does
before rescale/normalise. Written as a spec for the Rust port; checked against PIL and
against tests/fixtures/image-resize/expected.safetensors.

    /work/venv/bin/python tools/pil_resize_reference.py

Algorithm (separable: two 1-D passes, each rounding/clipping to uint8):
  pass order (Pillow >= 13.0, PR #9549; older Pillow always does horizontal first):
    vertical_first = (in_h - out_h) > 0 and (in_h - out_h) > 2 * (in_w - out_w)
    (integer sizes; in_w - out_w is negative when upscaling the width)
  for each axis with in_size -> out_size (a pass is skipped when the size is unchanged):
    scale       = in_size / out_size
    filterscale = max(scale, 1.0)              # antialias when downscaling
    support     = 2.0 * filterscale            # bicubic support is 2
    for each output index i:
      center = (i + 0.5) * scale
      xmin   = max(int(center - support + 0.5), 0)          # int() truncates toward 0
      xmax   = min(int(center + support + 0.5), in_size)
      w[j]   = cubic((j + xmin - center + 0.5) / filterscale) for j in 0..xmax-xmin
      w     /= sum(w)                                        # in double precision
      k[j]   = int(w[j] * 2^22 + 0.5) if w[j] >= 0 else int(w[j] * 2^22 - 0.5)
      out    = clip((2^21 + sum_j k[j] * in[xmin + j]) >> 22, 0, 255)   # arithmetic shift
  cubic(x), a = -0.5:  |x|<1: ((a+2)|x| - (a+3)) x^2 + 1 ;  1<=|x|<2: (((|x|-5)|x|+8)|x|-4) a ;  else 0
  The first pass writes a uint8 intermediate image (rounded+clipped), which the second
  pass reads. A pass is skipped when that dimension does not change.
"""

from __future__ import annotations

import os
import sys

import numpy as np

PRECISION_BITS = 32 - 8 - 2  # 22


def _cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    x = np.abs(x)
    return np.where(
        x < 1.0,
        ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0,
        np.where(x < 2.0, (((x - 5.0) * x + 8.0) * x - 4.0) * a, 0.0),
    )


def _coeffs(in_size: int, out_size: int):
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    rows = []
    for i in range(out_size):
        center = (i + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        j = np.arange(xmax - xmin, dtype=np.float64)
        w = _cubic((j + xmin - center + 0.5) / filterscale)
        total = w.sum()
        if total != 0.0:
            w = w / total
        k = np.where(w < 0, (w * (1 << PRECISION_BITS) - 0.5), (w * (1 << PRECISION_BITS) + 0.5)).astype(np.int64)
        rows.append((xmin, k))
    return rows


def _resample_axis0(img: np.ndarray, out_size: int) -> np.ndarray:
    """Resample along axis 0 of a uint8 array [N, ...]."""
    src = img.astype(np.int64)
    out = np.empty((out_size,) + img.shape[1:], dtype=np.uint8)
    for i, (xmin, k) in enumerate(_coeffs(img.shape[0], out_size)):
        acc = (1 << (PRECISION_BITS - 1)) + np.tensordot(k, src[xmin : xmin + len(k)], axes=(0, 0))
        out[i] = np.clip(acc >> PRECISION_BITS, 0, 255)
    return out


def resize_bicubic_u8(img: np.ndarray, out_w: int, out_h: int, pillow13_order: bool = True) -> np.ndarray:
    """img: uint8 [H, W, C] -> uint8 [out_h, out_w, C], identical to PIL Image.resize(BICUBIC)
    (Pillow >= 13 pass order by default; pillow13_order=False gives Pillow <= 12)."""
    h, w = img.shape[:2]

    def horizontal(x):
        return _resample_axis0(x.transpose(1, 0, 2), out_w).transpose(1, 0, 2) if out_w != w else x

    def vertical(x):
        return _resample_axis0(x, out_h) if out_h != h else x

    vertical_first = pillow13_order and (h - out_h) > 0 and (h - out_h) > 2 * (w - out_w)
    x = horizontal(vertical(img)) if vertical_first else vertical(horizontal(img))
    return np.ascontiguousarray(x)


def siglip_pixel_values(img_u8: np.ndarray, size: int) -> np.ndarray:
    """The whole PaliGemma/Siglip image path: [H,W,3] uint8 -> [3,size,size] float32."""
    r = resize_bicubic_u8(img_u8, size, size)
    x = (r.astype(np.float64) * (1.0 / 255.0)).astype(np.float32)
    x = (x - np.float32(0.5)) / np.float32(0.5)
    return x.transpose(2, 0, 1)


def main() -> None:
    from PIL import Image
    from safetensors.numpy import load_file

    import PIL

    assert int(PIL.__version__.split(".")[0]) >= 13, "pass-order rule below is Pillow >= 13"
    rng = np.random.default_rng(0)
    n = 0
    for _ in range(300):  # random sizes, up- and down-scaling, odd ratios
        h, w = rng.integers(1, 70, size=2)
        oh, ow = rng.integers(1, 90, size=2)
        arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        want = np.array(Image.fromarray(arr).resize((int(ow), int(oh)), Image.BICUBIC))
        got = resize_bicubic_u8(arr, int(ow), int(oh))
        assert np.array_equal(want, got), (h, w, oh, ow, np.abs(want.astype(int) - got).max())
        n += 1
    fx = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fixtures", "image-resize")
    ref = load_file(os.path.join(fx, "expected.safetensors"))
    for key in sorted(ref):
        if ".resized" in key:
            base, rest = key.split(".resized")
            size = int(rest.split("_")[0])
            dec = ref[f"{base}.decoded_u8"]
            assert np.array_equal(resize_bicubic_u8(dec, size, size), ref[key]), key
            assert np.array_equal(siglip_pixel_values(dec, size), ref[f"{base}.pixel_values{size}"]), key
            n += 1
    print(f"OK: {n} resizes identical to PIL")


if __name__ == "__main__":
    sys.exit(main())
