//! BLIP-2 with a Phi language model (the TinyGPT-V design): ViT → Q-Former → projection(s) →
//! Phi. Mirrors transformers' `Blip2ForConditionalGeneration` (modeling_blip_2.py) with
//! `text_config.model_type == "phi"`:
//!
//! * **Vision** (`Blip2VisionModel`, an EVA-style ViT): patch conv with bias, a class token in
//!   front, learned position embeddings for `1 + patches` rows, pre-LN layers whose attention
//!   uses one fused `qkv` projection with q and v biases only (k has none) and an output
//!   `projection`, an MLP `fc2(gelu(fc1))`, and `post_layernorm` over all rows (class token
//!   included). Its output (`last_hidden_state`) is what the Q-Former reads.
//! * **Q-Former** (`Blip2QFormerModel`, BERT post-LN): the learned `query_tokens` go through
//!   `layernorm` first; each layer does self-attention over the queries (`attention`), then on
//!   layers `l % cross_attention_frequency == 0` cross-attention from the queries to the image
//!   features (`crossattention`), then the query feed-forward (`intermediate_query`,
//!   `output_query`). Every block is `LayerNorm(x + dense(block(x)))`. The text-side
//!   `intermediate` / `output` weights are never used for an image-only Q-Former and are not
//!   loaded.
//! * **Projection**: `language_projection` (BLIP-2), or with `pinhole_projection_hidden` the chain
//!   `language_projection` → `language_projection_2` (TinyGPT-V's `llama_proj` → `llama_proj2`,
//!   no activation in between).
//! * **Prompt**: the projected queries replace the `<image>` tokens (`image_token_index`), which
//!   the processor puts in front of the tokenised text; without an image token id they go
//!   before the text. Attention is causal over the whole sequence (no prefix block), positions
//!   0-based; see [`crate::layers::phi`].
//!
//! Canonical weight names: `vision.*` (`vision_model.*`), `qformer.*` (`qformer.*`, and
//! `query_tokens` as `qformer.query_tokens`), `proj.*` / `proj2.*`
//! (`language_projection(_2).*`), `text.*` / `lm_head.*` (`language_model.model.*` /
//! `language_model.lm_head.*`). The fused vision `qkv` weight and bias are split into `q`, `k`,
//! `v` on load (the older `q_bias` / `v_bias` layout is read too; its k bias is zero).

use pinhole_core::graph::{Graph, TensorId};
use pinhole_core::hf::{Blip2PhiConfig, GenerationConfig, ImageProcessorConfig};
use pinhole_core::{Result, Tensor};

pub use crate::arch::RowSlice;
use crate::arch::{encode, eos_ids, rename_prefix, Architecture, Basics, Family, ImageInput, WeightPrecision};
use crate::error::Error;
use crate::layers::{act, full_attention, layer_norm, Linear, PhiDecoder, Scope, StepRows, VitLayer, BLIP2_NAMES};

pub struct Blip2Phi {
    pub cfg: Blip2PhiConfig,
    pub processor: ImageProcessorConfig,
    pub text: PhiDecoder,
    pub basics: Basics,
}

impl Family for Blip2Phi {
    type Config = Blip2PhiConfig;
    type Processor = ImageProcessorConfig;

    fn new(
        cfg: Blip2PhiConfig,
        processor: ImageProcessorConfig,
        generation: GenerationConfig,
        precision: WeightPrecision,
    ) -> Result<Self> {
        let text = PhiDecoder { cfg: cfg.text.clone() };
        let basics = Basics {
            family: "blip-2+phi",
            matrix_dtype: precision.matrix_dtype(cfg.dtype),
            vocab_size: cfg.text.vocab_size,
            max_positions: cfg.text.max_position_embeddings,
            hidden_size: cfg.text.hidden_size,
            image_token: cfg.image_token_index,
            pixel_shape: [cfg.vision.num_channels, cfg.vision.image_size, cfg.vision.image_size],
            eos_ids: eos_ids(&generation, &cfg.eos_token_ids, &cfg.text.eos_token_ids),
        };
        Ok(Blip2Phi {
            cfg,
            processor,
            text,
            basics,
        })
    }
}

