//! The CPU reference: a direct, unoptimised implementation of every op, in f64 accumulation
//! where it matters. It is the specification the WGSL kernels are tested against, and
//! [`run_graph`] runs whole model graphs on the CPU for model-level checks.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::graph::{Activation, AttnParams, Graph, Op, SampleParams, TensorId, ValueKind, SAMPLE_MIN_EXPONENT};
use crate::tensor::{rows_of, DType, Data, Tensor};

pub fn matmul(x: &[f32], w: &[f32], bias: Option<&[f32]>, m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut y = vec![0.0f32; m * n];
    for i in 0..m {
        let xr = &x[i * k..(i + 1) * k];
        for j in 0..n {
            let wr = &w[j * k..(j + 1) * k];
            let mut acc = 0.0f64;
            for t in 0..k {
                acc += xr[t] as f64 * wr[t] as f64;
            }
            if let Some(b) = bias {
                acc += b[j] as f64;
            }
            y[i * n + j] = acc as f32;
        }
    }
    y
}

/// Softmax attention; see [`AttnParams`] and [`crate::graph::AttnMask::allows`].
pub fn attention(q: &[f32], k: &[f32], v: &[f32], s: usize, p: &AttnParams) -> Vec<f32> {
    let d = p.head_dim;
    let qw = p.n_heads * d;
    let kw = p.n_kv_heads * d;
    let group = p.n_heads / p.n_kv_heads;
    let mut out = vec![0.0f32; s * qw];
    let mut scores = vec![0.0f64; p.kv_len];
    for r in 0..s {
        let i = p.q_pos0 + r;
        for h in 0..p.n_heads {
            let kh = h / group;
            let qv = &q[r * qw + h * d..r * qw + (h + 1) * d];
            let mut max = f64::NEG_INFINITY;
            for j in 0..p.kv_len {
                if !p.mask.allows(i, j) {
                    scores[j] = f64::NEG_INFINITY;
                    continue;
                }
                let kr = &k[j * kw + kh * d..j * kw + (kh + 1) * d];
                let mut dot = 0.0f64;
                for t in 0..d {
                    dot += qv[t] as f64 * kr[t] as f64;
                }
                let mut sc = dot * p.scale as f64;
                if p.softcap > 0.0 {
                    sc = p.softcap as f64 * (sc / p.softcap as f64).tanh();
                }
                scores[j] = sc;
                max = max.max(sc);
            }
            let o = &mut out[r * qw + h * d..r * qw + (h + 1) * d];
            if max == f64::NEG_INFINITY {
                // A row that sees no key: defined as zeros (never happens with valid masks).
                continue;
            }
            let mut sum = 0.0f64;
            let mut acc = vec![0.0f64; d];
            for j in 0..p.kv_len {
                if scores[j] == f64::NEG_INFINITY {
                    continue;
                }
                let e = (scores[j] - max).exp();
                sum += e;
                let vr = &v[j * kw + kh * d..j * kw + (kh + 1) * d];
                for t in 0..d {
                    acc[t] += e * vr[t] as f64;
                }
            }
            for t in 0..d {
                o[t] = (acc[t] / sum) as f32;
            }
        }
    }
    out
}

#[allow(clippy::too_many_arguments)]
pub fn patch_embed(
    px: &[f32],
    c: usize,
    h: usize,
    w_img: usize,
    w: &[f32],
    b: &[f32],
    pos: &[f32],
    e: usize,
    patch: usize,
) -> Vec<f32> {
    let gw = w_img / patch;
    let np = (h / patch) * gw;
    let mut out = vec![0.0f32; np * e];
    for pi in 0..np {
        let (py, pxo) = (pi / gw, pi % gw);
        for o in 0..e {
            let mut acc = b[o] as f64 + pos[pi * e + o] as f64;
            for ch in 0..c {
                for ky in 0..patch {
                    for kx in 0..patch {
                        let iv = px[ch * h * w_img + (py * patch + ky) * w_img + pxo * patch + kx];
                        let wv = w[((o * c + ch) * patch + ky) * patch + kx];
                        acc += iv as f64 * wv as f64;
                    }
                }
            }
            out[pi * e + o] = acc as f32;
        }
    }
    out
}

