//! SmolVLM in the weight formats real checkpoints come in (tests/fixtures/smolvlm-bf16: a
//! sharded bfloat16 checkpoint, made by tools/make_smolvlm_fixtures.py; transformers' reference
//! computed in float32 from the bf16 weights):
//! * `load_dir` with f16 matrix storage (what `auto` picks for bf16, every bf16 weight of this
//!   model is exact in f16) and with f32 storage: prompt ids, connector rows, prefill logits
//!   and 14 greedy ids equal transformers';
//! * the browser's streaming loader (odd chunk sizes, f16): the same ids;
//! * `pinhole quantize` (quantize_dir): the 4-bit model's prefill logits equal the CPU
//!   reference of the same 4-bit weights, and with every tensor kept (f16) the ids are
//!   transformers' again.

#[allow(dead_code)] // each test binary uses a part of the shared helpers
mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pinhole_core::hf::{ChatTemplate, SafetensorsFile};
use pinhole_core::tensor::rel_error;
use pinhole_core::{DType, Tensor};
use pinhole_gpu::{Executor, Gpu};
use pinhole_models::generate::generate;
use pinhole_models::loader::{load_dir, model_matrix_dtype, LoadOptions, ModelFiles, WeightPrecision};
use pinhole_models::quantize::{quantize_dir, QuantizeOptions};
use pinhole_models::stream_loader::StreamingLoader;
use pinhole_models::{processor, GenerateOptions, Generation, LoadedModel};

const FIXTURE: &str = "smolvlm-bf16";

fn expected() -> serde_json::Value {
    common::expected_json(&common::fixtures().join(FIXTURE))
}

fn model_dir() -> PathBuf {
    common::fixtures().join(FIXTURE).join("model")
}

/// One case (`describe`, `multiturn`) through the whole path as the CLI runs it, with logits.
fn run_case(gpu: &Arc<Gpu>, lm: &LoadedModel, case: &str, max_new_tokens: usize) -> Generation {
    let e = &expected()["cases"][case];
    let template = ChatTemplate::load_dir(model_dir()).unwrap().unwrap();
    let bytes = std::fs::read(common::fixtures().join("images").join(e["image"].as_str().unwrap())).unwrap();
    let image = processor::image_input(&lm.model, &bytes, "fixture image").unwrap();
    let prompt = template.render(&e["messages"], true).unwrap();
    let opts = GenerateOptions {
        max_new_tokens,
        record_logits: true,
        sampling: None,
    };
    let mut ex = Executor::new(gpu.clone());
    pollster::block_on(generate(lm, &mut ex, &image, &prompt, &opts, |_, _| {})).unwrap()
}

fn fixture_tensor(case: &str, name: &str) -> Tensor {
    let path = common::fixtures().join(FIXTURE).join(format!("{case}.safetensors"));
    SafetensorsFile::open_path(path)
        .unwrap()
        .read_as(name, DType::F32)
        .unwrap()
}

/// The last two rows of the prefill logits (what the fixture keeps).
fn last2(g: &Generation, v: usize) -> Vec<f32> {
    let p = g.logits[0].as_f32().unwrap();
    p[p.len() - 2 * v..].to_vec()
}

