//! `config.json` of a BLIP-2 model whose language model is Phi (`model_type: "blip-2"`,
//! `text_config.model_type: "phi"`): the TinyGPT-V / BLIP-2 family. Parsed with the defaults of
//! transformers' `Blip2Config`, `Blip2VisionConfig`, `Blip2QFormerConfig` and `PhiConfig`.
//!
//! As in transformers, `qformer_config.encoder_hidden_size` is always the vision width (a stored
//! value is overwritten by `Blip2Config.__init__`).
//!
//! TinyGPT-V differs from a stock BLIP-2 + Phi in a few places that transformers has no key for.
//! pinhole reads them from extra keys prefixed `pinhole_` (transformers ignores unknown keys, so
//! such a config still loads there, only without the extra pieces):
//!
//! * `pinhole_projection_hidden` (top level): the projection is a chain of two linear layers,
//!   `language_projection` (Q-Former width → this width, MiniGPT-4's `llama_proj`) and then
//!   `language_projection_2` (→ the text width, TinyGPT-V's `llama_proj2`);
//! * `vision_config.pinhole_post_layernorm_eps`: eps of the final vision LayerNorm (LAVIS'
//!   `ln_vision` uses PyTorch's default 1e-5, the ViT blocks 1e-6);
//! * `text_config.pinhole_post_attention_rmsnorm_eps`: TinyGPT-V's Phi applies an RMSNorm
//!   (`layers.N.post_layernorm`, LLaMA-style, this eps) to the attention output before it is
//!   added to the residual.

use crate::error::{Error, Result};
use crate::hf::config::ConfigLayout;
#[cfg(not(target_arch = "wasm32"))]
use crate::hf::json::read_file;
use crate::hf::json::Obj;
use crate::hf::limits::{
    at_most, MAX_CHANNELS, MAX_HEADS, MAX_IMAGE_SIDE, MAX_IMAGE_TOKENS, MAX_INTERMEDIATE, MAX_LAYERS, MAX_POSITIONS,
    MAX_VOCAB, MAX_WIDTH,
};
use crate::hf::Activation;
use crate::tensor::DType;

/// `vision_config` of a BLIP-2 model (EVA-style ViT with a class token).
#[derive(Clone, Debug, PartialEq)]
pub struct Blip2VisionConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_channels: usize,
    pub image_size: usize,
    pub patch_size: usize,
    pub layer_norm_eps: f64,
    pub hidden_act: Activation,
    /// q and v biases on the fused qkv projection (k has none).
    pub qkv_bias: bool,
    /// eps of `post_layernorm` (= `layer_norm_eps` unless `pinhole_post_layernorm_eps`).
    pub post_layernorm_eps: f64,
}

impl Blip2VisionConfig {
    /// `(image_size / patch_size)²` (at most
    /// [`MAX_IMAGE_TOKENS`](crate::hf::limits::MAX_IMAGE_TOKENS) for a parsed config).
    pub fn num_patches(&self) -> usize {
        let side = self.image_size / self.patch_size.max(1);
        side.saturating_mul(side)
    }

    /// Patches plus the class token.
    pub fn seq_len(&self) -> usize {
        self.num_patches().saturating_add(1)
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }
}

/// `qformer_config` of a BLIP-2 model (a BERT encoder over the query tokens).
#[derive(Clone, Debug, PartialEq)]
pub struct QFormerConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: Activation,
    pub layer_norm_eps: f64,
    /// Layer `l` cross-attends to the image features iff `l % cross_attention_frequency == 0`.
    pub cross_attention_frequency: usize,
    /// Width of the image features (always the vision width).
    pub encoder_hidden_size: usize,
}

impl QFormerConfig {
    pub fn has_cross_attention(&self, layer: usize) -> bool {
        layer.is_multiple_of(self.cross_attention_frequency)
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads.max(1)
    }
}

/// `text_config` of model_type `phi` (Phi-1/1.5/2).
#[derive(Clone, Debug, PartialEq)]
pub struct PhiConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    pub head_dim: usize,
    pub max_position_embeddings: usize,
    pub layer_norm_eps: f64,
    pub hidden_act: Activation,
    pub rope_theta: f64,
    pub partial_rotary_factor: f64,
    /// LayerNorm over each head of q and k (over `head_dim`), before RoPE.
    pub qk_layernorm: bool,
    pub tie_word_embeddings: bool,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    pub pad_token_id: Option<u32>,
    /// TinyGPT-V: RMSNorm (this eps) on the attention output (`pinhole_` key).
    pub post_attention_rmsnorm_eps: Option<f64>,
    pub dtype: Option<DType>,
}

