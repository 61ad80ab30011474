// matmul.wgsl — Y = X · Wᵀ (+ bias), the linear layer of every model: the shared-memory
// tiled GEMM (GPUs, any K) and the scalar GEMV for K that is not a multiple of 4 (f32) / 8
// (f16). Aligned K go to linear_vec4.wgsl's vec4 GEMV, and to its barrier-free GEMM on CPU
// adapters; executor/matmul.rs (`float_kernel`) holds the rule.
//
// Layouts (all row-major):
//   x    [M, K]  f32 activations
//   w    [Nc, K] one chunk of a Hugging Face weight [N, K] (rows n0 .. n0+Nc). Stored as u32
//        words: f32 bit patterns, or (W_F16) two f16 halves per word, element 2i in the low
//        half. Decoding f16 with unpack2x16float is core WGSL, so f16 weights need no
//        `shader-f16`; products and sums are f32 (except in the opt-in f16-math variant of
//        `gemm`, common/tile_f16.wgsl).
//   bias [N]     f32, read when has_bias != 0 (otherwise a dummy buffer is bound)
//   y    [M, N]  f32; this dispatch writes columns n0 .. n0+Nc. Weights larger than the
//        per-binding limit are split by rows into chunks, one dispatch per chunk.
// Specialisation: override W_F16 (weight storage, common/weight.wgsl); `gemm`'s slabs and
// micro-kernel are f32 (common/tile_f32.wgsl) or, in an f16-math module, f16
// (common/tile_f16.wgsl, swapped in by wgsl.rs).
// Entry points and dispatch:
//   gemm: 64×64 output tile per 16×16 workgroup, 4×4 outputs per thread, K walked in steps of
//         16 through workgroup memory. Dispatch (ceil(Nc/64), ceil(M/64), 1).
//   gemv: for small M (decode): 4 output columns per 256-thread workgroup, 64 threads split K
//         and reduce in workgroup memory; f16 weights are read as whole u32 words (two
//         weights per load). Dispatch (gx, gy, M) with gx·gy ≥ ceil(Nc/4),
//         block index = wg.x + wg.y·gx.

// #include "common/matmul_params.wgsl"

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

// #include "common/weight.wgsl"
// #include "common/linear.wgsl"
// #include "common/grid.wgsl"
// #include "common/row_sum_wg.wgsl"

const TK: u32 = 16u;

@compute @workgroup_size(16, 16)
fn gemm(@builtin(workgroup_id) wg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let row0 = wg.y * TM;
    let col0 = wg.x * TN;
    var acc: array<f32, 16>;
    for (var kt = 0u; kt < p.k; kt += TK) {
        // Stage a 64×16 slab of X and of W; out-of-range elements are zero so edges need no
        // special case in the inner loop.
        for (var t = 0u; t < 4u; t++) {
            let e = li + t * 256u;
            let r = e / TK;
            let c = e % TK;
            let gk = kt + c;
            var xv = 0.0;
            if (row0 + r < p.m && gk < p.k) {
                xv = x[(row0 + r) * p.k + gk];
            }
            put_x(c * TM + r, xv);
            var wv = 0.0;
            if (col0 + r < p.nc && gk < p.k) {
                wv = load_w((col0 + r) * p.k + gk);
            }
            put_w(c * TN + r, wv);
        }
        workgroupBarrier();
        tile_fma(lid, &acc);
        workgroupBarrier();
    }
    tile_store(row0, col0, lid, acc);
}

const TPR: u32 = 64u; // threads per weight row (gemv)

@compute @workgroup_size(256)
fn gemv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let blk = group_index(wg);
    let m = wg.z;
    let r = li / TPR;
    let t = li % TPR;
    let col = blk * 4u + r;
    var acc = 0.0;
    if (col < p.nc) {
        let wb = col * p.k;
        let xb = m * p.k;
        if (W_F16) {
            // Whole u32 words: each thread decodes both halves of the words it reads, so every
            // word is fetched once per row. With an odd K a row starts or ends mid-word; the
            // half outside [wb, wb + K) belongs to the neighbouring row and is skipped.
            let e1 = wb + p.k;
            for (var wi = wb / 2u + t; wi <= (e1 - 1u) / 2u; wi += TPR) {
                let pair = unpack2x16float(w[wi]);
                let i0 = wi * 2u;
                if (i0 >= wb) {
                    acc = fma(x[xb + i0 - wb], pair.x, acc);
                }
                if (i0 + 1u < e1) {
                    acc = fma(x[xb + i0 + 1u - wb], pair.y, acc);
                }
            }
        } else {
            for (var kk = t; kk < p.k; kk += TPR) {
                acc = fma(x[xb + kk], load_w(wb + kk), acc);
            }
        }
    }
    let sum = row_sum(li, vec4<f32>(acc, 0.0, 0.0, 0.0)).x;
    if (t == 0u && col < p.nc) {
        let o = m * p.n + p.n0 + col;
        store(o, sum + bias_at(col));
    }
}
