//! `Attention`: fused softmax attention (attention.wgsl). Which kernel is [`kernel`]'s rule.

use pinhole_core::graph::Op;

use super::{Dispatch, OpCtx};
use crate::error::Result;
use crate::kernels::Kernel;
use crate::params::AttentionParams;

/// Query rows per thread of `attend_rows` (AR in attention.wgsl) and threads per workgroup.
const ROWS_PER_THREAD: usize = 4;
const ROWS_PER_GROUP: usize = 64 * ROWS_PER_THREAD;
/// Query rows per workgroup of `attend_tiled` (TR) and the largest head_dim it takes (TDIM).
const TILED_ROWS: usize = 8;
const TILED_MAX_HEAD_DIM: usize = 256;
/// Fewest query rows for the multi-row kernels: below it (decode, short prompts) `attend`'s
/// split over keys keeps more threads busy.
const ROWS_MIN_S: usize = 16;

/// The rule: on adapters that run the barrier-free kernels (`Gpu::barrier_free_matmul`: CPU
/// adapters, where a workgroup barrier is a coroutine switch and every storage load is done
/// lane by lane), prefill and vision attention (S ≥ 16 query rows) with head_dim a multiple
/// of 4 take `attend_rows` (several query rows per thread sharing each K/V load, no barrier);
/// on GPUs, S ≥ 16 with head_dim ≤ 256 takes `attend_tiled` (8 rows per workgroup sharing
/// K/V tiles staged in workgroup memory, so K and V are read from memory once per 8 rows
/// instead of once per row). Decode (S = 1), short prompts and anything else take `attend`
/// (one workgroup per query row and head, keys split across its threads).
pub(crate) fn kernel(s: usize, head_dim: usize, barrier_free: bool) -> Kernel {
    if s < ROWS_MIN_S {
        Kernel::Attention
    } else if barrier_free && head_dim.is_multiple_of(4) {
        Kernel::AttentionRows
    } else if !barrier_free && head_dim <= TILED_MAX_HEAD_DIM {
        Kernel::AttentionTiled
    } else {
        Kernel::Attention
    }
}

/// Whether an attention kernel handles `head_dim` (any S: the multi-row kernels mask the
/// rows past S).
fn supports(k: Kernel, head_dim: usize) -> bool {
    match k {
        Kernel::Attention => head_dim <= 512,
        Kernel::AttentionRows => head_dim.is_multiple_of(4),
        Kernel::AttentionTiled => head_dim <= TILED_MAX_HEAD_DIM,
        _ => false,
    }
}

pub(super) fn plan(cx: &mut OpCtx) -> Result<()> {
    let Op::Attention { q, k, v, p } = *cx.op else {
        return Err(cx.not_mine("attention"));
    };
    let s = cx.shape[0];
    let kernel = match cx.gpu.attention_kernel() {
        Some(k) if supports(k, p.head_dim) => k,
        _ => kernel(s, p.head_dim, cx.gpu.barrier_free_matmul()),
    };
    let groups = match kernel {
        Kernel::AttentionRows => s.div_ceil(ROWS_PER_GROUP) * p.n_heads,
        Kernel::AttentionTiled => s.div_ceil(TILED_ROWS) * p.n_heads,
        _ => s * p.n_heads,
    };
    let (gx, gy) = cx.grid(groups as u64);
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
    let (qb, kb, vb) = (
        cx.buf(q, "attention q")?,
        cx.buf(k, "attention k")?,
        cx.buf(v, "attention v")?,
    );
    let bind = [("q", &qb), ("k", &kb), ("v", &vb), ("out", cx.out)];
    cx.push(Dispatch::new(kernel, params, [gx, gy, 1], &bind)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule_picks_per_adapter_kind_and_shape() {
        // CPU adapters: barrier-free rows for prefill, `attend` for decode.
        assert_eq!(kernel(256, 72, true), Kernel::AttentionRows);
        assert_eq!(kernel(1, 256, true), Kernel::Attention);
        assert_eq!(kernel(20, 33, true), Kernel::Attention);
        // GPUs: K/V tiles shared by 8 rows for prefill up to head_dim 256.
        assert_eq!(kernel(256, 72, false), Kernel::AttentionTiled);
        assert_eq!(kernel(16, 256, false), Kernel::AttentionTiled);
        assert_eq!(kernel(15, 256, false), Kernel::Attention);
        assert_eq!(kernel(64, 264, false), Kernel::Attention);
        assert_eq!(kernel(1, 64, false), Kernel::Attention);
    }
}
