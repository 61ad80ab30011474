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

use pinhole_core::graph::{Activation, AttnMask, AttnParams, Graph, TensorId};
use pinhole_core::hf::{
    Activation as HfAct, GenerationConfig, ImageProcessorConfig, LayerType, PaliGemmaConfig, TextModelType,
};
use pinhole_core::{DType, Result};

use crate::generate::TokenChoice;

pub struct PaliGemma {
    pub cfg: PaliGemmaConfig,
    pub processor: ImageProcessorConfig,
    pub generation: GenerationConfig,
    /// Storage dtype of matrix weights on the GPU.
    pub matrix_dtype: DType,
}

/// One weight the model needs.
pub struct ExpectedWeight {
    pub name: String,
    pub shape: Vec<usize>,
    /// A linear weight or the embedding table (stored in the model's matrix dtype).
    pub matrix: bool,
}

impl ExpectedWeight {
    /// A checkpoint name that would provide this weight (for error messages).
    pub fn example_source(&self) -> String {
        if let Some(r) = self.name.strip_prefix("vision.") {
            format!("vision_tower.vision_model.{r}")
        } else if let Some(r) = self.name.strip_prefix("text.") {
            format!("language_model.model.{r}")
        } else if let Some(r) = self.name.strip_prefix("proj.") {
            format!("multi_modal_projector.{r}")
        } else {
            self.name.clone()
        }
    }
}

/// What one forward step computes and reads back.
#[derive(Clone, Debug, Default)]
pub struct StepOutputs {
    pub token: Option<TensorId>,
    pub logits: Option<TensorId>,
}

impl StepOutputs {
    /// The tail of every step graph, from the decoder's `hidden` rows (`rows` of them): the
    /// next token from the last row's logits as `choice` picks it (first output), and with
    /// `all_logits` every row's logits (second output, for fixture comparisons and `--dump`).
    pub fn from_hidden(
        g: &mut Graph,
        hidden: TensorId,
        rows: usize,
        all_logits: bool,
        choice: &TokenChoice,
        lm_head: impl Fn(&mut Graph, TensorId) -> Result<TensorId>,
    ) -> Result<Self> {
        let last = if rows == 1 {
            hidden
        } else {
            g.rows(hidden, rows - 1, 1)?
        };
        let last_logits = lm_head(g, last)?;
        let tok = choice.apply(g, last_logits)?;
        g.output(tok);
        let logits = if !all_logits {
            None
        } else if rows == 1 {
            Some(last_logits)
        } else {
            Some(lm_head(g, hidden)?)
        };
        if let Some(l) = logits {
            g.output(l);
        }
        Ok(StepOutputs {
            token: Some(tok),
            logits,
        })
    }
}

fn act(a: HfAct) -> Activation {
    match a {
        HfAct::GeluTanh => Activation::GeluTanh,
        HfAct::GeluErf => Activation::GeluErf,
    }
}

impl PaliGemma {
    pub fn new(
        cfg: PaliGemmaConfig,
        processor: ImageProcessorConfig,
        generation: GenerationConfig,
        matrix_dtype: DType,
    ) -> Self {
        PaliGemma {
            cfg,
            processor,
            generation,
            matrix_dtype,
        }
    }

    pub fn num_image_tokens(&self) -> usize {
        self.cfg.vision.num_patches()
    }

