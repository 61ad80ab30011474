// common/matmul_params.wgsl — the uniform of the f32/f16 linear layer (params.rs
// MatmulParams), shared by matmul.wgsl and linear_vec4.wgsl, which the executor dispatches
// with the same fields: Y = X·Wᵀ (+ bias) for weight rows n0 .. n0+nc of [n, k], x [m, k].
// q4.wgsl has its own (Q4Params: the same plus the 4-bit chunk layout).
// Includer provides: nothing.

struct Params {
    m: u32,
    n: u32,
    k: u32,
    n0: u32,
    nc: u32,
    has_bias: u32,
    gx: u32,
    epi: u32, // fused epilogue (common/epilogue.wgsl)
    y_off: u32, // y element the output starts at (common/epilogue.wgsl)
    _p0: u32,
    _p1: u32,
    _p2: u32,
}
