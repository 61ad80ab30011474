//! Token choice on the GPU: `Argmax` (argmax.wgsl), `Sample` and `RepetitionPenalty`
//! (sample.wgsl), one workgroup per row (the penalty: one thread per (row, id)).

use pinhole_core::graph::Op;
use pinhole_core::tensor::rows_of;

use super::{core_err, Dispatch, OpCtx};
use crate::error::Result;
use crate::kernels::Kernel;
use crate::params::{ArgmaxParams, SampleParams};

/// The `Params` block of sample.wgsl (shared by its two entry points).
fn sample_params(
    rows: usize,
    n: usize,
    gx: u32,
    p: &pinhole_core::SampleParams,
    n_ids: usize,
    penalty: f32,
) -> SampleParams {
    SampleParams {
        rows: rows as u32,
        n: n as u32,
        gx,
        top_k: p.top_k,
        temperature: p.temperature,
        top_p: p.top_p,
        uniform: p.uniform,
        n_ids: n_ids as u32,
        penalty,
        inv_penalty: 1.0 / penalty,
        _pad0: 0,
        _pad1: 0,
    }
}

pub(super) fn plan(cx: &mut OpCtx) -> Result<()> {
    let x = match *cx.op {
        Op::Argmax { x } | Op::Sample { x, .. } | Op::RepetitionPenalty { x, .. } => x,
        _ => return Err(cx.not_mine("sampling")),
    };
    let xs = cx.g.shape(x).map_err(core_err)?;
    let rows = rows_of(xs);
    let nn = *xs.last().unwrap_or(&1);
    let xb = cx.buf(x, "x")?;
    // Argmax and sample: one workgroup per row.
    let (gx, gy) = cx.grid(rows as u64);
    let groups = [gx, gy, 1];
    match *cx.op {
        Op::Argmax { .. } => {
            let params = ArgmaxParams {
                rows: rows as u32,
                n: nn as u32,
                gx,
                _pad: 0,
            };
            cx.push(Dispatch::new(
                Kernel::Argmax,
                params,
                groups,
                &[("x", &xb), ("out", cx.out)],
            )?);
        }
        Op::Sample { p, .. } => {
            let params = sample_params(rows, nn, gx, &p, 0, 1.0);
            cx.push(Dispatch::new(
                Kernel::Sample,
                params,
                groups,
                &[("x", &xb), ("out_id", cx.out)],
            )?);
        }
        Op::RepetitionPenalty { ids, penalty, .. } => {
            cx.check_ids(ids, nn, "repetition penalty ids")?;
            // The output starts as a copy of the logits; the kernel rewrites the penalised ones.
            let d = cx.copy(&xb, cx.out_elems(), 0, 0)?;
            cx.push(d);
            let n_ids = cx.g.numel(ids).map_err(core_err)?;
            if n_ids > 0 {
                let (gx, gy) = cx.grid1(rows * n_ids);
                let sp = pinhole_core::SampleParams::new(0.0);
                let params = sample_params(rows, nn, gx, &sp, n_ids, penalty);
                let ib = cx.buf(ids, "ids")?;
                let bind = [("x", &xb), ("ids", &ib), ("out_x", cx.out)];
                cx.push(Dispatch::new(Kernel::RepetitionPenalty, params, [gx, gy, 1], &bind)?);
            }
        }
        _ => return Err(cx.not_mine("sampling")),
    }
    Ok(())
}
