//! The streaming safetensors reader against files written by the reference implementations:
//! Python's `safetensors.torch` (fixtures in tests/fixtures/safetensors) and the Rust
//! `safetensors` crate (written here into a temporary folder), plus damaged files.

use std::path::{Path, PathBuf};

use pinhole_core::hf::checkpoint::CheckpointReader;
use pinhole_core::hf::safetensors::{SafetensorsFile, StDType};
use pinhole_core::{DType, Error};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/safetensors")
}

/// A fresh folder under the system temp dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "pinhole-hf-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn parse_value(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::String(s) if s == "inf" => f64::INFINITY,
        serde_json::Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        other => other.as_f64().unwrap(),
    }
}

#[test]
fn reads_python_written_file_exactly() {
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixtures().join("mixed.expected.json")).unwrap()).unwrap();
    let mut f = SafetensorsFile::open_path(fixtures().join("mixed.safetensors")).unwrap();
    assert_eq!(f.header().metadata.get("format").map(String::as_str), Some("pt"));
    assert_eq!(f.tensors().len(), expected.as_object().unwrap().len());
    for (name, e) in expected.as_object().unwrap() {
        let info = f.info(name).unwrap().clone();
        let shape: Vec<usize> = e["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(info.shape, shape, "{name}");
        let want: Vec<f64> = e["values"].as_array().unwrap().iter().map(parse_value).collect();
        let t = f.read(name).unwrap();
        assert_eq!(t.shape, shape, "{name}");
        match info.dtype {
            StDType::F32 | StDType::BF16 | StDType::F16 => {
                let want_dtype = if info.dtype == StDType::F16 {
                    DType::F16
                } else {
                    DType::F32
                };
                assert_eq!(t.dtype, want_dtype, "{name}");
                let got = t.as_f32().unwrap();
                assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(&want) {
                    // Every stored value is exact in f32, so the comparison is exact (incl. -0).
                    assert_eq!(g.to_bits(), (*w as f32).to_bits(), "{name}: {g} vs {w}");
                }
            }
            _ => {
                let got: Vec<f64> = t.as_u32().unwrap().iter().map(|&v| v as f64).collect();
                assert_eq!(got, want, "{name}");
            }
        }
    }
    // bf16 → f16: values rounded as Tensor::f16 would; 1e30 does not fit and is refused.
    let e = f.read_as("b.bf16", DType::F16).unwrap_err().to_string();
    assert!(e.contains("b.bf16") && e.contains("f16 range"), "{e}");
    let t = f.read_as("c.f16", DType::F32).unwrap();
    assert_eq!(t.dtype, DType::F32);
    assert_eq!(t.as_f32().unwrap()[4], 3.140625);
    assert_eq!(f.read("h.empty").unwrap().shape, vec![0, 4]);
    assert_eq!(f.read("g.scalar").unwrap().as_f32().unwrap(), &[1.5]);
}

#[test]
fn sharded_checkpoint_from_python() {
    let dir = fixtures().join("sharded");
    let mut ck = CheckpointReader::open(&dir).unwrap();
    assert_eq!(ck.shards().len(), 2);
    assert_eq!(ck.len(), 4);
    let names: Vec<String> = ck.tensors().map(|t| t.name.clone()).collect();
    assert!(names.contains(&"model.norm.weight".to_string()));
    let emb = ck.read("model.embed.weight").unwrap();
    assert_eq!(emb.shape, vec![3, 4]);
    assert_eq!(
        emb.as_f32().unwrap(),
        &(0..12).map(|i| i as f32).collect::<Vec<_>>()[..]
    );
    let w = ck.read_as("model.layers.0.w", DType::F16).unwrap();
    assert_eq!((w.dtype, w.as_f32().unwrap()), (DType::F16, &[0.5f32; 4][..]));
    let w = ck.read("model.layers.1.w").unwrap();
    assert_eq!(w.as_f32().unwrap(), &[-1.25f32; 4]);
    // The index file itself can be given.
    let ck2 = CheckpointReader::open(dir.join("model.safetensors.index.json")).unwrap();
    assert_eq!(ck2.len(), 4);
    let e = ck.read("model.layers.2.w").unwrap_err().to_string();
    assert!(e.contains("model.layers.2.w") && e.contains("model.layers.1.w"), "{e}");
}

fn write_st(path: &Path, tensors: &[(&str, safetensors::Dtype, Vec<usize>, Vec<u8>)]) {
    let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.to_string(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn bf16_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|&x| half::bf16::from_f32(x).to_le_bytes()).collect()
}

