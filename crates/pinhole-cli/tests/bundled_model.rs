//! The bundled model (`models/pinhole-shapes`): `pinhole caption --model models/pinhole-shapes`
//! answers the example scenes exactly as transformers does (and as the scene generator says);
//! without `--model`, the 4-bit copy compiled into the binary answers the captions and counts
//! the same, also from a copy of the binary alone in an empty folder.
//!
//! The examples and their answers are written by `tools/eval_shapes.py --write-examples`, which
//! keeps only scenes where transformers' greedy answers equal the ground truth for all three
//! tasks, so a failure here is pinhole's, not the model's.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

#[allow(dead_code)] // each test binary uses a part of the shared helpers
mod common;

use common::{pinhole, repo};

fn examples() -> PathBuf {
    repo().join("models/pinhole-shapes/examples")
}

/// image file -> [(prompt, answer)]
fn expected() -> BTreeMap<String, Vec<(String, String)>> {
    let text = std::fs::read_to_string(examples().join("expected.json")).expect("examples/expected.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("expected.json is JSON");
    let mut out = BTreeMap::new();
    for (image, items) in v.as_object().expect("an object") {
        let list = items
            .as_array()
            .expect("a list per image")
            .iter()
            .map(|it| {
                (
                    it["prompt"].as_str().unwrap().to_string(),
                    it["answer"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        out.insert(image.clone(), list);
    }
    out
}

#[test]
fn caption_count_and_detect_match_transformers_on_the_example_scenes() {
    let exp = expected();
    assert!(exp.len() >= 4, "at least 4 example scenes");
    // Group by prompt: one process per prompt, every image on its command line (f32: the
    // 4-bit copy compiled into the binary moves boxes by a bin or two).
    let mut by_prompt: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for (image, items) in &exp {
        for (prompt, answer) in items {
            by_prompt
                .entry(prompt.clone())
                .or_default()
                .push((examples().join(image).display().to_string(), answer.clone()));
        }
    }
    let mut checked = 0;
    for (prompt, items) in &by_prompt {
        let mut args = vec![
            "caption",
            "--model",
            "models/pinhole-shapes",
            "--prompt",
            prompt.as_str(),
            "--max-new-tokens",
            "48",
        ];
        args.extend(items.iter().map(|(p, _)| p.as_str()));
        let stdout = pinhole(&args);
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(lines.len(), items.len(), "one line per image for {prompt:?}: {stdout}");
        for ((image, want), got) in items.iter().zip(lines) {
            assert_eq!(got.trim(), want, "{prompt:?} on {image}");
            checked += 1;
        }
    }
    assert_eq!(checked, exp.values().map(Vec::len).sum::<usize>());
}

#[test]
fn detect_boxes_come_back_parsed_in_json() {
    let exp = expected();
    let (image, answer) = exp
        .iter()
        .find_map(|(img, items)| {
            items
                .iter()
                .find(|(p, a)| p.starts_with("detect") && a.contains("<loc"))
                .map(|(_, a)| (img.clone(), a.clone()))
        })
        .expect("an example with a box");
    let prompt = exp[&image]
        .iter()
        .find(|(_, a)| *a == answer)
        .map(|(p, _)| p.clone())
        .unwrap();
    let img = examples().join(&image).display().to_string();
    let out = pinhole(&[
        "generate",
        "--image",
        &img,
        "--prompt",
        &prompt,
        "--json",
        "--max-new-tokens",
        "48",
    ]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("one JSON line");
    let boxes = v["boxes"].as_array().expect("boxes");
    let want = answer.matches(';').count() + 1;
    assert_eq!(boxes.len(), want, "{out}");
    let label = prompt.trim_start_matches("detect ");
    for b in boxes {
        assert_eq!(b["label"], label);
        let (y0, y1) = (b["y_min"].as_f64().unwrap(), b["y_max"].as_f64().unwrap());
        let (x0, x1) = (b["x_min"].as_f64().unwrap(), b["x_max"].as_f64().unwrap());
        assert!(y0 < y1 && x0 < x1, "a proper box: {b}");
    }
}

/// A copy of the binary alone in an empty folder (as after `cargo install`, or copied to another
/// machine) captions and counts with the 4-bit model compiled into it, as transformers answers
/// with the f32 model.
#[test]
fn a_copied_binary_answers_with_the_embedded_model() {
    let dir = std::env::temp_dir().join(format!("pinhole-copied-binary-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let bin = dir.join("pinhole");
    std::fs::copy(env!("CARGO_BIN_EXE_pinhole"), &bin).expect("copy the binary");
    let exp = expected();
    for task in ["caption en", "answer en how many"] {
        let mut args = vec!["caption".to_string()];
        let mut want = Vec::new();
        let mut prompt = None;
        for (image, items) in &exp {
            for (p, a) in items {
                // Captions of every scene; counting questions for one shape (one prompt per run).
                if p.starts_with(task) && prompt.as_ref().is_none_or(|q| q == p) {
                    prompt = Some(p.clone());
                    std::fs::copy(examples().join(image), dir.join(image)).expect("copy an example");
                    args.push(image.clone());
                    want.push(a.clone());
                }
            }
        }
        let prompt = prompt.expect("a prompt of this task");
        args.splice(1..1, ["--prompt".to_string(), prompt.clone()]);
        let out = Command::new(&bin)
            .args(&args)
            .current_dir(&dir)
            .env("XDG_RUNTIME_DIR", "/tmp")
            .output()
            .expect("run the copied binary");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).expect("utf-8");
        let got: Vec<&str> = stdout.lines().map(str::trim).collect();
        assert_eq!(got, want, "{prompt:?} on {:?}", &args[3..]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
