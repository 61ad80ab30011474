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
//!   0-based; see [`crate::phi`].
//!
//! Canonical weight names: `vision.*` (`vision_model.*`), `qformer.*` (`qformer.*`, and
//! `query_tokens` as `qformer.query_tokens`), `proj.*` / `proj2.*`
//! (`language_projection(_2).*`), `text.*` / `lm_head.*` (`language_model.model.*` /
//! `language_model.lm_head.*`). The fused vision `qkv` weight and bias are split into `q`, `k`,
//! `v` on load (the older `q_bias` / `v_bias` layout is read too; its k bias is zero).

use pinhole_core::graph::{AttnMask, AttnParams, Graph, TensorId};
use pinhole_core::hf::{Blip2PhiConfig, GenerationConfig, ImageProcessorConfig};
use pinhole_core::{DType, Result, Tensor};

use crate::generate::TokenChoice;
use crate::paligemma::{ExpectedWeight, StepOutputs};
use crate::phi::{act, add_linear, add_norm, layer_norm, linear, w, Phi};

pub struct Blip2Phi {
    pub cfg: Blip2PhiConfig,
    pub processor: ImageProcessorConfig,
    pub generation: GenerationConfig,
    pub text: Phi,
    /// Storage dtype of matrix weights on the GPU.
    pub matrix_dtype: DType,
}

/// Where a canonical weight comes from when it is not a checkpoint tensor of its own: rows
/// `first .. first + rows` of the (fused) checkpoint tensor with canonical name `source`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowSlice {
    pub source: String,
    pub first: usize,
}

impl Blip2Phi {
    pub fn new(
        cfg: Blip2PhiConfig,
        processor: ImageProcessorConfig,
        generation: GenerationConfig,
        matrix_dtype: DType,
    ) -> Self {
        let text = Phi { cfg: cfg.text.clone() };
        Blip2Phi {
            cfg,
            processor,
            generation,
            text,
            matrix_dtype,
        }
    }

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
        MAP.iter()
            .find_map(|(from, to)| name.strip_prefix(from).map(|rest| format!("{to}{rest}")))
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
        MAP.iter()
            .find_map(|(from, to)| canonical.strip_prefix(from).map(|rest| format!("{to}{rest}")))
            .unwrap_or_else(|| canonical.to_string())
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