#[test]
fn rust_written_checkpoints_and_damage() {
    let tmp = TempDir::new("st");
    let one = tmp.0.join("one");
    std::fs::create_dir_all(&one).unwrap();
    let vals: Vec<f32> = (0..24).map(|i| i as f32 * 0.25 - 3.0).collect();
    write_st(
        &one.join("model.safetensors"),
        &[
            ("w", safetensors::Dtype::F32, vec![4, 6], f32_bytes(&vals)),
            ("b", safetensors::Dtype::BF16, vec![24], bf16_bytes(&vals)),
            (
                "ids",
                safetensors::Dtype::U32,
                vec![2],
                [7u32, 9].iter().flat_map(|x| x.to_le_bytes()).collect(),
            ),
        ],
    );
    let mut ck = CheckpointReader::open(&one).unwrap();
    assert_eq!(ck.read("w").unwrap().as_f32().unwrap(), &vals[..]);
    assert_eq!(ck.read("b").unwrap().as_f32().unwrap(), &vals[..]);
    assert_eq!(ck.read("ids").unwrap().as_u32().unwrap(), &[7, 9]);
    assert_eq!(ck.info("b").unwrap().dtype, StDType::BF16);
    assert!(ck.contains("w") && !ck.contains("x"));

    // Truncated: the last tensor's bytes are cut off. The header check catches it at open.
    let full = std::fs::read(one.join("model.safetensors")).unwrap();
    let cut = tmp.0.join("cut.safetensors");
    std::fs::write(&cut, &full[..full.len() - 3]).unwrap();
    let e = SafetensorsFile::open_path(&cut).unwrap_err().to_string();
    assert!(e.contains("cut.safetensors") && e.contains("truncated"), "{e}");
    // Cut inside the header.
    std::fs::write(&cut, &full[..20]).unwrap();
    let e = SafetensorsFile::open_path(&cut).unwrap_err().to_string();
    assert!(e.contains("cut.safetensors") && e.contains("truncated"), "{e}");
    // Corrupt header bytes.
    let mut bad = full.clone();
    bad[9] = b'#';
    std::fs::write(&cut, &bad).unwrap();
    let e = SafetensorsFile::open_path(&cut).unwrap_err().to_string();
    assert!(e.contains("cut.safetensors") && e.contains("JSON"), "{e}");
    // Missing file.
    let e = SafetensorsFile::open_path(tmp.0.join("nope.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nope.safetensors"), "{e}");

    // In-memory sources read the same.
    let mut mem = SafetensorsFile::open(full.clone(), "mem").unwrap();
    assert_eq!(mem.read("w").unwrap().as_f32().unwrap(), &vals[..]);

    // Folders without an unambiguous checkpoint.
    let empty = tmp.0.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let e = CheckpointReader::open(&empty).unwrap_err().to_string();
    assert!(e.contains("no model.safetensors"), "{e}");
    let e = CheckpointReader::open(tmp.0.join("absent")).unwrap_err().to_string();
    assert!(e.contains("does not exist"), "{e}");
    let two = tmp.0.join("two");
    std::fs::create_dir_all(&two).unwrap();
    write_st(
        &two.join("a.safetensors"),
        &[("x", safetensors::Dtype::U8, vec![1], vec![1])],
    );
    write_st(
        &two.join("b.safetensors"),
        &[("y", safetensors::Dtype::U8, vec![1], vec![2])],
    );
    let e = CheckpointReader::open(&two).unwrap_err().to_string();
    assert!(e.contains("2 .safetensors files"), "{e}");

    // Sharded: index pointing at a missing shard, at the wrong shard, at a path outside.
    let index = |map: &str| format!(r#"{{"metadata": {{}}, "weight_map": {map}}}"#);
    std::fs::write(
        two.join("model.safetensors.index.json"),
        index(r#"{"x": "a.safetensors", "y": "b.safetensors"}"#),
    )
    .unwrap();
    let mut ck = CheckpointReader::open(&two).unwrap();
    assert_eq!(ck.read("y").unwrap().as_u32().unwrap(), &[2]);
    std::fs::write(
        two.join("model.safetensors.index.json"),
        index(r#"{"x": "a.safetensors", "y": "c.safetensors"}"#),
    )
    .unwrap();
    let e = CheckpointReader::open(&two).unwrap_err().to_string();
    assert!(e.contains("c.safetensors") && e.contains("missing"), "{e}");
    std::fs::write(
        two.join("model.safetensors.index.json"),
        index(r#"{"x": "a.safetensors", "y": "a.safetensors"}"#),
    )
    .unwrap();
    let e = CheckpointReader::open(&two).unwrap_err().to_string();
    assert!(e.contains("`y`") && e.contains("a.safetensors"), "{e}");
    std::fs::write(
        two.join("model.safetensors.index.json"),
        index(r#"{"x": "../one/model.safetensors"}"#),
    )
    .unwrap();
    let e = CheckpointReader::open(&two).unwrap_err().to_string();
    assert!(e.contains("not a file name"), "{e}");
    std::fs::write(two.join("model.safetensors.index.json"), "{not json").unwrap();
    let e = CheckpointReader::open(&two).unwrap_err();
    assert!(
        matches!(e, Error::Invalid(_)) && e.to_string().contains("index.json"),
        "{e}"
    );
    // The same tensor in two shards.
    write_st(
        &two.join("b.safetensors"),
        &[
            ("x", safetensors::Dtype::U8, vec![1], vec![2]),
            ("y", safetensors::Dtype::U8, vec![1], vec![3]),
        ],
    );
    std::fs::write(
        two.join("model.safetensors.index.json"),
        index(r#"{"x": "a.safetensors", "y": "b.safetensors"}"#),
    )
    .unwrap();
    let e = CheckpointReader::open(&two).unwrap_err().to_string();
    assert!(e.contains("both"), "{e}");
}
