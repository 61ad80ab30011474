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

/// What one forward step computes and reads back.
#[derive(Clone, Debug, Default)]
pub struct StepOutputs {
    pub token: Option<TensorId>,
    pub logits: Option<TensorId>,
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
        let last = if rows == 1 {
            hidden
        } else {
            g.rows(hidden, rows - 1, 1)?
        };
        let last_logits = lm_head(g, last)?;
        let tok = choice.apply(g, last_logits)?;
        g.output(tok);
        let logits = if !all_logits {
            None
        } else if rows == 1 {
            Some(last_logits)
        } else {
            Some(lm_head(g, hidden)?)
        };
        if let Some(l) = logits {
            g.output(l);
        }
        Ok(StepOutputs {
            token: Some(tok),
            logits,
        })
    }
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
