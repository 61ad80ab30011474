//! pinhole-models: the model architectures pinhole runs, written against the op graph of
//! `pinhole-core` so they never touch a kernel.
//!
//! * [`paligemma`]: SigLIP vision tower + linear projector + Gemma / Gemma 2 decoder, mirroring
//!   transformers' `modeling_paligemma.py`, `modeling_siglip.py`, `modeling_gemma(2).py`.
//! * [`blip2`]: BLIP-2 with a Phi language model (TinyGPT-V class): ViT → Q-Former →
//!   projection(s) → Phi, mirroring `modeling_blip_2.py` and `modeling_phi.py`.
//! * [`smolvlm`]: SmolVLM / Idefics3: SigLIP on each tile + pixel-shuffle connector + Llama
//!   decoder, mirroring `modeling_smolvlm.py` / `modeling_idefics3.py` and `modeling_llama.py`.
//! * [`layers`]: what the model files are built from (weight-name scopes, linear, norms,
//!   attention, the ViT layer, the Llama-family and Phi decoders, the step outputs) and the
//!   weight list read off the graphs. Model files import only `layers` and `pinhole-core`.
//! * [`arch`]: the [`arch::Architecture`] trait a family implements; [`registry`]: the families
//!   by config.json's `model_type`; [`model`]: [`Model`], the family the loader, processor,
//!   generation loop, CLI and browser share.
//! * [`loader`]: opens a Hugging Face model folder and streams its weights to the GPU one
//!   tensor at a time, mapping the published name layouts onto one canonical set.
//! * [`q4_load`]: the loader's hook for 4-bit weights in quantized folders.
//! * [`quantize`]: `pinhole quantize`: a model folder → a 4-bit model folder, streamed.
//! * [`processor`]: the prompt and image preprocessing of the PaliGemma and BLIP-2 processors;
//!   [`smolvlm_processor`]: SmolVLM / Idefics3 prompt ids (the `<image>` of a chat-templated
//!   prompt expanded into the tile tokens, then tokenised as transformers does).
//! * [`generate`]: prefill + decode loop with the KV cache on the GPU; one submit and one u32
//!   read back per token.
//! * [`stream_loader`]: the same loading from byte streams (the browser: fetch bodies, files,
//!   Cache Storage), uploading each tensor as soon as its bytes have arrived.
//! * [`boxes`]: parsing `<locYYYY>` detection output.

pub mod arch;
pub mod blip2;
pub mod boxes;
pub mod error;
pub mod generate;
pub mod layers;
pub mod loader;
pub mod model;
pub mod paligemma;
pub mod processor;
pub mod q4_load;
#[cfg(not(target_arch = "wasm32"))]
pub mod quantize;
pub mod registry;
pub mod smolvlm;
pub mod smolvlm_processor;
pub mod stream_loader;
pub mod tokenizer;

pub use error::{Error, Result};
pub use generate::{generate_with, GenerateOptions, Generation, Sampling, Timings};
pub use layers::TokenChoice;
pub use loader::{LoadOptions, LoadedModel, WeightPrecision};
pub use model::Model;