    /// Every weight the graphs read, with the shape config.json implies. Weights that
    /// transformers stores with leading 1-dims (`class_embedding`, `position_embedding`,
    /// `query_tokens`) are listed without them; the loader accepts either.
    pub fn expected_weights(&self) -> Vec<ExpectedWeight> {
        let v = &self.cfg.vision;
        let q = &self.cfg.qformer;
        let mut out = Vec::new();
        let (e, p, c) = (v.hidden_size, v.patch_size, v.num_channels);
        let plain = |out: &mut Vec<ExpectedWeight>, name: &str, shape: Vec<usize>, matrix: bool| {
            out.push(ExpectedWeight {
                name: name.to_string(),
                shape,
                matrix,
            })
        };
        plain(&mut out, "vision.embeddings.class_embedding", vec![1, e], false);
        plain(
            &mut out,
            "vision.embeddings.patch_embedding.weight",
            vec![e, c, p, p],
            false,
        );
        plain(&mut out, "vision.embeddings.patch_embedding.bias", vec![e], false);
        plain(
            &mut out,
            "vision.embeddings.position_embedding",
            vec![v.seq_len(), e],
            false,
        );
        for l in 0..v.num_hidden_layers {
            let pre = format!("vision.encoder.layers.{l}");
            add_norm(&mut out, &format!("{pre}.layer_norm1"), e, true);
            for piece in ["q", "k", "v"] {
                plain(&mut out, &format!("{pre}.self_attn.{piece}.weight"), vec![e, e], true);
            }
            if v.qkv_bias {
                for piece in ["q", "k", "v"] {
                    plain(&mut out, &format!("{pre}.self_attn.{piece}.bias"), vec![e], false);
                }
            }
            add_linear(&mut out, &format!("{pre}.self_attn.projection"), e, e);
            add_norm(&mut out, &format!("{pre}.layer_norm2"), e, true);
            add_linear(&mut out, &format!("{pre}.mlp.fc1"), v.intermediate_size, e);
            add_linear(&mut out, &format!("{pre}.mlp.fc2"), e, v.intermediate_size);
        }
        add_norm(&mut out, "vision.post_layernorm", e, true);

        let hq = q.hidden_size;
        plain(
            &mut out,
            "qformer.query_tokens",
            vec![self.cfg.num_query_tokens, hq],
            false,
        );
        add_norm(&mut out, "qformer.layernorm", hq, true);
        for l in 0..q.num_hidden_layers {
            let pre = format!("qformer.encoder.layer.{l}");
            let mut blocks = vec![("attention", hq)];
            if q.has_cross_attention(l) {
                blocks.push(("crossattention", q.encoder_hidden_size));
            }
            for (block, kv_in) in blocks {
                add_linear(&mut out, &format!("{pre}.{block}.attention.query"), hq, hq);
                add_linear(&mut out, &format!("{pre}.{block}.attention.key"), hq, kv_in);
                add_linear(&mut out, &format!("{pre}.{block}.attention.value"), hq, kv_in);
                add_linear(&mut out, &format!("{pre}.{block}.output.dense"), hq, hq);
                add_norm(&mut out, &format!("{pre}.{block}.output.LayerNorm"), hq, true);
            }
            add_linear(
                &mut out,
                &format!("{pre}.intermediate_query.dense"),
                q.intermediate_size,
                hq,
            );
            add_linear(&mut out, &format!("{pre}.output_query.dense"), hq, q.intermediate_size);
            add_norm(&mut out, &format!("{pre}.output_query.LayerNorm"), hq, true);
        }
        let th = self.cfg.text.hidden_size;
        match self.cfg.projection_hidden {
            None => add_linear(&mut out, "proj", th, hq),
            Some(ph) => {
                add_linear(&mut out, "proj", ph, hq);
                add_linear(&mut out, "proj2", th, ph);
            }
        }
        self.text.expected_weights(&mut out);
        out
    }

