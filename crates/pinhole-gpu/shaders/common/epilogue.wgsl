// common/epilogue.wgsl — what the linear layers (matmul.wgsl, linear_vec4.wgsl, q4.wgsl) do
// with an output element after its dot product: add the optional bias, then the elementwise
// op the executor fused into the matmul (crates/pinhole-gpu/src/executor/fuse.rs), so the
// pair is one dispatch and the matmul's output never goes through memory. p.epi is
// code | activation << 8 (activation codes as in common/act.wgsl):
//   0 none:     y = v
//   1 add:      y = v + aux[i]            residual add
//   2 act:      y = act(v)
//   3 up:       y = act(aux[i]) · v       gated MLP, the matmul is the up projection
//   4 gate:     y = act(v) · aux[i]       gated MLP, the matmul is the gate projection
// with v = x·w (+ bias) and i the element's index in y. Each is the same f32 arithmetic, in
// the same order, as the unfused elementwise.wgsl kernel, so fusing changes no bit.
// `store` writes the result at y[y_off + i]: y_off is 0, or a KV-cache row when the executor
// fuses the cache write into the matmul.
// Includer provides: the uniform `p` with fields n0, has_bias, epi and y_off, and the bindings
// `bias: array<f32>` and `y: array<f32>` (read_write). Declares binding 6, `aux` (the executor binds a dummy when unused).

// #include "common/act.wgsl"

@group(0) @binding(6) var<storage, read> aux: array<f32>;

// Element n0 + col of `bias` when has_bias, else 0.
fn bias_at(col: u32) -> f32 {
    if (p.has_bias != 0u) {
        return bias[p.n0 + col];
    }
    return 0.0;
}

fn epilogue(i: u32, v: f32) -> f32 {
    let a = p.epi >> 8u;
    switch p.epi & 0xffu {
        case 1u: {
            return v + aux[i];
        }
        case 2u: {
            return activate(a, v);
        }
        case 3u: {
            return activate(a, aux[i]) * v;
        }
        case 4u: {
            return activate(a, v) * aux[i];
        }
        default: {
            return v;
        }
    }
}

fn store(i: u32, v: f32) {
    y[p.y_off + i] = epilogue(i, v);
}
