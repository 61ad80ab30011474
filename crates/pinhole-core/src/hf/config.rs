//! `config.json` of a Hugging Face model folder, parsed into typed structs with the defaults
//! transformers (5.x, and the older keys of 4.x files) applies when a key is missing.
//!
//! Each layout is a [`ConfigLayout`]: [`PaliGemmaConfig`] (PaliGemma with a Gemma text model,
//! PaliGemma 2 with Gemma 2), BLIP-2 with a Phi text model ([`crate::hf::blip2_config`]) and
//! SmolVLM / Idefics3 ([`crate::hf::smolvlm_config`]). pinhole-models' registry picks the
//! layout by [`model_type`]; [`ModelConfig`] does the same for the layouts of this crate (its
//! tests and tools), and answers [`Error::Unsupported`] for other `model_type`s. The processor
//! and generation configs are in [`crate::hf::processor`].
//!
//! The defaults follow transformers' config classes: a sub-config missing from `config.json`
//! gets PaliGemma's own defaults (PaliGemma-3B's shapes), a sub-config that is present gets the
//! Gemma / Gemma 2 / SigLIP class defaults for its missing keys, exactly as `PaliGemmaConfig`
//! does. Derived values are derived the same way (`num_image_tokens` =
//! `(image_size / patch_size)²`, Gemma 2's alternating `layer_types`, RoPE θ from
//! `rope_parameters` or the older `rope_theta`/`rope_scaling`).
//!
//! Everything parses from bytes; `load` helpers read files and are not compiled for wasm32.

use serde_json::Value;

use crate::error::{Error, Result};
#[cfg(not(target_arch = "wasm32"))]
use crate::hf::json::read_file;
use crate::hf::json::{parse_object, Obj};
use crate::hf::limits::{
    at_most, product_at_most, MAX_CHANNELS, MAX_HEADS, MAX_IMAGE_SIDE, MAX_IMAGE_TOKENS, MAX_INTERMEDIATE, MAX_LAYERS,
    MAX_POSITIONS, MAX_VOCAB, MAX_WIDTH,
};
use crate::tensor::DType;

/// An MLP / vision activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    /// `gelu_pytorch_tanh` (also `gelu_new`): the tanh approximation of GELU.
    GeluTanh,
    /// `gelu`: the exact (erf) GELU. (A Gemma 1 config saying `gelu` means the tanh form;
    /// transformers rewrites it, and so does this parser.)
    GeluErf,
}

/// The text decoder family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TextModelType {
    Gemma,
    Gemma2,
}

/// The attention kind of one decoder layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerType {
    Full,
    /// Attends to the last `sliding_window` positions only (outside the prefix block).
    Sliding,
}

/// `text_config` of a PaliGemma model.
#[derive(Clone, Debug, PartialEq)]
pub struct TextConfig {
    pub model_type: TextModelType,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub max_position_embeddings: usize,
    pub rms_norm_eps: f64,
    /// Gemma reads `hidden_act`, Gemma 2 `hidden_activation`.
    pub hidden_activation: Activation,
    pub rope_theta: f64,
    /// Gemma 2: `cap·tanh(score/cap)` on attention scores. Always `None` for Gemma.
    pub attn_logit_softcapping: Option<f64>,
    /// Soft-capping of the final logits (PaliGemma applies it whenever the text config has it).
    pub final_logit_softcapping: Option<f64>,
    /// Gemma 2: attention scale is `query_pre_attn_scalar^-0.5`. `None` for Gemma.
    pub query_pre_attn_scalar: Option<f64>,
    /// Window of the [`LayerType::Sliding`] layers. `None` for Gemma.
    pub sliding_window: Option<usize>,
    /// One entry per layer.
    pub layer_types: Vec<LayerType>,
    /// PaliGemma sets it to `true` when the file leaves it unset.
    pub use_bidirectional_attention: bool,
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    pub pad_token_id: Option<u32>,
    pub dtype: Option<DType>,
}

impl TextConfig {
    /// The factor that multiplies q·k: `query_pre_attn_scalar^-0.5` for Gemma 2,
    /// `head_dim^-0.5` for Gemma (computed in f64 as Python does).
    pub fn attn_scale(&self) -> f64 {
        match (self.model_type, self.query_pre_attn_scalar) {
            (TextModelType::Gemma2, Some(s)) => s.powf(-0.5),
            _ => (self.head_dim as f64).powf(-0.5),
        }
    }
}

