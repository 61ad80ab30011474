//! `pinhole generate --json` on the SmolVLM / Idefics3 fixtures: the question goes through
//! the folder's chat template, the image is split into tiles, and the greedy ids equal
//! transformers' (tests/fixtures/*/expected.json); `--raw-prompt` without `<image>` and a
//! prompt longer than the context are one clear error line.

#[allow(dead_code)] // each test binary uses a part of the shared helpers
mod common;

use common::{fixtures, ids};

#[test]
fn generate_json_equals_transformers() {
    // The fixtures' single-turn cases whose question is the text after the image.
    for (variant, case) in [("smolvlm", "describe"), ("idefics3", "describe")] {
        let dir = fixtures().join(variant);
        let exp = common::expected(&dir);
        let e = &exp["cases"][case];
        let want: Vec<u64> = ids(&e["generated_ids"]);
        let question = e["messages"][0]["content"][1]["text"].as_str().unwrap();
        let model = dir.join("model");
        let image = fixtures().join("images").join(e["image"].as_str().unwrap());
        let n = want.len().to_string();
        let v = common::generate_json(&model, &image, &["--prompt", question, "--max-new-tokens", &n]);
        assert_eq!(v["model_family"], "smolvlm");
        let got: Vec<u64> = ids(&v["token_ids"]);
        assert_eq!(got, want, "{variant}/{case}");
        let ids: Vec<u64> = ids(&v["prompt_ids"]);
        let want_ids: Vec<u64> = common::ids(&e["input_ids"]);
        assert_eq!(ids, want_ids, "{variant}/{case}: prompt ids");
    }
}

#[test]
fn raw_prompt_and_context_errors() {
    let model = fixtures().join("smolvlm/model");
    let image = fixtures().join("images/shapes_50x37.png");
    let (code, _, stderr) = common::run_model(
        &["generate"],
        &model,
        &image,
        &["--raw-prompt", "--prompt", "no placeholder"],
    );
    assert_ne!(code, 0);
    assert!(
        stderr.contains("<image>") && stderr.trim().lines().count() == 1,
        "{stderr}"
    );
    // 83 prompt positions + 500 new tokens > max_position_embeddings 512.
    let (code, _, stderr) = common::run_model(&["generate"], &model, &image, &["--max-new-tokens", "500"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("512") && stderr.trim().lines().count() == 1, "{stderr}");
}

#[test]
fn bench_model_runs_smolvlm_tiles() {
    // `pinhole bench model` on a SmolVLM folder: the image becomes its tiles, the question goes
    // through the chat template, and the greedy ids are transformers' (the describe case).
    let dir = fixtures().join("smolvlm");
    let exp = common::expected(&dir);
    let e = &exp["cases"]["describe"];
    let model = dir.join("model");
    let image = fixtures().join("images").join(e["image"].as_str().unwrap());
    let extra = ["--runs", "1", "--max-new-tokens", "4", "--copy-mb", "1", "--json"];
    let (code, stdout, stderr) = common::run_model(&["bench", "model"], &model, &image, &extra);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["model_family"], "smolvlm");
    assert_eq!(v["image_tiles"], e["tiles"]);
    assert_eq!(v["prompt"], e["prompt_text"]);
    assert_eq!(
        v["token_ids"],
        serde_json::json!(e["generated_ids"].as_array().unwrap()[..4])
    );
}
