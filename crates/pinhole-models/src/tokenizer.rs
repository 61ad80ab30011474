//! `tokenizer.json` through the `tokenizers` crate, with that crate's panics contained.
//!
//! tokenizers 0.22 panics on some malformed files instead of returning an error (a file that
//! ends inside `decoder` hits `.expect("Helper")` in `decoders/mod.rs`; a `Precompiled`
//! normalizer with a bad charsmap hits `.expect("Precompiled")`). Natively every call into the
//! crate runs under `catch_unwind` and a panic becomes [`Error::Tokenizer`] naming the file,
//! with the default panic message silenced for that call. In the browser (wasm32, where
//! `panic = abort` makes `catch_unwind` useless) the bytes are first checked to be valid JSON,
//! which turns every truncated or garbled file into an error before the crate sees it, and any
//! `Precompiled` normalizer is deserialized as the crate does before its `expect`; a panic that
//! still escapes aborts the instance, which the npm package reports and recovers from by
//! starting a new instance (js/engine.js).

use tokenizers::Tokenizer;

use crate::error::{Error, Result};

/// Parses `tokenizer.json` bytes; `file` names it in errors.
pub fn load(bytes: &[u8], file: &str) -> Result<Tokenizer> {
    // A syntax check first: cheap (nothing is built), and the known panics of
    // `Tokenizer::from_bytes` are all on JSON that ends or breaks inside a sub-object.
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        return Err(Error::Tokenizer {
            file: file.to_string(),
            message: format!("not valid JSON ({e}); download it again"),
        });
    }
    // The one known panic on valid JSON: a `Precompiled` normalizer the crate cannot build
    // (`.expect("Precompiled")`). Checked the same way the crate reads it, so the browser
    // (where the panic would abort the instance) gets an error naming the file too.
    if let Err(message) = check_normalizers(bytes) {
        return Err(Error::Tokenizer {
            file: file.to_string(),
            message,
        });
    }
    contained(file, "reading it", || {
        Tokenizer::from_bytes(bytes).map_err(|e| Error::Tokenizer {
            file: file.to_string(),
            message: e.to_string(),
        })
    })
}

/// Deserializes every `Precompiled` normalizer (also inside a `Sequence`) as tokenizers does
/// before it calls `.expect("Precompiled")`; only the `normalizer` key is parsed into values.
fn check_normalizers(bytes: &[u8]) -> std::result::Result<(), String> {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(default)]
        normalizer: Option<serde_json::Value>,
    }
    fn walk(v: &serde_json::Value, depth: usize) -> std::result::Result<(), String> {
        if depth > 64 {
            return Err("`normalizer` is nested more than 64 levels deep".into());
        }
        match v.get("type").and_then(|t| t.as_str()) {
            Some("Precompiled") => serde_json::from_value::<tokenizers::normalizers::Precompiled>(v.clone())
                .map(|_| ())
                .map_err(|e| format!("its Precompiled normalizer cannot be read ({e}); download the file again")),
            Some("Sequence") => match v.get("normalizers").and_then(|n| n.as_array()) {
                Some(list) => list.iter().try_for_each(|n| walk(n, depth + 1)),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }
    match serde_json::from_slice::<Head>(bytes) {
        Ok(Head { normalizer: Some(v) }) => walk(&v, 0),
        // Not an object at the top, or no normalizer: tokenizers' own error says what is wrong.
        _ => Ok(()),
    }
}

/// Runs `f` (a call into the tokenizers crate); a panic inside it becomes
/// [`Error::Tokenizer`] for `file`, saying it happened while `what`.
pub fn contained<T>(file: &str, what: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        quiet::install();
        let r = quiet::silenced(|| std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
        match r {
            Ok(r) => r,
            Err(payload) => {
                let detail = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "no message".into());
                Err(Error::Tokenizer {
                    file: file.to_string(),
                    message: format!(
                        "the tokenizers library failed while {what} (internal error: {detail}); the file is \
                         damaged or uses a form this version cannot read: download it again"
                    ),
                })
            }
        }
    }
    #[cfg(target_arch = "wasm32")]
    {
        let _ = what;
        let _ = file;
        f()
    }
}

/// A panic hook that stays silent for panics inside [`contained`] (on this thread) and hands
/// every other panic to the hook that was installed before it, so a contained panic prints
/// nothing and a real bug still prints its usual message.
#[cfg(not(target_arch = "wasm32"))]
mod quiet {
    use std::cell::Cell;
    use std::sync::Once;

    thread_local! {
        static DEPTH: Cell<u32> = const { Cell::new(0) };
    }

    pub(super) fn install() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if DEPTH.with(|d| d.get()) == 0 {
                    previous(info);
                }
            }));
        });
    }

    pub(super) fn silenced<T>(f: impl FnOnce() -> T) -> T {
        struct Guard;
        impl Drop for Guard {
            fn drop(&mut self) {
                DEPTH.with(|d| d.set(d.get() - 1));
            }
        }
        DEPTH.with(|d| d.set(d.get() + 1));
        let _guard = Guard;
        f()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_and_garbage_files_are_errors() {
        for bytes in [&b""[..], b"{", b"{\"decoder\":{\"add_prefix_sp", b"\xff\xfe", b"[1, 2"] {
            let e = load(bytes, "dir/tokenizer.json").unwrap_err();
            assert!(matches!(e, Error::Tokenizer { .. }), "{e}");
            assert!(e.to_string().starts_with("dir/tokenizer.json: "), "{e}");
        }
    }

    #[test]
    fn a_panic_in_valid_json_is_contained() {
        // Valid JSON that tokenizers 0.22 panics on (`.expect("Precompiled")`): refused by the
        // pre-check (so also in the browser), alone and inside a Sequence.
        let j = br#"{"normalizer": {"type": "Precompiled", "precompiled_charsmap": 5}, "model": {"type": "WordLevel", "vocab": {}, "unk_token": "x"}}"#;
        let seq = br#"{"normalizer": {"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Precompiled", "precompiled_charsmap": "!!"}]}, "model": {"type": "WordLevel", "vocab": {}, "unk_token": "x"}}"#;
        for j in [&j[..], &seq[..]] {
            let e = load(j, "tokenizer.json").unwrap_err();
            let m = e.to_string();
            assert!(matches!(e, Error::Tokenizer { .. }), "{m}");
            assert!(
                m.contains("tokenizer.json") && m.contains("Precompiled normalizer"),
                "{m}"
            );
        }
        // The panic itself is still contained natively when the pre-check is bypassed.
        let e = contained("tokenizer.json", "reading it", || {
            Tokenizer::from_bytes(j).map_err(|e| Error::Tokenizer {
                file: "tokenizer.json".into(),
                message: e.to_string(),
            })
        })
        .unwrap_err();
        assert!(e.to_string().contains("internal error: Precompiled"), "{e}");
        // The hook is still usable afterwards and other panics still propagate.
        let r = std::panic::catch_unwind(|| contained("t", "x", || -> Result<()> { panic!("inner") }));
        assert!(matches!(r, Ok(Err(Error::Tokenizer { .. }))));
    }
}
