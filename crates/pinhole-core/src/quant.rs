//! 4-bit weights: group-wise int4 along K (the input dimension of a `[N, K]` linear weight),
//! and its CPU reference.
//!
//! Format (the same bits on disk and on the GPU):
//! * `packed` u32 `[N, K/8]`: 8 values per word, **low nibble first** (element `k` of a row is
//!   nibble `k % 8` of word `k / 8`, i.e. bits `4·(k%8) .. 4·(k%8)+4`). A kernel reading one
//!   word gets 8 consecutive weights of one row with shifts and masks, and a `vec4<u32>` load
//!   gets 32: one whole group at the default group size.
//! * `scales` f16 `[N, K/group]`, one per group.
//! * `offsets` f16 `[N, K/group]`, asymmetric scheme only.
//!
//! Dequantized value of nibble `q` in group `g`:
//! * symmetric: `(q - 8) · scale[g]`
//! * asymmetric: `q · scale[g] + offset[g]`
//!
//! Symmetric takes the signed value of largest magnitude `m` of a group and uses
//! `scale = m / -8`, so `m` maps exactly to nibble 0 (= -8) and the full 16 levels are used
//! (llama.cpp's Q4_0 rule). Asymmetric maps `[min, max]` onto `0..=15`. Which one pinhole
//! defaults to is decided by measured error (see the README section "4-bit weights").
//!
//! On the host a quantized tensor keeps exactly these bits ([`Q4Data`]); the CPU reference
//! dequantizes them with [`dequantize`] and then runs the f32 op, so the reference and the GPU
//! compute with the same numbers.

use crate::error::{Error, Result};
use crate::num::round_f16;

/// Group sizes pinhole accepts. Multiples of 32 keep every group a whole number of
/// `vec4<u32>` loads in the kernels.
pub const GROUPS: [usize; 4] = [32, 64, 128, 256];
pub const DEFAULT_GROUP: usize = 32;

/// safetensors metadata key holding the scheme (`q4_sym` or `q4_asym`).
pub const META_QUANT: &str = "pinhole.quant";
/// safetensors metadata key holding the group size.
pub const META_GROUP: &str = "pinhole.quant.group";
/// Name suffixes of the three tensors that replace a weight `NAME`.
pub const SUFFIX_PACKED: &str = ".q4";
pub const SUFFIX_SCALES: &str = ".q4_scales";
pub const SUFFIX_OFFSETS: &str = ".q4_offsets";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Q4Scheme {
    /// One f16 scale per group, zero maps to zero.
    Sym,
    /// f16 scale and f16 offset (the group minimum) per group.
    Asym,
}

impl Q4Scheme {
    /// The `pinhole.quant` metadata value.
    pub fn meta(self) -> &'static str {
        match self {
            Q4Scheme::Sym => "q4_sym",
            Q4Scheme::Asym => "q4_asym",
        }
    }

    pub fn from_meta(s: &str) -> Option<Q4Scheme> {
        match s {
            "q4_sym" => Some(Q4Scheme::Sym),
            "q4_asym" => Some(Q4Scheme::Asym),
            _ => None,
        }
    }
}

/// How a 4-bit tensor is laid out: group size along K and scheme. Part of [`crate::DType`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Q4Format {
    pub group: u32,
    pub scheme: Q4Scheme,
}

impl Q4Format {
    pub fn new(group: usize, scheme: Q4Scheme) -> Result<Q4Format> {
        if !GROUPS.contains(&group) {
            return Err(Error::Unsupported(format!(
                "4-bit group size {group}; use one of {GROUPS:?}"
            )));
        }
        Ok(Q4Format {
            group: group as u32,
            scheme,
        })
    }

    pub fn group(self) -> usize {
        self.group as usize
    }

    pub fn asym(self) -> bool {
        self.scheme == Q4Scheme::Asym
    }

