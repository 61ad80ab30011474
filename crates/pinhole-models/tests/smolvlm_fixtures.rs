//! The SmolVLM / Idefics3 graphs (crates/pinhole-models/src/smolvlm.rs) on the CPU reference
//! against transformers (tests/fixtures/{smolvlm,smolvlm-nosplit,idefics3,smolvlm-eos}, made by
//! tools/make_smolvlm_fixtures.py): per tile the vision tower and the pixel-shuffle connector,
//! the prefill logits, and 14 greedy ids with their logits (smolvlm-eos: the 2-3 ids up to its
//! stop on <end_of_utterance>, and the stop) (f32 weights, relative error ≤ 1e-4).
//! Every op these graphs use is checked against the same CPU reference on the GPU by the kernel
//! cases; this test pins the model's wiring to transformers'.

#[allow(dead_code)] // each test binary uses a part of the shared helpers
mod common;

use std::collections::HashMap;

use pinhole_core::hf::image::load_image;
use pinhole_core::hf::smolvlm_image::preprocess_tiles;
use pinhole_core::hf::{CheckpointReader, GenerationConfig, SafetensorsFile};
use pinhole_core::tensor::rel_error;
use pinhole_core::{DType, Tensor};
use pinhole_models::arch::{Architecture, Family, WeightPrecision};
use pinhole_models::smolvlm::SmolVlm;
use pinhole_models::{Model, TokenChoice};

fn weights(model: &SmolVlm, dir: &std::path::Path) -> HashMap<String, Tensor> {
    let mut reader = CheckpointReader::open(dir).unwrap();
    let names: Vec<String> = reader.tensors().map(|i| i.name.clone()).collect();
    let mut by_canon = HashMap::new();
    for n in names {
        if let Some(c) = SmolVlm::canonical_name(&n) {
            by_canon.insert(c, n);
        }
    }
    let mut out = HashMap::new();
    // The list the loaders check: read off the model's graphs.
    let m = Model::new(Box::new(
        SmolVlm::new(
            model.cfg.clone(),
            model.image.clone(),
            GenerationConfig::default(),
            WeightPrecision::F32,
        )
        .unwrap(),
    ));
    for w in m.expected_weights().unwrap() {
        let src = by_canon
            .get(&w.name)
            .unwrap_or_else(|| panic!("{} missing (e.g. {})", w.name, SmolVlm::example_source(&w.name)));
        let mut t = reader.read_as(src, DType::F32).unwrap();
        assert_eq!(t.numel(), w.shape.iter().product::<usize>(), "{}", w.name);
        t.shape = w.shape.clone();
        out.insert(w.name, t);
    }
    out
}

fn close(got: &Tensor, want: &Tensor, what: &str) {
    let e = rel_error(got.as_f32().unwrap(), want.as_f32().unwrap());
    assert!(e <= 1e-4, "{what}: relative error {e:e} > 1e-4");
}

#[test]
fn graphs_equal_transformers_on_the_cpu() {
    let mut cases_checked = 0;
    for variant in ["smolvlm", "smolvlm-nosplit", "idefics3", "smolvlm-eos"] {
        let dir = common::fixtures().join(variant);
        let mdir = dir.join("model");
        let (cfg, proc) = common::smolvlm_configs(&mdir);
        let model = SmolVlm::new(cfg, proc.clone(), GenerationConfig::default(), WeightPrecision::F32).unwrap();
        let w = weights(&model, &mdir);
        let expected = common::expected_json(&dir);
        for (case, e) in expected["cases"].as_object().unwrap() {
            let what = format!("{variant}/{case}");
            let mut fx = SafetensorsFile::open_path(dir.join(format!("{case}.safetensors"))).unwrap();
            let img = load_image(common::fixtures().join("images").join(e["image"].as_str().unwrap())).unwrap();
            let tiles = preprocess_tiles(&img, &proc).unwrap();
            let n = tiles.tiles();
            let t = model.cfg.vision.image_size;
            let per_tile = 3 * t * t;
            let mut states = HashMap::new();
            let (mut vis, mut conn) = (Vec::new(), Vec::new());
            for k in 0..n {
                let px = tiles.pixels.as_f32().unwrap()[k * per_tile..(k + 1) * per_tile].to_vec();
                let inputs = HashMap::from([("pixels".to_string(), Tensor::f32(&[3, t, t], px).unwrap())]);
                let g = model.image_graph(k, true).unwrap();
                let out = common::run_cpu(&g, &w, &inputs, &mut states);
                vis.extend_from_slice(out[0].as_f32().unwrap());
                conn.extend_from_slice(out[1].as_f32().unwrap());
            }
            let want_vis = fx.read_as("vision_out", DType::F32).unwrap();
            close(
                &Tensor::f32(&want_vis.shape, vis).unwrap(),
                &want_vis,
                &format!("{what} vision_out"),
            );
            let want_conn = fx.read_as("connector_out", DType::F32).unwrap();
            close(
                &Tensor::f32(&want_conn.shape, conn).unwrap(),
                &want_conn,
                &format!("{what} connector_out"),
            );

            let ids = common::ids(e, "input_ids");
            let rows: Vec<u32> = ids
                .iter()
                .enumerate()
                .filter(|(_, &i)| i == model.cfg.image_token_id)
                .map(|(r, _)| r as u32)
                .collect();
            let want_ids = common::ids(e, "generated_ids");
            let max_len = ids.len() + want_ids.len();
            let no_inputs = HashMap::new();
            let (g, out) = model
                .prefill_graph(&ids, &rows, max_len, true, &TokenChoice::Greedy)
                .unwrap();
            let res = common::run_cpu(&g, &w, &no_inputs, &mut states);
            let logits = common::logits_of(&g, &out, &res);
            let logits = logits.as_f32().unwrap();
            let v = model.cfg.text.vocab_size;
            let want_prefill = fx.read_as("prefill_logits", DType::F32).unwrap();
            let last2 = Tensor::f32(&[2, v], logits[logits.len() - 2 * v..].to_vec()).unwrap();
            close(&last2, &want_prefill, &format!("{what} prefill logits"));
            let want_step = fx.read_as("generated_logits", DType::F32).unwrap();
            let step =
                |i: usize| Tensor::f32(&[1, v], want_step.as_f32().unwrap()[i * v..(i + 1) * v].to_vec()).unwrap();
            let mut got_ids = vec![res[0].as_u32().unwrap()[0]];
            while got_ids.len() < want_ids.len() {
                let k = got_ids.len();
                let row = ids.len() + k - 1;
                let (g, out) = model
                    .decode_graph(got_ids[k - 1], row, 0, max_len, true, &TokenChoice::Greedy)
                    .unwrap();
                let res = common::run_cpu(&g, &w, &no_inputs, &mut states);
                close(
                    &common::logits_of(&g, &out, &res),
                    &step(k),
                    &format!("{what} step {k} logits"),
                );
                got_ids.push(res[0].as_u32().unwrap()[0]);
            }
            assert_eq!(got_ids, want_ids, "{what}: greedy ids");
            // 14 ids, or fewer where transformers stopped on a stop token (smolvlm-eos).
            assert!(got_ids.len() >= 12 || e["stopped_on_eos"].as_bool().unwrap(), "{what}");
            cases_checked += 1;
        }
    }
    assert_eq!(cases_checked, 9);
}

