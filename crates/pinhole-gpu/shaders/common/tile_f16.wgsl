// The tiled GEMM's workgroup slabs and micro-kernel, f16-math variant: same contract as
// common/tile_f32.wgsl (see there), built only when the device has `shader-f16` and f16 math
// was asked for (Gpu::set_f16_math); wgsl.rs swaps it in and puts `enable f16;` at the top
// of the module. Opt-in because results change by ~1e-3 relative:
// - the slabs are f16: X and W are rounded to f16 when staged (half the workgroup memory and
//   its bandwidth; f16 weights are exact, f32 weights, activations and dequantized 4-bit
//   weights lose bits past f16's 11; values beyond ±65504 overflow);
// - each thread's 4×4 products are vec4<f16> FMAs accumulated in f16 over one slab only
//   (TK = 16 or 32 terms), then added into the f32 accumulators once per slab, so the f16
//   rounding grows with TK, not with K. Bias, fused epilogue and store stay f32.
// The slabs are scalar f16 arrays (each staging thread writes single elements: a component
// write into a shared vec4 could be a read-modify-write on some backends); tile_fma reads
// four consecutive elements into a vec4<f16>.

var<workgroup> xs: array<f16, TK * TM>; // [TK][TM]
var<workgroup> ws: array<f16, TK * TN>; // [TK][TN]

fn put_x(i: u32, v: f32) {
    xs[i] = f16(v);
}

fn put_w(i: u32, v: f32) {
    ws[i] = f16(v);
}

// The micro-kernel over one staged slab (call between two workgroupBarrier()s).
fn tile_fma(lid: vec3<u32>, acc: ptr<function, array<f32, 16>>) {
    // h[i] lane j: this slab's sum for row lid.y·4 + i, column lid.x·4 + j.
    var h: array<vec4<f16>, 4>;
    for (var c = 0u; c < TK; c++) {
        let xa = c * TM + lid.y * 4u;
        let wb = c * TN + lid.x * 4u;
        let a = vec4<f16>(xs[xa], xs[xa + 1u], xs[xa + 2u], xs[xa + 3u]);
        let b = vec4<f16>(ws[wb], ws[wb + 1u], ws[wb + 2u], ws[wb + 3u]);
        for (var i = 0u; i < 4u; i++) {
            h[i] = fma(vec4<f16>(a[i]), b, h[i]);
        }
    }
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            (*acc)[i * 4u + j] += f32(h[i][j]);
        }
    }
}