    /// The vision model: `pixels [3, H, W]` → `[1 + patches, vision_hidden]` (after
    /// `post_layernorm`).
    pub fn vision(&self, g: &mut Graph, pixels: TensorId) -> Result<TensorId> {
        let v = &self.cfg.vision;
        let (e, p, c, np) = (v.hidden_size, v.patch_size, v.num_channels, v.num_patches());
        let heads = v.num_attention_heads;
        let hd = v.head_dim();
        let n = v.seq_len();
        let pw = w(g, "vision.embeddings.patch_embedding.weight", &[e, c, p, p]);
        let pb = w(g, "vision.embeddings.patch_embedding.bias", &[e]);
        let pos = w(g, "vision.embeddings.position_embedding", &[n, e]);
        let cls = w(g, "vision.embeddings.class_embedding", &[1, e]);
        // Row 0: class token + position 0; rows 1..: patches + positions 1.. .
        let pos_patches = g.rows(pos, 1, np)?;
        let patches = g.patch_embed(pixels, pw, pb, pos_patches, p)?;
        let pos0 = g.rows(pos, 0, 1)?;
        let cls_row = g.add(cls, pos0)?;
        // `pos` only provides a [1 + patches, E] buffer here: every row is overwritten.
        let patch_rows = g.constant(Tensor::u32(&[np], (1..=np as u32).collect())?);
        let x = g.scatter_rows(pos, patches, patch_rows)?;
        let row0 = g.constant(Tensor::u32(&[1], vec![0])?);
        let mut x = g.scatter_rows(x, cls_row, row0)?;
        for l in 0..v.num_hidden_layers {
            let pre = format!("vision.encoder.layers.{l}");
            let h = layer_norm(g, x, &format!("{pre}.layer_norm1"), e, v.layer_norm_eps)?;
            // The rows of the fused qkv projection, each with its part of the bias.
            let piece = |g: &mut Graph, name: &str| -> Result<TensorId> {
                let wt = w(g, &format!("{pre}.self_attn.{name}.weight"), &[e, e]);
                let b = v.qkv_bias.then(|| w(g, &format!("{pre}.self_attn.{name}.bias"), &[e]));
                g.matmul(h, wt, b)
            };
            let q = piece(g, "q")?;
            let k = piece(g, "k")?;
            let vv = piece(g, "v")?;
            let params = AttnParams {
                n_heads: heads,
                n_kv_heads: heads,
                head_dim: hd,
                kv_len: n,
                q_pos0: 0,
                scale: (hd as f64).powf(-0.5) as f32,
                softcap: 0.0,
                mask: AttnMask::FULL,
            };
            let a = g.attention(q, k, vv, params)?;
            let o = linear(g, a, &format!("{pre}.self_attn.projection"), e, e)?;
            x = g.add(x, o)?;
            let h = layer_norm(g, x, &format!("{pre}.layer_norm2"), e, v.layer_norm_eps)?;
            let h = linear(g, h, &format!("{pre}.mlp.fc1"), v.intermediate_size, e)?;
            let h = g.act(h, act(v.hidden_act))?;
            let h = linear(g, h, &format!("{pre}.mlp.fc2"), e, v.intermediate_size)?;
            x = g.add(x, h)?;
        }
        layer_norm(g, x, "vision.post_layernorm", e, v.post_layernorm_eps)
    }

    /// One BERT attention block of the Q-Former: `LayerNorm(x + dense(attn(x → kv_src)))`.
    fn qformer_attention(
        &self,
        g: &mut Graph,
        x: TensorId,
        kv_src: TensorId,
        kv_rows: usize,
        kv_in: usize,
        pre: &str,
    ) -> Result<TensorId> {
        let q = &self.cfg.qformer;
        let hq = q.hidden_size;
        let qq = linear(g, x, &format!("{pre}.attention.query"), hq, hq)?;
        let k = linear(g, kv_src, &format!("{pre}.attention.key"), hq, kv_in)?;
        let v = linear(g, kv_src, &format!("{pre}.attention.value"), hq, kv_in)?;
        let params = AttnParams {
            n_heads: q.num_attention_heads,
            n_kv_heads: q.num_attention_heads,
            head_dim: q.head_dim(),
            kv_len: kv_rows,
            q_pos0: 0,
            scale: (q.head_dim() as f64).powf(-0.5) as f32,
            softcap: 0.0,
            mask: AttnMask::FULL,
        };
        let a = g.attention(qq, k, v, params)?;
        let o = linear(g, a, &format!("{pre}.output.dense"), hq, hq)?;
        let r = g.add(o, x)?;
        layer_norm(g, r, &format!("{pre}.output.LayerNorm"), hq, q.layer_norm_eps)
    }

    /// The Q-Former over the image features `[1 + patches, vision_hidden]` →
    /// `[num_query_tokens, qformer_hidden]`.
    pub fn qformer(&self, g: &mut Graph, image: TensorId) -> Result<TensorId> {
        let q = &self.cfg.qformer;
        let hq = q.hidden_size;
        let nq = self.cfg.num_query_tokens;
        let n_img = self.cfg.vision.seq_len();
        let tokens = w(g, "qformer.query_tokens", &[nq, hq]);
        let mut x = layer_norm(g, tokens, "qformer.layernorm", hq, q.layer_norm_eps)?;
        for l in 0..q.num_hidden_layers {
            let pre = format!("qformer.encoder.layer.{l}");
            x = self.qformer_attention(g, x, x, nq, hq, &format!("{pre}.attention"))?;
            if q.has_cross_attention(l) {
                x = self.qformer_attention(
                    g,
                    x,
                    image,
                    n_img,
                    q.encoder_hidden_size,
                    &format!("{pre}.crossattention"),
                )?;
            }
            let h = linear(
                g,
                x,
                &format!("{pre}.intermediate_query.dense"),
                q.intermediate_size,
                hq,
            )?;
            let h = g.act(h, act(q.hidden_act))?;
            let h = linear(g, h, &format!("{pre}.output_query.dense"), hq, q.intermediate_size)?;
            let r = g.add(h, x)?;
            x = layer_norm(g, r, &format!("{pre}.output_query.LayerNorm"), hq, q.layer_norm_eps)?;
        }
        Ok(x)
    }

