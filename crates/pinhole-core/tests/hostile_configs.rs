//! Hostile and broken `config.json` / processor files: each must be a typed error that names
//! the file, the key and the limit, found before anything is allocated from the bad size.
//! The files in tests/fixtures/hostile are the reproducers of issue 17 (each used to panic,
//! abort on a failed allocation, or grow without bound).

use std::path::Path;

use pinhole_core::hf::limits::{MAX_IMAGE_SIDE, MAX_IMAGE_TOKENS, MAX_LAYERS, MAX_WIDTH};
use pinhole_core::hf::smolvlm_image::SmolVlmImageConfig;
use pinhole_core::hf::{ImageProcessorConfig, ModelConfig};
use pinhole_core::Error;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/hostile")
            .join(name),
    )
    .unwrap()
}

/// Parses `name` and returns the limit error's key, value and limit.
fn limit_error(name: &str) -> (String, String, u64) {
    match ModelConfig::parse(&fixture(name), name) {
        Err(Error::Limit {
            file,
            key,
            value,
            limit,
        }) => {
            assert_eq!(file, name);
            let msg = Error::Limit {
                file: file.clone(),
                key: key.clone(),
                value: value.clone(),
                limit,
            }
            .to_string();
            assert!(
                msg.contains(name) && msg.contains(&key) && msg.contains(&limit.to_string()),
                "{msg}"
            );
            (key, value, limit)
        }
        other => panic!("{name}: expected a limit error, got {other:?}"),
    }
}

/// [`limit_error`] that must name `key` and `value`; returns the limit.
fn limit_on(name: &str, key: &str, value: &str) -> u64 {
    let (k, v, limit) = limit_error(name);
    assert_eq!((k.as_str(), v.as_str()), (key, value), "{name}");
    limit
}

#[test]
fn layer_counts_are_bounded_before_any_vector_is_sized() {
    // Each used to size `vec![..; num_hidden_layers]`: abort (10^15), capacity overflow (2^63).
    for name in ["config-layers-1e15.json", "config-gemma2-layers-1e15.json"] {
        let limit = limit_on(name, "text_config.num_hidden_layers", "1000000000000000");
        assert_eq!(limit, MAX_LAYERS as u64);
    }
    limit_on(
        "config-layers-2p63.json",
        "text_config.num_hidden_layers",
        "9223372036854775808",
    );
}

#[test]
fn image_sizes_are_bounded() {
    // (image_size / patch_size)² overflowed in debug and wrapped in release.
    for name in [
        "config-paligemma-image-size-2p32.json",
        "config-blip2-image-size-2p32.json",
    ] {
        let limit = limit_on(name, "vision_config.image_size", "4294967296");
        assert_eq!(limit, MAX_IMAGE_SIDE as u64);
    }
    // Under the side limit, but too many patches.
    let j = br#"{"model_type":"paligemma","vision_config":{"image_size":4096,"patch_size":1}}"#;
    match ModelConfig::parse(j, "config.json") {
        Err(Error::Limit { key, limit, .. }) => {
            assert!(key.contains("image tokens"), "{key}");
            assert_eq!(limit, MAX_IMAGE_TOKENS as u64);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn widths_and_head_products_are_bounded() {
    // heads × head_dim overflowed while listing the expected weights.
    let (key, _, _) = limit_error("config-heads-overflow.json");
    assert_eq!(key, "text_config.num_attention_heads");
    let j = br#"{"model_type":"paligemma","text_config":{"num_attention_heads":1024,"num_key_value_heads":1024,"head_dim":4096}}"#;
    match ModelConfig::parse(j, "config.json") {
        Err(Error::Limit { key, value, limit, .. }) => {
            assert!(key.contains("num_attention_heads x head_dim"), "{key}");
            assert_eq!((value.as_str(), limit), ("4194304", MAX_WIDTH as u64));
        }
        other => panic!("{other:?}"),
    }
    // BLIP-2 vision width of 2^64 - 1 (the `2 * e` overflow when splitting the fused qkv).
    limit_on(
        "config-blip2-vision-width-2p64.json",
        "vision_config.hidden_size",
        "18446744073709551615",
    );
}

#[test]
fn zero_sizes_are_errors() {
    for j in [
        r#"{"model_type":"paligemma","text_config":{"hidden_size":0}}"#,
        r#"{"model_type":"paligemma","vision_config":{"image_size":0}}"#,
        r#"{"model_type":"paligemma","vision_config":{"num_attention_heads":0}}"#,
        r#"{"model_type":"paligemma","vision_config":{"hidden_size":30,"num_attention_heads":4}}"#,
        r#"{"model_type":"blip-2","text_config":{"model_type":"phi","intermediate_size":0}}"#,
        r#"{"model_type":"blip-2","pinhole_projection_hidden":0,"text_config":{"model_type":"phi"}}"#,
    ] {
        let e = ModelConfig::parse(j.as_bytes(), "config.json").unwrap_err();
        assert!(matches!(e, Error::Invalid(_) | Error::Unsupported(_)), "{j}: {e}");
        assert!(e.to_string().contains("config.json"), "{e}");
    }
}

#[test]
fn processor_sizes_are_bounded() {
    // An 8192² resize target cost about 1 GB and 2.6 s per image.
    let e = ImageProcessorConfig::parse(
        br#"{"size": {"height": 8192, "width": 8192}}"#,
        "preprocessor_config.json",
    )
    .unwrap_err();
    match e {
        Error::Limit { file, key, limit, .. } => {
            assert_eq!(
                (file.as_str(), key.as_str()),
                ("preprocessor_config.json", "size.height")
            );
            assert_eq!(limit, MAX_IMAGE_SIDE as u64);
        }
        other => panic!("{other:?}"),
    }
    let e = ImageProcessorConfig::parse(
        br#"{"image_processor": {}, "image_seq_length": 18446744073709551615}"#,
        "processor_config.json",
    )
    .unwrap_err();
    assert!(matches!(e, Error::Limit { .. }), "{e}");
}

#[test]
fn every_committed_model_folder_is_within_the_limits() {
    // The limits must not reject a real model: every fixture and bundled folder still parses
    // (families not supported yet answer `Unsupported`, not a limit error).
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut checked = 0;
    for base in ["tests/fixtures", "models"] {
        for e in std::fs::read_dir(root.join(base)).unwrap() {
            let d = e.unwrap().path();
            let d = if d.join("model").is_dir() { d.join("model") } else { d };
            let Ok(bytes) = std::fs::read(d.join("config.json")) else {
                continue;
            };
            let smolvlm = match ModelConfig::parse(&bytes, "config.json") {
                Ok(c) => {
                    checked += 1;
                    matches!(c, ModelConfig::SmolVlm(_))
                }
                Err(Error::Unsupported(_)) => continue,
                Err(e) => panic!("{}: {e}", d.display()),
            };
            for p in ["preprocessor_config.json", "processor_config.json"] {
                if let Ok(b) = std::fs::read(d.join(p)) {
                    // SmolVLM's processor (longest_edge, tiles) has its own parser.
                    let parsed = if smolvlm {
                        SmolVlmImageConfig::parse(&b, p).map(drop)
                    } else {
                        ImageProcessorConfig::parse(&b, p).map(drop)
                    };
                    parsed.unwrap_or_else(|e| panic!("{}: {e}", d.display()));
                }
            }
        }
    }
    assert!(checked >= 8, "{checked}");
}