    /// Whether a `[_, k]` weight can be stored in this format (otherwise it stays f16).
    pub fn fits(self, k: usize) -> bool {
        k > 0 && k.is_multiple_of(8) && k.is_multiple_of(self.group())
    }
}

/// The stored bits of a 4-bit `[N, K]` tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Q4Data {
    /// `[N, K/8]`, low nibble first.
    pub packed: Vec<u32>,
    /// `[N, K/group]` f16 bit patterns.
    pub scales: Vec<u16>,
    /// `[N, K/group]` f16 bit patterns; empty for the symmetric scheme.
    pub offsets: Vec<u16>,
}

impl Q4Data {
    /// Checks the lengths against `[n, k]` and the format; names `what` in the error.
    pub fn check(&self, what: &str, n: usize, k: usize, f: Q4Format) -> Result<()> {
        let bad = |detail: String| Error::Shape {
            what: what.to_string(),
            detail,
        };
        if !f.fits(k) {
            return Err(bad(format!(
                "K = {k} is not a multiple of 8 and of the group size {}",
                f.group
            )));
        }
        let ng = n * (k / f.group());
        if self.packed.len() != n * k / 8 {
            return Err(bad(format!(
                "packed weights hold {} words, [{n}, {k}] needs {}",
                self.packed.len(),
                n * k / 8
            )));
        }
        if self.scales.len() != ng {
            return Err(bad(format!("{} scales, [{n}, {k}] needs {ng}", self.scales.len())));
        }
        let want_off = if f.asym() { ng } else { 0 };
        if self.offsets.len() != want_off {
            return Err(bad(format!(
                "{} offsets, the {} scheme needs {want_off}",
                self.offsets.len(),
                f.scheme.meta()
            )));
        }
        Ok(())
    }
}

