//! Image decoding and preprocessing against fixtures made with Pillow and transformers
//! (tests/fixtures/gen_fixtures.py): the 8-bit bicubic resize must equal PIL byte for byte and
//! the normalised pixel values must equal transformers' `pixel_values` bit for bit.

use std::path::{Path, PathBuf};

use pinhole_core::hf::image::{
    decode_image, load_image, preprocess_rgb, resize_bicubic, resize_bicubic_ordered, PassOrder, Rgb8Image,
};
use pinhole_core::hf::processor::ImageProcessorConfig;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", p.display()))
}

/// Mirrors `pattern()` of gen_fixtures.py.
fn pattern(kind: &str, h: usize, w: usize) -> Vec<u8> {
    let mut out = vec![0u8; h * w * 3];
    match kind {
        "noise" => {
            let mut x: u64 = 12345;
            for o in out.iter_mut() {
                x = (x * 1103515245 + 12345) % (1 << 31);
                *o = ((x >> 16) & 255) as u8;
            }
        }
        "smooth" => {
            for y in 0..h {
                for xx in 0..w {
                    for c in 0..3 {
                        let v = (y * 255 / (h - 1).max(1) * (c + 1) + xx * 255 / (w - 1).max(1) * (3 - c)) / 4 % 256;
                        out[(y * w + xx) * 3 + c] = v as u8;
                    }
                }
            }
        }
        "edges" => {
            for y in 0..h {
                for xx in 0..w {
                    let v = if ((xx / 3) + (y / 5)).is_multiple_of(2) { 255 } else { 0 };
                    out[(y * w + xx) * 3] = v;
                    out[(y * w + xx) * 3 + 1] = 255 - v;
                    out[(y * w + xx) * 3 + 2] = ((xx * 7 + y * 13) % 256) as u8;
                }
            }
        }
        _ => panic!("unknown pattern {kind}"),
    }
    out
}

#[test]
fn resize_matches_pil_exactly() {
    let dir = fixtures().join("resize");
    let mut cases = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        // {in_h}x{in_w}_to_{out_h}x{out_w}_{pattern}
        let parts: Vec<&str> = name.split('_').collect();
        let dims = |s: &str| -> (usize, usize) {
            let (a, b) = s.split_once('x').unwrap();
            (a.parse().unwrap(), b.parse().unwrap())
        };
        let (ih, iw) = dims(parts[0]);
        let (oh, ow) = dims(parts[2]);
        let img = Rgb8Image::new(iw, ih, pattern(parts[3], ih, iw)).unwrap();
        let out = resize_bicubic(&img, oh, ow).unwrap();
        assert_eq!((out.height, out.width), (oh, ow));
        let want = read(&path);
        let diffs = out.data.iter().zip(&want).filter(|(a, b)| a != b).count();
        assert_eq!(diffs, 0, "{name}: {diffs} of {} bytes differ from PIL", want.len());
        cases += 1;
    }
    assert!(cases >= 17, "expected the resize fixtures, found {cases}");
}

#[test]
fn pass_order_matters_only_where_pillow_13_changed_it() {
    // 300x118 -> 44x22: Pillow 13 goes vertical first (256 > 2 * 96); Pillow 12's
    // horizontal-first order rounds differently in between, so the results differ.
    let img = Rgb8Image::new(118, 300, pattern("noise", 300, 118)).unwrap();
    let new = resize_bicubic(&img, 44, 22).unwrap();
    let old = resize_bicubic_ordered(&img, 44, 22, PassOrder::HorizontalFirst).unwrap();
    assert_ne!(new.data, old.data);
    // 37x50 -> 32x32 is horizontal first in both.
    let img = Rgb8Image::new(50, 37, pattern("noise", 37, 50)).unwrap();
    let new = resize_bicubic(&img, 32, 32).unwrap();
    let old = resize_bicubic_ordered(&img, 32, 32, PassOrder::HorizontalFirst).unwrap();
    assert_eq!(new.data, old.data);
}

