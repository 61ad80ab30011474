//! Data movement through copy.wgsl: `Rows` (a row slice), `Reshape` (same order, new shape)
//! and `WriteRows` (rows into a persistent state such as a KV cache; its output is the state).

use pinhole_core::graph::Op;

use super::{core_err, OpCtx};
use crate::error::Result;

pub(super) fn plan(cx: &mut OpCtx) -> Result<()> {
    let d = match *cx.op {
        Op::Rows { x, start, count } => {
            let e = cx.shape[1];
            cx.copy(&cx.buf(x, "x")?, count * e, start * e, 0)?
        }
        // Row-major order is unchanged: a plain copy into the output buffer.
        Op::Reshape { x } => cx.copy(&cx.buf(x, "x")?, cx.out_elems(), 0, 0)?,
        // `out` is the state's own buffer here (see plan.rs).
        Op::WriteRows { state, src, row } => {
            let e = cx.val(state)?.cols();
            let n = cx.g.numel(src).map_err(core_err)?;
            cx.copy(&cx.buf(src, "write_rows src")?, n, 0, row * e)?
        }
        _ => return Err(cx.not_mine("copy")),
    };
    cx.push(d);
    Ok(())
}
