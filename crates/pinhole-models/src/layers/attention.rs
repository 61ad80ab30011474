//! Attention: the bidirectional kind of vision encoders and the Q-Former, and the decoder kind
//! that writes K/V into per-layer cache states and attends over them. Both use the one fused
//! attention op of the graph; the mask (causal, prefix block, sliding window) is the caller's.

use pinhole_core::graph::{AttnMask, AttnParams, Graph, TensorId};
use pinhole_core::Result;

/// Softmax attention of every query row over all `kv_len` key rows (no mask), scaled by
/// `head_dim^-0.5`: ViT self-attention and the Q-Former's self- and cross-attention.
pub fn full_attention(
    g: &mut Graph,
    q: TensorId,
    k: TensorId,
    v: TensorId,
    heads: usize,
    head_dim: usize,
    kv_len: usize,
) -> Result<TensorId> {
    let params = AttnParams {
        n_heads: heads,
        n_kv_heads: heads,
        head_dim,
        kv_len,
        q_pos0: 0,
        scale: (head_dim as f64).powf(-0.5) as f32,
        softcap: 0.0,
        mask: AttnMask::FULL,
    };
    g.attention(q, k, v, params)
}

/// The rows one decoder step computes: sequence positions `row0 .. row0 + len` of a context
/// (KV cache) of `max_len` positions. Prefill is `row0 = 0, len = prompt length`; a decode step
/// is `len = 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepRows {
    pub row0: usize,
    pub len: usize,
    pub max_len: usize,
}

impl StepRows {
    /// The cos/sin table of the step's rows for RoPE over `rotary_dim` dims; a row's position
    /// id is its sequence position plus `offset` (PaliGemma counts from 1).
    pub fn rope_table(&self, g: &mut Graph, offset: usize, rotary_dim: usize, theta: f64) -> Result<TensorId> {
        let positions: Vec<u32> = (self.row0..self.row0 + self.len).map(|i| (i + offset) as u32).collect();
        g.rope_table(&positions, rotary_dim, theta as f32)
    }
}

/// A decoder's self-attention over its KV cache (GQA when `kv_heads < heads`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CachedAttention {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Multiplies q·k.
    pub scale: f32,
    /// `cap · tanh(score / cap)` when > 0 (Gemma 2).
    pub softcap: f32,
}

impl CachedAttention {
    /// Shape of each layer's K and V cache states for a context of `max_len` positions.
    pub fn cache_shape(&self, max_len: usize) -> [usize; 2] {
        [max_len, self.kv_heads * self.head_dim]
    }

    /// Writes this step's `k` and `v` rows (after RoPE) into the states `k_cache.{layer}` and
    /// `v_cache.{layer}`, then attends the `q` rows over cache rows `0 .. row0 + len` with `mask`.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        g: &mut Graph,
        layer: usize,
        rows: &StepRows,
        q: TensorId,
        k: TensorId,
        v: TensorId,
        mask: AttnMask,
    ) -> Result<TensorId> {
        let cache = self.cache_shape(rows.max_len);
        let kc = g.state(&format!("k_cache.{layer}"), &cache);
        let vc = g.state(&format!("v_cache.{layer}"), &cache);
        let kc = g.write_rows(kc, k, rows.row0)?;
        let vc = g.write_rows(vc, v, rows.row0)?;
        let params = AttnParams {
            n_heads: self.heads,
            n_kv_heads: self.kv_heads,
            head_dim: self.head_dim,
            kv_len: rows.row0 + rows.len,
            q_pos0: rows.row0,
            scale: self.scale,
            softcap: self.softcap,
            mask,
        };
        g.attention(q, kc, vc, params)
    }
}
