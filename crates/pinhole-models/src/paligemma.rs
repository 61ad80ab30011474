//! PaliGemma and PaliGemma 2: SigLIP vision tower → linear projector → Gemma / Gemma 2 decoder.
//!
//! Mirrors transformers' `PaliGemmaForConditionalGeneration` (modeling_paligemma.py),
//! `SiglipVisionTransformer` (modeling_siglip.py) and `GemmaModel` / `Gemma2Model`. The facts
//! that decide token-for-token equality, each checked against the fixtures in tests/fixtures:
//! * image features are `projector(vision(x)) / sqrt(hidden)` and are then scaled with the text
//!   embeddings by `sqrt(hidden)` (the Gemma embedding normaliser) — so they are *not* scaled
//!   overall, while text embeddings are;
//! * position ids are 1-based (`cache_position + 1`);
//! * the image + prompt block (token_type_ids = 0) attends bidirectionally, generated tokens
//!   causally; Gemma 2's sliding window never cuts that block but applies afterwards;
//! * RMSNorm is `x · rsqrt(mean(x²) + eps) · (1 + w)`; the MLP is `down(gelu_tanh(gate) · up)`;
//! * the LM head is the embedding table (tied); Gemma 2 soft-caps attention scores and the
//!   final logits with `cap · tanh(x / cap)`.

//!
//! Canonical weight names: `vision.*`, `proj.*`, `text.*` (see [`PaliGemma::canonical_name`]
//! for the checkpoint layouts they come from).

use pinhole_core::graph::{Graph, TensorId};
use pinhole_core::hf::{GenerationConfig, ImageProcessorConfig, LayerType, PaliGemmaConfig, TextModelType};
use pinhole_core::Result;

use crate::arch::{encode, eos_ids, rename_prefix, tok_err, Architecture, Basics, Family, ImageInput, WeightPrecision};
use crate::layers::{act, siglip_tower, CachedAttention, Linear, RmsDecoder, Scope, StepRows};

pub struct PaliGemma {
    pub cfg: PaliGemmaConfig,
    pub processor: ImageProcessorConfig,
    pub basics: Basics,
}

impl Family for PaliGemma {
    type Config = PaliGemmaConfig;
    type Processor = ImageProcessorConfig;

    fn new(
        cfg: PaliGemmaConfig,
        processor: ImageProcessorConfig,
        generation: GenerationConfig,
        precision: WeightPrecision,
    ) -> Result<Self> {
        let basics = Basics {
            family: "paligemma",
            matrix_dtype: precision.matrix_dtype(cfg.dtype),
            vocab_size: cfg.text.vocab_size,
            max_positions: cfg.text.max_position_embeddings,
            hidden_size: cfg.text.hidden_size,
            image_token: Some(cfg.image_token_index),
            pixel_shape: [cfg.vision.num_channels, cfg.vision.image_size, cfg.vision.image_size],
            eos_ids: eos_ids(&generation, &cfg.eos_token_ids, &cfg.text.eos_token_ids),
        };
        Ok(PaliGemma { cfg, processor, basics })
    }
}

impl PaliGemma {
    pub fn num_image_tokens(&self) -> usize {
        self.cfg.vision.num_patches()
    }

    /// Maps a checkpoint tensor name to the canonical name, or `None` for tensors pinhole does
    /// not use (e.g. a vision head PaliGemma never runs).
    pub fn canonical_name(name: &str) -> Option<String> {
        const MAP: &[(&str, &str)] = &[
            ("model.vision_tower.vision_model.", "vision."),
            ("vision_tower.vision_model.", "vision."),
            ("model.vision_tower.", "vision."),
            ("vision_tower.", "vision."),
            ("model.multi_modal_projector.", "proj."),
            ("multi_modal_projector.", "proj."),
            ("model.language_model.model.", "text."),
            ("model.language_model.", "text."),
            ("language_model.model.", "text."),
            ("language_model.lm_head.", "lm_head."),
            ("lm_head.", "lm_head."),
            ("language_model.", "text."),
        ];
        rename_prefix(name, MAP)
    }

    /// A checkpoint name that would provide the canonical weight (for error messages).
    pub fn example_source(canonical: &str) -> String {
        const MAP: &[(&str, &str)] = &[
            ("vision.", "vision_tower.vision_model."),
            ("text.", "language_model.model."),
            ("proj.", "multi_modal_projector."),
        ];
        rename_prefix(canonical, MAP).unwrap_or_else(|| canonical.to_string())
    }

    /// SigLIP vision tower: `pixels [3, H, W]` → `[num_patches, vision_hidden]`.
    pub fn vision_tower(&self, g: &mut Graph, pixels: TensorId) -> Result<TensorId> {
        siglip_tower(g, &Scope::root("vision"), &self.cfg.vision, pixels)
    }

