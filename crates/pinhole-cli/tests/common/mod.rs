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
