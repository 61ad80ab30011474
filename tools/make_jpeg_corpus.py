#!/usr/bin/env python3
"""Makes the photo corpus in crates/pinhole-core/tests/fixtures/photos/ with Pillow.

Every file comes with what transformers' PIL path sees after decoding it:
`convert_to_rgb(ImageOps.exif_transpose(Image.open(f)))` (transformers' `load_image` applies
`exif_transpose`; its processors' `convert_to_rgb` composites transparency onto white, see
crates/pinhole-core/src/hf/image.rs), stored losslessly as an RGB PNG in `expected/`, or the
error Pillow raises. `manifest.json` lists them; the Rust test
crates/pinhole-core/tests/photos.rs decodes each file and compares every byte.

Kinds: JPEG baseline and progressive, 4:4:4 / 4:2:2 / 4:2:0 (Pillow) and 4:1:1 / 4:4:0 /
arithmetic-coded (libjpeg-turbo's `cjpeg`, used only when it is installed: the committed
files are kept otherwise), restart intervals, optimised Huffman tables, qualities 50-100,
odd sizes (1x1, 17x9, 4001x3), grayscale, CMYK (Adobe, inverted as Photoshop writes it),
RGB-coded JPEG; EXIF orientations 1-8 (JPEG, PNG, WebP) and an XMP-only orientation;
16-bit and palette PNG, PNG/WebP/GIF with alpha, animated GIF/WebP, truncated files.

Usage:  python tools/make_jpeg_corpus.py            # (re)writes the corpus
        python tools/make_jpeg_corpus.py --photo OUT.jpg [W H]   # a big photo-like JPEG for
                                                     # benchmarks (default 4000x3000, 12 MP)
Needs Pillow (13.0.0 made the committed corpus) and numpy.
"""

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image, ImageOps

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "crates", "pinhole-core", "tests", "fixtures", "photos")


def textured(w, h, seed):
    """Photo-like content with high-frequency colour: smooth gradients, coloured noise,
    sharp coloured edges and a fine checkerboard (chroma upsampling and the IDCT's rounding
    show most on such content)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    img = np.zeros((h, w, 3))
    img[..., 0] = 128 + 100 * np.sin(x / (3 + seed % 5) + y / 7)
    img[..., 1] = 255 * x / max(w - 1, 1)
    img[..., 2] = 255 * y / max(h - 1, 1)
    img += rng.normal(0, 40, (h, w, 3))
    edges = ((x // 3 + y // 5) % 2 == 0)
    img[edges, 0] = 255 - img[edges, 0]
    check = ((x + y) % 2 == 0) & (x > w / 2)
    img[check, 2] = 0
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def photo_like(w, h, seed=7):
    """A big smooth-with-detail image for timing (what a camera photo compresses like)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 64 + 2, w // 64 + 2, 3), dtype=np.uint8)
    base = Image.fromarray(small, "RGB").resize((w, h), Image.BICUBIC)
    arr = np.asarray(base).astype(np.int16)
    arr += rng.integers(-12, 13, (h, w, 3), dtype=np.int16)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def reference(path):
    """What transformers' PIL path sees: load_image's exif_transpose, then convert_to_rgb."""
    from PIL import ImageFile

    ImageFile.LOAD_TRUNCATED_IMAGES = False
    with Image.open(path) as im:
        im = ImageOps.exif_transpose(im)
        if im.mode == "RGB":
            return im.copy()
        # transformers.image_transforms.convert_to_rgb (PIL branch), without importing torch.
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")


def exif_with_orientation(o):
    ex = Image.Exif()
    ex[0x0112] = o
    return ex.tobytes()


