//! The photo corpus (tests/fixtures/photos, made by tools/make_jpeg_corpus.py with Pillow):
//! every file decodes to exactly the pixels transformers' PIL path sees
//! (`convert_to_rgb(ImageOps.exif_transpose(Image.open(f)))`), or fails as Pillow does.

use std::path::{Path, PathBuf};

use pinhole_core::hf::image::decode_image;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/photos")
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", p.display()))
}

struct Entry {
    file: String,
    expected: Option<(String, usize, usize)>,
    error: Option<String>,
}

fn manifest() -> Vec<Entry> {
    let m: serde_json::Value = serde_json::from_slice(&read(&corpus().join("manifest.json"))).unwrap();
    m["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| Entry {
            file: e["file"].as_str().unwrap().to_string(),
            expected: e["expected"].as_str().map(|p| {
                (
                    p.to_string(),
                    e["width"].as_u64().unwrap() as usize,
                    e["height"].as_u64().unwrap() as usize,
                )
            }),
            error: e["error"].as_str().map(str::to_string),
        })
        .collect()
}

/// The expected pixels, stored as an RGB PNG (lossless; decoded here by the `image` crate
/// directly so the comparison does not go through the code under test).
fn expected_rgb(rel: &str) -> Vec<u8> {
    image::load_from_memory_with_format(&read(&corpus().join(rel)), image::ImageFormat::Png)
        .unwrap()
        .to_rgb8()
        .into_raw()
}

/// Files pinhole does not decode although Pillow does, each with the reason (checked: the
/// error must say it).
const NOT_SUPPORTED: &[(&str, &str)] = &[("cjpeg/arith.jpg", "arithmetic")];

#[test]
fn corpus_decodes_exactly_as_pillow() {
    let entries = manifest();
    assert!(
        entries.len() >= 70,
        "expected the photo corpus, found {} files",
        entries.len()
    );
    let (mut identical, mut compared) = (0, 0);
    let mut failures = Vec::new();
    for e in &entries {
        let bytes = read(&corpus().join(&e.file));
        let got = decode_image(&bytes, &e.file);
        if let Some((_, why)) = NOT_SUPPORTED.iter().find(|(f, _)| *f == e.file) {
            match got {
                Err(err) if err.to_string().contains(why) && err.to_string().contains(&e.file) => {}
                other => failures.push(format!("{}: expected an error saying {why:?}, got {other:?}", e.file)),
            }
            continue;
        }
        match (&e.expected, got) {
            (Some((rel, w, h)), Ok(img)) => {
                compared += 1;
                if (img.width, img.height) != (*w, *h) {
                    failures.push(format!("{}: {}x{} instead of {w}x{h}", e.file, img.width, img.height));
                    continue;
                }
                let want = expected_rgb(rel);
                let (mut max, mut n) = (0u8, 0usize);
                for (a, b) in img.data.iter().zip(&want) {
                    max = max.max(a.abs_diff(*b));
                    n += (a != b) as usize;
                }
                if n == 0 {
                    identical += 1;
                } else {
                    failures.push(format!("{}: {n} of {} bytes differ, max {max}", e.file, want.len()));
                }
            }
            (Some(_), Err(err)) => failures.push(format!("{}: Pillow decodes it, pinhole says {err}", e.file)),
            (None, Ok(_)) => failures.push(format!(
                "{}: Pillow fails ({}), pinhole decodes it",
                e.file,
                e.error.as_deref().unwrap_or("?")
            )),
            (None, Err(err)) => {
                let msg = err.to_string();
                if !msg.contains(&e.file) {
                    failures.push(format!("{}: the error does not name the file: {msg}", e.file));
                }
            }
        }
    }
    eprintln!("{identical} of {compared} decoded files identical to Pillow");
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn orientation_can_be_left_unapplied() {
    use pinhole_core::hf::image::{decode_image_with, DecodeOptions};
    let raw = DecodeOptions {
        apply_orientation: false,
    };
    for ext in ["jpg", "png"] {
        let stored = |o: u32| {
            let name = format!("exif_orient{o}.{ext}");
            decode_image_with(&read(&corpus().join(&name)), &name, raw).unwrap()
        };
        // The 8 files hold the same stored pixels; only the tag differs.
        let first = stored(1);
        assert_eq!((first.width, first.height), (24, 16));
        for o in 2..=8 {
            let img = stored(o);
            assert_eq!(img, first, "exif_orient{o}.{ext} without orientation");
            let upright = decode_image(&read(&corpus().join(format!("exif_orient{o}.{ext}"))), "x").unwrap();
            assert_ne!(upright, first, "exif_orient{o}.{ext} with orientation");
        }
    }
}
