// patch_embed.wgsl — the vision tower's patch embedding: a convolution whose kernel equals
// its stride (the patch size), plus the conv bias and the learned position embedding.
//
// Layouts: pixels [C, H, W] f32 (normalised image); weight [E, C, P, P] (u32 words of f32, or
// f16 pairs when W_F16); bias [E] f32; pos [Np, E] f32; out [Np, E] f32, patches in row-major
// order (Np = (H/P)·(W/P)), which is the sequence order of SigLIP / ViT.
// Specialisation: override W_F16 (common/weight.wgsl).
// Dispatch: one thread per block of 4 patches × 8 outputs, 64 per workgroup, (gx, gy, 1) with
// gx·gy ≥ ceil(ceil(Np/4)·ceil(E/8) / 64); block b: patches 4·(b / ceil(E/8)) .., outputs
// 8·(b % ceil(E/8)) ...
// Each step loads 4 pixels (one per patch) and 8 weights (one per output) for 32 FMAs, where
// one thread per output loaded 2 values per FMA: on llvmpipe, which loads lane by lane, that
// made this kernel ~10× slower per FLOP than the GEMMs. Each output's sum is the same fma
// chain in the same order (channel, row, column) as one thread per output would run, so the
// result does not depend on the blocking. Blocks past Np or E load the last patch / output
// and store nothing.

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

// Pixel offset of patch `pi`'s top-left corner (clamped to the last patch).
fn patch_base(pi: u32) -> u32 {
    let gw = p.w / p.psize;
    let q = min(pi, p.np - 1u);
    return (q / gw) * p.psize * p.w + (q % gw) * p.psize;
}

// Weight element of output `o` (clamped to the last), channel 0, row 0.
fn out_base(o: u32) -> u32 {
    return min(o, p.e - 1u) * p.c * p.psize * p.psize;
}

@compute @workgroup_size(64)
fn patch_embed(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let blk = group_index(wg) * 64u + li;
    let eb = (p.e + 7u) / 8u;
    if (blk >= ((p.np + 3u) / 4u) * eb) {
        return;
    }
    let p0 = (blk / eb) * 4u;
    let o0 = (blk % eb) * 8u;
    let pa = vec4<u32>(patch_base(p0), patch_base(p0 + 1u), patch_base(p0 + 2u), patch_base(p0 + 3u));
    let wa = vec4<u32>(out_base(o0), out_base(o0 + 1u), out_base(o0 + 2u), out_base(o0 + 3u));
    let wb = vec4<u32>(out_base(o0 + 4u), out_base(o0 + 5u), out_base(o0 + 6u), out_base(o0 + 7u));
    // c_j lane i: output o0 + j of patch p0 + i.
    var c0 = vec4<f32>(0.0);
    var c1 = vec4<f32>(0.0);
    var c2 = vec4<f32>(0.0);
    var c3 = vec4<f32>(0.0);
    var c4 = vec4<f32>(0.0);
    var c5 = vec4<f32>(0.0);
    var c6 = vec4<f32>(0.0);
    var c7 = vec4<f32>(0.0);
    let pp = p.psize * p.psize;
    for (var ch = 0u; ch < p.c; ch++) {
        for (var ky = 0u; ky < p.psize; ky++) {
            let prow = pa + vec4<u32>(ch * p.h * p.w + ky * p.w);
            let koff = ch * pp + ky * p.psize;
            let wr0 = wa + vec4<u32>(koff);
            let wr1 = wb + vec4<u32>(koff);
            for (var kx = 0u; kx < p.psize; kx++) {
                let x = vec4<f32>(px[prow.x + kx], px[prow.y + kx], px[prow.z + kx], px[prow.w + kx]);
                c0 = fma(x, vec4<f32>(load_w(wr0.x + kx)), c0);
                c1 = fma(x, vec4<f32>(load_w(wr0.y + kx)), c1);
                c2 = fma(x, vec4<f32>(load_w(wr0.z + kx)), c2);
                c3 = fma(x, vec4<f32>(load_w(wr0.w + kx)), c3);
                c4 = fma(x, vec4<f32>(load_w(wr1.x + kx)), c4);
                c5 = fma(x, vec4<f32>(load_w(wr1.y + kx)), c5);
                c6 = fma(x, vec4<f32>(load_w(wr1.z + kx)), c6);
                c7 = fma(x, vec4<f32>(load_w(wr1.w + kx)), c7);
            }
        }
    }
    let cs = array<vec4<f32>, 8>(c0, c1, c2, c3, c4, c5, c6, c7);
    for (var j = 0u; j < 8u; j++) {
        let o = o0 + j;
        for (var i = 0u; i < 4u; i++) {
            let pi = p0 + i;
            if (o < p.e && pi < p.np) {
                let at = pi * p.e + o;
                out[at] = cs[j][i] + bias[o] + pos[at];
            }
        }
    }
}
