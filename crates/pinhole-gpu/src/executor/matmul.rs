//! `MatMul`: Y = X·Wᵀ (+ bias) with f32, f16 (linear_vec4.wgsl, matmul.wgsl) or 4-bit
//! (q4.wgsl) weights, one dispatch per row chunk of the weight. GEMV for decode-sized inputs,
//! GEMM otherwise; which variant per adapter kind is [`float_kernel`]'s rule.

use pinhole_core::graph::{Op, TensorId};
use pinhole_core::tensor::rows_of;
use pinhole_core::{DType, Error as CoreError};

use super::fuse::Fusion;
use super::{core_err, Dispatch, OpCtx};
use crate::error::Result;
use crate::kernels::Kernel;
use crate::params::{MatmulParams, Q4Params};
use crate::weights::{Chunk, GpuTensor};

/// Rows at or below which a matmul uses the GEMV kernel (decode steps).
const GEMV_MAX_ROWS: usize = 4;
/// Weight rows per workgroup of the f32/f16 GEMV (4 output columns per workgroup in matmul.wgsl).
const GEMV_ROWS: u64 = 4;
/// Weight rows per workgroup of the 4-bit GEMV (RPW in q4.wgsl).
const Q4_GEMV_ROWS: u64 = 8;
/// Output tile of both GEMMs (TM × TN in common/linear.wgsl).
const TILE: usize = 64;
/// Weight rows per workgroup of the vec4 GEMV (RPW in linear_vec4.wgsl).
const VEC4_GEMV_ROWS: u64 = 8;
/// Weight rows per workgroup of the row-per-thread GEMV of f32/f16 weights (`gemv_rows` in
/// linear_vec4.wgsl: 64 threads of RPT = 4 rows each).
const ROWS_GEMV_ROWS: u64 = 64 * 4;
/// The same for 4-bit weights (`gemv_rows` in q4.wgsl: 64 threads of RPL = 8 rows each).
const Q4_ROWS_GEMV_ROWS: u64 = 64 * 8;
/// Rows of x per z slice of the vec4 GEMVs (the four lanes of their accumulator).
const VEC4_GEMV_SLICE: usize = 4;
/// Output block of one workgroup of the register-tiled GEMMs, f32/f16 and 4-bit (BM rows ×
/// BN columns in common/reg_tile.wgsl).
const REG_TILE_ROWS: usize = 32;
const REG_TILE_COLS: usize = 256;

/// Which f32/f16 kernel runs a matmul of `m` rows with `k`-wide weights of storage `dtype`.
/// The rule (ARCHITECTURE.md, measured in BENCHMARKS.md): rows of x and w that start on
/// 16-byte boundaries (K a multiple of 4 for f32, of 8 for f16) take linear_vec4.wgsl. With
/// `barrier_free` (CPU adapters: llvmpipe, SwiftShader, where a workgroup barrier is a
/// coroutine switch of every invocation, workgroup memory is plain memory, and storage loads
/// are done lane by lane) that is the row-per-thread GEMV for m ≤ 4 and the register-tiled
/// GEMM (8×16 outputs per thread) above; on GPUs the K-split GEMV (coalesced reads, one
/// barrier) and matmul.wgsl's shared-memory tiled GEMM. Any other K takes matmul.wgsl's
/// scalar GEMV or its tiled GEMM.
///
/// The K-split GEMVs (`gemv` of linear_vec4.wgsl, matmul.wgsl and q4.wgsl) add a row's
/// partial sums with `row_sum`: `common/row_sum_sg.wgsl` (subgroupAdd/shuffles, any subgroup
/// size 4–128) where the device has `SUBGROUP` (natively, requested whenever the adapter
/// offers it), `common/row_sum_wg.wgsl` (workgroup memory, one barrier) everywhere else,
/// including every browser (wgpu's WebGPU backend does not enable subgroups). The variant is
/// picked per pipeline from `Gpu::subgroup_reduce`, not here; wgsl.rs swaps the snippet.
///
/// With `Gpu::f16_math` on, the shared-memory tiled GEMMs (`Kernel::Gemm`, `Kernel::Q4Gemm`)
/// run their f16-math variant (common/tile_f16.wgsl); the rule itself does not change, so on
/// CPU adapters, whose aligned GEMMs take the register-tiled `gemm_reg`, only the unaligned-K
/// GEMMs that fall to `gemm` use it. The GEMVs and `gemm_reg` stay f32: on CPU adapters f16
/// is emulated through f32, and a GEMV is bound by reading the weights, not by arithmetic.
pub(crate) fn float_kernel(m: usize, k: usize, dtype: DType, barrier_free: bool) -> Kernel {
    let aligned = k.is_multiple_of(if dtype == DType::F16 { 8 } else { 4 });
    match (m <= GEMV_MAX_ROWS, aligned, barrier_free) {
        (true, true, true) => Kernel::GemvRows,
        (true, true, false) => Kernel::GemvVec4,
        (true, false, _) => Kernel::Gemv,
        (false, true, true) => Kernel::GemmReg,
        (false, _, _) => Kernel::Gemm,
    }
}

/// Plans the matmul `cx.op` into `cx.out`; with `fused`, also the op after it
/// ([`super::fuse`]), whose output `cx.out` then is.
pub(super) fn plan(cx: &mut OpCtx, fused: Option<Fusion>) -> Result<()> {
    let Op::MatMul { x, w, bias } = *cx.op else {
        return Err(cx.not_mine("matmul"));
    };
    matmul(cx, x, w, bias, fused)
}

