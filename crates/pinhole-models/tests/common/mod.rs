//! Helpers shared by the fixture tests: where the fixtures are and how to read what
//! transformers recorded (expected.safetensors / expected.json).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use pinhole_core::graph::Graph;
use pinhole_core::hf::smolvlm_image::SmolVlmImageConfig;
use pinhole_core::hf::{CheckpointReader, SafetensorsFile, SmolVlmConfig};
use pinhole_core::reference::{run_graph, CpuEnv};
use pinhole_core::tensor::rel_error;
use pinhole_core::{DType, Tensor};
use pinhole_gpu::{Executor, Gpu, GpuOptions};
use pinhole_models::arch::ImageInput;
use pinhole_models::generate::generate;
use pinhole_models::layers::StepOutputs;
use pinhole_models::loader::{load_dir, LoadOptions, LoadedModel, WeightPrecision};
use pinhole_models::model::Model;
use pinhole_models::{processor, q4_load, GenerateOptions, Generation, TokenChoice};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// The GPU the tests run on (llvmpipe in CI).
pub fn gpu() -> std::sync::Arc<Gpu> {
    pinhole_gpu::open_blocking(&GpuOptions::from_env()).expect("GPU adapter (llvmpipe in CI)")
}

/// A fixture's `expected.json` (what transformers recorded).
pub fn expected_json(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap()
}

/// Loads a model folder with matrix weights in `precision`.
pub fn load(gpu: &std::sync::Arc<Gpu>, dir: &Path, precision: WeightPrecision) -> LoadedModel {
    load_dir(gpu, dir, &LoadOptions { precision }, |_, _| {}).unwrap_or_else(|e| panic!("load {}: {e}", dir.display()))
}

/// Greedy generation of `max_new_tokens` on `pixels`, recording the logits.
pub fn generate_recorded(
    gpu: &std::sync::Arc<Gpu>,
    lm: &LoadedModel,
    pixels: &Tensor,
    prompt: &str,
    max_new_tokens: usize,
) -> Generation {
    let mut ex = Executor::new(gpu.clone());
    let opts = GenerateOptions {
        max_new_tokens,
        record_logits: true,
        sampling: None,
    };
    pollster::block_on(generate(lm, &mut ex, pixels, prompt, &opts, |_, _| {})).expect("generate")
}

/// A fixture against transformers' record, up to the model: the processor's prompt ids equal
/// expected.json's and its pixels equal `pixel_values` to float rounding (every format
/// decodes bit-exactly like Pillow and the resize is PIL-exact); then generation on
/// transformers' own pixel values (so model error is measured alone), each recorded
/// intermediate `keys` within 1e-4 relative error. Returns the generation and the ids
/// transformers generated, for the family's own checks.
pub fn check_against_transformers(
    name: &str,
    gpu: &std::sync::Arc<Gpu>,
    lm: &LoadedModel,
    keys: &[&str],
) -> (Generation, Vec<u32>) {
    let dir = fixtures().join(name);
    let exp = expected_json(&dir);
    let prompt = exp["prompt"].as_str().unwrap();
    assert_eq!(
        processor::prompt_ids(&lm.model, &lm.tokenizer, prompt).unwrap(),
        ids(&exp, "input_ids"),
        "{name}: input ids"
    );
    let img = std::fs::read(fixtures().join("images").join(exp["image"].as_str().unwrap())).unwrap();
    let px = processor::pixels(&lm.model, &img, "fixture image").unwrap();
    let want_px = expected_tensor(&dir, "pixel_values");
    assert_eq!(px.shape, want_px.shape);
    let px_err = px
        .as_f32()
        .unwrap()
        .iter()
        .zip(want_px.as_f32().unwrap())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(px_err <= 1e-5, "{name}: pixel values differ by up to {px_err}");

    let want_gen = ids(&exp, "generated_ids");
    let g = generate_recorded(gpu, lm, &want_px, prompt, want_gen.len());
    for &key in keys {
        let got = match key {
            "vision_out" => g.vision_out.as_ref(),
            "qformer_out" => g.qformer_out.as_ref(),
            "projector_out" => g.projector_out.as_ref(),
            "prefill_logits" => g.logits.first(),
            other => panic!("no recorded {other}"),
        };
        let want = expected_tensor(&dir, key);
        let got = got.unwrap_or_else(|| panic!("{key} not recorded"));
        assert_eq!(got.shape, want.shape, "{name}: {key} shape");
        let e = rel_error(got.as_f32().unwrap(), want.as_f32().unwrap());
        eprintln!("{name}: {key} relative error {e:.2e}");
        assert!(e <= 1e-4, "{name}: {key} relative error {e:e} > 1e-4");
    }
    assert!(want_gen.len() >= 10);
    assert_eq!(g.token_ids, want_gen, "{name}: greedy ids differ from transformers");
    (g, want_gen)
}

