//! `Embedding` (row gather from an f32, f16 or 4-bit table, one dispatch per row chunk of the
//! table: embedding.wgsl or q4.wgsl) and `ScatterRows` (image features into the token rows).

use pinhole_core::graph::Op;
use pinhole_core::tensor::numel;
use pinhole_core::DType;

use super::matmul::q4_params;
use super::{core_err, Dispatch, OpCtx};
use crate::error::Result;
use crate::kernels::Kernel;
use crate::params::EmbeddingParams;

pub(super) fn plan(cx: &mut OpCtx) -> Result<()> {
    match *cx.op {
        Op::Embedding { table, ids } => {
            let t = cx.val(table)?;
            cx.check_ids(ids, t.rows(), "embedding ids")?;
            let idb = cx.buf(ids, "ids")?;
            let (gx, gy) = cx.grid1(cx.out_elems());
            for c in &t.chunks {
                let d = if matches!(t.dtype, DType::Q4(_)) {
                    let params = q4_params(t, c, cx.shape[0], false, gx)?;
                    Dispatch::new(
                        Kernel::Q4Gather,
                        params,
                        [gx, gy, 1],
                        &[("w", &c.buffer), ("y", cx.out), ("ids", &idb)],
                    )?
                } else {
                    let params = EmbeddingParams {
                        s: cx.shape[0] as u32,
                        e: cx.shape[1] as u32,
                        row0: c.row0 as u32,
                        rows: c.rows as u32,
                        gx,
                        ..Default::default()
                    };
                    let bind = [("w", &c.buffer), ("ids", &idb), ("out", cx.out)];
                    Dispatch::new(Kernel::Gather, params, [gx, gy, 1], &bind)?.f16(t.dtype == DType::F16)
                };
                cx.push(d);
            }
        }
        Op::ScatterRows { dst, src, index } => {
            cx.check_ids(index, cx.shape[0], "scatter index")?;
            // The output starts as a copy of the destination; then the rows are overwritten.
            let d = cx.copy(&cx.buf(dst, "dst")?, cx.out_elems(), 0, 0)?;
            cx.push(d);
            let ss = cx.g.shape(src).map_err(core_err)?;
            let (gx, gy) = cx.grid1(numel(ss));
            let params = EmbeddingParams {
                s: ss[0] as u32,
                e: ss[1] as u32,
                gx,
                ..Default::default()
            };
            let (ib, sb) = (cx.buf(index, "index")?, cx.buf(src, "src")?);
            let bind = [("ids", &ib), ("src", &sb), ("out", cx.out)];
            cx.push(Dispatch::new(Kernel::Scatter, params, [gx, gy, 1], &bind)?);
        }
        _ => return Err(cx.not_mine("embedding")),
    }
    Ok(())
}
