//! `load_dir` converts and writes float tensors piece by piece straight from the (mapped)
//! files. Its GPU bytes must equal, bit for bit, those of the whole-tensor path it replaced
//! (read the tensor converted to the storage dtype, take its rows, upload it whole), for every
//! stored dtype (F32, F16, BF16), both storage precisions, fused tensors split into row slices,
//! odd piece sizes (f16 halves split between pieces) and tensors split over many bindings.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pinhole_core::hf::safetensors::{FileSource, SafetensorsFile};
use pinhole_core::hf::CheckpointReader;
use pinhole_core::{DType, Tensor};
use pinhole_gpu::{Gpu, GpuOptions};
use pinhole_models::loader::{load_dir_in_pieces, LoadOptions, LoadedModel, PIECE_BYTES};
use pinhole_models::WeightPrecision;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(name)
        .join("model")
}

/// Every weight's shape, dtype, row chunks and GPU bytes, by name.
type Dump = BTreeMap<String, (Vec<usize>, DType, Vec<(usize, usize)>, Vec<Vec<u8>>)>;

fn dump_of<'a>(gpu: &Gpu, weights: impl Iterator<Item = (&'a String, &'a pinhole_gpu::weights::GpuTensor)>) -> Dump {
    weights
        .map(|(name, t)| {
            let chunks = t.chunks.iter().map(|c| (c.row0, c.rows)).collect();
            let bytes = pollster::block_on(t.read_back(gpu)).expect("read back");
            (name.clone(), (t.shape.clone(), t.dtype, chunks, bytes))
        })
        .collect()
}

/// The whole-tensor path: each weight read converted, sliced and uploaded whole.
fn reference(gpu: &Gpu, dir: &Path, lm: &LoadedModel) -> Dump {
    let m = &lm.model;
    let matrix = pinhole_models::loader::model_matrix_dtype(m);
    let mut reader = CheckpointReader::open(dir).unwrap();
    let mut source = HashMap::new();
    for info in reader.tensors() {
        if let Some(c) = m.canonical_name(&info.name) {
            source.insert(c, info.name.clone());
        }
    }
    let mut out = BTreeMap::new();
    for w in m.expected_weights().unwrap() {
        let dtype = if w.matrix { matrix } else { DType::F32 };
        let (src, first) = match (source.get(&w.name), m.row_slice(&w.name)) {
            (Some(s), _) => (s.clone(), None),
            (None, Some(s)) => (source[&s.source].clone(), Some(s.first)),
            (None, None) => {
                assert!(m.zero_if_missing(&w.name), "{}: no source", w.name);
                continue;
            }
        };
        let mut t = reader.read_as(&src, dtype).unwrap();
        if let Some(first) = first {
            let cols: usize = t.shape[1..].iter().product();
            let v = t.as_f32().unwrap()[first * cols..(first + w.shape[0]) * cols].to_vec();
            t = match dtype {
                DType::F16 => Tensor::f16(&w.shape, v).unwrap(),
                _ => Tensor::f32(&w.shape, v).unwrap(),
            };
        }
        t.shape = w.shape.clone();
        let g = pinhole_gpu::weights::upload(gpu, &w.name, &t).unwrap();
        out.extend(dump_of(gpu, [(&w.name, &g)].into_iter()));
    }
    out
}

/// `src` (an f32 fixture folder) rewritten with every tensor stored as F16.
fn f16_copy(src: &Path) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pinhole-loader-pieces-f16-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "safetensors") {
            continue;
        }
        std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
    }
    let mut f = SafetensorsFile::open_path(src.join("model.safetensors")).unwrap();
    let infos: Vec<_> = f.tensors().to_vec();
    let (mut header, mut data) = (serde_json::Map::new(), Vec::new());
    for info in infos {
        let t = f.read_as(&info.name, DType::F16).unwrap();
        let bytes = t.to_storage_bytes();
        let n = t.numel() * 2;
        header.insert(
            info.name.clone(),
            serde_json::json!({"dtype": "F16", "shape": info.shape, "data_offsets": [data.len(), data.len() + n]}),
        );
        data.extend_from_slice(&bytes[..n]);
    }
    let json = serde_json::to_vec(&serde_json::Value::Object(header)).unwrap();
    let mut file = (json.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&json);
    file.extend_from_slice(&data);
    std::fs::write(dir.join("model.safetensors"), file).unwrap();
    dir
}

