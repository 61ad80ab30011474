//! Kernel benchmarks behind `pinhole bench kernels`: each kernel at realistic sizes, median
//! time after warm-up, GFLOP/s, GB/s, and the ratio of its bandwidth to a plain vec4 copy
//! measured on the same adapter in the same run. No test asserts on these numbers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use pinhole_core::graph::{Activation, AttnMask, AttnParams};
use pinhole_core::quant::{Q4Data, Q4Format, Q4Scheme};
use pinhole_core::rng::Rng;
use pinhole_core::{DType, Graph, Tensor};

use crate::context::Gpu;
use crate::error::{GpuError, Result};
use crate::executor::Executor;
use crate::kernels::{grid, Kernel};
use crate::params::CopyParams;
use crate::weights::WeightStore;

#[derive(Clone, Debug)]
pub struct BenchResult {
    pub name: String,
    pub shape: String,
    pub median_ms: f64,
    pub gflops: f64,
    pub gbps: f64,
    /// This kernel's GB/s over the copy kernel's GB/s.
    pub copy_ratio: f64,
}

#[derive(Clone, Debug)]
pub struct BenchReport {
    pub copy_gbps: f64,
    pub copy_bytes: u64,
    pub runs: usize,
    pub results: Vec<BenchResult>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// GB/s of a vec4 copy of `bytes` bytes (read + write counted).
pub fn copy_bandwidth(gpu: &Arc<Gpu>, bytes: u64, runs: usize) -> Result<f64> {
    let pipeline = pollster::block_on(gpu.pipeline(Kernel::CopyVec4, false))?;
    let usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
    let mk = |label| {
        gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage,
            mapped_at_creation: false,
        })
    };
    let (src, dst) = (mk("bench src"), mk("bench dst"));
    let words = (bytes / 4) as u32;
    let (gx, gy) = grid(
        (words as u64 / 4).div_ceil(256),
        gpu.limits.max_compute_workgroups_per_dimension,
    );
    let params = CopyParams {
        n: words,
        gx,
        ..Default::default()
    };
    let ubuf = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("bench params"),
        size: 32,
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    gpu.queue.write_buffer(&ubuf, 0, bytemuck::bytes_of(&params));
    let layout = pipeline.get_bind_group_layout(0);
    let bg = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("bench copy"),
        layout: &layout,
        entries: &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: ubuf.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 3,
                resource: src.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 4,
                resource: dst.as_entire_binding(),
            },
        ],
    });
    let repeats = 4;
    let mut times = Vec::new();
    for run in 0..runs + 1 {
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bg, &[]);
            for _ in 0..repeats {
                pass.dispatch_workgroups(gx, gy, 1);
            }
        }
        let t = Instant::now();
        gpu.queue.submit(Some(enc.finish()));
        gpu.wait_idle()?;
        if run > 0 {
            times.push(t.elapsed().as_secs_f64() / repeats as f64);
        }
    }
    if let Some(e) = gpu.take_uncaptured() {
        return Err(GpuError::Validation(e));
    }
    Ok(2.0 * bytes as f64 / median(times) / 1e9)
}

struct Case {
    name: String,
    /// The attention kernel forced for this case (`None`: the adapter's rule).
    attention: Option<Kernel>,
    /// `Some(f16_math)`: the shared-memory tiled GEMM forced for this case's matmul (the GPU
    /// kernel family, whatever the adapter), in f32 or with f16 math (`Gpu::set_f16_math`).
    tiled_gemm: Option<bool>,
    shape: String,
    graph: Graph,
    weights: Vec<(String, Tensor)>,
    inputs: HashMap<String, Tensor>,
    flops: f64,
    bytes: f64,
}

/// `c` with `kernel` forced for its attention, named after the kernel's WGSL entry point.
fn forced(mut c: Case, kernel: Kernel) -> Case {
    c.name = format!("{} [{}]", c.name, kernel.entry());
    c.attention = Some(kernel);
    c
}

