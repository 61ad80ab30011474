//! Opening a Hugging Face model folder: configs, tokenizer, and the weights streamed to the GPU
//! one tensor at a time (read, convert, upload, drop), so a model never exists twice in host
//! memory.
//!
//! Published checkpoints use several name layouts for the same tensors (transformers 4.x
//! `vision_tower.vision_model.*`, 5.x `vision_tower.*`, `language_model.model.*`,
//! `model.language_model.*`, …). They are all mapped onto one canonical set of names
//! (`vision.*`, `proj.*`, `text.*`) that the graph builders use.

use std::collections::HashMap;

use pinhole_core::hf::{CheckpointReader, GenerationConfig, ImageProcessorConfig, ModelConfig};
use pinhole_core::DType;
use pinhole_gpu::{Gpu, WeightStore};

use crate::error::{Error, Result};
use crate::paligemma::PaliGemma;

/// Storage precision of matrix weights (linear layers, embedding table). Norms, biases,
/// position embeddings and the patch-embedding kernel always stay f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightPrecision {
    F32,
    F16,
    /// f16 when the checkpoint is f16/bf16, f32 when it is f32.
    Auto,
}

#[derive(Clone, Debug)]
pub struct LoadOptions {
    pub precision: WeightPrecision,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            precision: WeightPrecision::Auto,
        }
    }
}

/// A model ready to run: its architecture, tokenizer and weights on the GPU.
pub struct LoadedModel {
    pub model: PaliGemma,
    pub tokenizer: tokenizers::Tokenizer,
    pub weights: WeightStore,
    pub dir: String,
}

/// Maps a checkpoint tensor name to the canonical name, or `None` for tensors pinhole does not
/// use (e.g. a vision head PaliGemma never runs).
pub fn canonical_name(name: &str) -> Option<String> {
    const MAP: &[(&str, &str)] = &[
        ("model.vision_tower.vision_model.", "vision."),
        ("vision_tower.vision_model.", "vision."),
        ("model.vision_tower.", "vision."),
        ("vision_tower.", "vision."),
        ("model.multi_modal_projector.", "proj."),
        ("multi_modal_projector.", "proj."),
        ("model.language_model.model.", "text."),
        ("model.language_model.", "text."),
        ("language_model.model.", "text."),
        ("language_model.lm_head.", "lm_head."),
        ("lm_head.", "lm_head."),
        ("language_model.", "text."),
    ];
    MAP.iter()
        .find_map(|(from, to)| name.strip_prefix(from).map(|rest| format!("{to}{rest}")))
}

fn read_file(dir: &std::path::Path, name: &str) -> Result<Vec<u8>> {
    let p = dir.join(name);
    std::fs::read(&p).map_err(|e| Error::File {
        path: p.display().to_string(),
        message: format!("{e}"),
    })
}

/// Loads a model folder onto the GPU. `progress(done_bytes, total_bytes)` is called after
/// each tensor.
pub fn load_dir(
    gpu: &Gpu,
    dir: impl AsRef<std::path::Path>,
    opts: &LoadOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<LoadedModel> {
    let dir = dir.as_ref();
    let shown = dir.display().to_string();
    if !dir.is_dir() {
        return Err(Error::File {
            path: shown,
            message:
                "not a folder; pass a model folder in Hugging Face layout (config.json, *.safetensors, tokenizer.json)"
                    .into(),
        });
    }
    let cfg_bytes = read_file(dir, "config.json")?;
    // One architecture today; TinyGPT-V-class configs become a second variant here.
    let ModelConfig::PaliGemma(cfg) = ModelConfig::parse(&cfg_bytes, &dir.join("config.json").display().to_string())?;
    let proc_cfg = if dir.join("preprocessor_config.json").is_file() {
        ImageProcessorConfig::parse(
            &read_file(dir, "preprocessor_config.json")?,
            &dir.join("preprocessor_config.json").display().to_string(),
        )?
    } else if dir.join("processor_config.json").is_file() {
        ImageProcessorConfig::parse(
            &read_file(dir, "processor_config.json")?,
            &dir.join("processor_config.json").display().to_string(),
        )?
    } else {
        return Err(Error::File {
            path: dir.join("preprocessor_config.json").display().to_string(),
            message: "missing (neither preprocessor_config.json nor processor_config.json is in the folder)".into(),
        });
    };
    let gen_cfg = if dir.join("generation_config.json").is_file() {
        GenerationConfig::parse(
            &read_file(dir, "generation_config.json")?,
            &dir.join("generation_config.json").display().to_string(),
        )?
    } else {
        GenerationConfig::default()
    };
    let tok_path = dir.join("tokenizer.json");
    let tok_bytes = read_file(dir, "tokenizer.json")?;
    let tokenizer = tokenizers::Tokenizer::from_bytes(&tok_bytes).map_err(|e| Error::Tokenizer {
        file: tok_path.display().to_string(),
        message: e.to_string(),
    })?;

    let mut reader = CheckpointReader::open(dir)?;
    // A folder written by `pinhole quantize` (see q4_load): 4-bit weights come in as Q4.
    let q4_format = crate::q4_load::checkpoint_format(&reader)?;
    let matrix_dtype = match opts.precision {
        WeightPrecision::F32 => DType::F32,
        WeightPrecision::F16 => DType::F16,
        WeightPrecision::Auto => match cfg.dtype {
            Some(DType::F16) | Some(DType::BF16) => DType::F16,
            _ => DType::F32,
        },
    };
    let model = PaliGemma::new(cfg, proc_cfg, gen_cfg, matrix_dtype);
    let expected = model.expected_weights();

    // Which checkpoint tensor provides each canonical weight.
    let mut source: HashMap<String, String> = HashMap::new();
    for info in reader.tensors() {
        let name = crate::q4_load::base_name(&info.name).unwrap_or(&info.name);
        if let Some(c) = canonical_name(name) {
            source.insert(c, name.to_string());
        }
    }
    let mut total = 0u64;
    for w in &expected {
        let Some(src) = source.get(&w.name) else {
            return Err(Error::Tensor {
                name: w.name.clone(),
                message: format!(
                    "missing from the checkpoint in {shown} (looked for it under the known name layouts, e.g. '{}')",
                    w.example_source()
                ),
            });
        };
        if let Some(bytes) = crate::q4_load::check(&reader, q4_format, src, &w.shape, w.matrix)? {
            total += bytes;
            continue;
        }
        let info = reader.info(src)?;
        if info.shape != w.shape {
            return Err(Error::Tensor {
                name: src.clone(),
                message: format!("has shape {:?} but config.json implies {:?}", info.shape, w.shape),
            });
        }
        total += info.len;
    }
    let mut weights = WeightStore::new();
    let mut done = 0u64;
    for w in &expected {
        let src = &source[&w.name];
        let dtype = if w.matrix { matrix_dtype } else { DType::F32 };
        // One tensor in host memory at a time: read, upload, drop.
        let (t, len) = match q4_format {
            Some(f) if reader.contains(&format!("{src}{}", pinhole_core::quant::SUFFIX_PACKED)) => {
                let t = crate::q4_load::read(&mut reader, f, src, &w.shape)?;
                (
                    t,
                    crate::q4_load::check(&reader, q4_format, src, &w.shape, w.matrix)?.unwrap_or(0),
                )
            }
            _ => (reader.read_as(src, dtype)?, reader.info(src)?.len),
        };
        weights.upload(gpu, &w.name, &t).map_err(Error::Gpu)?;
        done += len;
        progress(done, total);
    }
    Ok(LoadedModel {
        model,
        tokenizer,
        weights,
        dir: shown,
    })
}
