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
