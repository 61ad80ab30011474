//! Opening a Hugging Face model folder: configs, tokenizer, and the weights streamed to the GPU
//! piece by piece from the mapped files (read, convert, write at an offset), so a model never
//! exists twice in host memory and no whole tensor is ever held (see [`load_dir`]).
//!
//! Published checkpoints use several name layouts for the same tensors (transformers 4.x
//! `vision_tower.vision_model.*`, 5.x `vision_tower.*`, `language_model.model.*`,
//! `model.language_model.*`, …). They are all mapped onto one canonical set of names
//! (`vision.*`, `proj.*`, `text.*`, …) that the graph builders use. The architecture comes
//! from config.json's `model_type` ([`Model`]); BLIP-2's fused vision `qkv` weight is split
//! into its q/k/v rows here.

use pinhole_core::hf::safetensors::{encode_storage, TensorInfo};
use pinhole_core::tensor::Data;
use pinhole_core::{DType, Tensor};
use pinhole_gpu::{WeightStore, WeightWriter};

pub use crate::arch::{ModelFiles, WeightPrecision};
use crate::error::{Error, Result};
use crate::model::Model;

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
    pub model: Model,
    pub tokenizer: tokenizers::Tokenizer,
    pub weights: WeightStore,
    pub dir: String,
}

/// A shape without its leading 1-dims.
pub(crate) fn squeeze(shape: &[usize]) -> &[usize] {
    let lead = shape
        .iter()
        .take_while(|&&d| d == 1)
        .count()
        .min(shape.len().saturating_sub(1));
    &shape[lead..]
}

/// Rows `first .. first + rows` (along dim 0) of `t`, as a tensor of `shape`.
pub(crate) fn take_rows(t: &Tensor, first: usize, rows: usize, shape: &[usize]) -> Result<Tensor> {
    let cols: usize = t.shape[1..].iter().product();
    let data = t.as_f32()?;
    let part = data
        .get(first * cols..(first + rows) * cols)
        .ok_or_else(|| Error::Request(format!("rows {first}..{} outside {:?}", first + rows, t.shape)))?;
    Ok(Tensor {
        shape: shape.to_vec(),
        dtype: t.dtype,
        data: Data::F32(part.to_vec()),
    })
}

/// Source bytes of a float tensor converted and written per piece by the native loader:
/// small enough that the piece and its conversion stay in the CPU caches' reach and memory
/// stays flat, large enough that per-piece costs vanish.
#[cfg(not(target_arch = "wasm32"))]
pub const PIECE_BYTES: usize = 1 << 20;

/// Converts one piece of a float tensor's stored bytes (whole elements, in order) to its GPU
/// storage `dtype` and writes it to the tensor's buffers: the step both loaders (this one and
/// [`crate::stream_loader`]) take for every piece. `scratch` holds the conversion and is reused.
pub(crate) fn write_piece(
    gpu: &pinhole_gpu::Gpu,
    weights: &mut WeightStore,
    writer: &mut WeightWriter,
    info: &TensorInfo,
    bytes: &[u8],
    dtype: DType,
    scratch: &mut Vec<u8>,
) -> Result<()> {
    scratch.clear();
    encode_storage(&info.dtype, bytes, dtype, scratch, &info.name)?;
    weights.write(gpu, writer, scratch).map_err(Error::Gpu)
}

#[cfg(not(target_arch = "wasm32"))]
fn read_file(dir: &std::path::Path, name: &str) -> Result<Vec<u8>> {
    let p = dir.join(name);
    std::fs::read(&p).map_err(|e| Error::File {
        path: p.display().to_string(),
        message: format!("{e}"),
    })
}

/// Parses the configs and the tokenizer into the model description (no weights yet). Shared
/// by [`load_dir`] and the streaming loader the browser uses
/// ([`crate::stream_loader::StreamingLoader`]).
pub fn prepare(files: &ModelFiles<'_>, opts: &LoadOptions) -> Result<(Model, tokenizers::Tokenizer)> {
    let model = Model::new(crate::registry::build(files, opts.precision)?);
    let tokenizer = crate::tokenizer::load(files.tokenizer.0, files.tokenizer.1)?;
    // Every image is resized to the processor's size, and only the vision tower's size can be
    // used: a mismatch is an error here rather than after each image has been resized (which
    // a hostile size would make expensive).
    let p = model.processor();
    let [_, side, _] = model.pixel_shape();
    if p.do_resize && p.size != (side, side) {
        return Err(Error::Core(pinhole_core::Error::Invalid(format!(
            "{}: size {}x{} differs from the vision tower's image_size {side} in {}; fix the processor config",
            files.processor.1, p.size.0, p.size.1, files.config.1
        ))));
    }
    Ok((model, tokenizer))
}

