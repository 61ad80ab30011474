//! `pinhole bench model`: end-to-end timings of one model folder on this adapter: load (and
//! MB/s), image encode, prefill, time to first token, decode tokens/s, dispatches and host
//! CPU time per decode step, weight bytes read per token and the decode roofline fraction
//! (bytes per token ÷ decode time per token ÷ the copy kernel's bandwidth on the same
//! adapter, measured in the same run). Medians over `--runs` generations after one warm-up.
//!
//! Host CPU time per decode step is the calling thread's CPU time between two tokens (read
//! from `/proc/thread-self/schedstat`, Linux): building the step graph, encoding and
//! submitting it, reading the token back and decoding its text. The rest of the step's wall
//! time is waiting on the GPU (on a CPU adapter such as llvmpipe the "GPU" work runs on the
//! driver's own threads, so it is not counted as host time).

use std::path::{Path, PathBuf};

use pinhole_core::hf::image::Rgb8Image;
use pinhole_gpu::{Executor, GpuOptions};
use pinhole_models::generate::{generate, now_ms};
use pinhole_models::loader::{load_dir, LoadOptions, LoadedModel, WeightPrecision};
use pinhole_models::processor::{self, ImageInput};
use pinhole_models::GenerateOptions;
use serde_json::json;

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// CPU time of the calling thread in ms, where the platform tells it.
fn thread_cpu_ms() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns: u64 = s.split_whitespace().next()?.parse().ok()?;
    Some(ns as f64 / 1e6)
}

/// A deterministic test picture (colour bars and a disc) when no `--image` is given, as the
/// model's processor makes it (SmolVLM: its tiles).
fn test_picture(lm: &LoadedModel) -> Result<ImageInput, String> {
    let (w, h) = (320usize, 240usize);
    let mut rgb = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = (x as i64 - 200, y as i64 - 120);
            let px = if dx * dx + dy * dy < 60 * 60 {
                [220, 40, 40]
            } else {
                [(x * 255 / w) as u8, (y * 255 / h) as u8, 128]
            };
            rgb.extend_from_slice(&px);
        }
    }
    let img = Rgb8Image::new(w, h, rgb).map_err(|e| e.to_string())?;
    processor::image_input_rgb(&lm.model, &img, "the test picture").map_err(|e| e.to_string())
}

