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

use pinhole_core::hf::image::{preprocess_image_with, preprocess_rgb, DecodeOptions, Rgb8Image};
use pinhole_core::Tensor;

use crate::arch::tok_err;
pub use crate::arch::ImageInput;
use crate::error::{Error, Result};
use crate::model::Model;
use crate::tokenizer::contained;

/// Token ids of the prompt with the image placeholders for `image` (the family's
/// [`crate::arch::Architecture::prompt_ids`]; SmolVLM's `prompt` is the chat-templated text
/// with one `<image>`, expanded into the tile tokens of `image.grid`), checked against the
/// vocabulary.
pub fn prompt_ids_for(
    model: &Model,
    tok: &tokenizers::Tokenizer,
    prompt: &str,
    image: &ImageInput,
) -> Result<Vec<u32>> {
    let ids = model.prompt_ids(tok, prompt, Some(image))?;
    check_vocab(model, &ids)?;
    Ok(ids)
}

fn check_vocab(model: &Model, ids: &[u32]) -> Result<()> {
    if let Some(bad) = ids.iter().find(|&&i| i as usize >= model.vocab_size()) {
        return Err(tok_err(format!(
            "token id {bad} is outside the model's vocabulary of {}",
            model.vocab_size()
        )));
    }
    Ok(())
}

/// Token ids of the prompt (with the image placeholders) for `prompt` (PaliGemma, BLIP-2;
/// SmolVLM needs the image's grid: [`prompt_ids_for`]).
pub fn prompt_ids(model: &Model, tok: &tokenizers::Tokenizer, prompt: &str) -> Result<Vec<u32>> {
    let ids = model.prompt_ids(tok, prompt, None)?;
    check_vocab(model, &ids)?;
    Ok(ids)
}

/// Positions of the image rows in `ids`, in order (where image features go): the positions
/// of the family's image token, or without one the first `num_image_tokens` positions.
pub fn image_rows(model: &Model, ids: &[u32]) -> Vec<u32> {
    let Some(image_token) = model.image_token() else {
        return (0..model.num_image_tokens().min(ids.len()) as u32).collect();
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

/// The image as the model's processor makes it (SmolVLM: the tiles `[tiles, 3, T, T]` and
/// their grid; the other families: [`pixels`]).
pub fn image_input(model: &Model, bytes: &[u8], name: &str) -> Result<ImageInput> {
    image_input_with(model, bytes, name, DecodeOptions::default())
}

/// [`image_input`] with [`DecodeOptions`].
pub fn image_input_with(model: &Model, bytes: &[u8], name: &str, opts: DecodeOptions) -> Result<ImageInput> {
    if !model.tiled() {
        return Ok(pixels_with(model, bytes, name, opts)?.into());
    }
    let img = pinhole_core::hf::image::decode_image_with(bytes, name, opts)?;
    image_input_rgb(model, &img, name)
}

/// An image already decoded to RGB (the browser's canvas pixels) as the model's processor
/// makes it: the same resize/tiling and normalisation as [`image_input`] after decoding.
pub fn image_input_rgb(model: &Model, img: &Rgb8Image, name: &str) -> Result<ImageInput> {
    if let Some(tiles) = model.tiles(img, name) {
        return tiles;
    }
    let t = preprocess_rgb(img, model.processor())?;
    check_pixel_shape(model, &t, name)?;
    Ok(t.into())
}

/// [`pixels`] with [`DecodeOptions`] (e.g. the EXIF orientation left unapplied).
pub fn pixels_with(model: &Model, bytes: &[u8], name: &str, opts: DecodeOptions) -> Result<Tensor> {
    if model.tiled() {
        return Err(Error::Request(format!(
            "{name}: a SmolVLM image is tiles with a grid; preprocess it with processor::image_input"
        )));
    }
    let t = preprocess_image_with(bytes, name, model.processor(), opts)?;
    check_pixel_shape(model, &t, name)?;
    Ok(t)
}

fn check_pixel_shape(model: &Model, t: &Tensor, name: &str) -> Result<()> {
    let want = model.pixel_shape();
    if t.shape != want {
        return Err(Error::Request(format!(
            "{name}: the processor config produces images of {:?} but the vision tower expects {want:?}; check preprocessor_config.json's size",
            t.shape
        )));
    }
    Ok(())
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
