//! The fuzz targets: each takes untrusted bytes the way pinhole receives them (a file of a
//! model folder, or the four small files the browser's loader passes to `prepare`) and drives
//! the public parsing functions, then whatever the parsed description feeds (expected weights,
//! the graph builders, prompt ids). A target returns a short outcome string (`ok` or the
//! error) that the harness uses to tell inputs apart; it must never panic.
//!
//! To add a target (image decoding, a new config family): write a `fn(&[u8]) -> String`, give
//! it seeds, and add it to [`all`].

use std::path::{Path, PathBuf};

use pinhole_core::hf::{CheckpointReader, GenerationConfig, ImageProcessorConfig, SafetensorsFile, ShardIndex};
use pinhole_core::DType;
use pinhole_models::arch::WeightPrecision;
use pinhole_models::loader::{prepare, LoadOptions, ModelFiles};
use pinhole_models::model::Model;
use pinhole_models::TokenChoice;
use pinhole_models::{processor, q4_load, registry, tokenizer};

pub struct Target {
    pub name: &'static str,
    /// The committed files this target starts from.
    pub seeds: fn() -> Vec<Vec<u8>>,
    pub run: fn(&[u8]) -> String,
    /// Inputs are [`frame`]d lists of files, mutated one file at a time.
    pub framed: bool,
}

pub fn all() -> Vec<Target> {
    vec![
        Target {
            name: "config",
            seeds: config_seeds,
            run: config,
            framed: false,
        },
        Target {
            name: "processor",
            seeds: processor_seeds,
            run: processor_config,
            framed: false,
        },
        Target {
            name: "generation",
            seeds: generation_seeds,
            run: generation_config,
            framed: false,
        },
        Target {
            name: "tokenizer",
            seeds: tokenizer_seeds,
            run: tokenizer_json,
            framed: false,
        },
        Target {
            name: "safetensors",
            seeds: safetensors_seeds,
            run: safetensors,
            framed: false,
        },
        Target {
            name: "shard_index",
            seeds: shard_index_seeds,
            run: shard_index,
            framed: false,
        },
        Target {
            name: "q4_metadata",
            seeds: q4_seeds,
            run: q4_metadata,
            framed: false,
        },
        Target {
            name: "prepare",
            seeds: prepare_seeds,
            run: prepare_files,
            framed: true,
        },
    ]
}

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read_all(paths: &[PathBuf]) -> Vec<Vec<u8>> {
    paths.iter().filter_map(|p| std::fs::read(p).ok()).collect()
}

