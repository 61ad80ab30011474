//! `pinhole quantize`: a Hugging Face model folder (f32/f16/bf16, single file or sharded) → a
//! 4-bit model folder that the loader reads transparently.
//!
//! What is quantized: every 2-D float tensor named `*.weight` — the linear layers of the vision
//! tower, projector and language model, the embedding table (= the tied LM head) and an untied
//! LM head — except position embeddings, norms, and tensors matching a `--keep` pattern. The
//! patch embedding is 4-D and biases/norms are 1-D, so they never qualify. Matrices whose K is
//! not a multiple of 8 and of the group size stay f16. Everything not quantized is written as
//! f16 (integer tensors are copied as they are).
//!
//! Streaming: the output header is computed from the input headers alone (quantized sizes
//! follow from shapes), written first, then each tensor is read, converted and written before
//! the next is read, so peak memory is about one tensor (as f32) whatever the model size. The
//! result is one `model.safetensors`. Everything is written into `OUT.partial`, renamed to
//! `OUT` only when complete, and removed on failure.

use std::io::Write;
use std::path::{Path, PathBuf};

use pinhole_core::hf::{CheckpointReader, StDType, TensorInfo};
use pinhole_core::quant::{
    self, Q4Format, Q4Scheme, META_GROUP, META_QUANT, SUFFIX_OFFSETS, SUFFIX_PACKED, SUFFIX_SCALES,
};
use pinhole_core::tensor::rel_error;
use pinhole_core::DType;

use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub struct QuantizeOptions {
    pub group: usize,
    pub scheme: Q4Scheme,
    /// Tensors whose checkpoint name matches one of these stay f16: a plain substring, or a
    /// pattern with `*` wildcards matched against the whole name.
    pub keep: Vec<String>,
}

impl Default for QuantizeOptions {
    fn default() -> Self {
        QuantizeOptions {
            group: quant::DEFAULT_GROUP,
            scheme: Q4Scheme::Sym,
            keep: Vec::new(),
        }
    }
}

/// One input tensor and what became of it.
#[derive(Clone, Debug)]
pub struct TensorReport {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype_in: String,
    /// `q4_sym`, `q4_asym`, `F16` or the input dtype (integer tensors).
    pub stored_as: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// ‖dequant(q) − w‖ / ‖w‖ for quantized tensors.
    pub rel_error: Option<f64>,
    /// Why a 2-D weight was not quantized (kept by pattern, K not a multiple of the group).
    pub note: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct QuantizeReport {
    pub tensors: Vec<TensorReport>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Number of quantized weights and the bytes they take (packed + scales + offsets).
    pub q4_weights: u64,
    pub q4_bytes: u64,
}

impl QuantizeReport {
    /// Bits per quantized weight, scales and offsets included.
    pub fn bits_per_weight(&self) -> f64 {
        if self.q4_weights == 0 {
            0.0
        } else {
            self.q4_bytes as f64 * 8.0 / self.q4_weights as f64
        }
    }
}

/// `*` matches any run of characters; a pattern without `*` matches as a substring.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    if !pattern.contains('*') {
        return name.contains(pattern);
    }
    fn rec(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len()).any(|i| rec(rest, &s[i..])),
            Some((c, rest)) => s.first() == Some(c) && rec(rest, &s[1..]),
        }
    }
    rec(pattern.as_bytes(), name.as_bytes())
}

/// Names that are 2-D `*.weight` tensors but must keep full precision: position tables (added
/// to activations, not multiplied) and norm weights.
fn never_quantized(name: &str) -> bool {
    [
        "position_embedding",
        "embed_positions",
        "pos_embed",
        "norm",
        "patch_embedding",
    ]
    .iter()
    .any(|s| name.contains(s))
}

enum Plan {
    Q4,
    F16 { note: Option<String> },
    Raw,
}

fn plan_for(info: &TensorInfo, f: Q4Format, keep: &[String]) -> Plan {
    if !info.dtype.is_supported_float() {
        return Plan::Raw;
    }
    let matrix = info.shape.len() == 2 && info.name.ends_with(".weight") && !never_quantized(&info.name);
    if !matrix {
        return Plan::F16 { note: None };
    }
    if let Some(p) = keep.iter().find(|p| pattern_matches(p, &info.name)) {
        return Plan::F16 {
            note: Some(format!("kept (--keep {p})")),
        };
    }
    if !f.fits(info.shape[1]) {
        return Plan::F16 {
            note: Some(format!("K={} not a multiple of 8 and {}", info.shape[1], f.group)),
        };
    }
    Plan::Q4
}

