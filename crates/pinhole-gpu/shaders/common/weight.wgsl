// common/weight.wgsl — the weight-storage specialisation of every kernel that reads float
// weights: override W_F16 picks f32 bit patterns (one per word) or f16 pairs (two per word,
// see common/f16.wgsl); load_w(i) returns element i as f32 either way.
// Includer provides: the storage binding `w: array<u32>`.

// #include "common/f16.wgsl"

override W_F16: bool = false;

fn load_w(i: u32) -> f32 {
    if (W_F16) {
        return f16_half(w[i >> 1u], i);
    }
    return bitcast<f32>(w[i]);
}
