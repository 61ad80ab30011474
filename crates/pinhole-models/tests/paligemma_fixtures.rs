//! PaliGemma / PaliGemma 2 against fixtures recorded with Hugging Face transformers
//! (tools/make_paligemma_fixtures.py): processor ids and pixels, vision tower, projector and
//! prefill logits within 1e-4 relative error with f32 weights, and greedy ids identical.

use pinhole_core::tensor::rel_error;
use pinhole_gpu::{Executor, GpuOptions};
use pinhole_models::generate::generate;
use pinhole_models::loader::{load_dir, LoadOptions, WeightPrecision};
use pinhole_models::{processor, GenerateOptions};

#[allow(dead_code)] // each test binary uses a part of the shared helpers
mod common;
use common::{expected_tensor, fixtures, ids};

fn check_fixture(name: &str) {
    let dir = fixtures().join(name);
    let exp: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let gpu = pinhole_gpu::open_blocking(&GpuOptions::from_env()).expect("GPU adapter (llvmpipe in CI)");
    let lm = load_dir(
        &gpu,
        dir.join("model"),
        &LoadOptions {
            precision: WeightPrecision::F32,
        },
        |_, _| {},
    )
    .expect("load");

    // Processor: ids exactly, pixels close (PIL-exact resize is tested in pinhole-core).
    let prompt = exp["prompt"].as_str().unwrap();
    let want_ids = ids(&exp, "input_ids");
    assert_eq!(
        processor::prompt_ids(&lm.model, &lm.tokenizer, prompt).unwrap(),
        want_ids,
        "{name}: input ids"
    );
    let img = std::fs::read(fixtures().join("images").join(exp["image"].as_str().unwrap())).unwrap();
    let px = processor::pixels(&lm.model, &img, "fixture image").unwrap();
    let want_px = expected_tensor(&dir, "pixel_values");
    let px_err = px
        .as_f32()
        .unwrap()
        .iter()
        .zip(want_px.as_f32().unwrap())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    // Every format, JPEG included, decodes bit-exactly like Pillow and the resize is
    // PIL-exact, so pixels match to float rounding.
    let bound = 1e-5;
    assert!(
        px_err <= bound,
        "{name}: pixel values differ by up to {px_err} (bound {bound})"
    );

    // Model: run on transformers' own pixel values so model error is measured alone.
    let mut ex = Executor::new(gpu.clone());
    let want_gen = ids(&exp, "generated_ids");
    let opts = GenerateOptions {
        max_new_tokens: want_gen.len(),
        record_logits: true,
        sampling: None,
    };
    let g = pollster::block_on(generate(&lm, &mut ex, &want_px, prompt, &opts, |_, _| {})).expect("generate");
    for (key, got) in [
        ("vision_out", g.vision_out.as_ref()),
        ("projector_out", g.projector_out.as_ref()),
        ("prefill_logits", g.logits.first()),
    ] {
        let want = expected_tensor(&dir, key);
        let got = got.unwrap_or_else(|| panic!("{key} not recorded"));
        assert_eq!(got.shape, want.shape, "{name}: {key} shape");
        let e = rel_error(got.as_f32().unwrap(), want.as_f32().unwrap());
        eprintln!("{name}: {key} relative error {e:.2e}");
        assert!(e <= 1e-4, "{name}: {key} relative error {e:e} > 1e-4");
    }
    assert!(want_gen.len() >= 10);
    assert_eq!(g.token_ids, want_gen, "{name}: greedy ids differ from transformers");
}

#[test]
fn pg1_mqa() {
    check_fixture("pg1-mqa");
}

#[test]
fn pg1_gqa() {
    check_fixture("pg1-gqa");
}

#[test]
fn pg2_gemma2_softcap_sliding_window() {
    check_fixture("pg2");
}

#[test]
fn pg1_bf16_sharded() {
    check_fixture("pg1-bf16-sharded");
}
