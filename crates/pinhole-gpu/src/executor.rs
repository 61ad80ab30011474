//! The graph executor: plans buffers for a [`Graph`], turns every op into WGSL dispatches,
//! encodes the whole graph into one command buffer with one submit, and reads back only the
//! graph's outputs.
//!
//! Memory: intermediate buffers come from a pool. A value's buffer returns to the pool right
//! after its last use, so later ops in the same graph reuse it (WebGPU orders dispatches and
//! their storage hazards); across runs the pool keeps the buffers, so a decode loop allocates
//! nothing after its first step. Persistent `State` tensors (KV caches) live in the executor.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::Arc;

use pinhole_core::graph::{Activation, Graph, Op, TensorId, ValueKind};
use pinhole_core::tensor::{numel, rows_of, Data};
use pinhole_core::{DType, Error as CoreError, Tensor};

use crate::context::Gpu;
use crate::error::{GpuError, Result};
use crate::kernels::{grid, Kernel};
use crate::params::{
    ArgmaxParams, AttentionParams, CopyParams, ElementwiseParams, EmbeddingParams, KernelParams, MatmulParams,
    NormParams, PatchEmbedParams, Q4Params, RopeParams, SampleParams,
};
use crate::readback::MapFuture;
use crate::weights::{Chunk, GpuTensor, WeightStore};

/// Rows at or below which a matmul uses the GEMV kernel (decode steps).
const GEMV_MAX_ROWS: usize = 4;
/// Weight rows per workgroup of the 4-bit GEMV (RPW in q4.wgsl).
const Q4_GEMV_ROWS: u64 = 8;

struct Dispatch {
    kernel: Kernel,
    w_f16: bool,
    params: Vec<u8>,
    bindings: Vec<(u32, wgpu::Buffer)>,
    groups: [u32; 3],
}

impl Dispatch {
    /// A dispatch of `kernel` with its params struct and its storage buffers by WGSL binding
    /// name. The struct and the names must be the ones of the kernel's row in the kernel table
    /// (which `tests/layout.rs` checks against the shader), so a wrong, missing or extra
    /// binding is an error here instead of a validation failure or a silent misread.
    fn new<P: KernelParams>(
        kernel: Kernel,
        params: P,
        groups: [u32; 3],
        bind: &[(&str, &wgpu::Buffer)],
    ) -> Result<Dispatch> {
        let mismatch = |message: String| GpuError::Dispatch {
            kernel: kernel.label(),
            message,
        };
        if P::LAYOUT.name != kernel.params().name {
            return Err(mismatch(format!(
                "params are {} but the kernel takes {}",
                P::LAYOUT.name,
                kernel.params().name
            )));
        }
        let want = kernel.bindings();
        let names = |v: &mut dyn Iterator<Item = &str>| v.collect::<Vec<_>>().join(", ");
        if bind.len() != want.len() {
            return Err(mismatch(format!(
                "bound [{}], the kernel uses [{}]",
                names(&mut bind.iter().map(|b| b.0)),
                names(&mut want.iter().map(|w| w.1))
            )));
        }
        let mut bindings = Vec::with_capacity(want.len());
        for &(slot, name) in want {
            let b = bind
                .iter()
                .find(|b| b.0 == name)
                .ok_or_else(|| mismatch(format!("binding '{name}' (slot {slot}) is not bound")))?;
            bindings.push((slot, b.1.clone()));
        }
        Ok(Dispatch {
            kernel,
            w_f16: false,
            params: bytemuck::bytes_of(&params).to_vec(),
            bindings,
            groups,
        })
    }

    /// Selects the f16-weight specialisation (`W_F16`) of a weight-reading kernel.
    fn f16(mut self, on: bool) -> Self {
        self.w_f16 = on;
        self
    }
}

/// Counters for tests and `--json` reports.
#[derive(Clone, Debug, Default)]
pub struct RunStats {
    pub dispatches: usize,
    pub submits: usize,
    pub buffers_created: usize,
    pub pooled_bytes: u64,
}

struct Plan {
    dispatches: Vec<Dispatch>,
    uploads: Vec<(wgpu::Buffer, Vec<u8>)>,
    values: Vec<Option<GpuTensor>>,
    /// Buffers taken from the pool for this run (returned at the end).
    taken: Vec<wgpu::Buffer>,
}

pub struct Executor {
    gpu: Arc<Gpu>,
    states: HashMap<String, GpuTensor>,
    free: Vec<wgpu::Buffer>,
    readback_free: Vec<wgpu::Buffer>,
    uniform: Option<wgpu::Buffer>,
    /// Fill every op output with NaN before the op runs, so an element a kernel forgets to
    /// write shows up in tests instead of passing by luck.
    pub poison: bool,
    pub stats: RunStats,
}

fn core_err(e: CoreError) -> GpuError {
    GpuError::Core(e)
}