    /// Every weight the graphs read, with the shape config.json implies.
    pub fn expected_weights(&self) -> Vec<ExpectedWeight> {
        let v = &self.cfg.vision;
        let t = &self.cfg.text;
        let mut w = siglip_weights(v);
        let mut add = |name: String, shape: Vec<usize>, matrix: bool| w.push(ExpectedWeight { name, shape, matrix });
        let e = v.hidden_size;
        add("proj.linear.weight".into(), vec![self.cfg.projection_dim, e], true);
        add("proj.linear.bias".into(), vec![self.cfg.projection_dim], false);

        let (h, d) = (t.hidden_size, t.head_dim);
        add("text.embed_tokens.weight".into(), vec![t.vocab_size, h], true);
        for l in 0..t.num_hidden_layers {
            let pre = format!("text.layers.{l}");
            add(
                format!("{pre}.self_attn.q_proj.weight"),
                vec![t.num_attention_heads * d, h],
                true,
            );
            add(
                format!("{pre}.self_attn.k_proj.weight"),
                vec![t.num_key_value_heads * d, h],
                true,
            );
            add(
                format!("{pre}.self_attn.v_proj.weight"),
                vec![t.num_key_value_heads * d, h],
                true,
            );
            add(
                format!("{pre}.self_attn.o_proj.weight"),
                vec![h, t.num_attention_heads * d],
                true,
            );
            add(
                format!("{pre}.mlp.gate_proj.weight"),
                vec![t.intermediate_size, h],
                true,
            );
            add(format!("{pre}.mlp.up_proj.weight"), vec![t.intermediate_size, h], true);
            add(
                format!("{pre}.mlp.down_proj.weight"),
                vec![h, t.intermediate_size],
                true,
            );
            let mut norms = vec!["input_layernorm", "post_attention_layernorm"];
            if t.model_type == TextModelType::Gemma2 {
                norms.extend(["pre_feedforward_layernorm", "post_feedforward_layernorm"]);
            }
            for n in norms {
                add(format!("{pre}.{n}.weight"), vec![h], false);
            }
        }
        add("text.norm.weight".into(), vec![h], false);
        w
    }

    fn w(g: &mut Graph, name: &str, shape: &[usize]) -> TensorId {
        g.weight(name, shape, DType::F32)
    }

    /// SigLIP vision tower: `pixels [3, H, W]` → `[num_patches, vision_hidden]`.
    pub fn vision_tower(&self, g: &mut Graph, pixels: TensorId) -> Result<TensorId> {
        siglip_vision_tower(g, &self.cfg.vision, pixels)
    }

    /// `multi_modal_projector`: `[np, vision_hidden]` → `[np, projection_dim]`.
    pub fn projector(&self, g: &mut Graph, x: TensorId) -> Result<TensorId> {
        let e = self.cfg.vision.hidden_size;
        let pd = self.cfg.projection_dim;
        let w = Self::w(g, "proj.linear.weight", &[pd, e]);
        let b = Self::w(g, "proj.linear.bias", &[pd]);
        g.matmul(x, w, Some(b))
    }

    /// Image-encode graph: pixels → vision tower → projector → / sqrt(hidden), stored in the
    /// executor state "image_features" (so several prompts can reuse one encoded image). With
    /// `debug`, the vision and projector outputs are graph outputs.
    pub fn image_graph(&self, debug: bool) -> Result<Graph> {
        let mut g = Graph::new();
        let v = &self.cfg.vision;
        let px = g.input("pixels", &[v.num_channels, v.image_size, v.image_size], DType::F32);
        let vis = self.vision_tower(&mut g, px)?;
        let proj = self.projector(&mut g, vis)?;
        let scaled = g.scale(proj, 1.0 / (self.cfg.text.hidden_size as f64).sqrt() as f32)?;
        let st = g.state("image_features", &[self.num_image_tokens(), self.cfg.text.hidden_size]);
        g.write_rows(st, scaled, 0)?;
        if debug {
            g.output(vis);
            g.output(proj);
        }
        Ok(g)
    }

    /// Shape of each layer's K/V cache state for a context of `max_len` positions.
    pub fn cache_shape(&self, max_len: usize) -> [usize; 2] {
        [max_len, self.cfg.text.num_key_value_heads * self.cfg.text.head_dim]
    }

