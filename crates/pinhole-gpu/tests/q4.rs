//! 4-bit kernels (crates/pinhole-gpu/shaders/q4.wgsl) against the CPU reference of the same quantized weights
//! (dequantize, then the f32 op) on seeded random data: GEMV (M ≤ 4) and GEMM (M > 4) at
//! sizes that are not multiples of the tiles, both schemes, two group sizes, with and without
//! bias, the embedding gather, a tied embedding/LM head, with poisoned outputs, and on a second
//! device whose per-binding limit is lowered so every weight is split across bindings.

mod common;

use common::{gpus, Case};
use pinhole_core::quant::{self, Q4Format, Q4Scheme};
use pinhole_core::rng::Rng;
use pinhole_core::tensor::{rel_error, Data};
use pinhole_core::{DType, Tensor};
use pinhole_gpu::{Executor, WeightStore};

fn randt(rng: &mut Rng, shape: &[usize], scale: f32) -> Tensor {
    let n = shape.iter().product();
    Tensor::f32(shape, rng.vec(n, -scale, scale)).unwrap()
}

/// A random weight, quantized. Half the rows are shifted so the asymmetric offsets matter.
fn q4_weight(rng: &mut Rng, n: usize, k: usize, f: Q4Format) -> Tensor {
    let mut v = rng.vec(n * k, -1.0, 1.0);
    for (r, row) in v.chunks_mut(k).enumerate() {
        if r % 2 == 1 {
            row.iter_mut().for_each(|x| *x = *x * 0.5 + 0.7);
        }
    }
    Tensor::f32(&[n, k], v).unwrap().quantize_q4(f).unwrap()
}

fn formats(k: usize) -> Vec<Q4Format> {
    let mut v = vec![];
    for scheme in [Q4Scheme::Sym, Q4Scheme::Asym] {
        for group in [32, 64] {
            let f = Q4Format::new(group, scheme).unwrap();
            if f.fits(k) {
                v.push(f);
            }
        }
    }
    v
}

#[test]
fn q4_matmul_gemv_and_gemm_all_edges() {
    let sizes = [
        (1, 1, 32),
        (1, 7, 64),
        (1, 257, 96),
        (2, 33, 32),
        (3, 65, 128),
        (4, 129, 64),
        (5, 17, 32),
        (7, 257, 96),
        (33, 65, 256),
        (65, 70, 64),
        (130, 67, 32),
    ];
    let mut rng = Rng::new(41);
    for &(m, n, k) in &sizes {
        for f in formats(k) {
            for bias in [false, true] {
                let mut c = Case::new();
                let x = c.input("x", randt(&mut rng, &[m, k], 1.0));
                let w = c.weight("w", q4_weight(&mut rng, n, k, f));
                let b = bias.then(|| c.weight("b", randt(&mut rng, &[n], 1.0)));
                let y = c.graph.matmul(x, w, b).unwrap();
                c.graph.output(y);
                c.check(1e-5, &format!("q4 matmul {m}x{n}x{k} {f:?} bias={bias}"));
            }
        }
    }
}

#[test]
fn q4_matmul_with_fused_epilogues() {
    // The 4-bit kernels' stores go through common/epilogue.wgsl too: a residual add and the
    // gated MLP's up projection fused into the matmul (executor/fuse.rs), on the GEMV, the
    // GEMM and the register-tiled GEMM sizes.
    use pinhole_core::graph::Activation;
    let mut rng = Rng::new(43);
    for &(m, n, k) in &[(1, 257, 64), (4, 33, 96), (37, 67, 64)] {
        for f in formats(k) {
            for kind in ["add", "up", "act"] {
                let mut c = Case::new();
                let x = c.input("x", randt(&mut rng, &[m, k], 1.0));
                let other = c.input("other", randt(&mut rng, &[m, n], 1.0));
                let w = c.weight("w", q4_weight(&mut rng, n, k, f));
                let b = c.weight("b", randt(&mut rng, &[n], 1.0));
                let g = &mut c.graph;
                let y = g.matmul(x, w, Some(b)).unwrap();
                let out = match kind {
                    "add" => g.add(other, y),
                    "up" => g.gated(other, y, Activation::Silu),
                    _ => g.act(y, Activation::GeluTanh),
                }
                .unwrap();
                g.output(out);
                c.check(1e-5, &format!("q4 fused {kind} {m}x{n}x{k} {f:?}"));
            }
        }
    }
}

#[test]
fn q4_embedding_gather_and_tied_lm_head() {
    let mut rng = Rng::new(42);
    let (v, e) = (301, 64);
    for f in formats(e) {
        let mut c = Case::new();
        let table = c.weight("embed", q4_weight(&mut rng, v, e, f));
        let ids: Vec<u32> = vec![0, 300, 5, 5, 150, 299, 1];
        let idt = c.input("ids", Tensor::u32(&[ids.len()], ids).unwrap());
        let h = c.graph.embedding(table, idt).unwrap();
        // The tied LM head: the same 4-bit table as a matmul weight (GEMM for 7 rows, GEMV
        // for the last row).
        let logits = c.graph.matmul(h, table, None).unwrap();
        let last = c.graph.rows(h, 6, 1).unwrap();
        let last_logits = c.graph.matmul(last, table, None).unwrap();
        c.graph.output(h);
        c.graph.output(logits);
        c.graph.output(last_logits);
        c.check(1e-5, &format!("q4 embedding + tied head {f:?}"));
    }
}

