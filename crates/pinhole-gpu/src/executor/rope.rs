//! `Rope`: rotary position embedding (rope.wgsl), one thread per element.

use pinhole_core::graph::Op;
use pinhole_core::tensor::numel;

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
    let shape = cx.g.shape(x).map_err(super::core_err)?;
    let (gx, gy) = cx.grid1(numel(shape));
    let params = RopeParams {
        s: shape[0] as u32,
        n_heads: n_heads as u32,
        head_dim: head_dim as u32,
        rot: rotary_dim as u32,
        gx,
        out_off: cx.out_off as u32,
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