impl Blip2Phi {
    pub fn num_image_tokens(&self) -> usize {
        self.cfg.num_query_tokens
    }

    /// Maps a checkpoint tensor name to its canonical name; `None` for tensors never used.
    pub fn canonical_name(name: &str) -> Option<String> {
        if name == "query_tokens" {
            return Some("qformer.query_tokens".into());
        }
        // The older layout's separate q / v biases of the vision attention.
        for (old, new) in [
            (".self_attn.q_bias", ".self_attn.q.bias"),
            (".self_attn.v_bias", ".self_attn.v.bias"),
        ] {
            if let Some(head) = name.strip_suffix(old) {
                return Self::canonical_name(&format!("{head}{new}"));
            }
        }
        const MAP: &[(&str, &str)] = &[
            ("vision_model.", "vision."),
            ("qformer.", "qformer."),
            ("language_projection_2.", "proj2."),
            ("language_projection.", "proj."),
            ("language_model.model.", "text."),
            ("language_model.lm_head.", "lm_head."),
            ("model.language_model.", "text."),
            ("lm_head.", "lm_head."),
        ];
        rename_prefix(name, MAP)
    }

    /// The checkpoint name that provides a canonical weight (for error messages).
    pub fn example_source(canonical: &str) -> String {
        const MAP: &[(&str, &str)] = &[
            ("qformer.query_tokens", "query_tokens"),
            ("vision.", "vision_model."),
            ("qformer.", "qformer."),
            ("proj2.", "language_projection_2."),
            ("proj.", "language_projection."),
            ("text.", "language_model.model."),
            ("lm_head.", "language_model.lm_head."),
        ];
        rename_prefix(canonical, MAP).unwrap_or_else(|| canonical.to_string())
    }

    /// For the q/k/v pieces of the fused vision `qkv` weight and bias (transformers 5 stores
    /// one `qkv.bias` of `3·E`): where their rows come from. A checkpoint in the older layout
    /// (`q_bias` / `v_bias`, as BLIP-2's original code and transformers 4.x) provides
    /// `q.bias` / `v.bias` directly and has no k bias ([`Blip2Phi::zero_if_missing`]).
    pub fn row_slice(&self, canonical: &str) -> Option<RowSlice> {
        let e = self.cfg.vision.hidden_size;
        let rest = canonical.strip_prefix("vision.encoder.layers.")?;
        let (layer, piece) = rest.split_once(".self_attn.")?;
        let (part, kind) = piece.split_once('.')?;
        let first = match part {
            "q" => 0,
            "k" => e,
            "v" => 2 * e,
            _ => return None,
        };
        if kind != "weight" && kind != "bias" {
            return None;
        }
        Some(RowSlice {
            source: format!("vision.encoder.layers.{layer}.self_attn.qkv.{kind}"),
            first,
        })
    }

    /// Weights that are zeros when the checkpoint has neither them nor their fused source: the
    /// k bias of the older `q_bias` / `v_bias` layout (BLIP-2's k projection has no bias).
    pub fn zero_if_missing(canonical: &str) -> bool {
        canonical.starts_with("vision.encoder.layers.") && canonical.ends_with(".self_attn.k.bias")
    }

