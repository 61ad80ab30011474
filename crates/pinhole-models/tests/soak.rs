//! The soak (issue 17), run by hand (it takes minutes):
//!
//!     PINHOLE_SOAK_N=1000 cargo test -p pinhole-models --test soak -- --ignored --nocapture
//!
//! Captions `PINHOLE_SOAK_N` (default 1000) times in one process, alternating the bundled
//! model's f32 and 4-bit copies and images of three sizes (128², 64², 50×37), and samples the
//! process' resident memory and each executor's GPU buffers (created, pooled bytes, KV-cache
//! bytes) every 10 %. After the first round (warm-up: pipelines, pools, caches) nothing may grow:
//! no new GPU buffers, and resident memory within 16 MiB of where it was. Numbers of the last
//! run: RELIABILITY.md.

use std::path::{Path, PathBuf};

use pinhole_gpu::{Executor, GpuOptions};
use pinhole_models::generate::generate;
use pinhole_models::loader::{load_dir, LoadOptions};
use pinhole_models::{processor, GenerateOptions};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Resident set size in bytes (Linux: /proc/self/statm, second field, in pages).
fn rss() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    pages * 4096
}

#[test]
#[ignore = "minutes long; run by hand (see the module docs)"]
fn thousand_captions_stay_flat() {
    let n: usize = std::env::var("PINHOLE_SOAK_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let gpu = pinhole_gpu::open_blocking(&GpuOptions::from_env()).expect("GPU adapter");
    let models: Vec<_> = ["models/pinhole-shapes", "models/pinhole-shapes-q4"]
        .iter()
        .map(|d| load_dir(&gpu, repo().join(d), &LoadOptions::default(), |_, _| {}).expect(d))
        .collect();
    let images: Vec<(String, Vec<u8>)> = [
        "models/pinhole-shapes/examples/scene_00000.png",
        "tests/fixtures/images/shapes_64.png",
        "tests/fixtures/images/shapes_50x37.png",
    ]
    .iter()
    .map(|p| (p.to_string(), std::fs::read(repo().join(p)).expect(p)))
    .collect();
    let mut execs: Vec<Executor> = models.iter().map(|_| Executor::new(gpu.clone())).collect();
    let opts = GenerateOptions {
        max_new_tokens: 32,
        ..Default::default()
    };
    let round = models.len() * images.len();
    let every = (n / 10).max(round);
    let start = std::time::Instant::now();
    let mut first: Option<(u64, Vec<usize>)> = None;
    let mut texts = std::collections::HashMap::new();
    println!("| captions | seconds | RSS MiB | GPU buffers created (f32, q4) | pooled MiB | KV-cache MiB |");
    println!("|---|---|---|---|---|---|");
    for i in 0..n {
        let (mi, ii) = (i % models.len(), (i / models.len()) % images.len());
        let lm = &models[mi];
        let (name, bytes) = &images[ii];
        let px = processor::pixels(&lm.model, bytes, name).expect("pixels");
        let g = pollster::block_on(generate(lm, &mut execs[mi], &px, "caption en", &opts, |_, _| {})).expect("caption");
        // The same model and image always give the same caption.
        let want = texts.entry((mi, ii)).or_insert_with(|| g.text.clone());
        assert_eq!(&g.text, want, "caption {i} changed");
        let done = i + 1;
        if done == round || done % every == 0 || done == n {
            let created: Vec<usize> = execs.iter().map(|e| e.stats.buffers_created).collect();
            let pooled: u64 = execs.iter().map(|e| e.stats.pooled_bytes).sum();
            let kv: u64 = execs.iter().map(|e| e.state_bytes()).sum();
            let r = rss();
            println!(
                "| {done} | {:.0} | {:.1} | {created:?} | {:.2} | {:.2} |",
                start.elapsed().as_secs_f64(),
                r as f64 / 1048576.0,
                pooled as f64 / 1048576.0,
                kv as f64 / 1048576.0
            );
            match &first {
                None => first = Some((r, created)),
                Some((r0, c0)) => {
                    assert_eq!(&created, c0, "GPU buffers were created after the warm-up round");
                    assert!(
                        r < r0 + (16 << 20),
                        "resident memory grew from {r0} to {r} bytes after the warm-up round"
                    );
                }
            }
        }
    }
}