/// The storage dtype of the model's matrix weights.
pub fn model_matrix_dtype(model: &Model) -> DType {
    model.matrix_dtype()
}

/// Loads a model folder onto the GPU (not on wasm32: the browser streams files through
/// [`crate::stream_loader::StreamingLoader`]). `progress(done_bytes, total_bytes)` is called after
/// each tensor.
///
/// The safetensors files are mapped (see `pinhole_core::hf::safetensors::FileSource`) and each
/// f32/f16/bf16 tensor goes from the file to its GPU buffers in pieces of [`PIECE_BYTES`]:
/// converted (bf16 → f16 in bulk) into one reused buffer and written at its offset in the
/// row-split buffers, while the driver copies the previous writes (see
/// `pinhole_gpu::weights::FLUSH_BYTES`). Host memory beyond the weights themselves is one
/// piece and the staging copies in flight, whatever the tensor size.
#[cfg(not(target_arch = "wasm32"))]
pub fn load_dir(
    gpu: &pinhole_gpu::Gpu,
    dir: impl AsRef<std::path::Path>,
    opts: &LoadOptions,
    progress: impl FnMut(u64, u64),
) -> Result<LoadedModel> {
    load_dir_in_pieces(gpu, dir, opts, PIECE_BYTES, progress)
}

