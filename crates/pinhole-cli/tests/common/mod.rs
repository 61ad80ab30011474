//! Helpers the CLI test binaries share: where the repository and its fixtures are, running the
//! `pinhole` binary, reading id lists out of JSON.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `tests/fixtures` at the repository root.
pub fn fixtures() -> PathBuf {
    repo().join("tests/fixtures")
}

/// The small PaliGemma fixture model most error tests start from.
pub fn fixture_model() -> PathBuf {
    fixtures().join("pg1-mqa/model")
}

/// A fixture image that fits [`fixture_model`].
pub fn image() -> PathBuf {
    fixtures().join("images/shapes_64.png")
}

/// Runs `pinhole args…`: (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (i32, String, String) {
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

/// Runs `pinhole args…` in the repository root; it must succeed. Its stdout.
pub fn pinhole(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_pinhole"))
        .args(args)
        .current_dir(repo())
        .env("XDG_RUNTIME_DIR", "/tmp")
        .output()
        .expect("run pinhole");
    assert!(
        out.status.success(),
        "pinhole {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// A JSON list of token ids.
pub fn ids(v: &serde_json::Value) -> Vec<u64> {
    v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect()
}

/// A fixture's `expected.json` (what transformers recorded).
pub fn expected(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap()
}

/// Runs `pinhole <cmd…> --model <model> --image <image> <extra…>`: (exit code, stdout,
/// stderr).
pub fn run_model(cmd: &[&str], model: &Path, image: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut a = cmd.to_vec();
    a.extend(["--model", model.to_str().unwrap(), "--image", image.to_str().unwrap()]);
    a.extend_from_slice(extra);
    run(&a)
}

/// `pinhole generate … <extra…> --json`, which must succeed: its one JSON object.
pub fn generate_json(model: &Path, image: &Path, extra: &[&str]) -> serde_json::Value {
    let (code, stdout, stderr) = run_model(&["generate"], model, image, &[extra, &["--json"]].concat());
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(stdout.trim()).expect("one JSON object")
}

/// A scratch copy of the model folder `src` that a test may break.
pub fn scratch_copy(src: &Path, name: &str) -> PathBuf {
    let dir = temp_dir(name);
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
    }
    dir
}

/// An empty folder of this test process under the system's temp folder.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("pinhole-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `pinhole caption --model <model> --max-new-tokens <n> <images…>`: (exit code, stdout,
/// stderr).
pub fn caption(model: &Path, max_new_tokens: &str, images: &[&Path]) -> (i32, String, String) {
    let mut a = vec![
        "caption",
        "--model",
        model.to_str().unwrap(),
        "--max-new-tokens",
        max_new_tokens,
    ];
    a.extend(images.iter().map(|i| i.to_str().unwrap()));
    run(&a)
}
