//! EXIF orientation end to end: a bundled-model example scene stored a quarter turn
//! counter-clockwise with EXIF orientation 6 (tools/make_jpeg_corpus.py) is turned upright
//! before captioning, as transformers' `load_image` does, so `detect` finds the same boxes as
//! on the upright scene; `--no-exif-orientation` captions the stored pixels instead.

#[allow(dead_code)] // each test binary uses a part of the shared helpers
mod common;

use common::{pinhole, repo};

#[test]
fn exif_rotated_photo_is_captioned_upright_unless_told_not_to() {
    let text = std::fs::read_to_string(repo().join("models/pinhole-shapes/examples/expected.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let item = v["scene_00001.png"]
        .as_array()
        .unwrap()
        .iter()
        .find(|it| it["prompt"].as_str().unwrap().starts_with("detect"))
        .expect("a detect prompt for scene_00001");
    let (prompt, want) = (item["prompt"].as_str().unwrap(), item["answer"].as_str().unwrap());
    let rotated = repo()
        .join("crates/pinhole-core/tests/fixtures/photos/scene_00001_orient6.png")
        .display()
        .to_string();
    // The f32 model: expected.json holds its answers (the embedded 4-bit default can move a box by a bin).
    let model = repo().join("models/pinhole-shapes").display().to_string();
    let out = pinhole(&[
        "caption",
        "--model",
        &model,
        "--prompt",
        prompt,
        "--max-new-tokens",
        "48",
        &rotated,
    ]);
    assert_eq!(out.trim(), want, "upright by EXIF orientation 6");
    let raw = pinhole(&[
        "caption",
        "--model",
        &model,
        "--no-exif-orientation",
        "--prompt",
        prompt,
        "--max-new-tokens",
        "48",
        &rotated,
    ]);
    assert_ne!(raw.trim(), want, "--no-exif-orientation must leave the scene turned");
}