impl PhiConfig {
    /// Dimensions of each head that RoPE rotates: `int(head_dim * partial_rotary_factor)`, as
    /// transformers computes it.
    pub fn rotary_dim(&self) -> usize {
        (self.head_dim as f64 * self.partial_rotary_factor) as usize
    }
}

/// `config.json` of a BLIP-2 model with a Phi language model.
#[derive(Clone, Debug, PartialEq)]
pub struct Blip2PhiConfig {
    pub num_query_tokens: usize,
    /// `image_token_index` / `image_token_id`. When set, the processor puts
    /// `num_query_tokens` of these ids in the prompt and the projected queries replace them;
    /// when `None` (older checkpoints), the queries go before the text.
    pub image_token_index: Option<u32>,
    /// `pinhole_projection_hidden`: width between the two projection layers (TinyGPT-V).
    pub projection_hidden: Option<usize>,
    pub dtype: Option<DType>,
    pub eos_token_ids: Vec<u32>,
    pub vision: Blip2VisionConfig,
    pub qformer: QFormerConfig,
    pub text: PhiConfig,
}

fn activation(obj: &Obj, key: &str, default: &str) -> Result<Activation> {
    match obj.string(key, Some(default))?.as_deref() {
        Some("gelu_new") | Some("gelu_pytorch_tanh") => Ok(Activation::GeluTanh),
        Some("gelu") => Ok(Activation::GeluErf),
        Some(other) => Err(Error::Unsupported(format!(
            "{}: `{}{key}` is `{other}`; pinhole supports gelu, gelu_new and gelu_pytorch_tanh",
            obj.file, obj.path
        ))),
        None => Err(Error::Invalid(format!("{}: `{}{key}` is missing", obj.file, obj.path))),
    }
}

fn positive(file: &str, what: &str, v: usize) -> Result<usize> {
    if v == 0 {
        return Err(Error::Invalid(format!("{file}: `{what}` must be > 0; fix the config")));
    }
    Ok(v)
}

fn divides(file: &str, what: &str, whole: usize, parts: usize) -> Result<()> {
    if parts == 0 || !whole.is_multiple_of(parts) {
        return Err(Error::Unsupported(format!(
            "{file}: {what}: {whole} is not a multiple of {parts}"
        )));
    }
    Ok(())
}

impl ConfigLayout for Blip2PhiConfig {
    fn image_size(&self) -> usize {
        self.vision.image_size
    }

