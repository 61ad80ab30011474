//! The shared kernel cases (`pinhole_gpu::kernel_cases`, the ones the browser runs under
//! WebGPU) on the native adapter, at its own binding limit and with the limit lowered to 4 KiB
//! (with the other matmul family, and with the other GEMV row reduction: see common::gpus).

mod common;

use pinhole_gpu::kernel_cases::{all_cases, run_all, Outcome};

/// Fails naming every case that did not pass (with the binding limit it ran at).
fn assert_passed(out: &[Outcome], what: &str) {
    let failed: Vec<String> = out
        .iter()
        .filter(|o| !o.passed)
        .map(|o| format!("{} (limit {}): {}", o.name, o.binding_limit, o.message))
        .collect();
    assert!(failed.is_empty(), "{what}failed:\n{}", failed.join("\n"));
}

#[test]
fn shared_kernel_cases_pass_natively() {
    let gpus = common::gpus();
    let n_cases = all_cases().len();
    assert!(n_cases >= 60, "only {n_cases} cases");
    let out = pollster::block_on(run_all(&gpus, None));
    assert_eq!(out.len(), n_cases * gpus.len(), "every case ran on every device");
    assert_passed(&out, "");
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

#[test]
fn fusion_changes_no_bit() {
    // Every case whose graph has a fusable matmul (the fused cases, the composed decoder
    // block, the KV-cache writes) gives the same bits with the executor's epilogue fusion on and off, on both
    // devices (GPU and CPU-adapter kernel families, split weights).
    let gpus = common::gpus();
    let cases: Vec<_> = all_cases()
        .into_iter()
        .filter(|c| c.name.starts_with("fused") || c.name.starts_with("composed") || c.name.starts_with("cache"))
        .collect();
    assert!(cases.len() >= 40, "only {} cases", cases.len());
    for gpu in &gpus {
        for c in &cases {
            let on = pollster::block_on(c.gpu_fused(gpu, true)).unwrap();
            let off = pollster::block_on(c.gpu_fused(gpu, false)).unwrap();
            for (a, b) in on.iter().zip(&off) {
                let bits = |t: &pinhole_core::Tensor| match t.as_f32() {
                    Ok(v) => v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    Err(_) => t.as_u32().unwrap().to_vec(),
                };
                assert_eq!(
                    bits(a),
                    bits(b),
                    "{} (limit {})",
                    c.name,
                    gpu.limits.max_storage_buffer_binding_size
                );
            }
        }
    }
}

#[test]
fn fusion_saves_a_dispatch_per_fused_pair() {
    // The composed decoder block has three fusable pairs: o-projection + residual add,
    // up-projection + gated activation, down-projection + residual add. The cache-write case
    // two: RoPE of K + its cache write, V projection + its cache write. Reading a state's rows
    // before writing them forbids the fusion.
    let gpus = common::gpus();
    for (name, saved) in [
        ("composed decoder block", 3),
        ("fused cache write s=5 f16=true", 2),
        ("cache read before its write (not fused)", 0),
    ] {
        let case = all_cases().into_iter().find(|c| c.name == name).unwrap();
        let mut store = pinhole_gpu::WeightStore::new();
        for (n, t) in &case.weights {
            store.upload(&gpus[0], n, t).unwrap();
        }
        let count = |fuse: bool| {
            let mut ex = pinhole_gpu::Executor::new(gpus[0].clone());
            ex.fuse = fuse;
            pollster::block_on(ex.run(&case.graph, &store, &case.inputs)).unwrap();
            ex.stats.dispatches
        };
        assert_eq!(count(false) - count(true), saved, "{name}");
    }
}

#[test]
fn attention_cases_pass_with_each_kernel_forced() {
    // The rule sends each shape to one kernel per adapter kind; forced, every kernel runs
    // every attention case it supports (`attend` at S ≥ 16 would otherwise only run for
    // head_dim > 256 on GPUs), checked against the CPU reference.
    use pinhole_gpu::kernels::Kernel;
    for k in [Kernel::Attention, Kernel::AttentionRows, Kernel::AttentionTiled] {
        let gpu = common::fresh_gpu();
        gpu.set_attention_kernel(Some(k));
        let out = pollster::block_on(run_all(&[gpu], Some("attention s=")));
        assert!(out.len() >= 20, "{k:?}: only {} cases", out.len());
        assert_passed(&out, &format!("{k:?}: "));
    }
}

#[test]
fn f16_math_gemm_cases_pass() {
    // The "f16 math" cases (f32, f16 and 4-bit weights, bias, every fused epilogue, odd sizes)
    // on the f16-math tiled GEMM, unsplit and with weights split by rows across bindings,
    // within F16_MATH_TOL of the CPU reference (kernel_cases.rs derives it from f16 rounding).
    use pinhole_gpu::kernel_cases::F16_MATH_TOL;
    let Some(gpus) = common::f16_math_gpus() else {
        eprintln!("the adapter has no shader-f16: f16 math not tested (set_f16_math's error was)");
        return;
    };
    let out = pollster::block_on(run_all(&gpus, Some("f16 math")));
    assert!(out.len() >= 2 * 40, "only {} runs", out.len());
    assert_passed(&out, "");
    // The variant really ran: every case is off by f16 rounding, far above the f32 GEMM's
    // ~1e-7, and the worst case is what the tolerance was derived for.
    for o in &out {
        assert!(
            o.max_rel_error > 1e-5,
            "{} (limit {}): {:e}, f32 arithmetic?",
            o.name,
            o.binding_limit,
            o.max_rel_error
        );
    }
    let worst = out.iter().map(|o| o.max_rel_error).fold(0.0, f64::max);
    eprintln!("f16 math: worst relative error {worst:.2e} (tolerance {F16_MATH_TOL:.2e})");
    // The epilogue stays f32 and in the same order: fusing changes no bit here either.
    for c in all_cases().iter().filter(|c| c.name.starts_with("f16 math fused")) {
        for gpu in &gpus {
            let on = pollster::block_on(c.gpu_fused(gpu, true)).unwrap();
            let off = pollster::block_on(c.gpu_fused(gpu, false)).unwrap();
            let bits = |t: &pinhole_core::Tensor| t.as_f32().unwrap().iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&on[0]), bits(&off[0]), "{}", c.name);
        }
    }
    // Off again: the f32 GEMM, bit for bit what a device that never had f16 math computes.
    let plain = common::fresh_gpu();
    plain.set_barrier_free_matmul(false);
    for gpu in &gpus {
        gpu.set_f16_math(false).unwrap();
    }
    for c in all_cases()
        .iter()
        .filter(|c| c.name.starts_with("f16 math q4 matmul 33"))
    {
        let a = pollster::block_on(c.gpu(&gpus[0])).unwrap();
        let b = pollster::block_on(c.gpu(&plain)).unwrap();
        assert_eq!(a[0].as_f32().unwrap(), b[0].as_f32().unwrap(), "{}", c.name);
    }
}
