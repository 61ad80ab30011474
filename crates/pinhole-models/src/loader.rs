//! Opening a Hugging Face model folder: configs, tokenizer, and the weights streamed to the GPU
//! one tensor at a time (read, convert, upload, drop), so a model never exists twice in host
//! memory.
//!
//! Published checkpoints use several name layouts for the same tensors (transformers 4.x
//! `vision_tower.vision_model.*`, 5.x `vision_tower.*`, `language_model.model.*`,
//! `model.language_model.*`, …). They are all mapped onto one canonical set of names
//! (`vision.*`, `proj.*`, `text.*`) that the graph builders use.

use pinhole_core::hf::{GenerationConfig, ImageProcessorConfig, ModelConfig};
use pinhole_core::DType;
use pinhole_gpu::WeightStore;

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

#[cfg(not(target_arch = "wasm32"))]
fn read_file(dir: &std::path::Path, name: &str) -> Result<Vec<u8>> {
    let p = dir.join(name);
    std::fs::read(&p).map_err(|e| Error::File {
        path: p.display().to_string(),
        message: format!("{e}"),
    })
}

/// The small files of a model folder, as bytes with the name to show in errors (a path, or a
/// URL in the browser).
pub struct ModelFiles<'a> {
    pub config: (&'a [u8], &'a str),
    /// `preprocessor_config.json` or `processor_config.json`.
    pub processor: (&'a [u8], &'a str),
    /// `generation_config.json`, when the folder has one.
    pub generation: Option<(&'a [u8], String)>,
    pub tokenizer: (&'a [u8], &'a str),
}

/// Parses the configs and the tokenizer into the model description (no weights yet). Shared
/// by [`load_dir`] and the streaming loader the browser uses
/// ([`crate::stream_loader::StreamingLoader`]).
pub fn prepare(files: &ModelFiles<'_>, opts: &LoadOptions) -> Result<(PaliGemma, tokenizers::Tokenizer)> {
    // One architecture today; TinyGPT-V-class configs become a second variant here.
    let ModelConfig::PaliGemma(cfg) = ModelConfig::parse(files.config.0, files.config.1)?;
    let proc_cfg = ImageProcessorConfig::parse(files.processor.0, files.processor.1)?;
    let gen_cfg = match &files.generation {
        Some((b, name)) => GenerationConfig::parse(b, name)?,
        None => GenerationConfig::default(),
    };
    let tokenizer = tokenizers::Tokenizer::from_bytes(files.tokenizer.0).map_err(|e| Error::Tokenizer {
        file: files.tokenizer.1.to_string(),
        message: e.to_string(),
    })?;
    let matrix_dtype = match opts.precision {
        WeightPrecision::F32 => DType::F32,
        WeightPrecision::F16 => DType::F16,
        WeightPrecision::Auto => match cfg.dtype {
            Some(DType::F16) | Some(DType::BF16) => DType::F16,
            _ => DType::F32,
        },
    };
    Ok((PaliGemma::new(cfg, proc_cfg, gen_cfg, matrix_dtype), tokenizer))
}

/// Loads a model folder onto the GPU (not on wasm32: the browser streams files through
/// [`crate::stream_loader::StreamingLoader`]). `progress(done_bytes, total_bytes)` is called after
/// each tensor.
#[cfg(not(target_arch = "wasm32"))]
pub fn load_dir(
    gpu: &pinhole_gpu::Gpu,
    dir: impl AsRef<std::path::Path>,
    opts: &LoadOptions,
    mut progress: impl FnMut(u64, u64),
) -> Result<LoadedModel> {
    use pinhole_core::hf::CheckpointReader;
    use std::collections::HashMap;
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
    let proc_name = if dir.join("preprocessor_config.json").is_file() {
        "preprocessor_config.json"
    } else if dir.join("processor_config.json").is_file() {
        "processor_config.json"
    } else {
        return Err(Error::File {
            path: dir.join("preprocessor_config.json").display().to_string(),
            message: "missing (neither preprocessor_config.json nor processor_config.json is in the folder)".into(),
        });
    };
    let proc_bytes = read_file(dir, proc_name)?;
    let gen_bytes = if dir.join("generation_config.json").is_file() {
        Some(read_file(dir, "generation_config.json")?)
    } else {
        None
    };
    let tok_bytes = read_file(dir, "tokenizer.json")?;
    let shown_in = |f: &str| dir.join(f).display().to_string();
    let (model, tokenizer) = prepare(
        &ModelFiles {
            config: (&cfg_bytes, &shown_in("config.json")),
            processor: (&proc_bytes, &shown_in(proc_name)),
            generation: gen_bytes.as_deref().map(|b| (b, shown_in("generation_config.json"))),
            tokenizer: (&tok_bytes, &shown_in("tokenizer.json")),
        },
        opts,
    )?;
    let matrix_dtype = model.matrix_dtype;

    let mut reader = CheckpointReader::open(dir)?;
    let expected = model.expected_weights();

    // Which checkpoint tensor provides each canonical weight.
    let mut source: HashMap<String, String> = HashMap::new();
    for info in reader.tensors() {
        if let Some(c) = canonical_name(&info.name) {
            source.insert(c, info.name.clone());
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
        let t = reader.read_as(src, dtype)?;
        weights.upload(gpu, &w.name, &t).map_err(Error::Gpu)?;
        done += reader.info(src)?.len;
        progress(done, total);
    }
    Ok(LoadedModel {
        model,
        tokenizer,
        weights,
        dir: shown,
    })
}
