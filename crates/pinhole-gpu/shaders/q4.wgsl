// q4.wgsl — 4-bit weights: fused dequantize + matmul (GEMV for decode, tiled GEMM for
// prefill and the vision tower) and the embedding gather from a 4-bit table.
//
// Format (pinhole_core::quant): a weight W [N, K] is group-wise int4 along K, group size
// p.group (a multiple of 32). Each dispatch reads one row chunk (rows n0 .. n0+nc) from ONE
// storage buffer `w`, laid out as u32 words:
//   words [0, nc·K/8)              packed nibbles, row-major, 8 per word, LOW NIBBLE FIRST
//                                  (element k of a row is bits 4·(k%8).. of word k/8);
//   words [scales_at, ..)          f16 scales [nc, K/group], two per word (element 2i low);
//   words [offsets_at, ..)         f16 offsets, same layout (asymmetric scheme only).
// Dequantized value of nibble q with scale s (and offset o):
//   symmetric  (p.asym == 0): (q - 8)·s         asymmetric: q·s + o
// The f16 halves are decoded with unpack2x16float (core WGSL), so no `shader-f16` is needed;
// all arithmetic is f32 (except in the opt-in f16-math variant of `gemm`: f16 slabs and
// products, common/tile_f16.wgsl). The buffer is padded to 16 bytes and read as vec4<u32>:
// since K is a multiple of 32, one vec4 is 32 consecutive weights of one row inside one group.
//
// Layouts: x [M, K] f32 (read as vec4), bias [N] f32 (when has_bias), y [M, N] f32; this
// dispatch writes columns n0 .. n0+nc (weights larger than the per-binding limit are split by
// rows, one dispatch per chunk). gather: ids [S] u32, y [S, K] f32.
//
// Entry points and dispatch:
//   gemv:   M ≤ 4 (decode). 8 weight rows per 256-thread workgroup, 32 threads per row walk
//           K in vec4<u32> steps (16 bytes = 32 weights); each packed word is read once and
//           dequantized in registers, then used for all M rows of x; partial sums reduced in
//           workgroup memory. Dispatch (gx, gy, 1), gx·gy ≥ ceil(nc/8), block = wg.x + wg.y·gx.
//   gemm:   M > 4. 64×64 output tile per 16×16 workgroup, 4×4 outputs per thread, K walked in
//           steps of 32 (one vec4 of packed weights per row per step, dequantized into
//           workgroup memory). Dispatch (ceil(nc/64), ceil(M/64), 1).
//   gemv_rows: M ≤ 4 on CPU adapters: RPL (8) consecutive weight rows per thread, 64 threads
//           per workgroup, no barrier. Dispatch (gx, gy, 1), gx·gy ≥ ceil(nc/512).
//   gemm_reg: M > 4 on CPU adapters: common/reg_tile.wgsl's RT×CT outputs per thread in
//           registers, no workgroup memory, no barrier. Dispatch (ceil(M/BM), ceil(nc/BN), 1).
//   gather: one thread per output element (rows whose id falls in this chunk), 256 per
//           workgroup, (gx, gy, 1).