/// `c` (a GEMM) with the shared-memory tiled GEMM forced, f32 (`[gemm]`) or with f16 math
/// (`[gemm f16-math]`): the pair on the same shape is what f16 math buys on this adapter.
fn forced_gemm(mut c: Case, f16_math: bool) -> Case {
    c.name = format!("{} [gemm{}]", c.name, if f16_math { " f16-math" } else { "" });
    c.tiled_gemm = Some(f16_math);
    c
}

fn rand(rng: &mut Rng, shape: &[usize], dtype: DType) -> Tensor {
    let n = shape.iter().product();
    let v = rng.vec(n, -1.0, 1.0);
    match dtype {
        DType::F16 => Tensor::f16(shape, v),
        _ => Tensor::f32(shape, v),
    }
    .unwrap_or_else(|_| Tensor::zeros(shape))
}

fn matmul_case(rng: &mut Rng, m: usize, n: usize, k: usize, dt: DType) -> Result<Case> {
    let mut g = Graph::new();
    let x = g.input("x", &[m, k], DType::F32);
    let w = g.weight("w", &[n, k], dt);
    g.matmul(x, w, None)?;
    let mut inputs = HashMap::new();
    inputs.insert("x".to_string(), rand(rng, &[m, k], DType::F32));
    Ok(Case {
        attention: None,
        tiled_gemm: None,
        name: format!("{} {}", if m <= 4 { "gemv" } else { "gemm" }, dt.name()),
        shape: format!("{m}x{n}x{k}"),
        graph: g,
        weights: vec![("w".into(), rand(rng, &[n, k], dt))],
        inputs,
        flops: 2.0 * (m * n * k) as f64,
        bytes: (n * k * dt.size() + 4 * (m * k + m * n)) as f64,
    })
}

/// A 4-bit matmul `[m, k] × [n, k]ᵀ`. The weight is random packed nibbles and random f16
/// scales made directly (a vocabulary-sized weight never exists as f32 on the host). `bytes`
/// counts what the kernel reads: packed words, scales (and offsets), x, plus y written.
fn q4_case(rng: &mut Rng, m: usize, n: usize, k: usize, scheme: Q4Scheme) -> Result<Case> {
    let f = Q4Format::new(32, scheme)?;
    let mut g = Graph::new();
    let x = g.input("x", &[m, k], DType::F32);
    let w = g.weight("w", &[n, k], DType::Q4(f));
    g.matmul(x, w, None)?;
    let ng = n * k / 32;
    let half = |rng: &mut Rng| pinhole_core::quant::f16_bits(rng.uniform(0.001, 0.02));
    let d = Q4Data {
        packed: (0..n * k / 8).map(|_| rng.next_u64() as u32).collect(),
        scales: (0..ng).map(|_| half(rng)).collect(),
        offsets: if f.asym() {
            (0..ng).map(|_| half(rng)).collect()
        } else {
            vec![]
        },
    };
    let mut inputs = HashMap::new();
    inputs.insert("x".to_string(), rand(rng, &[m, k], DType::F32));
    Ok(Case {
        attention: None,
        tiled_gemm: None,
        name: format!("{} {}", if m <= 4 { "gemv" } else { "gemm" }, scheme.meta()),
        shape: format!("{m}x{n}x{k}"),
        graph: g,
        weights: vec![("w".into(), Tensor::q4(&[n, k], f, d)?)],
        inputs,
        flops: 2.0 * (m * n * k) as f64,
        bytes: (n * pinhole_core::quant::row_bytes(k, f) + 4 * (m * k + m * n)) as f64,
    })
}

