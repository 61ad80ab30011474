//! The kernel registry: for each kernel, the WGSL file and entry point that implement it,
//! whether it is specialised on the weight storage dtype (override `W_F16`), its params struct
//! ([`crate::params`]) and the storage bindings it reads and writes, all from one table.
//!
//! The WGSL lives in this crate's `shaders/` folder, one file per kernel family plus shared
//! snippets in `shaders/common/`, joined by [`crate::wgsl`] and compiled into the binary with
//! `include_str!` so native and wasm builds carry exactly the same source.

use crate::params::{
    ArgmaxParams, AttentionParams, CopyParams, ElementwiseParams, EmbeddingParams, KernelParams, MatmulParams,
    NormParams, ParamsLayout, PatchEmbedParams, Q4Params, RopeParams, SampleParams,
};

/// The kernel table: one row per kernel generates the [`Kernel`] enum and everything the
/// runtime asks of a kernel (its family's WGSL file, entry point, weight-dtype specialisation,
/// params struct and storage bindings), and [`Kernel::ALL`], which `Gpu::compile_all` and the
/// layout test (`tests/layout.rs`, naga reflection) walk.
macro_rules! kernel_table {
    ($(
        $(#[$doc:meta])*
        $kernel:ident => $family:ident :: $entry:literal, $params:ident, w_f16 = $wf:literal, [$($slot:literal $bind:ident),* $(,)?];
    )*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Kernel {
            $($(#[$doc])* $kernel,)*
        }

        impl Kernel {
            /// Every kernel, in table order.
            pub const ALL: &'static [Kernel] = &[$(Kernel::$kernel),*];

            pub fn family(self) -> Family {
                match self { $(Kernel::$kernel => Family::$family,)* }
            }

            pub fn entry(self) -> &'static str {
                match self { $(Kernel::$kernel => $entry,)* }
            }

            /// Kernels whose WGSL declares `override W_F16` (common/weight.wgsl).
            pub fn has_weight_dtype(self) -> bool {
                match self { $(Kernel::$kernel => $wf,)* }
            }

            /// The layout of the kernel's `struct Params` (binding 0).
            pub fn params(self) -> ParamsLayout {
                match self { $(Kernel::$kernel => <$params as KernelParams>::LAYOUT,)* }
            }

            /// The storage bindings the entry point uses, as (slot, WGSL name).
            pub fn bindings(self) -> &'static [(u32, &'static str)] {
                match self { $(Kernel::$kernel => &[$(($slot, stringify!($bind))),*],)* }
            }
        }
    };
}

