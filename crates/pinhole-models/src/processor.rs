//! PaliGemma's processor: the prompt becomes `<image>` × num_image_tokens, `<bos>`, the prompt
//! text and a newline (all of it the bidirectional prefix); the image is decoded, resized with
//! PIL's bicubic filter to the model's size, rescaled and normalised.

use pinhole_core::hf::image::preprocess_image;
use pinhole_core::Tensor;

use crate::error::{Error, Result};
use crate::paligemma::PaliGemma;

/// Token ids of the prefix for `prompt`.
pub fn prompt_ids(model: &PaliGemma, tok: &tokenizers::Tokenizer, prompt: &str) -> Result<Vec<u32>> {
    let cfg = &model.cfg;
    let bos = cfg
        .bos_token_id
        .or(cfg.text.bos_token_id)
        .or_else(|| tok.token_to_id("<bos>"))
        .ok_or_else(|| Error::Tokenizer {
            file: "tokenizer.json".into(),
            message: "no <bos> token and no bos_token_id in config.json".into(),
        })?;
    let text = format!("{prompt}\n");
    let enc = tok.encode(text.as_str(), false).map_err(|e| Error::Tokenizer {
        file: "tokenizer.json".into(),
        message: e.to_string(),
    })?;
    let mut ids = vec![cfg.image_token_index; model.num_image_tokens()];
    ids.push(bos);
    ids.extend_from_slice(enc.get_ids());
    if let Some(bad) = ids.iter().find(|&&i| i as usize >= cfg.text.vocab_size) {
        return Err(Error::Tokenizer {
            file: "tokenizer.json".into(),
            message: format!(
                "token id {bad} is outside the model's vocabulary of {}",
                cfg.text.vocab_size
            ),
        });
    }
    Ok(ids)
}

/// Positions of the image tokens in `ids`, in order (where image features go).
pub fn image_rows(model: &PaliGemma, ids: &[u32]) -> Vec<u32> {
    ids.iter()
        .enumerate()
        .filter(|(_, &t)| t == model.cfg.image_token_index)
        .map(|(i, _)| i as u32)
        .collect()
}

/// Decoded, resized and normalised pixels `[3, size, size]` for the model.
pub fn pixels(model: &PaliGemma, bytes: &[u8], name: &str) -> Result<Tensor> {
    let t = preprocess_image(bytes, name, &model.processor)?;
    let v = &model.cfg.vision;
    let want = [v.num_channels, v.image_size, v.image_size];
    if t.shape != want {
        return Err(Error::Request(format!(
            "{name}: the processor config produces images of {:?} but the vision tower expects {want:?}; check preprocessor_config.json's size",
            t.shape
        )));
    }
    Ok(t)
}

/// Decodes generated ids to text, skipping special tokens.
pub fn decode(tok: &tokenizers::Tokenizer, ids: &[u32]) -> Result<String> {
    tok.decode(ids, true).map_err(|e| Error::Tokenizer {
        file: "tokenizer.json".into(),
        message: e.to_string(),
    })
}

/// Decodes generated ids keeping special tokens (so `<locYYYY>` boxes can be parsed).
pub fn decode_with_special(tok: &tokenizers::Tokenizer, ids: &[u32]) -> Result<String> {
    tok.decode(ids, false).map_err(|e| Error::Tokenizer {
        file: "tokenizer.json".into(),
        message: e.to_string(),
    })
}
