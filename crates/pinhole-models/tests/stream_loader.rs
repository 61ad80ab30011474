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
    new_loader_with(gpu, dir, WeightPrecision::F32)
}

fn new_loader_with(gpu: &Arc<Gpu>, dir: &Path, precision: WeightPrecision) -> StreamingLoader {
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
    let opts = LoadOptions { precision };
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
fn q4_streams_cut_inside_or_between_parts_are_errors() {
    // A 4-bit weight's writers stay open from its first part to its last: a download cut
    // inside a part, or after one part and before the next, is a file error (never a model,
    // never a panic), with or without an announced size.
    let qdir = quantized("pg1-mqa", Q4Scheme::Asym, "cut");
    let bytes = read(&qdir, "model.safetensors");
    let h = SafetensorsFile::open_path(qdir.join("model.safetensors")).unwrap();
    let mut cuts = Vec::new();
    for t in h.tensors().iter().filter(|t| t.name.contains(".q4")) {
        cuts.push(t.start + t.len / 2); // inside a part
        cuts.push(t.start + t.len); // right after a part (the next may be its weight's)
    }
    assert!(cuts.len() >= 6, "no 4-bit parts in the quantized fixture");
    let gpu = gpu();
    for &cut in cuts.iter().filter(|&&c| (c as usize) < bytes.len()) {
        for size in [Some(bytes.len() as u64), None] {
            let mut l = new_loader(&gpu, &qdir);
            l.begin_file("model.safetensors", size).unwrap();
            for piece in bytes[..cut as usize].chunks(4093) {
                l.push(piece).unwrap();
            }
            expect_file_error(l.end_file(), &format!("cut at {cut} (size {size:?})"));
            assert!(l.finish().is_err(), "cut at {cut}: a model from a cut stream");
        }
    }
    let _ = std::fs::remove_dir_all(&qdir);
}

/// Streams the single-file fixture `pg1-mqa` as the given pieces (`(offset, bytes)`; `None`
/// offset: plain `push`) and finishes the load.
fn stream_pieces(
    gpu: &Arc<Gpu>,
    size: Option<u64>,
    pieces: &[(Option<u64>, Vec<u8>)],
) -> pinhole_models::Result<LoadedModel> {
    let dir = fixture("pg1-mqa").join("model");
    let mut l = new_loader(gpu, &dir);
    l.begin_file("model.safetensors", size)?;
    for (at, bytes) in pieces {
        match at {
            Some(at) => l.push_at(*at, bytes)?,
            None => l.push(bytes)?,
        }
    }
    l.end_file()?;
    l.finish()
}

/// The fixture's file cut into `n`-byte chunks with their offsets.
fn chunks_of(bytes: &[u8], n: usize) -> Vec<(u64, Vec<u8>)> {
    bytes
        .chunks(n)
        .enumerate()
        .map(|(i, c)| ((i * n) as u64, c.to_vec()))
        .collect()
}

fn expect_refused(r: pinhole_models::Result<LoadedModel>, what: &str, needle: &str) {
    match r {
        Err(Error::File { path, message }) => {
            assert!(path.ends_with("model.safetensors"), "{what}: {path}");
            assert!(message.contains(needle), "{what}: '{needle}' not in: {message}");
            assert!(message.contains("load it again"), "{what}: {message}");
        }
        Err(e) => panic!("{what}: wrong error {e}"),
        Ok(_) => panic!("{what}: a stream that differs from the file loaded as a model"),
    }
}

#[test]
fn duplicates_gaps_and_extra_bytes_are_refused_with_or_without_size() {
    let bytes = read(&fixture("pg1-mqa").join("model"), "model.safetensors");
    let len = bytes.len() as u64;
    let chunks = chunks_of(&bytes, 4093);
    assert!(chunks.len() > 6, "the fixture is too small for this test");
    let gpu = gpu();
    let plain = |cs: &[(u64, Vec<u8>)]| cs.iter().map(|(_, b)| (None, b.clone())).collect::<Vec<_>>();
    let placed = |cs: &[(u64, Vec<u8>)]| cs.iter().map(|(o, b)| (Some(*o), b.clone())).collect::<Vec<_>>();

    for size in [None, Some(len)] {
        let tag = if size.is_some() { "size announced" } else { "no size" };
        // The complete stream loads either way (the control for everything below).
        stream_pieces(&gpu, size, &plain(&chunks)).unwrap_or_else(|e| panic!("{tag}: complete stream: {e}"));

        // A chunk delivered twice (a retried fetch): extra bytes, refused as they arrive.
        let mut dup = chunks.clone();
        dup.insert(4, chunks[3].clone());
        expect_refused(
            stream_pieces(&gpu, size, &plain(&dup)),
            &format!("{tag}: duplicate"),
            "more bytes arrived",
        );
        // With offsets the duplicate is named as one at once.
        expect_refused(
            stream_pieces(&gpu, size, &placed(&dup)),
            &format!("{tag}: duplicate at offset"),
            "duplicate chunk",
        );

        // A chunk lost: missing bytes.
        let mut gap = chunks.clone();
        gap.remove(3);
        expect_refused(
            stream_pieces(&gpu, size, &plain(&gap)),
            &format!("{tag}: gap"),
            "bytes arrived",
        );
        expect_refused(
            stream_pieces(&gpu, size, &placed(&gap)),
            &format!("{tag}: gap at offset"),
            "a gap",
        );

        // A chunk twice and a later one lost: the length comes out right, the offsets do not.
        let mut both = chunks.clone();
        both.insert(4, chunks[3].clone());
        both.remove(6);
        assert_eq!(both.iter().map(|(_, b)| b.len()).sum::<usize>(), bytes.len());
        expect_refused(
            stream_pieces(&gpu, size, &placed(&both)),
            &format!("{tag}: duplicate + gap"),
            "duplicate chunk",
        );

        // Truncated at the end, and trailing bytes after a complete file.
        let mut short = plain(&chunks);
        short.last_mut().unwrap().1.pop();
        expect_refused(
            stream_pieces(&gpu, size, &short),
            &format!("{tag}: truncated"),
            "bytes arrived",
        );
        let mut extra = plain(&chunks);
        extra.push((None, vec![0u8; 3]));
        expect_refused(
            stream_pieces(&gpu, size, &extra),
            &format!("{tag}: extra bytes"),
            "more bytes arrived",
        );
    }

    // An announced size that disagrees with the header's extent is refused once the header is in.
    expect_refused(
        stream_pieces(&gpu, Some(len + 8), &plain(&chunks)),
        "size larger than the header describes",
        "header describes",
    );
}

#[test]
fn a_stream_without_size_generates_transformers_ids() {
    // The browser announces no size for a compressed response: the header's extent is the check.
    let root = fixture("pg1-mqa");
    let exp: serde_json::Value = serde_json::from_slice(&read(&root, "expected.json")).unwrap();
    let want: Vec<u32> = exp["generated_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let bytes = read(&root.join("model"), "model.safetensors");
    let gpu = gpu();
    let pieces: Vec<_> = chunks_of(&bytes, 7919).into_iter().map(|(o, b)| (Some(o), b)).collect();
    let lm = stream_pieces(&gpu, None, &pieces).expect("streamed load without a size");
    assert_eq!(greedy_ids(&gpu, &root, &lm, want.len()), want);
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

/// Every weight's layout (shape, dtype, row chunks) and GPU bytes, by name.
type WeightDump =
    std::collections::BTreeMap<String, (Vec<usize>, pinhole_core::DType, Vec<(usize, usize)>, Vec<Vec<u8>>)>;

fn dump(gpu: &Arc<Gpu>, lm: &LoadedModel) -> WeightDump {
    lm.weights
        .iter()
        .map(|(name, t)| {
            let chunks = t.chunks.iter().map(|c| (c.row0, c.rows)).collect();
            let bytes = pollster::block_on(t.read_back(gpu)).expect("read back");
            (name.clone(), (t.shape.clone(), t.dtype, chunks, bytes))
        })
        .collect()
}

#[test]
fn tensors_larger_than_the_host_bound_stream_into_split_buffers_like_load_dir() {
    // A host bound of 32 KiB, below the fixtures' embeddings (150-200 KB), and weights split
    // across 2 KiB bindings: each embedding is written piece by piece into dozens of buffers.
    // The GPU bytes must equal load_dir's exactly, and the loader must never have held more
    // than the bound. 4-bit folders (`pinhole quantize`) the same with a bound of 24 KiB (their
    // headers take 10 KB), below pg1-mqa's largest part (the packed embedding): packed words,
    // scales and offsets each land in their region of every chunk (BLIP-2's fused qkv as row
    // slices of its parts).
    let gpu = pinhole_gpu::open_blocking(&GpuOptions {
        max_binding_bytes: Some(2048),
        ..GpuOptions::from_env()
    })
    .expect("GPU adapter");
    let q4_sym = quantized("pg1-mqa", Q4Scheme::Sym, "bound");
    let q4_asym = quantized("blip2-phi", Q4Scheme::Asym, "bound");
    for (name, dir, precision, bound) in [
        (
            "pg1-mqa",
            fixture("pg1-mqa").join("model"),
            WeightPrecision::F32,
            32 << 10,
        ),
        (
            "pg1-mqa",
            fixture("pg1-mqa").join("model"),
            WeightPrecision::F16,
            32 << 10,
        ),
        (
            "pg1-bf16-sharded",
            fixture("pg1-bf16-sharded").join("model"),
            WeightPrecision::F16,
            32 << 10,
        ),
        (
            "pg1-bf16-sharded",
            fixture("pg1-bf16-sharded").join("model"),
            WeightPrecision::F32,
            32 << 10,
        ),
        (
            "blip2-phi",
            fixture("blip2-phi").join("model"),
            WeightPrecision::F16,
            32 << 10,
        ),
        ("pg1-mqa q4_sym", q4_sym.clone(), WeightPrecision::F16, 24 << 10),
        // (its header alone is 27 KB and no tensor is over the bound: checked for the bytes of
        // its 4-bit fused qkv row slices)
        ("blip2-phi q4_asym", q4_asym.clone(), WeightPrecision::F32, 64 << 10),
    ] {
        let what = format!("{name} {precision:?}");
        // The one case whose tensors are all small: checked for its bytes only.
        let small = name == "blip2-phi q4_asym";
        let native = load_dir(&gpu, &dir, &LoadOptions { precision }, |_, _| {}).expect("load_dir");
        let want = dump(&gpu, &native);
        drop(native);

        let mut l = new_loader_with(&gpu, &dir, precision);
        l.set_host_bound(bound);
        if dir.join(INDEX_FILE).is_file() {
            l.set_index(&read(&dir, INDEX_FILE), INDEX_FILE).unwrap();
        }
        let mut largest = 0u64;
        for f in l.weight_files() {
            let bytes = read(&dir, &f);
            let h = SafetensorsFile::open_path(dir.join(&f)).unwrap();
            largest = largest.max(h.tensors().iter().map(|t| t.len).max().unwrap_or(0));
            l.begin_file(&f, None).unwrap();
            // Odd chunk sizes (f16 words split between pushes), and one chunk much larger
            // than the bound (it is processed in pieces).
            let mut pos = 0;
            for (i, n) in [1usize, 4093, 3 * bound + 1, 7].iter().cycle().enumerate() {
                if pos >= bytes.len() {
                    break;
                }
                let n = (*n).min(bytes.len() - pos);
                l.push_at(pos as u64, &bytes[pos..pos + n])
                    .unwrap_or_else(|e| panic!("{what}: push {i}: {e}"));
                pos += n;
            }
            l.end_file().unwrap();
        }
        assert!(
            largest > bound as u64 || small,
            "{what}: no tensor is larger than the bound"
        );
        let peak = l.peak_host_bytes();
        assert!(
            peak <= bound,
            "{what}: the loader held {peak} bytes, over its bound of {bound}"
        );
        let lm = l.finish().expect("streamed load");
        let got = dump(&gpu, &lm);
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "{what}: weight names"
        );
        for (k, w) in &want {
            let g = &got[k];
            assert_eq!((&g.0, g.1, &g.2), (&w.0, w.1, &w.2), "{what}: layout of {k}");
            assert!(g.3 == w.3, "{what}: GPU bytes of {k} differ from load_dir's");
        }
        assert!(
            want.values().any(|w| w.2.len() > if small { 1 } else { 10 }),
            "{what}: no weight was split across many bindings"
        );
    }
    let _ = std::fs::remove_dir_all(&q4_sym);
    let _ = std::fs::remove_dir_all(&q4_asym);
}

#[test]
fn q4_inf_scale_is_named_while_streaming() {
    // The streamed parts are checked piece by piece as load_dir checks whole tensors: an inf
    // scale in the middle of a `.q4_scales` tensor names it.
    let qdir = quantized("pg1-mqa", Q4Scheme::Sym, "inf-scale");
    let file = qdir.join("model.safetensors");
    let mut bytes = read(&qdir, "model.safetensors");
    let h = SafetensorsFile::open_path(&file).unwrap();
    let victim = h
        .tensors()
        .iter()
        .filter(|t| t.name.ends_with(".q4_scales"))
        .max_by_key(|t| t.len)
        .expect("a .q4_scales tensor")
        .clone();
    let at = (victim.start + victim.len / 2) as usize & !1;
    bytes[at..at + 2].copy_from_slice(&0x7C00u16.to_le_bytes());
    std::fs::write(&file, &bytes).unwrap();
    let gpu = gpu();
    let r = stream_all(&gpu, &qdir, &[997]);
    let _ = std::fs::remove_dir_all(&qdir);
    match r {
        Err(Error::Tensor { name, message }) => {
            assert_eq!(name, victim.name);
            assert!(message.contains("inf or NaN"), "{message}");
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("an inf scale was accepted"),
    }
}
