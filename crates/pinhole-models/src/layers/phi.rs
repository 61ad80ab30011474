//! The Phi decoder (Phi-1, 1.5, 2), a text model BLIP-2 / TinyGPT-V use. Mirrors transformers'
//! `PhiModel` (modeling_phi.py):
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
//! Weights under the decoder's scope (`text` in BLIP-2): `embed_tokens`, `layers.{l}.*`,
//! `final_layernorm`; the LM head under its own scope (`lm_head`).

use pinhole_core::graph::{AttnMask, Graph, TensorId};
use pinhole_core::hf::PhiConfig;
use pinhole_core::Result;

use super::{act, layer_norm, rms_norm, CachedAttention, Linear, Scope, StepRows};

pub struct PhiDecoder {
    pub cfg: PhiConfig,
}

impl PhiDecoder {
    fn attn(&self) -> CachedAttention {
        let t = &self.cfg;
        CachedAttention {
            heads: t.num_attention_heads,
            kv_heads: t.num_key_value_heads,
            head_dim: t.head_dim,
            scale: (t.head_dim as f64).powf(-0.5) as f32,
            softcap: 0.0,
        }
    }

    /// LayerNorm over each head of `x [S, heads·D]` (q_layernorm / k_layernorm).
    fn head_norm(&self, g: &mut Graph, s: &Scope, x: TensorId, rows: usize, heads: usize) -> Result<TensorId> {
        let d = self.cfg.head_dim;
        let per_head = g.reshape(x, &[rows * heads, d])?;
        let n = layer_norm(g, s, per_head, d, self.cfg.layer_norm_eps)?;
        g.reshape(n, &[rows, heads * d])
    }

    /// The decoder over `x [rows.len, hidden]` (already embedded): writes K/V into the caches,
    /// returns the hidden states after `final_layernorm`. Attention is causal over the cache.
    pub fn forward(&self, g: &mut Graph, s: &Scope, mut x: TensorId, rows: &StepRows) -> Result<TensorId> {
        let t = &self.cfg;
        let (h, d, nh, nkv) = (t.hidden_size, t.head_dim, t.num_attention_heads, t.num_key_value_heads);
        let (eps, rd, n) = (t.layer_norm_eps, t.rotary_dim(), rows.len);
        let cs = rows.rope_table(g, 0, rd, t.rope_theta)?;
        let attn = self.attn();
        for l in 0..t.num_hidden_layers {
            let s = s.pp("layers").pp(l);
            let att = s.pp("self_attn");
            let hn = layer_norm(g, &s.pp("input_layernorm"), x, h, eps)?;
            let mut q = Linear::new(nh * d, h).forward(g, &att.pp("q_proj"), hn)?;
            let mut k = Linear::new(nkv * d, h).forward(g, &att.pp("k_proj"), hn)?;
            let v = Linear::new(nkv * d, h).forward(g, &att.pp("v_proj"), hn)?;
            if t.qk_layernorm {
                q = self.head_norm(g, &att.pp("q_layernorm"), q, n, nh)?;
                k = self.head_norm(g, &att.pp("k_layernorm"), k, n, nkv)?;
            }
            let q = g.rope(q, cs, nh, d, rd)?;
            let k = g.rope(k, cs, nkv, d, rd)?;
            let a = attn.forward(g, l, rows, q, k, v, AttnMask::CAUSAL)?;
            let mut a = Linear::new(h, nh * d).forward(g, &att.pp("dense"), a)?;
            if let Some(eps) = t.post_attention_rmsnorm_eps {
                a = rms_norm(g, &s.pp("post_layernorm"), a, h, eps, false)?;
            }
            let m = Linear::new(t.intermediate_size, h).forward(g, &s.pp("mlp").pp("fc1"), hn)?;
            let m = g.act(m, act(t.hidden_act))?;
            let m = Linear::new(h, t.intermediate_size).forward(g, &s.pp("mlp").pp("fc2"), m)?;
            // transformers: `attn_outputs + feed_forward_hidden_states + residual`.
            let sum = g.add(a, m)?;
            x = g.add(sum, x)?;
        }
        layer_norm(g, &s.pp("final_layernorm"), x, h, eps)
    }

    /// The LM head (with bias) under `s`: `[rows, hidden]` → `[rows, vocab]`.
    pub fn lm_head(&self, g: &mut Graph, s: &Scope, x: TensorId) -> Result<TensorId> {
        Linear::new(self.cfg.vocab_size, self.cfg.hidden_size).forward(g, s, x)
    }
}