    fn from_obj(obj: &Obj) -> Result<Blip2PhiConfig> {
        let file = obj.file;
        let empty_v = Obj::empty(file, "vision_config.");
        let empty_q = Obj::empty(file, "qformer_config.");
        let v = obj.sub("vision_config")?.unwrap_or(empty_v);
        let q = obj.sub("qformer_config")?.unwrap_or(empty_q);
        let Some(t) = obj.sub("text_config")? else {
            return Err(Error::Unsupported(format!(
                "{file}: a blip-2 config without `text_config` means an OPT language model; \
                 pinhole runs BLIP-2 with a Phi language model (`text_config.model_type: \"phi\"`)"
            )));
        };
        match t.string("model_type", None)?.as_deref() {
            Some("phi") => {}
            other => {
                return Err(Error::Unsupported(format!(
                    "{file}: text_config.model_type `{}` is not supported for blip-2; pinhole runs \
                     BLIP-2 with a `phi` language model",
                    other.unwrap_or("(missing)")
                )))
            }
        }

        let layer_norm_eps = v.f64("layer_norm_eps", 1e-6)?;
        let vision = Blip2VisionConfig {
            hidden_size: v.dim_pos("hidden_size", 1408, MAX_WIDTH)?,
            intermediate_size: v.dim_pos("intermediate_size", 6144, MAX_INTERMEDIATE)?,
            num_hidden_layers: v.dim("num_hidden_layers", 39, MAX_LAYERS)?,
            num_attention_heads: v.dim("num_attention_heads", 16, MAX_HEADS)?,
            num_channels: v.dim_pos("num_channels", 3, MAX_CHANNELS)?,
            image_size: v.square_dim("image_size", 224, MAX_IMAGE_SIDE)?,
            patch_size: v.square_dim("patch_size", 14, MAX_IMAGE_SIDE)?,
            layer_norm_eps,
            hidden_act: activation(&v, "hidden_act", "gelu")?,
            qkv_bias: v.bool("qkv_bias", true)?,
            post_layernorm_eps: v.f64("pinhole_post_layernorm_eps", layer_norm_eps)?,
        };
        divides(
            file,
            "vision_config.image_size / patch_size",
            vision.image_size,
            vision.patch_size,
        )?;
        // The class token makes it one more row.
        at_most(
            file,
            "vision_config: (image_size / patch_size)² + 1 image rows",
            vision.seq_len(),
            MAX_IMAGE_TOKENS,
        )?;
        divides(
            file,
            "vision_config.hidden_size / num_attention_heads",
            vision.hidden_size,
            vision.num_attention_heads,
        )?;

        let qformer = QFormerConfig {
            hidden_size: q.dim_pos("hidden_size", 768, MAX_WIDTH)?,
            num_hidden_layers: q.dim("num_hidden_layers", 12, MAX_LAYERS)?,
            num_attention_heads: q.dim("num_attention_heads", 12, MAX_HEADS)?,
            intermediate_size: q.dim_pos("intermediate_size", 3072, MAX_INTERMEDIATE)?,
            hidden_act: activation(&q, "hidden_act", "gelu")?,
            layer_norm_eps: q.f64("layer_norm_eps", 1e-12)?,
            cross_attention_frequency: positive(
                file,
                "qformer_config.cross_attention_frequency",
                q.usize("cross_attention_frequency", 2)?,
            )?,
            encoder_hidden_size: vision.hidden_size,
        };
        divides(
            file,
            "qformer_config.hidden_size / num_attention_heads",
            qformer.hidden_size,
            qformer.num_attention_heads,
        )?;
        if let Some(pe) = q.string("position_embedding_type", None)? {
            if pe != "absolute" {
                return Err(Error::Unsupported(format!(
                    "{file}: qformer_config.position_embedding_type `{pe}` is not supported (the \
                     query-only Q-Former uses no positions; only `absolute` is accepted)"
                )));
            }
        }

        let text = PhiConfig::from_obj(&t)?;

        let idx = obj.opt_u32("image_token_index")?;
        let id = obj.opt_u32("image_token_id")?;
        let image_token_index = match (idx, id) {
            (Some(a), Some(b)) if a != b => {
                return Err(Error::Invalid(format!(
                    "{file}: `image_token_index` ({a}) and `image_token_id` ({b}) disagree; fix the config"
                )))
            }
            (a, b) => a.or(b),
        };
        if let Some(i) = image_token_index {
            if i as usize >= text.vocab_size {
                return Err(Error::Invalid(format!(
                    "{file}: image_token_index {i} is outside text_config.vocab_size {}; fix the config",
                    text.vocab_size
                )));
            }
        }
        Ok(Blip2PhiConfig {
            num_query_tokens: obj.dim_pos("num_query_tokens", 32, MAX_IMAGE_TOKENS)?,
            image_token_index,
            projection_hidden: match obj.opt_dim_or("pinhole_projection_hidden", None, MAX_WIDTH)? {
                Some(w) => Some(obj.nonzero("pinhole_projection_hidden", w)?),
                None => None,
            },
            dtype: obj.dtype()?,
            eos_token_ids: obj.token_ids("eos_token_id", &[])?,
            vision,
            qformer,
            text,
        })
    }
}

impl Blip2PhiConfig {
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<Blip2PhiConfig> {
        let (bytes, shown) = read_file(path.as_ref())?;
        match crate::hf::ModelConfig::parse(&bytes, &shown)? {
            crate::hf::ModelConfig::Blip2Phi(c) => Ok(c),
            _ => Err(Error::Unsupported(format!("{shown} is not a blip-2 config"))),
        }
    }
}

