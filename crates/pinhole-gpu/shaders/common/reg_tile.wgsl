// common/reg_tile.wgsl — the register tile of the barrier-free GEMMs for CPU adapters
// (`gemm_reg` in linear_vec4.wgsl for f32/f16 weights and in q4.wgsl for 4-bit weights).
// Each thread keeps RT = 4·RQ rows × CT = 4·CQ columns of Y in registers, as RQ·CQ 4×4 blocks
// (mat4x4: column j of a block is one column of Y, its four rows in the vector's lanes); the
// 64 threads of a workgroup are LC across columns × 64/LC across rows, so a workgroup writes
// BM × BN of Y. Each step over k loads RT rows of x and CT rows of w for RT·CT FMAs per
// element of k, and the 4×4 products are written out (`mm4`) with every index a constant:
// llvmpipe keeps such values in registers, while a loop-indexed private array (a loop NIR
// does not unroll) becomes per-lane memory traffic (measured in BENCHMARKS.md: that cost
// more than the loads it saved). Rows and columns past the edges are clamped for loading and
// skipped for storing, so the inner loops have no branch.
// Includer provides: the uniform `p` with fields m, n, k, n0, nc, has_bias, epi, and the bindings
// `x: array<vec4<f32>>`, `bias: array<f32>` and `y: array<f32>` (read_write).

// #include "common/epilogue.wgsl"

const RQ: u32 = 2u;
const CQ: u32 = 4u;
const LC: u32 = 16u;
const RT: u32 = 4u * RQ;
const CT: u32 = 4u * CQ;
const BM: u32 = RT * (64u / LC);
const BN: u32 = CT * LC;

// First row and first column of this thread's block.
fn reg_origin(wg: vec3<u32>, li: u32) -> vec2<u32> {
    return vec2<u32>(wg.x * BM + (li / LC) * RT, wg.y * BN + (li % LC) * CT);
}

// The first vec4 of rows r0 .. r0+3 of x (rows past M read row M-1).
fn reg_x_rows(r0: u32) -> vec4<u32> {
    return min(vec4<u32>(r0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.m - 1u)) * (p.k / 4u);
}

// The first word of weight rows c0 .. c0+3, `wrow` words per row (columns past the chunk
// read its last row).
fn reg_w_rows(c0: u32, wrow: u32) -> vec4<u32> {
    return min(vec4<u32>(c0) + vec4<u32>(0u, 1u, 2u, 3u), vec4<u32>(p.nc - 1u)) * wrow;
}

// Vec4 o of the four rows starting at `b` (reg_x_rows), transposed: column e holds element
// 4o + e of the four rows in its lanes.
fn reg_x(b: vec4<u32>, o: u32) -> mat4x4<f32> {
    let a0 = x[b.x + o];
    let a1 = x[b.y + o];
    let a2 = x[b.z + o];
    let a3 = x[b.w + o];
    return mat4x4<f32>(vec4<f32>(a0.x, a1.x, a2.x, a3.x), vec4<f32>(a0.y, a1.y, a2.y, a3.y),
                       vec4<f32>(a0.z, a1.z, a2.z, a3.z), vec4<f32>(a0.w, a1.w, a2.w, a3.w));
}

// acc + Σ_e c[e]·b[e]: four rows times four consecutive weights of one column, as FMAs.
fn mac4(acc: vec4<f32>, c: mat4x4<f32>, b: vec4<f32>) -> vec4<f32> {
    return fma(c[3], vec4<f32>(b.w), fma(c[2], vec4<f32>(b.z), fma(c[1], vec4<f32>(b.y), fma(c[0], vec4<f32>(b.x), acc))));
}

// acc + a·b for a 4×4 block: a from reg_x (4 rows × 4 elements of k), b's column j the same
// 4 elements of k of weight column j.
fn mm4(acc: mat4x4<f32>, a: mat4x4<f32>, b: mat4x4<f32>) -> mat4x4<f32> {
    return mat4x4<f32>(mac4(acc[0], a, b[0]), mac4(acc[1], a, b[1]), mac4(acc[2], a, b[2]), mac4(acc[3], a, b[3]));
}

// One 4×4 block of Y (+ bias, then the fused epilogue): rows r0 .., columns c0 .. of this dispatch's chunk.
fn reg_store(r0: u32, c0: u32, acc: mat4x4<f32>) {
    for (var j = 0u; j < 4u; j++) {
        let c = c0 + j;
        if (c < p.nc) {
            let bv = bias_at(c);
            for (var i = 0u; i < 4u; i++) {
                if (r0 + i < p.m) {
                    let o = (r0 + i) * p.n + p.n0 + c;
                    store(o, acc[j][i] + bv);
                }
            }
        }
    }
}

// The thread's whole tile of Y: a<row quad><column quad> (RQ = 2 row quads, CQ = 4 column
// quads), each a 4×4 block. Passed and returned by value: every field access is a constant,
// so the tile stays in registers.
struct Tile {
    a00: mat4x4<f32>,
    a01: mat4x4<f32>,
    a02: mat4x4<f32>,
    a03: mat4x4<f32>,
    a10: mat4x4<f32>,
    a11: mat4x4<f32>,
    a12: mat4x4<f32>,
    a13: mat4x4<f32>,
}

// The first words of the four column quads' weight rows (reg_w_rows of each).
fn reg_w_quads(c0: u32, wrow: u32) -> array<vec4<u32>, 4> {
    return array<vec4<u32>, 4>(reg_w_rows(c0, wrow), reg_w_rows(c0 + 4u, wrow), reg_w_rows(c0 + 8u, wrow),
                               reg_w_rows(c0 + 12u, wrow));
}

// t + one step of k (4 elements): xa0, xa1 from reg_x for the two row quads, b0..b3 the same 4
// elements of k of the four column quads.
fn tile_mm(t: Tile, xa0: mat4x4<f32>, xa1: mat4x4<f32>, b0: mat4x4<f32>, b1: mat4x4<f32>, b2: mat4x4<f32>,
           b3: mat4x4<f32>) -> Tile {
    return Tile(mm4(t.a00, xa0, b0), mm4(t.a01, xa0, b1), mm4(t.a02, xa0, b2), mm4(t.a03, xa0, b3),
                mm4(t.a10, xa1, b0), mm4(t.a11, xa1, b1), mm4(t.a12, xa1, b2), mm4(t.a13, xa1, b3));
}

// The whole tile (+ bias) into y; `o` from reg_origin.
fn reg_tile_store(o: vec2<u32>, t: Tile) {
    reg_store(o.x, o.y, t.a00);
    reg_store(o.x, o.y + 4u, t.a01);
    reg_store(o.x, o.y + 8u, t.a02);
    reg_store(o.x, o.y + 12u, t.a03);
    reg_store(o.x + 4u, o.y, t.a10);
    reg_store(o.x + 4u, o.y + 4u, t.a11);
    reg_store(o.x + 4u, o.y + 8u, t.a12);
    reg_store(o.x + 4u, o.y + 12u, t.a13);
}
