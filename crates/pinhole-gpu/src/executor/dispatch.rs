//! What every dispatch module works with: [`Dispatch`], checked against the kernel table, and
//! [`OpCtx`], the view of the plan one op gets (its inputs' GPU tensors, its output buffer and
//! shape, grid helpers) plus the list its dispatches go to.

use pinhole_core::graph::{Graph, Op, TensorId, ValueKind};
use pinhole_core::tensor::numel;
use pinhole_core::{DType, Error as CoreError};

use super::core_err;
use crate::context::Gpu;
use crate::error::{GpuError, Result};
use crate::kernels::{grid, Kernel};
use crate::params::{CopyParams, KernelParams};
use crate::weights::GpuTensor;

/// One compute dispatch: a kernel, its params bytes, its storage buffers by slot, its grid.
pub(crate) struct Dispatch {
    pub(super) kernel: Kernel,
    pub(super) w_f16: bool,
    pub(super) f16_math: bool,
    pub(super) params: Vec<u8>,
    pub(super) bindings: Vec<(u32, wgpu::Buffer)>,
    pub(super) groups: [u32; 3],
}

impl Dispatch {
    /// A dispatch of `kernel` with its params struct and its storage buffers by WGSL binding
    /// name. The struct and the names must be the ones of the kernel's row in the kernel table
    /// (which `tests/layout.rs` checks against the shader), so a wrong, missing or extra
    /// binding is an error here instead of a validation failure or a silent misread.
    pub(crate) fn new<P: KernelParams>(
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
            f16_math: false,
            params: bytemuck::bytes_of(&params).to_vec(),
            bindings,
            groups,
        })
    }

    /// Selects the f16-weight specialisation (`W_F16`) of a weight-reading kernel.
    pub(crate) fn f16(mut self, on: bool) -> Self {
        self.w_f16 = on;
        self
    }

    /// Selects the f16-math variant where the kernel has one (`Kernel::has_f16_math`: the
    /// tiled GEMMs); a no-op for every other kernel.
    pub(crate) fn f16_math(mut self, on: bool) -> Self {
        self.f16_math = on && self.kernel.has_f16_math();
        self
    }
}

/// One op being planned.
pub(crate) struct OpCtx<'a> {
    pub gpu: &'a Gpu,
    pub g: &'a Graph,
    pub op: &'a Op,
    /// The op's output shape and buffer (for `write_rows`, the state it writes into).
    pub shape: &'a [usize],
    pub out: &'a wgpu::Buffer,
    /// The element of `out` the op's output starts at: 0, or the first row a fused
    /// `write_rows` would have written (executor/fuse.rs; matmul and RoPE honour it).
    pub out_off: usize,
    pub(super) values: &'a [Option<GpuTensor>],
    pub(super) dispatches: &'a mut Vec<Dispatch>,
}

impl<'a> OpCtx<'a> {
    pub fn push(&mut self, d: Dispatch) {
        self.dispatches.push(d);
    }

    /// Number of f32 (or u32) elements of the output.
    pub fn out_elems(&self) -> usize {
        numel(self.shape)
    }

    /// The GPU tensor of an input of the op.
    pub fn val(&self, id: TensorId) -> Result<&'a GpuTensor> {
        let values: &'a [Option<GpuTensor>] = self.values;
        values
            .get(id.0)
            .and_then(|v| v.as_ref())
            .ok_or_else(|| core_err(CoreError::Graph(format!("tensor #{} used before defined", id.0))))
    }

    /// The single buffer of a float or u32 input. 4-bit weights are read only by the q4
    /// kernels (matmul, embedding) through their chunks; a float kernel must never see the
    /// packed words.
    pub fn buf(&self, id: TensorId, what: &str) -> Result<wgpu::Buffer> {
        let t = self.val(id)?;
        if let DType::Q4(_) = t.dtype {
            return Err(core_err(CoreError::DType {
                what: format!("{what} of {}", self.op.name()),
                detail: "a 4-bit weight can only be a matmul weight or an embedding table".into(),
            }));
        }
        t.single(what, self.gpu).cloned()
    }

    /// Inputs that kernels read as plain f32 (norm weights, biases, position embeddings).
    pub fn f32_store(&self, id: TensorId, what: &str) -> Result<()> {
        let t = self.val(id)?;
        if t.dtype != DType::F32 {
            return Err(core_err(CoreError::DType {
                what: format!("{what} of {}", self.op.name()),
                detail: format!("must be stored as f32, is {}", t.dtype.name()),
            }));
        }
        Ok(())
    }

    /// The (gx, gy) grid of `groups` workgroups within the per-dimension limit.
    pub fn grid(&self, groups: u64) -> (u32, u32) {
        grid(groups, self.gpu.limits.max_compute_workgroups_per_dimension)
    }

    /// The grid of one thread per element for `threads` elements, 256 per workgroup.
    pub fn grid1(&self, threads: usize) -> (u32, u32) {
        self.grid((threads as u64).div_ceil(256))
    }

    /// A copy of `n` words of `src`, from word `src_off`, to the output from word `dst_off`.
    pub fn copy(&self, src: &wgpu::Buffer, n: usize, src_off: usize, dst_off: usize) -> Result<Dispatch> {
        let (gx, gy) = self.grid1(n);
        let params = CopyParams {
            n: n as u32,
            src_off: src_off as u32,
            dst_off: dst_off as u32,
            gx,
            ..Default::default()
        };
        Dispatch::new(
            Kernel::CopyRange,
            params,
            [gx, gy, 1],
            &[("src", src), ("dst", self.out)],
        )
    }

    /// Ids known on the host (inputs and constants) are range-checked here: on the GPU an
    /// out-of-range id would silently read garbage.
    pub fn check_ids(&self, ids: TensorId, limit: usize, what: &str) -> Result<()> {
        let t = match &self.g.value(ids).map_err(core_err)?.kind {
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

    /// The error of a dispatch module handed an op of another family (a routing bug).
    pub fn not_mine(&self, module: &str) -> GpuError {
        core_err(CoreError::Graph(format!(
            "{} was routed to the {module} dispatch module",
            self.op.name()
        )))
    }
}