pub fn layer_norm(x: &[f32], w: &[f32], b: &[f32], d: usize, eps: f32) -> Vec<f32> {
    let mut y = vec![0.0f32; x.len()];
    for (xr, yr) in x.chunks(d).zip(y.chunks_mut(d)) {
        let mean = xr.iter().map(|&v| v as f64).sum::<f64>() / d as f64;
        let var = xr.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d as f64;
        let inv = 1.0 / (var + eps as f64).sqrt();
        for t in 0..d {
            yr[t] = ((xr[t] as f64 - mean) * inv * w[t] as f64 + b[t] as f64) as f32;
        }
    }
    y
}

pub fn rms_norm(x: &[f32], w: &[f32], d: usize, eps: f32, add_one: bool) -> Vec<f32> {
    let mut y = vec![0.0f32; x.len()];
    for (xr, yr) in x.chunks(d).zip(y.chunks_mut(d)) {
        let ms = xr.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / d as f64;
        let inv = 1.0 / (ms + eps as f64).sqrt();
        for t in 0..d {
            let g = if add_one { 1.0 + w[t] as f64 } else { w[t] as f64 };
            yr[t] = (xr[t] as f64 * inv * g) as f32;
        }
    }
    y
}

pub fn activation(x: f32, act: Activation) -> f32 {
    let x = x as f64;
    let y = match act {
        Activation::GeluTanh => {
            0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x)).tanh())
        }
        Activation::GeluErf => 0.5 * x * (1.0 + erf(x / std::f64::consts::SQRT_2)),
        Activation::Silu => x / (1.0 + (-x).exp()),
    };
    y as f32
}