struct Params {
    m: u32,
    n: u32,
    k: u32,
    n0: u32,
    nc: u32,
    has_bias: u32,
    gx: u32,
    group: u32,
    asym: u32,
    scales_at: u32,
    offsets_at: u32,
    epi: u32, // fused epilogue (common/epilogue.wgsl)
    y_off: u32, // y element the output starts at (common/epilogue.wgsl)
    _p0: u32,
    _p1: u32,
    _p2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> w: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read> ids: array<u32>;

// #include "common/f16.wgsl"
// #include "common/linear.wgsl"
// #include "common/grid.wgsl"
// #include "common/reg_tile.wgsl"
// #include "common/row_sum_wg.wgsl"

fn word(i: u32) -> u32 {
    return w[i >> 2u][i & 3u];
}

// Half number h of the f16 array starting at word `base`.
fn half_at(base: u32, h: u32) -> f32 {
    return f16_half(word(base + (h >> 1u)), h);
}

// Scale and offset of group g (index into [nc, K/group]).
fn scale_offset(g: u32) -> vec2<f32> {
    let s = half_at(p.scales_at, g);
    var o = 0.0;
    if (p.asym != 0u) {
        o = half_at(p.offsets_at, g);
    }
    return vec2<f32>(s, o);
}

const SHIFTS = vec4<u32>(0u, 4u, 8u, 12u);
// In-place nibble masks of a u32 (gemv_rows): lane j keeps nibble j, worth n·16^j.
const NIB_MASK = vec4<u32>(0xfu, 0xf0u, 0xf00u, 0xf000u);
const INV16 = vec4<f32>(1.0, 0.0625, 0.00390625, 0.000244140625);

// Nibbles `sh` .. `sh`+3 of word q as floats (0 .. 15). Converted through i32: CPUs convert
// signed integers in one instruction, unsigned ones in several (the values are the same).
fn nib4(q: u32, sh: u32) -> vec4<f32> {
    return vec4<f32>(bitcast<vec4<i32>>((vec4<u32>(q >> sh) >> SHIFTS) & vec4<u32>(15u)));
}

// Four weights from nibbles `sh`.. of word q: exactly the CPU reference's dequant_value.
fn deq4(q: u32, sh: u32, so: vec2<f32>) -> vec4<f32> {
    let n = nib4(q, sh);
    if (p.asym != 0u) {
        return n * so.x + so.y;
    }
    return (n - 8.0) * so.x;
}

const TPR: u32 = 32u; // threads per weight row (gemv)
const RPW: u32 = 8u;  // weight rows per workgroup (gemv)
const RPL: u32 = 8u;  // weight rows per thread (gemv_rows)


@compute @workgroup_size(256)
fn gemv(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let blk = group_index(wg);
    let r = li / TPR;
    let t = li % TPR;
    let col = blk * RPW + r;
    // Lane m of acc accumulates row m of x (M ≤ 4).
    var acc = vec4<f32>(0.0);
    if (col < p.nc) {
        let kv = p.k / 32u;          // vec4<u32> per weight row
        let xrow = p.k / 4u;         // vec4<f32> per row of x
        let gpr = p.k / p.group;     // groups per row
        for (var v = t; v < kv; v += TPR) {
            let q = w[col * kv + v];
            let so = scale_offset(col * gpr + (v * 32u) / p.group);
            var d: array<vec4<f32>, 8>;
            for (var j = 0u; j < 4u; j++) {
                d[2u * j] = deq4(q[j], 0u, so);
                d[2u * j + 1u] = deq4(q[j], 16u, so);
            }
            for (var m = 0u; m < p.m; m++) {
                let xb = m * xrow + v * 8u;
                var s = 0.0;
                for (var j = 0u; j < 8u; j++) {
                    s += dot(d[j], x[xb + j]);
                }
                acc[m] += s;
            }
        }
    }
    let sum = row_sum(li, acc);
    if (t == 0u && col < p.nc) {
        let b = bias_at(col);
        for (var m = 0u; m < p.m; m++) {
            let o = m * p.n + p.n0 + col;
            store(o, sum[m] + b);
        }
    }
}

// One gemv_rows step of one weight row at M = 1: the 32 weights of packed words q against
// the 32 elements xs of x, with the row's scale/offset so and t = (zero·Σx, Σx). Nibble j of a
// word is masked in place, not shifted: (q & 15·16^j) converts exactly to n·16^j, lane j of
// `d` collects the weights at that position and INV16 undoes the powers of 16 once; the zero
// point or offset goes through Σx: Σ (n - 8)·s·x = s·(Σ n·x - 8·Σ x), Σ (n·s + o)·x =
// s·Σ n·x + o·Σ x.
fn q4_term(q: vec4<u32>, so: vec2<f32>, xs: array<vec4<f32>, 8>, t: vec2<f32>) -> f32 {
    let d = vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(q.x) & NIB_MASK)) * xs[0]
        + vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(q.x >> 16u) & NIB_MASK)) * xs[1]
        + vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(q.y) & NIB_MASK)) * xs[2]
        + vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(q.y >> 16u) & NIB_MASK)) * xs[3]
        + vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(q.z) & NIB_MASK)) * xs[4]
        + vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(q.z >> 16u) & NIB_MASK)) * xs[5]
        + vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(q.w) & NIB_MASK)) * xs[6]
        + vec4<f32>(bitcast<vec4<i32>>(vec4<u32>(q.w >> 16u) & NIB_MASK)) * xs[7];
    return so.x * (dot(d, INV16) - t.x) + so.y * t.y;
}