/// Files called `name` in the fixture model folders and the bundled models.
fn model_files(name: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in ["tests/fixtures", "models"] {
        let Ok(entries) = std::fs::read_dir(root().join(dir)) else {
            continue;
        };
        let mut dirs: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        dirs.sort();
        for d in dirs {
            for p in [d.join("model").join(name), d.join(name)] {
                if p.is_file() {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// The regression inputs committed for `target` (crates/pinhole-fuzz/corpus/<target>/).
pub fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .map(|e| {
            e.filter_map(|e| e.ok())
                .filter_map(|e| {
                    Some((
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read(e.path()).ok()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn with_corpus(target: &str, mut seeds: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    seeds.extend(corpus(target).into_iter().map(|(_, b)| b));
    seeds
}

fn outcome<T, E: std::fmt::Display>(r: Result<T, E>) -> String {
    match r {
        Ok(_) => "ok".into(),
        Err(e) => e.to_string(),
    }
}

// ---- configs -------------------------------------------------------------------------------

fn config_seeds() -> Vec<Vec<u8>> {
    let mut paths = model_files("config.json");
    if let Ok(e) = std::fs::read_dir(root().join("crates/pinhole-core/tests/fixtures/config")) {
        let mut more: Vec<PathBuf> = e
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| !p.to_string_lossy().ends_with(".expected.json"))
            .collect();
        more.sort();
        paths.extend(more);
    }
    with_corpus("config", read_all(&paths))
}

/// A parsed model description driven through what loading and generation build from it
/// without a GPU: the expected weights and their checkpoint names, and the three graphs.
fn exercise(model: &Model, ids: Option<Vec<u32>>) -> String {
    let weights = match model.expected_weights() {
        Ok(w) => w,
        Err(e) => return e.to_string(),
    };
    for w in &weights {
        let _ = model.example_source(&w.name);
        let _ = model.row_slice(&w.name);
        let _ = model.zero_if_missing(&w.name);
    }
    if let Err(e) = model.image_graph(0, false) {
        return e.to_string();
    }
    // Every tile has its own graph (the global tile last): build the last one too.
    let last = model.max_tiles().saturating_sub(1);
    if last > 0 {
        if let Err(e) = model.image_graph(last, false) {
            return e.to_string();
        }
    }
    let ids = ids.unwrap_or_else(|| {
        // One image's `<image>` tokens (for SmolVLM one tile's: an image that is not split).
        let n = if model.tiled() {
            model.min_image_tokens()
        } else {
            model.num_image_tokens()
        };
        let image = model.image_token().unwrap_or(0);
        let mut ids = vec![image; n];
        ids.extend([2, 3]);
        ids
    });
    let rows = processor::image_rows(model, &ids);
    let needed = ids.len().saturating_add(4);
    if needed > model.max_positions() {
        return "too long".into();
    }
    if let Err(e) = model.prefill_graph(&ids, &rows, needed, false, &TokenChoice::Greedy) {
        return e.to_string();
    }
    outcome(model.decode_graph(1, ids.len(), ids.len(), needed, false, &TokenChoice::Greedy))
}

/// config.json through the registry: the family its `model_type` names, built from the file
/// alone ([`registry::from_config`]), then driven as [`exercise`] does.
pub fn config(bytes: &[u8]) -> String {
    match registry::from_config(bytes, "config.json", WeightPrecision::F16) {
        Ok(arch) => exercise(&Model::new(arch), None),
        Err(e) => e.to_string(),
    }
}

fn processor_seeds() -> Vec<Vec<u8>> {
    let mut p = model_files("preprocessor_config.json");
    p.extend(model_files("processor_config.json"));
    with_corpus("processor", read_all(&p))
}

pub fn processor_config(bytes: &[u8]) -> String {
    outcome(ImageProcessorConfig::parse(bytes, "preprocessor_config.json"))
}

fn generation_seeds() -> Vec<Vec<u8>> {
    with_corpus("generation", read_all(&model_files("generation_config.json")))
}

pub fn generation_config(bytes: &[u8]) -> String {
    outcome(GenerationConfig::parse(bytes, "generation_config.json"))
}

// ---- tokenizer -----------------------------------------------------------------------------

fn tokenizer_seeds() -> Vec<Vec<u8>> {
    // The small tokenizers (a few KB each) keep the execution rate up; the 160 KB Gemma ones
    // differ mostly in vocabulary size.
    let mut paths: Vec<PathBuf> = model_files("tokenizer.json")
        .into_iter()
        .filter(|p| std::fs::metadata(p).map(|m| m.len() < 64 * 1024).unwrap_or(false))
        .collect();
    paths.extend(model_files("tokenizer.json").into_iter().take(1));
    with_corpus("tokenizer", read_all(&paths))
}

pub fn tokenizer_json(bytes: &[u8]) -> String {
    let tok = match tokenizer::load(bytes, "tokenizer.json") {
        Ok(t) => t,
        Err(e) => return e.to_string(),
    };
    for (text, special) in [("caption en\n", false), ("answer en what is <image> ?", true)] {
        let r = tokenizer::contained("tokenizer.json", "encoding", || {
            tok.encode(text, special)
                .map(|e| e.get_ids().to_vec())
                .map_err(|e| pinhole_models::Error::Request(e.to_string()))
        });
        if let Ok(ids) = r {
            let _ = processor::decode(&tok, &ids);
            let _ = processor::decode_with_special(&tok, &ids);
        }
    }
    let _ = processor::decode(&tok, &[0, 1, 2, 3, 100, 4000, u32::MAX]);
    "ok".into()
}

// ---- safetensors ---------------------------------------------------------------------------

fn safetensors_seeds() -> Vec<Vec<u8>> {
    let mut p = vec![
        root().join("crates/pinhole-core/tests/fixtures/safetensors/mixed.safetensors"),
        root().join("crates/pinhole-core/tests/fixtures/safetensors/sharded/model-00001-of-00002.safetensors"),
        root().join("crates/pinhole-core/tests/fixtures/safetensors/sharded/model-00002-of-00002.safetensors"),
    ];
    p.retain(|p| p.is_file());
    with_corpus("safetensors", read_all(&p))
}

pub fn safetensors(bytes: &[u8]) -> String {
    let mut f = match SafetensorsFile::open(bytes, "fuzz.safetensors") {
        Ok(f) => f,
        Err(e) => return e.to_string(),
    };
    let names: Vec<String> = f.tensors().iter().map(|t| t.name.clone()).collect();
    let mut out = String::from("ok");
    for n in names {
        if let Err(e) = f.read(&n) {
            out = e.to_string();
        }
        let _ = f.read_as(&n, DType::F16);
    }
    out
}

fn shard_index_seeds() -> Vec<Vec<u8>> {
    let mut p = model_files("model.safetensors.index.json");
    p.push(root().join("crates/pinhole-core/tests/fixtures/safetensors/sharded/model.safetensors.index.json"));
    p.retain(|p| p.is_file());
    with_corpus("shard_index", read_all(&p))
}

/// A valid safetensors file with one f32 tensor `name` of shape [2].
fn tiny_file(names: &[&str]) -> Vec<u8> {
    let mut header = String::from("{");
    for (i, n) in names.iter().enumerate() {
        if i > 0 {
            header.push(',');
        }
        let esc = serde_json::to_string(n).unwrap_or_else(|_| "\"x\"".into());
        header.push_str(&format!(
            "{esc}:{{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[{},{}]}}",
            8 * i,
            8 * i + 8
        ));
    }
    header.push('}');
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend(std::iter::repeat_n(0u8, 8 * names.len()));
    out
}

pub fn shard_index(bytes: &[u8]) -> String {
    let idx = match ShardIndex::parse(bytes, "model.safetensors.index.json") {
        Ok(i) => i,
        Err(e) => return e.to_string(),
    };
    // Each shard holds exactly the tensors the index puts in it (at most a few hundred, as
    // the input is small), so the cross-checks of `from_index` run.
    let r = CheckpointReader::from_index(bytes, "model.safetensors.index.json", |file| {
        let names: Vec<&str> = idx
            .weight_map
            .iter()
            .filter(|(_, f)| f.as_str() == file)
            .map(|(n, _)| n.as_str())
            .take(512)
            .collect();
        Ok((file.to_string(), tiny_file(&names)))
    });
    outcome(r.map(|mut r| {
        let names: Vec<String> = r.tensors().map(|t| t.name.clone()).take(64).collect();
        for n in names {
            let _ = r.read(&n);
        }
    }))
}

// ---- 4-bit metadata ------------------------------------------------------------------------

fn q4_seeds() -> Vec<Vec<u8>> {
    // The header JSON of the bundled 4-bit model (its data is not needed: offsets are checked
    // against a claimed file length).
    let mut seeds = Vec::new();
    if let Ok(b) = std::fs::read(root().join("models/pinhole-shapes-q4/model.safetensors")) {
        if b.len() >= 8 {
            let n = u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8])) as usize;
            if let Some(h) = b.get(8..8 + n) {
                seeds.push(h.to_vec());
            }
        }
    }
    with_corpus("q4_metadata", seeds)
}

pub fn q4_metadata(json: &[u8]) -> String {
    use pinhole_core::hf::safetensors::Header;
    let h = match Header::parse(json, 8 + json.len() as u64 + (1 << 40), "fuzz-q4.safetensors") {
        Ok(h) => h,
        Err(e) => return e.to_string(),
    };
    let format = match q4_load::header_format(&h) {
        Ok(f) => f,
        Err(e) => return e.to_string(),
    };
    let _ = q4_load::untagged_q4(h.tensors.iter());
    let mut out = String::from("ok");
    for t in &h.tensors {
        let Some(base) = t.name.strip_suffix(".q4") else {
            continue;
        };
        // The shape the packed words imply ([n, k/8] → [n, k]), as a config would give it.
        let shape: Vec<usize> = match t.shape.as_slice() {
            [n, w] => vec![*n, w.saturating_mul(8)],
            s => s.to_vec(),
        };
        match q4_load::check(&h, format, base, &shape, true) {
            Ok(Some(bytes)) => {
                // Decode zero bytes of the checked sizes when they are small.
                if let (Some(f), true) = (format, bytes <= 1 << 20) {
                    let len = |suffix: &str| h.get(&format!("{base}{suffix}")).map_or(0, |i| i.len as usize);
                    let (p, s, o) = (
                        vec![0u8; len(".q4")],
                        vec![0u8; len(".q4_scales")],
                        vec![0u8; len(".q4_offsets")],
                    );
                    if let Err(e) = q4_load::from_raw(f, base, &shape, &p, &s, Some(&o)) {
                        out = e.to_string();
                    }
                }
            }
            Ok(None) => {}
            Err(e) => out = e.to_string(),
        }
    }
    out
}

// ---- prepare (the browser's loader) --------------------------------------------------------

/// `[u32 little-endian length][bytes]` per file.
pub fn frame(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

pub fn unframe(mut b: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        let n = n.min(b.len() - 4);
        out.push(&b[4..4 + n]);
        b = &b[4 + n..];
    }
    out
}

fn prepare_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for cfg in model_files("config.json") {
        let dir = cfg.parent().unwrap_or(Path::new(".")).to_path_buf();
        let read = |n: &str| std::fs::read(dir.join(n)).unwrap_or_default();
        let proc_ = if dir.join("preprocessor_config.json").is_file() {
            read("preprocessor_config.json")
        } else {
            read("processor_config.json")
        };
        let tok = read("tokenizer.json");
        if tok.len() > 64 * 1024 && !seeds.is_empty() {
            continue;
        }
        seeds.push(frame(&[
            &read("config.json"),
            &proc_,
            &read("generation_config.json"),
            &tok,
        ]));
    }
    with_corpus("prepare", seeds)
}

pub fn prepare_files(bytes: &[u8]) -> String {
    let parts = unframe(bytes);
    let part = |i: usize| parts.get(i).copied().unwrap_or(&[]);
    let generation = (!part(2).is_empty()).then(|| (part(2), "generation_config.json".to_string()));
    let files = ModelFiles {
        config: (part(0), "config.json"),
        processor: (part(1), "processor_config.json"),
        generation,
        tokenizer: (part(3), "tokenizer.json"),
    };
    let (model, tok) = match prepare(&files, &LoadOptions::default()) {
        Ok(m) => m,
        Err(e) => return e.to_string(),
    };
    match processor::prompt_ids(&model, &tok, "caption en") {
        Ok(ids) => exercise(&model, Some(ids)),
        Err(e) => e.to_string(),
    }
}
