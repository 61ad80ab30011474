//! The two ends every step graph shares: the prompt's embeddings with the encoded image's rows
//! scattered in, and the tail from the decoder's hidden rows to the next token (greedy or
//! sampled on the GPU) and, when asked, the logits.

use pinhole_core::graph::{Graph, TensorId};
use pinhole_core::{Result, SampleParams, Tensor};

/// The executor state the image-encode graph writes and the prefill graph reads.
pub const IMAGE_FEATURES: &str = "image_features";

/// How a step graph turns its logits into the next token id (always one u32 read back).
#[derive(Clone, Debug, PartialEq)]
pub enum TokenChoice {
    /// `argmax` (first index on ties).
    Greedy,
    /// The sample kernel with this step's parameters, after a repetition penalty on `seen`
    /// (skipped when the penalty is 1 or `seen` is empty).
    Sample {
        params: SampleParams,
        repetition_penalty: f32,
        seen: Vec<u32>,
    },
}

impl TokenChoice {
    /// Appends the token choice to `g` over `logits [rows, V]` → u32 `[rows]`.
    pub fn apply(&self, g: &mut Graph, logits: TensorId) -> Result<TensorId> {
        match self {
            TokenChoice::Greedy => g.argmax(logits),
            TokenChoice::Sample {
                params,
                repetition_penalty,
                seen,
            } => {
                let mut l = logits;
                if *repetition_penalty != 1.0 && !seen.is_empty() {
                    let ids = g.constant(Tensor::u32(&[seen.len()], seen.clone())?);
                    l = g.repetition_penalty(l, ids, *repetition_penalty)?;
                }
                g.sample(l, *params)
            }
        }
    }
}

/// Largest block of logits one output tensor holds: half of the 128 MiB per-binding storage
/// size every WebGPU adapter offers. All of a prompt's logits at a real vocabulary exceed it
/// (260 rows × 257216 × 4 bytes = 268 MB for PaliGemma-3B), so they come out in row chunks.
pub const LOGITS_CHUNK_BYTES: usize = 64 << 20;

/// What one forward step computes and reads back.
#[derive(Clone, Debug, Default)]
pub struct StepOutputs {
    pub token: Option<TensorId>,
    /// With logits asked for: their row chunks in order (one unless `[rows, V]` f32 passes
    /// [`LOGITS_CHUNK_BYTES`]); [`StepOutputs::logits_of`] joins them after the run.
    pub logits: Vec<TensorId>,
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
        Self::from_hidden_in(g, hidden, rows, all_logits, choice, lm_head, LOGITS_CHUNK_BYTES)
    }

    /// [`StepOutputs::from_hidden`] with the logits cut into chunks of at most `chunk_bytes`.
    fn from_hidden_in(
        g: &mut Graph,
        hidden: TensorId,
        rows: usize,
        all_logits: bool,
        choice: &TokenChoice,
        lm_head: impl Fn(&mut Graph, TensorId) -> Result<TensorId>,
        chunk_bytes: usize,
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
            Vec::new()
        } else if rows == 1 {
            vec![last_logits]
        } else {
            let vocab = g.shape(last_logits)?.last().copied().unwrap_or(1).max(1);
            let per_chunk = (chunk_bytes / 4 / vocab).max(1);
            let mut chunks = Vec::with_capacity(rows.div_ceil(per_chunk));
            for r0 in (0..rows).step_by(per_chunk) {
                let n = per_chunk.min(rows - r0);
                let x = if n == rows { hidden } else { g.rows(hidden, r0, n)? };
                chunks.push(lm_head(g, x)?);
            }
            chunks
        };
        for &l in &logits {
            g.output(l);
        }
        Ok(StepOutputs {
            token: Some(tok),
            logits,
        })
    }

    /// The step's logits `[rows, V]` from the results of running its graph `g` (`None` when
    /// they were not asked for): the row chunks joined in order.
    pub fn logits_of(&self, g: &Graph, results: &[Tensor]) -> Result<Option<Tensor>> {
        let mut parts = Vec::with_capacity(self.logits.len());
        for id in &self.logits {
            let i = g
                .outputs
                .iter()
                .position(|o| o == id)
                .ok_or_else(|| pinhole_core::Error::Graph("the step's logits are not among its outputs".into()))?;
            let t = results
                .get(i)
                .ok_or_else(|| pinhole_core::Error::Graph(format!("the run returned no result #{i} (logits)")))?;
            parts.push(t);
        }
        match parts.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some((*one).clone())),
            _ => join_rows(&parts).map(Some),
        }
    }
}

