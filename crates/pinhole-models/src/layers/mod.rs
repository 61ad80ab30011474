//! The layers every architecture is built from, so a model file only states what is particular
//! to its family. Nothing here knows a model; model files import this module, `pinhole-core`
//! and their config, and nothing else of the crate.
//!
//! * [`Scope`]: weight names by nesting (`Scope::root("vision").pp("encoder")`), as candle's
//!   `VarBuilder::pp`; the only way layers name weights.
//! * [`nn`]: [`Linear`] (optional bias; f32/f16/4-bit by the weight store's dtype), LayerNorm,
//!   RMSNorm, embedding, activations.
//! * [`attention`]: full (bidirectional) attention and the decoder's attention over its KV cache.
//! * [`vit`]: the pre-LN encoder layer shared by SigLIP and BLIP-2's ViT, and the SigLIP tower
//!   (PaliGemma, SmolVLM).
//! * [`decoder`]: the Llama-family decoder (Gemma, Gemma 2, Llama / SmolLM2) and its gated MLP.
//! * [`phi`]: the Phi decoder (parallel attention + MLP).
//! * [`step`]: the prompt embeddings with the image rows, and the step outputs (token choice,
//!   logits).

pub mod attention;
pub mod decoder;
pub mod nn;
pub mod phi;
pub mod scope;
pub mod step;
pub mod vit;

pub use attention::{full_attention, CachedAttention, StepRows};
pub use decoder::{gated_mlp, RmsDecoder};
pub use nn::{act, embedding, layer_norm, rms_norm, Linear};
pub use phi::PhiDecoder;
pub use scope::Scope;
pub use step::{join_rows, prompt_embeddings, token_embedding, StepOutputs, TokenChoice, IMAGE_FEATURES};
pub use vit::{siglip_tower, VitLayer, VitNames, BLIP2_NAMES, SIGLIP_NAMES};
pub mod weights;
pub use weights::{weights_of, ExpectedWeight};
