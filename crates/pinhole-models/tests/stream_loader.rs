//! The streaming loader (the browser's path) against the fixtures: the same model streamed in
//! odd-sized chunks generates exactly transformers' greedy ids, and truncated, oversized or
//! mismatched streams are errors that name the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pinhole_core::hf::SafetensorsFile;
use pinhole_core::quant::Q4Scheme;
use pinhole_gpu::{Executor, Gpu, GpuOptions};
use pinhole_models::generate::generate;
use pinhole_models::loader::{load_dir, LoadOptions, ModelFiles, WeightPrecision};
use pinhole_models::quantize::{quantize_dir, QuantizeOptions};
use pinhole_models::stream_loader::{StreamingLoader, INDEX_FILE};
use pinhole_models::{Error, GenerateOptions, LoadedModel};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
}

fn read(dir: &Path, f: &str) -> Vec<u8> {
    std::fs::read(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"))
}

fn gpu() -> Arc<Gpu> {
    pinhole_gpu::open_blocking(&GpuOptions::from_env()).expect("GPU adapter (llvmpipe in CI)")
}

fn new_loader(gpu: &Arc<Gpu>, dir: &Path) -> StreamingLoader {
    let proc_name = if dir.join("preprocessor_config.json").is_file() {
        "preprocessor_config.json"
    } else {
        "processor_config.json"
    };
    let (cfg, pre, gen, tok) = (
        read(dir, "config.json"),
        read(dir, proc_name),
        read(dir, "generation_config.json"),
        read(dir, "tokenizer.json"),
    );
    let files = ModelFiles {
        config: (&cfg, "config.json"),
        processor: (&pre, proc_name),
        generation: Some((&gen, "generation_config.json".to_string())),
        tokenizer: (&tok, "tokenizer.json"),
    };
    let opts = LoadOptions {
        precision: WeightPrecision::F32,
    };
    StreamingLoader::new(gpu.clone(), &files, &opts, &dir.display().to_string()).expect("configs")
}

/// Streams every weight file in chunks whose sizes cycle through `sizes`.
fn stream_all(gpu: &Arc<Gpu>, dir: &Path, sizes: &[usize]) -> pinhole_models::Result<LoadedModel> {
    let mut l = new_loader(gpu, dir);
    if dir.join(INDEX_FILE).is_file() {
        l.set_index(&read(dir, INDEX_FILE), INDEX_FILE)?;
    }
    for f in l.weight_files() {
        let bytes = read(dir, &f);
        l.begin_file(&f, Some(bytes.len() as u64))?;
        let mut pos = 0;
        let mut i = 0;
        while pos < bytes.len() {
            let n = sizes[i % sizes.len()].min(bytes.len() - pos);
            l.push(&bytes[pos..pos + n])?;
            pos += n;
            i += 1;
        }
        l.end_file()?;
    }
    l.finish()
}

fn check_generation(name: &str, sizes: &[usize]) {
    let root = fixture(name);
    let exp: serde_json::Value = serde_json::from_slice(&read(&root, "expected.json")).unwrap();
    let want: Vec<u32> = exp["generated_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let gpu = gpu();
    let lm = stream_all(&gpu, &root.join("model"), sizes).expect("streamed load");
    let got = greedy_ids(&gpu, &root, &lm, want.len());
    assert_eq!(got, want, "{name}: greedy ids of the streamed model");
}

/// Greedy ids of `lm` on fixture `root`'s image and prompt.
fn greedy_ids(gpu: &Arc<Gpu>, root: &Path, lm: &LoadedModel, n: usize) -> Vec<u32> {
    let exp: serde_json::Value = serde_json::from_slice(&read(root, "expected.json")).unwrap();
    let px = SafetensorsFile::open_path(root.join("expected.safetensors"))
        .unwrap()
        .read_as("pixel_values", pinhole_core::DType::F32)
        .unwrap();
    let mut ex = Executor::new(gpu.clone());
    let opts = GenerateOptions {
        max_new_tokens: n,
        ..Default::default()
    };
    pollster::block_on(generate(
        lm,
        &mut ex,
        &px,
        exp["prompt"].as_str().unwrap(),
        &opts,
        |_, _| {},
    ))
    .expect("generate")
    .token_ids
}

/// Fixture `name` quantized by `pinhole quantize` into a fresh temporary folder (`tag` keeps
/// the folders of tests running in parallel apart).
fn quantized(name: &str, scheme: Q4Scheme, tag: &str) -> PathBuf {
    let out = std::env::temp_dir().join(format!(
        "pinhole-stream-q4-{}-{name}-{scheme:?}-{tag}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&out);
    let opts = QuantizeOptions {
        scheme,
        ..Default::default()
    };
    let report = quantize_dir(&fixture(name).join("model"), &out, &opts, |_, _, _| {}).expect("quantize");
    assert!(report.q4_weights > 0, "{name}: nothing was quantized");
    out
}

/// A quantized folder streamed in small chunks generates the same ids as `load_dir` on it.
fn check_q4_like_load_dir(name: &str, scheme: Q4Scheme, sizes: &[usize]) {
    let root = fixture(name);
    let qdir = quantized(name, scheme, "same-ids");
    let gpu = gpu();
    let opts = LoadOptions {
        precision: WeightPrecision::F32,
    };
    let native = load_dir(&gpu, &qdir, &opts, |_, _| {}).expect("load_dir of the quantized folder");
    let want = greedy_ids(&gpu, &root, &native, 6);
    drop(native);
    let streamed = stream_all(&gpu, &qdir, sizes).expect("streamed load of the quantized folder");
    let got = greedy_ids(&gpu, &root, &streamed, 6);
    let _ = std::fs::remove_dir_all(&qdir);
    assert_eq!(got, want, "{name} {scheme:?}: streamed 4-bit model vs load_dir");
}

#[test]
fn q4_folder_streams_like_load_dir() {
    check_q4_like_load_dir("pg1-mqa", Q4Scheme::Sym, &[1, 3, 5, 997, 4093]);
}

#[test]
fn q4_asym_fused_qkv_streams_like_load_dir() {
    // BLIP-2's fused vision qkv is 4-bit here: its row slices are cut from the Q4 tensor.
    let qdir = quantized("blip2-phi", Q4Scheme::Asym, "has-qkv");
    let h = SafetensorsFile::open_path(qdir.join("model.safetensors")).unwrap();
    assert!(
        h.tensors().iter().any(|t| t.name.ends_with("qkv.weight.q4")),
        "the fixture's fused qkv was not quantized"
    );
    let _ = std::fs::remove_dir_all(&qdir);
    check_q4_like_load_dir("blip2-phi", Q4Scheme::Asym, &[7, 4093]);
}

#[test]
fn q4_scales_of_the_wrong_shape_are_named() {
    let qdir = quantized("pg1-mqa", Q4Scheme::Sym, "corrupt-scales");
    let file = qdir.join("model.safetensors");
    let bytes = read(&qdir, "model.safetensors");
    // Flatten one `.q4_scales` tensor to 1-D in the header: same bytes, wrong shape.
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let victim = header
        .as_object()
        .unwrap()
        .keys()
        .find(|k| k.ends_with(".q4_scales"))
        .expect("a .q4_scales tensor")
        .clone();
    let shape: Vec<u64> = serde_json::from_value(header[&victim]["shape"].clone()).unwrap();
    header[&victim]["shape"] = serde_json::json!([shape.iter().product::<u64>()]);
    let json = serde_json::to_vec(&header).unwrap();
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(&file, &out).unwrap();

    let gpu = gpu();
    let r = stream_all(&gpu, &qdir, &[4093]);
    let _ = std::fs::remove_dir_all(&qdir);
    match r {
        Err(Error::Tensor { name, message }) => {
            assert_eq!(name, victim);
            assert!(message.contains("4-bit format imply"), "{message}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a corrupt .q4_scales shape was accepted"),
    }
}

#[test]
fn single_file_in_odd_chunks_generates_transformers_ids() {
    // 1 byte at first (the header length arrives split), then sizes that cut through tensors.
    check_generation("pg1-mqa", &[1, 3, 5, 997, 4093, 65537]);
}

#[test]
fn blip2_phi_fused_qkv_split_while_streaming() {
    // BLIP-2's vision `qkv` arrives as one fused tensor and is split into q/k/v rows.
    check_generation("blip2-phi", &[4093]);
}

#[test]
fn sharded_checkpoint_streams_shard_by_shard() {
    check_generation("pg1-bf16-sharded", &[7919]);
}

#[test]
fn stopping_early_keeps_the_ids_so_far() {
    let root = fixture("pg1-mqa");
    let gpu = gpu();
    let lm = stream_all(&gpu, &root.join("model"), &[1 << 16]).unwrap();
    let px = SafetensorsFile::open_path(root.join("expected.safetensors"))
        .unwrap()
        .read_as("pixel_values", pinhole_core::DType::F32)
        .unwrap();
    let mut ex = Executor::new(gpu.clone());
    let opts = GenerateOptions {
        max_new_tokens: 8,
        ..Default::default()
    };
    let mut seen = 0;
    let g = pollster::block_on(pinhole_models::generate_with(
        &lm,
        &mut ex,
        &px,
        "caption en",
        &opts,
        |_, _| {
            seen += 1;
            seen < 3
        },
    ))
    .unwrap();
    assert_eq!(g.token_ids.len(), 3);
}

fn expect_file_error(r: pinhole_models::Result<()>, what: &str) {
    match r {
        Err(Error::File { path, message }) => {
            assert!(path.ends_with("model.safetensors"), "{what}: {path}");
            assert!(message.contains("load it again"), "{what}: {message}");
        }
        Err(e) => panic!("{what}: wrong error {e}"),
        Ok(()) => panic!("{what}: accepted"),
    }
}

#[test]
fn truncated_and_oversized_streams_are_errors() {
    let dir = fixture("pg1-mqa").join("model");
    let bytes = read(&dir, "model.safetensors");
    let gpu = gpu();

    // Truncated, size announced.
    let mut l = new_loader(&gpu, &dir);
    l.begin_file("model.safetensors", Some(bytes.len() as u64)).unwrap();
    l.push(&bytes[..bytes.len() - 10]).unwrap();
    expect_file_error(l.end_file(), "truncated with size");

    // Truncated, size unknown (a compressed response): the header's extent is the check.
    let mut l = new_loader(&gpu, &dir);
    l.begin_file("model.safetensors", None).unwrap();
    l.push(&bytes[..bytes.len() - 10]).unwrap();
    expect_file_error(l.end_file(), "truncated without size");

    // More bytes than announced.
    let mut l = new_loader(&gpu, &dir);
    l.begin_file("model.safetensors", Some(bytes.len() as u64 - 1)).unwrap();
    let r = l.push(&bytes);
    assert!(r.is_err(), "oversized stream accepted");

    // Stopped inside the header.
    let mut l = new_loader(&gpu, &dir);
    l.begin_file("model.safetensors", Some(bytes.len() as u64)).unwrap();
    l.push(&bytes[..20]).unwrap();
    expect_file_error(l.end_file(), "ended in the header");
    assert!(l.finish().is_err());

    // A file that is not one of the weights.
    let mut l = new_loader(&gpu, &dir);
    assert!(matches!(
        l.begin_file("other.safetensors", None),
        Err(Error::Request(_))
    ));
}

#[test]
fn shape_disagreeing_with_config_is_named() {
    let dir = fixture("pg1-mqa").join("model");
    let mut cfg: serde_json::Value = serde_json::from_slice(&read(&dir, "config.json")).unwrap();
    let t = cfg["text_config"]["intermediate_size"].as_u64().unwrap();
    cfg["text_config"]["intermediate_size"] = (t + 2).into();
    let cfg = serde_json::to_vec(&cfg).unwrap();
    let (pre, tok) = (read(&dir, "preprocessor_config.json"), read(&dir, "tokenizer.json"));
    let files = ModelFiles {
        config: (&cfg, "config.json"),
        processor: (&pre, "preprocessor_config.json"),
        generation: None,
        tokenizer: (&tok, "tokenizer.json"),
    };
    let gpu = gpu();
    let mut l = StreamingLoader::new(gpu, &files, &LoadOptions::default(), "test").unwrap();
    let bytes = read(&dir, "model.safetensors");
    l.begin_file("model.safetensors", Some(bytes.len() as u64)).unwrap();
    match l.push(&bytes) {
        Err(Error::Tensor { name, message }) => {
            assert!(name.contains("mlp"), "{name}");
            assert!(message.contains("config.json implies"), "{message}");
        }
        other => panic!("expected a tensor shape error, got {:?}", other.err()),
    }
}
