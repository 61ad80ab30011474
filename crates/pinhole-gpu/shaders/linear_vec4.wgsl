// linear_vec4.wgsl — Y = X · Wᵀ (+ bias) reading X and W as 16-byte vectors: the fast paths of
// the f32/f16 linear layer, used when every row of X and W starts on a 16-byte boundary
// (K a multiple of 4 for f32 weights, of 8 for f16). Other K go to matmul.wgsl.
//
// Layouts as matmul.wgsl (all row-major): x [M, K] f32 read as vec4<f32>; w [Nc, K] one row
// chunk of the weight, read as vec4<u32> words: four f32 bit patterns, or (W_F16) eight f16
// halves, element 2i in the low half of word i; bias [N] f32 (when has_bias); y [M, N] f32,
// this dispatch writing columns n0 .. n0+Nc. Products and sums are f32.
//
// Entry points and dispatch:
//   gemv:     M ≤ 4 per z slice (decode, small prompts). RPW weight rows per 256-thread
//             workgroup, TPR threads per row walk K in 16-byte steps (interleaved, so a
//             warp/SIMD group reads consecutive words), each weight word is decoded once and
//             used for the slice's rows of x; the TPR partial sums of a row meet in
//             row_sum (common/row_sum_wg.wgsl, or its subgroup variant). Dispatch (gx, gy, ceil(M/4)),
//             gx·gy ≥ ceil(Nc/RPW), block = wg.x + wg.y·gx, slice z = rows 4z .. 4z+3.
//   gemv_rows: as gemv, for CPU adapters: RPT (4) weight rows per thread over all of K, 256
//             rows per workgroup, no workgroup memory, no barrier. Dispatch (gx, gy, ceil(M/4)),
//             gx·gy ≥ ceil(Nc/256).
//   gemm_reg: any M, for CPU adapters (llvmpipe, SwiftShader), where workgroup barriers are
//             coroutine switches and workgroup memory is ordinary memory: no workgroup memory
//             and no barrier at all. Each thread keeps an 8×16 block of Y in registers
//             (common/reg_tile.wgsl) and reads its 8 rows of X and 16 rows of W straight from
//             the buffers, 16 bytes at a time, each f16 word decoded once for the 8 rows.
//             Out-of-range rows and columns are clamped for loading and skipped for storing,
//             so the inner loop has no branch. Dispatch (ceil(M/BM), ceil(Nc/BN), 1).

// #include "common/matmul_params.wgsl"

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

// #include "common/grid.wgsl"
// #include "common/reg_tile.wgsl"
// #include "common/row_sum_wg.wgsl"

override W_F16: bool = false;

// The eight f16 weights of one word vector, as two vec4 (elements 0..3, 4..7).
fn halves_lo(q: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(q.x), unpack2x16float(q.y));
}

fn halves_hi(q: vec4<u32>) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(q.z), unpack2x16float(q.w));
}

