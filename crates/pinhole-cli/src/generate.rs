//! `pinhole generate` and `pinhole caption`: load a model folder, run an image and a prompt.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use pinhole_core::hf::image::DecodeOptions;
use pinhole_core::hf::ChatTemplate;
use pinhole_gpu::{Executor, Gpu, GpuOptions};
use pinhole_models::boxes::parse_boxes;
use pinhole_models::generate::{generate, now_ms};
use pinhole_models::loader::{load_dir, LoadOptions, LoadedModel, WeightPrecision};
use pinhole_models::processor::ImageInput;
use pinhole_models::{processor, GenerateOptions, Generation, Model, Sampling};
use serde_json::json;

/// A progress bar on stderr, shown only when stderr is a terminal.
fn progress_bar(label: &str) -> impl FnMut(u64, u64) + '_ {
    let tty = std::io::stderr().is_terminal();
    move |done, total| {
        if !tty || total == 0 {
            return;
        }
        let frac = done as f64 / total as f64;
        let n = (frac * 30.0) as usize;
        eprint!(
            "\r{label} [{}{}] {:>3.0}% {:.1}/{:.1} MB",
            "#".repeat(n),
            " ".repeat(30 - n.min(30)),
            frac * 100.0,
            done as f64 / 1e6,
            total as f64 / 1e6
        );
        if done >= total {
            eprintln!();
        }
        let _ = std::io::stderr().flush();
    }
}

fn precision(s: Option<&str>) -> Result<WeightPrecision, String> {
    match s {
        None | Some("auto") => Ok(WeightPrecision::Auto),
        Some("f32") => Ok(WeightPrecision::F32),
        Some("f16") => Ok(WeightPrecision::F16),
        Some(o) => Err(format!("--dtype must be auto, f32 or f16 (got '{o}')")),
    }
}

/// `--model DIR`, or the model compiled into the binary when it is not given.
/// `--f16-math`: f16 arithmetic in the prefill/vision GEMM (`Gpu::set_f16_math`), or the
/// error saying the adapter has no shader-f16.
pub(crate) fn set_f16_math(gpu: &Gpu) -> Result<(), String> {
    gpu.set_f16_math(true).map_err(|e| format!("--f16-math: {e}"))
}

fn model_arg(args: &crate::args::Args) -> Option<PathBuf> {
    args.opt("model").map(PathBuf::from)
}

/// Opens the GPU (with f16 math on when `f16_math`, checked before the model loads) and loads
/// the model folder `dir` (the bundled model without one).
fn open_model(
    dir: Option<&Path>,
    dtype: Option<&str>,
    f16_math: bool,
) -> Result<(std::sync::Arc<Gpu>, LoadedModel, f64), String> {
    let gpu = pinhole_gpu::open_blocking(&GpuOptions::from_env()).map_err(|e| e.to_string())?;
    if f16_math {
        set_f16_math(&gpu)?;
    }
    let t0 = now_ms();
    let opts = LoadOptions {
        precision: precision(dtype)?,
    };
    let lm = match dir {
        Some(dir) => load_dir(&gpu, dir, &opts, progress_bar("loading")).map_err(|e| e.to_string())?,
        None => crate::bundled::load(&gpu, &opts)?,
    };
    Ok((gpu, lm, now_ms() - t0))
}

fn read_image(lm: &LoadedModel, path: &Path, opts: DecodeOptions) -> Result<ImageInput, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read the image: {e}", path.display()))?;
    processor::image_input_with(&lm.model, &bytes, &path.display().to_string(), opts).map_err(|e| e.to_string())
}

/// `--no-exif-orientation`: use the pixels as stored instead of turning the image upright by
/// its EXIF orientation (which transformers' `load_image` applies, and so pinhole by default).
fn decode_options(args: &crate::args::Args) -> DecodeOptions {
    DecodeOptions {
        apply_orientation: !args.flag("no-exif-orientation"),
    }
}

/// The prompt when `--prompt` is not given: PaliGemma's captioning task, no text for BLIP-2
/// (the image queries alone, as `processor(images=img)` captioning), a question for chat
/// models (SmolVLM).
pub(crate) fn default_prompt(model: &Model) -> &'static str {
    model.default_prompt()
}

