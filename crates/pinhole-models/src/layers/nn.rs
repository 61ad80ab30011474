//! The small layers every architecture is made of: linear maps (f32, f16 or 4-bit weights
//! alike: the dtype is the weight store's business), LayerNorm, RMSNorm, embedding lookup and
//! the activation names of config.json.

use pinhole_core::graph::{Activation, Graph, TensorId};
use pinhole_core::hf::Activation as HfAct;
use pinhole_core::Result;

use super::Scope;

/// The graph activation for a config.json activation.
pub fn act(a: HfAct) -> Activation {
    match a {
        HfAct::GeluTanh => Activation::GeluTanh,
        HfAct::GeluErf => Activation::GeluErf,
    }
}

/// `x · Wᵀ (+ b)` with `W = {scope}.weight [out, inp]` (as Hugging Face stores it) and, with
/// `bias`, `b = {scope}.bias [out]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Linear {
    pub out: usize,
    pub inp: usize,
    pub bias: bool,
}

impl Linear {
    /// With a bias.
    pub fn new(out: usize, inp: usize) -> Linear {
        Linear { out, inp, bias: true }
    }

    pub fn no_bias(out: usize, inp: usize) -> Linear {
        Linear { out, inp, bias: false }
    }

    pub fn forward(&self, g: &mut Graph, s: &Scope, x: TensorId) -> Result<TensorId> {
        let w = s.weight(g, "weight", &[self.out, self.inp]);
        let b = self.bias.then(|| s.weight(g, "bias", &[self.out]));
        g.matmul(x, w, b)
    }
}

/// LayerNorm over the last dim `d` with `{scope}.weight` and `{scope}.bias`.
pub fn layer_norm(g: &mut Graph, s: &Scope, x: TensorId, d: usize, eps: f64) -> Result<TensorId> {
    let w = s.weight(g, "weight", &[d]);
    let b = s.weight(g, "bias", &[d]);
    g.layer_norm(x, w, b, eps as f32)
}

/// RMSNorm over the last dim `d` with `{scope}.weight`: `x / rms(x) · w`, or `· (1 + w)` with
/// `add_one` (Gemma).
pub fn rms_norm(g: &mut Graph, s: &Scope, x: TensorId, d: usize, eps: f64, add_one: bool) -> Result<TensorId> {
    let w = s.weight(g, "weight", &[d]);
    g.rms_norm(x, w, eps as f32, add_one)
}

/// Rows of the table `{scope}.weight [vocab, hidden]` picked by the u32 `ids`.
pub fn embedding(g: &mut Graph, s: &Scope, ids: TensorId, vocab: usize, hidden: usize) -> Result<TensorId> {
    let table = s.weight(g, "weight", &[vocab, hidden]);
    g.embedding(table, ids)
}
