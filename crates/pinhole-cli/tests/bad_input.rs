//! Bad input to the CLI: a clear error naming the file, tensor or limit, a non-zero exit,
//! no panic, and nothing written.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/pg1-mqa/model")
}

fn image() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/images/shapes_64.png")
}

/// A scratch copy of the fixture model that a test may break.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pinhole-bad-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for e in std::fs::read_dir(fixture_model()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    dir
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pinhole"))
        .args(args)
        .env("XDG_RUNTIME_DIR", "/tmp")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn expect_error(args: &[&str], needles: &[&str]) {
    let (code, stdout, stderr) = run(args);
    assert_ne!(code, 0, "expected failure for {args:?}; stdout: {stdout}");
    assert!(!stderr.contains("panicked"), "panic for {args:?}: {stderr}");
    assert!(stdout.is_empty(), "nothing on stdout on error, got {stdout}");
    for n in needles {
        assert!(stderr.contains(n), "stderr for {args:?} should mention '{n}': {stderr}");
    }
}

fn gen_args<'a>(model: &'a str, img: &'a str) -> Vec<&'a str> {
    vec![
        "generate",
        "--model",
        model,
        "--image",
        img,
        "--prompt",
        "caption en",
        "--max-new-tokens",
        "3",
        "--json",
    ]
}

#[test]
fn works_on_the_fixture() {
    let m = fixture_model();
    let i = image();
    let (code, stdout, stderr) = run(&gen_args(m.to_str().unwrap(), i.to_str().unwrap()));
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON object");
    assert_eq!(stdout.trim().lines().count(), 1);
    assert_eq!(v["token_ids"].as_array().unwrap().len(), 3);
    for k in ["load_ms", "image_encode_ms", "prefill_ms", "decode_ms", "tokens_per_s"] {
        assert!(v["timings"][k].is_number(), "timings.{k}");
    }
    assert!(v["adapter"]["name"].is_string());
}

#[test]
fn missing_folder_and_files() {
    let i = image();
    let i = i.to_str().unwrap();
    expect_error(&gen_args("/nonexistent/model", i), &["/nonexistent/model"]);
    for file in ["config.json", "tokenizer.json", "model.safetensors"] {
        let d = scratch(&format!("missing-{file}"));
        std::fs::remove_file(d.join(file)).unwrap();
        expect_error(&gen_args(d.to_str().unwrap(), i), &[]);
        let (_, _, stderr) = run(&gen_args(d.to_str().unwrap(), i));
        assert!(
            stderr.contains(file) || stderr.contains("safetensors"),
            "{file}: {stderr}"
        );
    }
}

#[test]
fn missing_tensor_and_wrong_shape() {
    let i = image();
    let i = i.to_str().unwrap();
    let d = scratch("more-layers");
    let cfg = std::fs::read_to_string(d.join("config.json")).unwrap();
    // Three text layers in the config, two in the checkpoint: layer 2 is missing.
    let more = cfg.replacen("\"num_hidden_layers\": 2", "\"num_hidden_layers\": 3", 1);
    assert_ne!(more, cfg);
    std::fs::write(d.join("config.json"), more).unwrap();
    expect_error(&gen_args(d.to_str().unwrap(), i), &["layers.", "missing"]);

    let d = scratch("wrong-shape");
    let wrong = cfg.replacen("\"intermediate_size\": 64", "\"intermediate_size\": 65", 1);
    assert_ne!(wrong, cfg);
    std::fs::write(d.join("config.json"), wrong).unwrap();
    expect_error(&gen_args(d.to_str().unwrap(), i), &["shape", "config.json"]);
}

#[test]
fn corrupt_checkpoint_and_unsupported_model_type() {
    let i = image();
    let i = i.to_str().unwrap();
    let d = scratch("truncated");
    let st = d.join("model.safetensors");
    let bytes = std::fs::read(&st).unwrap();
    std::fs::write(&st, &bytes[..100]).unwrap();
    expect_error(&gen_args(d.to_str().unwrap(), i), &["model.safetensors"]);
    std::fs::write(&st, b"\xff\xff\xff\xff\xff\xff\xff\x7fgarbage").unwrap();
    expect_error(&gen_args(d.to_str().unwrap(), i), &["model.safetensors"]);

    let d = scratch("llava");
    let cfg = std::fs::read_to_string(d.join("config.json")).unwrap();
    std::fs::write(
        d.join("config.json"),
        cfg.replace("\"model_type\": \"paligemma\"", "\"model_type\": \"llava\""),
    )
    .unwrap();
    expect_error(&gen_args(d.to_str().unwrap(), i), &["llava"]);
}

#[test]
fn unreadable_image_too_long_prompt_and_nothing_written() {
    let m = fixture_model();
    let m = m.to_str().unwrap();
    let dir = std::env::temp_dir().join(format!("pinhole-bad-{}-img", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = dir.join("not-an-image.png");
    std::fs::write(&text, "hello").unwrap();
    let empty = dir.join("empty.jpg");
    std::fs::write(&empty, "").unwrap();
    let dump = dir.join("dump");
    for bad in [&text, &empty] {
        let mut a = gen_args(m, bad.to_str().unwrap());
        a.extend(["--dump", dump.to_str().unwrap()]);
        expect_error(&a, &[bad.file_name().unwrap().to_str().unwrap()]);
    }
    assert!(!dump.exists(), "a failed run must not write its dump");
    expect_error(&gen_args(m, "/nonexistent.png"), &["/nonexistent.png"]);

    let i = image();
    let mut a = gen_args(m, i.to_str().unwrap());
    a[8] = "100000";
    expect_error(&a, &["context", "8192"]);
    expect_error(&["generate", "--bogus"], &["--bogus"]);
}

#[test]
fn help_per_command() {
    for (cmd, needle) in [
        ("quantize", "pinhole quantize --model DIR --out DIR"),
        ("generate", "--repetition-penalty"),
        ("caption", "pinhole caption [--model DIR] IMAGE"),
        ("bench", "pinhole bench kernels"),
    ] {
        let (code, out, err) = run(&[cmd, "--help"]);
        assert_eq!(code, 0, "{cmd} --help: {err}");
        assert!(out.contains(needle), "{cmd} --help printed:\n{out}");
        assert!(!out.contains("pinhole info"), "only the command's own usage:\n{out}");
    }
    let (code, _, err) = run(&["quantize", "--hepl"]);
    assert_ne!(code, 0);
    assert!(err.contains("unknown option --hepl"), "{err}");
    assert!(err.contains("pinhole quantize --help"), "{err}");
}

#[test]
fn closed_stdout_ends_quietly() {
    // `pinhole caption *.png | head -1`: the reader goes away; no panic, no backtrace.
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_pinhole"))
        .arg("--help")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // closed before the child writes (it has barely started)
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        matches!(out.status.code(), Some(0) | Some(141)),
        "{:?} {err}",
        out.status
    );
}