/// `vision_config` of a PaliGemma model (a SigLIP vision tower).
#[derive(Clone, Debug, PartialEq)]
pub struct SiglipVisionConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_channels: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub layer_norm_eps: f64,
    pub hidden_act: Activation,
    pub vision_use_head: bool,
    /// Copied from the top-level `projection_dim`, as PaliGemma does.
    pub projection_dim: usize,
}

impl SiglipVisionConfig {
    /// Patches per image: `(image_size / patch_size)²` (at most
    /// [`MAX_IMAGE_TOKENS`](crate::hf::limits::MAX_IMAGE_TOKENS) for a parsed config).
    pub fn num_patches(&self) -> usize {
        let side = self.image_size / self.patch_size.max(1);
        side.saturating_mul(side)
    }
}

/// `config.json` of a PaliGemma or PaliGemma 2 model.
#[derive(Clone, Debug, PartialEq)]
pub struct PaliGemmaConfig {
    /// `image_token_index` (or its alias `image_token_id`).
    pub image_token_index: u32,
    pub vocab_size: usize,
    pub projection_dim: usize,
    pub hidden_size: usize,
    pub tie_word_embeddings: bool,
    /// Always `(image_size / patch_size)²`, as transformers derives it (a stored value is
    /// overwritten there too).
    pub num_image_tokens: usize,
    /// `dtype` (new) or `torch_dtype` (old): the dtype the weights were saved in.
    pub dtype: Option<DType>,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    pub pad_token_id: Option<u32>,
    pub text: TextConfig,
    pub vision: SiglipVisionConfig,
}

/// A parsed `config.json` of one of the layouts in this crate, by architecture. Model families
/// are not listed here: pinhole-models' registry maps each `model_type` to its family's
/// [`ConfigLayout`], which may live with the family.
#[derive(Clone, Debug, PartialEq)]
pub enum ModelConfig {
    PaliGemma(PaliGemmaConfig),
    /// BLIP-2 with a Phi language model (TinyGPT-V class); see [`crate::hf::blip2_config`].
    Blip2Phi(crate::hf::blip2_config::Blip2PhiConfig),
    /// SmolVLM / Idefics3; see [`crate::hf::smolvlm_config`].
    SmolVlm(crate::hf::smolvlm_config::SmolVlmConfig),
}

/// config.json's `model_type`, the key that picks the family (an error naming the file when
/// it is missing: then the file is not a transformers config.json).
pub fn model_type(obj: &Obj) -> Result<String> {
    obj.string("model_type", None)?.ok_or_else(|| {
        Error::Invalid(format!(
            "{} has no `model_type`; it is not a transformers config.json",
            obj.file
        ))
    })
}

/// One config.json layout: the typed config of a model family, parsed from the file's root
/// object. pinhole-models' registry builds each family from its layout, so a family whose
/// layout is new writes this parser (in its own file, with [`Obj`]'s checked readers) and
/// touches nothing here.
pub trait ConfigLayout: Sized {
    /// Parses the root object of config.json (`obj.file` names the file in errors); every size
    /// is checked against [`crate::hf::limits`] before anything is sized from it.
    fn from_obj(obj: &Obj) -> Result<Self>;

    /// The side of the square image (or tile) the vision tower takes.
    fn image_size(&self) -> usize;
}

