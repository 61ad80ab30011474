//! CI fuzzing: replays the committed regression corpus through every target (each file once
//! made a parser panic, abort or allocate without bound), then fuzzes each target for a
//! bounded time: `PINHOLE_FUZZ_SECS` seconds (default 6) or `PINHOLE_FUZZ_EXECS` executions,
//! whichever ends first, from seed `PINHOLE_FUZZ_SEED` (default 1). Any panic or allocation
//! over the budget fails with the input (hex) and what happened.

use std::time::Duration;

use pinhole_fuzz::targets::{all, corpus, Target};
use pinhole_fuzz::{execute, fuzz, summary};

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn target(name: &str) -> Target {
    all().into_iter().find(|t| t.name == name).unwrap()
}

fn hex(b: &[u8]) -> String {
    b.iter().take(4096).map(|x| format!("{x:02x}")).collect()
}

fn run(name: &str) {
    let t = target(name);
    // The regression corpus: every file must come back without a finding.
    let mut replayed = 0;
    for (file, input) in corpus(name) {
        let (r, _, _) = execute(&t, &input);
        if let Err(what) = r {
            panic!("{name}: corpus/{name}/{file}: {what}");
        }
        replayed += 1;
    }
    let secs: f64 = env("PINHOLE_FUZZ_SECS", 6.0);
    let r = fuzz(
        &t,
        env("PINHOLE_FUZZ_SEED", 1),
        Duration::from_secs_f64(secs),
        env("PINHOLE_FUZZ_EXECS", u64::MAX),
    );
    eprintln!("{name}: {replayed} corpus files replayed; {}", summary(&r));
    if let Some(f) = r.findings.first() {
        panic!(
            "{name}: {} finding(s); the first: {}\ninput ({} bytes, hex): {}",
            r.findings.len(),
            f.what,
            f.input.len(),
            hex(&f.input)
        );
    }
    assert!(r.execs > 0);
}

#[test]
fn config() {
    run("config");
}

#[test]
fn processor() {
    run("processor");
}

#[test]
fn generation() {
    run("generation");
}

#[test]
fn tokenizer() {
    run("tokenizer");
}

#[test]
fn safetensors() {
    run("safetensors");
}

#[test]
fn shard_index() {
    run("shard_index");
}

#[test]
fn q4_metadata() {
    run("q4_metadata");
}

#[test]
fn prepare() {
    run("prepare");
}

fn boom(b: &[u8]) -> String {
    if b.windows(4).any(|w| w == b"boom") {
        panic!("boom");
    }
    "ok".into()
}

fn hog(b: &[u8]) -> String {
    // 256 MiB for a tiny input: over the budget.
    if b.first() == Some(&b'h') {
        let v = vec![1u8; 256 << 20];
        return v.len().to_string();
    }
    "ok".into()
}

fn long(b: &[u8]) -> String {
    if b.len() > 40 {
        panic!("long input");
    }
    "ok".into()
}

/// A test target over plain (not framed) inputs.
fn unframed(name: &'static str, seeds: fn() -> Vec<Vec<u8>>, run: fn(&[u8]) -> String) -> Target {
    Target {
        name,
        seeds,
        run,
        framed: false,
    }
}

#[test]
fn the_harness_reports_panics_and_allocations() {
    let t = unframed("boom", || vec![b"bo".to_vec()], boom);
    let (r, _, _) = execute(&t, b"xxboomxx");
    assert!(r.unwrap_err().contains("boom"));
    assert_eq!(execute(&t, b"fine").0.unwrap(), "ok");
    let t = unframed("hog", || vec![b"x".to_vec()], hog);
    let (r, _, peak) = execute(&t, b"h");
    assert!(peak >= 256 << 20);
    assert!(r.unwrap_err().contains("allocated"));
    // The mutation loop finds a panic that needs several mutations of its seeds.
    let t = unframed("long", || vec![b"{\"a\": \"bom\"}".to_vec(), b"boo".to_vec()], long);
    let r = fuzz(&t, 7, Duration::from_secs(20), 100_000);
    assert!(!r.findings.is_empty(), "{}", summary(&r));
}

/// SmolVLM/Idefics3 configs go all the way through the `config` target (weights, every tile
/// graph, prefill, decode), and hostile edits of them are typed errors, not panics or
/// unbounded work.
#[test]
fn smolvlm_configs_reach_the_graph_builders() {
    let t = target("config");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    for name in ["smolvlm", "smolvlm-nosplit", "smolvlm-bf16", "idefics3"] {
        let bytes = std::fs::read(root.join(name).join("model/config.json")).unwrap();
        let (r, _, _) = execute(&t, &bytes);
        assert_eq!(r.unwrap(), "ok", "{name}: the fixture config must build every graph");
    }
    let base: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("smolvlm/model/config.json")).unwrap()).unwrap();
    let hostile: &[(&str, serde_json::Value, &str)] = &[
        (
            "/vision_config/image_size",
            serde_json::json!(4294967296u64),
            "image_size",
        ),
        ("/vision_config/patch_size", serde_json::json!(0), "patch_size"),
        ("/scale_factor", serde_json::json!(0), "scale_factor"),
        ("/scale_factor", serde_json::json!(3), "scale_factor"),
        (
            "/text_config/num_hidden_layers",
            serde_json::json!(1_000_000_000_000_000u64),
            "num_hidden_layers",
        ),
        (
            "/text_config/hidden_size",
            serde_json::json!(18446744073709551615u64),
            "hidden_size",
        ),
        (
            "/vision_config/num_attention_heads",
            serde_json::json!(7),
            "num_attention_heads",
        ),
        ("/image_token_id", serde_json::json!(100000), "image_token_id"),
        ("/text_config/vocab_size", serde_json::json!(0), "vocab_size"),
    ];
    for (ptr, value, key) in hostile {
        let mut cfg = base.clone();
        *cfg.pointer_mut(ptr).unwrap_or_else(|| panic!("{ptr} in the fixture")) = value.clone();
        let (r, _, peak) = execute(&t, &serde_json::to_vec(&cfg).unwrap());
        let out = r.unwrap_or_else(|what| panic!("{ptr} = {value}: {what}"));
        assert!(out.contains(key), "{ptr} = {value}: the error must name `{key}`: {out}");
        assert!(peak < 64 << 20, "{ptr} = {value}: {peak} bytes allocated");
    }
}
