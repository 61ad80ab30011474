// embedding.wgsl — token embedding gather and the scatter of image features into the
// token sequence.
//
// Layouts:
//   gather:  table [Vc, E] (rows row0 .. row0+Vc of the [V, E] table; u32 words of f32, or
//            two f16 per word when W_F16), ids [S] u32, out [S, E] f32. Each dispatch writes
//            the rows whose id falls in its chunk, so a table split across bindings (a
//            257k-token vocabulary is over 1 GB in f16) takes one dispatch per chunk.
//   scatter: src [R, E] f32, index [R] u32, out [S, E] f32: out[index[r]] = src[r]
//            (out already holds a copy of the destination).
// Specialisation: override W_F16 (table storage, common/weight.wgsl).
// Dispatch: one thread per output element, 256 per workgroup, (gx, gy, 1).

struct Params {
    s: u32,
    e: u32,
    row0: u32,
    rows: u32,
    gx: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>; // the table
@group(0) @binding(2) var<storage, read> ids: array<u32>;
@group(0) @binding(3) var<storage, read> src: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

// #include "common/weight.wgsl"
// #include "common/grid.wgsl"

@compute @workgroup_size(256)
fn gather(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = elem_index(wg, li);
    if (i >= p.s * p.e) {
        return;
    }
    let r = i / p.e;
    let c = i % p.e;
    let id = ids[r];
    if (id >= p.row0 && id < p.row0 + p.rows) {
        out[i] = load_w((id - p.row0) * p.e + c);
    }
}

@compute @workgroup_size(256)
fn scatter(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = elem_index(wg, li);
    if (i >= p.s * p.e) {
        return;
    }
    let r = i / p.e;
    let c = i % p.e;
    out[ids[r] * p.e + c] = src[i];
}
