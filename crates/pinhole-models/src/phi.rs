//! Phi (Phi-1, 1.5, 2) as the language model of a BLIP-2 / TinyGPT-V model. Mirrors
//! transformers' `PhiForCausalLM` (modeling_phi.py):
//!
//! * each layer runs attention and the MLP **in parallel** on the same `input_layernorm` output
//!   and adds both to the residual: `x + attn(ln(x)) + mlp(ln(x))`;
//! * LayerNorm with bias everywhere (`input_layernorm`, `final_layernorm`), biases on q/k/v, on
//!   the attention output (`dense`), on `fc1`/`fc2` and on the LM head (untied);
//! * partial rotary embeddings: RoPE (rotate-half, θ = `rope_theta`) on the first
//!   `int(head_dim · partial_rotary_factor)` dims of each head, with inverse frequencies over that
//!   rotary width; position ids are 0-based;
//! * optional `qk_layernorm`: a LayerNorm over `head_dim` on every head of q and k, before RoPE
//!   (and so before the KV cache);
//! * the MLP is `fc2(gelu_new(fc1(x)))`;
//! * TinyGPT-V only (`pinhole_post_attention_rmsnorm_eps`): an RMSNorm (`post_layernorm`) on the
//!   attention output before the sum.
//!
//! Canonical weight names: `text.*` for `language_model.model.*`, `lm_head.*` for
//! `language_model.lm_head.*`.

use pinhole_core::graph::{Activation, AttnMask, AttnParams, Graph, TensorId};
use pinhole_core::hf::{Activation as HfAct, PhiConfig};
use pinhole_core::{DType, Result};

use crate::paligemma::ExpectedWeight;

pub(crate) fn act(a: HfAct) -> Activation {
    match a {
        HfAct::GeluTanh => Activation::GeluTanh,
        HfAct::GeluErf => Activation::GeluErf,
    }
}

pub(crate) fn w(g: &mut Graph, name: &str, shape: &[usize]) -> TensorId {
    g.weight(name, shape, DType::F32)
}

/// `x · Wᵀ + b` with the weight/bias pair `{name}.weight` / `{name}.bias`.
pub(crate) fn linear(g: &mut Graph, x: TensorId, name: &str, out: usize, inp: usize) -> Result<TensorId> {
    let wt = w(g, &format!("{name}.weight"), &[out, inp]);
    let b = w(g, &format!("{name}.bias"), &[out]);
    g.matmul(x, wt, Some(b))
}

/// LayerNorm with `{name}.weight` / `{name}.bias` over the last dim `d`.
pub(crate) fn layer_norm(g: &mut Graph, x: TensorId, name: &str, d: usize, eps: f64) -> Result<TensorId> {
    let wt = w(g, &format!("{name}.weight"), &[d]);
    let b = w(g, &format!("{name}.bias"), &[d]);
    g.layer_norm(x, wt, b, eps as f32)
}

pub(crate) fn add_linear(out: &mut Vec<ExpectedWeight>, name: &str, rows: usize, cols: usize) {
    out.push(ExpectedWeight {
        name: format!("{name}.weight"),
        shape: vec![rows, cols],
        matrix: true,
    });
    out.push(ExpectedWeight {
        name: format!("{name}.bias"),
        shape: vec![rows],
        matrix: false,
    });
}

pub(crate) fn add_norm(out: &mut Vec<ExpectedWeight>, name: &str, d: usize, bias: bool) {
    out.push(ExpectedWeight {
        name: format!("{name}.weight"),
        shape: vec![d],
        matrix: false,
    });
    if bias {
        out.push(ExpectedWeight {
            name: format!("{name}.bias"),
            shape: vec![d],
            matrix: false,
        });
    }
}

pub struct Phi {
    pub cfg: PhiConfig,
}

impl Phi {
    /// Every weight of the decoder and LM head.
    pub fn expected_weights(&self, out: &mut Vec<ExpectedWeight>) {
        let t = &self.cfg;
        let (h, d) = (t.hidden_size, t.head_dim);
        out.push(ExpectedWeight {
            name: "text.embed_tokens.weight".into(),
            shape: vec![t.vocab_size, h],
            matrix: true,
        });
        for l in 0..t.num_hidden_layers {
            let pre = format!("text.layers.{l}");
            add_norm(out, &format!("{pre}.input_layernorm"), h, true);
            add_linear(out, &format!("{pre}.self_attn.q_proj"), t.num_attention_heads * d, h);
            add_linear(out, &format!("{pre}.self_attn.k_proj"), t.num_key_value_heads * d, h);
            add_linear(out, &format!("{pre}.self_attn.v_proj"), t.num_key_value_heads * d, h);
            add_linear(out, &format!("{pre}.self_attn.dense"), h, t.num_attention_heads * d);
            if t.qk_layernorm {
                add_norm(out, &format!("{pre}.self_attn.q_layernorm"), d, true);
                add_norm(out, &format!("{pre}.self_attn.k_layernorm"), d, true);
            }
            if t.post_attention_rmsnorm_eps.is_some() {
                add_norm(out, &format!("{pre}.post_layernorm"), h, false);
            }
            add_linear(out, &format!("{pre}.mlp.fc1"), t.intermediate_size, h);
            add_linear(out, &format!("{pre}.mlp.fc2"), h, t.intermediate_size);
        }
        add_norm(out, "text.final_layernorm", h, true);
        add_linear(out, "lm_head", t.vocab_size, h);
    }

