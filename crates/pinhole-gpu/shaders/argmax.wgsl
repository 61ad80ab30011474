// argmax.wgsl — index of the largest value in each row (the first one on ties, as torch), so
// greedy decoding reads back one u32 per step instead of a vocabulary of logits.
//
// Layouts: x [rows, N] f32, out [rows] u32.
// Dispatch: one 256-thread workgroup per row, (gx, gy, 1) with row = wg.x + wg.y·gx.

struct Params {
    rows: u32,
    n: u32,
    gx: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

// #include "common/grid.wgsl"

var<workgroup> best_v: array<f32, 256>;
var<workgroup> best_i: array<u32, 256>;

@compute @workgroup_size(256)
fn argmax(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = group_index(wg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.n;
    var bv = -3.4e38;
    var bi = 0xffffffffu;
    for (var t = li; t < p.n; t += 256u) {
        let v = x[base + t];
        if (v > bv || bi == 0xffffffffu) {
            bv = v;
            bi = t;
        }
    }
    best_v[li] = bv;
    best_i[li] = bi;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (li < s) {
            let ov = best_v[li + s];
            let oi = best_i[li + s];
            let mine_i = best_i[li];
            let take = oi != 0xffffffffu &&
                (mine_i == 0xffffffffu || ov > best_v[li] || (ov == best_v[li] && oi < mine_i));
            if (take) {
                best_v[li] = ov;
                best_i[li] = oi;
            }
        }
        workgroupBarrier();
    }
    if (li == 0u) {
        out[row] = best_i[0];
    }
}
