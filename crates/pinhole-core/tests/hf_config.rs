//! `config.json` parsing against what transformers' `PaliGemmaConfig` makes of the same files
//! (tests/fixtures/config/*.expected.json, written by gen_fixtures.py with transformers 5.23).

use std::path::Path;

use pinhole_core::hf::config::{Activation, LayerType, PaliGemmaConfig, TextModelType};
use pinhole_core::DType;
use serde_json::Value;

fn opt_f64(v: &Value) -> Option<f64> {
    v.as_f64()
}

/// Each listed size field of `$cfg` equals the same key of the expected JSON `$exp`.
macro_rules! assert_sizes {
    ($name:expr, $section:literal, $cfg:expr, $exp:expr, [$($field:ident),*]) => {
        $(
            let key = stringify!($field);
            let want = $exp[key].as_u64().unwrap() as usize;
            assert_eq!($cfg.$field, want, "{}: {}.{key}", $name, $section);
        )*
    };
}

#[test]
fn configs_match_transformers() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        if !name.ends_with(".json") || name.ends_with(".expected.json") {
            continue;
        }
        let c = PaliGemmaConfig::load(&path).unwrap();
        let e: Value =
            serde_json::from_slice(&std::fs::read(dir.join(name.replace(".json", ".expected.json"))).unwrap()).unwrap();
        let u = |v: &Value| v.as_u64().unwrap() as usize;
        assert_eq!(
            c.image_token_index as u64,
            e["image_token_index"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(c.vocab_size, u(&e["vocab_size"]), "{name}");
        assert_eq!(c.projection_dim, u(&e["projection_dim"]), "{name}");
        assert_eq!(c.hidden_size, u(&e["hidden_size"]), "{name}");
        assert_eq!(c.num_image_tokens, u(&e["num_image_tokens"]), "{name}");
        let dtype = match e["dtype"].as_str() {
            Some("float32") => Some(DType::F32),
            Some("bfloat16") => Some(DType::BF16),
            Some("float16") => Some(DType::F16),
            _ => None,
        };
        assert_eq!(c.dtype, dtype, "{name}");

        let (t, et) = (&c.text, &e["text"]);
        let mt = if t.model_type == TextModelType::Gemma2 {
            "gemma2"
        } else {
            "gemma"
        };
        assert_eq!(mt, et["model_type"], "{name}");
        assert_sizes!(
            name,
            "text",
            t,
            et,
            [
                vocab_size,
                hidden_size,
                intermediate_size,
                num_hidden_layers,
                num_attention_heads,
                num_key_value_heads,
                head_dim,
                max_position_embeddings
            ]
        );
        assert_eq!(t.rms_norm_eps, et["rms_norm_eps"].as_f64().unwrap(), "{name}");
        assert_eq!(t.rope_theta, et["rope_theta"].as_f64().unwrap(), "{name}");
        assert_eq!(et["rope_type"], "default");
        assert_eq!(
            t.attn_logit_softcapping,
            opt_f64(&et["attn_logit_softcapping"]),
            "{name}"
        );
        assert_eq!(
            t.final_logit_softcapping,
            opt_f64(&et["final_logit_softcapping"]),
            "{name}"
        );
        assert_eq!(t.query_pre_attn_scalar, opt_f64(&et["query_pre_attn_scalar"]), "{name}");
        assert_eq!(
            t.sliding_window,
            et["sliding_window"].as_u64().map(|v| v as usize),
            "{name}"
        );
        assert_eq!(t.attn_scale(), et["attn_scale"].as_f64().unwrap(), "{name}");
        let lt: Vec<LayerType> = et["layer_types"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                if v == "sliding_attention" {
                    LayerType::Sliding
                } else {
                    LayerType::Full
                }
            })
            .collect();
        assert_eq!(t.layer_types, lt, "{name}");
        assert_eq!(
            t.use_bidirectional_attention, et["use_bidirectional_attention"],
            "{name}"
        );
        let eos: Vec<u32> = serde_json::from_value(et["eos_token_id"].clone()).unwrap();
        assert_eq!(t.eos_token_ids, eos, "{name}");
        assert_eq!(et["activation"], "gelu_pytorch_tanh");
        assert_eq!(t.hidden_activation, Activation::GeluTanh, "{name}");

        let (v, ev) = (&c.vision, &e["vision"]);
        assert_sizes!(
            name,
            "vision",
            v,
            ev,
            [
                hidden_size,
                intermediate_size,
                num_hidden_layers,
                num_attention_heads,
                patch_size,
                image_size,
                projection_dim
            ]
        );
        assert_eq!(v.layer_norm_eps, ev["layer_norm_eps"].as_f64().unwrap(), "{name}");
        assert_eq!(v.vision_use_head, ev["vision_use_head"], "{name}");
        assert_eq!(ev["activation"], "gelu_pytorch_tanh");
        assert_eq!(v.hidden_act, Activation::GeluTanh, "{name}");
        n += 1;
    }
    assert!(n >= 6, "expected the config fixtures, found {n}");
}