    /// The vision model: `pixels [3, H, W]` → `[1 + patches, vision_hidden]` (after
    /// `post_layernorm`).
    pub fn vision(&self, g: &mut Graph, pixels: TensorId) -> Result<TensorId> {
        let v = &self.cfg.vision;
        let (e, p, c, np) = (v.hidden_size, v.patch_size, v.num_channels, v.num_patches());
        let n = v.seq_len();
        let s = Scope::root("vision");
        let emb = s.pp("embeddings");
        let pw = emb.pp("patch_embedding").weight(g, "weight", &[e, c, p, p]);
        let pb = emb.pp("patch_embedding").weight(g, "bias", &[e]);
        let pos = emb.pp("position_embedding").tensor(g, &[n, e]);
        let cls = emb.pp("class_embedding").tensor(g, &[1, e]);
        // Row 0: class token + position 0; rows 1..: patches + positions 1.. .
        let pos_patches = g.rows(pos, 1, np)?;
        let patches = g.patch_embed(pixels, pw, pb, pos_patches, p)?;
        let pos0 = g.rows(pos, 0, 1)?;
        let cls_row = g.add(cls, pos0)?;
        // `pos` only provides a [1 + patches, E] buffer here: every row is overwritten.
        let patch_rows = g.constant(Tensor::u32(&[np], (1..=np as u32).collect())?);
        let x = g.scatter_rows(pos, patches, patch_rows)?;
        let row0 = g.constant(Tensor::u32(&[1], vec![0])?);
        let x = g.scatter_rows(x, cls_row, row0)?;
        let layer = VitLayer {
            hidden: e,
            intermediate: v.intermediate_size,
            heads: v.num_attention_heads,
            eps: v.layer_norm_eps,
            act: act(v.hidden_act),
            qkv_bias: v.qkv_bias,
            names: BLIP2_NAMES,
        };
        let x = layer.encoder(g, &s.pp("encoder").pp("layers"), x, n, v.num_hidden_layers)?;
        layer_norm(g, &s.pp("post_layernorm"), x, e, v.post_layernorm_eps)
    }

    /// One BERT attention block of the Q-Former (weights under `s`):
    /// `LayerNorm(x + dense(attn(x → kv_src)))`.
    fn qformer_attention(
        &self,
        g: &mut Graph,
        s: &Scope,
        x: TensorId,
        kv_src: TensorId,
        kv_rows: usize,
        kv_in: usize,
    ) -> Result<TensorId> {
        let q = &self.cfg.qformer;
        let hq = q.hidden_size;
        let att = s.pp("attention");
        let qq = Linear::new(hq, hq).forward(g, &att.pp("query"), x)?;
        let k = Linear::new(hq, kv_in).forward(g, &att.pp("key"), kv_src)?;
        let v = Linear::new(hq, kv_in).forward(g, &att.pp("value"), kv_src)?;
        let a = full_attention(g, qq, k, v, q.num_attention_heads, q.head_dim(), kv_rows)?;
        let o = Linear::new(hq, hq).forward(g, &s.pp("output").pp("dense"), a)?;
        let r = g.add(o, x)?;
        layer_norm(g, &s.pp("output").pp("LayerNorm"), r, hq, q.layer_norm_eps)
    }

    /// The Q-Former over the image features `[1 + patches, vision_hidden]` →
    /// `[num_query_tokens, qformer_hidden]`.
    pub fn qformer(&self, g: &mut Graph, image: TensorId) -> Result<TensorId> {
        let q = &self.cfg.qformer;
        let hq = q.hidden_size;
        let nq = self.cfg.num_query_tokens;
        let n_img = self.cfg.vision.seq_len();
        let s = Scope::root("qformer");
        let tokens = s.pp("query_tokens").tensor(g, &[nq, hq]);
        let mut x = layer_norm(g, &s.pp("layernorm"), tokens, hq, q.layer_norm_eps)?;
        for l in 0..q.num_hidden_layers {
            let s = s.pp("encoder").pp("layer").pp(l);
            x = self.qformer_attention(g, &s.pp("attention"), x, x, nq, hq)?;
            if q.has_cross_attention(l) {
                x = self.qformer_attention(g, &s.pp("crossattention"), x, image, n_img, q.encoder_hidden_size)?;
            }
            let h = Linear::new(q.intermediate_size, hq).forward(g, &s.pp("intermediate_query").pp("dense"), x)?;
            let h = g.act(h, act(q.hidden_act))?;
            let h = Linear::new(hq, q.intermediate_size).forward(g, &s.pp("output_query").pp("dense"), h)?;
            let r = g.add(h, x)?;
            x = layer_norm(g, &s.pp("output_query").pp("LayerNorm"), r, hq, q.layer_norm_eps)?;
        }
        Ok(x)
    }

