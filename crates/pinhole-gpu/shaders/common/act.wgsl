// common/act.wgsl — the activations, by code: 0 GELU-tanh, 1 GELU-erf, 2 SiLU. Shared by
// elementwise.wgsl (`act`, `gated`) and the linear layers' fused epilogue
// (common/epilogue.wgsl), so a fused and an unfused activation are the same arithmetic.
// WGSL has no erf and its tanh may overflow for large inputs on some drivers, so both are
// written out with known accuracy (tanh_acc in common/tanh.wgsl, erf_acc here).
// Includer provides: nothing.

// #include "common/tanh.wgsl"

// erf with absolute error below ~1.2e-7 (Chebyshev fit of erfc, Numerical Recipes' erfcc).
fn erf_acc(x: f32) -> f32 {
    let z = abs(x);
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
        t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    let erfc = t * exp(-z * z + poly);
    return sign(x) * (1.0 - erfc);
}

fn activate(code: u32, v: f32) -> f32 {
    switch code {
        case 0u: {
            return 0.5 * v * (1.0 + tanh_acc(0.7978845608028654 * (v + 0.044715 * v * v * v)));
        }
        case 1u: {
            return 0.5 * v * (1.0 + erf_acc(v * 0.7071067811865476));
        }
        default: {
            return v / (1.0 + exp(-v));
        }
    }
}