/// The rows of `parts` one after another as one f32 `[rows, width]` tensor (all parts of the
/// same row width): logits chunks, the per-tile outputs of an image encode.
pub fn join_rows(parts: &[&Tensor]) -> Result<Tensor> {
    let width = parts.first().and_then(|t| t.shape.last()).copied().unwrap_or(0);
    if width == 0 || parts.iter().any(|t| t.shape.last() != Some(&width)) {
        let shapes: Vec<_> = parts.iter().map(|t| &t.shape).collect();
        return Err(pinhole_core::Error::Graph(format!(
            "cannot join the rows of {shapes:?}"
        )));
    }
    let mut data = Vec::with_capacity(parts.iter().map(|t| t.numel()).sum());
    for t in parts {
        data.extend_from_slice(t.as_f32()?);
    }
    let rows = data.len() / width;
    Tensor::f32(&[rows, width], data)
}

/// The embeddings of the token `ids` (by `embed`) with rows `image_rows` replaced by the
/// encoded image: the first `image_rows.len()` rows of the state [`IMAGE_FEATURES`]
/// `[image_tokens, hidden]` (all of them for one-tile models; SmolVLM's state has room for
/// the most tiles an image can give, and a smaller image fills only its first rows).
pub fn prompt_embeddings(
    g: &mut Graph,
    ids: &[u32],
    image_rows: &[u32],
    image_tokens: usize,
    hidden: usize,
    embed: impl FnOnce(&mut Graph, TensorId) -> Result<TensorId>,
) -> Result<TensorId> {
    let img = g.state(IMAGE_FEATURES, &[image_tokens, hidden]);
    let img = if image_rows.len() < image_tokens {
        g.rows(img, 0, image_rows.len())?
    } else {
        img
    };
    let idt = g.constant(Tensor::u32(&[ids.len()], ids.to_vec())?);
    let emb = embed(g, idt)?;
    let rows = g.constant(Tensor::u32(&[image_rows.len()], image_rows.to_vec())?);
    g.scatter_rows(emb, img, rows)
}

/// The embeddings of one token (a decode step's input) by `embed`.
pub fn token_embedding(
    g: &mut Graph,
    token: u32,
    embed: impl FnOnce(&mut Graph, TensorId) -> Result<TensorId>,
) -> Result<TensorId> {
    let idt = g.constant(Tensor::u32(&[1], vec![token])?);
    embed(g, idt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pinhole_core::reference::{run_graph, CpuEnv};
    use pinhole_core::DType;
    use std::collections::HashMap;

    /// Logits cut into row chunks join back to exactly the unchunked logits, and the token
    /// still comes from the last row.
    #[test]
    fn logits_in_row_chunks_join_to_the_whole() {
        let (rows, hidden, vocab) = (7, 5, 11);
        let mut seed = 0x9e37_79b9_u32;
        let mut rand = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    (seed % 2001) as f32 / 1000.0 - 1.0
                })
                .collect()
        };
        let x = Tensor::f32(&[rows, hidden], rand(rows * hidden)).unwrap();
        let w = Tensor::f32(&[vocab, hidden], rand(vocab * hidden)).unwrap();
        let run = |chunk_bytes: usize| {
            let mut g = Graph::new();
            let h = g.input("x", &[rows, hidden], DType::F32);
            let head = |g: &mut Graph, x| {
                let w = g.weight("w", &[vocab, hidden], DType::F32);
                g.matmul(x, w, None)
            };
            let out =
                StepOutputs::from_hidden_in(&mut g, h, rows, true, &TokenChoice::Greedy, head, chunk_bytes).unwrap();
            let inputs = HashMap::from([("x".to_string(), x.clone())]);
            let weights = |n: &str| (n == "w").then(|| w.clone());
            let res = run_graph(
                &g,
                CpuEnv {
                    weights: &weights,
                    inputs: &inputs,
                    states: &mut HashMap::new(),
                },
            )
            .unwrap();
            let logits = out.logits_of(&g, &res).unwrap().unwrap();
            (out.logits.len(), logits, res[0].as_u32().unwrap()[0])
        };
        let (n1, whole, tok1) = run(LOGITS_CHUNK_BYTES);
        // 3 rows of 11 f32 per chunk (and a bound below one row still gives one row).
        let (n3, chunked, tok3) = run(3 * vocab * 4 + 7);
        let (n7, single, _) = run(1);
        assert_eq!((n1, n3, n7), (1, 3, 7));
        assert_eq!(whole.shape, vec![rows, vocab]);
        assert_eq!(chunked.shape, whole.shape);
        assert_eq!(chunked.as_f32().unwrap(), whole.as_f32().unwrap());
        assert_eq!(single.as_f32().unwrap(), whole.as_f32().unwrap());
        assert_eq!(tok1, tok3);
        let last = &whole.as_f32().unwrap()[(rows - 1) * vocab..];
        let want = (0..vocab).fold(0, |b, i| if last[i] > last[b] { i } else { b });
        assert_eq!(tok1 as usize, want);
    }
}