fn file_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Quantizes the model folder `model` into a new folder `out`. `progress(done, total, t)` is
/// called after each input tensor.
pub fn quantize_dir(
    model: &Path,
    out: &Path,
    opts: &QuantizeOptions,
    mut progress: impl FnMut(usize, usize, &TensorReport),
) -> Result<QuantizeReport> {
    let f = Q4Format::new(opts.group, opts.scheme)?;
    if !model.is_dir() {
        return Err(file_err(
            model,
            "not a folder; give a model folder (config.json, *.safetensors)",
        ));
    }
    if out.exists() && !out.is_dir() {
        return Err(file_err(
            out,
            "is a file, not a folder; --out names the new folder the 4-bit model is written to",
        ));
    }
    if out.exists() {
        let empty = out.is_dir() && std::fs::read_dir(out).map_err(|e| file_err(out, e))?.next().is_none();
        if !empty {
            return Err(file_err(
                out,
                "already exists and is not empty; choose a new output folder",
            ));
        }
    }
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    if partial.exists() {
        return Err(file_err(
            &partial,
            "exists (left by an interrupted run?); remove it and run again",
        ));
    }
    let mut reader = CheckpointReader::open(model)?;
    if crate::q4_load::checkpoint_format(&reader)?.is_some()
        || reader.tensors().any(|t| crate::q4_load::base_name(&t.name).is_some())
    {
        return Err(file_err(
            model,
            "is already 4-bit quantized (pinhole.quant metadata / .q4 tensors); quantize the original f32/f16/bf16 model",
        ));
    }
    let infos: Vec<TensorInfo> = reader.tensors().cloned().collect();
    if infos.is_empty() {
        return Err(file_err(model, "the checkpoint holds no tensors"));
    }
    std::fs::create_dir_all(&partial).map_err(|e| file_err(&partial, e))?;
    let result = write_all(model, &partial, &mut reader, &infos, f, opts, &mut progress);
    let result = result.and_then(|r| {
        if out.exists() {
            std::fs::remove_dir(out).map_err(|e| file_err(out, e))?;
        }
        std::fs::rename(&partial, out).map_err(|e| file_err(out, e))?;
        Ok(r)
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&partial);
    }
    result
}

/// Output entries of one input tensor: (name, dtype, shape, bytes).
fn out_entries(info: &TensorInfo, plan: &Plan, f: Q4Format) -> Vec<(String, &'static str, Vec<usize>, u64)> {
    match plan {
        Plan::Q4 => {
            let (n, k) = (info.shape[0], info.shape[1]);
            let ng = k / f.group();
            let mut v = vec![
                (
                    format!("{}{SUFFIX_PACKED}", info.name),
                    "U32",
                    vec![n, k / 8],
                    (n * k / 2) as u64,
                ),
                (
                    format!("{}{SUFFIX_SCALES}", info.name),
                    "F16",
                    vec![n, ng],
                    (n * ng * 2) as u64,
                ),
            ];
            if f.asym() {
                v.push((
                    format!("{}{SUFFIX_OFFSETS}", info.name),
                    "F16",
                    vec![n, ng],
                    (n * ng * 2) as u64,
                ));
            }
            v
        }
        Plan::F16 { .. } => vec![(info.name.clone(), "F16", info.shape.clone(), (info.numel() * 2) as u64)],
        Plan::Raw => vec![(info.name.clone(), dtype_str(&info.dtype), info.shape.clone(), info.len)],
    }
}

fn dtype_str(d: &StDType) -> &'static str {
    // Integer and other tensors keep their dtype; the header needs a 'static name.
    match d {
        StDType::Bool => "BOOL",
        StDType::U8 => "U8",
        StDType::I8 => "I8",
        StDType::U16 => "U16",
        StDType::I16 => "I16",
        StDType::U32 => "U32",
        StDType::I32 => "I32",
        StDType::U64 => "U64",
        StDType::I64 => "I64",
        StDType::F64 => "F64",
        StDType::F8E4M3 => "F8_E4M3",
        StDType::F8E5M2 => "F8_E5M2",
        StDType::F16 => "F16",
        StDType::BF16 => "BF16",
        StDType::F32 => "F32",
        StDType::Other(_) => "U8",
    }
}