impl Executor {
    pub fn new(gpu: Arc<Gpu>) -> Self {
        Executor {
            gpu,
            states: HashMap::new(),
            free: Vec::new(),
            readback_free: Vec::new(),
            uniform: None,
            poison: false,
            stats: RunStats::default(),
        }
    }

    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// Drops persistent state (KV caches) so the next graph starts fresh.
    pub fn clear_states(&mut self) {
        self.states.clear();
    }

    /// GPU bytes held by persistent state tensors.
    pub fn state_bytes(&self) -> u64 {
        self.states.values().map(|t| t.bytes()).sum()
    }

    /// Runs `g` and returns its outputs, in order.
    pub async fn run(
        &mut self,
        g: &Graph,
        weights: &WeightStore,
        inputs: &HashMap<String, Tensor>,
    ) -> Result<Vec<Tensor>> {
        self.gpu.check_alive()?;
        let scope = self.gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = self.gpu.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let plan = self.plan(g, weights, inputs);
        let result = match plan {
            Ok(plan) => self.submit_and_read(g, plan, 1).await,
            Err(e) => Err(e),
        };
        let oom_err = oom.pop().await;
        let val_err = scope.pop().await;
        if let Some(e) = oom_err {
            return Err(GpuError::Validation(format!("out of GPU memory: {e}")));
        }
        if let Some(e) = val_err {
            return Err(GpuError::Validation(e.to_string()));
        }
        if let Some(e) = self.gpu.take_uncaptured() {
            return Err(GpuError::Validation(e));
        }
        self.gpu.check_alive()?;
        result
    }