/// A SmolVLM / Idefics3 folder's config.json and processor_config.json.
pub fn smolvlm_configs(model: &Path) -> (SmolVlmConfig, SmolVlmImageConfig) {
    let cfg = SmolVlmConfig::load(model.join("config.json")).unwrap();
    let proc = SmolVlmImageConfig::load(model.join("processor_config.json")).unwrap();
    (cfg, proc)
}

/// A tensor of the fixture's `expected.safetensors`, as f32.
pub fn expected_tensor(dir: &Path, name: &str) -> Tensor {
    let mut f = SafetensorsFile::open_path(dir.join("expected.safetensors")).expect("expected.safetensors");
    f.read_as(name, pinhole_core::DType::F32)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// A list of token ids from the fixture's `expected.json`.
pub fn ids(v: &serde_json::Value, key: &str) -> Vec<u32> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} missing"))
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// The host's view of a model folder (a quantized one too): every weight the model's graphs
/// read, by canonical name, 4-bit ones as Q4 tensors and the others as f32 in the graph's
/// shape, for the CPU reference.
pub fn host_weights(dir: &Path, m: &Model) -> HashMap<String, Tensor> {
    let mut reader = CheckpointReader::open(dir).unwrap();
    let fmt = q4_load::checkpoint_format(&reader).unwrap();
    let mut source = HashMap::new();
    for info in reader.tensors() {
        let base = q4_load::base_name(&info.name).unwrap_or(&info.name);
        if let Some(c) = m.canonical_name(base) {
            source.insert(c, base.to_string());
        }
    }
    let mut out = HashMap::new();
    for w in &m.expected_weights().unwrap() {
        let src = &source[&w.name];
        let t = match q4_load::check(&reader, fmt, src, &w.shape, w.matrix).unwrap() {
            Some(_) => q4_load::read(&mut reader, fmt.unwrap(), src, &w.shape).unwrap(),
            None => {
                let mut t = reader.read_as(src, DType::F32).unwrap();
                t.shape = w.shape.clone();
                t
            }
        };
        out.insert(w.name.clone(), t);
    }
    out
}

/// The CPU reference's prefill logits (every position's) of `m` over the prompt `ids` with
/// `image`: every tile's image graph, then the prefill graph, on the host `weights`
/// ([`host_weights`]).
pub fn cpu_prefill_logits(
    m: &Model,
    weights: &HashMap<String, Tensor>,
    image: &ImageInput,
    ids: &[u32],
    max_len: usize,
) -> Vec<f32> {
    let mut states = HashMap::new();
    for k in 0..image.tiles() {
        let inputs = HashMap::from([("pixels".to_string(), image.tile(k).unwrap())]);
        run_cpu(&m.image_graph(k, false).unwrap(), weights, &inputs, &mut states);
    }
    let rows = processor::image_rows(m, ids);
    let (pg, out) = m
        .prefill_graph(ids, &rows, max_len, true, &TokenChoice::Greedy)
        .unwrap();
    let res = run_cpu(&pg, weights, &HashMap::new(), &mut states);
    logits_of(&pg, &out, &res).as_f32().unwrap().to_vec()
}

/// Runs `g` on the CPU reference with the host `weights`, its `inputs` and the executor
/// `states` (which it updates); its outputs in order.
pub fn run_cpu(
    g: &Graph,
    weights: &HashMap<String, Tensor>,
    inputs: &HashMap<String, Tensor>,
    states: &mut HashMap<String, Tensor>,
) -> Vec<Tensor> {
    let lookup = |n: &str| weights.get(n).cloned();
    run_graph(
        g,
        CpuEnv {
            weights: &lookup,
            inputs,
            states,
        },
    )
    .unwrap()
}

/// The logits among a step graph's results ([`run_cpu`]).
pub fn logits_of(g: &Graph, out: &StepOutputs, res: &[Tensor]) -> Tensor {
    out.logits_of(g, res).unwrap().expect("the step graph has logits")
}