#[allow(clippy::too_many_arguments)]
fn attention_case(
    rng: &mut Rng,
    label: &str,
    s: usize,
    t: usize,
    h: usize,
    kv: usize,
    d: usize,
    mask: AttnMask,
) -> Result<Case> {
    let mut g = Graph::new();
    let q = g.input("q", &[s, h * d], DType::F32);
    let k = g.input("k", &[t, kv * d], DType::F32);
    let v = g.input("v", &[t, kv * d], DType::F32);
    let p = AttnParams {
        n_heads: h,
        n_kv_heads: kv,
        head_dim: d,
        kv_len: t,
        q_pos0: t - s,
        scale: 1.0 / (d as f32).sqrt(),
        softcap: 0.0,
        mask,
    };
    g.attention(q, k, v, p)?;
    let mut inputs = HashMap::new();
    inputs.insert("q".to_string(), rand(rng, &[s, h * d], DType::F32));
    inputs.insert("k".to_string(), rand(rng, &[t, kv * d], DType::F32));
    inputs.insert("v".to_string(), rand(rng, &[t, kv * d], DType::F32));
    Ok(Case {
        attention: None,
        tiled_gemm: None,
        name: format!("attention {label}"),
        shape: format!("S{s} T{t} H{h}/{kv} D{d}"),
        graph: g,
        weights: vec![],
        inputs,
        flops: 4.0 * (s * t * h * d) as f64,
        bytes: 4.0 * (2 * s * h * d + 2 * t * kv * d) as f64,
    })
}

/// SigLIP-So400m's patch embedding at 224 px: 256 patches of 3×14×14 into 1152 (f16 weight).
fn patch_embed_case(rng: &mut Rng) -> Result<Case> {
    let (c, hw, ps, e) = (3, 224, 14, 1152);
    let np = (hw / ps) * (hw / ps);
    let mut g = Graph::new();
    let px = g.input("px", &[c, hw, hw], DType::F32);
    let w = g.weight("w", &[e, c, ps, ps], DType::F16);
    let b = g.weight("b", &[e], DType::F32);
    let pos = g.weight("pos", &[np, e], DType::F32);
    g.patch_embed(px, w, b, pos, ps)?;
    let mut inputs = HashMap::new();
    inputs.insert("px".to_string(), rand(rng, &[c, hw, hw], DType::F32));
    Ok(Case {
        attention: None,
        tiled_gemm: None,
        name: "patch_embed".into(),
        shape: format!("{hw}px p{ps} E{e}"),
        graph: g,
        weights: vec![
            ("w".into(), rand(rng, &[e, c, ps, ps], DType::F16)),
            ("b".into(), rand(rng, &[e], DType::F32)),
            ("pos".into(), rand(rng, &[np, e], DType::F32)),
        ],
        inputs,
        flops: 2.0 * (np * e * c * ps * ps) as f64,
        bytes: (4 * c * hw * hw + 2 * e * c * ps * ps + 4 * (e + 2 * np * e)) as f64,
    })
}

fn unary_case(rng: &mut Rng, name: &str, rows: usize, d: usize) -> Result<Case> {
    let mut g = Graph::new();
    let x = g.input("x", &[rows, d], DType::F32);
    let mut weights = vec![];
    match name {
        "layer_norm" => {
            let w = g.weight("w", &[d], DType::F32);
            let b = g.weight("b", &[d], DType::F32);
            g.layer_norm(x, w, b, 1e-6)?;
            weights.push(("w".to_string(), rand(rng, &[d], DType::F32)));
            weights.push(("b".to_string(), rand(rng, &[d], DType::F32)));
        }
        "rms_norm" => {
            let w = g.weight("w", &[d], DType::F32);
            g.rms_norm(x, w, 1e-6, true)?;
            weights.push(("w".to_string(), rand(rng, &[d], DType::F32)));
        }
        "argmax" => {
            g.argmax(x)?;
        }
        _ => {
            g.act(x, Activation::GeluTanh)?;
        }
    }
    let mut inputs = HashMap::new();
    inputs.insert("x".to_string(), rand(rng, &[rows, d], DType::F32));
    Ok(Case {
        attention: None,
        tiled_gemm: None,
        name: name.to_string(),
        shape: format!("{rows}x{d}"),
        graph: g,
        weights,
        inputs,
        flops: 0.0,
        bytes: (8 * rows * d) as f64,
    })
}