#[test]
fn pieces_land_like_whole_tensor_uploads() {
    // 2 KiB bindings: the embeddings (150-200 KB) are split over dozens of buffers.
    let gpu: Arc<Gpu> = pinhole_gpu::open_blocking(&GpuOptions {
        max_binding_bytes: Some(2048),
        ..GpuOptions::from_env()
    })
    .expect("GPU adapter");
    let f16 = f16_copy(&fixture("pg1-mqa"));
    let cases = [
        (fixture("pg1-mqa"), "F32"),
        (f16.clone(), "F16"),
        (fixture("pg1-bf16-sharded"), "BF16, sharded"),
        (fixture("smolvlm-bf16"), "BF16, sharded"),
        (fixture("blip2-phi"), "F32, fused qkv"),
    ];
    for (dir, what) in &cases {
        for precision in [WeightPrecision::F16, WeightPrecision::F32] {
            // Odd piece sizes: 6 and 4093 bytes split f16 words and f32/f16 chunk boundaries
            // between pieces; PIECE_BYTES is load_dir's own.
            for piece in [6usize, 4093, PIECE_BYTES] {
                let what = format!("{} ({what}) {precision:?}, pieces of {piece} bytes", dir.display());
                let lm = load_dir_in_pieces(&gpu, dir, &LoadOptions { precision }, piece, |_, _| {})
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                let got = dump_of(&gpu, lm.weights.iter());
                let want = reference(&gpu, dir, &lm);
                for (k, w) in &want {
                    let g = got.get(k).unwrap_or_else(|| panic!("{what}: {k} missing"));
                    assert_eq!((&g.0, g.1, &g.2), (&w.0, w.1, &w.2), "{what}: layout of {k}");
                    assert!(
                        g.3 == w.3,
                        "{what}: GPU bytes of {k} differ from the whole-tensor upload"
                    );
                }
                assert!(
                    want.values().any(|w| w.2.len() > 10),
                    "{what}: no weight was split across many bindings"
                );
            }
        }
    }
    let _ = std::fs::remove_dir_all(&f16);
}

#[test]
fn mapped_and_read_files_give_the_same_pieces() {
    // The same tensor bytes in the same pieces, whether the file is mapped or read through a
    // buffer (the fallback, and what PINHOLE_NO_MMAP selects).
    let path = fixture("pg1-bf16-sharded").join("model-00001-of-00002.safetensors");
    let mut mapped = SafetensorsFile::open(FileSource::open(&path).unwrap(), "mapped").unwrap();
    let mut read = SafetensorsFile::open(FileSource::open_unmapped(&path).unwrap(), "read").unwrap();
    let infos: Vec<_> = mapped.tensors().to_vec();
    assert!(infos.iter().any(|t| t.len > 4093));
    let mut buf = Vec::new();
    for info in &infos {
        let n = info.numel();
        for (range, piece) in [(0..n, 4093usize), (n / 3..n - n / 5, 7), (0..n, 1 << 20)] {
            let mut a: Vec<Vec<u8>> = Vec::new();
            let mut b: Vec<Vec<u8>> = Vec::new();
            mapped
                .read_pieces::<pinhole_core::Error>(&info.name, range.clone(), piece, &mut buf, |p| {
                    a.push(p.to_vec());
                    Ok(())
                })
                .unwrap();
            read.read_pieces::<pinhole_core::Error>(&info.name, range.clone(), piece, &mut buf, |p| {
                b.push(p.to_vec());
                Ok(())
            })
            .unwrap();
            assert_eq!(a, b, "{}", info.name);
            assert!(a.iter().all(|p| p.len() <= piece.max(2) && p.len() % 2 == 0));
            let whole = read.read_raw(&info.name).unwrap();
            assert!(a.concat() == whole[range.start * 2..range.end * 2], "{}", info.name);
        }
    }
    // Out of range: an error, not a short read.
    let name = &infos[0].name;
    let r = read.read_pieces::<pinhole_core::Error>(name, 0..infos[0].numel() + 1, 64, &mut buf, |_| Ok(()));
    assert!(r.is_err());
}