/// erf with ~1e-15 accuracy (series / continued fraction), so the reference is not the weak link.
pub fn erf(x: f64) -> f64 {
    if x.abs() < 2.5 {
        // Maclaurin series.
        let mut sum = x;
        let mut term = x;
        let x2 = x * x;
        let mut n = 0.0;
        loop {
            n += 1.0;
            term *= -x2 / n;
            let add = term / (2.0 * n + 1.0);
            sum += add;
            if add.abs() < 1e-17 {
                break;
            }
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    } else {
        // erfc continued fraction (Lentz), converges fast for |x| >= 2.5.
        let ax = x.abs();
        let mut f = ax;
        for k in (1..60).rev() {
            f = ax + (k as f64 / 2.0) / f;
        }
        let erfc = (-ax * ax).exp() / (f * std::f64::consts::PI.sqrt());
        (1.0 - erfc).copysign(x)
    }
}

/// Rotate-half RoPE on the first `rotary_dim` dims of every head; the rest passes through.
pub fn rope(x: &[f32], cos_sin: &[f32], s: usize, n_heads: usize, head_dim: usize, rotary_dim: usize) -> Vec<f32> {
    let mut y = x.to_vec();
    let half = rotary_dim / 2;
    for r in 0..s {
        let cs = &cos_sin[r * rotary_dim..(r + 1) * rotary_dim];
        for h in 0..n_heads {
            let base = r * n_heads * head_dim + h * head_dim;
            for i in 0..half {
                let (c, sn) = (cs[i] as f64, cs[half + i] as f64);
                let a = x[base + i] as f64;
                let b = x[base + half + i] as f64;
                y[base + i] = (a * c - b * sn) as f32;
                y[base + half + i] = (b * c + a * sn) as f32;
            }
        }
    }
    y
}

pub fn argmax(x: &[f32], n: usize) -> Vec<u32> {
    x.chunks(n)
        .map(|r| {
            let mut best = 0usize;
            for (i, &v) in r.iter().enumerate() {
                if v > r[best] {
                    best = i;
                }
            }
            best as u32
        })
        .collect()
}

/// `-0.0` counts as `+0.0` wherever sampling compares logits (the kernel compares order-preserving
/// integer keys of the f32 bits, where the two zeros would otherwise differ).
fn norm_zero(v: f32) -> f32 {
    if v == 0.0 {
        0.0
    } else {
        v
    }
}

/// The unnormalised probability `exp((v - max) / temperature)` of [`SampleParams`], 0 below
/// [`SAMPLE_MIN_EXPONENT`].
fn sample_weight(v: f32, max: f32, temperature: f32) -> f64 {
    let e = (v as f64 - max as f64) / temperature as f64;
    if e < SAMPLE_MIN_EXPONENT as f64 {
        0.0
    } else {
        e.exp()
    }
}

/// The lowest logit a row keeps after top-k and top-p (every logit ≥ it is kept), exactly as
/// [`SampleParams`] defines it; `-inf` when both are off.
pub fn sample_threshold(r: &[f32], p: &SampleParams) -> f32 {
    let n = r.len();
    let max = r.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let mut sorted: Vec<f32> = r.iter().map(|&v| norm_zero(v)).collect();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let k = p.top_k as usize;
    let mut thr = f32::NEG_INFINITY;
    if k > 0 && k < n {
        thr = sorted[k - 1];
    }
    if p.top_p < 1.0 {
        let kept: Vec<f32> = sorted.iter().copied().filter(|&v| v >= thr).collect();
        let total: f64 = kept.iter().map(|&v| sample_weight(v, max, p.temperature)).sum();
        let target = p.top_p as f64 * total;
        let mut cum = 0.0f64;
        let mut i = 0;
        while i < kept.len() {
            // A group of equal values enters (or stays out of) the kept set together.
            let v = kept[i];
            while i < kept.len() && kept[i] == v {
                cum += sample_weight(kept[i], max, p.temperature);
                i += 1;
            }
            if cum >= target {
                thr = v;
                break;
            }
        }
    }
    thr
}

/// Unnormalised softmax weights of one row after temperature, top-k and top-p (0 for removed
/// tokens): the distribution both `sample` and `sample_probs` are defined by.
fn kept_weights(r: &[f32], p: &SampleParams) -> Vec<f64> {
    let max = r.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    let thr = sample_threshold(r, p);
    r.iter()
        .map(|&v| {
            if norm_zero(v) >= thr {
                sample_weight(v, max, p.temperature)
            } else {
                0.0
            }
        })
        .collect()
}

/// One sampled token per row of `x [rows, n]`; see [`SampleParams`] for the exact definition.
pub fn sample(x: &[f32], n: usize, p: &SampleParams) -> Vec<u32> {
    x.chunks(n)
        .map(|r| {
            let w = kept_weights(r, p);
            let total: f64 = w.iter().sum();
            let target = p.uniform as f64 * total;
            let mut run = 0.0f64;
            let mut last = 0usize;
            for (i, &wi) in w.iter().enumerate() {
                if wi > 0.0 {
                    run += wi;
                    if run > target {
                        return i as u32;
                    }
                    last = i;
                }
            }
            // Rounding left the running sum at or below the target: the last kept token.
            last as u32
        })
        .collect()
}

/// The kept-token probabilities of one row (0 for removed tokens), for statistical checks.
pub fn sample_probs(r: &[f32], p: &SampleParams) -> Vec<f64> {
    let w = kept_weights(r, p);
    let total: f64 = w.iter().sum();
    w.iter().map(|&v| v / total).collect()
}

/// transformers' repetition penalty over `x [rows, n]`; see [`Op::RepetitionPenalty`].
pub fn repetition_penalty(x: &[f32], n: usize, ids: &[u32], penalty: f32) -> Result<Vec<f32>> {
    let inv = 1.0 / penalty;
    let mut out = x.to_vec();
    for (xr, or) in x.chunks(n).zip(out.chunks_mut(n)) {
        for &id in ids {
            let id = id as usize;
            let v = *xr
                .get(id)
                .ok_or_else(|| Error::Invalid(format!("repetition penalty id {id} outside the vocabulary of {n}")))?;
            or[id] = if v < 0.0 { v * penalty } else { v * inv };
        }
    }
    Ok(out)
}

/// Weights, inputs and persistent state for [`run_graph`].
pub struct CpuEnv<'a> {
    pub weights: &'a dyn Fn(&str) -> Option<Tensor>,
    pub inputs: &'a HashMap<String, Tensor>,
    pub states: &'a mut HashMap<String, Tensor>,
}

