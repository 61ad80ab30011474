// patch_embed.wgsl — the vision tower's patch embedding: a convolution whose kernel equals
// its stride (the patch size), plus the conv bias and the learned position embedding.
//
// Layouts: pixels [C, H, W] f32 (normalised image); weight [E, C, P, P] (u32 words of f32, or
// f16 pairs when W_F16); bias [E] f32; pos [Np, E] f32; out [Np, E] f32, patches in row-major
// order (Np = (H/P)·(W/P)), which is the sequence order of SigLIP / ViT.
// Specialisation: override W_F16 (common/weight.wgsl).
// Dispatch: one thread per output element, 256 per workgroup, (gx, gy, 1).

struct Params {
    c: u32,
    h: u32,
    w: u32,
    psize: u32,
    e: u32,
    np: u32,
    gx: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> px: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read> pos: array<f32>;

// #include "common/weight.wgsl"
// #include "common/grid.wgsl"

@compute @workgroup_size(256)
fn patch_embed(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = elem_index(wg, li);
    if (i >= p.np * p.e) {
        return;
    }
    let pi = i / p.e;
    let o = i % p.e;
    let gw = p.w / p.psize;
    let y0 = (pi / gw) * p.psize;
    let x0 = (pi % gw) * p.psize;
    var acc = 0.0;
    for (var ch = 0u; ch < p.c; ch++) {
        for (var ky = 0u; ky < p.psize; ky++) {
            let prow = ch * p.h * p.w + (y0 + ky) * p.w + x0;
            let wrow = ((o * p.c + ch) * p.psize + ky) * p.psize;
            for (var kx = 0u; kx < p.psize; kx++) {
                acc = fma(px[prow + kx], load_w(wrow + kx), acc);
            }
        }
    }
    out[i] = acc + bias[o] + pos[i];
}
