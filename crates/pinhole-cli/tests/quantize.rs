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
    common::generate_json(model, &image(), &["--max-new-tokens", "3"])
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

/// A copy of the fixture model whose checkpoint leads with one extra 32 MB f32 matrix (named to
/// sort first, unused by the graphs): quantizing it takes long enough that a kill sent right
/// after its progress line lands while the output is being written, on any machine.
fn slow_fixture(dir: &Path) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    for e in std::fs::read_dir(fixture_model()).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
    }
    let st = dir.join("model.safetensors");
    let bytes = std::fs::read(&st).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let mut h: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let data_len = (bytes.len() - 8 - n) as u64;
    let (rows, cols) = (4096u64, 2048u64);
    let big = rows * cols * 4;
    h.as_object_mut().unwrap().insert(
        "aaa_slow.weight".into(),
        serde_json::json!({"dtype": "F32", "shape": [rows, cols], "data_offsets": [data_len, data_len + big]}),
    );
    let mut hb = h.to_string().into_bytes();
    hb.resize(hb.len().next_multiple_of(8), b' ');
    let mut out = (hb.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&hb);
    out.extend_from_slice(&bytes[8 + n..]);
    // Seeded values in [-1, 1) (never zeros: an all-zero tensor quantizes trivially).
    let mut s = 0x2545_f491_4f6c_dd1du64;
    out.reserve(big as usize);
    for _ in 0..rows * cols {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        let v = (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0;
        out.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(&st, out).unwrap();
    dir.to_path_buf()
}

/// `pinhole quantize` killed (SIGKILL on Unix: no chance to clean up) before any output, in the
/// middle of the big first tensor, and after the first, middle and last tensors: the output
/// folder is either absent or complete (the rename of OUT.partial is the commit), a leftover
/// OUT.partial loaded by mistake is refused cleanly (or, killed after its last write, is the
/// complete result), and the next run names the leftover and, once it is removed, succeeds.
#[test]
fn killed_at_any_point_leaves_no_half_written_output() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};

    let model = slow_fixture(&tmp("kill-model"));
    let reference = tmp("kill-ref");
    let (code, _, stderr) = quantize(&model, &reference, &[]);
    assert_eq!(code, 0, "{stderr}");
    let tensors = stderr.matches("quantizing [").count();
    assert!(tensors >= 8, "{stderr}");
    let want = generate_json(&reference)["token_ids"].clone();

    let mut mid_write = 0;
    for after in [0, 1, 2, tensors / 2, tensors - 1, tensors] {
        let out = tmp(&format!("kill-{after}"));
        let _ = std::fs::remove_dir_all(partial(&out));
        let mut child = Command::new(env!("CARGO_BIN_EXE_pinhole"))
            .args(quantize_args(&model, &out))
            .env("XDG_RUNTIME_DIR", "/tmp")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut seen = 0;
        while seen < after {
            match lines.next() {
                Some(Ok(l)) if l.contains("quantizing [") => seen += 1,
                Some(Ok(_)) => {}
                _ => break,
            }
        }
        let _ = child.kill();
        child.wait().unwrap();
        drop(lines);

        let at = format!("killed after {after} of {tensors} tensors");
        if out.exists() {
            assert_eq!(
                generate_json(&out)["token_ids"],
                want,
                "{at}: the output folder differs"
            );
        }
        if partial(&out).exists() {
            if !out.exists() && (1..tensors).contains(&after) {
                mid_write += 1;
            }
            let p = partial(&out);
            let extra = ["--max-new-tokens", "3", "--json"];
            let (code, stdout, stderr) = common::run_model(&["generate"], &p, &image(), &extra);
            assert!(!stderr.contains("panicked"), "{at}: {stderr}");
            if code == 0 {
                let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
                assert_eq!(
                    v["token_ids"], want,
                    "{at}: a half-written OUT.partial loaded as a model"
                );
            }
            expect_error(&quantize_args(&model, &out), &[".partial", "remove it"]);
            std::fs::remove_dir_all(&p).unwrap();
        }
        if !out.exists() {
            let (code, _, stderr) = quantize(&model, &out, &[]);
            assert_eq!(code, 0, "{at}: the run after the kill failed: {stderr}");
            assert_eq!(generate_json(&out)["token_ids"], want, "{at}");
        }
        std::fs::remove_dir_all(&out).unwrap();
    }
    // Killed right after the big first tensor's line, the run is inside that tensor: at least
    // that case must have left OUT.partial and no OUT, or the test proved nothing.
    assert!(mid_write >= 1, "no kill landed while the output was being written");
    std::fs::remove_dir_all(&model).unwrap();
    std::fs::remove_dir_all(&reference).unwrap();
}