/// The text the model gets: for chat models (SmolVLM) `question` as one user turn with the
/// image first, through the folder's chat template with the generation prompt, as
/// `apply_chat_template(messages, add_generation_prompt=True)`; with `raw` as it is (it must
/// then hold `<image>`). Other families take the prompt as it is.
pub(crate) fn model_prompt(lm: &LoadedModel, question: &str, raw: bool) -> Result<String, String> {
    if raw || !lm.model.is_chat() {
        return Ok(question.to_string());
    }
    let template = ChatTemplate::load_dir(&lm.dir)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "{}: no chat template (chat_template.jinja, chat_template.json, processor_config.json or \
             tokenizer_config.json); pass --raw-prompt with a prompt that holds <image>",
                lm.dir
            )
        })?;
    template
        .render(&ChatTemplate::image_question(question), true)
        .map_err(|e| e.to_string())
}

pub fn caption(argv: &[String]) -> Result<(), String> {
    let args = crate::args::parse(
        argv,
        &["no-exif-orientation", "raw-prompt"],
        &["model", "max-new-tokens", "dtype", "prompt"],
    )?;
    if args.positional.is_empty() {
        return Err("give at least one image: `pinhole caption [--model DIR] IMAGE...`".into());
    }
    let (gpu, lm, _) = open_model(model_arg(&args).as_deref(), args.opt("dtype"), false)?;
    let mut ex = Executor::new(gpu);
    let opts = GenerateOptions {
        max_new_tokens: args.num("max-new-tokens", 32)?,
        record_logits: false,
        sampling: None,
    };
    let prompt = model_prompt(
        &lm,
        args.opt("prompt").unwrap_or(default_prompt(&lm.model)),
        args.flag("raw-prompt"),
    )?;
    // An image that cannot be read is reported (one line naming it) and the batch goes on;
    // the exit status says that something failed.
    let mut failed = 0;
    for img in &args.positional {
        let px = match read_image(&lm, Path::new(img), decode_options(&args)) {
            Ok(px) => px,
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
                continue;
            }
        };
        let g =
            pollster::block_on(generate(&lm, &mut ex, &px, &prompt, &opts, |_, _| {})).map_err(|e| e.to_string())?;
        outln!("{}", g.text.trim());
    }
    if failed > 0 {
        return Err(format!(
            "{failed} of {} images could not be read (named above); the others were captioned",
            args.positional.len()
        ));
    }
    Ok(())
}

pub fn run(argv: &[String]) -> Result<(), String> {
    let args = crate::args::parse(
        argv,
        &["json", "stream", "no-exif-orientation", "raw-prompt", "f16-math"],
        &[
            "model",
            "image",
            "prompt",
            "max-new-tokens",
            "dump",
            "dtype",
            "temperature",
            "top-k",
            "top-p",
            "repetition-penalty",
            "seed",
        ],
    )?;
    let sampling = sampling_args(&args)?;
    let dir = model_arg(&args);
    let image = args.opt("image").ok_or("--image IMG is required")?;
    let dump = args.opt("dump").map(PathBuf::from);
    // Checked before the model is loaded, not after a whole generation.
    if let Some(d) = dump.as_deref().filter(|d| d.exists() && !d.is_dir()) {
        return Err(format!(
            "--dump {}: is a file, not a folder; give a folder to write dump.safetensors into",
            d.display()
        ));
    }
    let (gpu, lm, load_ms) = open_model(dir.as_deref(), args.opt("dtype"), args.flag("f16-math"))?;
    let prompt = model_prompt(
        &lm,
        args.opt("prompt").unwrap_or(default_prompt(&lm.model)),
        args.flag("raw-prompt"),
    )?;
    let px = read_image(&lm, Path::new(image), decode_options(&args))?;
    let mut ex = Executor::new(gpu.clone());
    let opts = GenerateOptions {
        max_new_tokens: args.num("max-new-tokens", 32)?,
        record_logits: dump.is_some(),
        sampling,
    };
    let json_out = args.flag("json");
    let stream = args.flag("stream") && !json_out;
    let mut shown = 0usize;
    let g = pollster::block_on(generate(&lm, &mut ex, &px, &prompt, &opts, |_, text| {
        if stream && text.len() > shown && text.is_char_boundary(shown) {
            out!("{}", &text[shown..]);
            let _ = std::io::stdout().flush();
            shown = text.len();
        }
    }))
    .map_err(|e| e.to_string())?;
    if let Some(d) = &dump {
        write_dump(d, &px.pixels, &g)?;
    }
    if json_out {
        let boxes: Vec<_> = parse_boxes(
            &processor::decode_with_special(&lm.tokenizer, &g.token_ids).unwrap_or_default(),
        )
        .into_iter()
        .map(|b| json!({"label": b.label, "x_min": b.x_min, "y_min": b.y_min, "x_max": b.x_max, "y_max": b.y_max}))
        .collect();
        let v = json!({
            "model_family": lm.model.family(),
            "token_ids": g.token_ids,
            "text": g.text,
            "prompt_ids": g.prompt_ids,
            "stopped_on_eos": g.stopped_on_eos,
            "boxes": boxes,
            "timings": {
                "load_ms": load_ms,
                "image_encode_ms": g.timings.image_encode_ms,
                "prefill_ms": g.timings.prefill_ms,
                "decode_ms": g.timings.decode_ms,
                "tokens_per_s": g.timings.tokens_per_s,
            },
            "adapter": crate::info::adapter_json(&gpu.adapter),
            "gpu_bytes": {
                "weights": lm.weights.bytes(),
                "kv_cache_and_state": ex.state_bytes(),
                "activations": ex.stats.pooled_bytes,
            },
        });
        outln!("{v}");
    } else if stream {
        outln!();
    } else {
        outln!("{}", g.text.trim());
    }
    Ok(())
}