// x·W[c] for rows m0..m0+3 of x (lane i of the result is row m0 + i), over the vec4 words
// start, start + step, … of weight row c: the inner loop of `gemv` (a row split over TPR
// threads) and `gemv_rows` (a whole row per thread). Rows past M read row M-1 (any valid
// row; the callers do not store them): one loop body for 2..4 rows, another for M = 1.
fn row_dot(c: u32, start: u32, step: u32, m0: u32) -> vec4<f32> {
    let rows = min(p.m - m0, 4u);
    let xrow = p.k / 4u; // vec4 per row of x
    let x0 = m0 * xrow;
    let x1 = min(m0 + 1u, p.m - 1u) * xrow;
    let x2 = min(m0 + 2u, p.m - 1u) * xrow;
    let x3 = min(m0 + 3u, p.m - 1u) * xrow;
    var acc = vec4<f32>(0.0);
    if (W_F16) {
        let wrow = p.k / 8u;
        let wb = c * wrow;
        if (rows == 1u) {
            for (var v = start; v < wrow; v += step) {
                let q = w[wb + v];
                acc.x += dot(halves_lo(q), x[x0 + 2u * v]) + dot(halves_hi(q), x[x0 + 2u * v + 1u]);
            }
        } else {
            for (var v = start; v < wrow; v += step) {
                let q = w[wb + v];
                let a = halves_lo(q);
                let b = halves_hi(q);
                let o = 2u * v;
                acc += vec4<f32>(dot(a, x[x0 + o]) + dot(b, x[x0 + o + 1u]),
                                 dot(a, x[x1 + o]) + dot(b, x[x1 + o + 1u]),
                                 dot(a, x[x2 + o]) + dot(b, x[x2 + o + 1u]),
                                 dot(a, x[x3 + o]) + dot(b, x[x3 + o + 1u]));
            }
        }
    } else {
        let wb = c * xrow;
        if (rows == 1u) {
            for (var v = start; v < xrow; v += step) {
                acc.x += dot(bitcast<vec4<f32>>(w[wb + v]), x[x0 + v]);
            }
        } else {
            for (var v = start; v < xrow; v += step) {
                let a = bitcast<vec4<f32>>(w[wb + v]);
                acc += vec4<f32>(dot(a, x[x0 + v]), dot(a, x[x1 + v]), dot(a, x[x2 + v]), dot(a, x[x3 + v]));
            }
        }
    }
    return acc;
}

const TPR: u32 = 32u; // threads per weight row (gemv)
const RPW: u32 = 8u;  // weight rows per workgroup (gemv)

@compute @workgroup_size(256)
fn gemv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let blk = group_index(wg);
    let r = li / TPR;
    let t = li % TPR;
    let col = blk * RPW + r;
    let m0 = wg.z * 4u;
    let rows = min(p.m - m0, 4u);
    var acc = vec4<f32>(0.0);
    if (col < p.nc) {
        acc = row_dot(col, t, TPR, m0);
    }
    let s = row_sum(li, acc);
    if (t == 0u && col < p.nc) {
        let b = bias_at(col);
        for (var i = 0u; i < rows; i++) {
            let o = (m0 + i) * p.n + p.n0 + col;
            store(o, s[i] + b);
        }
    }
}

// RPT (4) weight rows per thread, 64 threads per workgroup, the whole of K walked by each
// thread: the GEMV for CPU adapters. There is no reduction and no barrier. Thread li of
// workgroup g takes rows 256·g + li + 64·r (r < 4); past the chunk it loads the last row and
// stores nothing. With one row of x (decode) the thread loads each element of x once for its
// four rows: on llvmpipe every storage load runs lane by lane, and x's loads were ~45 % of the
// f16 GEMV's time with one row per thread (BENCHMARKS.md), four rows made it ~1.6× faster.
// Each row's sum is the same f32 arithmetic in the same order as row_dot's, so results do not
// depend on the rows per thread. With 2..4 rows of x each row goes through row_dot.
const RPT: u32 = 4u;

@compute @workgroup_size(64)
fn gemv_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let col = group_index(wg) * 64u * RPT + li + vec4<u32>(0u, 64u, 128u, 192u);
    let c = min(col, vec4<u32>(p.nc - 1u));
    let m0 = wg.z * 4u;
    let rows = min(p.m - m0, 4u);
    var acc: array<vec4<f32>, RPT>;
    if (rows == 1u) {
        let x0 = m0 * (p.k / 4u);
        var a = vec4<f32>(0.0);
        if (W_F16) {
            let wrow = p.k / 8u;
            let cb = c * wrow;
            for (var v = 0u; v < wrow; v++) {
                let xa = x[x0 + 2u * v];
                let xb = x[x0 + 2u * v + 1u];
                let q0 = w[cb.x + v];
                let q1 = w[cb.y + v];
                let q2 = w[cb.z + v];
                let q3 = w[cb.w + v];
                a += vec4<f32>(dot(halves_lo(q0), xa) + dot(halves_hi(q0), xb),
                               dot(halves_lo(q1), xa) + dot(halves_hi(q1), xb),
                               dot(halves_lo(q2), xa) + dot(halves_hi(q2), xb),
                               dot(halves_lo(q3), xa) + dot(halves_hi(q3), xb));
            }
        } else {
            let wrow = p.k / 4u;
            let cb = c * wrow;
            for (var v = 0u; v < wrow; v++) {
                let xv = x[x0 + v];
                a += vec4<f32>(dot(bitcast<vec4<f32>>(w[cb.x + v]), xv), dot(bitcast<vec4<f32>>(w[cb.y + v]), xv),
                               dot(bitcast<vec4<f32>>(w[cb.z + v]), xv), dot(bitcast<vec4<f32>>(w[cb.w + v]), xv));
            }
        }
        for (var r = 0u; r < RPT; r++) {
            acc[r].x = a[r];
        }
    } else {
        for (var r = 0u; r < RPT; r++) {
            acc[r] = row_dot(c[r], 0u, 1u, m0);
        }
    }
    for (var r = 0u; r < RPT; r++) {
        if (col[r] < p.nc) {
            let b = bias_at(col[r]);
            for (var i = 0u; i < rows; i++) {
                store((m0 + i) * p.n + p.n0 + col[r], acc[r][i] + b);
            }
        }
    }
}