/// Runs a whole graph on the CPU and returns its outputs in order.
pub fn run_graph(g: &Graph, env: CpuEnv<'_>) -> Result<Vec<Tensor>> {
    let mut vals: Vec<Option<Tensor>> = vec![None; g.values.len()];
    for (idx, v) in g.values.iter().enumerate() {
        let t = match &v.kind {
            ValueKind::Input(name) => {
                let t = env
                    .inputs
                    .get(name)
                    .ok_or_else(|| Error::Graph(format!("input '{name}' was not supplied")))?;
                if t.shape != v.shape {
                    return Err(Error::Shape {
                        what: format!("input '{name}'"),
                        detail: format!("expected {:?}, got {:?}", v.shape, t.shape),
                    });
                }
                t.clone()
            }
            ValueKind::Const(t) => t.clone(),
            ValueKind::Weight(name) => {
                let t = (env.weights)(name).ok_or_else(|| Error::Graph(format!("weight '{name}' is missing")))?;
                if t.shape != v.shape {
                    return Err(Error::Shape {
                        what: format!("weight '{name}'"),
                        detail: format!("expected {:?}, got {:?}", v.shape, t.shape),
                    });
                }
                t
            }
            ValueKind::State(name) => env
                .states
                .entry(name.clone())
                .or_insert_with(|| Tensor::zeros(&v.shape))
                .clone(),
            ValueKind::Op(op) => run_op(g, op, &v.shape, &vals, env.states)?,
        };
        vals[idx] = Some(t);
    }
    g.outputs
        .iter()
        .map(|o| {
            vals.get(o.0)
                .cloned()
                .flatten()
                .ok_or_else(|| Error::Graph(format!("output #{} not computed", o.0)))
        })
        .collect()
}

fn get(vals: &[Option<Tensor>], id: TensorId) -> Result<&Tensor> {
    vals.get(id.0)
        .and_then(|v| v.as_ref())
        .ok_or_else(|| Error::Graph(format!("tensor #{} used before it was computed", id.0)))
}

fn f(vals: &[Option<Tensor>], id: TensorId) -> Result<&[f32]> {
    get(vals, id)?.as_f32()
}

