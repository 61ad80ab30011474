//! Helpers shared by the fixture tests: where the fixtures are and how to read what
//! transformers recorded (expected.safetensors / expected.json).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use pinhole_core::hf::{CheckpointReader, SafetensorsFile};
use pinhole_core::reference::{run_graph, CpuEnv};
use pinhole_core::{DType, Tensor};
use pinhole_models::arch::ImageInput;
use pinhole_models::model::Model;
use pinhole_models::{processor, q4_load, TokenChoice};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
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
    let wfn = |n: &str| weights.get(n).cloned();
    let mut states = HashMap::new();
    for k in 0..image.tiles() {
        let inputs = HashMap::from([("pixels".to_string(), image.tile(k).unwrap())]);
        run_graph(
            &m.image_graph(k, false).unwrap(),
            CpuEnv {
                weights: &wfn,
                inputs: &inputs,
                states: &mut states,
            },
        )
        .unwrap();
    }
    let rows = processor::image_rows(m, ids);
    let (pg, out) = m
        .prefill_graph(ids, &rows, max_len, true, &TokenChoice::Greedy)
        .unwrap();
    let res = run_graph(
        &pg,
        CpuEnv {
            weights: &wfn,
            inputs: &HashMap::new(),
            states: &mut states,
        },
    )
    .unwrap();
    let li = pg.outputs.iter().position(|o| Some(*o) == out.logits).unwrap();
    res[li].as_f32().unwrap().to_vec()
}
