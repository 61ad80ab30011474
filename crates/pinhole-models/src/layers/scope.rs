//! [`Scope`]: where a layer's weights live in the canonical name space, as candle's
//! `VarBuilder::pp`: `Scope::root("vision").pp("encoder").pp("layers").pp(3)` names the weights
//! `vision.encoder.layers.3.*`. A layer takes the scope of its own weights and asks it for them
//! by their last name part, so model files never assemble weight names by hand.

use pinhole_core::graph::{Graph, TensorId};
use pinhole_core::DType;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scope {
    prefix: String,
}

impl Scope {
    /// The top-level scope `name` (`"vision"`, `"text"`, `"proj"`, …).
    pub fn root(name: &str) -> Scope {
        Scope {
            prefix: name.to_string(),
        }
    }

    /// The sub-scope `self.part` (a name or a layer index).
    pub fn pp(&self, part: impl std::fmt::Display) -> Scope {
        Scope {
            prefix: format!("{}.{part}", self.prefix),
        }
    }

    /// The full name of this scope.
    pub fn name(&self) -> &str {
        &self.prefix
    }

    /// The weight `self.leaf` of `shape` in `g`. Weights are declared f32: the executor reads
    /// the storage dtype (f32, f16, 4-bit) from the weight store, so one graph serves all.
    pub fn weight(&self, g: &mut Graph, leaf: &str, shape: &[usize]) -> TensorId {
        g.weight(&format!("{}.{leaf}", self.prefix), shape, DType::F32)
    }

    /// The scope itself as a weight (a parameter that has no `.weight` suffix, such as BLIP-2's
    /// `query_tokens`).
    pub fn tensor(&self, g: &mut Graph, shape: &[usize]) -> TensorId {
        g.weight(&self.prefix, shape, DType::F32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_nest() {
        let s = Scope::root("vision").pp("encoder").pp("layers").pp(3);
        assert_eq!(s.name(), "vision.encoder.layers.3");
        let mut g = Graph::new();
        let w = s.pp("mlp.fc1").weight(&mut g, "weight", &[4, 2]);
        let t = Scope::root("qformer").pp("query_tokens").tensor(&mut g, &[2, 4]);
        let names: Vec<_> = [w, t]
            .iter()
            .map(|id| match &g.value(*id).unwrap().kind {
                pinhole_core::graph::ValueKind::Weight(n) => n.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            names,
            ["vision.encoder.layers.3.mlp.fc1.weight", "qformer.query_tokens"]
        );
    }
}
