//! Planning: liveness of every value, the buffer pool, host uploads, persistent state tensors,
//! and the routing of each op to the dispatch module of its family.

use std::collections::HashMap;

use pinhole_core::graph::{Graph, Op, ValueKind};
use pinhole_core::tensor::{numel, rows_of, Data};
use pinhole_core::{DType, Error as CoreError, Tensor};

use super::fuse::{self, Fusion};
use super::{attention, copy, elementwise, embedding, matmul, norm, patch_embed, rope, sampling};
use super::{core_err, Dispatch, Executor, OpCtx};
use crate::error::{GpuError, Result};
use crate::kernels::Kernel;
use crate::params::CopyParams;
use crate::weights::{Chunk, GpuTensor, WeightStore};

/// Everything one run needs: dispatches in order, host uploads, every value's GPU tensor.
pub(super) struct Plan {
    pub(super) dispatches: Vec<Dispatch>,
    pub(super) uploads: Vec<(wgpu::Buffer, Vec<u8>)>,
    pub(super) values: Vec<Option<GpuTensor>>,
    /// Buffers taken from the pool for this run (returned at the end).
    pub(super) taken: Vec<wgpu::Buffer>,
}

impl Executor {
    pub(super) fn acquire(&mut self, bytes: u64, what: &str, taken: &mut Vec<wgpu::Buffer>) -> Result<wgpu::Buffer> {
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

    pub(super) fn plan(&mut self, g: &Graph, weights: &WeightStore, inputs: &HashMap<String, Tensor>) -> Result<Plan> {
        let n = g.values.len();
        // Last op index reading each value; graph outputs live to the end.
        let mut last_use = vec![0usize; n];
        let mut readers = vec![0usize; n];
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
                    readers[inp.0] += 1;
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
        let fusions = if self.fuse {
            fuse::find(g, &readers, &last_use)
        } else {
            vec![None; n]
        };
        // Outputs of consumer ops already planned by the matmul fused into them.
        let mut fused_out: HashMap<usize, GpuTensor> = HashMap::new();
        let mut plan = Plan {
            dispatches: Vec::new(),
            uploads: Vec::new(),
            values: vec![None; n],
            taken: Vec::new(),
        };
        // Values whose buffer may go back to the pool after their last use.
        let mut releasable = vec![false; n];

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
                ValueKind::Input(_) | ValueKind::Const(_) => Some(
                    host_vals
                        .remove(&i)
                        .ok_or_else(|| core_err(CoreError::Graph("input buffer missing".into())))?,
                ),
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
                    Some(w.clone())
                }
                ValueKind::State(name) => Some(self.state_tensor(name, &v.shape)?),
                ValueKind::Op(op) => {
                    if let Some(f) = fusions[i] {
                        // The matmul writes its consumer's output; it has no buffer of its
                        // own (its one reader is that consumer, planned here with it).
                        let t = self.plan_op(g, i, op, Some(f), &mut plan)?;
                        fused_out.insert(f.into, t);
                        None
                    } else {
                        let t = match fused_out.remove(&i) {
                            Some(t) => t,
                            None => self.plan_op(g, i, op, None, &mut plan)?,
                        };
                        if !matches!(op, Op::WriteRows { .. }) {
                            releasable[i] = true;
                        }
                        Some(t)
                    }
                }
            };
            plan.values[i] = out;
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

    /// The persistent state `name` (a KV cache), created zero-filled on first use or when its
    /// shape changed.
    fn state_tensor(&mut self, name: &str, shape: &[usize]) -> Result<GpuTensor> {
        if let Some(t) = self.states.get(name).filter(|s| s.shape == shape) {
            return Ok(t.clone());
        }
        let bytes = (numel(shape) * 4) as u64;
        let limit = self.gpu.activation_binding_limit();
        if bytes > limit {
            return Err(GpuError::TooLarge {
                what: format!("state '{name}' {shape:?}"),
                bytes,
                limit,
                limit_name: "max_storage_buffer_binding_size",
            });
        }
        // New buffers are zero-initialised by WebGPU.
        let buffer = self.gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(name),
            size: bytes.max(16).div_ceil(16) * 16,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let t = GpuTensor {
            shape: shape.to_vec(),
            dtype: DType::F32,
            chunks: vec![Chunk {
                buffer,
                row0: 0,
                rows: rows_of(shape),
            }],
        };
        self.states.insert(name.to_string(), t.clone());
        Ok(t)
    }