    /// The Gemma decoder over `x [S, hidden]` (already embedded and scaled) whose rows are
    /// sequence positions `row0 ..`; writes K/V into the caches and returns the hidden states
    /// after the final norm.
    fn decoder(
        &self,
        g: &mut Graph,
        mut x: TensorId,
        s: usize,
        row0: usize,
        prefix_len: usize,
        max_len: usize,
    ) -> Result<TensorId> {
        let t = &self.cfg.text;
        let (h, d, nh, nkv) = (t.hidden_size, t.head_dim, t.num_attention_heads, t.num_key_value_heads);
        let eps = t.rms_norm_eps as f32;
        let gemma2 = t.model_type == TextModelType::Gemma2;
        // PaliGemma positions are 1-indexed.
        let positions: Vec<u32> = (row0..row0 + s).map(|i| i as u32 + 1).collect();
        let cs = g.rope_table(&positions, d, t.rope_theta as f32)?;
        let cache = self.cache_shape(max_len);
        let rms = |g: &mut Graph, x: TensorId, name: String| -> Result<TensorId> {
            let w = Self::w(g, &name, &[h]);
            g.rms_norm(x, w, eps, true)
        };
        for l in 0..t.num_hidden_layers {
            let pre = format!("text.layers.{l}");
            let lin = |g: &mut Graph, x: TensorId, n: &str, out: usize, inp: usize| -> Result<TensorId> {
                let w = Self::w(g, &format!("{pre}.{n}.weight"), &[out, inp]);
                g.matmul(x, w, None)
            };
            let hn = rms(g, x, format!("{pre}.input_layernorm.weight"))?;
            let q = lin(g, hn, "self_attn.q_proj", nh * d, h)?;
            let k = lin(g, hn, "self_attn.k_proj", nkv * d, h)?;
            let v = lin(g, hn, "self_attn.v_proj", nkv * d, h)?;
            let q = g.rope(q, cs, nh, d, d)?;
            let k = g.rope(k, cs, nkv, d, d)?;
            let kc = g.state(&format!("k_cache.{l}"), &cache);
            let vc = g.state(&format!("v_cache.{l}"), &cache);
            let kc = g.write_rows(kc, k, row0)?;
            let vc = g.write_rows(vc, v, row0)?;
            let window = match t.layer_types.get(l) {
                Some(LayerType::Sliding) => t.sliding_window.unwrap_or(0),
                _ => 0,
            };
            let params = AttnParams {
                n_heads: nh,
                n_kv_heads: nkv,
                head_dim: d,
                kv_len: row0 + s,
                q_pos0: row0,
                scale: t.attn_scale() as f32,
                softcap: t.attn_logit_softcapping.unwrap_or(0.0) as f32,
                mask: AttnMask {
                    causal: true,
                    prefix_len,
                    window,
                },
            };
            let a = g.attention(q, kc, vc, params)?;
            let mut o = lin(g, a, "self_attn.o_proj", h, nh * d)?;
            if gemma2 {
                o = rms(g, o, format!("{pre}.post_attention_layernorm.weight"))?;
            }
            x = g.add(x, o)?;
            let mn = if gemma2 {
                rms(g, x, format!("{pre}.pre_feedforward_layernorm.weight"))?
            } else {
                rms(g, x, format!("{pre}.post_attention_layernorm.weight"))?
            };
            let gate = lin(g, mn, "mlp.gate_proj", t.intermediate_size, h)?;
            let up = lin(g, mn, "mlp.up_proj", t.intermediate_size, h)?;
            let a = g.gated(gate, up, act(t.hidden_activation))?;
            let mut m = lin(g, a, "mlp.down_proj", h, t.intermediate_size)?;
            if gemma2 {
                m = rms(g, m, format!("{pre}.post_feedforward_layernorm.weight"))?;
            }
            x = g.add(x, m)?;
        }
        rms(g, x, "text.norm.weight".into())
    }

    /// LM head (tied embedding) and the optional final soft-cap.
    fn lm_head(&self, g: &mut Graph, x: TensorId) -> Result<TensorId> {
        let t = &self.cfg.text;
        let table = Self::w(g, "text.embed_tokens.weight", &[t.vocab_size, t.hidden_size]);
        let logits = g.matmul(x, table, None)?;
        match t.final_logit_softcapping {
            Some(cap) if cap > 0.0 => g.softcap(logits, cap as f32),
            _ => Ok(logits),
        }
    }