// gemv_rows: the GEMV for CPU adapters (see linear_vec4.wgsl's gemv_rows): RPL (8)
// consecutive weight rows per thread over all of K, 64 threads per workgroup, no workgroup
// memory, no barrier. Each step loads 32 elements of x (and sums them) once for the thread's
// RPL rows, then one vec4<u32> and one scale per row: on llvmpipe 8 rows per thread ran ~1.7×
// faster than one (BENCHMARKS.md). At M = 1 (decode) the 8 rows are two written-out vec4
// quads rather than arrays indexed by a row loop: that alone made it 1.5–1.8× faster there.
@compute @workgroup_size(64)
fn gemv_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let row0 = (group_index(wg) * 64u + li) * RPL;
    if (row0 >= p.nc) {
        return;
    }
    let kv = p.k / 32u;
    let xrow = p.k / 4u;
    let gpr = p.k / p.group;
    // Rows past the chunk load the last row and are not stored.
    var cb: array<u32, RPL>;
    for (var r = 0u; r < RPL; r++) {
        cb[r] = min(row0 + r, p.nc - 1u);
    }
    // acc[r] lane m: weight row row0 + r, row m of x.
    var acc: array<vec4<f32>, RPL>;
    if (p.m == 1u) {
        // The RPL = 8 rows as two vec4 quads (b0/b1: the rows' first words, g0/g1: their first
        // groups, a0/a1: their sums): private arrays indexed by a loop counter that NIR does
        // not unroll (cb, acc) become per-lane memory on llvmpipe, a gather and a scatter per
        // access.
        let b0 = reg_w_rows(row0, kv);
        let b1 = reg_w_rows(row0 + 4u, kv);
        let g0 = reg_w_rows(row0, gpr);
        let g1 = reg_w_rows(row0 + 4u, gpr);
        var a0 = vec4<f32>(0.0);
        var a1 = vec4<f32>(0.0);
        let zero = select(8.0, 0.0, p.asym != 0u);
        for (var v = 0u; v < kv; v++) {
            var xs: array<vec4<f32>, 8>;
            var sx = vec4<f32>(0.0);
            for (var j = 0u; j < 8u; j++) {
                xs[j] = x[v * 8u + j];
                sx += xs[j];
            }
            let t = vec2<f32>(zero * (sx.x + sx.y + sx.z + sx.w), sx.x + sx.y + sx.z + sx.w);
            let gi = (v * 32u) / p.group;
            a0 += vec4<f32>(q4_term(w[b0.x + v], scale_offset(g0.x + gi), xs, t),
                            q4_term(w[b0.y + v], scale_offset(g0.y + gi), xs, t),
                            q4_term(w[b0.z + v], scale_offset(g0.z + gi), xs, t),
                            q4_term(w[b0.w + v], scale_offset(g0.w + gi), xs, t));
            a1 += vec4<f32>(q4_term(w[b1.x + v], scale_offset(g1.x + gi), xs, t),
                            q4_term(w[b1.y + v], scale_offset(g1.y + gi), xs, t),
                            q4_term(w[b1.z + v], scale_offset(g1.z + gi), xs, t),
                            q4_term(w[b1.w + v], scale_offset(g1.w + gi), xs, t));
        }
        for (var r = 0u; r < 4u; r++) {
            acc[r].x = a0[r];
            acc[r + 4u].x = a1[r];
        }
    } else {
        // 2 to 4 rows of x; rows past M read row M-1 and are not stored.
        let x1 = min(1u, p.m - 1u) * xrow;
        let x2 = min(2u, p.m - 1u) * xrow;
        let x3 = min(3u, p.m - 1u) * xrow;
        for (var v = 0u; v < kv; v++) {
            for (var r = 0u; r < RPL; r++) {
                let q = w[cb[r] * kv + v];
                let so = scale_offset(cb[r] * gpr + (v * 32u) / p.group);
                for (var j = 0u; j < 4u; j++) {
                    let lo = deq4(q[j], 0u, so);
                    let hi = deq4(q[j], 16u, so);
                    let o = v * 8u + 2u * j;
                    acc[r] += vec4<f32>(dot(lo, x[o]) + dot(hi, x[o + 1u]),
                                        dot(lo, x[x1 + o]) + dot(hi, x[x1 + o + 1u]),
                                        dot(lo, x[x2 + o]) + dot(hi, x[x2 + o + 1u]),
                                        dot(lo, x[x3 + o]) + dot(hi, x[x3 + o + 1u]));
                }
            }
        }
    }
    for (var r = 0u; r < RPL; r++) {
        let col = row0 + r;
        if (col < p.nc) {
            let b = bias_at(col);
            for (var m = 0u; m < p.m; m++) {
                let o = m * p.n + p.n0 + col;
                store(o, acc[r][m] + b);
            }
        }
    }
}

