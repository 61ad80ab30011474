//! `pinhole quantize`: quantize a fixture model, run `pinhole generate` on the result, and
//! reject bad input (existing output, already-quantized input, bad options, corrupt weights,
//! tampered quantized files) with clear errors and nothing left behind.

use std::path::{Path, PathBuf};

#[allow(dead_code)] // each test binary uses a part of the shared helpers
mod common;

use common::{fixture_model, image, run};

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pinhole-q4cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn expect_error(args: &[&str], needles: &[&str]) -> String {
    let (code, stdout, stderr) = run(args);
    assert_ne!(code, 0, "expected failure for {args:?}; stdout: {stdout}");
    assert!(!stderr.contains("panicked"), "panic for {args:?}: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "stderr for {args:?} should mention '{n}': {stderr}");
    }
    stderr
}

fn partial(out: &Path) -> PathBuf {
    PathBuf::from(format!("{}.partial", out.display()))
}

fn quantize(model: &Path, out: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut a = vec![
        "quantize",
        "--model",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    a.extend_from_slice(extra);
    run(&a)
}

fn generate_json(model: &Path) -> serde_json::Value {
    let (code, stdout, stderr) = run(&[
        "generate",
        "--model",
        model.to_str().unwrap(),
        "--image",
        image().to_str().unwrap(),
        "--max-new-tokens",
        "3",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(stdout.trim()).expect("one JSON object")
}

fn dir_bytes(d: &Path) -> u64 {
    std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

#[test]
fn quantize_then_generate() {
    let out = tmp("ok");
    let (code, stdout, stderr) = quantize(&fixture_model(), &out, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("q4_sym") && stdout.contains("total:"), "{stdout}");
    assert!(stdout.contains("embed_tokens.weight"), "{stdout}");
    assert!(stderr.contains("quantizing ["), "progress on stderr: {stderr}");
    for f in [
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "preprocessor_config.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing in the output");
    }
    assert!(!partial(&out).exists());
    let ratio = dir_bytes(&out) as f64 / dir_bytes(&fixture_model()) as f64;
    assert!(ratio <= 0.30, "4-bit folder is {ratio:.3} of the f32 one");

    let q = generate_json(&out);
    let f = generate_json(&fixture_model());
    // The same pipeline with every tensor kept (f16): the f32 model's tokens, exactly. This
    // separates "4 bits change a random model's output" from "the quantized folder is wrong".
    let kept = tmp("kept");
    let (code, _, stderr) = quantize(&fixture_model(), &kept, &["--keep", "*", "--quiet"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(generate_json(&kept)["token_ids"], f["token_ids"]);
    let _ = std::fs::remove_dir_all(&kept);
    assert_eq!(q["token_ids"].as_array().unwrap().len(), 3);
    let (qw, fw) = (
        q["gpu_bytes"]["weights"].as_u64().unwrap(),
        f["gpu_bytes"]["weights"].as_u64().unwrap(),
    );
    assert!(
        qw > 0 && (qw as f64) < 0.35 * fw as f64,
        "GPU weight bytes {qw} vs f32 {fw}"
    );
    for k in ["kv_cache_and_state", "activations"] {
        assert!(q["gpu_bytes"][k].as_u64().unwrap() > 0, "{k}");
    }

    // Quiet mode prints nothing; asymmetric and --keep work.
    let out2 = tmp("asym");
    let (code, stdout, stderr) = quantize(
        &fixture_model(),
        &out2,
        &["--scheme", "asym", "--group", "32", "--keep", "vision_tower", "--quiet"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.is_empty() && stderr.is_empty(), "{stdout}{stderr}");
    assert_eq!(generate_json(&out2)["token_ids"].as_array().unwrap().len(), 3);
    let st = std::fs::read(out2.join("model.safetensors")).unwrap();
    let n = u64::from_le_bytes(st[..8].try_into().unwrap()) as usize;
    let header = String::from_utf8_lossy(&st[8..8 + n]).to_string();
    assert!(header.contains("\"pinhole.quant\":\"q4_asym\""), "{header}");
    assert!(header.contains("q4_offsets"));
    assert!(
        !header.contains("vision_model.encoder.layers.0.mlp.fc1.weight.q4"),
        "--keep vision_tower ignored"
    );

    // Already quantized input is refused; so is an existing non-empty output.
    let again = tmp("again");
    expect_error(&quantize_args(&out, &again), &["already"]);
    assert!(!again.exists() && !partial(&again).exists());
    let before = std::fs::read(out2.join("model.safetensors")).unwrap();
    expect_error(&quantize_args(&fixture_model(), &out2), &["not empty"]);
    assert_eq!(std::fs::read(out2.join("model.safetensors")).unwrap(), before);
    let _ = std::fs::remove_dir_all(&out);
    let _ = std::fs::remove_dir_all(&out2);
}

fn quantize_args<'a>(model: &'a Path, out: &'a Path) -> Vec<&'a str> {
    vec![
        "quantize",
        "--model",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]
}

#[test]
fn bad_options_and_inputs_leave_nothing_behind() {
    let out = tmp("bad");
    let m = fixture_model();
    let ms = m.to_str().unwrap();
    let os = out.to_str().unwrap();
    expect_error(
        &["quantize", "--model", ms, "--out", os, "--group", "48"],
        &["group size 48"],
    );
    expect_error(
        &["quantize", "--model", ms, "--out", os, "--scheme", "nf4"],
        &["--scheme"],
    );
    expect_error(&["quantize", "--out", os], &["--model"]);
    expect_error(
        &["quantize", "--model", "/nonexistent/model", "--out", os],
        &["/nonexistent/model"],
    );
    assert!(!out.exists() && !partial(&out).exists());

    // A weight holding NaN fails half-way through the write: no output, no .partial.
    let src = tmp("nan-src");
    std::fs::create_dir_all(&src).unwrap();
    for e in std::fs::read_dir(&m).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), src.join(e.file_name())).unwrap();
    }
    let st = src.join("model.safetensors");
    let mut bytes = std::fs::read(&st).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let h: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let (name, info) = h
        .as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.ends_with("mlp.down_proj.weight"))
        .expect("a down_proj weight");
    let start = 8 + n + info["data_offsets"][0].as_u64().unwrap() as usize;
    bytes[start..start + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&st, &bytes).unwrap();
    let err = expect_error(&quantize_args(&src, &out), &["NaN"]);
    assert!(err.contains(name.as_str()), "{err}");
    assert!(!out.exists(), "failed quantization left the output folder");
    assert!(
        !partial(&out).exists(),
        "failed quantization left {}",
        partial(&out).display()
    );
    let _ = std::fs::remove_dir_all(&src);
}

/// Rewrites the header of a safetensors file with `edit` (padding keeps the data in place).
fn edit_header(path: &Path, edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let bytes = std::fs::read(path).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut h: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    edit(h.as_object_mut().unwrap());
    let mut hb = h.to_string().into_bytes();
    assert!(hb.len() <= n, "edited header grew");
    hb.resize(n, b' ');
    let mut out = bytes[..8].to_vec();
    out.extend_from_slice(&hb);
    out.extend_from_slice(&bytes[8 + n..]);
    std::fs::write(path, out).unwrap();
}

#[test]
fn tampered_quantized_folders_are_rejected_naming_the_tensor() {
    let out = tmp("tamper");
    let (code, _, stderr) = quantize(&fixture_model(), &out, &["--quiet"]);
    assert_eq!(code, 0, "{stderr}");
    let st = out.join("model.safetensors");
    let orig = std::fs::read(&st).unwrap();
    let gen = |dir: &Path| -> Vec<String> {
        vec![
            "generate".into(),
            "--model".into(),
            dir.to_str().unwrap().into(),
            "--image".into(),
            image().to_str().unwrap().into(),
            "--max-new-tokens".into(),
            "2".into(),
        ]
    };
    let args = gen(&out);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();

    edit_header(&st, |h| {
        h.get_mut("__metadata__").unwrap()["pinhole.quant"] = "q4_xyz".into();
    });
    expect_error(&args, &["pinhole.quant", "q4_xyz"]);

    std::fs::write(&st, &orig).unwrap();
    let mut victim = String::new();
    edit_header(&st, |h| {
        let (k, v) = h
            .iter_mut()
            .find(|(k, v)| k.ends_with("embed_tokens.weight.q4_scales") && v["shape"][0].as_u64().unwrap() % 2 == 0)
            .unwrap();
        victim = k.clone();
        let (r, c) = (v["shape"][0].as_u64().unwrap(), v["shape"][1].as_u64().unwrap());
        v["shape"] = serde_json::json!([r / 2, c * 2]);
    });
    expect_error(&args, &[victim.as_str(), "F16"]);

    std::fs::write(&st, &orig).unwrap();
    edit_header(&st, |h| {
        h.get_mut("__metadata__")
            .unwrap()
            .as_object_mut()
            .unwrap()
            .remove("pinhole.quant");
    });
    expect_error(&args, &[".q4", "pinhole.quant"]);
    let _ = std::fs::remove_dir_all(&out);
}