    fn embed(&self, g: &mut Graph, ids: TensorId) -> Result<TensorId> {
        let t = &self.cfg.text;
        let table = Self::w(g, "text.embed_tokens.weight", &[t.vocab_size, t.hidden_size]);
        g.embedding(table, ids)
    }

    /// The prefill graph over the prefix `ids` (image tokens at `image_rows`). The image
    /// features come from the executor state "image_features", written by the image-encode
    /// graph (see `generate`). Outputs the next token as `choice` picks it (greedy argmax or
    /// sampled on the GPU), and with `all_logits` the logits of every position (for checks
    /// against transformers).
    pub fn prefill_graph_from_state(
        &self,
        ids: &[u32],
        image_rows: &[u32],
        max_len: usize,
        all_logits: bool,
        choice: &TokenChoice,
    ) -> Result<(Graph, StepOutputs)> {
        let t = &self.cfg.text;
        let s = ids.len();
        let mut g = Graph::new();
        let img = g.state("image_features", &[self.num_image_tokens(), t.hidden_size]);
        let idt = g.constant(pinhole_core::Tensor::u32(&[s], ids.to_vec())?);
        let emb = self.embed(&mut g, idt)?;
        let rows = g.constant(pinhole_core::Tensor::u32(&[image_rows.len()], image_rows.to_vec())?);
        let emb = g.scatter_rows(emb, img, rows)?;
        // The Gemma embedding normaliser, applied to text and (already divided) image rows.
        let x = g.scale(emb, (t.hidden_size as f64).sqrt() as f32)?;
        let hidden = self.decoder(&mut g, x, s, 0, s, max_len)?;
        let out = StepOutputs::from_hidden(&mut g, hidden, s, all_logits, choice, |g, x| self.lm_head(g, x))?;
        Ok((g, out))
    }

    /// One decode step: the token at sequence position `row` (ids input is a constant) → next
    /// token as `choice` picks it; with `logits` also the step's logits (before any
    /// repetition penalty or temperature).
    pub fn decode_graph(
        &self,
        token: u32,
        row: usize,
        prefix_len: usize,
        max_len: usize,
        logits: bool,
        choice: &TokenChoice,
    ) -> Result<(Graph, StepOutputs)> {
        let t = &self.cfg.text;
        let mut g = Graph::new();
        let idt = g.constant(pinhole_core::Tensor::u32(&[1], vec![token])?);
        let emb = self.embed(&mut g, idt)?;
        let x = g.scale(emb, (t.hidden_size as f64).sqrt() as f32)?;
        let hidden = self.decoder(&mut g, x, 1, row, prefix_len, max_len)?;
        let out = StepOutputs::from_hidden(&mut g, hidden, 1, logits, choice, |g, x| self.lm_head(g, x))?;
        Ok((g, out))
    }
}

