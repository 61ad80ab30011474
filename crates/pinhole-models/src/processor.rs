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

/// A preprocessed image: pixels `[3, H, W]` (PaliGemma, BLIP-2) or the tiles
/// `[tiles, 3, T, T]` with their split grid (SmolVLM: `rows × cols` tiles then the global image,
/// `0 × 0` for one unsplit tile), which the prompt's image tokens depend on.
#[derive(Clone, Debug)]
pub struct ImageInput {
    pub pixels: Tensor,
    pub grid: Option<(usize, usize)>,
}

impl ImageInput {
    /// Tiles the vision tower runs on.
    pub fn tiles(&self) -> usize {
        if self.grid.is_some() && self.pixels.shape.len() == 4 {
            self.pixels.shape[0]
        } else {
            1
        }
    }

    /// The pixels of tile `k` as `[3, T, T]`.
    pub fn tile(&self, k: usize) -> Result<Tensor> {
        if self.grid.is_none() || self.pixels.shape.len() != 4 {
            return Ok(self.pixels.clone());
        }
        let per: usize = self.pixels.shape[1..].iter().product();
        let data = self.pixels.as_f32()?;
        let part = data
            .get(k * per..(k + 1) * per)
            .ok_or_else(|| Error::Request(format!("tile {k} of {:?}", self.pixels.shape)))?;
        Ok(Tensor::f32(&self.pixels.shape[1..], part.to_vec())?)
    }
}

impl From<Tensor> for ImageInput {
    fn from(pixels: Tensor) -> Self {
        ImageInput { pixels, grid: None }
    }
}

impl From<&Tensor> for ImageInput {
    fn from(pixels: &Tensor) -> Self {
        ImageInput {
            pixels: pixels.clone(),
            grid: None,
        }
    }
}

impl From<&ImageInput> for ImageInput {
    fn from(i: &ImageInput) -> Self {
        i.clone()
    }
}

/// Token ids of the prompt with the image placeholders for `image`. SmolVLM's `prompt` is
/// the (chat-templated) text with one `<image>`, expanded into the tile tokens of
/// `image.grid`.
pub fn prompt_ids_for(
    model: &Model,
    tok: &tokenizers::Tokenizer,
    prompt: &str,
    image: &ImageInput,
) -> Result<Vec<u32>> {
    let Model::SmolVlm(m) = model else {
        return prompt_ids(model, tok, prompt);
    };
    let (rows, cols) = image.grid.ok_or_else(|| {
        Error::Request("a SmolVLM image needs its tile grid; preprocess it with processor::image_input".into())
    })?;
    let ids =
        crate::smolvlm_processor::prompt_ids(tok, prompt, rows, cols, m.cfg.image_seq_len(), m.cfg.image_token_id)?;
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
    let ids = match model {
        Model::SmolVlm(_) => {
            return Err(Error::Request(
                "SmolVLM prompt ids depend on the image's tiles; use processor::prompt_ids_for".into(),
            ))
        }
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
    check_vocab(model, &ids)?;
    Ok(ids)
}

/// Positions of the image rows in `ids`, in order (where image features go).
pub fn image_rows(model: &Model, ids: &[u32]) -> Vec<u32> {
    let image_token = match model {
        Model::PaliGemma(m) => m.cfg.image_token_index,
        Model::SmolVlm(m) => m.cfg.image_token_id,
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

/// The image as the model's processor makes it (SmolVLM: the tiles `[tiles, 3, T, T]` and
/// their grid; the other families: [`pixels`]).
pub fn image_input(model: &Model, bytes: &[u8], name: &str) -> Result<ImageInput> {
    image_input_with(model, bytes, name, DecodeOptions::default())
}

/// [`image_input`] with [`DecodeOptions`].
pub fn image_input_with(model: &Model, bytes: &[u8], name: &str, opts: DecodeOptions) -> Result<ImageInput> {
    let Model::SmolVlm(_) = model else {
        return Ok(pixels_with(model, bytes, name, opts)?.into());
    };
    let img = pinhole_core::hf::image::decode_image_with(bytes, name, opts)?;
    image_input_rgb(model, &img, name)
}

/// An image already decoded to RGB (the browser's canvas pixels) as the model's processor
/// makes it: the same resize/tiling and normalisation as [`image_input`] after decoding.
pub fn image_input_rgb(model: &Model, img: &Rgb8Image, name: &str) -> Result<ImageInput> {
    let Model::SmolVlm(m) = model else {
        let t = preprocess_rgb(img, model.processor())?;
        check_pixel_shape(model, &t, name)?;
        return Ok(t.into());
    };
    let t = pinhole_core::hf::smolvlm_image::preprocess_tiles(img, &m.image)?;
    if t.tiles() > m.max_tiles() {
        return Err(Error::Request(format!(
            "{name}: {} tiles, more than the {} this processor config allows",
            t.tiles(),
            m.max_tiles()
        )));
    }
    Ok(ImageInput {
        pixels: t.pixels,
        grid: Some((t.rows, t.cols)),
    })
}

/// [`pixels`] with [`DecodeOptions`] (e.g. the EXIF orientation left unapplied).
pub fn pixels_with(model: &Model, bytes: &[u8], name: &str, opts: DecodeOptions) -> Result<Tensor> {
    if let Model::SmolVlm(_) = model {
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
