//! pinhole-models: the model architectures pinhole runs, written against the op graph of
//! `pinhole-core` so they never touch a kernel.
//!
//! * [`paligemma`]: SigLIP vision tower + linear projector + Gemma / Gemma 2 decoder, mirroring
//!   transformers' `modeling_paligemma.py`, `modeling_siglip.py`, `modeling_gemma(2).py`.
//! * [`loader`]: opens a Hugging Face model folder and streams its weights to the GPU one
//!   tensor at a time, mapping the published name layouts onto one canonical set.
//! * [`processor`]: the prompt and image preprocessing of PaliGemma's processor.
//! * [`generate`]: prefill + decode loop with the KV cache on the GPU; one submit and one u32
//!   read back per token.
//! * [`stream_loader`]: the same loading from byte streams (the browser: fetch bodies, files,
//!   Cache Storage), uploading each tensor as soon as its bytes have arrived.
//! * [`boxes`]: parsing `<locYYYY>` detection output.

pub mod boxes;
pub mod error;
pub mod generate;
pub mod loader;
pub mod paligemma;
pub mod processor;
pub mod stream_loader;

pub use error::{Error, Result};
pub use generate::{generate_with, GenerateOptions, Generation, Sampling, Timings, TokenChoice};
pub use loader::{LoadOptions, LoadedModel, WeightPrecision};