kernel_table! {
    Gemm => Matmul::"gemm", MatmulParams, w_f16 = true, [1 x, 2 w, 3 bias, 4 y, 6 aux];
    Gemv => Matmul::"gemv", MatmulParams, w_f16 = true, [1 x, 2 w, 3 bias, 4 y, 6 aux];
    /// f32/f16 weights with 16-byte-aligned rows (linear_vec4.wgsl): vec4 GEMV (GPUs), and
    /// the barrier-free row-per-thread GEMV and register-tiled GEMM (CPU adapters).
    GemvVec4 => LinearVec4::"gemv", MatmulParams, w_f16 = true, [1 x, 2 w, 3 bias, 4 y, 6 aux];
    GemvRows => LinearVec4::"gemv_rows", MatmulParams, w_f16 = true, [1 x, 2 w, 3 bias, 4 y, 6 aux];
    GemmReg => LinearVec4::"gemm_reg", MatmulParams, w_f16 = true, [1 x, 2 w, 3 bias, 4 y, 6 aux];
    Attention => Attention::"attend", AttentionParams, w_f16 = false, [1 q, 2 k, 3 v, 4 out];
    /// Barrier-free attention for CPU adapters: AR query rows per thread (prefill, vision).
    AttentionRows => Attention::"attend_rows", AttentionParams, w_f16 = false, [1 q, 2 k, 3 v, 4 out];
    /// GPU attention for prefill and vision: 8 query rows per workgroup sharing K/V tiles.
    AttentionTiled => Attention::"attend_tiled", AttentionParams, w_f16 = false, [1 q, 2 k, 3 v, 4 out];
    LayerNorm => Norm::"layer_norm", NormParams, w_f16 = false, [1 x, 2 w, 3 b, 4 y];
    RmsNorm => Norm::"rms_norm", NormParams, w_f16 = false, [1 x, 2 w, 4 y];
    Act => Elementwise::"act", ElementwiseParams, w_f16 = false, [1 a, 3 out];
    Gated => Elementwise::"gated", ElementwiseParams, w_f16 = false, [1 a, 2 b, 3 out];
    Add => Elementwise::"add", ElementwiseParams, w_f16 = false, [1 a, 2 b, 3 out];
    Scale => Elementwise::"scale", ElementwiseParams, w_f16 = false, [1 a, 3 out];
    SoftCap => Elementwise::"softcap", ElementwiseParams, w_f16 = false, [1 a, 3 out];
    CopyRange => Copy::"copy_range", CopyParams, w_f16 = false, [1 src, 2 dst];
    Fill => Copy::"fill", CopyParams, w_f16 = false, [2 dst];
    CopyVec4 => Copy::"copy_vec4", CopyParams, w_f16 = false, [3 src4, 4 dst4];
    Rope => Rope::"rope", RopeParams, w_f16 = false, [1 x, 2 cs, 3 out];
    Gather => Embedding::"gather", EmbeddingParams, w_f16 = true, [1 w, 2 ids, 4 out];
    Scatter => Embedding::"scatter", EmbeddingParams, w_f16 = false, [2 ids, 3 src, 4 out];
    Argmax => Argmax::"argmax", ArgmaxParams, w_f16 = false, [1 x, 2 out];
    Sample => Sample::"sample", SampleParams, w_f16 = false, [1 x, 2 out_id];
    RepetitionPenalty => Sample::"repetition_penalty", SampleParams, w_f16 = false, [1 x, 3 ids, 4 out_x];
    PatchEmbed => PatchEmbed::"patch_embed", PatchEmbedParams, w_f16 = true, [1 px, 2 w, 3 bias, 4 out, 5 pos];
    /// 4-bit weights (q4.wgsl): fused GEMV and tiled GEMM (GPUs), row-per-thread GEMV and
    /// register-tiled GEMM (CPU adapters), embedding gather.
    Q4Gemv => Q4::"gemv", Q4Params, w_f16 = false, [1 x, 2 w, 3 bias, 4 y, 6 aux];
    Q4Gemm => Q4::"gemm", Q4Params, w_f16 = false, [1 x, 2 w, 3 bias, 4 y, 6 aux];
    Q4GemvRows => Q4::"gemv_rows", Q4Params, w_f16 = false, [1 x, 2 w, 3 bias, 4 y, 6 aux];
    Q4GemmReg => Q4::"gemm_reg", Q4Params, w_f16 = false, [1 x, 2 w, 3 bias, 4 y, 6 aux];
    Q4Gather => Q4::"gather", Q4Params, w_f16 = false, [2 w, 4 y, 5 ids];
}

/// A kernel family: one WGSL file (one shader module) holding one or more entry points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Matmul,
    LinearVec4,
    Attention,
    Norm,
    Elementwise,
    Copy,
    Rope,
    Embedding,
    Argmax,
    Sample,
    PatchEmbed,
    Q4,
}

impl Family {
    pub fn file(self) -> &'static str {
        match self {
            Family::Matmul => "matmul.wgsl",
            Family::LinearVec4 => "linear_vec4.wgsl",
            Family::Attention => "attention.wgsl",
            Family::Norm => "norm.wgsl",
            Family::Elementwise => "elementwise.wgsl",
            Family::Copy => "copy.wgsl",
            Family::Rope => "rope.wgsl",
            Family::Embedding => "embedding.wgsl",
            Family::Argmax => "argmax.wgsl",
            Family::Sample => "sample.wgsl",
            Family::PatchEmbed => "patch_embed.wgsl",
            Family::Q4 => "q4.wgsl",
        }
    }

    /// The module source with its `// #include` lines resolved ([`crate::wgsl`]).
    pub fn source(self) -> crate::error::Result<String> {
        crate::wgsl::source(self.file())
    }
}

impl Kernel {
    /// Kernels with an f16-math variant (common/tile_f16.wgsl swapped in, see
    /// `Gpu::set_f16_math`): the shared-memory tiled GEMMs, f32/f16 and 4-bit weights.
    pub fn has_f16_math(self) -> bool {
        matches!(self, Kernel::Gemm | Kernel::Q4Gemm)
    }

    pub fn label(self) -> String {
        format!("{}:{}", self.family().file(), self.entry())
    }
}

/// Splits `groups` workgroups into an (x, y) grid within the per-dimension limit. Kernels
/// recover the linear index as `wg.x + wg.y · gx`.
pub fn grid(groups: u64, max_dim: u32) -> (u32, u32) {
    let groups = groups.max(1);
    let max_dim = max_dim.max(1) as u64;
    if groups <= max_dim {
        (groups as u32, 1)
    } else {
        let gy = groups.div_ceil(max_dim);
        let gx = groups.div_ceil(gy);
        (gx as u32, gy as u32)
    }
}
