// common/linear.wgsl — the parts of Y = X·Wᵀ (+ bias) shared by matmul.wgsl (f32/f16 weights)
// and q4.wgsl (4-bit weights): the tiled GEMM's workgroup slabs, its 4×4-per-thread
// micro-kernel (common/tile_f32.wgsl, or common/tile_f16.wgsl in an f16-math module) and its
// store, and (common/epilogue.wgsl) the bias and fused epilogue of every store. The kernels
// differ only in how they stage a slab of W (decode f16 or dequantize nibbles).
// GEMM tile: 64×64 outputs per 16×16 workgroup; each step stages X[64 rows, TK] and
// W[64 rows, TK] transposed into xs/ws with put_x/put_w (zeros outside the matrix), then
// every thread accumulates its 4×4 block acc[i·4 + j] = row lid.y·4 + i, column lid.x·4 + j
// of the tile with tile_fma.
// Includer provides: `const TK: u32` (K per slab), the uniform `p` with fields m, n, n0, nc,
// has_bias, epi, and the bindings `bias: array<f32>` and `y: array<f32>` (read_write).

const TM: u32 = 64u;
const TN: u32 = 64u;

// #include "common/tile_f32.wgsl"
// #include "common/epilogue.wgsl"

// The epilogue: writes the thread's 4×4 block of the tile at (row0, col0 of this chunk) plus
// bias and the fused epilogue, skipping rows past M and columns past the chunk.
fn tile_store(row0: u32, col0: u32, lid: vec3<u32>, acc: array<f32, 16>) {
    for (var i = 0u; i < 4u; i++) {
        let r = row0 + lid.y * 4u + i;
        for (var j = 0u; j < 4u; j++) {
            let c = col0 + lid.x * 4u + j;
            if (r < p.m && c < p.nc) {
                let o = r * p.n + p.n0 + c;
                store(o, acc[i * 4u + j] + bias_at(c));
            }
        }
    }
}