/// Runs the benchmark suite. `quick` uses small sizes (a smoke test that finishes in seconds
/// on a software adapter); the full sizes are the ones in BENCHMARKS.md.
pub fn bench_kernels(gpu: &Arc<Gpu>, quick: bool, runs: usize, progress: impl FnMut(&str)) -> Result<BenchReport> {
    bench_kernels_filtered(gpu, quick, runs, None, progress)
}

/// [`bench_kernels`] restricted to the cases whose "name shape" contains `filter` (the copy
/// baseline always runs).
pub fn bench_kernels_filtered(
    gpu: &Arc<Gpu>,
    quick: bool,
    runs: usize,
    filter: Option<&str>,
    mut progress: impl FnMut(&str),
) -> Result<BenchReport> {
    let runs = runs.max(1);
    let mut rng = Rng::new(7);
    let copy_bytes: u64 = if quick { 4 << 20 } else { 64 << 20 };
    progress("copy baseline");
    let copy_gbps = copy_bandwidth(gpu, copy_bytes, runs)?;
    let causal = AttnMask::CAUSAL;
    let cases: Vec<Case> = if quick {
        vec![
            matmul_case(&mut rng, 64, 256, 256, DType::F32)?,
            matmul_case(&mut rng, 1, 512, 512, DType::F16)?,
            q4_case(&mut rng, 1, 512, 512, Q4Scheme::Sym)?,
            q4_case(&mut rng, 1, 1024, 512, Q4Scheme::Asym)?,
            q4_case(&mut rng, 64, 256, 256, Q4Scheme::Sym)?,
            attention_case(&mut rng, "full", 64, 64, 4, 4, 32, AttnMask::FULL)?,
            attention_case(&mut rng, "decode", 1, 128, 8, 1, 64, causal)?,
            unary_case(&mut rng, "layer_norm", 64, 256)?,
            unary_case(&mut rng, "gelu_tanh", 64, 256)?,
        ]
    } else {
        vec![
            matmul_case(&mut rng, 256, 1152, 1152, DType::F32)?,
            matmul_case(&mut rng, 256, 1152, 1152, DType::F16)?,
            matmul_case(&mut rng, 256, 4304, 1152, DType::F16)?,
            matmul_case(&mut rng, 1, 16384, 2048, DType::F32)?,
            matmul_case(&mut rng, 1, 16384, 2048, DType::F16)?,
            // 4-bit at LM sizes: Gemma-2B MLP (K 2048 → N 16384), the 257k-token tied LM
            // head, and a SigLIP MLP over 256 patches (GEMM).
            q4_case(&mut rng, 1, 16384, 2048, Q4Scheme::Sym)?,
            q4_case(&mut rng, 1, 16384, 2048, Q4Scheme::Asym)?,
            q4_case(&mut rng, 1, 257216, 2048, Q4Scheme::Sym)?,
            q4_case(&mut rng, 256, 4304, 1152, Q4Scheme::Sym)?,
            // The vision/prefill GEMM shapes on the shared-memory tiled GEMM, f32 and with f16
            // math (skipped where the adapter has no shader-f16): what --f16-math buys.
            forced_gemm(matmul_case(&mut rng, 256, 1152, 1152, DType::F32)?, false),
            forced_gemm(matmul_case(&mut rng, 256, 1152, 1152, DType::F32)?, true),
            forced_gemm(matmul_case(&mut rng, 256, 1152, 1152, DType::F16)?, false),
            forced_gemm(matmul_case(&mut rng, 256, 1152, 1152, DType::F16)?, true),
            forced_gemm(matmul_case(&mut rng, 256, 4304, 1152, DType::F16)?, false),
            forced_gemm(matmul_case(&mut rng, 256, 4304, 1152, DType::F16)?, true),
            forced_gemm(q4_case(&mut rng, 256, 4304, 1152, Q4Scheme::Sym)?, false),
            forced_gemm(q4_case(&mut rng, 256, 4304, 1152, Q4Scheme::Sym)?, true),
            attention_case(&mut rng, "vision full", 256, 256, 16, 16, 72, AttnMask::FULL)?,
            attention_case(&mut rng, "prefill causal", 1024, 1024, 8, 1, 256, causal)?,
            // PaliGemma-3B's prefill: 256 image rows + a short prompt.
            attention_case(&mut rng, "prefill causal", 260, 260, 8, 1, 256, causal)?,
            attention_case(&mut rng, "decode", 1, 1024, 8, 1, 256, causal)?,
            // Each attention kernel on the vision and the 260-row prefill shapes, whatever
            // the adapter's rule picks (executor/attention.rs): the rule's evidence.
            forced(
                attention_case(&mut rng, "vision full", 256, 256, 16, 16, 72, AttnMask::FULL)?,
                Kernel::Attention,
            ),
            forced(
                attention_case(&mut rng, "vision full", 256, 256, 16, 16, 72, AttnMask::FULL)?,
                Kernel::AttentionRows,
            ),
            forced(
                attention_case(&mut rng, "vision full", 256, 256, 16, 16, 72, AttnMask::FULL)?,
                Kernel::AttentionTiled,
            ),
            forced(
                attention_case(&mut rng, "prefill causal", 260, 260, 8, 1, 256, causal)?,
                Kernel::Attention,
            ),
            forced(
                attention_case(&mut rng, "prefill causal", 260, 260, 8, 1, 256, causal)?,
                Kernel::AttentionRows,
            ),
            forced(
                attention_case(&mut rng, "prefill causal", 260, 260, 8, 1, 256, causal)?,
                Kernel::AttentionTiled,
            ),
            patch_embed_case(&mut rng)?,
            unary_case(&mut rng, "layer_norm", 256, 1152)?,
            unary_case(&mut rng, "rms_norm", 1, 2048)?,
            unary_case(&mut rng, "gelu_tanh", 256, 4304)?,
            unary_case(&mut rng, "argmax", 1, 257152)?,
        ]
    };
    let mut results = Vec::new();
    for c in cases {
        if filter.is_some_and(|f| !format!("{} {}", c.name, c.shape).contains(f)) {
            continue;
        }
        if c.tiled_gemm == Some(true) && !gpu.has_shader_f16() {
            progress(&format!(
                "{} {}: skipped, the adapter has no shader-f16",
                c.name, c.shape
            ));
            continue;
        }
        progress(&format!("{} {}", c.name, c.shape));
        let mut store = WeightStore::new();
        for (n, t) in &c.weights {
            store.upload(gpu, n, t)?;
        }
        let mut ex = Executor::new(gpu.clone());
        gpu.set_attention_kernel(c.attention);
        let (barrier_free, f16_math) = (gpu.barrier_free_matmul(), gpu.f16_math());
        if let Some(f16) = c.tiled_gemm {
            gpu.set_barrier_free_matmul(false);
            gpu.set_f16_math(f16)?;
        }
        let timed = (|| {
            // Warm-up: compiles the pipeline and touches every buffer.
            ex.time_graph(&c.graph, &store, &c.inputs, 1)?;
            let mut times = Vec::new();
            for _ in 0..runs {
                times.push(ex.time_graph(&c.graph, &store, &c.inputs, 3)?);
            }
            Ok::<_, crate::GpuError>(times)
        })();
        gpu.set_attention_kernel(None);
        gpu.set_barrier_free_matmul(barrier_free);
        gpu.set_f16_math(f16_math)?;
        let times = timed?;
        let t = median(times);
        let gbps = c.bytes / t / 1e9;
        results.push(BenchResult {
            name: c.name,
            shape: c.shape,
            median_ms: t * 1e3,
            gflops: c.flops / t / 1e9,
            gbps,
            copy_ratio: gbps / copy_gbps,
        });
    }
    Ok(BenchReport {
        copy_gbps,
        copy_bytes,
        runs,
        results,
    })
}
