//! Native-only kernel and executor checks. The per-kernel cases (every kernel against the CPU
//! reference on seeded random data, odd sizes, f32 and f16 weights, NaN-poisoned outputs, and a
//! second device whose per-binding limit is lowered to 4 KiB) live in
//! `pinhole_gpu::kernel_cases`, shared with the browser, and run natively in tests/kernel_cases.rs.
//! Here: f16 storage error against the unrounded weights, argmax tie rules of the reference,
//! state that persists across runs, buffer reuse and one submit per run, real weight splitting
//! under the lowered limit.

mod common;

use common::{gpus, Case};
use pinhole_core::rng::Rng;
use pinhole_core::tensor::rel_error;
use pinhole_core::{DType, Tensor};

fn randt(rng: &mut Rng, shape: &[usize], scale: f32) -> Tensor {
    let n = shape.iter().product();
    Tensor::f32(shape, rng.vec(n, -scale, scale)).unwrap()
}

fn weight(rng: &mut Rng, shape: &[usize], f16: bool) -> Tensor {
    let n = shape.iter().product();
    let v = rng.vec(n, -1.0, 1.0);
    if f16 {
        Tensor::f16(shape, v).unwrap()
    } else {
        Tensor::f32(shape, v).unwrap()
    }
}

#[test]
fn matmul_f16_weights_close_to_f32_original() {
    // The f16 path against the unrounded f32 weights: the error budget of storing in f16.
    let mut rng = Rng::new(2);
    let (m, n, k) = (9, 130, 300);
    let xv = randt(&mut rng, &[m, k], 1.0);
    let wv = rng.vec(n * k, -1.0, 1.0);
    let want = pinhole_core::reference::matmul(xv.as_f32().unwrap(), &wv, None, m, n, k);
    let mut c = Case::new();
    let x = c.input("x", xv);
    let w = c.weight("w", Tensor::f16(&[n, k], wv).unwrap());
    let y = c.graph.matmul(x, w, None).unwrap();
    c.graph.output(y);
    for gpu in gpus() {
        let got = c.gpu_on(&gpu);
        let e = rel_error(got[0].as_f32().unwrap(), &want);
        assert!(e <= 3e-3, "f16 weights vs f32: {e}");
    }
}

#[test]
fn argmax_ties_pick_first_and_large_rows() {
    let mut rng = Rng::new(110);
    let n = 50_001;
    let mut v = rng.vec(2 * n, -1.0, 1.0);
    v[777] = 5.0;
    v[40_000] = 5.0; // tie: the first index wins, as in torch.argmax
    v[n + 49_999] = 7.0;
    let mut c = Case::new();
    let x = c.input("x", Tensor::f32(&[2, n], v).unwrap());
    let am = c.graph.argmax(x).unwrap();
    c.graph.output(am);
    let want = c.cpu();
    assert_eq!(want[0].as_u32().unwrap(), &[777, 49_999]);
    c.check(0.0, "argmax");
}

#[test]
fn write_rows_state_persists_across_runs() {
    use pinhole_core::Graph;
    use pinhole_gpu::{Executor, WeightStore};
    use std::collections::HashMap;
    let mut rng = Rng::new(120);
    for gpu in gpus() {
        let mut ex = Executor::new(gpu.clone());
        ex.poison = true;
        let store = WeightStore::new();
        let mut all = vec![0.0f32; 10 * 6];
        for (step, (row, n)) in [(0usize, 4usize), (4, 1), (5, 3)].into_iter().enumerate() {
            let data = rng.vec(n * 6, -1.0, 1.0);
            all[row * 6..(row + n) * 6].copy_from_slice(&data);
            let mut g = Graph::new();
            let st = g.state("cache", &[10, 6]);
            let src = g.input("src", &[n, 6], DType::F32);
            let w = g.write_rows(st, src, row).unwrap();
            let head = g.rows(w, 0, row + n).unwrap();
            g.output(head);
            let mut inputs = HashMap::new();
            inputs.insert("src".to_string(), Tensor::f32(&[n, 6], data).unwrap());
            let out = pollster::block_on(ex.run(&g, &store, &inputs)).unwrap();
            assert_eq!(out[0].as_f32().unwrap(), &all[..(row + n) * 6], "step {step}");
        }
    }
}

/// The shared "composed decoder block" case (its numbers are checked by tests/kernel_cases.rs):
/// pool reuse across runs, liveness reuse inside a run, and exactly one submission per run.
#[test]
fn composed_block_reuses_buffers_one_submit() {
    use pinhole_gpu::{Executor, WeightStore};
    let c = pinhole_gpu::kernel_cases::all_cases()
        .into_iter()
        .find(|c| c.name == "composed decoder block")
        .expect("the shared composed case");
    for gpu in gpus() {
        let mut store = WeightStore::new();
        for (n, t) in &c.weights {
            store.upload(&gpu, n, t).unwrap();
        }
        let mut ex = Executor::new(gpu.clone());
        pollster::block_on(ex.run(&c.graph, &store, &c.inputs)).unwrap();
        let created = ex.stats.buffers_created;
        assert_eq!(ex.stats.submits, 1);
        for _ in 0..3 {
            pollster::block_on(ex.run(&c.graph, &store, &c.inputs)).unwrap();
        }
        assert_eq!(
            ex.stats.buffers_created, created,
            "a repeated run must reuse pooled buffers"
        );
        assert_eq!(ex.stats.submits, 4, "one submit per run");
        // Liveness planning reuses buffers inside a run: fewer buffers than intermediate values.
        let ops = c
            .graph
            .values
            .iter()
            .filter(|v| matches!(v.kind, pinhole_core::ValueKind::Op(_)))
            .count();
        assert!(created < ops + c.inputs.len() + 1, "{created} buffers for {ops} ops");
    }
}

#[test]
fn lowered_limit_really_splits_weights() {
    use pinhole_gpu::WeightStore;
    let [normal, low, _] = gpus();
    assert_eq!(low.weight_binding_limit(), common::LOW_LIMIT);
    let mut rng = Rng::new(140);
    for f16 in [false, true] {
        let t = weight(&mut rng, &[257, 129], f16);
        let mut a = WeightStore::new();
        a.upload(&normal, "w", &t).unwrap();
        let mut b = WeightStore::new();
        b.upload(&low, "w", &t).unwrap();
        assert_eq!(a.get("w").unwrap().chunks.len(), 1);
        let chunks = &b.get("w").unwrap().chunks;
        assert!(chunks.len() > 5, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| c.buffer.size() <= common::LOW_LIMIT));
        assert_eq!(chunks.iter().map(|c| c.rows).sum::<usize>(), 257);
    }
}

#[test]
fn reshape_checks_element_counts() {
    let mut g = pinhole_core::Graph::new();
    let x = g.input("x", &[3, 4], DType::F32);
    assert!(g.reshape(x, &[5, 2]).is_err(), "element counts differ");
}
