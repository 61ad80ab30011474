//! Generation: encode the image (one submit), prefill the prefix (one submit), then one submit
//! per new token. The KV cache and the image features stay on the GPU as executor state; each
//! step reads back one u32, the token id chosen on the GPU by the argmax kernel (greedy) or the
//! sample kernel (with [`Sampling`]).

use std::collections::HashMap;

use pinhole_core::rng::Rng;
use pinhole_core::{SampleParams, Tensor};
use pinhole_gpu::Executor;

use crate::error::{Error, Result};
use crate::layers::{join_rows, TokenChoice};
use crate::loader::LoadedModel;
use crate::processor::{self, ImageInput};

#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub max_new_tokens: usize,
    /// Also read back the logits of every step (tests and `--dump`; slower).
    pub record_logits: bool,
    /// `None`: greedy decoding (argmax), as transformers' default.
    pub sampling: Option<Sampling>,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_new_tokens: 32,
            record_logits: false,
            sampling: None,
        }
    }
}

/// Sampling, as transformers' `do_sample=True` with its logits processors in their order:
/// repetition penalty, temperature, top-k, top-p (see [`SampleParams`] for the exact rules).
/// Each step draws its uniform from `Rng::new(seed)`, so the same seed gives the same output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sampling {
    /// > 0.
    pub temperature: f32,
    /// 0 = off.
    pub top_k: u32,
    /// In (0, 1]; 1 = off.
    pub top_p: f32,
    /// Greater than 0; 1 = off. Penalises every id of the prompt (image tokens included, as transformers
    /// sees `input_ids`) and every generated id.
    pub repetition_penalty: f32,
    pub seed: u64,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            repetition_penalty: 1.0,
            seed: 0,
        }
    }
}

