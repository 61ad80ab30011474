//! Upper limits on the sizes pinhole reads from model files, checked while parsing and before
//! anything is allocated from them.
//!
//! A `config.json` is a small text file that decides how much memory and work the rest of the
//! program spends: a `num_hidden_layers` of 10^15 used to size a vector while parsing, an
//! `image_size` of 2^32 overflowed `(image_size / patch_size)²`. Every size read from a config
//! is therefore checked against the limits below, and every product of two of them fits in
//! `u64` (and the products the model code forms, such as heads × head_dim, are checked as
//! well). The limits are far above every model pinhole targets (PaliGemma 2 28B has 46 layers,
//! hidden 4608, vocabulary 257 216; Gemma 3 a vocabulary of 262 144 and 131 072 positions) and
//! far below what would overflow or exhaust memory; RELIABILITY.md lists them.
//!
//! An input over a limit is answered with [`Error::Limit`], which names the file, the key, the
//! value and the limit.

use crate::error::{Error, Result};

/// Widths: `hidden_size` (text, vision, Q-Former), `projection_dim`, `head_dim`, and the
/// attention width heads × head_dim.
pub const MAX_WIDTH: usize = 1 << 16;
/// `intermediate_size` of an MLP.
pub const MAX_INTERMEDIATE: usize = 1 << 18;
/// `num_hidden_layers` of any tower.
pub const MAX_LAYERS: usize = 1024;
/// `num_attention_heads` and `num_key_value_heads`.
pub const MAX_HEADS: usize = 1024;
/// `vocab_size`, and so every token id a config names is below it.
pub const MAX_VOCAB: usize = 1 << 20;
/// `max_position_embeddings` and `sliding_window`: positions per sequence.
pub const MAX_POSITIONS: usize = 1 << 20;
/// Side of the model's (square) input image in pixels, and of the processor's resize target.
pub const MAX_IMAGE_SIDE: usize = 4096;
/// Image tokens per image: patches of the vision tower, `image_seq_length`,
/// `num_query_tokens`.
pub const MAX_IMAGE_TOKENS: usize = 1 << 16;
/// `num_channels` of the pixels.
pub const MAX_CHANNELS: usize = 4;

/// `value` if it is at most `limit`, else [`Error::Limit`] naming `file` and `key`.
pub fn at_most(file: &str, key: &str, value: usize, limit: usize) -> Result<usize> {
    if value > limit {
        return Err(Error::Limit {
            file: file.to_string(),
            key: key.to_string(),
            value: value.to_string(),
            limit: limit as u64,
        });
    }
    Ok(value)
}

/// `a * b` if the product is at most `limit` (no overflow on any target), else
/// [`Error::Limit`] for `key` (which should say what is multiplied).
pub fn product_at_most(file: &str, key: &str, a: usize, b: usize, limit: usize) -> Result<usize> {
    match a.checked_mul(b) {
        Some(p) if p <= limit => Ok(p),
        p => Err(Error::Limit {
            file: file.to_string(),
            key: key.to_string(),
            value: p.map_or_else(|| format!("{a} x {b}"), |p| p.to_string()),
            limit: limit as u64,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_leave_room_for_products() {
        // Any two limits multiply without overflowing u64, so size arithmetic on checked
        // values cannot wrap on 64-bit targets.
        let all = [
            MAX_WIDTH,
            MAX_INTERMEDIATE,
            MAX_LAYERS,
            MAX_HEADS,
            MAX_VOCAB,
            MAX_POSITIONS,
            MAX_IMAGE_SIDE,
            MAX_IMAGE_TOKENS,
            MAX_CHANNELS,
        ];
        for a in all {
            for b in all {
                assert!((a as u64).checked_mul(b as u64).is_some());
            }
        }
        // The pixels of the largest image fit 32-bit sizes (wasm32): 3 · 4096² · 4 bytes.
        assert!((MAX_CHANNELS * MAX_IMAGE_SIDE * MAX_IMAGE_SIDE * 4) as u64 <= u32::MAX as u64);
    }

    #[test]
    fn errors_name_file_key_and_limit() {
        let e = at_most("config.json", "text_config.num_hidden_layers", 5000, MAX_LAYERS).unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("config.json")
                && m.contains("text_config.num_hidden_layers")
                && m.contains("5000")
                && m.contains("1024"),
            "{m}"
        );
        assert_eq!(at_most("f", "k", 1024, MAX_LAYERS).unwrap(), 1024);
        let e = product_at_most("f", "heads x head_dim", usize::MAX, 2, MAX_WIDTH).unwrap_err();
        assert!(matches!(e, Error::Limit { .. }), "{e}");
        assert_eq!(product_at_most("f", "k", 256, 256, MAX_WIDTH).unwrap(), 65536);
    }
}