/// The whole path on the GPU as the CLI runs it: load_dir (both key layouts: Idefics3's
/// checkpoint has no `model.` prefix), the chat template, image_input (tiles + grid),
/// prompt_ids_for, one image-encode submit per tile, prefill and decode: connector rows,
/// prefill logits and the greedy ids equal transformers'.
#[test]
fn generation_on_the_gpu_equals_transformers() {
    use pinhole_core::hf::ChatTemplate;
    use pinhole_gpu::Executor;
    use pinhole_models::{generate::generate, processor, GenerateOptions};

    let gpu = common::gpu();
    let mut checked = 0;
    for variant in ["smolvlm", "smolvlm-nosplit", "idefics3", "smolvlm-eos"] {
        let dir = common::fixtures().join(variant);
        let lm = common::load(&gpu, &dir.join("model"), WeightPrecision::F32);
        assert_eq!(lm.model.family(), "smolvlm");
        let template = ChatTemplate::load_dir(dir.join("model")).unwrap().unwrap();
        let mut ex = Executor::new(gpu.clone());
        let expected = common::expected_json(&dir);
        for (case, e) in expected["cases"].as_object().unwrap() {
            let what = format!("{variant}/{case}");
            let mut fx = SafetensorsFile::open_path(dir.join(format!("{case}.safetensors"))).unwrap();
            let bytes = std::fs::read(common::fixtures().join("images").join(e["image"].as_str().unwrap())).unwrap();
            let image = processor::image_input(&lm.model, &bytes, "fixture image").unwrap();
            let prompt = template.render(&e["messages"], true).unwrap();
            let want_ids = common::ids(e, "generated_ids");
            let opts = GenerateOptions {
                // The fixture's own budget: smolvlm-eos stops on <end_of_utterance> before it.
                max_new_tokens: e["max_new_tokens"].as_u64().unwrap() as usize,
                record_logits: true,
                sampling: None,
            };
            let g = pollster::block_on(generate(&lm, &mut ex, &image, &prompt, &opts, |_, _| {})).unwrap();
            assert_eq!(g.prompt_ids, common::ids(e, "input_ids"), "{what}: prompt ids");
            let want_conn = fx.read_as("connector_out", DType::F32).unwrap();
            close(
                g.projector_out.as_ref().unwrap(),
                &want_conn,
                &format!("{what} connector_out"),
            );
            let v = lm.model.vocab_size();
            let prefill = g.logits[0].as_f32().unwrap();
            let last2 = Tensor::f32(&[2, v], prefill[prefill.len() - 2 * v..].to_vec()).unwrap();
            close(
                &last2,
                &fx.read_as("prefill_logits", DType::F32).unwrap(),
                &format!("{what} prefill logits"),
            );
            assert_eq!(g.token_ids, want_ids, "{what}: greedy ids");
            assert_eq!(
                g.stopped_on_eos,
                e["stopped_on_eos"].as_bool().unwrap(),
                "{what}: stopped on a stop token"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 9);
}