// Four f16 weight rows' word vectors (8 weights each) at word `o` of rows b: weights 0..3
// (index 0) and 4..7 (index 1) as 4×4 blocks, column j = weight row j.
fn w_halves(b: vec4<u32>, o: u32) -> array<mat4x4<f32>, 2> {
    let q0 = w[b.x + o];
    let q1 = w[b.y + o];
    let q2 = w[b.z + o];
    let q3 = w[b.w + o];
    return array<mat4x4<f32>, 2>(mat4x4<f32>(halves_lo(q0), halves_lo(q1), halves_lo(q2), halves_lo(q3)),
                                 mat4x4<f32>(halves_hi(q0), halves_hi(q1), halves_hi(q2), halves_hi(q3)));
}

// Four f32 weight rows' vec4 `o` as a 4×4 block, column j = weight row j.
fn w_f32(b: vec4<u32>, o: u32) -> mat4x4<f32> {
    return mat4x4<f32>(bitcast<vec4<f32>>(w[b.x + o]), bitcast<vec4<f32>>(w[b.y + o]),
                       bitcast<vec4<f32>>(w[b.z + o]), bitcast<vec4<f32>>(w[b.w + o]));
}

// gemm_reg: common/reg_tile.wgsl's 8×16 tile (RQ = 2, CQ = 4, written out) over f32 or f16
// weight words.
@compute @workgroup_size(64)
fn gemm_reg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let o = reg_origin(wg, li);
    let x0 = reg_x_rows(o.x);
    let x1 = reg_x_rows(o.x + 4u);
    let wrow = select(p.k / 4u, p.k / 8u, W_F16);
    let w = reg_w_quads(o.y, wrow);
    var t = Tile();
    if (W_F16) {
        // One step: 8 weights (one word vector) of each column, 8 elements of each row.
        for (var v = 0u; v < wrow; v++) {
            let xl0 = reg_x(x0, 2u * v);
            let xh0 = reg_x(x0, 2u * v + 1u);
            let xl1 = reg_x(x1, 2u * v);
            let xh1 = reg_x(x1, 2u * v + 1u);
            let b0 = w_halves(w[0], v);
            let b1 = w_halves(w[1], v);
            let b2 = w_halves(w[2], v);
            let b3 = w_halves(w[3], v);
            t = tile_mm(t, xl0, xl1, b0[0], b1[0], b2[0], b3[0]);
            t = tile_mm(t, xh0, xh1, b0[1], b1[1], b2[1], b3[1]);
        }
    } else {
        // One step: 4 weights of each column, 4 elements of each row.
        for (var v = 0u; v < wrow; v++) {
            let xa0 = reg_x(x0, v);
            let xa1 = reg_x(x1, v);
            t = tile_mm(t, xa0, xa1, w_f32(w[0], v), w_f32(w[1], v), w_f32(w[2], v), w_f32(w[3], v));
        }
    }
    reg_tile_store(o, t);
}