fn run_op(
    g: &Graph,
    op: &Op,
    shape: &[usize],
    vals: &[Option<Tensor>],
    states: &mut HashMap<String, Tensor>,
) -> Result<Tensor> {
    let last = |id: TensorId| -> Result<usize> { Ok(*g.shape(id)?.last().unwrap_or(&1)) };
    let out = match *op {
        Op::MatMul { x, w, bias } => {
            let (k, n) = (last(x)?, shape[shape.len() - 1]);
            let m = rows_of(shape);
            let b = bias.map(|b| f(vals, b)).transpose()?;
            // A 4-bit weight is dequantized first: the reference of the fused kernels.
            matmul(f(vals, x)?, &get(vals, w)?.values()?, b, m, n, k)
        }
        Op::Attention { q, k, v, p } => attention(f(vals, q)?, f(vals, k)?, f(vals, v)?, shape[0], &p),
        Op::PatchEmbed {
            pixels,
            w,
            b,
            pos,
            patch,
        } => {
            let ps = g.shape(pixels)?;
            patch_embed(
                f(vals, pixels)?,
                ps[0],
                ps[1],
                ps[2],
                f(vals, w)?,
                f(vals, b)?,
                f(vals, pos)?,
                shape[1],
                patch,
            )
        }
        Op::LayerNorm { x, w, b, eps } => layer_norm(f(vals, x)?, f(vals, w)?, f(vals, b)?, last(x)?, eps),
        Op::RmsNorm { x, w, eps, add_one } => rms_norm(f(vals, x)?, f(vals, w)?, last(x)?, eps, add_one),
        Op::Act { x, act } => f(vals, x)?.iter().map(|&v| activation(v, act)).collect(),
        Op::Gated { gate, up, act } => f(vals, gate)?
            .iter()
            .zip(f(vals, up)?)
            .map(|(&a, &u)| (activation(a, act) as f64 * u as f64) as f32)
            .collect(),
        Op::Rope {
            x,
            cos_sin,
            n_heads,
            head_dim,
            rotary_dim,
        } => rope(f(vals, x)?, f(vals, cos_sin)?, shape[0], n_heads, head_dim, rotary_dim),
        Op::Embedding { table, ids } => {
            let t = get(vals, table)?.values()?;
            let e = shape[1];
            let vocab = g.shape(table)?[0];
            let mut out = Vec::with_capacity(shape[0] * e);
            for &id in get(vals, ids)?.as_u32()? {
                let id = id as usize;
                if id >= vocab {
                    return Err(Error::Invalid(format!(
                        "token id {id} outside the vocabulary of {vocab}"
                    )));
                }
                out.extend_from_slice(&t[id * e..(id + 1) * e]);
            }
            out
        }
        Op::Add { a, b } => f(vals, a)?.iter().zip(f(vals, b)?).map(|(x, y)| x + y).collect(),
        Op::Scale { x, s } => f(vals, x)?.iter().map(|v| v * s).collect(),
        Op::SoftCap { x, cap } => f(vals, x)?
            .iter()
            .map(|&v| ((v as f64 / cap as f64).tanh() * cap as f64) as f32)
            .collect(),
        Op::ScatterRows { dst, src, index } => {
            let mut out = f(vals, dst)?.to_vec();
            let e = shape[1];
            let s = f(vals, src)?;
            for (i, &r) in get(vals, index)?.as_u32()?.iter().enumerate() {
                let r = r as usize;
                if r >= shape[0] {
                    return Err(Error::Invalid(format!("scatter row {r} outside {} rows", shape[0])));
                }
                out[r * e..(r + 1) * e].copy_from_slice(&s[i * e..(i + 1) * e]);
            }
            out
        }
        Op::Reshape { x } => f(vals, x)?.to_vec(),
        Op::Rows { x, start, count } => {
            let e = shape[1];
            f(vals, x)?[start * e..(start + count) * e].to_vec()
        }
        Op::Argmax { x } => {
            let t = Tensor::u32(shape, argmax(f(vals, x)?, last(x)?))?;
            return Ok(t);
        }
        Op::Sample { x, p } => {
            let t = Tensor::u32(shape, sample(f(vals, x)?, last(x)?, &p))?;
            return Ok(t);
        }
        Op::RepetitionPenalty { x, ids, penalty } => {
            repetition_penalty(f(vals, x)?, last(x)?, get(vals, ids)?.as_u32()?, penalty)?
        }
        Op::WriteRows { state, src, row } => {
            let name = match &g.value(state)?.kind {
                ValueKind::State(n) => n.clone(),
                _ => return Err(Error::Graph("write_rows target is not a state".into())),
            };
            // The latest contents of the state (an earlier write in this graph may have changed it).
            let mut st = match states.get(&name) {
                Some(t) => t.clone(),
                None => get(vals, state)?.clone(),
            };
            let e = shape[1];
            let s = f(vals, src)?;
            if let Data::F32(d) = &mut st.data {
                d[row * e..row * e + s.len()].copy_from_slice(s);
            }
            states.insert(name, st.clone());
            return Ok(st);
        }
    };
    Ok(Tensor {
        shape: shape.to_vec(),
        dtype: DType::F32,
        data: Data::F32(out),
    })
}
