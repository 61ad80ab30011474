//! Recorded decode steps (pinhole-gpu's executor replays the bind groups of a run that binds
//! the same buffers): the ids of replayed steps equal those of an executor that records
//! nothing, over generations whose KV cache falls in different length buckets (64 and 128
//! positions) on one executor, greedy and sampled.

use std::path::Path;

use pinhole_core::hf::SafetensorsFile;
use pinhole_gpu::{Executor, GpuOptions};
use pinhole_models::generate::generate;
use pinhole_models::loader::{load_dir, LoadOptions, WeightPrecision};
use pinhole_models::{GenerateOptions, Sampling};

#[test]
fn replayed_steps_give_the_ids_of_unrecorded_ones_across_cache_buckets() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/pg1-mqa");
    let exp: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let gpu = pinhole_gpu::open_blocking(&GpuOptions::from_env()).expect("GPU adapter (llvmpipe in CI)");
    let lm = load_dir(
        &gpu,
        dir.join("model"),
        &LoadOptions {
            precision: WeightPrecision::F32,
        },
        |_, _| {},
    )
    .expect("load");
    let mut f = SafetensorsFile::open_path(dir.join("expected.safetensors")).unwrap();
    let px = f.read_as("pixel_values", pinhole_core::DType::F32).unwrap();
    let prompt = exp["prompt"].as_str().unwrap();
    let greedy: Vec<u32> = exp["generated_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect();
    let prefix = exp["prefix_len"].as_u64().unwrap() as usize;

    let mut recorded = Executor::new(gpu.clone());
    let mut plain = Executor::new(gpu.clone());
    plain.record = false;
    let sampled = Sampling {
        temperature: 1.3,
        top_k: 0,
        top_p: 0.95,
        repetition_penalty: 1.2,
        seed: 7,
    };
    // Cache lengths: prompt + new tokens rounded up to 64, so 64 - prefix new tokens fill the
    // 64 bucket and one more moves to 128; the 64 bucket is then used again.
    let small = 64 - prefix;
    let runs = [
        (small, None),
        (small + 1, None),
        (small, Some(sampled)),
        (small + 1, Some(sampled)),
        (small, None),
    ];
    for (n, sampling) in runs {
        let opts = GenerateOptions {
            max_new_tokens: n,
            record_logits: false,
            sampling,
        };
        let replays = recorded.stats.replays;
        let a = pollster::block_on(generate(&lm, &mut recorded, &px, prompt, &opts, |_, _| {})).unwrap();
        let b = pollster::block_on(generate(&lm, &mut plain, &px, prompt, &opts, |_, _| {})).unwrap();
        assert_eq!(
            a.token_ids, b.token_ids,
            "{n} new tokens, sampling {sampling:?}: replayed steps differ"
        );
        if sampling.is_none() {
            assert_eq!(&a.token_ids[..greedy.len()], &greedy[..], "greedy ids (transformers')");
        }
        // All but the first few decode steps replay (the first steps still take new buffers).
        let decoded = a.token_ids.len() - 1;
        assert!(
            recorded.stats.replays - replays + 3 >= decoded,
            "{n} new tokens: only {} of {decoded} steps replayed",
            recorded.stats.replays - replays
        );
    }
    assert_eq!(plain.stats.replays, 0);
}
