//! The SmolVLM / Idefics3 image processor against transformers' pixel values per tile
//! (tests/fixtures/{smolvlm,smolvlm-nosplit,idefics3}, made by tools/make_smolvlm_fixtures.py).

use std::path::PathBuf;

use pinhole_core::hf::image::load_image;
use pinhole_core::hf::smolvlm_image::{preprocess_tiles, SmolVlmImageConfig};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

#[test]
fn tiles_equal_transformers() {
    for (variant, cases) in [
        ("smolvlm", &["describe", "tall", "multiturn"][..]),
        ("smolvlm-nosplit", &["describe"][..]),
        ("idefics3", &["describe", "multiturn"][..]),
    ] {
        let dir = fixtures().join(variant);
        let cfg = SmolVlmImageConfig::load(dir.join("model/processor_config.json")).unwrap();
        let expected: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
        for case in cases {
            let e = &expected["cases"][case];
            let img = load_image(fixtures().join("images").join(e["image"].as_str().unwrap())).unwrap();
            let t = preprocess_tiles(&img, &cfg).unwrap();
            assert_eq!(
                (t.rows as u64, t.cols as u64, t.tiles() as u64),
                (
                    e["rows"].as_u64().unwrap(),
                    e["cols"].as_u64().unwrap(),
                    e["tiles"].as_u64().unwrap()
                ),
                "{variant}/{case}"
            );
            let bytes = std::fs::read(dir.join(format!("{case}.safetensors"))).unwrap();
            let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
            let px = st.tensor("pixel_values").unwrap();
            assert_eq!(px.shape(), t.pixels.shape.as_slice(), "{variant}/{case}");
            let want: Vec<f32> = px
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let got = t.pixels.as_f32().unwrap();
            let max = want.iter().zip(got).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(max <= 1e-6, "{variant}/{case}: pixel values differ by {max}");
        }
    }
}
