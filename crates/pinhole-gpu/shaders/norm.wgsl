// norm.wgsl — LayerNorm and RMSNorm over the last dimension.
//
// Layouts: x, y [rows, D] f32; w, b [D] f32.
//   layer_norm: y = (x − mean) / sqrt(var + eps) · w + b   (two passes: mean, then variance of
//               the centred values, which is what keeps it accurate for large offsets)
//   rms_norm:   y = x / sqrt(mean(x²) + eps) · w, or · (1 + w) when add_one != 0 (Gemma)
// Dispatch: one 256-thread workgroup per row: (gx, gy, 1) with row = wg.x + wg.y·gx.

struct Params {
    rows: u32,
    d: u32,
    eps: f32,
    add_one: u32,
    gx: u32,
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

// #include "common/reduce.wgsl"
// #include "common/grid.wgsl"

const RED_N: u32 = 256u; // the workgroup size

@compute @workgroup_size(256)
fn layer_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = group_index(wg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.d;
    var s = 0.0;
    for (var t = li; t < p.d; t += 256u) {
        s += x[base + t];
    }
    let mean = reduce_sum(li, s) / f32(p.d);
    var s2 = 0.0;
    for (var t = li; t < p.d; t += 256u) {
        let c = x[base + t] - mean;
        s2 = fma(c, c, s2);
    }
    let inv = inverseSqrt(reduce_sum(li, s2) / f32(p.d) + p.eps);
    for (var t = li; t < p.d; t += 256u) {
        y[base + t] = (x[base + t] - mean) * inv * w[t] + b[t];
    }
}

@compute @workgroup_size(256)
fn rms_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row = group_index(wg);
    if (row >= p.rows) {
        return;
    }
    let base = row * p.d;
    var s2 = 0.0;
    for (var t = li; t < p.d; t += 256u) {
        let v = x[base + t];
        s2 = fma(v, v, s2);
    }
    let inv = inverseSqrt(reduce_sum(li, s2) / f32(p.d) + p.eps);
    for (var t = li; t < p.d; t += 256u) {
        var g = w[t];
        if (p.add_one != 0u) {
            g = 1.0 + g;
        }
        y[base + t] = x[base + t] * inv * g;
    }
}