    /// `language_projection` (and `language_projection_2`): `[queries, qformer_hidden]` →
    /// `[queries, text_hidden]`.
    pub fn projection(&self, g: &mut Graph, x: TensorId) -> Result<TensorId> {
        let hq = self.cfg.qformer.hidden_size;
        let th = self.cfg.text.hidden_size;
        match self.cfg.projection_hidden {
            None => Linear::new(th, hq).forward(g, &Scope::root("proj"), x),
            Some(ph) => {
                let y = Linear::new(ph, hq).forward(g, &Scope::root("proj"), x)?;
                Linear::new(th, ph).forward(g, &Scope::root("proj2"), y)
            }
        }
    }
}

impl Architecture for Blip2Phi {
    fn basics(&self) -> &Basics {
        &self.basics
    }

    /// No text: the image queries alone, as `processor(images=img)` captioning.
    fn default_prompt(&self) -> &'static str {
        ""
    }

    /// transformers 5 `Blip2Processor`: `<image>` × num_query_tokens in front of the tokenised
    /// prompt (the tokenizer's own special tokens, e.g. a BOS, come after the image tokens).
    fn prompt_ids(
        &self,
        tok: &tokenizers::Tokenizer,
        prompt: &str,
        _image: Option<&ImageInput>,
    ) -> crate::error::Result<Vec<u32>> {
        // add_special_tokens = true: the tokenizer's post-processor decides (as
        // `tokenizer(text)` does in transformers).
        let enc = encode(tok, prompt, true)?;
        // Without an image token id, id 0 only holds the rows the image features replace.
        let mut ids = vec![self.cfg.image_token_index.unwrap_or(0); self.num_image_tokens()];
        ids.extend_from_slice(enc.get_ids());
        if let Some(img) = self.cfg.image_token_index {
            if enc.get_ids().contains(&img) {
                return Err(Error::Request(
                    "the prompt contains the image token itself; pass the text only (pinhole adds the image tokens)"
                        .into(),
                ));
            }
        }
        Ok(ids)
    }

    fn num_image_tokens(&self) -> usize {
        Blip2Phi::num_image_tokens(self)
    }

    fn processor(&self) -> &ImageProcessorConfig {
        &self.processor
    }

    /// Pixels → vision → Q-Former → projection.
    fn encode_image(&self, g: &mut Graph, pixels: TensorId) -> Result<(TensorId, Vec<TensorId>)> {
        let vis = self.vision(g, pixels)?;
        let qf = self.qformer(g, vis)?;
        let proj = self.projection(g, qf)?;
        Ok((proj, vec![vis, qf, proj]))
    }

    fn debug_output_names(&self) -> &'static [&'static str] {
        &["vision_out", "qformer_out", "projector_out"]
    }

    /// The Phi decoder; the prompt attends causally (`prefix_len` is unused).
    fn text_forward(&self, g: &mut Graph, x: TensorId, rows: &StepRows, _prefix_len: usize) -> Result<TensorId> {
        self.text.forward(g, &Scope::root("text"), x, rows)
    }

    fn lm_head(&self, g: &mut Graph, x: TensorId) -> Result<TensorId> {
        self.text.lm_head(g, &Scope::root("lm_head"), x)
    }

    fn canonical_name(&self, name: &str) -> Option<String> {
        Blip2Phi::canonical_name(name)
    }

    fn example_source(&self, canonical: &str) -> String {
        Blip2Phi::example_source(canonical)
    }

    fn row_slice(&self, canonical: &str) -> Option<RowSlice> {
        Blip2Phi::row_slice(self, canonical)
    }

    fn zero_if_missing(&self, canonical: &str) -> bool {
        Blip2Phi::zero_if_missing(canonical)
    }
}
