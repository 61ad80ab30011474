//! Bad input to the CLI: a clear error naming the file, tensor or limit, a non-zero exit,
//! no panic, and nothing written.

use std::path::{Path, PathBuf};
use std::process::Command;

#[allow(dead_code)] // each test binary uses a part of the shared helpers
mod common;

use common::{fixture_model, image, run};

/// A scratch copy of the fixture model that a test may break.
fn scratch(name: &str) -> PathBuf {
    common::scratch_copy(&fixture_model(), &format!("bad-{name}"))
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
    let dir = common::temp_dir("bad-img");
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

/// The issue-17 reproducers (crates/pinhole-core/tests/fixtures/hostile).
fn hostile(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../pinhole-core/tests/fixtures/hostile")
            .join(name),
    )
    .unwrap()
}

/// A failure reported as exactly one line on stderr.
fn expect_one_line(args: &[&str], needles: &[&str]) {
    expect_error(args, needles);
    let (_, _, stderr) = run(args);
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line for {args:?}: {stderr}");
}

#[test]
fn hostile_configs_and_tokenizers_are_one_clear_line() {
    let i = image();
    let i = i.to_str().unwrap();
    // Each used to abort, panic with a capacity overflow, or grow until killed.
    for (file, needles) in [
        (
            "config-layers-1e15.json",
            &["config.json", "num_hidden_layers", "1024"][..],
        ),
        ("config-layers-2p63.json", &["config.json", "num_hidden_layers"][..]),
        (
            "config-paligemma-image-size-2p32.json",
            &["config.json", "image_size", "4096"][..],
        ),
        (
            "config-heads-overflow.json",
            &["config.json", "num_attention_heads"][..],
        ),
    ] {
        let d = scratch(file);
        std::fs::write(d.join("config.json"), hostile(file)).unwrap();
        expect_one_line(&gen_args(d.to_str().unwrap(), i), needles);
    }
    // tokenizers 0.22 panics inside its decoder deserializer on these.
    let d = scratch("tokenizer");
    for bad in [
        &br#"{"decoder":{"add_prefix_sp"#[..],
        br#"{"normalizer": {"type": "Precompiled", "precompiled_charsmap": 5}, "model": {"type": "WordLevel", "vocab": {}, "unk_token": "x"}}"#,
        b"\xff\xfe garbage",
    ] {
        std::fs::write(d.join("tokenizer.json"), bad).unwrap();
        expect_one_line(&gen_args(d.to_str().unwrap(), i), &["tokenizer.json"]);
    }
}

#[test]
fn truncated_model_files_at_many_offsets() {
    let i = image();
    let i = i.to_str().unwrap();
    let d = scratch("truncate");
    for file in [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "preprocessor_config.json",
    ] {
        let whole = std::fs::read(fixture_model().join(file)).unwrap();
        for frac in [0.0, 0.01, 0.5, 0.97] {
            let cut = ((whole.len() as f64 * frac) as usize).min(whole.len() - 1);
            std::fs::write(d.join(file), &whole[..cut]).unwrap();
            expect_one_line(&gen_args(d.to_str().unwrap(), i), &[file.split('.').next().unwrap()]);
        }
        std::fs::write(d.join(file), &whole).unwrap();
    }
}

#[test]
fn bad_requests_are_one_clear_line() {
    let m = fixture_model();
    let m = m.to_str().unwrap();
    let i = image();
    let i = i.to_str().unwrap();
    for (n, needle) in [
        ("0", "at least 1"),
        ("-1", "not a valid number"),
        ("1000000000", "context"),
        ("18446744073709551615", "context"),
        ("18446744073709551616", "not a valid number"),
    ] {
        let mut a = gen_args(m, i);
        a[8] = n;
        expect_one_line(&a, &[needle]);
    }
    // A 100 KB prompt is longer than the context.
    let long = "a ".repeat(50_000);
    let mut a = gen_args(m, i);
    a[6] = &long;
    expect_one_line(&a, &["context"]);
    // A prompt that is not UTF-8 (std::env::args would panic on it).
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let bad = std::ffi::OsStr::from_bytes(b"caption \xff\xfe");
        let out = Command::new(env!("CARGO_BIN_EXE_pinhole"))
            .args(["generate", "--model", m, "--image", i, "--prompt"])
            .arg(bad)
            .env("XDG_RUNTIME_DIR", "/tmp")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0));
        assert!(!err.contains("panicked"), "{err}");
        assert!(err.contains("UTF-8") && err.trim_end().lines().count() == 1, "{err}");
    }
    // --dump naming a file fails before the model is loaded.
    let dir = common::temp_dir("bad-dumpfile");
    let file = dir.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let mut a = gen_args(m, i);
    a.extend(["--dump", file.to_str().unwrap()]);
    expect_one_line(&a, &["--dump", "a-file", "not a folder"]);
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[test]
fn caption_reports_a_bad_image_and_goes_on() {
    let m = fixture_model();
    let dir = common::temp_dir("bad-batch");
    let bad = dir.join("bad.png");
    std::fs::write(&bad, "this is text, not an image").unwrap();
    let empty = dir.join("empty.png");
    std::fs::write(&empty, "").unwrap();
    // A valid 1x1 RGB PNG: captioned like any other image.
    let tiny = dir.join("tiny.png");
    let hex = "89504e470d0a1a0a0000000d4948445200000001000000010802000000907753de0000000c49444154789c63f8cfc0000003010100c9fe92ef0000000049454e44ae426082";
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|k| u8::from_str_radix(&hex[k..k + 2], 16).unwrap())
        .collect();
    std::fs::write(&tiny, bytes).unwrap();
    let i = image();
    let (code, stdout, stderr) = common::caption(&m, "2", &[&i, &bad, &tiny, &empty]);
    assert_ne!(code, 0, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stdout.lines().count(), 2, "the two good images are captioned: {stdout}");
    assert!(stderr.contains("bad.png") && stderr.contains("empty.png"), "{stderr}");
    assert!(stderr.contains("2 of 4 images"), "{stderr}");
}

#[test]
fn quantize_out_naming_a_file() {
    let dir = common::temp_dir("bad-qout");
    let file = dir.join("out-file");
    std::fs::write(&file, "x").unwrap();
    let m = fixture_model();
    expect_one_line(
        &[
            "quantize",
            "--model",
            m.to_str().unwrap(),
            "--out",
            file.to_str().unwrap(),
            "--quiet",
        ],
        &["out-file", "is a file, not a folder"],
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}
