//! The processors: prompt ids and pixels as transformers' processors make them.
//!
//! * PaliGemma: `<image>` × num_image_tokens, `<bos>`, the prompt text and a newline (all of it
//!   the bidirectional prefix).
//! * BLIP-2 (transformers 5 `Blip2Processor`): `<image>` × num_query_tokens in front of the
//!   tokenised prompt (the tokenizer's own special tokens, e.g. a BOS, come after the image
//!   tokens). Without an `image_token_index` in config.json the image rows still go first.
//!
//! The image is decoded, resized with PIL's bicubic filter to the model's size, rescaled and
//! normalised with the mean/std of the processor config (SigLIP's 0.5, BLIP's CLIP values).

use pinhole_core::hf::image::{preprocess_image_with, DecodeOptions};
use pinhole_core::Tensor;

use crate::error::{Error, Result};
use crate::model::Model;
use crate::tokenizer::contained;

fn tok_err(message: String) -> Error {
    Error::Tokenizer {
        file: "tokenizer.json".into(),
        message,
    }
}

/// `tok.encode` with a panic inside the tokenizers crate contained ([`crate::tokenizer`]).
fn encode(tok: &tokenizers::Tokenizer, text: &str, special: bool) -> Result<tokenizers::Encoding> {
    contained("tokenizer.json", "encoding the prompt", || {
        tok.encode(text, special).map_err(|e| tok_err(e.to_string()))
    })
}

/// Token ids of the prompt (with the image placeholders) for `prompt`.
pub fn prompt_ids(model: &Model, tok: &tokenizers::Tokenizer, prompt: &str) -> Result<Vec<u32>> {
    let ids = match model {
        Model::PaliGemma(m) => {
            let cfg = &m.cfg;
            let bos = cfg
                .bos_token_id
                .or(cfg.text.bos_token_id)
                .or_else(|| tok.token_to_id("<bos>"))
                .ok_or_else(|| tok_err("no <bos> token and no bos_token_id in config.json".into()))?;
            let text = format!("{prompt}\n");
            let enc = encode(tok, &text, false)?;
            let mut ids = vec![cfg.image_token_index; m.num_image_tokens()];
            ids.push(bos);
            ids.extend_from_slice(enc.get_ids());
            ids
        }
        Model::Blip2Phi(m) => {
            // add_special_tokens = true: the tokenizer's post-processor decides (as
            // `tokenizer(text)` does in transformers).
            let enc = encode(tok, prompt, true)?;
            // Without an image token id, id 0 only holds the rows the image features replace.
            let mut ids = vec![m.cfg.image_token_index.unwrap_or(0); m.num_image_tokens()];
            ids.extend_from_slice(enc.get_ids());
            if let Some(img) = m.cfg.image_token_index {
                if enc.get_ids().contains(&img) {
                    return Err(Error::Request(
                        "the prompt contains the image token itself; pass the text only (pinhole adds the image tokens)"
                            .into(),
                    ));
                }
            }
            ids
        }
    };
    if let Some(bad) = ids.iter().find(|&&i| i as usize >= model.vocab_size()) {
        return Err(tok_err(format!(
            "token id {bad} is outside the model's vocabulary of {}",
            model.vocab_size()
        )));
    }
    Ok(ids)
}

/// Positions of the image rows in `ids`, in order (where image features go).
pub fn image_rows(model: &Model, ids: &[u32]) -> Vec<u32> {
    let image_token = match model {
        Model::PaliGemma(m) => m.cfg.image_token_index,
        Model::Blip2Phi(m) => match m.cfg.image_token_index {
            Some(t) => t,
            None => return (0..m.num_image_tokens().min(ids.len()) as u32).collect(),
        },
    };
    ids.iter()
        .enumerate()
        .filter(|(_, &t)| t == image_token)
        .map(|(i, _)| i as u32)
        .collect()
}

/// Decoded (turned upright by its EXIF orientation, as transformers' `load_image` does),
/// resized and normalised pixels `[3, size, size]` for the model.
pub fn pixels(model: &Model, bytes: &[u8], name: &str) -> Result<Tensor> {
    pixels_with(model, bytes, name, DecodeOptions::default())
}

/// [`pixels`] with [`DecodeOptions`] (e.g. the EXIF orientation left unapplied).
pub fn pixels_with(model: &Model, bytes: &[u8], name: &str, opts: DecodeOptions) -> Result<Tensor> {
    let t = preprocess_image_with(bytes, name, model.processor(), opts)?;
    let want = model.pixel_shape();
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
    contained("tokenizer.json", "decoding", || {
        tok.decode(ids, true).map_err(|e| tok_err(e.to_string()))
    })
}

/// Decodes generated ids keeping special tokens (so `<locYYYY>` boxes can be parsed).
pub fn decode_with_special(tok: &tokenizers::Tokenizer, ids: &[u32]) -> Result<String> {
    contained("tokenizer.json", "decoding", || {
        tok.decode(ids, false).map_err(|e| tok_err(e.to_string()))
    })
}
