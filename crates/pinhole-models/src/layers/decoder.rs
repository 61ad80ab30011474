//! The Llama-family decoder (Gemma, Gemma 2, Llama / SmolLM2): pre-RMSNorm layers of GQA
//! self-attention with RoPE over a KV cache and a gated MLP.
//!
//! ```text
//! h  = attn(rope(q(n1(x))), rope(k(n1(x))), v(n1(x)))          n1 = input_layernorm
//! x += o(h)            Gemma 2: x += post_attention_layernorm(o(h))
//! x += down(act(gate(n2(x))) · up(n2(x)))                      n2 = post_attention_layernorm,
//!                      Gemma 2: pre_feedforward_layernorm, and post_feedforward_layernorm on the sum's MLP term
//! out = norm(x)
//! ```
//!
//! Weights under the decoder's scope: `layers.{l}.{input_layernorm, post_attention_layernorm,
//! pre_feedforward_layernorm, post_feedforward_layernorm}.weight`,
//! `layers.{l}.self_attn.{q,k,v,o}_proj.weight`, `layers.{l}.mlp.{gate,up,down}_proj.weight`
//! (no biases) and `norm.weight`.

use pinhole_core::graph::{Activation, AttnMask, Graph, TensorId};
use pinhole_core::Result;

use super::{rms_norm, CachedAttention, Linear, Scope, StepRows};

/// `down(act(gate(x)) · up(x))` with `gate_proj`, `up_proj`, `down_proj` (no biases) under `s`.
pub fn gated_mlp(
    g: &mut Graph,
    s: &Scope,
    x: TensorId,
    hidden: usize,
    intermediate: usize,
    act: Activation,
) -> Result<TensorId> {
    let gate = Linear::no_bias(intermediate, hidden).forward(g, &s.pp("gate_proj"), x)?;
    let up = Linear::no_bias(intermediate, hidden).forward(g, &s.pp("up_proj"), x)?;
    let a = g.gated(gate, up, act)?;
    Linear::no_bias(hidden, intermediate).forward(g, &s.pp("down_proj"), a)
}

/// The decoder's shape and its family's choices.
#[derive(Clone, Debug, PartialEq)]
pub struct RmsDecoder {
    pub hidden: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub attn: CachedAttention,
    pub rms_eps: f64,
    /// Gemma's RMSNorm multiplies by `1 + w`.
    pub rms_add_one: bool,
    /// The gate activation (GeGLU: GELU-tanh; SwiGLU: SiLU).
    pub act: Activation,
    /// Gemma 2's extra norms on the attention and MLP outputs.
    pub sandwich_norms: bool,
    pub rope_theta: f64,
    /// Added to sequence positions to get position ids (PaliGemma: 1).
    pub position_offset: usize,
    /// Sliding window of each layer (0 or a missing entry: none).
    pub windows: Vec<usize>,
}

impl RmsDecoder {
    fn norm(&self, g: &mut Graph, s: &Scope, x: TensorId) -> Result<TensorId> {
        rms_norm(g, s, x, self.hidden, self.rms_eps, self.rms_add_one)
    }

    /// The decoder over `x [rows.len, hidden]` (already embedded), which holds sequence
    /// positions `rows.row0 ..`: writes K/V into the caches and returns the hidden states after
    /// the final norm. Attention is causal, except that positions below `prefix_len` see each
    /// other (PaliGemma's image + prompt block; 0 = none).
    pub fn forward(
        &self,
        g: &mut Graph,
        s: &Scope,
        mut x: TensorId,
        rows: &StepRows,
        prefix_len: usize,
    ) -> Result<TensorId> {
        let (h, a) = (self.hidden, &self.attn);
        let (nh, nkv, d) = (a.heads, a.kv_heads, a.head_dim);
        let cs = rows.rope_table(g, self.position_offset, d, self.rope_theta)?;
        for l in 0..self.layers {
            let s = s.pp("layers").pp(l);
            let att = s.pp("self_attn");
            let hn = self.norm(g, &s.pp("input_layernorm"), x)?;
            let q = Linear::no_bias(nh * d, h).forward(g, &att.pp("q_proj"), hn)?;
            let k = Linear::no_bias(nkv * d, h).forward(g, &att.pp("k_proj"), hn)?;
            let v = Linear::no_bias(nkv * d, h).forward(g, &att.pp("v_proj"), hn)?;
            let q = g.rope(q, cs, nh, d, d)?;
            let k = g.rope(k, cs, nkv, d, d)?;
            let mask = AttnMask {
                causal: true,
                prefix_len,
                window: self.windows.get(l).copied().unwrap_or(0),
            };
            let o = a.forward(g, l, rows, q, k, v, mask)?;
            let mut o = Linear::no_bias(h, nh * d).forward(g, &att.pp("o_proj"), o)?;
            if self.sandwich_norms {
                o = self.norm(g, &s.pp("post_attention_layernorm"), o)?;
            }
            x = g.add(x, o)?;
            let pre_mlp = if self.sandwich_norms {
                "pre_feedforward_layernorm"
            } else {
                "post_attention_layernorm"
            };
            let mn = self.norm(g, &s.pp(pre_mlp), x)?;
            let mut m = gated_mlp(g, &s.pp("mlp"), mn, h, self.intermediate, self.act)?;
            if self.sandwich_norms {
                m = self.norm(g, &s.pp("post_feedforward_layernorm"), m)?;
            }
            x = g.add(x, m)?;
        }
        self.norm(g, &s.pp("norm"), x)
    }
}
