//! `PatchEmbed`: the vision tower's patch convolution + bias + position embedding
//! (patch_embed.wgsl), one thread per output element.

use pinhole_core::graph::Op;
use pinhole_core::DType;

use super::{core_err, Dispatch, OpCtx};
use crate::error::Result;
use crate::kernels::Kernel;
use crate::params::PatchEmbedParams;

pub(super) fn plan(cx: &mut OpCtx) -> Result<()> {
    let Op::PatchEmbed {
        pixels,
        w,
        b,
        pos,
        patch,
    } = *cx.op
    else {
        return Err(cx.not_mine("patch_embed"));
    };
    let ps = cx.g.shape(pixels).map_err(core_err)?.to_vec();
    cx.f32_store(b, "bias")?;
    cx.f32_store(pos, "position embedding")?;
    let f16 = cx.val(w)?.dtype == DType::F16;
    let (gx, gy) = cx.grid1(cx.out_elems());
    let params = PatchEmbedParams {
        c: ps[0] as u32,
        h: ps[1] as u32,
        w: ps[2] as u32,
        psize: patch as u32,
        e: cx.shape[1] as u32,
        np: cx.shape[0] as u32,
        gx,
        _pad: 0,
    };
    let bind = [
        ("px", &cx.buf(pixels, "pixels")?),
        ("w", &cx.buf(w, "patch weight")?),
        ("bias", &cx.buf(b, "patch bias")?),
        ("out", cx.out),
        ("pos", &cx.buf(pos, "position embedding")?),
    ];
    cx.push(Dispatch::new(Kernel::PatchEmbed, params, [gx, gy, 1], &bind)?.f16(f16));
    Ok(())
}
