//! PaliGemma / PaliGemma 2 against fixtures recorded with Hugging Face transformers
//! (tools/make_paligemma_fixtures.py): processor ids and pixels, vision tower, projector and
//! prefill logits within 1e-4 relative error with f32 weights, and greedy ids identical.

use pinhole_models::loader::WeightPrecision;

#[allow(dead_code)] // each test binary uses a part of the shared helpers
mod common;

fn check_fixture(name: &str) {
    check_fixture_on(name, None);
}

/// With `barrier_free`, the kernel family forced (the adapter's own otherwise): off runs the
/// GPU kernels (K-split GEMV, shared-memory GEMM, `attend_tiled`) on whatever adapter runs
/// the tests, so they are checked against transformers on llvmpipe too.
fn check_fixture_on(name: &str, barrier_free: Option<bool>) {
    let gpu = common::gpu();
    if let Some(on) = barrier_free {
        gpu.set_barrier_free_matmul(on);
    }
    let lm = common::load(&gpu, &common::fixtures().join(name).join("model"), WeightPrecision::F32);
    common::check_against_transformers(name, &gpu, &lm, &["vision_out", "projector_out", "prefill_logits"]);
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

#[test]
fn gpu_kernel_family_pg2_and_pg1_gqa() {
    check_fixture_on("pg2", Some(false));
    check_fixture_on("pg1-gqa", Some(false));
}

/// Relative error bounds of the f16-math fixture check (vision tower and projector; prefill
/// logits). The first is the f16-math kernel cases' tolerance (8·2^-11, derived in
/// pinhole-gpu's kernel_cases.rs; measured 8.4e-4 and 1.1e-3). The logits' is wider because
/// this fixture's random-weight decoder amplifies relative error ~27× from the image features
/// to the logits, as its f32 run shows too (vision 2.9e-7, logits 8.0e-6): 8.4e-4 became
/// 2.2e-2, and 5e-2 leaves ~2× room.
const F16_MATH_FEATURES_TOL: f64 = 8.0 / 2048.0;
const F16_MATH_LOGITS_TOL: f64 = 5e-2;

#[test]
fn f16_math_pg2_close_to_transformers_and_off_unchanged() {
    // PaliGemma 2 (Gemma 2: softcaps, sliding window) on the GPU kernel family with f16 math
    // on (every prefill and vision GEMM in f16, common/tile_f16.wgsl): the vision tower,
    // projector and prefill logits close to transformers' (bounds above). Turned off again,
    // the device gives bit for bit what it gave before it was turned on (the main-branch
    // f32 bits, checked by hand when this was added).
    let name = "pg2";
    let dir = common::fixtures().join(name);
    let gpu = common::gpu();
    gpu.set_barrier_free_matmul(false);
    if !gpu.has_shader_f16() {
        assert!(gpu.set_f16_math(true).is_err());
        eprintln!("the adapter has no shader-f16: f16 math not tested");
        return;
    }
    let lm = common::load(&gpu, &dir.join("model"), WeightPrecision::F32);
    let exp = common::expected_json(&dir);
    let prompt = exp["prompt"].as_str().unwrap();
    let px = common::expected_tensor(&dir, "pixel_values");
    let n = common::ids(&exp, "generated_ids").len();
    let run = || common::generate_recorded(&gpu, &lm, &px, prompt, n);
    let bits = |g: &pinhole_models::Generation| {
        let mut v: Vec<u32> = g
            .vision_out
            .as_ref()
            .unwrap()
            .as_f32()
            .unwrap()
            .iter()
            .map(|x| x.to_bits())
            .collect();
        for l in &g.logits {
            v.extend(l.as_f32().unwrap().iter().map(|x| x.to_bits()));
        }
        v
    };
    let before = run();
    gpu.set_f16_math(true).unwrap();
    let f16 = run();
    gpu.set_f16_math(false).unwrap();
    let after = run();
    assert_eq!(bits(&before), bits(&after), "f16 math off is not the f32 path it was");
    assert_ne!(bits(&before), bits(&f16), "f16 math on changed nothing");
    for (key, got) in [
        ("vision_out", f16.vision_out.as_ref()),
        ("projector_out", f16.projector_out.as_ref()),
        ("prefill_logits", f16.logits.first()),
    ] {
        let want = common::expected_tensor(&dir, key);
        let got = got.unwrap();
        let e = pinhole_core::tensor::rel_error(got.as_f32().unwrap(), want.as_f32().unwrap());
        let e32 = pinhole_core::tensor::rel_error(
            match key {
                "vision_out" => before.vision_out.as_ref(),
                "projector_out" => before.projector_out.as_ref(),
                _ => before.logits.first(),
            }
            .unwrap()
            .as_f32()
            .unwrap(),
            want.as_f32().unwrap(),
        );
        eprintln!("{name} f16 math: {key} relative error {e:.2e} (f32: {e32:.2e})");
        let tol = if key == "prefill_logits" {
            F16_MATH_LOGITS_TOL
        } else {
            F16_MATH_FEATURES_TOL
        };
        assert!(e <= tol, "{name}: {key} relative error {e:e} > {tol:e}");
    }
    // Greedy ids: the prefill's must be transformers' first; the rest are reported (all 16 on
    // llvmpipe), not required, since f16 rounding may flip a near tie on another adapter.
    let want_ids = common::ids(&exp, "generated_ids");
    let same = f16.token_ids.iter().zip(&want_ids).take_while(|(a, b)| a == b).count();
    eprintln!(
        "{name} f16 math: {same} of {} greedy ids as transformers",
        want_ids.len()
    );
    assert!(same >= 1, "{name}: f16 math changed the first greedy token");
}