/// The f16 bit pattern of `x` (rounded to nearest).
pub fn f16_bits(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

/// The value of an f16 bit pattern.
pub fn f16_val(b: u16) -> f32 {
    half::f16::from_bits(b).to_f32()
}

/// Quantizes a row-major `[n, k]` matrix. Values are rounded to nearest with the *stored* (f16)
/// scale and offset, so the error is that of the format, not of an unrounded intermediate.
pub fn quantize(w: &[f32], n: usize, k: usize, f: Q4Format) -> Result<Q4Data> {
    if w.len() != n * k {
        return Err(Error::Shape {
            what: "quantize".into(),
            detail: format!("{} values for [{n}, {k}]", w.len()),
        });
    }
    if !f.fits(k) {
        return Err(Error::Unsupported(format!(
            "4-bit quantization of a [{n}, {k}] weight: K must be a multiple of 8 and of the group size {}",
            f.group
        )));
    }
    if let Some(bad) = w.iter().find(|v| !v.is_finite()) {
        return Err(Error::Invalid(format!(
            "cannot quantize a weight holding {bad}; the checkpoint is corrupt"
        )));
    }
    let gs = f.group();
    let ng = n * (k / gs);
    let mut packed = vec![0u32; n * k / 8];
    let mut scales = Vec::with_capacity(ng);
    let mut offsets = Vec::with_capacity(if f.asym() { ng } else { 0 });
    for (gi, grp) in w.chunks(gs).enumerate() {
        let base = gi * gs;
        let (scale, offset) = match f.scheme {
            Q4Scheme::Sym => {
                let m = grp.iter().fold(0.0f32, |a, &v| if v.abs() > a.abs() { v } else { a });
                (round_f16(m / -8.0), 0.0)
            }
            Q4Scheme::Asym => {
                let lo = grp.iter().fold(f32::INFINITY, |a, &v| a.min(v));
                let hi = grp.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
                (round_f16((hi - lo) / 15.0), round_f16(lo))
            }
        };
        // f16 overflow of a scale (weights beyond ±65504·8) is a checkpoint we cannot store.
        if !scale.is_finite() || !offset.is_finite() {
            return Err(Error::Invalid(format!(
                "a group of weights is too large for an f16 scale (|w| up to {})",
                grp.iter().fold(0.0f32, |a, &v| a.max(v.abs()))
            )));
        }
        let inv = if scale != 0.0 { 1.0 / scale as f64 } else { 0.0 };
        for (j, &v) in grp.iter().enumerate() {
            let q = match f.scheme {
                Q4Scheme::Sym => (v as f64 * inv).round() + 8.0,
                Q4Scheme::Asym => ((v as f64 - offset as f64) * inv).round(),
            };
            let q = q.clamp(0.0, 15.0) as u32;
            let e = base + j;
            packed[e / 8] |= q << (4 * (e % 8));
        }
        scales.push(f16_bits(scale));
        if f.asym() {
            offsets.push(f16_bits(offset));
        }
    }
    Ok(Q4Data {
        packed,
        scales,
        offsets,
    })
}

/// One dequantized value, exactly as the kernels compute it: `(q - 8) · s` (exact in f32), or
/// `q · s + o` rounded once per operation in f32.
#[inline]
pub fn dequant_value(q: u32, scale: f32, offset: f32, scheme: Q4Scheme) -> f32 {
    match scheme {
        Q4Scheme::Sym => (q as f32 - 8.0) * scale,
        Q4Scheme::Asym => q as f32 * scale + offset,
    }
}

/// Rows `r0 .. r1` of a quantized `[n, k]` tensor as f32.
pub fn dequantize_rows(d: &Q4Data, k: usize, f: Q4Format, r0: usize, r1: usize) -> Vec<f32> {
    let gs = f.group();
    let gpr = k / gs;
    let mut out = Vec::with_capacity((r1 - r0) * k);
    for r in r0..r1 {
        for c in 0..k {
            let e = r * k + c;
            let q = (d.packed[e / 8] >> (4 * (e % 8))) & 15;
            let g = r * gpr + c / gs;
            let s = f16_val(d.scales[g]);
            let o = if f.asym() { f16_val(d.offsets[g]) } else { 0.0 };
            out.push(dequant_value(q, s, o, f.scheme));
        }
    }
    out
}

/// The whole quantized `[n, k]` tensor as f32.
pub fn dequantize(d: &Q4Data, n: usize, k: usize, f: Q4Format) -> Vec<f32> {
    dequantize_rows(d, k, f, 0, n)
}

/// Bytes one row of a `[_, k]` weight takes in this format (packed + scales (+ offsets)).
pub fn row_bytes(k: usize, f: Q4Format) -> usize {
    let ng = k / f.group();
    k / 2 + ng * 2 * if f.asym() { 2 } else { 1 }
}

/// The GPU storage of rows `r0 .. r1` of a quantized `[_, k]` tensor, in one buffer: the packed
/// words of those rows, then their scales (f16 pairs, padded to a whole word), then their
/// offsets (asymmetric only, padded likewise). One buffer per row chunk keeps a quantized
/// weight at one binding per dispatch, like f16/f32 weights; the kernels get the word offsets
/// of the scales and offsets from [`chunk_layout`].
pub fn chunk_storage_bytes(d: &Q4Data, k: usize, f: Q4Format, r0: usize, r1: usize) -> Vec<u8> {
    let gpr = k / f.group();
    let (_, _, words) = chunk_layout(r1 - r0, k, f);
    let mut out: Vec<u32> = Vec::with_capacity(words);
    out.extend_from_slice(&d.packed[r0 * k / 8..r1 * k / 8]);
    let push_halves = |out: &mut Vec<u32>, h: &[u16]| {
        for pair in h.chunks(2) {
            let lo = pair[0] as u32;
            let hi = pair.get(1).copied().unwrap_or(0) as u32;
            out.push(lo | (hi << 16));
        }
    };
    push_halves(&mut out, &d.scales[r0 * gpr..r1 * gpr]);
    if f.asym() {
        push_halves(&mut out, &d.offsets[r0 * gpr..r1 * gpr]);
    }
    debug_assert_eq!(out.len(), words);
    bytemuck::cast_slice(&out).to_vec()
}

/// Word offsets in a chunk of `rows` rows: `(scales_at, offsets_at, total_words)`.
pub fn chunk_layout(rows: usize, k: usize, f: Q4Format) -> (usize, usize, usize) {
    let gpr = k / f.group();
    let scales_at = rows * k / 8;
    let half_words = (rows * gpr).div_ceil(2);
    let offsets_at = scales_at + half_words;
    let total = offsets_at + if f.asym() { half_words } else { 0 };
    (scales_at, offsets_at, total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::num::rel_error;
    use crate::rng::Rng;

    #[test]
    fn packing_order_is_low_nibble_first() {
        // A row whose group maximum is -8·s maps exactly; check nibble positions by value.
        let f = Q4Format::new(32, Q4Scheme::Sym).unwrap();
        let mut w: Vec<f32> = (0..32).map(|i| (i % 16) as f32 - 8.0).collect();
        w[0] = -8.0;
        let q = quantize(&w, 1, 32, f).unwrap();
        assert_eq!(f16_val(q.scales[0]), 1.0);
        // element 0 is -8 → nibble 0; element 1 is -7 → nibble 1; ...
        assert_eq!(q.packed[0] & 0xF, 0);
        assert_eq!((q.packed[0] >> 4) & 0xF, 1);
        assert_eq!(q.packed[0], 0x7654_3210);
        assert_eq!(dequantize(&q, 1, 32, f), w);
    }

    #[test]
    fn roundtrip_error_is_bounded_and_asym_handles_offsets() {
        let mut rng = Rng::new(5);
        let (n, k) = (7, 96);
        let w = rng.vec(n * k, -1.0, 1.0);
        for scheme in [Q4Scheme::Sym, Q4Scheme::Asym] {
            let f = Q4Format::new(32, scheme).unwrap();
            let q = quantize(&w, n, k, f).unwrap();
            q.check("w", n, k, f).unwrap();
            let d = dequantize(&q, n, k, f);
            let e = rel_error(&d, &w);
            // Uniform data: step ≈ 2/15, error ≈ step/√12 / (1/√3) ≈ 0.077.
            assert!(e > 0.01 && e < 0.12, "{scheme:?}: {e}");
        }
        // Shifted data: the asymmetric scheme uses all 16 levels over [0.5, 1].
        let w2: Vec<f32> = rng.vec(n * k, 0.5, 1.0);
        let es = rel_error(
            &dequantize(
                &quantize(&w2, n, k, Q4Format::new(32, Q4Scheme::Sym).unwrap()).unwrap(),
                n,
                k,
                Q4Format::new(32, Q4Scheme::Sym).unwrap(),
            ),
            &w2,
        );
        let fa = Q4Format::new(32, Q4Scheme::Asym).unwrap();
        let ea = rel_error(&dequantize(&quantize(&w2, n, k, fa).unwrap(), n, k, fa), &w2);
        assert!(ea < es / 2.0, "asym {ea} vs sym {es}");
    }

    #[test]
    fn bad_inputs_are_errors() {
        let f = Q4Format::new(32, Q4Scheme::Sym).unwrap();
        assert!(Q4Format::new(48, Q4Scheme::Sym).is_err());
        assert!(quantize(&[0.0; 40], 1, 40, f).is_err());
        assert!(quantize(&[f32::NAN; 32], 1, 32, f).is_err());
        let q = quantize(&[0.0; 64], 2, 32, f).unwrap();
        assert!(q.check("w", 2, 32, f).is_ok());
        assert!(q.check("w", 1, 64, Q4Format::new(64, Q4Scheme::Asym).unwrap()).is_err());
        // All-zero groups dequantize to zeros.
        assert!(dequantize(&q, 2, 32, f).iter().all(|&v| v == 0.0));
    }
}