    /// `language_projection` (and `language_projection_2`): `[queries, qformer_hidden]` →
    /// `[queries, text_hidden]`.
    pub fn projection(&self, g: &mut Graph, x: TensorId) -> Result<TensorId> {
        let hq = self.cfg.qformer.hidden_size;
        let th = self.cfg.text.hidden_size;
        match self.cfg.projection_hidden {
            None => linear(g, x, "proj", th, hq),
            Some(ph) => {
                let y = linear(g, x, "proj", ph, hq)?;
                linear(g, y, "proj2", th, ph)
            }
        }
    }

    /// Image-encode graph: pixels → vision → Q-Former → projection, written into the executor
    /// state "image_features". With `debug`, the vision, Q-Former and projection outputs are
    /// graph outputs (in that order).
    pub fn image_graph(&self, debug: bool) -> Result<Graph> {
        let mut g = Graph::new();
        let v = &self.cfg.vision;
        let px = g.input("pixels", &[v.num_channels, v.image_size, v.image_size], DType::F32);
        let vis = self.vision(&mut g, px)?;
        let qf = self.qformer(&mut g, vis)?;
        let proj = self.projection(&mut g, qf)?;
        let st = g.state("image_features", &[self.num_image_tokens(), self.cfg.text.hidden_size]);
        g.write_rows(st, proj, 0)?;
        if debug {
            g.output(vis);
            g.output(qf);
            g.output(proj);
        }
        Ok(g)
    }

    /// The prefill graph over `ids` with the image features (state "image_features") at
    /// `image_rows`.
    pub fn prefill_graph_from_state(
        &self,
        ids: &[u32],
        image_rows: &[u32],
        max_len: usize,
        all_logits: bool,
        choice: &TokenChoice,
    ) -> Result<(Graph, StepOutputs)> {
        let s = ids.len();
        let mut g = Graph::new();
        let img = g.state("image_features", &[self.num_image_tokens(), self.cfg.text.hidden_size]);
        let idt = g.constant(Tensor::u32(&[s], ids.to_vec())?);
        let emb = self.text.embed(&mut g, idt)?;
        let rows = g.constant(Tensor::u32(&[image_rows.len()], image_rows.to_vec())?);
        let x = g.scatter_rows(emb, img, rows)?;
        let hidden = self.text.decoder(&mut g, x, s, 0, max_len)?;
        let out = StepOutputs::from_hidden(&mut g, hidden, s, all_logits, choice, |g, x| self.text.lm_head(g, x))?;
        Ok((g, out))
    }

    /// One decode step for `token` at sequence position `row`.
    pub fn decode_graph(
        &self,
        token: u32,
        row: usize,
        max_len: usize,
        logits: bool,
        choice: &TokenChoice,
    ) -> Result<(Graph, StepOutputs)> {
        let mut g = Graph::new();
        let idt = g.constant(Tensor::u32(&[1], vec![token])?);
        let x = self.text.embed(&mut g, idt)?;
        let hidden = self.text.decoder(&mut g, x, 1, row, max_len)?;
        let out = StepOutputs::from_hidden(&mut g, hidden, 1, logits, choice, |g, x| self.text.lm_head(g, x))?;
        Ok((g, out))
    }
}
