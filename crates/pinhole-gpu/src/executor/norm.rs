//! `LayerNorm` and `RmsNorm` over the last dimension (norm.wgsl), one workgroup per row.

use pinhole_core::graph::Op;
use pinhole_core::tensor::rows_of;

use super::{Dispatch, OpCtx};
use crate::error::Result;
use crate::kernels::Kernel;
use crate::params::NormParams;

pub(super) fn plan(cx: &mut OpCtx) -> Result<()> {
    let rows = rows_of(cx.shape);
    let d = cx.shape[cx.shape.len() - 1] as u32;
    let (gx, gy) = cx.grid(rows as u64);
    let mut params = NormParams {
        rows: rows as u32,
        d,
        gx,
        ..Default::default()
    };
    let dispatch = match *cx.op {
        Op::LayerNorm { x, w, b, eps } => {
            cx.f32_store(w, "weight")?;
            cx.f32_store(b, "bias")?;
            params.eps = eps;
            let (xb, wb, bb) = (cx.buf(x, "x")?, cx.buf(w, "norm weight")?, cx.buf(b, "norm bias")?);
            let bind = [("x", &xb), ("w", &wb), ("b", &bb), ("y", cx.out)];
            Dispatch::new(Kernel::LayerNorm, params, [gx, gy, 1], &bind)?
        }
        Op::RmsNorm { x, w, eps, add_one } => {
            cx.f32_store(w, "weight")?;
            params.eps = eps;
            params.add_one = add_one as u32;
            let (xb, wb) = (cx.buf(x, "x")?, cx.buf(w, "norm weight")?);
            Dispatch::new(
                Kernel::RmsNorm,
                params,
                [gx, gy, 1],
                &[("x", &xb), ("w", &wb), ("y", cx.out)],
            )?
        }
        _ => return Err(cx.not_mine("norm")),
    };
    cx.push(dispatch);
    Ok(())
}