const TK: u32 = 32u;

@compute @workgroup_size(16, 16)
fn gemm(@builtin(workgroup_id) wg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
    let row0 = wg.y * TM;
    let col0 = wg.x * TN;
    let xrow = p.k / 4u;
    let wrow = p.k / 8u;
    let gpr = p.k / p.group;
    var acc: array<f32, 16>;
    for (var kt = 0u; kt < p.k; kt += TK) {
        // X slab: 64 rows × 8 vec4, two per thread; rows past M are zero.
        for (var t = 0u; t < 2u; t++) {
            let e = li + t * 256u;
            let r = e / 8u;
            let c4 = e % 8u;
            var xv = vec4<f32>(0.0);
            if (row0 + r < p.m) {
                xv = x[(row0 + r) * xrow + kt / 4u + c4];
            }
            for (var j = 0u; j < 4u; j++) {
                put_x((c4 * 4u + j) * TM + r, xv[j]);
            }
        }
        // W slab: 64 weight rows × 4 words (8 weights each), one word per thread, dequantized
        // once into workgroup memory; rows past the chunk are zero.
        let c = li / 4u;
        let wq = li % 4u;
        var lo = vec4<f32>(0.0);
        var hi = vec4<f32>(0.0);
        if (col0 + c < p.nc) {
            let q = word((col0 + c) * wrow + kt / 8u + wq);
            let so = scale_offset((col0 + c) * gpr + kt / p.group);
            lo = deq4(q, 0u, so);
            hi = deq4(q, 16u, so);
        }
        for (var j = 0u; j < 4u; j++) {
            put_w((wq * 8u + j) * TN + c, lo[j]);
            put_w((wq * 8u + 4u + j) * TN + c, hi[j]);
        }
        workgroupBarrier();
        tile_fma(lid, &acc);
        workgroupBarrier();
    }
    tile_store(row0, col0, lid, acc);
}

// The packed words (32 weights each) at vec4 `v` of weight rows b (reg_w_rows), and the
// scale/offset of each row's group at index g + gi (g: reg_w_rows over groups).
fn q4_words(b: vec4<u32>, v: u32) -> array<vec4<u32>, 4> {
    return array<vec4<u32>, 4>(w[b.x + v], w[b.y + v], w[b.z + v], w[b.w + v]);
}

