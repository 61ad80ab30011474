//! `Attention`: fused softmax attention (attention.wgsl). Which kernel is [`kernel`]'s rule.

use pinhole_core::graph::Op;

use super::{Dispatch, OpCtx};
use crate::error::Result;
use crate::kernels::Kernel;
use crate::params::AttentionParams;

/// Query rows per thread of `attend_rows` (AR in attention.wgsl) and threads per workgroup.
const ROWS_PER_THREAD: usize = 4;
const ROWS_PER_GROUP: usize = 64 * ROWS_PER_THREAD;
/// Fewest query rows for `attend_rows`: below it (decode, short prompts) a thread per row
/// leaves most SIMD lanes idle and `attend`'s split over keys wins.
const ROWS_MIN_S: usize = 16;

/// The rule: on adapters that run the barrier-free kernels (`Gpu::barrier_free_matmul`: CPU
/// adapters, where a workgroup barrier is a coroutine switch and every storage load is done
/// lane by lane), prefill and vision attention (S ≥ 16 query rows) with head_dim a multiple
/// of 4 take `attend_rows` (several query rows per thread sharing each K/V load, no barrier);
/// everything else, and every GPU, takes `attend` (one workgroup per query row and head).
pub(crate) fn kernel(s: usize, head_dim: usize, barrier_free: bool) -> Kernel {
    if barrier_free && s >= ROWS_MIN_S && head_dim.is_multiple_of(4) {
        Kernel::AttentionRows
    } else {
        Kernel::Attention
    }
}

pub(super) fn plan(cx: &mut OpCtx) -> Result<()> {
    let Op::Attention { q, k, v, p } = *cx.op else {
        return Err(cx.not_mine("attention"));
    };
    let s = cx.shape[0];
    let kernel = kernel(s, p.head_dim, cx.gpu.barrier_free_matmul());
    let groups = match kernel {
        Kernel::AttentionRows => s.div_ceil(ROWS_PER_GROUP) * p.n_heads,
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