    /// Shape of each layer's K/V cache state for `max_len` positions.
    pub fn cache_shape(&self, max_len: usize) -> [usize; 2] {
        [max_len, self.cfg.num_key_value_heads * self.cfg.head_dim]
    }

    pub fn embed(&self, g: &mut Graph, ids: TensorId) -> Result<TensorId> {
        let t = &self.cfg;
        let table = w(g, "text.embed_tokens.weight", &[t.vocab_size, t.hidden_size]);
        g.embedding(table, ids)
    }

    /// LayerNorm over each head of `x [S, heads·D]` (q_layernorm / k_layernorm).
    fn head_norm(&self, g: &mut Graph, x: TensorId, s: usize, heads: usize, name: &str) -> Result<TensorId> {
        let d = self.cfg.head_dim;
        let per_head = g.reshape(x, &[s * heads, d])?;
        let n = layer_norm(g, per_head, name, d, self.cfg.layer_norm_eps)?;
        g.reshape(n, &[s, heads * d])
    }

    /// The decoder over `x [S, hidden]` (already embedded) whose rows are sequence positions
    /// `row0 ..`: writes K/V into the caches, returns the hidden states after
    /// `final_layernorm`. Attention is causal over the cache.
    pub fn decoder(&self, g: &mut Graph, mut x: TensorId, s: usize, row0: usize, max_len: usize) -> Result<TensorId> {
        let t = &self.cfg;
        let (h, d, nh, nkv) = (t.hidden_size, t.head_dim, t.num_attention_heads, t.num_key_value_heads);
        let rd = t.rotary_dim();
        let positions: Vec<u32> = (row0..row0 + s).map(|i| i as u32).collect();
        let cs = g.rope_table(&positions, rd, t.rope_theta as f32)?;
        let cache = self.cache_shape(max_len);
        for l in 0..t.num_hidden_layers {
            let pre = format!("text.layers.{l}");
            let hn = layer_norm(g, x, &format!("{pre}.input_layernorm"), h, t.layer_norm_eps)?;
            let mut q = linear(g, hn, &format!("{pre}.self_attn.q_proj"), nh * d, h)?;
            let mut k = linear(g, hn, &format!("{pre}.self_attn.k_proj"), nkv * d, h)?;
            let v = linear(g, hn, &format!("{pre}.self_attn.v_proj"), nkv * d, h)?;
            if t.qk_layernorm {
                q = self.head_norm(g, q, s, nh, &format!("{pre}.self_attn.q_layernorm"))?;
                k = self.head_norm(g, k, s, nkv, &format!("{pre}.self_attn.k_layernorm"))?;
            }
            let q = g.rope(q, cs, nh, d, rd)?;
            let k = g.rope(k, cs, nkv, d, rd)?;
            let kc = g.state(&format!("k_cache.{l}"), &cache);
            let vc = g.state(&format!("v_cache.{l}"), &cache);
            let kc = g.write_rows(kc, k, row0)?;
            let vc = g.write_rows(vc, v, row0)?;
            let params = AttnParams {
                n_heads: nh,
                n_kv_heads: nkv,
                head_dim: d,
                kv_len: row0 + s,
                q_pos0: row0,
                scale: (d as f64).powf(-0.5) as f32,
                softcap: 0.0,
                mask: AttnMask::CAUSAL,
            };
            let a = g.attention(q, kc, vc, params)?;
            let mut a = linear(g, a, &format!("{pre}.self_attn.dense"), h, nh * d)?;
            if let Some(eps) = t.post_attention_rmsnorm_eps {
                let nw = w(g, &format!("{pre}.post_layernorm.weight"), &[h]);
                a = g.rms_norm(a, nw, eps as f32, false)?;
            }
            let m = linear(g, hn, &format!("{pre}.mlp.fc1"), t.intermediate_size, h)?;
            let m = g.act(m, act(t.hidden_act))?;
            let m = linear(g, m, &format!("{pre}.mlp.fc2"), h, t.intermediate_size)?;
            // transformers: `attn_outputs + feed_forward_hidden_states + residual`.
            let sum = g.add(a, m)?;
            x = g.add(sum, x)?;
        }
        layer_norm(g, x, "text.final_layernorm", h, t.layer_norm_eps)
    }

    /// The LM head (with bias): `[rows, hidden]` → `[rows, vocab]`.
    pub fn lm_head(&self, g: &mut Graph, x: TensorId) -> Result<TensorId> {
        let t = &self.cfg;
        linear(g, x, "lm_head", t.vocab_size, t.hidden_size)
    }
}
