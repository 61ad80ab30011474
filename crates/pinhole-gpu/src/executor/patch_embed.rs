//! `PatchEmbed`: the vision tower's patch convolution + bias + position embedding
//! (patch_embed.wgsl), one thread per block of 4 patches × 8 outputs.

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
    // One thread per block of 4 patches × 8 outputs, 64 threads per workgroup (patch_embed.wgsl).
    let blocks = (cx.shape[0].div_ceil(4) * cx.shape[1].div_ceil(8)) as u64;
    let (gx, gy) = cx.grid(blocks.div_ceil(64));
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
