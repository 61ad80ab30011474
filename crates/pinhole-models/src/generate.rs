//! Generation: encode the image (one submit), prefill the prefix (one submit), then one submit
//! per new token. The KV cache and the image features stay on the GPU as executor state; each
//! step reads back one u32, the token id chosen by the argmax kernel.

use std::collections::HashMap;

use pinhole_core::{Graph, Tensor};
use pinhole_gpu::Executor;

use crate::error::{Error, Result};
use crate::loader::LoadedModel;
use crate::paligemma::PaliGemma;
use crate::processor;

#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    /// Also read back the logits of every step (tests and `--dump`; slower).
    pub record_logits: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_new_tokens: 32,
            record_logits: false,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Timings {
    pub image_encode_ms: f64,
    pub prefill_ms: f64,
    pub decode_ms: f64,
    pub tokens_per_s: f64,
}

#[derive(Clone, Debug, Default)]
pub struct Generation {
    pub prompt_ids: Vec<u32>,
    /// Generated ids, including the EOS id when generation stopped on it.
    pub token_ids: Vec<u32>,
    pub text: String,
    pub stopped_on_eos: bool,
    pub timings: Timings,
    /// With `record_logits`: prefill logits `[S, V]` then one `[1, V]` per decode step.
    pub logits: Vec<Tensor>,
    pub vision_out: Option<Tensor>,
    pub projector_out: Option<Tensor>,
}

/// Milliseconds from a monotonic-enough clock on every target.
pub fn now_ms() -> f64 {
    #[cfg(target_arch = "wasm32")]
    {
        js_sys::Date::now()
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::sync::OnceLock;
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        START.get_or_init(std::time::Instant::now).elapsed().as_secs_f64() * 1e3
    }
}

fn eos_ids(m: &PaliGemma) -> Vec<u32> {
    let g = &m.generation.eos_token_ids;
    if !g.is_empty() {
        return g.clone();
    }
    if !m.cfg.eos_token_ids.is_empty() {
        return m.cfg.eos_token_ids.clone();
    }
    m.cfg.text.eos_token_ids.clone()
}

fn token_of(out: &[Tensor]) -> Result<u32> {
    out.first()
        .and_then(|t| t.as_u32().ok())
        .and_then(|v| v.first().copied())
        .ok_or_else(|| Error::Request("the GPU returned no token".into()))
}

/// Image-encode graph: pixels → vision tower → projector → / sqrt(hidden), stored in the
/// executor state "image_features" (so several prompts can reuse one encoded image).
fn image_graph(m: &PaliGemma, debug: bool) -> Result<Graph> {
    let mut g = Graph::new();
    let v = &m.cfg.vision;
    let px = g.input(
        "pixels",
        &[v.num_channels, v.image_size, v.image_size],
        pinhole_core::DType::F32,
    );
    let vis = m.vision_tower(&mut g, px)?;
    let proj = m.projector(&mut g, vis)?;
    let scaled = g.scale(proj, 1.0 / (m.cfg.text.hidden_size as f64).sqrt() as f32)?;
    let st = g.state("image_features", &[m.num_image_tokens(), m.cfg.text.hidden_size]);
    g.write_rows(st, scaled, 0)?;
    if debug {
        g.output(vis);
        g.output(proj);
    }
    Ok(g)
}

/// Runs generation for one image and prompt. `on_token(id, text_so_far)` is called for each
/// new token as soon as it is known.
pub async fn generate(
    lm: &LoadedModel,
    ex: &mut Executor,
    pixels: &Tensor,
    prompt: &str,
    opts: &GenerateOptions,
    mut on_token: impl FnMut(u32, &str),
) -> Result<Generation> {
    let m = &lm.model;
    if opts.max_new_tokens == 0 {
        return Err(Error::Request("max_new_tokens must be at least 1".into()));
    }
    let ids = processor::prompt_ids(m, &lm.tokenizer, prompt)?;
    let s = ids.len();
    let needed = s + opts.max_new_tokens;
    let limit = m.cfg.text.max_position_embeddings;
    if needed > limit {
        return Err(Error::TooLong { needed, limit });
    }
    // Round the cache up so consecutive requests of similar length reuse the same buffers.
    let max_len = needed.div_ceil(64) * 64;
    let max_len = max_len.min(limit.max(needed));
    let rows = processor::image_rows(m, &ids);
    if rows.len() != m.num_image_tokens() {
        return Err(Error::Request(format!(
            "the prompt has {} image tokens, the model expects {}",
            rows.len(),
            m.num_image_tokens()
        )));
    }
    let eos = eos_ids(m);
    let mut gen = Generation {
        prompt_ids: ids.clone(),
        ..Default::default()
    };

    let mut inputs = HashMap::new();
    inputs.insert("pixels".to_string(), pixels.clone());
    let t0 = now_ms();
    let debug = opts.record_logits;
    let outs = ex.run(&image_graph(m, debug)?, &lm.weights, &inputs).await?;
    if debug {
        gen.vision_out = outs.first().cloned();
        gen.projector_out = outs.get(1).cloned();
    }
    let t1 = now_ms();
    gen.timings.image_encode_ms = t1 - t0;

    let (g, out) = m.prefill_graph_from_state(&ids, &rows, max_len, opts.record_logits)?;
    let res = ex.run(&g, &lm.weights, &HashMap::new()).await?;
    if let Some(i) = out.logits.and_then(|id| g.outputs.iter().position(|o| *o == id)) {
        gen.logits.push(res[i].clone());
    }
    let mut token = token_of(&res)?;
    let t2 = now_ms();
    gen.timings.prefill_ms = t2 - t1;

    loop {
        gen.token_ids.push(token);
        let text = processor::decode(&lm.tokenizer, &gen.token_ids)?;
        on_token(token, &text);
        if eos.contains(&token) {
            gen.stopped_on_eos = true;
            break;
        }
        if gen.token_ids.len() >= opts.max_new_tokens {
            break;
        }
        let row = s + gen.token_ids.len() - 1;
        let (g, out) = m.decode_graph(token, row, s, max_len, opts.record_logits)?;
        let res = ex.run(&g, &lm.weights, &HashMap::new()).await?;
        if let Some(i) = out.logits.and_then(|id| g.outputs.iter().position(|o| *o == id)) {
            gen.logits.push(res[i].clone());
        }
        token = token_of(&res)?;
    }
    let t3 = now_ms();
    gen.timings.decode_ms = t3 - t2;
    let decoded = gen.token_ids.len().saturating_sub(1);
    gen.timings.tokens_per_s = if t3 > t2 && decoded > 0 {
        decoded as f64 / ((t3 - t2) / 1e3)
    } else {
        0.0
    };
    gen.text = processor::decode(&lm.tokenizer, &gen.token_ids)?;
    Ok(gen)
}