/// [`load_dir`] with float tensors read, converted and written in pieces of at most
/// `piece_bytes` stored bytes (whole elements; tests use small odd sizes).
#[doc(hidden)]
#[cfg(not(target_arch = "wasm32"))]
pub fn load_dir_in_pieces(
    gpu: &pinhole_gpu::Gpu,
    dir: impl AsRef<std::path::Path>,
    opts: &LoadOptions,
    piece_bytes: usize,
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
    let matrix_dtype = model_matrix_dtype(&model);

    let mut reader = CheckpointReader::open(dir)?;
    // A folder written by `pinhole quantize` (see q4_load): 4-bit weights come in as Q4.
    let q4_format = crate::q4_load::checkpoint_format(&reader)?;
    let expected = model.expected_weights()?;

    // Which checkpoint tensor provides each canonical weight.
    let mut source: HashMap<String, String> = HashMap::new();
    for info in reader.tensors() {
        let name = crate::q4_load::base_name(&info.name).unwrap_or(&info.name);
        if let Some(c) = model.canonical_name(name) {
            source.insert(c, name.to_string());
        }
    }
    // Check every tensor (name and shape) before reading any data.
    let mut total = 0u64;
    // `None` as the source: zeros (a bias the checkpoint layout does not have).
    let mut plan: Vec<(Option<String>, Option<usize>)> = Vec::with_capacity(expected.len());
    for w in &expected {
        // A tensor of its own wins over a slice of a fused one.
        let slice = if source.contains_key(&w.name) {
            None
        } else {
            model.row_slice(&w.name)
        };
        let wanted = slice.as_ref().map_or(&w.name, |s| &s.source);
        if !source.contains_key(wanted) && model.zero_if_missing(&w.name) {
            plan.push((None, None));
            continue;
        }
        let Some(src) = source.get(wanted) else {
            let example = model.example_source(wanted);
            return Err(Error::Tensor {
                name: wanted.clone(),
                message: format!(
                    "missing from the checkpoint in {shown} (looked for it under the known name layouts, e.g. '{example}')"
                ),
            });
        };
        // A 4-bit weight: its .q4/.q4_scales(/.q4_offsets) tensors checked against the shape.
        let full_shape = match &slice {
            Some(_) => [vec![3 * w.shape[0]], w.shape[1..].to_vec()].concat(),
            None => w.shape.clone(),
        };
        if let Some(bytes) = crate::q4_load::check(&reader, q4_format, src, &full_shape, w.matrix)? {
            total += if slice.is_some() { bytes / 3 } else { bytes };
            plan.push((Some(src.clone()), slice.map(|s| s.first)));
            continue;
        }
        let info = reader.info(src)?;
        match &slice {
            None => {
                if squeeze(&info.shape) != squeeze(&w.shape) {
                    return Err(Error::Tensor {
                        name: src.clone(),
                        message: format!("has shape {:?} but config.json implies {:?}", info.shape, w.shape),
                    });
                }
                total += info.len;
            }
            Some(s) => {
                // A fused tensor (qkv weight or bias): 3 pieces of `w.shape[0]` rows each.
                let want = [vec![3 * w.shape[0]], w.shape[1..].to_vec()].concat();
                if info.shape != want || s.first + w.shape[0] > want[0] {
                    return Err(Error::Tensor {
                        name: src.clone(),
                        message: format!("has shape {:?} but config.json implies {want:?}", info.shape),
                    });
                }
                total += info.len / 3;
            }
        }
        plan.push((Some(src.clone()), slice.map(|s| s.first)));
    }
    let mut weights = WeightStore::new();
    let mut done = 0u64;
    // The piece buffers, reused by every tensor: the file's bytes (when it is not mapped) and
    // their conversion.
    let (mut buf, mut scratch) = (Vec::new(), Vec::new());
    for (w, (src, first)) in expected.iter().zip(plan) {
        let dtype = if w.matrix { matrix_dtype } else { DType::F32 };
        let Some(src) = src else {
            weights
                .upload(gpu, &w.name, &Tensor::zeros(&w.shape))
                .map_err(Error::Gpu)?;
            continue;
        };
        let full_shape = match first {
            Some(_) => [vec![3 * w.shape[0]], w.shape[1..].to_vec()].concat(),
            None => w.shape.clone(),
        };
        let q4 = crate::q4_load::check(&reader, q4_format, &src, &full_shape, w.matrix)?;
        let info = match q4 {
            None => Some(reader.info(&src)?.clone()),
            Some(_) => None,
        };
        if let Some(info) = info.filter(|i| i.dtype.is_supported_float()) {
            // A float tensor: converted and written to its GPU buffers piece by piece, straight
            // from the (mapped) file; only one piece is in host memory at a time.
            let cols: usize = info.shape.iter().skip(1).product();
            let elems = match first {
                Some(first) => first * cols..(first + w.shape[0]) * cols,
                None => 0..info.numel(),
            };
            let mut writer = WeightWriter::new(gpu, &w.name, &w.shape, dtype).map_err(Error::Gpu)?;
            reader.read_pieces(&src, elems, piece_bytes, &mut buf, |bytes| {
                write_piece(gpu, &mut weights, &mut writer, &info, bytes, dtype, &mut scratch)
            })?;
            weights.finish(&w.name, writer).map_err(Error::Gpu)?;
            done += if first.is_some() { info.len / 3 } else { info.len };
            progress(done, total);
            continue;
        }
        // One tensor in host memory at a time: read, upload, drop.
        let (mut t, len) = match q4 {
            Some(bytes) => match q4_format {
                Some(f) => (crate::q4_load::read(&mut reader, f, &src, &full_shape)?, bytes),
                None => return Err(Error::Request("4-bit weight without a format".into())),
            },
            None => (reader.read_as(&src, dtype)?, reader.info(&src)?.len),
        };
        match first {
            Some(first) if matches!(t.dtype, DType::Q4(_)) => {
                t = crate::q4_load::take_rows(&t, first, w.shape[0])?;
                done += len / 3;
            }
            Some(first) => {
                t = take_rows(&t, first, w.shape[0], &w.shape)?;
                done += len / 3;
            }
            None => {
                // Leading 1-dims (`[1, 1, E]` class token and the like) are dropped.
                t.shape = w.shape.clone();
                done += len;
            }
        }
        weights.upload(gpu, &w.name, &t).map_err(Error::Gpu)?;
        progress(done, total);
    }
    // The last writes may have gone to a device lost since: a model on it is no model.
    gpu.wait_idle()
        .map_err(|e| Error::Gpu(e.during(|| format!("loading {shown}"))))?;
    Ok(LoadedModel {
        model,
        tokenizer,
        weights,
        dir: shown,
    })
}