    /// `multi_modal_projector`: `[np, vision_hidden]` → `[np, projection_dim]`.
    pub fn projector(&self, g: &mut Graph, x: TensorId) -> Result<TensorId> {
        let proj = Linear::new(self.cfg.projection_dim, self.cfg.vision.hidden_size);
        proj.forward(g, &Scope::root("proj").pp("linear"), x)
    }

    /// The Gemma / Gemma 2 decoder as the shared Llama-family decoder.
    fn decoder(&self) -> RmsDecoder {
        let t = &self.cfg.text;
        let windows = t
            .layer_types
            .iter()
            .map(|lt| match lt {
                LayerType::Sliding => t.sliding_window.unwrap_or(0),
                LayerType::Full => 0,
            })
            .collect();
        RmsDecoder {
            hidden: t.hidden_size,
            intermediate: t.intermediate_size,
            layers: t.num_hidden_layers,
            attn: CachedAttention {
                heads: t.num_attention_heads,
                kv_heads: t.num_key_value_heads,
                head_dim: t.head_dim,
                scale: t.attn_scale() as f32,
                softcap: t.attn_logit_softcapping.unwrap_or(0.0) as f32,
            },
            rms_eps: t.rms_norm_eps,
            rms_add_one: true,
            act: act(t.hidden_activation),
            sandwich_norms: t.model_type == TextModelType::Gemma2,
            rope_theta: t.rope_theta,
            // PaliGemma positions are 1-indexed.
            position_offset: 1,
            windows,
        }
    }
}

impl Architecture for PaliGemma {
    fn basics(&self) -> &Basics {
        &self.basics
    }

    fn default_prompt(&self) -> &'static str {
        "caption en"
    }

    /// `<image>` × num_image_tokens, `<bos>`, the prompt text and a newline (all of it the
    /// bidirectional prefix).
    fn prompt_ids(
        &self,
        tok: &tokenizers::Tokenizer,
        prompt: &str,
        _image: Option<&ImageInput>,
    ) -> crate::error::Result<Vec<u32>> {
        let cfg = &self.cfg;
        let bos = cfg
            .bos_token_id
            .or(cfg.text.bos_token_id)
            .or_else(|| tok.token_to_id("<bos>"))
            .ok_or_else(|| tok_err("no <bos> token and no bos_token_id in config.json".into()))?;
        let text = format!("{prompt}\n");
        let enc = encode(tok, &text, false)?;
        let mut ids = vec![cfg.image_token_index; self.num_image_tokens()];
        ids.push(bos);
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    fn num_image_tokens(&self) -> usize {
        PaliGemma::num_image_tokens(self)
    }

    fn processor(&self) -> &ImageProcessorConfig {
        &self.processor
    }

    /// Pixels → vision tower → projector → / sqrt(hidden) (the Gemma normaliser scales them
    /// back in the prefill).
    fn encode_image(&self, g: &mut Graph, pixels: TensorId) -> Result<(TensorId, Vec<TensorId>)> {
        let vis = self.vision_tower(g, pixels)?;
        let proj = self.projector(g, vis)?;
        let scaled = g.scale(proj, 1.0 / (self.cfg.text.hidden_size as f64).sqrt() as f32)?;
        Ok((scaled, vec![vis, proj]))
    }

    fn debug_output_names(&self) -> &'static [&'static str] {
        &["vision_out", "projector_out"]
    }

    /// The Gemma / Gemma 2 decoder. Gemma's embedding normaliser `sqrt(hidden)` scales text and
    /// (already divided) image rows alike.
    fn text_forward(&self, g: &mut Graph, x: TensorId, rows: &StepRows, prefix_len: usize) -> Result<TensorId> {
        let x = g.scale(x, (self.cfg.text.hidden_size as f64).sqrt() as f32)?;
        self.decoder().forward(g, &Scope::root("text"), x, rows, prefix_len)
    }

    /// LM head (tied embedding) and the optional final soft-cap.
    fn lm_head(&self, g: &mut Graph, x: TensorId) -> Result<TensorId> {
        let t = &self.cfg.text;
        let logits =
            Linear::no_bias(t.vocab_size, t.hidden_size).forward(g, &Scope::root("text").pp("embed_tokens"), x)?;
        match t.final_logit_softcapping {
            Some(cap) if cap > 0.0 => g.softcap(logits, cap as f32),
            _ => Ok(logits),
        }
    }

    fn canonical_name(&self, name: &str) -> Option<String> {
        PaliGemma::canonical_name(name)
    }

    fn example_source(&self, canonical: &str) -> String {
        PaliGemma::example_source(canonical)
    }
}
