//! The text side of transformers' `SmolVLMProcessor` / `Idefics3Processor`: the one `<image>`
//! of a (chat-templated) prompt becomes the image's tile tokens, then the text is tokenised as
//! `processor(text=prompt, images=[image])` does (the tokenizer's own special tokens added, so
//! an Idefics3 tokenizer that prepends `<|begin_of_text|>` gives two of them after a template
//! that writes one: that is what transformers feeds the model for the model-card usage).
//!
//! The tile tokens (`get_image_prompt_string`): per tile row-major
//! `<fake_token_around_image><row_R_col_C>` + `image_seq_len` × `<image>`, a newline after each
//! row, an empty line, then `<fake_token_around_image><global-img>` + `image_seq_len` ×
//! `<image>` + `<fake_token_around_image>`; an unsplit image is the global part alone.

use pinhole_core::hf::smolvlm_image::image_prompt_string;

use crate::error::{Error, Result};

/// The placeholder the chat template writes where the image goes.
pub const IMAGE_TOKEN: &str = "<image>";

fn tok_err(message: String) -> Error {
    Error::Tokenizer {
        file: "tokenizer.json".into(),
        message,
    }
}

/// `prompt` with its single `<image>` replaced by the tile tokens of a `rows` × `cols` split
/// (0 × 0: one unsplit image). The prompt must hold exactly one `<image>`, as the processor
/// requires for one image.
pub fn expand_image(prompt: &str, rows: usize, cols: usize, image_seq_len: usize) -> Result<String> {
    let n = prompt.matches(IMAGE_TOKEN).count();
    if n != 1 {
        return Err(Error::Request(format!(
            "the prompt holds {n} `{IMAGE_TOKEN}` placeholders; a SmolVLM prompt for one image needs exactly one \
             (the chat template writes it; a raw prompt must contain it where the image goes)"
        )));
    }
    Ok(prompt.replacen(IMAGE_TOKEN, &image_prompt_string(rows, cols, image_seq_len), 1))
}

/// Token ids of `prompt` (one `<image>`) for an image split into `rows` × `cols` tiles.
/// Checks that the tokenizer has the processor's special tokens (a folder with another
/// tokenizer would otherwise give ids that silently mean something else).
pub fn prompt_ids(
    tok: &tokenizers::Tokenizer,
    prompt: &str,
    rows: usize,
    cols: usize,
    image_seq_len: usize,
    image_token_id: u32,
) -> Result<Vec<u32>> {
    let mut needed = vec!["<fake_token_around_image>", "<global-img>"];
    let row_col: Vec<String> = (1..=rows)
        .flat_map(|r| (1..=cols).map(move |c| format!("<row_{r}_col_{c}>")))
        .collect();
    needed.extend(row_col.iter().map(String::as_str));
    for t in needed {
        if tok.token_to_id(t).is_none() {
            return Err(tok_err(format!(
                "the tokenizer has no `{t}` token, which SmolVLM's processor writes; this is not a SmolVLM tokenizer"
            )));
        }
    }
    match tok.token_to_id(IMAGE_TOKEN) {
        Some(id) if id == image_token_id => {}
        other => {
            return Err(tok_err(format!(
                "`{IMAGE_TOKEN}` is token {other:?} in tokenizer.json but config.json's image_token_id is \
                 {image_token_id}; the folder's files do not belong together"
            )))
        }
    }
    let text = expand_image(prompt, rows, cols, image_seq_len)?;
    let enc = crate::tokenizer::contained("tokenizer.json", "encoding the prompt", || {
        tok.encode(text.as_str(), true).map_err(|e| tok_err(e.to_string()))
    })?;
    let ids = enc.get_ids().to_vec();
    let images = ids.iter().filter(|&&i| i == image_token_id).count();
    let tiles = if rows == 0 && cols == 0 { 1 } else { rows * cols + 1 };
    if images != tiles * image_seq_len {
        return Err(tok_err(format!(
            "the prompt tokenises to {images} image tokens, expected {} ({tiles} tiles x {image_seq_len}); \
             remove `{IMAGE_TOKEN}` from the question text",
            tiles * image_seq_len
        )));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_placeholder() {
        assert!(expand_image("a<image>b", 0, 0, 1)
            .unwrap()
            .contains("<global-img><image><fake"));
        let e = expand_image("no image", 0, 0, 1).unwrap_err().to_string();
        assert!(e.contains("0 `<image>`"), "{e}");
        assert!(expand_image("<image><image>", 0, 0, 1).is_err());
    }
}
