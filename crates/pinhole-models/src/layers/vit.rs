//! The pre-LN transformer encoder layer of SigLIP (PaliGemma's vision tower, SmolVLM's) and of
//! BLIP-2's EVA-style ViT:
//!
//! ```text
//! x += out(attn(q(ln1(x)), k(ln1(x)), v(ln1(x))))     bidirectional, head_dim^-0.5
//! x += fc2(act(fc1(ln2(x))))
//! ```
//!
//! Weights under the layer's scope: `layer_norm1`, `layer_norm2`, `self_attn.{q,k,v,out}` (names
//! from [`VitNames`]) and `mlp.fc1`, `mlp.fc2`, all with biases (q/k/v biases optional).

use pinhole_core::graph::{Activation, Graph, TensorId};
use pinhole_core::hf::SiglipVisionConfig;
use pinhole_core::Result;

use super::{act, full_attention, layer_norm, Linear, Scope};

/// The names of the attention projections under `self_attn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VitNames {
    pub q: &'static str,
    pub k: &'static str,
    pub v: &'static str,
    pub out: &'static str,
}

/// SigLIP (`modeling_siglip.py`).
pub const SIGLIP_NAMES: VitNames = VitNames {
    q: "q_proj",
    k: "k_proj",
    v: "v_proj",
    out: "out_proj",
};

/// BLIP-2's ViT after the loader split its fused `qkv` (`modeling_blip_2.py`).
pub const BLIP2_NAMES: VitNames = VitNames {
    q: "q",
    k: "k",
    v: "v",
    out: "projection",
};

/// One pre-LN encoder layer's shape.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VitLayer {
    pub hidden: usize,
    pub intermediate: usize,
    pub heads: usize,
    /// eps of both LayerNorms.
    pub eps: f64,
    pub act: Activation,
    /// Biases on q, k and v (the output projection and the MLP always have them).
    pub qkv_bias: bool,
    pub names: VitNames,
}

impl VitLayer {
    fn head_dim(&self) -> usize {
        self.hidden / self.heads.max(1)
    }

    /// One layer over `x [rows, hidden]`, weights under `s`.
    pub fn forward(&self, g: &mut Graph, s: &Scope, x: TensorId, rows: usize) -> Result<TensorId> {
        let e = self.hidden;
        let att = s.pp("self_attn");
        let h = layer_norm(g, &s.pp("layer_norm1"), x, e, self.eps)?;
        let qkv = Linear {
            out: e,
            inp: e,
            bias: self.qkv_bias,
        };
        let q = qkv.forward(g, &att.pp(self.names.q), h)?;
        let k = qkv.forward(g, &att.pp(self.names.k), h)?;
        let v = qkv.forward(g, &att.pp(self.names.v), h)?;
        let a = full_attention(g, q, k, v, self.heads, self.head_dim(), rows)?;
        let o = Linear::new(e, e).forward(g, &att.pp(self.names.out), a)?;
        let x = g.add(x, o)?;
        let h = layer_norm(g, &s.pp("layer_norm2"), x, e, self.eps)?;
        let h = Linear::new(self.intermediate, e).forward(g, &s.pp("mlp").pp("fc1"), h)?;
        let h = g.act(h, self.act)?;
        let h = Linear::new(e, self.intermediate).forward(g, &s.pp("mlp").pp("fc2"), h)?;
        g.add(x, h)
    }

    /// `layers` of these over `x`, the layer `l`'s weights under `s.l` (`s` is the encoder's
    /// `layers` scope).
    pub fn encoder(&self, g: &mut Graph, s: &Scope, mut x: TensorId, rows: usize, layers: usize) -> Result<TensorId> {
        for l in 0..layers {
            x = self.forward(g, &s.pp(l), x, rows)?;
        }
        Ok(x)
    }
}

/// The SigLIP vision tower (PaliGemma's, and SmolVLM's on each tile): `pixels [3, H, W]` →
/// `[num_patches, hidden]` after `post_layernorm`, weights under `s`: patch embedding +
/// row-major position embeddings, then [`VitLayer`]s with [`SIGLIP_NAMES`].
pub fn siglip_tower(g: &mut Graph, s: &Scope, v: &SiglipVisionConfig, pixels: TensorId) -> Result<TensorId> {
    let (e, p, c, np) = (v.hidden_size, v.patch_size, v.num_channels, v.num_patches());
    let emb = s.pp("embeddings");
    let pw = emb.pp("patch_embedding").weight(g, "weight", &[e, c, p, p]);
    let pb = emb.pp("patch_embedding").weight(g, "bias", &[e]);
    let pos = emb.pp("position_embedding").weight(g, "weight", &[np, e]);
    let x = g.patch_embed(pixels, pw, pb, pos, p)?;
    let layer = VitLayer {
        hidden: e,
        intermediate: v.intermediate_size,
        heads: v.num_attention_heads,
        eps: v.layer_norm_eps,
        act: act(v.hidden_act),
        qkv_bias: true,
        names: SIGLIP_NAMES,
    };
    let x = layer.encoder(g, &s.pp("encoder").pp("layers"), x, np, v.num_hidden_layers)?;
    layer_norm(g, &s.pp("post_layernorm"), x, e, v.layer_norm_eps)
}
