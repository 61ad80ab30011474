//! BLIP-2 + Phi (TinyGPT-V class) against fixtures recorded with Hugging Face transformers
//! (tools/make_blip2_phi_fixtures.py) and against the converted synthetic TinyGPT-V checkpoint
//! (tools/convert_tinygpt_v.py --selftest, whose reference is the original-layout forward):
//! processor ids and pixels, vision, Q-Former, projection and prefill logits within 1e-4
//! relative error with f32 weights, and greedy ids identical.

use std::path::{Path, PathBuf};

use pinhole_core::tensor::rel_error;
use pinhole_models::blip2::Blip2Phi;
use pinhole_models::loader::{load_dir, LoadOptions, WeightPrecision};

#[allow(dead_code)] // each test binary uses a part of the shared helpers
mod common;
use common::{expected_tensor, fixtures};

fn check_fixture(name: &str) {
    let dir = fixtures().join(name);
    let gpu = common::gpu();
    let lm = common::load(&gpu, &dir.join("model"), WeightPrecision::F32);
    assert!(
        lm.model.downcast_ref::<Blip2Phi>().is_some(),
        "{name}: picked {}",
        lm.model.family()
    );
    let keys = ["vision_out", "qformer_out", "projector_out", "prefill_logits"];
    let (g, _) = common::check_against_transformers(name, &gpu, &lm, &keys);
    // Each decode step's logits too (row 0 of generated_logits is the prefill's last row).
    let want_steps = expected_tensor(&dir, "generated_logits");
    let v = want_steps.shape[1];
    let steps = want_steps.as_f32().unwrap();
    for (i, got) in g.logits.iter().skip(1).enumerate() {
        let e = rel_error(got.as_f32().unwrap(), &steps[(i + 1) * v..(i + 2) * v]);
        assert!(e <= 1e-4, "{name}: step {} logits relative error {e:e}", i + 1);
    }
    assert!(!g.stopped_on_eos);
}

#[test]
fn blip2_phi_gqa_partial_rotary() {
    check_fixture("blip2-phi");
}

#[test]
fn blip2_phi_qk_layernorm_bos() {
    check_fixture("blip2-phi-qkln");
}

#[test]
fn tinygpt_v_converted_synthetic_checkpoint() {
    check_fixture("tinygpt-v-synth");
}

/// A scratch copy of a fixture model whose config.json a test rewrites.
fn scratch_with_config(fixture: &str, tag: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    let src = fixtures().join(fixture).join("model");
    let dir = std::env::temp_dir().join(format!("pinhole-blip2-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    let cfg = std::fs::read_to_string(dir.join("config.json")).unwrap();
    let new = edit(&cfg);
    assert_ne!(new, cfg, "{tag}: the edit changed nothing");
    std::fs::write(dir.join("config.json"), new).unwrap();
    dir
}

#[test]
fn bad_checkpoints_name_the_tensor() {
    let gpu = common::gpu();
    let load = |dir: &Path| match load_dir(&gpu, dir, &LoadOptions::default(), |_, _| {}) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    };
    // The load error of blip2-phi with `from` replaced by `to` in its config.json.
    let load_edited =
        |tag: &str, from: &str, to: &str| load(&scratch_with_config("blip2-phi", tag, |c| c.replacen(from, to, 1)));
    // Q/K LayerNorm switched on: its weights are not in the checkpoint.
    let e = load_edited("qkln", "\"qk_layernorm\": false", "\"qk_layernorm\": true");
    assert!(
        e.contains("text.layers.0.self_attn.q_layernorm.weight") && e.contains("missing"),
        "{e}"
    );
    assert!(
        e.contains("language_model.model.layers.0.self_attn.q_layernorm.weight"),
        "{e}"
    );
    // A second projection layer (TinyGPT-V) that this checkpoint lacks: the first projection
    // then has the wrong output width.
    let e = load_edited(
        "proj2",
        "\"model_type\": \"blip-2\"",
        "\"model_type\": \"blip-2\", \"pinhole_projection_hidden\": 40",
    );
    assert!(
        e.contains("language_projection.weight") && e.contains("config.json implies [40, 32]"),
        "{e}"
    );
    // Shapes that disagree with config.json: the text MLP and the fused vision qkv.
    let e = load_edited("fc1", "\"intermediate_size\": 96", "\"intermediate_size\": 97");
    assert!(
        e.contains("language_model.model.layers.0.mlp.fc1") && e.contains("config.json implies"),
        "{e}"
    );
    // Vision width 32 → 16 changes every vision shape; the first checked is the patch embedding.
    let e = load_edited(
        "vision-heads",
        "\"hidden_size\": 32,\n    \"image_size\"",
        "\"hidden_size\": 16,\n    \"image_size\"",
    );
    assert!(e.contains("vision_model.embeddings") && e.contains("shape"), "{e}");
    // A text model pinhole does not run.
    let e = load_edited("opt", "\"model_type\": \"phi\"", "\"model_type\": \"opt\"");
    assert!(e.contains("`opt`") && e.contains("config.json"), "{e}");
}

#[test]
fn f16_weights_stay_close() {
    // Matrix weights (including the q/k/v rows cut from the fused vision qkv) stored as f16;
    // norms, biases, embeddings of positions / class token / queries stay f32.
    let dir = fixtures().join("blip2-phi-qkln");
    let exp = common::expected_json(&dir);
    let gpu = common::gpu();
    let lm = common::load(&gpu, &dir.join("model"), WeightPrecision::F16);
    let px = expected_tensor(&dir, "pixel_values");
    let g = common::generate_recorded(&gpu, &lm, &px, exp["prompt"].as_str().unwrap(), 1);
    let want = expected_tensor(&dir, "prefill_logits");
    let e = rel_error(g.logits[0].as_f32().unwrap(), want.as_f32().unwrap());
    eprintln!("blip2-phi-qkln f16 weights: prefill logits relative error {e:.2e}");
    assert!(e > 0.0 && e <= 1e-2, "f16 prefill logits relative error {e:e}");
}