impl Sampling {
    pub fn validate(&self) -> Result<()> {
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(Error::Sampling(format!(
                "temperature must be > 0, got {}",
                self.temperature
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(Error::Sampling(format!("top_p must be in (0, 1], got {}", self.top_p)));
        }
        if !(self.repetition_penalty > 0.0 && self.repetition_penalty.is_finite()) {
            return Err(Error::Sampling(format!(
                "the repetition penalty must be > 0, got {}",
                self.repetition_penalty
            )));
        }
        Ok(())
    }
}

/// The choice for the next step: greedy, or sampling with the next uniform of `rng`.
fn step_choice(sampling: Option<&Sampling>, rng: &mut Rng, prompt: &[u32], generated: &[u32]) -> TokenChoice {
    match sampling {
        None => TokenChoice::Greedy,
        Some(s) => {
            let seen = if s.repetition_penalty != 1.0 {
                let mut v: Vec<u32> = prompt.iter().chain(generated).copied().collect();
                v.sort_unstable();
                v.dedup();
                v
            } else {
                Vec::new()
            };
            TokenChoice::Sample {
                params: SampleParams {
                    temperature: s.temperature,
                    top_k: s.top_k,
                    top_p: s.top_p,
                    uniform: rng.next_f32(),
                },
                repetition_penalty: s.repetition_penalty,
                seen,
            }
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
    /// BLIP-2: the Q-Former output (before the projection).
    pub qformer_out: Option<Tensor>,
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

fn token_of(out: &[Tensor]) -> Result<u32> {
    out.first()
        .and_then(|t| t.as_u32().ok())
        .and_then(|v| v.first().copied())
        .ok_or_else(|| Error::Request("the GPU returned no token".into()))
}

/// Runs generation for one image and prompt. `on_token(id, text_so_far)` is called for each
/// new token as soon as it is known.
pub async fn generate(
    lm: &LoadedModel,
    ex: &mut Executor,
    pixels: impl Into<ImageInput>,
    prompt: &str,
    opts: &GenerateOptions,
    mut on_token: impl FnMut(u32, &str),
) -> Result<Generation> {
    generate_with(lm, ex, pixels, prompt, opts, |id, text| {
        on_token(id, text);
        true
    })
    .await
}

/// [`generate`] whose callback can stop generation: when `on_token` returns `false` no further
/// token is computed and the generation so far is returned (the browser's `AbortSignal` is
/// checked this way, between tokens). `pixels`: a `&Tensor` from [`processor::pixels`], or an
/// [`ImageInput`] from [`processor::image_input`] (which SmolVLM needs: its tiles' grid).
pub async fn generate_with(
    lm: &LoadedModel,
    ex: &mut Executor,
    pixels: impl Into<ImageInput>,
    prompt: &str,
    opts: &GenerateOptions,
    mut on_token: impl FnMut(u32, &str) -> bool,
) -> Result<Generation> {
    let m = &lm.model;
    let image: ImageInput = pixels.into();
    if opts.max_new_tokens == 0 {
        return Err(Error::Request("max_new_tokens must be at least 1".into()));
    }
    if let Some(s) = &opts.sampling {
        s.validate()?;
    }
    let mut rng = Rng::new(opts.sampling.map_or(0, |s| s.seed));
    let ids = processor::prompt_ids_for(m, &lm.tokenizer, prompt, &image)?;
    let s = ids.len();
    // Saturating: `--max-new-tokens 18446744073709551615` is "too long", not a wrapped sum.
    let needed = s.saturating_add(opts.max_new_tokens);
    let limit = m.max_positions();
    if needed > limit {
        return Err(Error::TooLong { needed, limit });
    }
    // Round the cache up so consecutive requests of similar length reuse the same buffers.
    let max_len = needed.div_ceil(64) * 64;
    let max_len = max_len.min(limit.max(needed));
    let rows = processor::image_rows(m, &ids);
    let want_rows = m.image_tokens_for(&image);
    if rows.len() != want_rows {
        return Err(Error::Request(format!(
            "the prompt has {} image tokens, the model expects {want_rows}",
            rows.len(),
        )));
    }
    let eos = m.eos_ids();
    let mut gen = Generation {
        prompt_ids: ids.clone(),
        ..Default::default()
    };

    let t0 = now_ms();
    let debug = opts.record_logits;
    // One image-encode submit per tile (SmolVLM; one tile otherwise); with `debug` each
    // intermediate result is the tiles' rows one after another.
    let mut debug_outs: Vec<Vec<Tensor>> = vec![Vec::new(); m.debug_output_names().len()];
    for k in 0..image.tiles() {
        let mut inputs = HashMap::new();
        inputs.insert("pixels".to_string(), image.tile(k)?);
        let outs = ex
            .run(&m.image_graph(k, debug)?, &lm.weights, &inputs)
            .await
            .map_err(|e| e.during(|| "encoding the image".into()))?;
        if debug {
            for (tiles, t) in debug_outs.iter_mut().zip(outs) {
                tiles.push(t);
            }
        }
    }
    for (name, mut tiles) in m.debug_output_names().iter().zip(debug_outs) {
        let t = match tiles.len() {
            0 | 1 => tiles.pop(),
            _ => Some(join_rows(&tiles.iter().collect::<Vec<_>>())?),
        };
        match *name {
            "vision_out" => gen.vision_out = t,
            "qformer_out" => gen.qformer_out = t,
            "projector_out" => gen.projector_out = t,
            _ => {}
        }
    }
    let t1 = now_ms();
    gen.timings.image_encode_ms = t1 - t0;

    let choice = step_choice(opts.sampling.as_ref(), &mut rng, &ids, &[]);
    let (g, out) = m.prefill_graph(&ids, &rows, max_len, opts.record_logits, &choice)?;
    let res = ex
        .run(&g, &lm.weights, &HashMap::new())
        .await
        .map_err(|e| e.during(|| format!("reading the prompt ({s} tokens)")))?;
    if let Some(l) = out.logits_of(&g, &res)? {
        gen.logits.push(l);
    }
    let mut token = token_of(&res)?;
    let t2 = now_ms();
    gen.timings.prefill_ms = t2 - t1;

    loop {
        gen.token_ids.push(token);
        let text = processor::decode(&lm.tokenizer, &gen.token_ids)?;
        if !on_token(token, &text) {
            break;
        }
        if eos.contains(&token) {
            gen.stopped_on_eos = true;
            break;
        }
        if gen.token_ids.len() >= opts.max_new_tokens {
            break;
        }
        let row = s + gen.token_ids.len() - 1;
        let choice = step_choice(opts.sampling.as_ref(), &mut rng, &ids, &gen.token_ids);
        let (g, out) = m.decode_graph(token, row, s, max_len, opts.record_logits, &choice)?;
        let res = ex
            .run(&g, &lm.weights, &HashMap::new())
            .await
            .map_err(|e| e.during(|| format!("generating token {}", gen.token_ids.len() + 1)))?;
        if let Some(l) = out.logits_of(&g, &res)? {
            gen.logits.push(l);
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