impl ModelConfig {
    /// Parses `config.json` bytes; `file` names it in errors.
    pub fn parse(bytes: &[u8], file: &str) -> Result<ModelConfig> {
        let root = parse_object(bytes, file)?;
        let obj = Obj::new(file, "", &root);
        match model_type(&obj)?.as_str() {
            "paligemma" => Ok(ModelConfig::PaliGemma(PaliGemmaConfig::from_obj(&obj)?)),
            "blip-2" => Ok(ModelConfig::Blip2Phi(
                crate::hf::blip2_config::Blip2PhiConfig::from_obj(&obj)?,
            )),
            "smolvlm" | "idefics3" => Ok(ModelConfig::SmolVlm(
                crate::hf::smolvlm_config::SmolVlmConfig::from_obj(&obj)?,
            )),
            other => Err(Error::Unsupported(format!(
                "{file}: model_type `{other}` is not supported; pinhole runs `paligemma` \
                 (PaliGemma and PaliGemma 2), `blip-2` with a Phi text model (TinyGPT-V class), `smolvlm` and `idefics3`"
            ))),
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<ModelConfig> {
        let (bytes, shown) = read_file(path.as_ref())?;
        ModelConfig::parse(&bytes, &shown)
    }
}

impl PaliGemmaConfig {
    /// Parses `config.json` bytes, which must be a `paligemma` config.
    pub fn parse(bytes: &[u8], file: &str) -> Result<PaliGemmaConfig> {
        match ModelConfig::parse(bytes, file)? {
            ModelConfig::PaliGemma(c) => Ok(c),
            _ => Err(Error::Unsupported(format!("{file} is not a paligemma config"))),
        }
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<PaliGemmaConfig> {
        let (bytes, shown) = read_file(path.as_ref())?;
        PaliGemmaConfig::parse(&bytes, &shown)
    }
}

impl ConfigLayout for PaliGemmaConfig {
    fn image_size(&self) -> usize {
        self.vision.image_size
    }

    fn from_obj(obj: &Obj) -> Result<PaliGemmaConfig> {
        let file = obj.file;
        let projection_dim = obj.dim_pos("projection_dim", 2048, MAX_WIDTH)?;
        let idx = obj.opt_u32("image_token_index")?;
        let id = obj.opt_u32("image_token_id")?;
        let image_token_index = match (idx, id) {
            (Some(a), Some(b)) if a != b => {
                return Err(Error::Invalid(format!(
                    "{file}: `image_token_index` ({a}) and `image_token_id` ({b}) disagree; \
                     they are the same setting: fix the config"
                )))
            }
            (Some(a), _) | (None, Some(a)) => a,
            (None, None) => 256000,
        };
        let vision = match obj.sub("vision_config")? {
            Some(v) => SiglipVisionConfig::from_obj(&v, VISION_CLASS_DEFAULTS, projection_dim)?,
            None => SiglipVisionConfig::from_obj(
                &Obj::empty(file, "vision_config."),
                VISION_PALIGEMMA_DEFAULTS,
                projection_dim,
            )?,
        };
        let text = match obj.sub("text_config")? {
            Some(t) => TextConfig::from_obj(&t, false)?,
            None => TextConfig::from_obj(&Obj::empty(file, "text_config."), true)?,
        };
        if vision.patch_size == 0 || !vision.image_size.is_multiple_of(vision.patch_size) {
            return Err(Error::Unsupported(format!(
                "{file}: vision_config.image_size {} is not a multiple of patch_size {}",
                vision.image_size, vision.patch_size
            )));
        }
        at_most(
            file,
            "vision_config: (image_size / patch_size)² image tokens",
            vision.num_patches(),
            MAX_IMAGE_TOKENS,
        )?;
        Ok(PaliGemmaConfig {
            image_token_index,
            vocab_size: obj.dim_pos("vocab_size", 257152, MAX_VOCAB)?,
            projection_dim,
            hidden_size: obj.dim_pos("hidden_size", 2048, MAX_WIDTH)?,
            tie_word_embeddings: obj.bool("tie_word_embeddings", true)?,
            num_image_tokens: vision.num_patches(),
            dtype: obj.dtype()?,
            bos_token_id: obj.opt_u32("bos_token_id")?,
            eos_token_ids: obj.token_ids("eos_token_id", &[])?,
            pad_token_id: obj.opt_u32("pad_token_id")?,
            text,
            vision,
        })
    }
}

struct VisionDefaults {
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    patch_size: usize,
    image_size: usize,
    vision_use_head: bool,
}

/// `SiglipVisionConfig`'s class defaults (a `vision_config` that is present).
const VISION_CLASS_DEFAULTS: VisionDefaults = VisionDefaults {
    hidden_size: 768,
    intermediate_size: 3072,
    num_hidden_layers: 12,
    num_attention_heads: 12,
    patch_size: 16,
    image_size: 224,
    vision_use_head: true,
};

/// `PaliGemmaConfig`'s defaults for a missing `vision_config`.
const VISION_PALIGEMMA_DEFAULTS: VisionDefaults = VisionDefaults {
    hidden_size: 1152,
    intermediate_size: 4096,
    num_hidden_layers: 27,
    num_attention_heads: 16,
    patch_size: 14,
    image_size: 224,
    vision_use_head: false,
};

impl SiglipVisionConfig {
    fn from_obj(obj: &Obj, d: VisionDefaults, projection_dim: usize) -> Result<Self> {
        if let Some(mt) = obj.string("model_type", None)? {
            if mt != "siglip_vision_model" {
                return Err(Error::Unsupported(format!(
                    "{}: vision_config.model_type `{mt}` is not supported; pinhole's PaliGemma \
                     vision tower is `siglip_vision_model`",
                    obj.file
                )));
            }
        }
        let hidden_size = obj.dim_pos("hidden_size", d.hidden_size, MAX_WIDTH)?;
        let num_attention_heads = obj.dim_pos("num_attention_heads", d.num_attention_heads, MAX_HEADS)?;
        // SigLIP's attention splits the width into equal heads (transformers raises otherwise).
        if !hidden_size.is_multiple_of(num_attention_heads) {
            return Err(Error::Unsupported(format!(
                "{}: vision_config.hidden_size {hidden_size} is not a multiple of \
                 num_attention_heads {num_attention_heads}",
                obj.file
            )));
        }
        Ok(SiglipVisionConfig {
            hidden_size,
            intermediate_size: obj.dim_pos("intermediate_size", d.intermediate_size, MAX_INTERMEDIATE)?,
            num_hidden_layers: obj.dim("num_hidden_layers", d.num_hidden_layers, MAX_LAYERS)?,
            num_attention_heads,
            num_channels: obj.dim_pos("num_channels", 3, MAX_CHANNELS)?,
            image_size: obj.square_dim("image_size", d.image_size, MAX_IMAGE_SIDE)?,
            patch_size: obj.square_dim("patch_size", d.patch_size, MAX_IMAGE_SIDE)?,
            layer_norm_eps: obj.f64("layer_norm_eps", 1e-6)?,
            hidden_act: obj.activation("hidden_act", false)?,
            vision_use_head: obj.bool("vision_use_head", d.vision_use_head)?,
            projection_dim,
        })
    }
}

impl TextConfig {
    fn from_obj(obj: &Obj, paligemma_defaults: bool) -> Result<Self> {
        let file = obj.file;
        let model_type = match obj.string("model_type", Some("gemma"))?.as_deref() {
            Some("gemma2") => TextModelType::Gemma2,
            Some("gemma") | None => TextModelType::Gemma,
            Some(other) => {
                return Err(Error::Unsupported(format!(
                    "{file}: text_config.model_type `{other}` is not supported; pinhole's \
                     PaliGemma text models are `gemma` and `gemma2`"
                )))
            }
        };
        let gemma2 = model_type == TextModelType::Gemma2;
        // (hidden, intermediate, layers, heads, kv_heads, vocab)
        let (h, i, l, nh, kv, v) = match (paligemma_defaults, gemma2) {
            (true, _) => (2048, 16384, 18, 8, 1, 257152),
            (false, false) => (3072, 24576, 28, 16, 16, 256000),
            (false, true) => (2304, 9216, 26, 8, 4, 256000),
        };
        // Checked before `layer_types` sizes a vector with it.
        let num_hidden_layers = obj.dim("num_hidden_layers", l, MAX_LAYERS)?;
        let hidden_activation = if gemma2 {
            obj.activation("hidden_activation", false)?
        } else {
            obj.activation("hidden_act", true)?
        };
        let sliding_window = if gemma2 {
            obj.opt_dim_or("sliding_window", Some(4096), MAX_POSITIONS)?
        } else {
            None
        };
        let layer_types = if gemma2 {
            obj.layer_types(num_hidden_layers)?
        } else {
            vec![LayerType::Full; num_hidden_layers]
        };
        let (attn_cap, final_cap, qpas) = if gemma2 {
            (
                obj.opt_f64_or("attn_logit_softcapping", Some(50.0))?,
                obj.opt_f64_or("final_logit_softcapping", Some(30.0))?,
                Some(obj.f64("query_pre_attn_scalar", 256.0)?),
            )
        } else {
            (None, obj.opt_f64_or("final_logit_softcapping", None)?, None)
        };
        let rope_theta = obj.rope_theta()?;
        let cfg = TextConfig {
            model_type,
            vocab_size: obj.dim_pos("vocab_size", v, MAX_VOCAB)?,
            hidden_size: obj.dim_pos("hidden_size", h, MAX_WIDTH)?,
            intermediate_size: obj.dim_pos("intermediate_size", i, MAX_INTERMEDIATE)?,
            num_hidden_layers,
            num_attention_heads: obj.dim("num_attention_heads", nh, MAX_HEADS)?,
            num_key_value_heads: obj.dim("num_key_value_heads", kv, MAX_HEADS)?,
            head_dim: obj.dim_pos("head_dim", 256, MAX_WIDTH)?,
            max_position_embeddings: obj.dim_pos("max_position_embeddings", 8192, MAX_POSITIONS)?,
            rms_norm_eps: obj.f64("rms_norm_eps", 1e-6)?,
            hidden_activation,
            rope_theta,
            attn_logit_softcapping: attn_cap,
            final_logit_softcapping: final_cap,
            query_pre_attn_scalar: qpas,
            sliding_window,
            layer_types,
            use_bidirectional_attention: obj.opt_bool("use_bidirectional_attention")?.unwrap_or(true),
            tie_word_embeddings: obj.bool("tie_word_embeddings", true)?,
            bos_token_id: obj.opt_u32_or("bos_token_id", Some(2))?,
            eos_token_ids: obj.token_ids("eos_token_id", &[1])?,
            pad_token_id: obj.opt_u32_or("pad_token_id", Some(0))?,
            dtype: obj.dtype()?,
        };
        if cfg.num_attention_heads == 0
            || cfg.num_key_value_heads == 0
            || !cfg.num_attention_heads.is_multiple_of(cfg.num_key_value_heads)
        {
            return Err(Error::Unsupported(format!(
                "{file}: text_config has {} attention heads and {} key/value heads; the first \
                 must be a non-zero multiple of the second",
                cfg.num_attention_heads, cfg.num_key_value_heads
            )));
        }
        // The q projection is heads × head_dim wide.
        product_at_most(
            file,
            "text_config: num_attention_heads x head_dim",
            cfg.num_attention_heads,
            cfg.head_dim,
            MAX_WIDTH,
        )?;
        Ok(cfg)
    }
}

/// Config-specific readers on top of the generic ones of [`crate::hf::json`].
impl Obj<'_> {
    /// `gemma_rewrite`: Gemma 1 configs say `gelu` for the tanh form and transformers
    /// rewrites it.
    pub fn activation(&self, key: &str, gemma_rewrite: bool) -> Result<Activation> {
        let s = self.string(key, Some("gelu_pytorch_tanh"))?;
        match s.as_deref() {
            Some("gelu_pytorch_tanh") | Some("gelu_new") | None => Ok(Activation::GeluTanh),
            Some("gelu") if gemma_rewrite => Ok(Activation::GeluTanh),
            Some("gelu") => Ok(Activation::GeluErf),
            Some(other) => Err(Error::Unsupported(format!(
                "{}: `{}{key}` is `{other}`; pinhole supports gelu_pytorch_tanh, gelu_new and \
                 gelu",
                self.file, self.path
            ))),
        }
    }

    /// RoPE θ: `rope_parameters.rope_theta` (transformers 5), else `rope_scaling.rope_theta`,
    /// else `rope_theta` (4.x), else 10000. Only the `default` rope type is supported.
    pub fn rope_theta(&self) -> Result<f64> {
        let params = match self.sub("rope_parameters")? {
            Some(p) => Some(p),
            None => self.sub("rope_scaling")?,
        };
        let outer = self.f64("rope_theta", 10_000.0)?;
        let Some(p) = params else {
            return Ok(outer);
        };
        let rope_type = match p.string("rope_type", None)? {
            Some(t) => Some(t),
            None => p.string("type", None)?,
        };
        if let Some(t) = rope_type.filter(|t| t != "default") {
            return Err(Error::Unsupported(format!(
                "{}: {}rope_type `{t}` is not supported; pinhole implements the `default` RoPE",
                self.file, p.path
            )));
        }
        p.f64("rope_theta", outer)
    }

    /// Gemma 2 `layer_types`, or its default: sliding on even layers (0, 2, ...), full on odd.
    pub fn layer_types(&self, n: usize) -> Result<Vec<LayerType>> {
        match self.get("layer_types") {
            None => Ok((0..n)
                .map(|i| {
                    if (i + 1) % 2 == 1 {
                        LayerType::Sliding
                    } else {
                        LayerType::Full
                    }
                })
                .collect()),
            Some(Value::Array(a)) => {
                if a.len() != n {
                    return Err(Error::Invalid(format!(
                        "{}: `{}layer_types` has {} entries for {n} layers; fix the config",
                        self.file,
                        self.path,
                        a.len()
                    )));
                }
                a.iter()
                    .map(|v| match v.as_str() {
                        Some("full_attention") => Ok(LayerType::Full),
                        Some("sliding_attention") => Ok(LayerType::Sliding),
                        _ => Err(Error::Unsupported(format!(
                            "{}: `{}layer_types` holds {v}; pinhole supports \
                             \"full_attention\" and \"sliding_attention\"",
                            self.file, self.path
                        ))),
                    })
                    .collect()
            }
            Some(v) => Err(self.err("layer_types", "a list of layer types", v)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pali(json: &str) -> PaliGemmaConfig {
        PaliGemmaConfig::parse(json.as_bytes(), "config.json").unwrap()
    }

    fn err(json: &str) -> String {
        ModelConfig::parse(json.as_bytes(), "config.json")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn missing_sub_configs_get_paligemma_defaults() {
        // Checked against transformers 5.23: PaliGemmaConfig().
        let c = pali(r#"{"model_type": "paligemma"}"#);
        assert_eq!(c.image_token_index, 256000);
        assert_eq!(c.vocab_size, 257152);
        assert_eq!((c.projection_dim, c.hidden_size), (2048, 2048));
        assert_eq!(c.num_image_tokens, 256);
        let t = &c.text;
        assert_eq!(t.model_type, TextModelType::Gemma);
        assert_eq!(
            (t.hidden_size, t.intermediate_size, t.num_hidden_layers),
            (2048, 16384, 18)
        );
        assert_eq!((t.num_attention_heads, t.num_key_value_heads, t.head_dim), (8, 1, 256));
        assert_eq!(t.vocab_size, 257152);
        assert_eq!(t.rope_theta, 10000.0);
        assert_eq!(t.final_logit_softcapping, None);
        assert_eq!(t.sliding_window, None);
        assert!(t.use_bidirectional_attention);
        assert_eq!(t.layer_types, vec![LayerType::Full; 18]);
        assert_eq!(
            (t.bos_token_id, t.eos_token_ids.clone(), t.pad_token_id),
            (Some(2), vec![1], Some(0))
        );
        assert_eq!(t.attn_scale(), 1.0 / 16.0);
        let v = &c.vision;
        assert_eq!(
            (v.hidden_size, v.intermediate_size, v.num_hidden_layers),
            (1152, 4096, 27)
        );
        assert_eq!((v.num_attention_heads, v.patch_size, v.image_size), (16, 14, 224));
        assert!(!v.vision_use_head);
        assert_eq!(v.projection_dim, 2048);
    }

    #[test]
    fn present_sub_configs_get_class_defaults() {
        // transformers 5.23: PaliGemmaConfig(text_config={"model_type": "gemma2"},
        // vision_config={}) gives Gemma2Config / SiglipVisionConfig class defaults.
        let c = pali(
            r#"{"model_type": "paligemma", "text_config": {"model_type": "gemma2"},
                "vision_config": {}}"#,
        );
        let t = &c.text;
        assert_eq!(t.model_type, TextModelType::Gemma2);
        assert_eq!(
            (t.hidden_size, t.intermediate_size, t.num_hidden_layers),
            (2304, 9216, 26)
        );
        assert_eq!((t.num_attention_heads, t.num_key_value_heads), (8, 4));
        assert_eq!(t.vocab_size, 256000);
        assert_eq!(t.attn_logit_softcapping, Some(50.0));
        assert_eq!(t.final_logit_softcapping, Some(30.0));
        assert_eq!(t.query_pre_attn_scalar, Some(256.0));
        assert_eq!(t.sliding_window, Some(4096));
        assert_eq!(t.layer_types.len(), 26);
        assert_eq!(t.layer_types[0], LayerType::Sliding);
        assert_eq!(t.layer_types[1], LayerType::Full);
        let v = &c.vision;
        assert_eq!(
            (v.hidden_size, v.intermediate_size, v.num_hidden_layers),
            (768, 3072, 12)
        );
        assert_eq!((v.patch_size, v.image_size), (16, 224));
        assert_eq!(c.num_image_tokens, 196);
        // An empty text_config is Gemma with GemmaConfig's class defaults.
        let c = pali(r#"{"model_type": "paligemma", "text_config": {}}"#);
        assert_eq!(
            (c.text.model_type, c.text.hidden_size, c.text.num_key_value_heads),
            (TextModelType::Gemma, 3072, 16)
        );
    }

    /// A PaliGemma-3B-style file as transformers 4.x wrote it.
    const OLD_STYLE: &str = r#"{
      "_name_or_path": "google/paligemma-3b-pt-224",
      "architectures": ["PaliGemmaForConditionalGeneration"],
      "bos_token_id": 2, "eos_token_id": 1, "pad_token_id": 0,
      "hidden_size": 2048, "ignore_index": -100, "image_token_index": 257152,
      "model_type": "paligemma", "projection_dim": 2048,
      "text_config": {
        "hidden_size": 2048, "intermediate_size": 16384, "model_type": "gemma",
        "num_attention_heads": 8, "num_hidden_layers": 18, "num_image_tokens": 256,
        "num_key_value_heads": 1, "torch_dtype": "float32", "vocab_size": 257216,
        "hidden_act": "gelu", "rope_theta": 10000.0
      },
      "torch_dtype": "float32", "transformers_version": "4.41.0.dev0",
      "vision_config": {
        "hidden_size": 1152, "intermediate_size": 4304, "model_type": "siglip_vision_model",
        "num_attention_heads": 16, "num_hidden_layers": 27, "num_image_tokens": 256,
        "patch_size": 14, "projection_dim": 2048
      },
      "vocab_size": 257216
    }"#;

    #[test]
    fn old_style_paligemma() {
        let c = pali(OLD_STYLE);
        assert_eq!(c.image_token_index, 257152);
        assert_eq!(c.vocab_size, 257216);
        assert_eq!(c.dtype, Some(DType::F32));
        assert_eq!(c.eos_token_ids, vec![1]);
        assert_eq!(c.text.vocab_size, 257216);
        assert_eq!(
            c.text.hidden_activation,
            Activation::GeluTanh,
            "gemma `gelu` means tanh"
        );
        assert_eq!(c.text.max_position_embeddings, 8192);
        assert_eq!(c.vision.intermediate_size, 4304);
        assert_eq!(c.vision.image_size, 224);
        assert_eq!(c.num_image_tokens, 256);
    }

    /// A PaliGemma-2-style file as transformers 5 writes it (`dtype`, `rope_parameters`,
    /// `layer_types`, `image_token_id`).
    const NEW_STYLE: &str = r#"{
      "model_type": "paligemma", "dtype": "bfloat16", "image_token_id": 257152,
      "projection_dim": 2304, "hidden_size": 2048, "vocab_size": 257216,
      "text_config": {
        "model_type": "gemma2", "hidden_size": 2304, "intermediate_size": 9216,
        "num_attention_heads": 8, "num_hidden_layers": 4, "num_key_value_heads": 4,
        "head_dim": 256, "vocab_size": 257216, "hidden_activation": "gelu_pytorch_tanh",
        "query_pre_attn_scalar": 256, "sliding_window": 4096,
        "final_logit_softcapping": null, "attn_logit_softcapping": 50.0,
        "rope_parameters": {"rope_theta": 20000.0, "rope_type": "default"},
        "layer_types": ["full_attention", "sliding_attention", "sliding_attention", "full_attention"],
        "use_bidirectional_attention": false, "eos_token_id": [1, 107], "dtype": "bfloat16"
      },
      "vision_config": {
        "model_type": "siglip_vision_model", "hidden_size": 1152, "intermediate_size": 4304,
        "num_attention_heads": 16, "num_hidden_layers": 27, "patch_size": 14,
        "image_size": [448, 448], "layer_norm_eps": 1e-5, "hidden_act": "gelu_pytorch_tanh"
      }
    }"#;

    #[test]
    fn new_style_paligemma2() {
        let c = pali(NEW_STYLE);
        assert_eq!(c.image_token_index, 257152);
        assert_eq!(c.dtype, Some(DType::BF16));
        let t = &c.text;
        assert_eq!(t.rope_theta, 20000.0);
        assert_eq!(t.final_logit_softcapping, None, "explicit null disables");
        assert_eq!(t.attn_logit_softcapping, Some(50.0));
        assert_eq!(
            t.layer_types,
            vec![LayerType::Full, LayerType::Sliding, LayerType::Sliding, LayerType::Full]
        );
        assert!(!t.use_bidirectional_attention);
        assert_eq!(t.eos_token_ids, vec![1, 107]);
        assert_eq!(t.dtype, Some(DType::BF16));
        assert_eq!(t.attn_scale(), 1.0 / 16.0);
        assert_eq!(c.vision.image_size, 448);
        assert_eq!(c.vision.layer_norm_eps, 1e-5);
        assert_eq!(c.num_image_tokens, 1024);
    }

    #[test]
    fn rope_theta_sources() {
        let theta = |text: &str| {
            pali(&format!(r#"{{"model_type":"paligemma","text_config":{text}}}"#))
                .text
                .rope_theta
        };
        assert_eq!(theta("{}"), 10000.0);
        assert_eq!(theta(r#"{"rope_theta": 5000}"#), 5000.0);
        // rope_parameters wins over rope_theta; a rope_parameters without θ takes rope_theta.
        assert_eq!(
            theta(r#"{"rope_theta": 5000, "rope_parameters": {"rope_theta": 7.0}}"#),
            7.0
        );
        assert_eq!(
            theta(r#"{"rope_theta": 5000, "rope_parameters": {"rope_type": "default"}}"#),
            5000.0
        );
        assert_eq!(
            theta(r#"{"rope_scaling": {"type": "default", "rope_theta": 3.0}}"#),
            3.0
        );
        let e = err(r#"{"model_type":"paligemma","text_config":{"rope_parameters":{"rope_type":"yarn"}}}"#);
        assert!(e.contains("yarn") && e.contains("config.json"), "{e}");
    }

    #[test]
    fn bad_configs_name_file_and_key() {
        let e = err(r#"{"model_type": "llava"}"#);
        assert!(
            e.starts_with("unsupported") && e.contains("llava") && e.contains("config.json"),
            "{e}"
        );
        assert!(err(r#"{"hidden_size": 3}"#).contains("no `model_type`"));
        assert!(err("[1]").contains("JSON object"));
        assert!(err("{").contains("not valid JSON"));
        let e = err(r#"{"model_type":"paligemma","text_config":{"hidden_size":"big"}}"#);
        assert!(e.contains("`text_config.hidden_size`") && e.contains("\"big\""), "{e}");
        let e = err(r#"{"model_type":"paligemma","text_config":{"model_type":"llama"}}"#);
        assert!(e.contains("llama"), "{e}");
        let e = err(r#"{"model_type":"paligemma","vision_config":{"hidden_act":"relu"}}"#);
        assert!(e.contains("vision_config.hidden_act") && e.contains("relu"), "{e}");
        let e = err(
            r#"{"model_type":"paligemma","text_config":{"model_type":"gemma2","num_hidden_layers":3,"layer_types":["full_attention"]}}"#,
        );
        assert!(e.contains("layer_types"), "{e}");
        let e = err(r#"{"model_type":"paligemma","image_token_index":5,"image_token_id":6}"#);
        assert!(e.contains("disagree"), "{e}");
        let e = err(r#"{"model_type":"paligemma","torch_dtype":"float64"}"#);
        assert!(e.contains("float64"), "{e}");
        let e = err(r#"{"model_type":"paligemma","text_config":{"num_attention_heads":8,"num_key_value_heads":3}}"#);
        assert!(e.contains("key/value heads"), "{e}");
        let e = err(r#"{"model_type":"paligemma","vision_config":{"image_size":[224,448]}}"#);
        assert!(e.contains("square"), "{e}");
    }
}
