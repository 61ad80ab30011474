//! Every kernel against the CPU reference on seeded random data, at sizes that are not
//! multiples of tile sizes, with f32 and f16 weights, with poisoned outputs, and on a second
//! device whose per-binding limit is lowered so weights are split across bindings.

mod common;

use common::{gpus, Case};
use pinhole_core::graph::{Activation, AttnMask, AttnParams};
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
fn matmul_gemm_and_gemv_all_edges() {
    let sizes = [
        (1, 1, 1),
        (1, 7, 33),
        (1, 257, 129),
        (2, 33, 7),
        (4, 65, 64),
        (5, 17, 1),
        (7, 257, 33),
        (33, 65, 257),
        (64, 64, 64),
        (130, 70, 19),
    ];
    let mut rng = Rng::new(1);
    for &(m, n, k) in &sizes {
        for f16 in [false, true] {
            for bias in [false, true] {
                let mut c = Case::new();
                let x = c.input("x", randt(&mut rng, &[m, k], 1.0));
                let w = c.weight("w", weight(&mut rng, &[n, k], f16));
                let b = bias.then(|| c.weight("b", randt(&mut rng, &[n], 1.0)));
                let y = c.graph.matmul(x, w, b).unwrap();
                c.graph.output(y);
                c.check(1e-5, &format!("matmul {m}x{n}x{k} f16={f16} bias={bias}"));
            }
        }
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

fn attn_case(seed: u64, s: usize, t: usize, p: AttnParams) {
    let mut rng = Rng::new(seed);
    let mut c = Case::new();
    let q = c.input("q", randt(&mut rng, &[s, p.n_heads * p.head_dim], 2.0));
    let k = c.input("k", randt(&mut rng, &[t, p.n_kv_heads * p.head_dim], 2.0));
    let v = c.input("v", randt(&mut rng, &[t, p.n_kv_heads * p.head_dim], 1.0));
    let o = c.graph.attention(q, k, v, p).unwrap();
    c.graph.output(o);
    c.check(1e-5, &format!("attention s={s} t={t} {p:?}"));
}

fn params(h: usize, kv: usize, d: usize, kv_len: usize, q_pos0: usize, mask: AttnMask) -> AttnParams {
    AttnParams {
        n_heads: h,
        n_kv_heads: kv,
        head_dim: d,
        kv_len,
        q_pos0,
        scale: 1.0 / (d as f32).sqrt(),
        softcap: 0.0,
        mask,
    }
}

#[test]
fn attention_full_mask_vision() {
    attn_case(10, 7, 7, params(3, 3, 16, 7, 0, AttnMask::FULL));
    attn_case(11, 65, 65, params(2, 2, 33, 65, 0, AttnMask::FULL));
    attn_case(12, 1, 1, params(1, 1, 1, 1, 0, AttnMask::FULL));
}

#[test]
fn attention_causal_gqa_mqa() {
    attn_case(20, 33, 33, params(4, 2, 8, 33, 0, AttnMask::CAUSAL));
    attn_case(21, 130, 130, params(4, 1, 32, 130, 0, AttnMask::CAUSAL));
    attn_case(22, 9, 9, params(6, 3, 256, 9, 0, AttnMask::CAUSAL));
}

#[test]
fn attention_prefix_lm_and_sliding_window() {
    let prefix = AttnMask {
        causal: true,
        prefix_len: 20,
        window: 0,
    };
    attn_case(30, 29, 29, params(2, 1, 16, 29, 0, prefix));
    // Window smaller than the prefix: the prefix block stays bidirectional, later rows slide.
    let sliding = AttnMask {
        causal: true,
        prefix_len: 20,
        window: 6,
    };
    attn_case(31, 29, 29, params(4, 2, 12, 29, 0, sliding));
    attn_case(
        32,
        70,
        70,
        params(
            2,
            2,
            8,
            70,
            0,
            AttnMask {
                causal: true,
                prefix_len: 0,
                window: 17,
            },
        ),
    );
}

#[test]
fn attention_softcap_and_decode_over_cache() {
    let mut p = params(
        4,
        1,
        24,
        29,
        0,
        AttnMask {
            causal: true,
            prefix_len: 11,
            window: 0,
        },
    );
    p.softcap = 5.0;
    p.scale = 0.3;
    attn_case(40, 29, 29, p);
    // Decode: one query row at position kv_len-1 over a larger cache (rows past kv_len unused).
    for (kv_len, prefix, window) in [(1, 0, 0), (40, 12, 0), (257, 100, 0), (77, 30, 8)] {
        let p = params(
            8,
            2,
            64,
            kv_len,
            kv_len - 1,
            AttnMask {
                causal: true,
                prefix_len: prefix,
                window,
            },
        );
        attn_case(41 + kv_len as u64, 1, 300, p);
    }
}

#[test]
fn patch_embedding() {
    let mut rng = Rng::new(50);
    for (c_in, h, w, patch, e, f16) in [
        (3, 32, 48, 8, 33, false),
        (3, 28, 14, 14, 7, true),
        (1, 4, 4, 2, 5, false),
    ] {
        let mut c = Case::new();
        let np = (h / patch) * (w / patch);
        let px = c.input("px", randt(&mut rng, &[c_in, h, w], 1.0));
        let wt = c.weight("w", weight(&mut rng, &[e, c_in, patch, patch], f16));
        let b = c.weight("b", randt(&mut rng, &[e], 1.0));
        let pos = c.weight("pos", randt(&mut rng, &[np, e], 1.0));
        let o = c.graph.patch_embed(px, wt, b, pos, patch).unwrap();
        c.graph.output(o);
        c.check(1e-5, &format!("patch_embed {c_in}x{h}x{w} p{patch} e{e}"));
    }
}

#[test]
fn norms() {
    let mut rng = Rng::new(60);
    for (rows, d) in [(1, 1), (3, 7), (5, 257), (2, 1100), (17, 64)] {
        let mut c = Case::new();
        // Offset inputs: a one-pass variance would lose precision here.
        let xv: Vec<f32> = rng.vec(rows * d, -1.0, 1.0).iter().map(|v| v * 3.0 + 5.0).collect();
        let x = c.input("x", Tensor::f32(&[rows, d], xv).unwrap());
        let w = c.weight("w", randt(&mut rng, &[d], 1.0));
        let b = c.weight("b", randt(&mut rng, &[d], 1.0));
        let ln = c.graph.layer_norm(x, w, b, 1e-6).unwrap();
        let rms = c.graph.rms_norm(x, w, 1e-6, false).unwrap();
        let gemma = c.graph.rms_norm(x, w, 1e-6, true).unwrap();
        c.graph.output(ln);
        c.graph.output(rms);
        c.graph.output(gemma);
        c.check(1e-5, &format!("norms {rows}x{d}"));
    }
}

#[test]
fn activations_and_gated() {
    let mut rng = Rng::new(70);
    let n = 1000;
    let mut xv = rng.vec(n, -8.0, 8.0);
    xv.extend([0.0, 1e-4, -1e-4, 50.0, -50.0, 100.0, -100.0, 0.1, -0.1]);
    let n = xv.len();
    for act in [Activation::GeluTanh, Activation::GeluErf, Activation::Silu] {
        let mut c = Case::new();
        let x = c.input("x", Tensor::f32(&[n], xv.clone()).unwrap());
        let up = c.input("up", randt(&mut rng, &[n], 2.0));
        let a = c.graph.act(x, act).unwrap();
        let gt = c.graph.gated(x, up, act).unwrap();
        c.graph.output(a);
        c.graph.output(gt);
        c.check(1e-5, &format!("{act:?}"));
    }
}

#[test]
fn rope_full_and_partial() {
    let mut rng = Rng::new(80);
    for (s, h, d, rot, theta) in [
        (4, 2, 16, 16, 10000.0),
        (7, 3, 12, 8, 10000.0),
        (1, 8, 256, 256, 10000.0),
        (5, 1, 80, 32, 500000.0),
    ] {
        let mut c = Case::new();
        let positions: Vec<u32> = (0..s as u32)
            .map(|i| [5, 1, 1000, 77, 0, 3, 4096][i as usize % 7])
            .collect();
        let x = c.input("x", randt(&mut rng, &[s, h * d], 1.0));
        let cs = c.graph.rope_table(&positions, rot, theta).unwrap();
        let y = c.graph.rope(x, cs, h, d, rot).unwrap();
        c.graph.output(y);
        c.check(1e-6, &format!("rope s{s} h{h} d{d} rot{rot}"));
    }
}

#[test]
fn embedding_gather_split_table() {
    let mut rng = Rng::new(90);
    for (vocab, e, f16) in [(257, 33, false), (257, 33, true), (1, 1, false), (1000, 7, true)] {
        let mut c = Case::new();
        let ids: Vec<u32> = (0..19)
            .map(|_| rng.below(vocab as u32))
            .chain([0, vocab as u32 - 1])
            .collect();
        let n = ids.len();
        let table = c.weight("table", weight(&mut rng, &[vocab, e], f16));
        let idt = c.input("ids", Tensor::u32(&[n], ids).unwrap());
        let o = c.graph.embedding(table, idt).unwrap();
        c.graph.output(o);
        c.check(0.0, &format!("embedding {vocab}x{e} f16={f16}"));
    }
}

#[test]
fn small_ops_add_scale_softcap_scatter_rows_argmax() {
    let mut rng = Rng::new(100);
    let mut c = Case::new();
    let a = c.input("a", randt(&mut rng, &[13, 21], 40.0));
    let b = c.input("b", randt(&mut rng, &[13, 21], 3.0));
    let src = c.input("src", randt(&mut rng, &[3, 21], 1.0));
    let idx = c.graph.constant(Tensor::u32(&[3], vec![12, 0, 5]).unwrap());
    let s = c.graph.add(a, b).unwrap();
    let sc = c.graph.scale(s, 0.37).unwrap();
    let cap = c.graph.softcap(a, 30.0).unwrap();
    let sct = c.graph.scatter_rows(b, src, idx).unwrap();
    let rows = c.graph.rows(a, 4, 7).unwrap();
    let am = c.graph.argmax(a).unwrap();
    for o in [s, sc, cap, sct, rows, am] {
        c.graph.output(o);
    }
    c.check(1e-6, "small ops");
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

/// A small transformer-like block: checks composition, pool reuse across runs and that a run
/// is exactly one submission.
#[test]
fn composed_block_reuses_buffers_one_submit() {
    use pinhole_gpu::{Executor, WeightStore};
    let mut rng = Rng::new(130);
    let (s, d, h, hd, ff) = (11, 48, 4, 12, 70);
    let mut c = Case::new();
    let x = c.input("x", randt(&mut rng, &[s, d], 1.0));
    let nw = c.weight("norm", randt(&mut rng, &[d], 0.5));
    let wq = c.weight("wq", weight(&mut rng, &[h * hd, d], true));
    let wk = c.weight("wk", weight(&mut rng, &[hd, d], true));
    let wv = c.weight("wv", weight(&mut rng, &[hd, d], false));
    let wo = c.weight("wo", weight(&mut rng, &[d, h * hd], false));
    let wg = c.weight("wg", weight(&mut rng, &[ff, d], true));
    let wu = c.weight("wu", weight(&mut rng, &[ff, d], true));
    let wd = c.weight("wd", weight(&mut rng, &[d, ff], true));
    let g = &mut c.graph;
    let xn = g.rms_norm(x, nw, 1e-6, true).unwrap();
    let q = g.matmul(xn, wq, None).unwrap();
    let k = g.matmul(xn, wk, None).unwrap();
    let v = g.matmul(xn, wv, None).unwrap();
    let pos: Vec<u32> = (1..=s as u32).collect();
    let cs = g.rope_table(&pos, hd, 10000.0).unwrap();
    let q = g.rope(q, cs, h, hd, hd).unwrap();
    let k = g.rope(k, cs, 1, hd, hd).unwrap();
    let a = g
        .attention(
            q,
            k,
            v,
            params(
                h,
                1,
                hd,
                s,
                0,
                AttnMask {
                    causal: true,
                    prefix_len: 5,
                    window: 0,
                },
            ),
        )
        .unwrap();
    let o = g.matmul(a, wo, None).unwrap();
    let r = g.add(x, o).unwrap();
    let rn = g.rms_norm(r, nw, 1e-6, true).unwrap();
    let gate = g.matmul(rn, wg, None).unwrap();
    let up = g.matmul(rn, wu, None).unwrap();
    let act = g.gated(gate, up, Activation::GeluTanh).unwrap();
    let down = g.matmul(act, wd, None).unwrap();
    let y = g.add(r, down).unwrap();
    let last = g.rows(y, s - 1, 1).unwrap();
    let tok = g.argmax(last).unwrap();
    g.output(y);
    g.output(tok);
    c.check(1e-5, "composed block");

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
    let [normal, low] = gpus();
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
fn reshape_per_head_layer_norm() {
    // Phi's qk_layernorm: [S, H·D] → [S·H, D] → LayerNorm over D → back to [S, H·D].
    let mut rng = Rng::new(91);
    for (s, h, d) in [(1, 1, 2), (5, 3, 20), (17, 4, 16), (2, 7, 33)] {
        let mut c = Case::new();
        let x = c.input("x", randt(&mut rng, &[s, h * d], 2.0));
        let w = c.weight("w", randt(&mut rng, &[d], 1.0));
        let b = c.weight("b", randt(&mut rng, &[d], 1.0));
        let per_head = c.graph.reshape(x, &[s * h, d]).unwrap();
        let n = c.graph.layer_norm(per_head, w, b, 1e-5).unwrap();
        let back = c.graph.reshape(n, &[s, h * d]).unwrap();
        c.graph.output(per_head);
        c.graph.output(back);
        c.check(1e-5, &format!("reshape + head norm {s}x{h}x{d}"));
    }
    let mut g = pinhole_core::Graph::new();
    let x = g.input("x", &[3, 4], DType::F32);
    assert!(g.reshape(x, &[5, 2]).is_err(), "element counts differ");
}