    /// Runs the graph's dispatches `repeats` times in one submission and returns the wall
    /// time per repeat in seconds (native only; used by `pinhole bench`).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn time_graph(
        &mut self,
        g: &Graph,
        weights: &WeightStore,
        inputs: &HashMap<String, Tensor>,
        repeats: usize,
    ) -> Result<f64> {
        let plan = self.plan(g, weights, inputs)?;
        let start = std::time::Instant::now();
        pollster::block_on(self.submit_and_read(g, plan, repeats.max(1)))?;
        Ok(start.elapsed().as_secs_f64() / repeats.max(1) as f64)
    }

    fn acquire(&mut self, bytes: u64, what: &str, taken: &mut Vec<wgpu::Buffer>) -> Result<wgpu::Buffer> {
        let limit = self.gpu.activation_binding_limit();
        if bytes > limit {
            return Err(GpuError::TooLarge {
                what: what.to_string(),
                bytes,
                limit,
                limit_name: "max_storage_buffer_binding_size",
            });
        }
        let need = bytes.max(16);
        // Smallest pooled buffer that fits without wasting more than half of it.
        let mut best: Option<usize> = None;
        for (i, b) in self.free.iter().enumerate() {
            let s = b.size();
            if s >= need && s <= need * 2 + 4096 && best.is_none_or(|j| s < self.free[j].size()) {
                best = Some(i);
            }
        }
        let buf = match best {
            Some(i) => self.free.swap_remove(i),
            None => {
                self.stats.buffers_created += 1;
                self.stats.pooled_bytes += need.div_ceil(256) * 256;
                self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("pinhole activation"),
                    size: need.div_ceil(256) * 256,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            }
        };
        taken.push(buf.clone());
        Ok(buf)
    }

    fn single(t: &GpuTensor, gpu: &Gpu, what: &str) -> Result<wgpu::Buffer> {
        t.single(what, gpu).cloned()
    }

    fn plan(&mut self, g: &Graph, weights: &WeightStore, inputs: &HashMap<String, Tensor>) -> Result<Plan> {
        let n = g.values.len();
        // Last op index reading each value; graph outputs live to the end.
        let mut last_use = vec![0usize; n];
        for (i, v) in g.values.iter().enumerate() {
            if let ValueKind::Op(op) = &v.kind {
                for inp in op.inputs() {
                    if inp.0 >= i {
                        return Err(GpuError::Core(CoreError::Graph(format!(
                            "op #{i} ({}) reads tensor #{} defined after it",
                            op.name(),
                            inp.0
                        ))));
                    }
                    last_use[inp.0] = i;
                }
            }
        }
        for o in &g.outputs {
            if o.0 >= n {
                return Err(GpuError::Core(CoreError::Graph(format!(
                    "output #{} does not exist",
                    o.0
                ))));
            }
            last_use[o.0] = usize::MAX;
        }
        let mut plan = Plan {
            dispatches: Vec::new(),
            uploads: Vec::new(),
            values: vec![None; n],
            taken: Vec::new(),
        };
        // Values whose buffer may go back to the pool after their last use.
        let mut releasable = vec![false; n];
        let gpu = self.gpu.clone();
        let max_dim = gpu.limits.max_compute_workgroups_per_dimension;
        let grid1 = |threads: usize| -> (u32, u32) { grid((threads as u64).div_ceil(256), max_dim) };

        // Host data (inputs, constants) is written with queue.write_buffer, which lands before
        // the command buffer runs. So its buffers are taken first, while the pool holds only
        // buffers idle since the last run: a buffer freed by an op of this run and refilled by
        // an upload would be overwritten before that op reads it.
        let mut host_vals: HashMap<usize, GpuTensor> = HashMap::new();
        for (i, v) in g.values.iter().enumerate() {
            let (name, t) = match &v.kind {
                ValueKind::Input(name) => (
                    name.as_str(),
                    inputs
                        .get(name.as_str())
                        .ok_or_else(|| core_err(CoreError::Graph(format!("input '{name}' was not supplied"))))?,
                ),
                ValueKind::Const(t) => ("constant", t),
                _ => continue,
            };
            if t.shape != v.shape || (t.dtype == DType::U32) != (v.dtype == DType::U32) {
                return Err(core_err(CoreError::Shape {
                    what: format!("input '{name}'"),
                    detail: format!(
                        "expected {} {:?}, got {} {:?}",
                        v.dtype.name(),
                        v.shape,
                        t.dtype.name(),
                        t.shape
                    ),
                }));
            }
            let bytes = match &t.data {
                Data::F32(d) => bytemuck::cast_slice::<f32, u8>(d).to_vec(),
                Data::U32(d) => bytemuck::cast_slice::<u32, u8>(d).to_vec(),
                Data::Q4(_) => {
                    return Err(core_err(CoreError::DType {
                        what: format!("input '{name}'"),
                        detail: "4-bit data can only be a weight".into(),
                    }))
                }
            };
            let buf = self.acquire(bytes.len() as u64, &format!("input '{name}'"), &mut plan.taken)?;
            plan.uploads.push((buf.clone(), bytes));
            let dtype = if v.dtype == DType::U32 { DType::U32 } else { DType::F32 };
            host_vals.insert(
                i,
                GpuTensor {
                    shape: v.shape.clone(),
                    dtype,
                    chunks: vec![Chunk {
                        buffer: buf,
                        row0: 0,
                        rows: rows_of(&v.shape),
                    }],
                },
            );
        }

        for (i, v) in g.values.iter().enumerate() {
            let out = match &v.kind {
                ValueKind::Input(_) | ValueKind::Const(_) => host_vals
                    .remove(&i)
                    .ok_or_else(|| core_err(CoreError::Graph("input buffer missing".into())))?,
                ValueKind::Weight(name) => {
                    let w = weights
                        .get(name)
                        .ok_or_else(|| core_err(CoreError::Graph(format!("weight '{name}' was never uploaded"))))?;
                    if w.shape != v.shape {
                        return Err(core_err(CoreError::Shape {
                            what: format!("weight '{name}'"),
                            detail: format!("graph expects {:?}, uploaded {:?}", v.shape, w.shape),
                        }));
                    }
                    w.clone()
                }
                ValueKind::State(name) => {
                    let ok = self.states.get(name).is_some_and(|s| s.shape == v.shape);
                    if !ok {
                        let bytes = (numel(&v.shape) * 4) as u64;
                        let limit = gpu.activation_binding_limit();
                        if bytes > limit {
                            return Err(GpuError::TooLarge {
                                what: format!("state '{name}' {:?}", v.shape),
                                bytes,
                                limit,
                                limit_name: "max_storage_buffer_binding_size",
                            });
                        }
                        // New buffers are zero-initialised by WebGPU.
                        let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                            label: Some(name),
                            size: bytes.max(16).div_ceil(16) * 16,
                            usage: wgpu::BufferUsages::STORAGE
                                | wgpu::BufferUsages::COPY_SRC
                                | wgpu::BufferUsages::COPY_DST,
                            mapped_at_creation: false,
                        });
                        self.states.insert(
                            name.clone(),
                            GpuTensor {
                                shape: v.shape.clone(),
                                dtype: DType::F32,
                                chunks: vec![Chunk {
                                    buffer,
                                    row0: 0,
                                    rows: rows_of(&v.shape),
                                }],
                            },
                        );
                    }
                    self.states
                        .get(name)
                        .cloned()
                        .ok_or_else(|| core_err(CoreError::Graph(format!("state '{name}' missing"))))?
                }
                ValueKind::Op(op) => {
                    let t = self.plan_op(g, i, op, &v.shape, v.dtype, &mut plan, &grid1)?;
                    if !matches!(op, Op::WriteRows { .. }) {
                        releasable[i] = true;
                    }
                    t
                }
            };
            plan.values[i] = Some(out);
            // Return buffers whose last reader was this op.
            if let ValueKind::Op(op) = &v.kind {
                for inp in op.inputs() {
                    if last_use[inp.0] == i && releasable[inp.0] {
                        if let Some(t) = &plan.values[inp.0] {
                            for c in &t.chunks {
                                self.free.push(c.buffer.clone());
                            }
                        }
                        releasable[inp.0] = false;
                    }
                }
            }
        }
        Ok(plan)
    }

    #[allow(clippy::too_many_arguments)]
    fn plan_op(
        &mut self,
        g: &Graph,
        i: usize,
        op: &Op,
        shape: &[usize],
        dtype: DType,
        plan: &mut Plan,
        grid1: &dyn Fn(usize) -> (u32, u32),
    ) -> Result<GpuTensor> {
        let gpu = self.gpu.clone();
        let val = |id: TensorId| -> Result<&GpuTensor> {
            plan.values
                .get(id.0)
                .and_then(|v| v.as_ref())
                .ok_or_else(|| core_err(CoreError::Graph(format!("tensor #{} used before defined", id.0))))
        };
        let buf = |id: TensorId, what: &str| -> Result<wgpu::Buffer> {
            let t = val(id)?;
            // 4-bit weights are read only by the q4 kernels (matmul, embedding) through their
            // chunks; a float kernel must never see the packed words.
            if let DType::Q4(_) = t.dtype {
                return Err(core_err(CoreError::DType {
                    what: format!("{what} of {}", op.name()),
                    detail: "a 4-bit weight can only be a matmul weight or an embedding table".into(),
                }));
            }
            Self::single(t, &gpu, what)
        };
        let f32_store = |id: TensorId, what: &str| -> Result<()> {
            let t = val(id)?;
            if t.dtype != DType::F32 {
                return Err(core_err(CoreError::DType {
                    what: format!("{what} of {}", op.name()),
                    detail: format!("must be stored as f32, is {}", t.dtype.name()),
                }));
            }
            Ok(())
        };

        if let Op::WriteRows { state, src, row } = *op {
            let st = val(state)?.clone();
            let e = st.cols();
            let n = g.numel(src).map_err(core_err)?;
            let (gx, gy) = grid1(n);
            let params = CopyParams {
                n: n as u32,
                dst_off: (row * e) as u32,
                gx,
                ..Default::default()
            };
            let (src_b, dst_b) = (buf(src, "write_rows src")?, Self::single(&st, &gpu, "state")?);
            plan.dispatches.push(Dispatch::new(
                Kernel::CopyRange,
                params,
                [gx, gy, 1],
                &[("src", &src_b), ("dst", &dst_b)],
            )?);
            return Ok(st);
        }

        let out_elems = numel(shape);
        let bytes = (out_elems * 4) as u64;
        let out = self.acquire(
            bytes,
            &format!("output of {} #{i} {shape:?}", op.name()),
            &mut plan.taken,
        )?;
        if self.poison {
            let (gx, gy) = grid1(out_elems);
            let params = CopyParams {
                n: out_elems as u32,
                value: 0xFFFF_FFFF,
                gx,
                ..Default::default()
            };
            plan.dispatches
                .push(Dispatch::new(Kernel::Fill, params, [gx, gy, 1], &[("dst", &out)])?);
        }
        // The copy of `n` words from `src` (from word `src_off`) into the output.
        let copy = |src: &wgpu::Buffer, n: usize, src_off: usize| -> Result<Dispatch> {
            let (gx, gy) = grid1(n);
            let params = CopyParams {
                n: n as u32,
                src_off: src_off as u32,
                gx,
                ..Default::default()
            };
            Dispatch::new(Kernel::CopyRange, params, [gx, gy, 1], &[("src", src), ("dst", &out)])
        };
        let mut ds: Vec<Dispatch> = Vec::new();
        match *op {
            Op::MatMul { x, w, bias } => {
                let wt = val(w)?.clone();
                let q4 = matches!(wt.dtype, DType::Q4(_));
                if !q4 && !matches!(wt.dtype, DType::F32 | DType::F16) {
                    return Err(core_err(CoreError::DType {
                        what: "matmul weight".into(),
                        detail: format!("{} is not supported", wt.dtype.name()),
                    }));
                }
                let m = rows_of(shape);
                let bias_buf = match bias {
                    Some(b) => {
                        f32_store(b, "bias")?;
                        buf(b, "matmul bias")?
                    }
                    None => gpu.dummy.clone(),
                };
                let xb = buf(x, "matmul input")?;
                let max_groups = gpu.limits.max_compute_workgroups_per_dimension;
                for c in &wt.chunks {
                    // GEMV (≤ 4 rows of x) reads every weight once for all rows; GEMM tiles 64×64.
                    let gemv = m <= GEMV_MAX_ROWS;
                    let bind = [("x", &xb), ("w", &c.buffer), ("bias", &bias_buf), ("y", &out)];
                    let d = if q4 {
                        let (gx, gy) = if gemv {
                            grid((c.rows as u64).div_ceil(Q4_GEMV_ROWS), max_groups)
                        } else {
                            (c.rows.div_ceil(64) as u32, m.div_ceil(64) as u32)
                        };
                        let kernel = if gemv { Kernel::Q4Gemv } else { Kernel::Q4Gemm };
                        let params = q4_params(&wt, c, m, bias.is_some(), gx)?;
                        Dispatch::new(kernel, params, [gx, gy, 1], &bind)?
                    } else {
                        // Same parameters for both kernels; only the kernel and its grid differ.
                        let (kernel, gx, gy, gz) = if gemv {
                            let (gx, gy) = grid((c.rows as u64).div_ceil(4), max_groups);
                            (Kernel::Gemv, gx, gy, m as u32)
                        } else {
                            (Kernel::Gemm, c.rows.div_ceil(64) as u32, m.div_ceil(64) as u32, 1)
                        };
                        let params = MatmulParams {
                            m: m as u32,
                            n: wt.rows() as u32,
                            k: wt.cols() as u32,
                            n0: c.row0 as u32,
                            nc: c.rows as u32,
                            has_bias: bias.is_some() as u32,
                            gx,
                            _pad: 0,
                        };
                        Dispatch::new(kernel, params, [gx, gy, gz], &bind)?.f16(wt.dtype == DType::F16)
                    };
                    ds.push(d);
                }
            }
            Op::Attention { q, k, v, p } => {
                let s = shape[0];
                let (gx, gy) = grid((s * p.n_heads) as u64, gpu.limits.max_compute_workgroups_per_dimension);
                let params = AttentionParams {
                    s: s as u32,
                    n_heads: p.n_heads as u32,
                    n_kv: p.n_kv_heads as u32,
                    head_dim: p.head_dim as u32,
                    kv_len: p.kv_len as u32,
                    q_pos0: p.q_pos0 as u32,
                    causal: p.mask.causal as u32,
                    prefix_len: p.mask.prefix_len as u32,
                    window: p.mask.window as u32,
                    gx,
                    scale: p.scale,
                    softcap: p.softcap,
                };
                let (qb, kb, vb) = (buf(q, "attention q")?, buf(k, "attention k")?, buf(v, "attention v")?);
                ds.push(Dispatch::new(
                    Kernel::Attention,
                    params,
                    [gx, gy, 1],
                    &[("q", &qb), ("k", &kb), ("v", &vb), ("out", &out)],
                )?);
            }
            Op::PatchEmbed {
                pixels,
                w,
                b,
                pos,
                patch,
            } => {
                let ps = g.shape(pixels).map_err(core_err)?.to_vec();
                f32_store(b, "bias")?;
                f32_store(pos, "position embedding")?;
                let f16 = val(w)?.dtype == DType::F16;
                let (gx, gy) = grid1(out_elems);
                let params = PatchEmbedParams {
                    c: ps[0] as u32,
                    h: ps[1] as u32,
                    w: ps[2] as u32,
                    psize: patch as u32,
                    e: shape[1] as u32,
                    np: shape[0] as u32,
                    gx,
                    _pad: 0,
                };
                let bind = [
                    ("px", &buf(pixels, "pixels")?),
                    ("w", &buf(w, "patch weight")?),
                    ("bias", &buf(b, "patch bias")?),
                    ("out", &out),
                    ("pos", &buf(pos, "position embedding")?),
                ];
                ds.push(Dispatch::new(Kernel::PatchEmbed, params, [gx, gy, 1], &bind)?.f16(f16));
            }
            Op::LayerNorm { x, w, b, eps } => {
                f32_store(w, "weight")?;
                f32_store(b, "bias")?;
                let rows = rows_of(shape);
                let (gx, gy) = grid(rows as u64, gpu.limits.max_compute_workgroups_per_dimension);
                let params = NormParams {
                    rows: rows as u32,
                    d: shape[shape.len() - 1] as u32,
                    eps,
                    gx,
                    ..Default::default()
                };
                let bind = [
                    ("x", &buf(x, "x")?),
                    ("w", &buf(w, "norm weight")?),
                    ("b", &buf(b, "norm bias")?),
                    ("y", &out),
                ];
                ds.push(Dispatch::new(Kernel::LayerNorm, params, [gx, gy, 1], &bind)?);
            }
            Op::RmsNorm { x, w, eps, add_one } => {
                f32_store(w, "weight")?;
                let rows = rows_of(shape);
                let (gx, gy) = grid(rows as u64, gpu.limits.max_compute_workgroups_per_dimension);
                let params = NormParams {
                    rows: rows as u32,
                    d: shape[shape.len() - 1] as u32,
                    eps,
                    add_one: add_one as u32,
                    gx,
                    ..Default::default()
                };
                let bind = [("x", &buf(x, "x")?), ("w", &buf(w, "norm weight")?), ("y", &out)];
                ds.push(Dispatch::new(Kernel::RmsNorm, params, [gx, gy, 1], &bind)?);
            }
            Op::Act { x, act } => ds.push(ew(
                Kernel::Act,
                out_elems,
                act_code(act),
                0.0,
                &[("a", &buf(x, "x")?), ("out", &out)],
                grid1,
            )?),
            Op::Gated { gate, up, act } => ds.push(ew(
                Kernel::Gated,
                out_elems,
                act_code(act),
                0.0,
                &[("a", &buf(gate, "gate")?), ("b", &buf(up, "up")?), ("out", &out)],
                grid1,
            )?),
            Op::Add { a, b } => ds.push(ew(
                Kernel::Add,
                out_elems,
                0,
                0.0,
                &[("a", &buf(a, "a")?), ("b", &buf(b, "b")?), ("out", &out)],
                grid1,
            )?),
            Op::Scale { x, s } => ds.push(ew(
                Kernel::Scale,
                out_elems,
                0,
                s,
                &[("a", &buf(x, "x")?), ("out", &out)],
                grid1,
            )?),
            Op::SoftCap { x, cap } => ds.push(ew(
                Kernel::SoftCap,
                out_elems,
                0,
                cap,
                &[("a", &buf(x, "x")?), ("out", &out)],
                grid1,
            )?),
            Op::Rope {
                x,
                cos_sin,
                n_heads,
                head_dim,
                rotary_dim,
            } => {
                let (gx, gy) = grid1(out_elems);
                let params = RopeParams {
                    s: shape[0] as u32,
                    n_heads: n_heads as u32,
                    head_dim: head_dim as u32,
                    rot: rotary_dim as u32,
                    gx,
                    ..Default::default()
                };
                let bind = [("x", &buf(x, "x")?), ("cs", &buf(cos_sin, "cos_sin")?), ("out", &out)];
                ds.push(Dispatch::new(Kernel::Rope, params, [gx, gy, 1], &bind)?);
            }
            Op::Embedding { table, ids } if matches!(val(table)?.dtype, DType::Q4(_)) => {
                let t = val(table)?.clone();
                self.check_ids(g, ids, t.rows(), "embedding ids")?;
                let idb = buf(ids, "ids")?;
                let (gx, gy) = grid1(out_elems);
                for c in &t.chunks {
                    let params = q4_params(&t, c, shape[0], false, gx)?;
                    let bind = [("w", &c.buffer), ("y", &out), ("ids", &idb)];
                    ds.push(Dispatch::new(Kernel::Q4Gather, params, [gx, gy, 1], &bind)?);
                }
            }
            Op::Embedding { table, ids } => {
                let t = val(table)?.clone();
                self.check_ids(g, ids, t.rows(), "embedding ids")?;
                let idb = buf(ids, "ids")?;
                let (gx, gy) = grid1(out_elems);
                for c in &t.chunks {
                    let params = EmbeddingParams {
                        s: shape[0] as u32,
                        e: shape[1] as u32,
                        row0: c.row0 as u32,
                        rows: c.rows as u32,
                        gx,
                        ..Default::default()
                    };
                    let bind = [("w", &c.buffer), ("ids", &idb), ("out", &out)];
                    ds.push(Dispatch::new(Kernel::Gather, params, [gx, gy, 1], &bind)?.f16(t.dtype == DType::F16));
                }
            }
            Op::ScatterRows { dst, src, index } => {
                self.check_ids(g, index, shape[0], "scatter index")?;
                ds.push(copy(&buf(dst, "dst")?, out_elems, 0)?);
                let ss = g.shape(src).map_err(core_err)?;
                let (gx, gy) = grid1(numel(ss));
                let params = EmbeddingParams {
                    s: ss[0] as u32,
                    e: ss[1] as u32,
                    gx,
                    ..Default::default()
                };
                let bind = [
                    ("ids", &buf(index, "index")?),
                    ("src", &buf(src, "src")?),
                    ("out", &out),
                ];
                ds.push(Dispatch::new(Kernel::Scatter, params, [gx, gy, 1], &bind)?);
            }
            Op::Rows { x, start, count } => {
                let e = shape[1];
                ds.push(copy(&buf(x, "x")?, count * e, start * e)?);
            }
            // Row-major order is unchanged: a plain copy into the output buffer.
            Op::Reshape { x } => ds.push(copy(&buf(x, "x")?, out_elems, 0)?),
            Op::Argmax { x } => {
                let xs = g.shape(x).map_err(core_err)?;
                let rows = rows_of(xs);
                let nn = *xs.last().unwrap_or(&1);
                let (gx, gy) = grid(rows as u64, gpu.limits.max_compute_workgroups_per_dimension);
                let params = ArgmaxParams {
                    rows: rows as u32,
                    n: nn as u32,
                    gx,
                    _pad: 0,
                };
                let bind = [("x", &buf(x, "x")?), ("out", &out)];
                ds.push(Dispatch::new(Kernel::Argmax, params, [gx, gy, 1], &bind)?);
            }
            Op::Sample { x, p } => {
                let xs = g.shape(x).map_err(core_err)?;
                let rows = rows_of(xs);
                let nn = *xs.last().unwrap_or(&1);
                let (gx, gy) = grid(rows as u64, gpu.limits.max_compute_workgroups_per_dimension);
                let params = sample_params(rows, nn, gx, &p, 0, 1.0);
                let bind = [("x", &buf(x, "x")?), ("out_id", &out)];
                ds.push(Dispatch::new(Kernel::Sample, params, [gx, gy, 1], &bind)?);
            }
            Op::RepetitionPenalty { x, ids, penalty } => {
                let xs = g.shape(x).map_err(core_err)?;
                let rows = rows_of(xs);
                let nn = *xs.last().unwrap_or(&1);
                self.check_ids(g, ids, nn, "repetition penalty ids")?;
                let xb = buf(x, "x")?;
                ds.push(copy(&xb, out_elems, 0)?);
                let n_ids = g.numel(ids).map_err(core_err)?;
                if n_ids > 0 {
                    let (gx, gy) = grid1(rows * n_ids);
                    let sp = pinhole_core::SampleParams::new(0.0);
                    let params = sample_params(rows, nn, gx, &sp, n_ids, penalty);
                    let bind = [("x", &xb), ("ids", &buf(ids, "ids")?), ("out_x", &out)];
                    ds.push(Dispatch::new(Kernel::RepetitionPenalty, params, [gx, gy, 1], &bind)?);
                }
            }
            Op::WriteRows { .. } => {
                return Err(core_err(CoreError::Graph(
                    "write_rows is planned before outputs are allocated".into(),
                )))
            }
        }
        plan.dispatches.extend(ds);
        Ok(GpuTensor {
            shape: shape.to_vec(),
            dtype: if dtype == DType::U32 { DType::U32 } else { DType::F32 },
            chunks: vec![Chunk {
                buffer: out,
                row0: 0,
                rows: rows_of(shape),
            }],
        })
    }

    /// Ids known on the host (inputs and constants) are range-checked here: on the GPU an
    /// out-of-range id would silently read garbage.
    fn check_ids(&self, g: &Graph, ids: TensorId, limit: usize, what: &str) -> Result<()> {
        let t = match &g.value(ids).map_err(core_err)?.kind {
            ValueKind::Const(t) => Some(t),
            _ => None,
        };
        if let Some(t) = t {
            if let Some(bad) = t.as_u32().map_err(core_err)?.iter().find(|&&x| x as usize >= limit) {
                return Err(core_err(CoreError::Invalid(format!(
                    "{what}: {bad} is outside 0..{limit}"
                ))));
            }
        }
        Ok(())
    }

    async fn submit_and_read(&mut self, g: &Graph, plan: Plan, repeats: usize) -> Result<Vec<Tensor>> {
        let gpu = self.gpu.clone();
        let align = gpu.limits.min_uniform_buffer_offset_alignment.max(16) as usize;
        // One uniform buffer for every dispatch's parameters, one write.
        let mut ubytes: Vec<u8> = Vec::new();
        let mut offsets = Vec::with_capacity(plan.dispatches.len());
        for d in &plan.dispatches {
            let off = ubytes.len().div_ceil(align) * align;
            ubytes.resize(off, 0);
            offsets.push(off);
            ubytes.extend_from_slice(&d.params);
            let padded = ubytes.len().div_ceil(16) * 16;
            ubytes.resize(padded, 0);
        }
        let usize_ = (ubytes.len() as u64).max(16);
        if self.uniform.as_ref().is_none_or(|u| u.size() < usize_) {
            self.uniform = Some(gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("pinhole params"),
                size: usize_.div_ceil(4096) * 4096,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        }
        let uniform = self
            .uniform
            .clone()
            .ok_or_else(|| GpuError::Validation("no uniform buffer".into()))?;
        if !ubytes.is_empty() {
            gpu.queue.write_buffer(&uniform, 0, &ubytes);
        }
        for (b, data) in &plan.uploads {
            if !data.is_empty() {
                gpu.queue.write_buffer(b, 0, data);
            }
        }

        let mut groups_list = Vec::with_capacity(plan.dispatches.len());
        for (d, &off) in plan.dispatches.iter().zip(&offsets) {
            let pipeline = gpu.pipeline(d.kernel, d.w_f16).await?;
            let layout = pipeline.get_bind_group_layout(0);
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &uniform,
                    offset: off as u64,
                    size: NonZeroU64::new(d.params.len() as u64),
                }),
            }];
            for (bi, b) in &d.bindings {
                entries.push(wgpu::BindGroupEntry {
                    binding: *bi,
                    resource: b.as_entire_binding(),
                });
            }
            let bg = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(d.kernel.entry()),
                layout: &layout,
                entries: &entries,
            });
            groups_list.push((pipeline, bg, d.groups));
        }

        let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("pinhole forward"),
        });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("pinhole graph"),
                timestamp_writes: None,
            });
            for _ in 0..repeats {
                for (p, bg, [x, y, z]) in &groups_list {
                    pass.set_pipeline(p);
                    pass.set_bind_group(0, bg, &[]);
                    pass.dispatch_workgroups(*x, *y, *z);
                }
            }
        }
        self.stats.dispatches += groups_list.len() * repeats;

        // Copy outputs to mappable buffers in the same command buffer.
        let mut reads = Vec::new();
        for o in &g.outputs {
            let v = g.value(*o).map_err(core_err)?;
            let t = plan.values[o.0]
                .as_ref()
                .ok_or_else(|| core_err(CoreError::Graph(format!("output #{} not computed", o.0))))?;
            let bytes = (numel(&v.shape) * 4) as u64;
            let src = Self::single(t, &gpu, "output")?;
            let size = bytes.max(4).div_ceil(4) * 4;
            let rb = match self
                .readback_free
                .iter()
                .position(|b| b.size() >= size && b.size() <= size * 2 + 4096)
            {
                Some(i) => self.readback_free.swap_remove(i),
                None => gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("pinhole readback"),
                    size: size.div_ceil(256) * 256,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }),
            };
            if bytes > 0 {
                enc.copy_buffer_to_buffer(&src, 0, &rb, 0, Some(size));
            }
            reads.push((rb, size, v.shape.clone(), v.dtype));
        }
        gpu.queue.submit(Some(enc.finish()));
        self.stats.submits += 1;

        let futures: Vec<MapFuture> = reads.iter().map(|(rb, size, _, _)| MapFuture::new(rb, *size)).collect();
        gpu.wait_idle()?;
        let mut outs = Vec::with_capacity(reads.len());
        for (fut, (rb, size, shape, dtype)) in futures.into_iter().zip(reads) {
            fut.await.map_err(GpuError::Readback)?;
            let n = numel(&shape);
            let t = {
                let view = rb
                    .get_mapped_range(..size)
                    .map_err(|e| GpuError::Readback(e.to_string()))?;
                let words: &[u32] =
                    bytemuck::try_cast_slice(&view[..n * 4]).map_err(|e| GpuError::Readback(e.to_string()))?;
                if dtype == DType::U32 {
                    Tensor::u32(&shape, words.to_vec())
                } else {
                    Tensor::f32(&shape, words.iter().map(|&w| f32::from_bits(w)).collect())
                }
            };
            rb.unmap();
            self.readback_free.push(rb);
            outs.push(t.map_err(core_err)?);
        }
        // Everything taken for this run goes back to the pool for the next one.
        // (A buffer can appear twice in `taken` when it was freed and handed out again.)
        for b in plan.taken {
            if !self.free.contains(&b) {
                self.free.push(b);
            }
        }
        Ok(outs)
    }
}