fn q4_scales(g: vec4<u32>, gi: u32) -> array<vec2<f32>, 4> {
    return array<vec2<f32>, 4>(scale_offset(g.x + gi), scale_offset(g.y + gi), scale_offset(g.z + gi),
                               scale_offset(g.w + gi));
}

// Weights 8e .. 8e+3 (index 0) and 8e+4 .. 8e+7 (index 1) of four weight rows as 4×4 blocks,
// column j = weight row j.
fn q4_block(q: array<vec4<u32>, 4>, so: array<vec2<f32>, 4>, e: u32) -> array<mat4x4<f32>, 2> {
    return array<mat4x4<f32>, 2>(
        mat4x4<f32>(deq4(q[0][e], 0u, so[0]), deq4(q[1][e], 0u, so[1]), deq4(q[2][e], 0u, so[2]), deq4(q[3][e], 0u, so[3])),
        mat4x4<f32>(deq4(q[0][e], 16u, so[0]), deq4(q[1][e], 16u, so[1]), deq4(q[2][e], 16u, so[2]), deq4(q[3][e], 16u, so[3])));
}

// gemm_reg: the barrier-free register-tiled GEMM for CPU adapters, common/reg_tile.wgsl's
// 8×16 tile (RQ = 2, CQ = 4, written out) over 4-bit weights: K is walked one vec4<u32> (32
// weights of one group) of each column at a time, each packed word dequantized in registers
// once for all 8 rows.
@compute @workgroup_size(64)
fn gemm_reg(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let o = reg_origin(wg, li);
    let x0 = reg_x_rows(o.x);
    let x1 = reg_x_rows(o.x + 4u);
    let kv = p.k / 32u;
    let gpr = p.k / p.group;
    let w = reg_w_quads(o.y, kv);
    let g = reg_w_quads(o.y, gpr);
    var t = Tile();
    for (var v = 0u; v < kv; v++) {
        let gi = (v * 32u) / p.group;
        let q0 = q4_words(w[0], v);
        let q1 = q4_words(w[1], v);
        let q2 = q4_words(w[2], v);
        let q3 = q4_words(w[3], v);
        let s0 = q4_scales(g[0], gi);
        let s1 = q4_scales(g[1], gi);
        let s2 = q4_scales(g[2], gi);
        let s3 = q4_scales(g[3], gi);
        for (var e = 0u; e < 4u; e++) {
            // Weights 8e .. 8e+7 of this step: x vec4s 2e and 2e+1 of each row.
            let xo = v * 8u + 2u * e;
            let xl0 = reg_x(x0, xo);
            let xh0 = reg_x(x0, xo + 1u);
            let xl1 = reg_x(x1, xo);
            let xh1 = reg_x(x1, xo + 1u);
            let b0 = q4_block(q0, s0, e);
            let b1 = q4_block(q1, s1, e);
            let b2 = q4_block(q2, s2, e);
            let b3 = q4_block(q3, s3, e);
            t = tile_mm(t, xl0, xl1, b0[0], b1[0], b2[0], b3[0]);
            t = tile_mm(t, xh0, xh1, b0[1], b1[1], b2[1], b3[1]);
        }
    }
    reg_tile_store(o, t);
}

// Embedding gather from a 4-bit table chunk (rows n0 .. n0+nc of [V, K]): p.m ids, out [m, K].
@compute @workgroup_size(256)
fn gather(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
    let i = elem_index(wg, li);
    if (i >= p.m * p.k) {
        return;
    }
    let r = i / p.k;
    let c = i % p.k;
    let id = ids[r];
    if (id >= p.n0 && id < p.n0 + p.nc) {
        let row = id - p.n0;
        let q = word(row * (p.k / 8u) + c / 8u);
        let so = scale_offset(row * (p.k / p.group) + c / p.group);
        let n = f32((q >> (4u * (c % 8u))) & 15u);
        if (p.asym != 0u) {
            y[i] = n * so.x + so.y;
        } else {
            y[i] = (n - 8.0) * so.x;
        }
    }
}
