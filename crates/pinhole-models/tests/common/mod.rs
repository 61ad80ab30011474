//! Helpers shared by the fixture tests: where the fixtures are and how to read what
//! transformers recorded (expected.safetensors / expected.json).

use std::path::{Path, PathBuf};

use pinhole_core::hf::SafetensorsFile;
use pinhole_core::Tensor;

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