    /// Plans op #`i`: takes its output buffer from the pool (for `write_rows`, the output is
    /// the state it writes into), poisons it in tests, and lets the op's dispatch module add
    /// its dispatches. Adding an op means one arm here and its module. A matmul with `fused`
    /// gets the output of the op it absorbs.
    fn plan_op(&mut self, g: &Graph, i: usize, op: &Op, fused: Option<Fusion>, plan: &mut Plan) -> Result<GpuTensor> {
        let dtype = g.values[i].dtype;
        // The op whose output this is: `op`, or the consumer fused into it.
        let out_at = fused.map_or(i, |f| f.into);
        let shape = &g.values[out_at].shape;
        let out_op = match &g.values[out_at].kind {
            ValueKind::Op(o) => o,
            _ => return Err(core_err(CoreError::Graph(format!("fused into #{out_at}, not an op")))),
        };
        let gpu = self.gpu.clone();
        let mut out_off = 0;
        let (out, result) = if let Op::WriteRows { state, row, .. } = *out_op {
            // A fused producer may come before the state value in the graph (fuse.rs only
            // allows that for a plain state, which depends on nothing).
            let st = match (&plan.values[state.0], &g.values[state.0].kind) {
                (Some(t), _) => t.clone(),
                (None, ValueKind::State(name)) => self.state_tensor(name, &g.values[state.0].shape)?,
                _ => {
                    return Err(core_err(CoreError::Graph(format!(
                        "tensor #{} used before defined",
                        state.0
                    ))))
                }
            };
            if fused.is_some() {
                out_off = row * st.cols();
            }
            (st.single("state", &gpu)?.clone(), st)
        } else {
            let out_elems = numel(shape);
            let out = self.acquire(
                (out_elems * 4) as u64,
                &format!("output of {} #{i} {shape:?}", op.name()),
                &mut plan.taken,
            )?;
            if self.poison {
                let (gx, gy) = crate::kernels::grid(
                    (out_elems as u64).div_ceil(256),
                    gpu.limits.max_compute_workgroups_per_dimension,
                );
                let params = CopyParams {
                    n: out_elems as u32,
                    value: 0xFFFF_FFFF,
                    gx,
                    ..Default::default()
                };
                plan.dispatches
                    .push(Dispatch::new(Kernel::Fill, params, [gx, gy, 1], &[("dst", &out)])?);
            }
            let t = GpuTensor {
                shape: shape.to_vec(),
                dtype: if dtype == DType::U32 { DType::U32 } else { DType::F32 },
                chunks: vec![Chunk {
                    buffer: out.clone(),
                    row0: 0,
                    rows: rows_of(shape),
                }],
            };
            (out, t)
        };
        let mut cx = OpCtx {
            gpu: &gpu,
            g,
            op,
            shape,
            out: &out,
            out_off,
            values: &plan.values,
            dispatches: &mut plan.dispatches,
        };
        match op {
            Op::MatMul { .. } => matmul::plan(&mut cx, fused)?,
            Op::Attention { .. } => attention::plan(&mut cx)?,
            Op::PatchEmbed { .. } => patch_embed::plan(&mut cx)?,
            Op::LayerNorm { .. } | Op::RmsNorm { .. } => norm::plan(&mut cx)?,
            Op::Act { .. } | Op::Gated { .. } | Op::Add { .. } | Op::Scale { .. } | Op::SoftCap { .. } => {
                elementwise::plan(&mut cx)?
            }
            Op::Rope { .. } => rope::plan(&mut cx)?,
            Op::Embedding { .. } | Op::ScatterRows { .. } => embedding::plan(&mut cx)?,
            Op::Rows { .. } | Op::Reshape { .. } | Op::WriteRows { .. } => copy::plan(&mut cx)?,
            Op::Argmax { .. } | Op::Sample { .. } | Op::RepetitionPenalty { .. } => sampling::plan(&mut cx)?,
        }
        Ok(result)
    }
}