/// Bytes of the safetensors files in `dir`.
fn checkpoint_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().ends_with(".safetensors"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Weight bytes one decode step reads: every text-decoder weight and the LM head. With a tied
/// head the embedding table is read whole by the logits matmul; with a separate head the
/// embedding gather reads one row.
pub fn decode_weight_bytes(lm: &LoadedModel) -> u64 {
    let has_head = lm.weights.iter().any(|(n, _)| n.starts_with("lm_head."));
    lm.weights
        .iter()
        .filter(|(n, _)| n.starts_with("text.") || n.starts_with("lm_head."))
        .map(|(n, t)| {
            if has_head && n.starts_with("text.") && n.contains("embed_tokens") {
                t.bytes() / t.rows().max(1) as u64
            } else {
                t.bytes()
            }
        })
        .sum()
}

/// The storage of the model's matrices as stored on the GPU: "q4" when the folder was 4-bit
/// (its matrices stay 4-bit whatever `--dtype` says), else the float precision loaded.
fn weight_dtype_label(lm: &LoadedModel) -> String {
    if lm
        .weights
        .iter()
        .any(|(_, t)| matches!(t.dtype, pinhole_core::DType::Q4(_)))
    {
        return "q4".into();
    }
    format!("{:?}", pinhole_models::loader::model_matrix_dtype(&lm.model)).to_lowercase()
}

struct Run {
    image_ms: f64,
    prefill_ms: f64,
    ttft_ms: f64,
    tokens: Vec<u32>,
    /// Per decode step (token 2 onwards): wall ms and the thread's CPU ms.
    step_ms: Vec<f64>,
    step_cpu_ms: Vec<f64>,
    dispatches: usize,
}

fn one_run(lm: &LoadedModel, ex: &mut Executor, px: &ImageInput, prompt: &str, n: usize) -> Result<Run, String> {
    let opts = GenerateOptions {
        max_new_tokens: n,
        ..Default::default()
    };
    let d0 = ex.stats.dispatches;
    let mut marks: Vec<(f64, Option<f64>)> = Vec::new();
    let t0 = now_ms();
    let g = pollster::block_on(generate(lm, ex, px, prompt, &opts, |_, _| {
        marks.push((now_ms(), thread_cpu_ms()));
    }))
    .map_err(|e| e.to_string())?;
    let ttft_ms = marks.first().map_or(f64::NAN, |m| m.0 - t0);
    let mut step_ms = Vec::new();
    let mut step_cpu_ms = Vec::new();
    for w in marks.windows(2) {
        step_ms.push(w[1].0 - w[0].0);
        if let (Some(a), Some(b)) = (w[0].1, w[1].1) {
            step_cpu_ms.push(b - a);
        }
    }
    Ok(Run {
        image_ms: g.timings.image_encode_ms,
        prefill_ms: g.timings.prefill_ms,
        ttft_ms,
        tokens: g.token_ids,
        step_ms,
        step_cpu_ms,
        dispatches: ex.stats.dispatches - d0,
    })
}

pub fn run(argv: &[String]) -> Result<(), String> {
    let args = crate::args::parse(
        argv,
        &["json", "no-fuse", "f16-math"],
        &["model", "image", "prompt", "max-new-tokens", "runs", "dtype", "copy-mb"],
    )?;
    let dir = PathBuf::from(args.opt("model").ok_or("--model DIR is required")?);
    let runs: usize = args.num("runs", 3)?;
    let n: usize = args.num("max-new-tokens", 16)?;
    if runs == 0 || n < 2 {
        return Err("--runs must be at least 1 and --max-new-tokens at least 2".into());
    }
    let precision = match args.opt("dtype") {
        None | Some("auto") => WeightPrecision::Auto,
        Some("f32") => WeightPrecision::F32,
        Some("f16") => WeightPrecision::F16,
        Some(o) => return Err(format!("--dtype must be auto, f32 or f16 (got '{o}')")),
    };
    let json_out = args.flag("json");
    let say = |s: &str| {
        if !json_out {
            eprintln!("  {s}");
        }
    };
    let gpu = pinhole_gpu::open_blocking(&GpuOptions::from_env()).map_err(|e| e.to_string())?;
    // --f16-math: f16 arithmetic in the prefill/vision GEMM; checked before the model loads.
    if args.flag("f16-math") {
        crate::generate::set_f16_math(&gpu)?;
    }

    say("loading …");
    let t0 = now_ms();
    let lm = load_dir(&gpu, &dir, &LoadOptions { precision }, |_, _| {}).map_err(|e| e.to_string())?;
    gpu.wait_idle().map_err(|e| e.to_string())?;
    let load_ms = now_ms() - t0;
    let file_bytes = checkpoint_bytes(&dir);

    let px = match args.opt("image") {
        Some(p) => {
            let bytes = std::fs::read(p).map_err(|e| format!("{p}: cannot read the image: {e}"))?;
            processor::image_input(&lm.model, &bytes, p).map_err(|e| e.to_string())?
        }
        None => test_picture(&lm)?,
    };
    let question = args.opt("prompt").unwrap_or(crate::generate::default_prompt(&lm.model));
    let prompt_text = crate::generate::model_prompt(&lm, question, false)?;
    let prompt = prompt_text.as_str();
    let mut ex = Executor::new(gpu.clone());
    // --no-fuse: every matmul and the add or activation after it as separate dispatches
    // (the executor's epilogue fusion off), to measure what fusing saves.
    ex.fuse = !args.flag("no-fuse");

    // Warm-up (pipelines compiled, buffers pooled), then the dispatches of image + prefill
    // alone, so that the rest of a run's dispatches are the decode steps'.
    say("warm-up …");
    one_run(&lm, &mut ex, &px, prompt, 2)?;
    let base = one_run(&lm, &mut ex, &px, prompt, 1)?.dispatches;
    let mut all = Vec::new();
    for i in 0..runs {
        say(&format!("run {}/{runs} …", i + 1));
        all.push(one_run(&lm, &mut ex, &px, prompt, n)?);
    }
    let tokens = all[0].tokens.clone();
    if all.iter().any(|r| r.tokens != tokens) {
        return Err("the runs generated different tokens; greedy decoding must be deterministic".into());
    }
    let steps = tokens.len().saturating_sub(1);
    say("copy bandwidth …");
    let copy_mb: u64 = args.num("copy-mb", 256)?;
    let copy_bytes = (copy_mb << 20)
        .min(gpu.limits.max_storage_buffer_binding_size)
        .min(gpu.limits.max_buffer_size)
        / 16
        * 16;
    let copy_gbps = pinhole_gpu::bench::copy_bandwidth(&gpu, copy_bytes, 3).map_err(|e| e.to_string())?;

    let med = |f: &dyn Fn(&Run) -> f64| median(all.iter().map(f).collect());
    let image_ms = med(&|r| r.image_ms);
    let prefill_ms = med(&|r| r.prefill_ms);
    let ttft_ms = med(&|r| r.ttft_ms);
    let step_ms = median(all.iter().flat_map(|r| r.step_ms.clone()).collect());
    let cpu: Vec<f64> = all.iter().flat_map(|r| r.step_cpu_ms.clone()).collect();
    let step_cpu_ms = (!cpu.is_empty()).then(|| median(cpu));
    let dispatches_per_step = if steps > 0 {
        (all[0].dispatches.saturating_sub(base)) as f64 / steps as f64
    } else {
        f64::NAN
    };
    let bytes_per_token = decode_weight_bytes(&lm);
    let decode_gbps = bytes_per_token as f64 / (step_ms / 1e3) / 1e9;
    let roofline = decode_gbps / copy_gbps;
    let a = &gpu.adapter;
    let v = json!({
        "model": dir.display().to_string(),
        "model_family": lm.model.family(),
        "weight_dtype": weight_dtype_label(&lm),
        "adapter": crate::info::adapter_json(a),
        "runs": runs,
        "fused_epilogues": ex.fuse,
        "f16_math": gpu.f16_math(),
        "statistic": "median over the runs after one warm-up (decode step: median over every step of every run)",
        "prompt": prompt,
        "token_ids": tokens,
        "load": {"ms": load_ms, "checkpoint_bytes": file_bytes, "mb_per_s": file_bytes as f64 / 1e6 / (load_ms / 1e3),
                 "gpu_weight_bytes": lm.weights.bytes()},
        "image_tiles": px.tiles(),
        "image_encode_ms": image_ms,
        "prefill_ms": prefill_ms,
        "time_to_first_token_ms": ttft_ms,
        "decode": {
            "steps": steps,
            "step_ms": step_ms,
            "tokens_per_s": 1e3 / step_ms,
            "dispatches_per_step": dispatches_per_step,
            "host_cpu_ms_per_step": step_cpu_ms,
            "gpu_wait_ms_per_step": step_cpu_ms.map(|c| (step_ms - c).max(0.0)),
            "weight_bytes_per_token": bytes_per_token,
            "weight_gb_per_s": decode_gbps,
            "copy_gb_per_s": copy_gbps,
            "roofline_fraction": roofline,
        },
    });
    if json_out {
        outln!("{v}");
        return Ok(());
    }
    outln!("{}", crate::info::adapter_line(a));
    outln!(
        "model: {} ({}, {} weights, {:.1} MB on the GPU)",
        dir.display(),
        lm.model.family(),
        v["weight_dtype"].as_str().unwrap_or("?"),
        lm.weights.bytes() as f64 / 1e6
    );
    outln!("medians over {runs} runs, {} new tokens: {:?}", tokens.len(), tokens);
    if gpu.f16_math() {
        outln!("f16 math on: prefill and vision GEMMs in f16 (not bit-exact)");
    }
    outln!(
        "  load                      {:>10.1} ms  ({:.0} MB/s of {:.1} MB of safetensors)",
        load_ms,
        file_bytes as f64 / 1e6 / (load_ms / 1e3),
        file_bytes as f64 / 1e6
    );
    outln!(
        "  image encode              {image_ms:>10.1} ms  ({} tile{})",
        px.tiles(),
        if px.tiles() == 1 { "" } else { "s" }
    );
    outln!("  prefill                   {prefill_ms:>10.1} ms");
    outln!("  time to first token       {ttft_ms:>10.1} ms");
    outln!(
        "  decode                    {:>10.2} tokens/s ({step_ms:.1} ms per step)",
        1e3 / step_ms
    );
    outln!("  dispatches per step       {dispatches_per_step:>10.1}");
    match step_cpu_ms {
        Some(c) => outln!(
            "  host CPU per step         {c:>10.2} ms  (waiting on the GPU: {:.2} ms)",
            (step_ms - c).max(0.0)
        ),
        None => outln!("  host CPU per step                n/a  (no per-thread CPU clock here)"),
    }
    outln!(
        "  weight bytes per token    {:>10.1} MB  ({decode_gbps:.2} GB/s; copy kernel {copy_gbps:.2} GB/s; roofline {:.1} %)",
        bytes_per_token as f64 / 1e6,
        roofline * 100.0
    );
    Ok(())
}