def huge_png(path, w=20000, h=20000):
    """A valid 1-bit w x h PNG of zeros (49 KB for 20000x20000): too large for pinhole, which
    must say so from the header (crates/pinhole-core/tests/image_limits.rs)."""
    import struct
    import zlib

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    z = zlib.compressobj(9)
    row = b"\x00" * (1 + (w + 7) // 8)
    data = b"".join(z.compress(row) for _ in range(h)) + z.flush()
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0))
                + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "--photo":
        w, h = (int(sys.argv[3]), int(sys.argv[4])) if len(sys.argv) >= 5 else (4000, 3000)
        photo_like(w, h).save(sys.argv[2], quality=90, subsampling=2)
        print(f"wrote {sys.argv[2]} ({w}x{h})")
        return
    if os.path.isdir(OUT):
        for n in os.listdir(OUT):
            p = os.path.join(OUT, n)
            if n == "cjpeg" and not shutil.which("cjpeg"):
                continue  # keep the committed cjpeg-made files
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    os.makedirs(os.path.join(OUT, "expected"), exist_ok=True)
    files = []

    def jpeg(name, im, **kw):
        im.save(os.path.join(OUT, name), "JPEG", **kw)
        files.append(name)

    seed = 1
    sub = {"444": 0, "422": 1, "420": 2}
    for prog in (False, True):
        tag = "prog" if prog else "base"
        for s, code in sub.items():
            for q in (75, 95):
                seed += 1
                jpeg(f"{tag}_{s}_q{q}.jpg", textured(48, 40, seed), quality=q, subsampling=code, progressive=prog)
        # Odd sizes: partial MCUs on the right and bottom, a 1-column chroma plane.
        for w, h in ((1, 1), (17, 9), (2, 3), (4001, 3), (3, 37)):
            seed += 1
            jpeg(f"{tag}_420_{w}x{h}.jpg", textured(w, h, seed), quality=85, subsampling=2, progressive=prog)
        seed += 1
        jpeg(f"{tag}_422_17x9.jpg", textured(17, 9, seed), quality=85, subsampling=1, progressive=prog)
        seed += 1
        jpeg(f"{tag}_gray.jpg", textured(33, 21, seed).convert("L"), quality=85, progressive=prog)
        seed += 1
        jpeg(f"{tag}_cmyk.jpg", textured(30, 22, seed).convert("CMYK"), quality=90, progressive=prog)
        seed += 1
        jpeg(f"{tag}_rgb_coded.jpg", textured(30, 22, seed), quality=90, keep_rgb=True, progressive=prog)
        seed += 1
        jpeg(f"{tag}_420_q100.jpg", textured(40, 24, seed), quality=100, subsampling=2, progressive=prog)
        seed += 1
        jpeg(f"{tag}_420_q50_opt.jpg", textured(40, 24, seed), quality=50, subsampling=2, optimize=True, progressive=prog)
    # Restart intervals (in MCUs and in MCU rows), baseline and progressive.
    for i, (prog, kw) in enumerate(
        [(False, {"restart_marker_blocks": 1}), (False, {"restart_marker_blocks": 3}),
         (False, {"restart_marker_rows": 1}), (True, {"restart_marker_blocks": 2}),
         (True, {"restart_marker_rows": 1})]
    ):
        k, v = next(iter(kw.items()))
        tag = "prog" if prog else "base"
        jpeg(f"{tag}_420_rst_{k.split('_')[-1]}{v}.jpg", textured(50, 35, 100 + i), quality=80, subsampling=2, progressive=prog, **kw)

    # libjpeg-turbo's cjpeg for what Pillow cannot write (Pillow reads all of them).
    cj = shutil.which("cjpeg")
    if cj:
        os.makedirs(os.path.join(OUT, "cjpeg"), exist_ok=True)
        with tempfile.TemporaryDirectory() as t:
            for name, w, h, args in [
                ("411", 45, 26, ["-sample", "4x1,1x1,1x1"]),
                ("411_prog", 45, 26, ["-sample", "4x1,1x1,1x1", "-progressive"]),
                ("440", 31, 27, ["-sample", "1x2,1x1,1x1"]),
                ("440_prog", 31, 27, ["-sample", "1x2,1x1,1x1", "-progressive"]),
                ("h2v1_odd_chroma", 21, 13, ["-sample", "2x1,1x2,1x1"]),
                ("420_rst_prog", 41, 30, ["-sample", "2x2,1x1,1x1", "-progressive", "-restart", "1B"]),
                ("arith", 30, 20, ["-sample", "2x2,1x1,1x1", "-arithmetic"]),
            ]:
                ppm = os.path.join(t, "in.ppm")
                textured(w, h, 200 + w).save(ppm)
                dst = os.path.join(OUT, "cjpeg", f"{name}.jpg")
                subprocess.run([cj, "-quality", "85", *args, "-outfile", dst, ppm], check=True)
    if os.path.isdir(os.path.join(OUT, "cjpeg")):
        files += sorted(f"cjpeg/{n}" for n in os.listdir(os.path.join(OUT, "cjpeg")))

    # EXIF orientation: an asymmetric 24x16 picture tagged 1-8, as JPEG, PNG and WebP.
    asym = textured(24, 16, 300)
    arr = np.asarray(asym).copy()
    arr[:4, :6] = (255, 0, 0)  # a red top-left corner shows where the origin went
    asym = Image.fromarray(arr, "RGB")
    for o in range(1, 9):
        ex = exif_with_orientation(o)
        jpeg(f"exif_orient{o}.jpg", asym, quality=95, subsampling=0, exif=ex)
        asym.save(os.path.join(OUT, f"exif_orient{o}.png"), exif=ex)
        files.append(f"exif_orient{o}.png")
    asym.save(os.path.join(OUT, "exif_orient6.webp"), lossless=True, exif=exif_with_orientation(6))
    files.append("exif_orient6.webp")
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/'
           b'22-rdf-syntax-ns#"><rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" '
           b'tiff:Orientation="8"/></rdf:RDF></x:xmpmeta>')
    jpeg("xmp_orient8.jpg", asym, quality=95, subsampling=0, xmp=xmp)
    # Progressive + 4:2:0 + rotated: a phone photo in miniature.
    jpeg("phone_orient6_prog.jpg", textured(40, 30, 301), quality=90, subsampling=2, progressive=True,
         exif=exif_with_orientation(6))

    # A bundled-model example scene stored a quarter turn counter-clockwise with orientation 6,
    # so it is upright again after exif_transpose (the CLI test captions it both ways).
    scene = os.path.join(HERE, "..", "models", "pinhole-shapes", "examples", "scene_00001.png")
    with Image.open(scene) as im:
        im.convert("RGB").transpose(Image.Transpose.ROTATE_90).save(
            os.path.join(OUT, "scene_00001_orient6.png"), exif=exif_with_orientation(6))
    files.append("scene_00001_orient6.png")

    # Other kinds.
    base = textured(26, 19, 400)
    alpha = Image.fromarray(np.random.default_rng(5).integers(0, 256, (19, 26), dtype=np.uint8), "L")
    rgba = base.copy()
    rgba.putalpha(alpha)

    def save(name, im, **kw):
        im.save(os.path.join(OUT, name), **kw)
        files.append(name)

    save("rgba.png", rgba)
    save("rgba_lossy.webp", rgba, quality=80)
    save("rgba_lossless.webp", rgba, lossless=True)
    arr16 = (np.asarray(base).astype(np.uint16) * 257 + np.arange(26, dtype=np.uint16)[None, :, None])
    save("gray16.png", Image.fromarray(np.ascontiguousarray(arr16[..., 0])))
    save("palette.png", base.quantize(37))
    pal = base.quantize(16)
    pal.info["transparency"] = 3
    save("palette_trns.png", pal, transparency=3)
    save("alpha.gif", pal, transparency=3)
    frames = [textured(26, 19, 500 + i).quantize(64) for i in range(3)]
    frames[0].save(os.path.join(OUT, "animated.gif"), save_all=True, append_images=frames[1:], duration=50, loop=0)
    files.append("animated.gif")
    wframes = [textured(26, 19, 600 + i) for i in range(3)]
    wframes[0].save(os.path.join(OUT, "animated.webp"), save_all=True, append_images=wframes[1:], duration=50, lossless=True)
    files.append("animated.webp")
    # Truncated: Pillow refuses them ("image file is truncated"); so does pinhole.
    full = io.BytesIO()
    textured(48, 40, 700).save(full, "JPEG", quality=85)
    data = full.getvalue()
    for name, cut in (("truncated_half.jpg", len(data) // 2), ("truncated_header.jpg", 100)):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data[:cut])
        files.append(name)
    # Cut just before the end-of-image marker, and trailing garbage after it.
    for name, prog in (("no_eoi_base.jpg", False), ("no_eoi_prog.jpg", True)):
        b = io.BytesIO()
        textured(20, 18, 701).save(b, "JPEG", quality=85, progressive=prog)
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(b.getvalue()[:-2])
        files.append(name)
    with open(os.path.join(OUT, "trailing_garbage.jpg"), "wb") as f:
        f.write(data + b"\x00garbage\xff\xd9")
    files.append("trailing_garbage.jpg")
    png = io.BytesIO()
    base.save(png, "PNG")
    with open(os.path.join(OUT, "truncated.png"), "wb") as f:
        f.write(png.getvalue()[: len(png.getvalue()) * 2 // 3])
    files.append("truncated.png")

    huge_png(os.path.join(OUT, "..", "image-limits", "png-20000x20000.png"))

    manifest = []
    for name in files:
        entry = {"file": name}
        try:
            im = reference(os.path.join(OUT, name))
            exp = f"expected/{name.replace('/', '_')}.png"
            im.save(os.path.join(OUT, exp))
            entry.update(expected=exp, width=im.width, height=im.height)
        except Exception as e:  # noqa: BLE001 - what Pillow says is the expected outcome
            entry["error"] = f"{type(e).__name__}: {e}"
        manifest.append(entry)
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump({"made_with": f"Pillow {Image.__version__}", "files": manifest}, f, indent=1)
    total = sum(os.path.getsize(os.path.join(dp, n)) for dp, _, ns in os.walk(OUT) for n in ns)
    print(f"{len(manifest)} files, {total} bytes in {OUT}")


if __name__ == "__main__":
    main()
