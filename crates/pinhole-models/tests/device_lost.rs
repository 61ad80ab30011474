//! A lost GPU device (driver reset, GPU process crash, `destroy()`) is a typed error naming
//! what was running, never a panic, a hang or a model that silently computes nothing. The
//! loss is provoked with `wgpu::Device::destroy()`, at every point where pinhole holds the
//! device: between tokens, from another thread while graphs run, during `load_dir`, during the
//! browser's streaming loader, and before a call starts. After it, a new device loads and
//! captions exactly as before (natively the recovery is: open a new `Gpu`, load again).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pinhole_gpu::{Executor, Gpu, GpuError, GpuOptions};
use pinhole_models::generate::generate_with;
use pinhole_models::loader::{load_dir, LoadOptions, ModelFiles};
use pinhole_models::stream_loader::StreamingLoader;
use pinhole_models::{processor, Error, GenerateOptions, LoadedModel};

fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/pinhole-shapes")
}

fn gpu() -> Arc<Gpu> {
    pinhole_gpu::open_blocking(&GpuOptions::from_env()).expect("GPU adapter (llvmpipe in CI)")
}

fn load(gpu: &Gpu) -> LoadedModel {
    load_dir(gpu, model_dir(), &LoadOptions::default(), |_, _| {}).expect("bundled model")
}

fn image() -> Vec<u8> {
    std::fs::read(model_dir().join("examples/scene_00000.png")).expect("example scene")
}

fn opts() -> GenerateOptions {
    GenerateOptions {
        max_new_tokens: 12,
        ..Default::default()
    }
}

/// Captions the example scene; `after_token(n)` runs after the n-th token (1-based).
fn caption(lm: &LoadedModel, gpu: &Arc<Gpu>, mut after_token: impl FnMut(usize)) -> pinhole_models::Result<String> {
    let px = processor::pixels(&lm.model, &image(), "scene_00000.png")?;
    let mut ex = Executor::new(gpu.clone());
    let mut n = 0;
    let g = pollster::block_on(generate_with(lm, &mut ex, &px, "caption en", &opts(), |_, _| {
        n += 1;
        after_token(n);
        true
    }))?;
    Ok(g.text)
}

/// The error must be `DeviceLost` saying what ran; returns its message.
fn lost(r: Result<impl std::fmt::Debug, Error>, during: &str) -> String {
    match r {
        Err(Error::Gpu(e @ GpuError::DeviceLost { .. })) => {
            let msg = e.to_string();
            assert!(msg.contains(during), "expected '{during}' in: {msg}");
            assert!(msg.contains("load the model again"), "says what to do: {msg}");
            assert!(msg.contains("destroyed"), "says why: {msg}");
            msg
        }
        other => panic!("expected a DeviceLost error while {during}, got {other:?}"),
    }
}

#[test]
fn lost_between_tokens_then_a_new_device_captions_the_same() {
    let gpu = gpu();
    let lm = load(&gpu);
    let want = caption(&lm, &gpu, |_| {}).expect("caption before the loss");
    assert!(!want.is_empty());

    // Destroyed after the second token: the run computing the third finds it lost.
    let r = caption(&lm, &gpu, |n| {
        if n == 2 {
            gpu.device.destroy();
        }
    });
    lost(r, "while generating token 3");
    // Every later call on that device fails the same way, before submitting anything.
    lost(caption(&lm, &gpu, |_| {}), "while encoding the image");
    assert!(gpu.lost_reason().is_some());

    // Recovery: a new device, the model loaded again, the same caption.
    let gpu2 = self::gpu();
    let lm2 = load(&gpu2);
    assert_eq!(caption(&lm2, &gpu2, |_| {}).expect("caption on a new device"), want);
}

#[test]
fn destroyed_from_another_thread_while_graphs_run() {
    let gpu = gpu();
    let lm = load(&gpu);
    // The device is destroyed at an arbitrary moment (submission, GPU work, readback or
    // between runs); whatever was running must end in DeviceLost, within a bounded number
    // of calls. The phase is timing-dependent, so only the error kind is checked.
    let runs = Arc::new(AtomicUsize::new(0));
    let killer = {
        let (gpu, runs) = (gpu.clone(), runs.clone());
        std::thread::spawn(move || {
            while runs.load(Ordering::SeqCst) == 0 {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            std::thread::sleep(std::time::Duration::from_millis(30));
            gpu.device.destroy();
        })
    };
    let mut result = None;
    for _ in 0..10_000 {
        let r = caption(&lm, &gpu, |_| {
            runs.fetch_add(1, Ordering::SeqCst);
        });
        if let Err(e) = r {
            result = Some(e);
            break;
        }
    }
    killer.join().expect("killer thread");
    match result {
        Some(Error::Gpu(GpuError::DeviceLost { .. })) => {}
        other => panic!("expected DeviceLost after destroy(), got {other:?}"),
    }
}

#[test]
fn lost_during_load_dir() {
    let gpu = gpu();
    let mut calls = 0;
    let r = load_dir(&gpu, model_dir(), &LoadOptions::default(), |_, _| {
        calls += 1;
        if calls == 3 {
            gpu.device.destroy();
        }
    });
    let msg = lost(r.map(|_| ()), "while loading weight '");
    assert!(
        calls == 3,
        "the load stopped at the first weight after the loss ({calls} tensors, {msg})"
    );
}

#[test]
fn lost_during_the_streaming_loader() {
    let gpu = gpu();
    let dir = model_dir();
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    let (cfg, pre, gen, tok) = (
        read("config.json"),
        read("preprocessor_config.json"),
        read("generation_config.json"),
        read("tokenizer.json"),
    );
    let files = ModelFiles {
        config: (&cfg, "config.json"),
        processor: (&pre, "preprocessor_config.json"),
        generation: Some((&gen, "generation_config.json".to_string())),
        tokenizer: (&tok, "tokenizer.json"),
    };
    let mut l = StreamingLoader::new(gpu.clone(), &files, &LoadOptions::default(), "pinhole-shapes").expect("configs");
    let weights = read("model.safetensors");
    l.begin_file("model.safetensors", Some(weights.len() as u64))
        .expect("begin");
    let mut result = Ok(());
    let half = weights.len() / 2 / (64 << 10);
    for (i, chunk) in weights.chunks(64 << 10).enumerate() {
        if i == half {
            gpu.device.destroy();
        }
        result = l.push(chunk);
        if result.is_err() {
            break;
        }
    }
    lost(result, "while loading weight '");
}

#[test]
fn loss_while_idle_fails_the_next_load_and_call() {
    let gpu = gpu();
    let lm = load(&gpu);
    gpu.device.destroy();
    lost(caption(&lm, &gpu, |_| {}), "while encoding the image");
    // A load on the lost device is refused instead of returning a model without weights.
    lost(
        load_dir(&gpu, model_dir(), &LoadOptions::default(), |_, _| {}).map(|_| ()),
        "while loading weight '",
    );
}
