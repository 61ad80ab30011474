//! The shared kernel cases (`pinhole_gpu::kernel_cases`, the ones the browser runs under
//! WebGPU) on the native adapter, at its own binding limit and with the limit lowered to 4 KiB.

mod common;

use pinhole_gpu::kernel_cases::{all_cases, run_all};

#[test]
fn shared_kernel_cases_pass_natively() {
    let gpus = common::gpus();
    let n_cases = all_cases().len();
    assert!(n_cases >= 60, "only {n_cases} cases");
    let out = pollster::block_on(run_all(&gpus, None));
    assert_eq!(out.len(), n_cases * gpus.len(), "every case ran on both devices");
    let failed: Vec<String> = out
        .iter()
        .filter(|o| !o.passed)
        .map(|o| format!("{} (limit {}): {}", o.name, o.binding_limit, o.message))
        .collect();
    assert!(failed.is_empty(), "failed:\n{}", failed.join("\n"));
    assert!(out.iter().any(|o| o.binding_limit == common::LOW_LIMIT));
}

#[test]
fn a_wrong_result_fails() {
    // The comparison must be able to fail: perturb one reference value of a matmul case.
    let gpus = common::gpus();
    let case = all_cases()
        .into_iter()
        .find(|c| c.name.starts_with("matmul 7x257x33"))
        .unwrap();
    let mut want = case.cpu().unwrap();
    let v = want[0].as_f32().unwrap().to_vec();
    let mut bad = v.clone();
    bad[5] += 1.0;
    want[0] = pinhole_core::Tensor::f32(&want[0].shape, bad).unwrap();
    let o = pollster::block_on(pinhole_gpu::kernel_cases::check_with(&case, &want, &gpus[0]));
    assert!(!o.passed, "a perturbed reference passed");
}
