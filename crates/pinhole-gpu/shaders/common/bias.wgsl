// common/bias.wgsl — the optional bias of the linear layers (matmul.wgsl, q4.wgsl,
// linear_vec4.wgsl): element n0 + col of `bias` when has_bias, else 0.
// Includer provides: the uniform `p` with fields n0 and has_bias, and the binding
// `bias: array<f32>`.

fn bias_at(col: u32) -> f32 {
    if (p.has_bias != 0u) {
        return bias[p.n0 + col];
    }
    return 0.0;
}
