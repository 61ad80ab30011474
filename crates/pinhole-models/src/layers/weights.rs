//! The weight list of a model, read off the graphs it builds: every weight value of the
//! graphs, with the shape the graph declares. The loaders check a checkpoint against this list
//! before reading any data, so the pre-flight check and the graphs cannot disagree (there is no
//! second, hand-written list to forget).
//!
//! A weight is a *matrix* (stored in the model's matrix dtype: f32, f16 or 4-bit) when some op
//! reads it as the weight of a matmul or as an embedding table; every other weight (norms,
//! biases, position and class embeddings, the patch-embedding kernel) stays f32.

use std::collections::HashMap;

use pinhole_core::graph::{Graph, Op, ValueKind};
use pinhole_core::{Error, Result};

/// One weight the model needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExpectedWeight {
    pub name: String,
    pub shape: Vec<usize>,
    /// A linear weight or the embedding table (stored in the model's matrix dtype).
    pub matrix: bool,
}

/// Every weight `graphs` read, in the order of first use (the order of the loaders' checks and
/// so of their first error). A name declared twice with different shapes is an error: the
/// model code disagrees with itself.
pub fn weights_of<'a>(graphs: impl IntoIterator<Item = &'a Graph>) -> Result<Vec<ExpectedWeight>> {
    let mut out: Vec<ExpectedWeight> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for g in graphs {
        // Value id → position in `out`, for this graph's weights.
        let mut here: HashMap<usize, usize> = HashMap::new();
        for (id, v) in g.values.iter().enumerate() {
            let ValueKind::Weight(name) = &v.kind else {
                continue;
            };
            let at = match index.get(name) {
                Some(&i) => {
                    if out[i].shape != v.shape {
                        return Err(Error::Graph(format!(
                            "weight '{name}' is declared as {:?} and as {:?}",
                            out[i].shape, v.shape
                        )));
                    }
                    i
                }
                None => {
                    index.insert(name.clone(), out.len());
                    out.push(ExpectedWeight {
                        name: name.clone(),
                        shape: v.shape.clone(),
                        matrix: false,
                    });
                    out.len() - 1
                }
            };
            here.insert(id, at);
        }
        for v in &g.values {
            let m = match &v.kind {
                ValueKind::Op(Op::MatMul { w, .. }) => w,
                ValueKind::Op(Op::Embedding { table, .. }) => table,
                _ => continue,
            };
            if let Some(&i) = here.get(&m.0) {
                out[i].matrix = true;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{embedding, layer_norm, Linear, Scope};
    use pinhole_core::{DType, Tensor};

    #[test]
    fn weights_come_from_the_graph_with_their_role() {
        let mut g = Graph::new();
        let x = g.input("x", &[2, 4], DType::F32);
        let s = Scope::root("m");
        let h = layer_norm(&mut g, &s.pp("ln"), x, 4, 1e-5).unwrap();
        Linear::new(3, 4).forward(&mut g, &s.pp("fc"), h).unwrap();
        let mut g2 = Graph::new();
        let ids = g2.constant(Tensor::u32(&[1], vec![0]).unwrap());
        embedding(&mut g2, &s.pp("emb"), ids, 5, 4).unwrap();
        // A second use of a weight in another graph adds nothing.
        let x2 = g2.input("x", &[1, 4], DType::F32);
        Linear::new(3, 4).forward(&mut g2, &s.pp("fc"), x2).unwrap();
        let w = weights_of([&g, &g2]).unwrap();
        let got: Vec<_> = w.iter().map(|w| (w.name.as_str(), w.shape.clone(), w.matrix)).collect();
        assert_eq!(
            got,
            [
                ("m.ln.weight", vec![4], false),
                ("m.ln.bias", vec![4], false),
                ("m.fc.weight", vec![3, 4], true),
                ("m.fc.bias", vec![3], false),
                ("m.emb.weight", vec![5, 4], true),
            ]
        );
    }

    #[test]
    fn disagreeing_shapes_are_an_error() {
        let mut g = Graph::new();
        let x = g.input("x", &[1, 4], DType::F32);
        Linear::new(3, 4).forward(&mut g, &Scope::root("fc"), x).unwrap();
        let y = g.input("y", &[1, 5], DType::F32);
        Linear::new(3, 5).forward(&mut g, &Scope::root("fc"), y).unwrap();
        let e = weights_of([&g]).unwrap_err().to_string();
        assert!(
            e.contains("fc.weight") && e.contains("[3, 4]") && e.contains("[3, 5]"),
            "{e}"
        );
    }
}