/// Any of `--temperature`, `--top-k`, `--top-p`, `--repetition-penalty`, `--seed` turns
/// sampling on (the others default to off, the seed to 0); without them decoding is greedy.
fn sampling_args(args: &crate::args::Args) -> Result<Option<Sampling>, String> {
    let names = ["temperature", "top-k", "top-p", "repetition-penalty", "seed"];
    if names.iter().all(|o| args.opt(o).is_none()) {
        return Ok(None);
    }
    let d = Sampling::default();
    let s = Sampling {
        temperature: args.num("temperature", d.temperature)?,
        top_k: args.num("top-k", d.top_k)?,
        top_p: args.num("top-p", d.top_p)?,
        repetition_penalty: args.num("repetition-penalty", d.repetition_penalty)?,
        seed: args.num("seed", d.seed)?,
    };
    if s.temperature.is_nan() || s.temperature <= 0.0 {
        return Err(format!("--temperature must be > 0 (got {})", s.temperature));
    }
    if !(s.top_p > 0.0 && s.top_p <= 1.0) {
        return Err(format!("--top-p must be in (0, 1] (got {})", s.top_p));
    }
    if s.repetition_penalty.is_nan() || s.repetition_penalty <= 0.0 {
        return Err(format!(
            "--repetition-penalty must be > 0 (got {})",
            s.repetition_penalty
        ));
    }
    s.validate().map_err(|e| e.to_string())?;
    Ok(Some(s))
}

/// `--dump DIR`: pixels, vision (and BLIP-2 Q-Former) and projector outputs, prefill logits as safetensors. Written
/// to a temporary name and renamed, so a failure leaves nothing half-written.
fn write_dump(dir: &Path, px: &pinhole_core::Tensor, g: &Generation) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut tensors: Vec<(&str, &pinhole_core::Tensor)> = vec![("pixel_values", px)];
    if let Some(t) = &g.vision_out {
        tensors.push(("vision_out", t));
    }
    if let Some(t) = &g.qformer_out {
        tensors.push(("qformer_out", t));
    }
    if let Some(t) = &g.projector_out {
        tensors.push(("projector_out", t));
    }
    if let Some(t) = g.logits.first() {
        tensors.push(("prefill_logits", t));
    }
    let bytes = crate::st_write::serialize(&tensors)?;
    let tmp = dir.join(".dump.safetensors.tmp");
    let fin = dir.join("dump.safetensors");
    std::fs::write(&tmp, bytes).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, &fin).map_err(|e| format!("{}: {e}", fin.display()))?;
    Ok(())
}