#[test]
fn bf16_checkpoint_equals_transformers_in_f16_and_f32() {
    let gpu = common::gpu();
    let exp = expected();
    assert_eq!(exp["checkpoint_dtype"], "bfloat16");
    for (precision, want_dtype) in [(WeightPrecision::Auto, DType::F16), (WeightPrecision::F32, DType::F32)] {
        let lm = common::load(&gpu, &model_dir(), precision);
        assert_eq!(model_matrix_dtype(&lm.model), want_dtype);
        for (case, e) in exp["cases"].as_object().unwrap() {
            let what = format!("{FIXTURE}/{case} {want_dtype:?}");
            let want_ids = common::ids(e, "generated_ids");
            let g = run_case(&gpu, &lm, case, want_ids.len());
            assert_eq!(g.prompt_ids, common::ids(e, "input_ids"), "{what}: prompt ids");
            let conn = rel_error(
                g.projector_out.as_ref().unwrap().as_f32().unwrap(),
                fixture_tensor(case, "connector_out").as_f32().unwrap(),
            );
            let v = lm.model.vocab_size();
            let logits = rel_error(&last2(&g, v), fixture_tensor(case, "prefill_logits").as_f32().unwrap());
            eprintln!("{what}: connector {conn:.2e}, prefill logits {logits:.2e} relative error");
            assert!(conn <= 1e-4, "{what}: connector rows {conn:e}");
            assert!(logits <= 1e-4, "{what}: prefill logits {logits:e}");
            assert_eq!(g.token_ids, want_ids, "{what}: greedy ids");
        }
    }
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn streamed_in_pieces_as_the_browser_does() {
    let gpu = common::gpu();
    let dir = model_dir();
    let (cfg, proc, gen, tok) = (
        read(&dir, "config.json"),
        read(&dir, "processor_config.json"),
        read(&dir, "generation_config.json"),
        read(&dir, "tokenizer.json"),
    );
    let files = ModelFiles {
        config: (&cfg, "config.json"),
        processor: (&proc, "processor_config.json"),
        generation: Some((&gen, "generation_config.json".to_string())),
        tokenizer: (&tok, "tokenizer.json"),
    };
    let opts = LoadOptions {
        precision: WeightPrecision::F16,
    };
    let mut l = StreamingLoader::new(gpu.clone(), &files, &opts, "smolvlm-bf16").unwrap();
    l.set_index(
        &read(&dir, "model.safetensors.index.json"),
        "model.safetensors.index.json",
    )
    .unwrap();
    let shards = l.weight_files();
    assert_eq!(shards.len(), 2, "{shards:?}");
    // A small host bound and odd chunk sizes: bf16 words split between pushes.
    l.set_host_bound(4096);
    for f in shards {
        let bytes = read(&dir, &f);
        l.begin_file(&f, Some(bytes.len() as u64)).unwrap();
        for (i, piece) in bytes.chunks(777).enumerate() {
            // Every few chunks one byte alone.
            if i % 5 == 4 && piece.len() > 1 {
                l.push(&piece[..1]).unwrap();
                l.push(&piece[1..]).unwrap();
            } else {
                l.push(piece).unwrap();
            }
        }
        l.end_file().unwrap();
    }
    let lm = l.finish().unwrap();
    let e = &expected()["cases"]["describe"];
    let want = common::ids(e, "generated_ids");
    assert_eq!(run_case(&gpu, &lm, "describe", want.len()).token_ids, want);
}

fn quantized(tag: &str, opts: &QuantizeOptions) -> PathBuf {
    let out = std::env::temp_dir().join(format!("pinhole-smolvlm-q4-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    quantize_dir(&model_dir(), &out, opts, |_, _, _| {}).expect("quantize");
    out
}

#[test]
fn quantized_4bit_equals_its_cpu_reference_and_kept_f16_equals_transformers() {
    let gpu = common::gpu();
    let e = &expected()["cases"]["describe"];
    let want_ids = common::ids(e, "generated_ids");

    let qdir = quantized("sym", &QuantizeOptions::default());
    let lm = common::load(&gpu, &qdir, WeightPrecision::F32);
    // The chat template and processor files came along.
    assert!(qdir.join("chat_template.jinja").is_file() && qdir.join("processor_config.json").is_file());
    let g = run_case(&gpu, &lm, "describe", want_ids.len());
    let v = lm.model.vocab_size();
    let gpu_logits = g.logits[0].as_f32().unwrap().to_vec();

    // The CPU reference of the same 4-bit weights: every tile's graph, then the prefill.
    let m = &lm.model;
    let weights = common::host_weights(&qdir, &lm.model);
    let bytes = std::fs::read(common::fixtures().join("images").join(e["image"].as_str().unwrap())).unwrap();
    let image = processor::image_input(m, &bytes, "fixture image").unwrap();
    let ids = &g.prompt_ids;
    let max_len = (ids.len() + want_ids.len()).div_ceil(64) * 64;
    let cpu_logits = common::cpu_prefill_logits(m, &weights, &image, ids, max_len);
    let e_ref = rel_error(&gpu_logits, &cpu_logits);
    let e_f32 = rel_error(
        &last2(&g, v),
        fixture_tensor("describe", "prefill_logits").as_f32().unwrap(),
    );
    let agree = g.token_ids.iter().zip(&want_ids).take_while(|(a, b)| a == b).count();
    eprintln!(
        "{FIXTURE} q4 sym: GPU vs CPU reference (same 4-bit weights) {e_ref:.2e}; vs transformers {e_f32:.3}; \
         greedy ids identical for {agree}/{} steps",
        want_ids.len()
    );
    assert!(e_ref <= 1e-4, "4-bit GPU logits vs CPU reference {e_ref:e}");
    // A random untrained model amplifies 4-bit rounding (see q4_fixtures.rs): sane bound only.
    assert!(e_f32.is_finite() && e_f32 < 1.2, "4-bit logits vs transformers {e_f32}");
    let _ = std::fs::remove_dir_all(&qdir);

    // The same pipeline with every matrix kept (f16, exact for these bf16 weights):
    // transformers' ids, so the quantized folder's layout (names, shards, files) is right.
    let kept = quantized(
        "kept",
        &QuantizeOptions {
            keep: vec!["*".into()],
            ..Default::default()
        },
    );
    let lm = load_dir(&gpu, &kept, &LoadOptions::default(), |_, _| {}).unwrap();
    assert_eq!(run_case(&gpu, &lm, "describe", want_ids.len()).token_ids, want_ids);
    let _ = std::fs::remove_dir_all(&kept);
}