/// Max absolute difference and number of differing bytes.
fn diff(a: &[u8], b: &[u8]) -> (u8, usize) {
    assert_eq!(a.len(), b.len());
    let mut max = 0;
    let mut n = 0;
    for (&x, &y) in a.iter().zip(b) {
        let d = x.abs_diff(y);
        max = max.max(d);
        n += (d > 0) as usize;
    }
    (max, n)
}

#[test]
fn decoding_matches_pil() {
    let dir = fixtures().join("decode");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().to_string())
        .filter(|n| !n.ends_with(".rgb"))
        .collect();
    names.sort();
    assert!(names.len() >= 18, "expected the decode fixtures, found {names:?}");
    let mut failures = Vec::new();
    for name in names {
        let img = load_image(dir.join(&name)).unwrap();
        assert_eq!((img.width, img.height), (26, 19), "{name}");
        let want = read(&dir.join(format!("{name}.rgb")));
        let (max, n) = diff(&img.data, &want);
        // Every format, JPEG included (pinhole's JPEG decoder computes what Pillow's
        // libjpeg-turbo does), is exact.
        let bound = 0;
        eprintln!("{name}: max diff {max}, {n} of {} bytes differ", want.len());
        if max > bound {
            failures.push(format!("{name}: max diff {max} > {bound} ({n} bytes differ)"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

fn read_f32(p: &Path) -> Vec<f32> {
    read(p)
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn assert_bitwise_equal(got: &[f32], want: &[f32]) {
    let bad = got.iter().zip(want).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
    assert_eq!(bad, 0, "{bad} values differ from transformers");
}

#[test]
fn preprocessing_matches_transformers_bitwise() {
    let fx = fixtures();
    // transformers' SiglipImageProcessorPil, 40x48, mean = std = 0.5, on a PNG.
    let cfg = ImageProcessorConfig::load(fx.join("preprocess/preprocessor_config.json")).unwrap();
    assert_eq!(cfg.size, (40, 48));
    assert_eq!(cfg.image_seq_length, Some(16));
    let img = load_image(fx.join("decode/rgb.png")).unwrap();
    let t = preprocess_rgb(&img, &cfg).unwrap();
    assert_eq!(t.shape, vec![3, 40, 48]);
    let want = read_f32(&fx.join("preprocess/rgb.png.40x48.f32"));
    let got = t.as_f32().unwrap();
    assert_bitwise_equal(got, &want);

    // ImageNet mean/std on the PIL-decoded JPEG (decoded by PIL so that only the resize and
    // normalisation are compared).
    let cfg = ImageProcessorConfig {
        size: (33, 21),
        image_mean: [0.485, 0.456, 0.406],
        image_std: [0.229, 0.224, 0.225],
        ..Default::default()
    };
    let img = Rgb8Image::new(26, 19, read(&fx.join("decode/noise_q75.jpg.rgb"))).unwrap();
    let t = preprocess_rgb(&img, &cfg).unwrap();
    let want = read_f32(&fx.join("preprocess/noise_q75.jpg.33x21.imagenet.f32"));
    let got = t.as_f32().unwrap();
    assert_eq!(got.len(), want.len());
    assert_bitwise_equal(got, &want);
}

#[test]
fn unreadable_images_name_the_file() {
    let fx = fixtures();
    let e = load_image(fx.join("decode/does-not-exist.png"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("does-not-exist.png"), "{e}");
    // A truncated PNG.
    let png = read(&fx.join("decode/rgb.png"));
    let e = decode_image(&png[..png.len() / 2], "half.png").unwrap_err().to_string();
    assert!(e.contains("half.png"), "{e}");
    let jpg = read(&fx.join("decode/q90.jpg"));
    let e = decode_image(&jpg[..40], "cut.jpg").unwrap_err().to_string();
    assert!(e.contains("cut.jpg"), "{e}");
}
