//! The `struct Params` uniform of every kernel family as a `#[repr(C)]` Pod struct, so the
//! executor fills named fields instead of positional words. Each struct records its field
//! names, types and offsets ([`ParamsLayout`]); `tests/layout.rs` parses every shader with naga
//! and checks the WGSL `struct Params` against it field by field, so a layout mismatch fails a
//! test instead of a generation. Field names are the WGSL names.

use bytemuck::{Pod, Zeroable};

/// The scalar type of a uniform field (every field of every `Params` is a 32-bit scalar).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scalar {
    U32,
    F32,
}

/// Name, size and fields (name, type, byte offset) of one params struct.
#[derive(Clone, Copy, Debug)]
pub struct ParamsLayout {
    pub name: &'static str,
    pub size: usize,
    pub fields: &'static [(&'static str, Scalar, usize)],
}

/// A kernel family's uniform block.
pub trait KernelParams: Pod {
    const LAYOUT: ParamsLayout;
}

trait ScalarOf {
    const SCALAR: Scalar;
}
impl ScalarOf for u32 {
    const SCALAR: Scalar = Scalar::U32;
}
impl ScalarOf for f32 {
    const SCALAR: Scalar = Scalar::F32;
}

macro_rules! params {
    ($( $(#[$doc:meta])* $name:ident { $($field:ident : $ty:ident),* $(,)? } )*) => {$(
        $(#[$doc])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Pod, Zeroable)]
        pub struct $name {
            $(pub $field: $ty,)*
        }
        impl KernelParams for $name {
            const LAYOUT: ParamsLayout = ParamsLayout {
                name: stringify!($name),
                size: std::mem::size_of::<$name>(),
                fields: &[$((stringify!($field), <$ty as ScalarOf>::SCALAR, std::mem::offset_of!($name, $field))),*],
            };
        }
    )*};
}

params! {
    /// matmul.wgsl (gemm, gemv): Y = X·Wᵀ (+ bias) for weight rows n0 .. n0+nc of [n, k].
    MatmulParams {
        m: u32, n: u32, k: u32, n0: u32, nc: u32, has_bias: u32, gx: u32, epi: u32, y_off: u32, _p0: u32,
        _p1: u32, _p2: u32,
    }
    /// q4.wgsl (gemv, gemm, gather): as [`MatmulParams`] plus the 4-bit chunk layout.
    Q4Params {
        m: u32, n: u32, k: u32, n0: u32, nc: u32, has_bias: u32, gx: u32, group: u32, asym: u32,
        scales_at: u32, offsets_at: u32, epi: u32, y_off: u32, _p0: u32, _p1: u32, _p2: u32,
    }
    /// attention.wgsl (attend).
    AttentionParams {
        s: u32, n_heads: u32, n_kv: u32, head_dim: u32, kv_len: u32, q_pos0: u32, causal: u32,
        prefix_len: u32, window: u32, gx: u32, scale: f32, softcap: f32,
    }
    /// norm.wgsl (layer_norm, rms_norm).
    NormParams { rows: u32, d: u32, eps: f32, add_one: u32, gx: u32, _p0: u32, _p1: u32, _p2: u32 }
    /// elementwise.wgsl (act, gated, add, scale, softcap); `op` is the activation code.
    ElementwiseParams { n: u32, op: u32, gx: u32, _pad: u32, s: f32, _f0: f32, _f1: f32, _f2: f32 }
    /// copy.wgsl (copy_range, fill, copy_vec4).
    CopyParams { n: u32, src_off: u32, dst_off: u32, value: u32, gx: u32, _p0: u32, _p1: u32, _p2: u32 }
    /// rope.wgsl.
    RopeParams { s: u32, n_heads: u32, head_dim: u32, rot: u32, gx: u32, out_off: u32, _p1: u32, _p2: u32 }
    /// embedding.wgsl (gather, scatter).
    EmbeddingParams { s: u32, e: u32, row0: u32, rows: u32, gx: u32, _p0: u32, _p1: u32, _p2: u32 }
    /// argmax.wgsl.
    ArgmaxParams { rows: u32, n: u32, gx: u32, _pad: u32 }
    /// sample.wgsl (sample, repetition_penalty).
    SampleParams {
        rows: u32, n: u32, gx: u32, top_k: u32, temperature: f32, top_p: f32, uniform: f32,
        n_ids: u32, penalty: f32, inv_penalty: f32, _pad0: u32, _pad1: u32,
    }
    /// patch_embed.wgsl.
    PatchEmbedParams { c: u32, h: u32, w: u32, psize: u32, e: u32, np: u32, gx: u32, _pad: u32 }
}
