//! `pinhole generate` / `pinhole caption` pick the BLIP-2 + Phi architecture from config.json
//! and reproduce the fixture's greedy ids; bad BLIP-2 folders give one clear error line.

#[allow(dead_code)] // each test binary uses a part of the shared helpers
mod common;

use common::{fixtures, ids};

#[test]
fn generate_and_caption_on_the_blip2_fixture() {
    let dir = fixtures().join("blip2-phi");
    let exp = common::expected(&dir);
    let want: Vec<u64> = ids(&exp["generated_ids"]);
    let model = dir.join("model");
    let image = fixtures().join("images").join(exp["image"].as_str().unwrap());
    let n = want.len().to_string();
    let prompt = exp["prompt"].as_str().unwrap();
    let v = common::generate_json(&model, &image, &["--prompt", prompt, "--max-new-tokens", &n]);
    assert_eq!(v["model_family"], "blip-2+phi");
    let got: Vec<u64> = ids(&v["token_ids"]);
    // The CLI decodes the PNG itself; PNG decoding and the resize are exact, so the ids match.
    assert_eq!(got, want, "CLI ids differ from transformers");

    let (code, stdout, stderr) = common::caption(&model, "4", &[&image, &image]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 2, "one caption per image: {stdout:?}");
    assert!(!stderr.contains("panicked"));
}

#[test]
fn bad_blip2_folder_is_one_clear_error() {
    let dir = common::scratch_copy(&fixtures().join("blip2-phi").join("model"), "blip2");
    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        cfg.replacen("\"num_hidden_layers\": 3", "\"num_hidden_layers\": 4", 1),
    )
    .unwrap();
    let image = fixtures().join("images/shapes_64.png");
    let (code, stdout, stderr) = common::run_model(&["generate"], &dir, &image, &[]);
    assert_ne!(code, 0);
    assert!(stdout.is_empty() && !stderr.contains("panicked"), "{stderr}");
    assert!(
        stderr.contains("qformer.encoder.layer.3") && stderr.contains("missing"),
        "{stderr}"
    );
}
