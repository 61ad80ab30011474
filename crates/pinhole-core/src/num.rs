//! Scalar helpers with no dependency inside the crate, so that both [`crate::tensor`] and
//! [`crate::quant`] (which `tensor` builds on for its 4-bit dtype) can use them without the two
//! modules importing each other.

/// `x` rounded to the nearest f16 and back: what storing a weight as f16 does to it.
pub fn round_f16(x: f32) -> f32 {
    half::f16::from_f32(x).to_f32()
}

/// ‖a − b‖ / ‖b‖, the error measure every kernel test uses.
pub fn rel_error(a: &[f32], b: &[f32]) -> f64 {
    if a.len() != b.len() {
        return f64::INFINITY;
    }
    let mut num = 0.0f64;
    let mut den = 0.0f64;
    for (&x, &y) in a.iter().zip(b) {
        let d = x as f64 - y as f64;
        num += d * d;
        den += (y as f64) * (y as f64);
    }
    if den == 0.0 {
        num.sqrt()
    } else {
        (num / den).sqrt()
    }
}