impl PhiConfig {
    fn from_obj(t: &Obj) -> Result<PhiConfig> {
        let file = t.file;
        let hidden_size = t.dim_pos("hidden_size", 2048, MAX_WIDTH)?;
        let num_attention_heads = t.dim_pos("num_attention_heads", 32, MAX_HEADS)?;
        divides(
            file,
            "text_config.hidden_size / num_attention_heads",
            hidden_size,
            num_attention_heads,
        )?;
        let num_key_value_heads = t
            .opt_dim_or("num_key_value_heads", None, MAX_HEADS)?
            .unwrap_or(num_attention_heads);
        divides(
            file,
            "text_config.num_attention_heads / num_key_value_heads",
            num_attention_heads,
            num_key_value_heads,
        )?;
        // transformers 5 keeps θ and the partial factor in `rope_parameters`; 4.x at the top.
        let rope_theta = t.rope_theta()?;
        let params = t.sub("rope_parameters")?;
        let top_factor = t.f64("partial_rotary_factor", 0.5)?;
        let partial_rotary_factor = match &params {
            Some(p) => p.f64("partial_rotary_factor", top_factor)?,
            None => top_factor,
        };
        if !(partial_rotary_factor > 0.0 && partial_rotary_factor <= 1.0) {
            return Err(Error::Invalid(format!(
                "{file}: text_config partial_rotary_factor {partial_rotary_factor} must be in (0, 1]"
            )));
        }
        let cfg = PhiConfig {
            vocab_size: t.dim_pos("vocab_size", 51200, MAX_VOCAB)?,
            hidden_size,
            intermediate_size: t.dim_pos("intermediate_size", 8192, MAX_INTERMEDIATE)?,
            num_hidden_layers: t.dim("num_hidden_layers", 24, MAX_LAYERS)?,
            num_attention_heads,
            num_key_value_heads,
            head_dim: hidden_size / num_attention_heads,
            max_position_embeddings: t.dim_pos("max_position_embeddings", 2048, MAX_POSITIONS)?,
            layer_norm_eps: t.f64("layer_norm_eps", 1e-5)?,
            hidden_act: activation(t, "hidden_act", "gelu_new")?,
            rope_theta,
            partial_rotary_factor,
            qk_layernorm: t.bool("qk_layernorm", false)?,
            tie_word_embeddings: t.bool("tie_word_embeddings", false)?,
            bos_token_id: t.opt_u32_or("bos_token_id", Some(1))?,
            eos_token_ids: t.token_ids("eos_token_id", &[2])?,
            pad_token_id: t.opt_u32("pad_token_id")?,
            post_attention_rmsnorm_eps: t.opt_f64_or("pinhole_post_attention_rmsnorm_eps", None)?,
            dtype: t.dtype()?,
        };
        let rd = cfg.rotary_dim();
        if rd == 0 || !rd.is_multiple_of(2) {
            return Err(Error::Unsupported(format!(
                "{file}: text_config gives a rotary dimension of {rd} (head_dim {} x \
                 partial_rotary_factor {}); it must be even and > 0",
                cfg.head_dim, cfg.partial_rotary_factor
            )));
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hf::ModelConfig;

    fn parse(json: &str) -> Result<Blip2PhiConfig> {
        match ModelConfig::parse(json.as_bytes(), "config.json")? {
            ModelConfig::Blip2Phi(c) => Ok(c),
            other => panic!("not blip-2: {other:?}"),
        }
    }

    #[test]
    fn class_defaults() {
        // transformers 5.x: Blip2Config(text_config={"model_type": "phi"}).
        let c = parse(r#"{"model_type": "blip-2", "text_config": {"model_type": "phi"}}"#).unwrap();
        assert_eq!(c.num_query_tokens, 32);
        assert_eq!(c.image_token_index, None);
        assert_eq!(c.projection_hidden, None);
        let v = &c.vision;
        assert_eq!(
            (v.hidden_size, v.intermediate_size, v.num_hidden_layers),
            (1408, 6144, 39)
        );
        assert_eq!((v.num_attention_heads, v.image_size, v.patch_size), (16, 224, 14));
        assert_eq!((v.layer_norm_eps, v.post_layernorm_eps), (1e-6, 1e-6));
        assert_eq!(v.hidden_act, Activation::GeluErf);
        assert!(v.qkv_bias);
        assert_eq!(v.seq_len(), 257);
        let q = &c.qformer;
        assert_eq!(
            (q.hidden_size, q.num_hidden_layers, q.num_attention_heads),
            (768, 12, 12)
        );
        assert_eq!((q.intermediate_size, q.layer_norm_eps), (3072, 1e-12));
        assert_eq!(q.cross_attention_frequency, 2);
        assert_eq!(q.encoder_hidden_size, 1408);
        assert!(q.has_cross_attention(0) && !q.has_cross_attention(1));
        let t = &c.text;
        assert_eq!((t.vocab_size, t.hidden_size, t.intermediate_size), (51200, 2048, 8192));
        assert_eq!(
            (t.num_hidden_layers, t.num_attention_heads, t.num_key_value_heads),
            (24, 32, 32)
        );
        assert_eq!((t.head_dim, t.rotary_dim()), (64, 32));
        assert_eq!(
            (t.layer_norm_eps, t.rope_theta, t.partial_rotary_factor),
            (1e-5, 10000.0, 0.5)
        );
        assert_eq!(t.hidden_act, Activation::GeluTanh);
        assert!(!t.qk_layernorm && !t.tie_word_embeddings);
        assert_eq!((t.bos_token_id, t.eos_token_ids.clone()), (Some(1), vec![2]));
        assert_eq!(t.post_attention_rmsnorm_eps, None);
    }

    #[test]
    fn tinygpt_v_keys_and_encoder_width() {
        let c = parse(
            r#"{"model_type": "blip-2", "num_query_tokens": 4, "image_token_id": 7,
                "pinhole_projection_hidden": 40,
                "vision_config": {"hidden_size": 24, "num_attention_heads": 2, "image_size": 32,
                                  "patch_size": 8, "pinhole_post_layernorm_eps": 1e-5},
                "qformer_config": {"hidden_size": 16, "num_attention_heads": 2,
                                   "encoder_hidden_size": 999, "cross_attention_frequency": 1},
                "text_config": {"model_type": "phi", "hidden_size": 32, "num_attention_heads": 2,
                                "vocab_size": 100, "qk_layernorm": true,
                                "rope_parameters": {"rope_theta": 500.0, "partial_rotary_factor": 0.25,
                                                    "rope_type": "default"},
                                "pinhole_post_attention_rmsnorm_eps": 1e-6}}"#,
        )
        .unwrap();
        assert_eq!(c.image_token_index, Some(7));
        assert_eq!(c.projection_hidden, Some(40));
        assert_eq!(c.vision.post_layernorm_eps, 1e-5);
        assert_eq!(c.vision.layer_norm_eps, 1e-6);
        assert_eq!(c.qformer.encoder_hidden_size, 24, "always the vision width");
        assert_eq!(c.text.rope_theta, 500.0);
        assert_eq!(c.text.rotary_dim(), 4);
        assert!(c.text.qk_layernorm);
        assert_eq!(c.text.post_attention_rmsnorm_eps, Some(1e-6));
    }

    #[test]
    fn bad_configs_are_clear() {
        let e = |j: &str| parse(j).unwrap_err().to_string();
        assert!(e(r#"{"model_type": "blip-2"}"#).contains("OPT"));
        let m = e(r#"{"model_type": "blip-2", "text_config": {"model_type": "opt"}}"#);
        assert!(m.contains("`opt`") && m.contains("config.json"), "{m}");
        let m = e(r#"{"model_type": "blip-2", "text_config": {"model_type": "phi", "hidden_act": "relu"}}"#);
        assert!(m.contains("text_config.hidden_act") && m.contains("relu"), "{m}");
        let m = e(r#"{"model_type": "blip-2", "image_token_index": 60000, "text_config": {"model_type": "phi"}}"#);
        assert!(m.contains("vocab_size"), "{m}");
        let m = e(
            r#"{"model_type": "blip-2", "text_config": {"model_type": "phi", "hidden_size": 30, "num_attention_heads": 4}}"#,
        );
        assert!(m.contains("hidden_size / num_attention_heads"), "{m}");
        let m =
            e(r#"{"model_type": "blip-2", "vision_config": {"image_size": 30}, "text_config": {"model_type": "phi"}}"#);
        assert!(m.contains("image_size"), "{m}");
    }
}
