//! One thread per element (elementwise.wgsl): `Act`, `Gated`, `Add`, `Scale`, `SoftCap`.

use pinhole_core::graph::{Activation, Op};

use super::{Dispatch, OpCtx};
use crate::error::Result;
use crate::kernels::Kernel;
use crate::params::ElementwiseParams;

/// The activation codes of common/act.wgsl's `activate`.
pub(super) fn act_code(a: Activation) -> u32 {
    match a {
        Activation::GeluTanh => 0,
        Activation::GeluErf => 1,
        Activation::Silu => 2,
    }
}

pub(super) fn plan(cx: &mut OpCtx) -> Result<()> {
    // (kernel, activation code, scalar, input a, optional input b), inputs with their names
    let (kernel, op, s, (a, a_what), b) = match *cx.op {
        Op::Act { x, act } => (Kernel::Act, act_code(act), 0.0, (x, "x"), None),
        Op::Gated { gate, up, act } => (Kernel::Gated, act_code(act), 0.0, (gate, "gate"), Some((up, "up"))),
        Op::Add { a, b } => (Kernel::Add, 0, 0.0, (a, "a"), Some((b, "b"))),
        Op::Scale { x, s } => (Kernel::Scale, 0, s, (x, "x"), None),
        Op::SoftCap { x, cap } => (Kernel::SoftCap, 0, cap, (x, "x"), None),
        _ => return Err(cx.not_mine("elementwise")),
    };
    let n = cx.out_elems();
    let (gx, gy) = cx.grid1(n);
    let params = ElementwiseParams {
        n: n as u32,
        op,
        gx,
        s,
        ..Default::default()
    };
    let ab = cx.buf(a, a_what)?;
    let d = match b {
        Some((b, what)) => {
            let bb = cx.buf(b, what)?;
            Dispatch::new(kernel, params, [gx, gy, 1], &[("a", &ab), ("b", &bb), ("out", cx.out)])?
        }
        None => Dispatch::new(kernel, params, [gx, gy, 1], &[("a", &ab), ("out", cx.out)])?,
    };
    cx.push(d);
    Ok(())
}
