//! `config.json` of a SmolVLM (`model_type: "smolvlm"`) or Idefics3 (`"idefics3"`) model, with
//! the defaults of transformers' `SmolVLMConfig` / `Idefics3Config` (5.x; the 4.x keys such as
//! `rope_theta` and `torch_dtype` too).
//!
//! The two classes are the same model: a SigLIP-style vision tower (`vision_config`, class
//! defaults of `SmolVLMVisionConfig` / `Idefics3VisionConfig`, which are equal), a pixel-shuffle
//! connector with `scale_factor` and a bias-free `modality_projection`, and a Llama text model
//! (`text_config`). transformers' defaults, reproduced here:
//! * a missing `text_config` is `LlamaConfig(rms_norm_eps=1e-5)`; a present one gets the
//!   `LlamaConfig` class defaults for its missing keys (so `rms_norm_eps` 1e-6 there);
//! * the vision `model_type` inside `vision_config` is ignored (published SmolVLM checkpoints
//!   say `"idefics3"` there), the text one must be `llama`;
//! * `tie_word_embeddings` is the top-level key (default `false`); `image_token_id` defaults
//!   to 128257 and `scale_factor` to 2;
//! * `head_dim` defaults to `hidden_size / num_attention_heads`, `num_key_value_heads` to
//!   `num_attention_heads`, RoPE θ as [`Obj::rope_theta`] reads it (default 10000).
//!
//! Every size is checked against [`crate::hf::limits`] before anything uses it, and the products
//! the model forms (tokens per tile, connector width) are computed with checked arithmetic.

use crate::error::{Error, Result};
use crate::hf::config::ConfigLayout;
#[cfg(not(target_arch = "wasm32"))]
use crate::hf::json::read_file;
use crate::hf::json::{parse_object, Obj};
use crate::hf::limits::{
    MAX_CHANNELS, MAX_HEADS, MAX_IMAGE_SIDE, MAX_INTERMEDIATE, MAX_LAYERS, MAX_POSITIONS, MAX_VOCAB, MAX_WIDTH,
};
use crate::hf::SiglipVisionConfig;
use crate::tensor::DType;

/// `scale_factor` of the pixel shuffle (published models: 2, 3, 4).
const MAX_SCALE_FACTOR: usize = 64;

/// Which transformers class the file names (the computation is the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmolVlmKind {
    /// `SmolVLMForConditionalGeneration` (`model_type: "smolvlm"`).
    SmolVlm,
    /// `Idefics3ForConditionalGeneration` (`model_type: "idefics3"`; SmolVLM-256M/500M-Instruct
    /// were published with this one).
    Idefics3,
}

/// `text_config` of a SmolVLM / Idefics3 model: a Llama decoder.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaTextConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub max_position_embeddings: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    pub pad_token_id: Option<u32>,
}

impl LlamaTextConfig {
    /// `head_dim^-0.5` (Llama's attention scale, computed in f64 as Python does).
    pub fn attn_scale(&self) -> f64 {
        (self.head_dim as f64).powf(-0.5)
    }
}

/// A parsed SmolVLM / Idefics3 `config.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct SmolVlmConfig {
    pub kind: SmolVlmKind,
    pub image_token_id: u32,
    /// Pixel-shuffle factor: `s²` patches become one token `s²` times as wide.
    pub scale_factor: usize,
    /// The LM head is the embedding table (top-level `tie_word_embeddings`).
    pub tie_word_embeddings: bool,
    pub dtype: Option<DType>,
    /// The SigLIP-style tower (no head; `projection_dim` unused and 0).
    pub vision: SiglipVisionConfig,
    pub text: LlamaTextConfig,
}

impl ConfigLayout for SmolVlmConfig {
    fn image_size(&self) -> usize {
        self.vision.image_size
    }

