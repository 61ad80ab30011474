//! Reading Hugging Face model repositories: everything between a downloaded (or fetched) model
//! folder and the tensors and numbers the model code needs.
//!
//! * [`safetensors`]: a streaming safetensors reader. Only headers are kept in memory; tensors
//!   are read one at a time, so a loader can upload each to the GPU and drop it before reading
//!   the next.
//! * [`checkpoint`]: one name → tensor lookup over a whole checkpoint, single file or sharded
//!   (`model.safetensors.index.json`).
//! * [`config`]: `config.json`, parsed into typed structs with transformers' defaults;
//!   [`blip2_config`]: the BLIP-2 + Phi (TinyGPT-V class) variant.
//! * [`processor`]: `preprocessor_config.json` / `processor_config.json` and
//!   `generation_config.json`.
//! * [`image`]: image decoding and the exact PIL bicubic / Lanczos resize + normalisation.
//! * [`limits`]: the upper limits on sizes read from model files, checked before allocating.
//! * [`smolvlm_config`]: SmolVLM / Idefics3 `config.json` (SigLIP tower, pixel-shuffle
//!   connector, Llama decoder); [`smolvlm_image`]: their image processor (longest-edge resize,
//!   tiles).
//! * [`chat_template`]: a model folder's chat template (Jinja), rendered as
//!   `apply_chat_template(messages, add_generation_prompt=True)` does.
//!
//! Everything parses from bytes, so it works in the browser (wasm32); the few helpers that read
//! files from disk are only compiled for other targets.

pub mod blip2_config;
pub mod chat_template;
pub mod checkpoint;
pub mod config;
pub mod image;
pub mod json;
pub mod limits;
pub mod processor;
pub mod safetensors;
pub mod smolvlm_config;
pub mod smolvlm_image;

pub use blip2_config::{Blip2PhiConfig, Blip2VisionConfig, PhiConfig, QFormerConfig};
pub use chat_template::{ChatTemplate, ChatTemplateFiles};
pub use checkpoint::{CheckpointReader, ShardIndex};
pub use config::{
    model_type, Activation, ConfigLayout, LayerType, ModelConfig, PaliGemmaConfig, SiglipVisionConfig, TextConfig,
    TextModelType,
};
pub use image::{
    decode_image, decode_image_with, preprocess_image, preprocess_image_with, resize_bicubic, resize_filtered,
    DecodeOptions, Filter, PassOrder, Rgb8Image,
};
pub use processor::{GenerationConfig, ImageProcessorConfig};
pub use safetensors::{ByteSource, SafetensorsFile, StDType, TensorInfo};
pub use smolvlm_config::{LlamaTextConfig, SmolVlmConfig, SmolVlmKind};