#[allow(clippy::too_many_arguments)]
fn write_all(
    model: &Path,
    partial: &Path,
    reader: &mut CheckpointReader<pinhole_core::hf::safetensors::FileSource>,
    infos: &[TensorInfo],
    f: Q4Format,
    opts: &QuantizeOptions,
    progress: &mut dyn FnMut(usize, usize, &TensorReport),
) -> Result<QuantizeReport> {
    if let Some(t) = infos.iter().find(|t| matches!(t.dtype, StDType::Other(_))) {
        return Err(Error::Tensor {
            name: t.name.clone(),
            message: format!("has dtype {}, which pinhole cannot copy", t.dtype),
        });
    }
    let plans: Vec<Plan> = infos.iter().map(|i| plan_for(i, f, &opts.keep)).collect();
    // Header: every output tensor with its offsets, plus the format metadata.
    let mut header = serde_json::Map::new();
    let mut meta = serde_json::Map::new();
    meta.insert("format".into(), "pt".into());
    meta.insert(META_QUANT.into(), f.scheme.meta().into());
    meta.insert(META_GROUP.into(), f.group.to_string().into());
    header.insert("__metadata__".into(), serde_json::Value::Object(meta));
    let mut offset = 0u64;
    for (info, plan) in infos.iter().zip(&plans) {
        for (name, dtype, shape, bytes) in out_entries(info, plan, f) {
            header.insert(
                name,
                serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + bytes]}),
            );
            offset += bytes;
        }
    }
    let mut h = serde_json::Value::Object(header).to_string().into_bytes();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let path = partial.join("model.safetensors");
    let file = std::fs::File::create(&path).map_err(|e| file_err(&path, e))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let werr = |e: std::io::Error| file_err(&path, e);
    w.write_all(&(h.len() as u64).to_le_bytes()).map_err(werr)?;
    w.write_all(&h).map_err(werr)?;

    let mut report = QuantizeReport::default();
    for (i, (info, plan)) in infos.iter().zip(&plans).enumerate() {
        let mut t = TensorReport {
            name: info.name.clone(),
            shape: info.shape.clone(),
            dtype_in: info.dtype.name().to_string(),
            stored_as: String::new(),
            bytes_in: info.len,
            bytes_out: 0,
            rel_error: None,
            note: None,
        };
        match plan {
            Plan::Q4 => {
                let src = reader.read_as(&info.name, DType::F32)?;
                let q = src.quantize_q4(f).map_err(|e| Error::Tensor {
                    name: info.name.clone(),
                    message: e.to_string(),
                })?;
                let vals = src.as_f32()?;
                t.rel_error = Some(rel_error(&q.values()?, vals));
                let pinhole_core::tensor::Data::Q4(d) = &q.data else {
                    return Err(Error::Request("quantize_q4 returned no 4-bit data".into()));
                };
                let mut bytes: Vec<u8> = d.packed.iter().flat_map(|x| x.to_le_bytes()).collect();
                bytes.extend(d.scales.iter().flat_map(|h| h.to_le_bytes()));
                bytes.extend(d.offsets.iter().flat_map(|h| h.to_le_bytes()));
                w.write_all(&bytes).map_err(werr)?;
                t.bytes_out = bytes.len() as u64;
                t.stored_as = f.scheme.meta().to_string();
                report.q4_weights += info.numel() as u64;
                report.q4_bytes += t.bytes_out;
            }
            Plan::F16 { note } => {
                let mut bytes = if info.dtype == StDType::F16 {
                    reader.read_raw(&info.name)?
                } else {
                    reader.read_as(&info.name, DType::F16)?.to_storage_bytes()
                };
                // Storage bytes are padded to whole words; the file holds exactly numel halves.
                bytes.truncate(info.numel() * 2);
                w.write_all(&bytes).map_err(werr)?;
                t.bytes_out = bytes.len() as u64;
                t.stored_as = "F16".into();
                t.note = note.clone();
            }
            Plan::Raw => {
                let bytes = reader.read_raw(&info.name)?;
                w.write_all(&bytes).map_err(werr)?;
                t.bytes_out = bytes.len() as u64;
                t.stored_as = info.dtype.name().to_string();
            }
        }
        report.bytes_in += t.bytes_in;
        report.bytes_out += t.bytes_out;
        progress(i + 1, infos.len(), &t);
        report.tensors.push(t);
    }
    w.flush().map_err(werr)?;
    w.into_inner()
        .map_err(|e| file_err(&path, e.error()))?
        .sync_all()
        .map_err(werr)?;

    // Config, tokenizer, processor and generation files come along unchanged.
    let entries = std::fs::read_dir(model).map_err(|e| file_err(model, e))?;
    for e in entries {
        let p = e.map_err(|e| file_err(model, e))?.path();
        let Some(name) = p.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let weights_file = name.ends_with(".safetensors") || name.ends_with(".safetensors.index.json");
        if p.is_file() && !weights_file {
            std::fs::copy(&p, partial.join(name)).map_err(|e| file_err(&p, e))?;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::pattern_matches;

    #[test]
    fn keep_patterns() {
        assert!(pattern_matches(
            "vision_tower",
            "vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight"
        ));
        assert!(pattern_matches(
            "*.mlp.*",
            "language_model.model.layers.3.mlp.up_proj.weight"
        ));
        assert!(!pattern_matches(
            "*.mlp",
            "language_model.model.layers.3.mlp.up_proj.weight"
        ));
        assert!(pattern_matches("lm_head.weight", "lm_head.weight"));
    }
}
