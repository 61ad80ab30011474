//! `Rope`: rotary position embedding (rope.wgsl), one thread per element.

use pinhole_core::graph::Op;

use super::{Dispatch, OpCtx};
use crate::error::Result;
use crate::kernels::Kernel;
use crate::params::RopeParams;

pub(super) fn plan(cx: &mut OpCtx) -> Result<()> {
    let Op::Rope {
        x,
        cos_sin,
        n_heads,
        head_dim,
        rotary_dim,
    } = *cx.op
    else {
        return Err(cx.not_mine("rope"));
    };
    let (gx, gy) = cx.grid1(cx.out_elems());
    let params = RopeParams {
        s: cx.shape[0] as u32,
        n_heads: n_heads as u32,
        head_dim: head_dim as u32,
        rot: rotary_dim as u32,
        gx,
        ..Default::default()
    };
    let (xb, cb) = (cx.buf(x, "x")?, cx.buf(cos_sin, "cos_sin")?);
    cx.push(Dispatch::new(
        Kernel::Rope,
        params,
        [gx, gy, 1],
        &[("x", &xb), ("cs", &cb), ("out", cx.out)],
    )?);
    Ok(())
}
