//! pinhole-core: everything about a model that is not GPU code.
//!
//! * [`tensor`]: shapes, dtypes and the host-side [`Tensor`] used by the CPU reference and tests.
//! * [`graph`]: the op graph model code builds; the GPU executor (crate `pinhole-gpu`) and the
//!   CPU reference executor ([`reference::run_graph`]) both run it.
//! * [`reference`]: a plain, obviously-correct CPU implementation of every op. Kernels are tested
//!   against it, and it is the specification the WGSL must meet.
//! * [`quant`]: the 4-bit weight format, quantizer and dequantizing reference.
//! * [`num`]: f16 rounding and the relative error measure (no dependencies).
//! * [`rng`]: a tiny seeded generator so tests are reproducible without extra dependencies.

pub mod error;
pub mod graph;
pub mod hf;
pub mod num;
pub mod quant;
pub mod reference;
pub mod rng;
pub mod tensor;

pub use error::{Error, Result};
pub use graph::{AttnMask, AttnParams, Graph, Op, SampleParams, TensorId, ValueKind};
pub use tensor::{DType, Tensor};
