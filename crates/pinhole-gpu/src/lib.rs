//! pinhole-gpu: the WebGPU runtime. The same source builds natively (wgpu on Vulkan, Metal,
//! DX12) and for `wasm32-unknown-unknown` (the browser's WebGPU).
//!
//! * [`context`]: adapter/device setup, limits, the pipeline cache, error capture.
//! * [`kernels`]: the kernel table (WGSL file, entry point, params struct, bindings).
//! * [`params`]: each kernel family's `struct Params` as a Pod struct.
//! * [`wgsl`]: the WGSL sources (`shaders/`) and the `// #include` step that joins them.
//! * [`weights`]: weights uploaded tensor by tensor and split across bindings.
//! * [`executor`]: runs a `pinhole_core::Graph` in one submission.
//! * `kernel_cases` (feature `kernel-cases`): kernel test cases shared by the native tests and
//!   the browser.
//! * [`bench`]: the kernel benchmark behind `pinhole bench kernels` (native).

pub mod context;
pub mod error;
pub mod executor;
#[cfg(feature = "kernel-cases")]
pub mod kernel_cases;
pub mod kernels;
pub mod params;
mod readback;
pub mod weights;
pub mod wgsl;

#[cfg(not(target_arch = "wasm32"))]
pub mod bench;

#[cfg(not(target_arch = "wasm32"))]
pub use context::open_blocking;
pub use context::{AdapterSummary, Gpu, GpuOptions};
pub use error::{GpuError, Result};
pub use executor::{Executor, RunStats};
pub use weights::{GpuTensor, WeightStore, WeightWriter};