/// The `Params` block of q4.wgsl for one row chunk of a 4-bit weight.
fn q4_params(wt: &GpuTensor, c: &Chunk, m: usize, has_bias: bool, gx: u32) -> Result<Q4Params> {
    let DType::Q4(f) = wt.dtype else {
        return Err(core_err(CoreError::DType {
            what: "4-bit kernel".into(),
            detail: format!("weight is {}", wt.dtype.name()),
        }));
    };
    let k = wt.cols();
    let (scales_at, offsets_at, _) = pinhole_core::quant::chunk_layout(c.rows, k, f);
    Ok(Q4Params {
        m: m as u32,
        n: wt.rows() as u32,
        k: k as u32,
        n0: c.row0 as u32,
        nc: c.rows as u32,
        has_bias: has_bias as u32,
        gx,
        group: f.group,
        asym: f.asym() as u32,
        scales_at: scales_at as u32,
        offsets_at: offsets_at as u32,
        _pad: 0,
    })
}

/// The `Params` block of sample.wgsl (shared by its two entry points).
fn sample_params(
    rows: usize,
    n: usize,
    gx: u32,
    p: &pinhole_core::SampleParams,
    n_ids: usize,
    penalty: f32,
) -> SampleParams {
    SampleParams {
        rows: rows as u32,
        n: n as u32,
        gx,
        top_k: p.top_k,
        temperature: p.temperature,
        top_p: p.top_p,
        uniform: p.uniform,
        n_ids: n_ids as u32,
        penalty,
        inv_penalty: 1.0 / penalty,
        _pad0: 0,
        _pad1: 0,
    }
}

fn act_code(a: Activation) -> u32 {
    match a {
        Activation::GeluTanh => 0,
        Activation::GeluErf => 1,
        Activation::Silu => 2,
    }
}

fn ew(
    kernel: Kernel,
    n: usize,
    op: u32,
    s: f32,
    bind: &[(&str, &wgpu::Buffer)],
    grid1: &dyn Fn(usize) -> (u32, u32),
) -> Result<Dispatch> {
    let (gx, gy) = grid1(n);
    let params = ElementwiseParams {
        n: n as u32,
        op,
        gx,
        s,
        ..Default::default()
    };
    Dispatch::new(kernel, params, [gx, gy, 1], bind)
}