/// The SigLIP vision tower (PaliGemma's, and SmolVLM's on each tile): `pixels [3, H, W]` →
/// `[num_patches, vision_hidden]` after `post_layernorm`, with the weights under `vision.`:
/// patch embedding + row-major position embeddings, pre-LN encoder layers (full attention,
/// q/k/v/out projections with biases, `fc1` → activation → `fc2`).
pub fn siglip_vision_tower(
    g: &mut Graph,
    v: &pinhole_core::hf::SiglipVisionConfig,
    pixels: TensorId,
) -> Result<TensorId> {
    let (e, p, c, np) = (v.hidden_size, v.patch_size, v.num_channels, v.num_patches());
    let eps = v.layer_norm_eps as f32;
    let heads = v.num_attention_heads;
    let hd = e / heads.max(1);
    let pw = PaliGemma::w(g, "vision.embeddings.patch_embedding.weight", &[e, c, p, p]);
    let pb = PaliGemma::w(g, "vision.embeddings.patch_embedding.bias", &[e]);
    let pos = PaliGemma::w(g, "vision.embeddings.position_embedding.weight", &[np, e]);
    let mut x = g.patch_embed(pixels, pw, pb, pos, p)?;
    let linear = |g: &mut Graph, x: TensorId, name: &str, out: usize, inp: usize| -> Result<TensorId> {
        let w = PaliGemma::w(g, &format!("{name}.weight"), &[out, inp]);
        let b = PaliGemma::w(g, &format!("{name}.bias"), &[out]);
        g.matmul(x, w, Some(b))
    };
    let norm = |g: &mut Graph, x: TensorId, name: &str| -> Result<TensorId> {
        let w = PaliGemma::w(g, &format!("{name}.weight"), &[e]);
        let b = PaliGemma::w(g, &format!("{name}.bias"), &[e]);
        g.layer_norm(x, w, b, eps)
    };
    for l in 0..v.num_hidden_layers {
        let pre = format!("vision.encoder.layers.{l}");
        let h = norm(g, x, &format!("{pre}.layer_norm1"))?;
        let q = linear(g, h, &format!("{pre}.self_attn.q_proj"), e, e)?;
        let k = linear(g, h, &format!("{pre}.self_attn.k_proj"), e, e)?;
        let vv = linear(g, h, &format!("{pre}.self_attn.v_proj"), e, e)?;
        let params = AttnParams {
            n_heads: heads,
            n_kv_heads: heads,
            head_dim: hd,
            kv_len: np,
            q_pos0: 0,
            scale: (hd as f64).powf(-0.5) as f32,
            softcap: 0.0,
            mask: AttnMask::FULL,
        };
        let a = g.attention(q, k, vv, params)?;
        let o = linear(g, a, &format!("{pre}.self_attn.out_proj"), e, e)?;
        x = g.add(x, o)?;
        let h = norm(g, x, &format!("{pre}.layer_norm2"))?;
        let h = linear(g, h, &format!("{pre}.mlp.fc1"), v.intermediate_size, e)?;
        let h = g.act(h, act(v.hidden_act))?;
        let h = linear(g, h, &format!("{pre}.mlp.fc2"), e, v.intermediate_size)?;
        x = g.add(x, h)?;
    }
    norm(g, x, "vision.post_layernorm")
}

/// The weights [`siglip_vision_tower`] reads, with their shapes.
pub fn siglip_weights(v: &pinhole_core::hf::SiglipVisionConfig) -> Vec<ExpectedWeight> {
    let mut w = Vec::new();
    let mut add = |name: String, shape: Vec<usize>, matrix: bool| w.push(ExpectedWeight { name, shape, matrix });
    let (e, p, c) = (v.hidden_size, v.patch_size, v.num_channels);
    add(
        "vision.embeddings.patch_embedding.weight".into(),
        vec![e, c, p, p],
        false,
    );
    add("vision.embeddings.patch_embedding.bias".into(), vec![e], false);
    add(
        "vision.embeddings.position_embedding.weight".into(),
        vec![v.num_patches(), e],
        false,
    );
    for l in 0..v.num_hidden_layers {
        let pre = format!("vision.encoder.layers.{l}");
        for n in ["layer_norm1", "layer_norm2"] {
            add(format!("{pre}.{n}.weight"), vec![e], false);
            add(format!("{pre}.{n}.bias"), vec![e], false);
        }
        for n in ["q_proj", "k_proj", "v_proj", "out_proj"] {
            add(format!("{pre}.self_attn.{n}.weight"), vec![e, e], true);
            add(format!("{pre}.self_attn.{n}.bias"), vec![e], false);
        }
        add(format!("{pre}.mlp.fc1.weight"), vec![v.intermediate_size, e], true);
        add(format!("{pre}.mlp.fc1.bias"), vec![v.intermediate_size], false);
        add(format!("{pre}.mlp.fc2.weight"), vec![e, v.intermediate_size], true);
        add(format!("{pre}.mlp.fc2.bias"), vec![e], false);
    }
    add("vision.post_layernorm.weight".into(), vec![e], false);
    add("vision.post_layernorm.bias".into(), vec![e], false);
    w
}