    fn from_obj(obj: &Obj) -> Result<SmolVlmConfig> {
        let file = obj.file;
        let kind = match obj.string("model_type", None)?.as_deref() {
            Some("smolvlm") => SmolVlmKind::SmolVlm,
            Some("idefics3") => SmolVlmKind::Idefics3,
            other => {
                return Err(Error::Unsupported(format!(
                    "{file}: model_type {other:?} is not a SmolVLM / Idefics3 config (`smolvlm` or `idefics3`)"
                )))
            }
        };
        let vision = match obj.sub("vision_config")? {
            Some(v) => vision_from_obj(&v)?,
            None => vision_from_obj(&Obj::empty(file, "vision_config."))?,
        };
        let text = match obj.sub("text_config")? {
            Some(t) => text_from_obj(&t, 1e-6)?,
            None => text_from_obj(&Obj::empty(file, "text_config."), 1e-5)?,
        };
        let scale_factor = obj.dim_pos("scale_factor", 2, MAX_SCALE_FACTOR)?;
        let cfg = SmolVlmConfig {
            kind,
            image_token_id: obj.opt_u32("image_token_id")?.unwrap_or(128257),
            scale_factor,
            tie_word_embeddings: obj.bool("tie_word_embeddings", false)?,
            dtype: obj.dtype()?,
            vision,
            text,
        };
        cfg.check(file)?;
        Ok(cfg)
    }
}