fn matmul(cx: &mut OpCtx, x: TensorId, w: TensorId, bias: Option<TensorId>, fused: Option<Fusion>) -> Result<()> {
    let wt = cx.val(w)?;
    let q4 = matches!(wt.dtype, DType::Q4(_));
    if !q4 && !matches!(wt.dtype, DType::F32 | DType::F16) {
        return Err(core_err(CoreError::DType {
            what: "matmul weight".into(),
            detail: format!("{} is not supported", wt.dtype.name()),
        }));
    }
    // The rows of x (cx.shape is a fused consumer's: a whole KV cache for `write_rows`).
    let m = rows_of(cx.g.shape(x).map_err(core_err)?);
    let bias_buf = match bias {
        Some(b) => {
            cx.f32_store(b, "bias")?;
            cx.buf(b, "matmul bias")?
        }
        None => cx.gpu.dummy.clone(),
    };
    let (epi, aux_buf) = match fused {
        Some(Fusion { epi, aux: Some(a), .. }) => (epi, cx.buf(a, "fused epilogue input")?),
        Some(Fusion { epi, aux: None, .. }) => (epi, cx.gpu.dummy.clone()),
        None => (0, cx.gpu.dummy.clone()),
    };
    let xb = cx.buf(x, "matmul input")?;
    // GEMV (≤ 4 rows of x) reads every weight once for all rows; GEMM tiles 64×64.
    let gemv = m <= GEMV_MAX_ROWS;
    let max_dim = cx.gpu.limits.max_compute_workgroups_per_dimension as usize;
    for c in &wt.chunks {
        let bind = [
            ("x", &xb),
            ("w", &c.buffer),
            ("bias", &bias_buf),
            ("y", cx.out),
            ("aux", &aux_buf),
        ];
        let gemm_grid = [c.rows.div_ceil(TILE) as u32, m.div_ceil(TILE) as u32, 1];
        let d = if q4 {
            // The same rule as the float kernels' (float_kernel); K is always a multiple of 32.
            let (kernel, groups) = if gemv && cx.gpu.barrier_free_matmul() {
                let (gx, gy) = cx.grid((c.rows as u64).div_ceil(Q4_ROWS_GEMV_ROWS));
                (Kernel::Q4GemvRows, [gx, gy, 1])
            } else if gemv {
                let (gx, gy) = cx.grid((c.rows as u64).div_ceil(Q4_GEMV_ROWS));
                (Kernel::Q4Gemv, [gx, gy, 1])
            } else if cx.gpu.barrier_free_matmul() && m.div_ceil(REG_TILE_ROWS) <= max_dim {
                let groups = [
                    m.div_ceil(REG_TILE_ROWS) as u32,
                    c.rows.div_ceil(REG_TILE_COLS) as u32,
                    1,
                ];
                (Kernel::Q4GemmReg, groups)
            } else {
                (Kernel::Q4Gemm, gemm_grid)
            };
            let mut params = q4_params(wt, c, m, bias.is_some(), groups[0])?;
            params.epi = epi;
            params.y_off = cx.out_off as u32;
            Dispatch::new(kernel, params, groups, &bind)?.f16_math(cx.gpu.f16_math())
        } else {
            // Same parameters for every kernel; only the kernel and its grid differ.
            let mut kernel = float_kernel(m, wt.cols(), wt.dtype, cx.gpu.barrier_free_matmul());
            if kernel == Kernel::GemmReg && m.div_ceil(REG_TILE_ROWS) > max_dim {
                kernel = Kernel::Gemm;
            }
            let groups = match kernel {
                Kernel::Gemv => {
                    let (gx, gy) = cx.grid((c.rows as u64).div_ceil(GEMV_ROWS));
                    [gx, gy, m as u32]
                }
                Kernel::GemvVec4 | Kernel::GemvRows => {
                    let per = if kernel == Kernel::GemvRows {
                        ROWS_GEMV_ROWS
                    } else {
                        VEC4_GEMV_ROWS
                    };
                    let (gx, gy) = cx.grid((c.rows as u64).div_ceil(per));
                    [gx, gy, m.div_ceil(VEC4_GEMV_SLICE) as u32]
                }
                Kernel::GemmReg => [
                    m.div_ceil(REG_TILE_ROWS) as u32,
                    c.rows.div_ceil(REG_TILE_COLS) as u32,
                    1,
                ],
                _ => gemm_grid,
            };
            let params = MatmulParams {
                m: m as u32,
                n: wt.rows() as u32,
                k: wt.cols() as u32,
                n0: c.row0 as u32,
                nc: c.rows as u32,
                has_bias: bias.is_some() as u32,
                gx: groups[0],
                epi,
                y_off: cx.out_off as u32,
                ..Default::default()
            };
            Dispatch::new(kernel, params, groups, &bind)?
                .f16(wt.dtype == DType::F16)
                .f16_math(cx.gpu.f16_math())
        };
        cx.push(d);
    }
    Ok(())
}

/// The `Params` block of q4.wgsl for one row chunk of a 4-bit weight (also the 4-bit
/// embedding gather's).
pub(super) fn q4_params(wt: &GpuTensor, c: &Chunk, m: usize, has_bias: bool, gx: u32) -> Result<Q4Params> {
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
        ..Default::default()
    })
}
