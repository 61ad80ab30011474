// common/tanh.wgsl — the one tanh of the kernels (GELU-tanh, the soft-cap op and attention's
// score soft-cap). WGSL's built-in tanh may overflow for large inputs on some drivers.
// Includer provides: nothing.

// tanh with small relative error everywhere: a short odd series near zero (where 1 − e^(−2x)
// would cancel), the exponential form elsewhere (it cannot overflow).
fn tanh_acc(x: f32) -> f32 {
    let ax = abs(x);
    if (ax < 0.125) {
        let x2 = x * x;
        return x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 + x2 * (-17.0 / 315.0))));
    }
    let t = exp(-2.0 * ax);
    return sign(x) * (1.0 - t) / (1.0 + t);
}