impl SmolVlmConfig {
    /// Parses `config.json` bytes of a `smolvlm` or `idefics3` model; `file` names it in errors.
    pub fn parse(bytes: &[u8], file: &str) -> Result<SmolVlmConfig> {
        let root = parse_object(bytes, file)?;
        SmolVlmConfig::from_obj(&Obj::new(file, "", &root))
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<SmolVlmConfig> {
        let (bytes, shown) = read_file(path.as_ref())?;
        SmolVlmConfig::parse(&bytes, &shown)
    }

    /// Consistency of the sizes the model code multiplies and divides.
    fn check(&self, file: &str) -> Result<()> {
        let v = &self.vision;
        if !v.image_size.is_multiple_of(v.patch_size) {
            return Err(Error::Unsupported(format!(
                "{file}: vision_config.image_size {} is not a multiple of patch_size {}",
                v.image_size, v.patch_size
            )));
        }
        let side = v.image_size / v.patch_size;
        if !side.is_multiple_of(self.scale_factor) {
            return Err(Error::Unsupported(format!(
                "{file}: the patch grid side {side} (image_size {} / patch_size {}) is not a \
                 multiple of scale_factor {}; the pixel shuffle needs it",
                v.image_size, v.patch_size, self.scale_factor
            )));
        }
        if !v.hidden_size.is_multiple_of(v.num_attention_heads) {
            return Err(Error::Unsupported(format!(
                "{file}: vision_config.hidden_size {} is not a multiple of num_attention_heads {}",
                v.hidden_size, v.num_attention_heads
            )));
        }
        let s2 = self.scale_factor * self.scale_factor;
        let width = v.hidden_size.checked_mul(s2).filter(|w| *w <= MAX_WIDTH);
        if width.is_none() {
            return Err(Error::Unsupported(format!(
                "{file}: the connector input width vision_config.hidden_size {} x scale_factor² {s2} \
                 is over pinhole's limit of {MAX_WIDTH}",
                v.hidden_size
            )));
        }
        let t = &self.text;
        let tv = t.vocab_size;
        if self.image_token_id as usize >= tv {
            return Err(Error::Invalid(format!(
                "{file}: image_token_id {} is outside text_config.vocab_size {tv}; fix the config",
                self.image_token_id
            )));
        }
        Ok(())
    }

    /// Patch-grid side of one tile: `image_size / patch_size`.
    pub fn patch_side(&self) -> usize {
        self.vision.image_size / self.vision.patch_size
    }

    /// Tokens per tile after the pixel shuffle: `(image_size / patch_size)² / scale_factor²`
    /// (`SmolVLMModel.image_seq_len`).
    pub fn image_seq_len(&self) -> usize {
        let side = self.patch_side() / self.scale_factor;
        side * side
    }

    /// Width of one connector input row: `vision hidden · scale_factor²`.
    pub fn connector_width(&self) -> usize {
        self.vision.hidden_size * self.scale_factor * self.scale_factor
    }
}

/// `SmolVLMVisionConfig` / `Idefics3VisionConfig` (equal class defaults).
fn vision_from_obj(obj: &Obj) -> Result<SiglipVisionConfig> {
    let hidden_act = obj.activation("hidden_act", false)?;
    Ok(SiglipVisionConfig {
        hidden_size: obj.dim_pos("hidden_size", 1152, MAX_WIDTH)?,
        intermediate_size: obj.dim_pos("intermediate_size", 3072, MAX_INTERMEDIATE)?,
        num_hidden_layers: obj.dim("num_hidden_layers", 12, MAX_LAYERS)?,
        num_attention_heads: obj.dim_pos("num_attention_heads", 16, MAX_HEADS)?,
        num_channels: obj.dim_pos("num_channels", 3, MAX_CHANNELS)?,
        image_size: obj.square_dim("image_size", 224, MAX_IMAGE_SIDE)?,
        patch_size: obj.square_dim("patch_size", 32, MAX_IMAGE_SIDE)?,
        layer_norm_eps: obj.f64("layer_norm_eps", 1e-6)?,
        hidden_act,
        vision_use_head: false,
        projection_dim: 0,
    })
}

/// `LlamaConfig` with its class defaults (`eps` is 1e-5 when the whole text_config is missing).
fn text_from_obj(obj: &Obj, eps: f64) -> Result<LlamaTextConfig> {
    let file = obj.file;
    match obj.string("model_type", Some("llama"))?.as_deref() {
        Some("llama") | None => {}
        Some(other) => {
            return Err(Error::Unsupported(format!(
                "{file}: text_config.model_type `{other}` is not supported; pinhole's SmolVLM / \
                 Idefics3 text model is `llama`"
            )))
        }
    }
    match obj.string("hidden_act", Some("silu"))?.as_deref() {
        Some("silu") | None => {}
        Some(other) => {
            return Err(Error::Unsupported(format!(
                "{file}: text_config.hidden_act `{other}` is not supported; Llama's MLP in pinhole is SwiGLU (`silu`)"
            )))
        }
    }
    let hidden_size = obj.dim_pos("hidden_size", 4096, MAX_WIDTH)?;
    let num_attention_heads = obj.dim_pos("num_attention_heads", 32, MAX_HEADS)?;
    let num_key_value_heads = match obj.opt_usize_or("num_key_value_heads", None)? {
        None => num_attention_heads,
        Some(_) => obj.dim_pos("num_key_value_heads", num_attention_heads, MAX_HEADS)?,
    };
    if !num_attention_heads.is_multiple_of(num_key_value_heads) {
        return Err(Error::Unsupported(format!(
            "{file}: text_config has {num_attention_heads} attention heads and \
             {num_key_value_heads} key/value heads; the first must be a multiple of the second"
        )));
    }
    let head_dim = match obj.opt_usize_or("head_dim", None)? {
        None => {
            if !hidden_size.is_multiple_of(num_attention_heads) {
                return Err(Error::Invalid(format!(
                    "{file}: text_config.hidden_size {hidden_size} is not a multiple of \
                     num_attention_heads {num_attention_heads} and no head_dim is given"
                )));
            }
            hidden_size / num_attention_heads
        }
        Some(_) => obj.dim_pos("head_dim", 0, MAX_WIDTH)?,
    };
    if head_dim % 2 != 0 {
        return Err(Error::Unsupported(format!(
            "{file}: text_config.head_dim {head_dim} is odd; rotary embeddings need an even head_dim"
        )));
    }
    match num_attention_heads.checked_mul(head_dim) {
        Some(w) if w <= MAX_WIDTH => {}
        _ => {
            return Err(Error::Unsupported(format!(
                "{file}: text_config heads x head_dim ({num_attention_heads} x {head_dim}) is over \
                 pinhole's limit of {MAX_WIDTH}"
            )))
        }
    }
    for key in ["attention_bias", "mlp_bias"] {
        if obj.bool(key, false)? {
            return Err(Error::Unsupported(format!(
                "{file}: text_config.{key} is true; pinhole's Llama decoder has no biases (no \
                 published SmolVLM / Idefics3 uses them)"
            )));
        }
    }
    let vocab_size = obj.dim_pos("vocab_size", 32000, MAX_VOCAB)?;
    let cfg = LlamaTextConfig {
        vocab_size,
        hidden_size,
        intermediate_size: obj.dim_pos("intermediate_size", 11008, MAX_INTERMEDIATE)?,
        num_hidden_layers: obj.dim("num_hidden_layers", 32, MAX_LAYERS)?,
        num_attention_heads,
        num_key_value_heads,
        head_dim,
        max_position_embeddings: obj.dim_pos("max_position_embeddings", 2048, MAX_POSITIONS)?,
        rms_norm_eps: obj.f64("rms_norm_eps", eps)?,
        rope_theta: obj.rope_theta()?,
        bos_token_id: obj.opt_u32_or("bos_token_id", Some(1))?,
        eos_token_ids: obj.token_ids("eos_token_id", &[2])?,
        pad_token_id: obj.opt_u32_or("pad_token_id", None)?,
    };
    if cfg.rms_norm_eps <= 0.0 {
        return Err(Error::Invalid(format!(
            "{file}: text_config.rms_norm_eps must be > 0, got {}",
            cfg.rms_norm_eps
        )));
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hf::Activation;

    fn parse(json: &str) -> Result<SmolVlmConfig> {
        SmolVlmConfig::parse(json.as_bytes(), "config.json")
    }

    #[test]
    fn class_defaults() {
        // transformers 5.24: SmolVLMConfig() and SmolVLMConfig(text_config={}, vision_config={}).
        // SmolVLMConfig()'s own 224 / 32 = 7 patches per side is no multiple of scale_factor 2:
        // transformers fails only in the pixel shuffle, pinhole when parsing.
        let e = parse(r#"{"model_type": "smolvlm"}"#).unwrap_err();
        assert!(e.to_string().contains("scale_factor"), "{e}");
        // (Its image_token_id 128257 is outside LlamaConfig's vocabulary of 32000 too.)
        let e = parse(r#"{"model_type": "smolvlm", "vision_config": {"image_size": 256}}"#).unwrap_err();
        assert!(e.to_string().contains("image_token_id 128257"), "{e}");
        let c =
            parse(r#"{"model_type": "smolvlm", "image_token_id": 5, "vision_config": {"image_size": 256}}"#).unwrap();
        assert_eq!(c.kind, SmolVlmKind::SmolVlm);
        assert_eq!((c.image_token_id, c.scale_factor, c.tie_word_embeddings), (5, 2, false));
        let v = &c.vision;
        assert_eq!(
            (
                v.hidden_size,
                v.intermediate_size,
                v.num_hidden_layers,
                v.num_attention_heads
            ),
            (1152, 3072, 12, 16)
        );
        assert_eq!((v.image_size, v.patch_size, v.layer_norm_eps), (256, 32, 1e-6));
        assert_eq!(v.hidden_act, Activation::GeluTanh);
        let t = &c.text;
        assert_eq!(
            (t.vocab_size, t.hidden_size, t.intermediate_size, t.num_hidden_layers),
            (32000, 4096, 11008, 32)
        );
        assert_eq!(
            (t.num_attention_heads, t.num_key_value_heads, t.head_dim),
            (32, 32, 128)
        );
        assert_eq!(
            (t.rms_norm_eps, t.rope_theta, t.max_position_embeddings),
            (1e-5, 10000.0, 2048)
        );
        assert_eq!(
            (t.bos_token_id, t.eos_token_ids.clone(), t.pad_token_id),
            (Some(1), vec![2], None)
        );
        let c = parse(
            r#"{"model_type": "idefics3", "text_config": {"vocab_size": 128258}, "vision_config": {"image_size": 256}}"#,
        )
        .unwrap();
        assert_eq!((c.kind, c.image_token_id), (SmolVlmKind::Idefics3, 128257));
        assert_eq!(
            c.text.rms_norm_eps, 1e-6,
            "a present text_config gets LlamaConfig's default"
        );
        assert_eq!((c.image_seq_len(), c.connector_width()), (16, 1152 * 4));
    }

    /// SmolVLM-256M-Instruct's config.json as transformers 4 wrote it (abridged: the keys
    /// transformers reads), with the vision model_type `idefics3` it was published with.
    const SMOLVLM_256M: &str = r#"{
      "architectures": ["Idefics3ForConditionalGeneration"], "image_token_id": 49190,
      "model_type": "idefics3", "scale_factor": 4, "tie_word_embeddings": false,
      "torch_dtype": "bfloat16", "transformers_version": "4.46.0",
      "text_config": {
        "_flash_attn_2_enabled": true, "architectures": ["VLlama3ForCausalLM"], "head_dim": 64,
        "hidden_size": 576, "intermediate_size": 1536, "max_position_embeddings": 8192,
        "model_type": "llama", "num_attention_heads": 9, "num_hidden_layers": 30,
        "num_key_value_heads": 3, "pad_token_id": 2, "rms_norm_eps": 1e-05,
        "rope_scaling": null, "rope_theta": 100000, "tie_word_embeddings": false,
        "vocab_size": 49280, "torch_dtype": "bfloat16"
      },
      "vision_config": {
        "hidden_size": 768, "image_size": 512, "intermediate_size": 3072,
        "model_type": "idefics3", "num_attention_heads": 12, "num_hidden_layers": 12,
        "patch_size": 16, "size": {"longest_edge": 512}, "max_image_size": {"longest_edge": 512}
      }
    }"#;

    #[test]
    fn smolvlm_256m_shapes() {
        let c = parse(SMOLVLM_256M).unwrap();
        assert_eq!(c.kind, SmolVlmKind::Idefics3);
        assert_eq!((c.image_token_id, c.scale_factor), (49190, 4));
        assert_eq!(c.dtype, Some(DType::BF16));
        assert_eq!(
            (c.patch_side(), c.image_seq_len(), c.connector_width()),
            (32, 64, 12288)
        );
        let t = &c.text;
        assert_eq!(
            (t.hidden_size, t.head_dim, t.num_attention_heads, t.num_key_value_heads),
            (576, 64, 9, 3)
        );
        assert_eq!((t.rope_theta, t.rms_norm_eps, t.vocab_size), (100000.0, 1e-5, 49280));
        assert_eq!(t.attn_scale(), 0.125);
    }

    #[test]
    fn fixture_configs() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/");
        let c = SmolVlmConfig::load(format!("{root}smolvlm/model/config.json")).unwrap();
        assert_eq!(
            (c.kind, c.image_token_id, c.scale_factor),
            (SmolVlmKind::SmolVlm, 381, 4)
        );
        assert_eq!(
            (c.text.rope_theta, c.text.num_key_value_heads, c.text.head_dim),
            (100000.0, 2, 12)
        );
        assert_eq!(c.image_seq_len(), 4);
        assert!(!c.tie_word_embeddings);
        let c = SmolVlmConfig::load(format!("{root}smolvlm-nosplit/model/config.json")).unwrap();
        assert!(c.tie_word_embeddings);
        assert_eq!(c.image_seq_len(), 4);
        let c = SmolVlmConfig::load(format!("{root}idefics3/model/config.json")).unwrap();
        assert_eq!(
            (c.kind, c.scale_factor, c.text.rope_theta),
            (SmolVlmKind::Idefics3, 2, 500000.0)
        );
        assert_eq!(c.image_seq_len(), 4);
    }

    #[test]
    fn bad_configs() {
        let err = |j: &str| parse(j).unwrap_err().to_string();
        let e = err(r#"{"model_type": "smolvlm", "text_config": {"model_type": "mistral"}}"#);
        assert!(e.contains("mistral") && e.contains("config.json"), "{e}");
        let e = err(r#"{"model_type": "smolvlm", "text_config": {"mlp_bias": true}}"#);
        assert!(e.contains("mlp_bias"), "{e}");
        let e = err(r#"{"model_type": "smolvlm", "text_config": {"hidden_act": "gelu"}}"#);
        assert!(e.contains("hidden_act"), "{e}");
        let e = err(r#"{"model_type": "smolvlm", "text_config": {"num_hidden_layers": 1000000000000}}"#);
        assert!(
            e.contains("text_config.num_hidden_layers") && e.contains("limit"),
            "{e}"
        );
        let e = err(r#"{"model_type": "smolvlm", "scale_factor": 0}"#);
        assert!(e.contains("scale_factor"), "{e}");
        let e = err(
            r#"{"model_type": "smolvlm", "vision_config": {"image_size": 256, "patch_size": 16}, "scale_factor": 3}"#,
        );
        assert!(e.contains("scale_factor 3"), "{e}");
        let e = err(r#"{"model_type": "smolvlm", "vision_config": {"image_size": 256, "hidden_size": 65536}}"#);
        assert!(e.contains("connector"), "{e}");
        let e = err(r#"{"model_type": "smolvlm", "image_token_id": 40000, "vision_config": {"image_size": 256}}"#);
        assert!(e.contains("image_token_id"), "{e}");
        let e = err(
            r#"{"model_type": "smolvlm", "vision_config": {"image_size": 256}, "text_config": {"num_attention_heads": 6, "num_key_value_heads": 4}}"#,
        );
        assert!(e.contains("key/value heads"), "{e}");
        let e = err(
            r#"{"model_type": "smolvlm", "vision_config": {"image_size": 256}, "text_config": {"rope_parameters": {"rope_type": "linear", "factor": 2}}}"#,
        );
        assert!(e.contains("linear"), "{e}");
        let e = err(r#"{"model_type": "paligemma"}"#);
        assert!(e.contains("paligemma"), "{e}");
    }
}
