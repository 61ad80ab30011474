// The tiled GEMM's workgroup slabs and micro-kernel, f32 variant (the default: exact f32
// products and sums, on every adapter). common/tile_f16.wgsl is the f16-math variant with the
// same contract; wgsl.rs swaps one for the other (F16_MATH_SWAPS) when a module is built with
// f16 math, so the GEMM entry points (matmul.wgsl, q4.wgsl) and their store stay shared.
// Contract: the includer (common/linear.wgsl) declares TM and TN, the entry point's file
// declares `const TK: u32` (K per slab). xs is [TK][TM] (X rows), ws is [TK][TN] (W rows),
// written element by element with put_x / put_w (an f32 value either way), read by tile_fma,
// which adds the slab's products into the thread's 4×4 f32 accumulators acc[i·4 + j] (row
// lid.y·4 + i, column lid.x·4 + j of the tile).

var<workgroup> xs: array<f32, TK * TM>; // [TK][TM]
var<workgroup> ws: array<f32, TK * TN>; // [TK][TN]

fn put_x(i: u32, v: f32) {
    xs[i] = v;
}

fn put_w(i: u32, v: f32) {
    ws[i] = v;
}

// The micro-kernel over one staged slab (call between two workgroupBarrier()s).
fn tile_fma(lid: vec3<u32>, acc: ptr<function, array<f32, 16>>) {
    for (var c = 0u; c < TK; c++) {
        var a: array<f32, 4>;
        var b: array<f32, 4>;
        for (var i = 0u; i < 4u; i++) {
            a[i] = xs[c * TM + lid.y * 4u + i];
            b[i] = ws[c * TN + lid.x * 4u + i];
        }
        for (var i = 0u; i < 4u; i++) {
            for (var j = 0u; j < 4u; j++) {
                (*acc)[i * 4u + j] = fma(a[i], b[j], (*acc)[i * 4u + j]);
            }
        }
    }
}
