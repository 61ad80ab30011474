//! `Attention`: fused softmax attention (attention.wgsl), one workgroup per (query row, head).

use pinhole_core::graph::Op;

use super::{Dispatch, OpCtx};
use crate::error::Result;
use crate::kernels::Kernel;
use crate::params::AttentionParams;

pub(super) fn plan(cx: &mut OpCtx) -> Result<()> {
    let Op::Attention { q, k, v, p } = *cx.op else {
        return Err(cx.not_mine("attention"));
    };
    let s = cx.shape[0];
    let (gx, gy) = cx.grid((s * p.n_heads) as u64);
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
    cx.push(Dispatch::new(Kernel::Attention, params, [gx, gy, 1], &bind)?);
    Ok(())
}
