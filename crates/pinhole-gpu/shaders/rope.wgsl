// rope.wgsl — rotary position embedding, rotate-half convention (as transformers' Gemma, Llama
// and Phi), full or partial.
//
// Layouts: x [S, H·D] f32, written to out from element out_off (0, or a KV-cache row when the
// executor fuses the cache write, executor/fuse.rs); cos_sin [S, R] f32 = cos of the R/2 frequencies, then their
// sin, for each row's own position (computed on the host exactly as transformers does, so any
// position ids work). For each head, dims t < R/2 and t + R/2 rotate as a pair:
//   out[t]       = x[t]·cos − x[t+R/2]·sin
//   out[t+R/2]   = x[t+R/2]·cos + x[t]·sin
// and dims ≥ R pass through (partial rotary, e.g. Phi-2).
// Dispatch: one thread per element, 256 per workgroup, (gx, gy, 1).

struct Params {
    s: u32,
    n_heads: u32,
    head_dim: u32,
    rot: u32,
    gx: u32,
    out_off: u32, // out element row 0 starts at (a KV-cache row when fused, else 0)
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> cs: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

// #include "common/grid.wgsl"

@compute @workgroup_size(256)
fn rope(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = elem_index(wg, li);
    let width = p.n_heads * p.head_dim;
    if (i >= p.s * width) {
        return;
    }
    let r = i / width;
    let t = i % p.head_dim;
    let head_base = i - t;
    let half = p.rot / 2u;
    if (t >= p.rot) {
        out[p.out_off + i] = x[i];
        return;
    }
    let f = t % half;
    let c = cs[r * p.rot + f];
    let s = cs[r * p.rot + half + f];
    let a = x[head_base + f];
    let b = x[head_base + half + f];
    if (t < half) {
        out[p.out_off + i] = a * c - b * s;
    } else {
        out[p.out_off + i] = b * c + a * s;
    }
}