#[test]
fn q4_gather_of_every_row_is_the_dequantized_table() {
    // The gather with ids 0..V is a full dequantization; it must equal quant::dequantize.
    let mut rng = Rng::new(43);
    let (v, e) = (97, 96);
    for f in formats(e) {
        let t = q4_weight(&mut rng, v, e, f);
        let Data::Q4(d) = &t.data else { unreachable!() };
        let want = quant::dequantize(d, v, e, f);
        let mut c = Case::new();
        let table = c.weight("t", t.clone());
        let idt = c.input("ids", Tensor::u32(&[v], (0..v as u32).collect()).unwrap());
        let h = c.graph.embedding(table, idt).unwrap();
        c.graph.output(h);
        for gpu in gpus() {
            let got = c.gpu_on(&gpu);
            let e = rel_error(got[0].as_f32().unwrap(), &want);
            assert!(e <= 1e-6, "{f:?}: dequant via gather differs: {e:e}");
        }
    }
}

#[test]
fn q4_close_to_the_f32_original() {
    // The error budget of 4 bits, for orientation: well above f16's, well below noise.
    let mut rng = Rng::new(44);
    let (m, n, k) = (3, 130, 256);
    let xv = randt(&mut rng, &[m, k], 1.0);
    let wv = rng.vec(n * k, -1.0, 1.0);
    let want = pinhole_core::reference::matmul(xv.as_f32().unwrap(), &wv, None, m, n, k);
    for scheme in [Q4Scheme::Sym, Q4Scheme::Asym] {
        let f = Q4Format::new(32, scheme).unwrap();
        let mut c = Case::new();
        let x = c.input("x", xv.clone());
        let w = c.weight("w", Tensor::f32(&[n, k], wv.clone()).unwrap().quantize_q4(f).unwrap());
        let y = c.graph.matmul(x, w, None).unwrap();
        c.graph.output(y);
        let got = c.gpu_on(&gpus()[0]);
        let e = rel_error(got[0].as_f32().unwrap(), &want);
        assert!(e > 1e-3 && e < 0.15, "{scheme:?}: 4-bit vs f32 relative error {e}");
    }
}

#[test]
fn q4_lowered_limit_really_splits_and_stays_exact() {
    let [normal, low, _] = gpus();
    let mut rng = Rng::new(45);
    // A vocabulary-sized table in miniature: 1000 rows × 256 at 144 (sym) / 160 (asym) bytes
    // per row is ~40 chunks under the 4 KiB limit.
    let (v, e) = (1000, 256);
    for f in formats(e) {
        let t = q4_weight(&mut rng, v, e, f);
        let mut a = WeightStore::new();
        a.upload(&normal, "w", &t).unwrap();
        let mut b = WeightStore::new();
        b.upload(&low, "w", &t).unwrap();
        assert_eq!(a.get("w").unwrap().chunks.len(), 1);
        assert!(matches!(b.get("w").unwrap().dtype, DType::Q4(g) if g == f));
        let chunks = &b.get("w").unwrap().chunks;
        assert!(chunks.len() > 20, "{} chunks", chunks.len());
        assert!(chunks.iter().all(|c| c.buffer.size() <= common::LOW_LIMIT));
        assert_eq!(chunks.iter().map(|c| c.rows).sum::<usize>(), v);
        // 4 bits + one f16 per 32 (two for asym) per weight, padded per chunk.
        let per_weight = a.bytes() as f64 * 8.0 / (v * e) as f64;
        assert!(per_weight <= 4.0 + 16.0 / f.group as f64 * if f.asym() { 2.0 } else { 1.0 } + 0.01);

        let mut c = Case::new();
        let x = c.input("x", randt(&mut rng, &[1, e], 1.0));
        let w = c.weight("w", t.clone());
        let y = c.graph.matmul(x, w, None).unwrap();
        let ids = c.input("ids", Tensor::u32(&[3], vec![999, 0, 512]).unwrap());
        let h = c.graph.embedding(w, ids).unwrap();
        let y2 = c.graph.matmul(h, w, None).unwrap();
        c.graph.output(y);
        c.graph.output(y2);
        c.graph.output(h);
        c.check(1e-5, &format!("split 4-bit head {f:?}"));
    }
}

#[test]
fn q4_weights_in_other_ops_are_typed_errors() {
    // Only matmul and embedding read 4-bit weights; anywhere else the executor must refuse the
    // weight with an error rather than hand its packed words to a float kernel.
    let gpu = gpus()[0].clone();
    let mut rng = Rng::new(46);
    let f = Q4Format::new(32, Q4Scheme::Sym).unwrap();
    let mut store = WeightStore::new();
    store.upload(&gpu, "w", &q4_weight(&mut rng, 2, 32, f)).unwrap();
    let mut g = pinhole_core::Graph::new();
    let x = g.input("x", &[2, 32], DType::F32);
    let w = g.weight("w", &[2, 32], DType::F32);
    let y = g.add(x, w).unwrap();
    g.output(y);
    let mut inputs = std::collections::HashMap::new();
    inputs.insert("x".to_string(), randt(&mut rng, &[2, 32], 1.0));
    let mut ex = Executor::new(gpu.clone());
    let err = pollster::block_on(ex.run(&g, &store, &inputs)).unwrap_err().to_string();
    assert!(err.contains("4-bit"), "{err}");
}
