//! The kernel registry: which WGSL file and entry point implements each kernel, and whether
//! the kernel is specialised on the weight storage dtype (override `W_F16`).
//!
//! The WGSL lives in this crate's `shaders/` folder, one file per kernel family plus shared
//! snippets in `shaders/common/`, joined by [`crate::wgsl`] and compiled into the binary with
//! `include_str!` so native and wasm builds carry exactly the same source.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Matmul,
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

    pub const ALL: [Family; 11] = [
        Family::Matmul,
        Family::Attention,
        Family::Norm,
        Family::Elementwise,
        Family::Copy,
        Family::Rope,
        Family::Embedding,
        Family::Argmax,
        Family::Sample,
        Family::PatchEmbed,
        Family::Q4,
    ];
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    Gemm,
    Gemv,
    Attention,
    LayerNorm,
    RmsNorm,
    Act,
    Gated,
    Add,
    Scale,
    SoftCap,
    CopyRange,
    Fill,
    CopyVec4,
    Rope,
    Gather,
    Scatter,
    Argmax,
    Sample,
    RepetitionPenalty,
    PatchEmbed,
    /// 4-bit weights (q4.wgsl): fused GEMV, tiled GEMM, embedding gather.
    Q4Gemv,
    Q4Gemm,
    Q4Gather,
}

impl Kernel {
    pub fn family(self) -> Family {
        match self {
            Kernel::Gemm | Kernel::Gemv => Family::Matmul,
            Kernel::Attention => Family::Attention,
            Kernel::LayerNorm | Kernel::RmsNorm => Family::Norm,
            Kernel::Act | Kernel::Gated | Kernel::Add | Kernel::Scale | Kernel::SoftCap => Family::Elementwise,
            Kernel::CopyRange | Kernel::Fill | Kernel::CopyVec4 => Family::Copy,
            Kernel::Rope => Family::Rope,
            Kernel::Gather | Kernel::Scatter => Family::Embedding,
            Kernel::Argmax => Family::Argmax,
            Kernel::Sample | Kernel::RepetitionPenalty => Family::Sample,
            Kernel::PatchEmbed => Family::PatchEmbed,
            Kernel::Q4Gemv | Kernel::Q4Gemm | Kernel::Q4Gather => Family::Q4,
        }
    }

    pub fn entry(self) -> &'static str {
        match self {
            Kernel::Gemm => "gemm",
            Kernel::Gemv => "gemv",
            Kernel::Attention => "attend",
            Kernel::LayerNorm => "layer_norm",
            Kernel::RmsNorm => "rms_norm",
            Kernel::Act => "act",
            Kernel::Gated => "gated",
            Kernel::Add => "add",
            Kernel::Scale => "scale",
            Kernel::SoftCap => "softcap",
            Kernel::CopyRange => "copy_range",
            Kernel::Fill => "fill",
            Kernel::CopyVec4 => "copy_vec4",
            Kernel::Rope => "rope",
            Kernel::Gather => "gather",
            Kernel::Scatter => "scatter",
            Kernel::Argmax => "argmax",
            Kernel::Sample => "sample",
            Kernel::RepetitionPenalty => "repetition_penalty",
            Kernel::PatchEmbed => "patch_embed",
            Kernel::Q4Gemv => "gemv",
            Kernel::Q4Gemm => "gemm",
            Kernel::Q4Gather => "gather",
        }
    }

    /// Kernels whose WGSL declares `override W_F16`.
    pub fn has_weight_dtype(self) -> bool {
        matches!(self, Kernel::Gemm | Kernel::Gemv | Kernel::Gather | Kernel::PatchEmbed)
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
