//! SmolVLM / Idefics3: a SigLIP vision tower on each tile → pixel-shuffle connector → Llama
//! (SmolLM2) decoder.
//!
//! Mirrors transformers' `SmolVLMForConditionalGeneration` (modeling_smolvlm.py; Idefics3's
//! modeling_idefics3.py is the same computation) and `LlamaModel`. The facts that decide
//! token-for-token equality, each checked against tests/fixtures/{smolvlm,smolvlm-nosplit,
//! idefics3}:
//! * every tile (the split tiles row-major, then the global image) goes through the vision
//!   tower on its own; the tower is PaliGemma's SigLIP ([`siglip_tower`]) because for
//!   a full tile SmolVLM's bucketized position ids are the row-major 0..N²-1 — except for the
//!   patch-grid sides in [`POSITION_BUCKET_EXCEPTIONS`] (float32 rounding in `torch.bucketize`),
//!   which pinhole refuses;
//! * the connector's `pixel_shuffle` is a row permutation then a reshape: output row
//!   `(i', j')` of a `side/s × side/s` grid is the concatenation, `u`-major then `t`, of the
//!   input rows `(i'·s + u)·side + j'·s + t` ([`pixel_shuffle_sources`]); it runs as a
//!   `scatter_rows` of the tower's output onto itself plus a `reshape`, then the bias-free
//!   `modality_projection`;
//! * the connector rows replace the `<image>` embeddings in order, unscaled; text embeddings
//!   are not scaled either (Llama);
//! * positions are 0-based, attention causal everywhere (no prefix block), scale
//!   `head_dim^-0.5`; RMSNorm is `x · rsqrt(mean(x²) + eps) · w`; the MLP is
//!   `down(silu(gate) · up)`; RoPE with `rope_theta` over the whole head;
//! * the LM head is `lm_head.weight`, or the embedding table when the top-level
//!   `tie_word_embeddings` is true.
//!
//! Checkpoint names (both layouts transformers loads): `model.vision_model.*` /
//! `vision_model.*` → `vision.*`, `model.connector.*` / `connector.*` → `connector.*`,
//! `model.text_model.*` / `text_model.*` → `text.*`, `lm_head.*`.

use pinhole_core::graph::{Activation, Graph, TensorId};
use pinhole_core::hf::image::Rgb8Image;
use pinhole_core::hf::smolvlm_image::{SmolVlmImageConfig, MAX_TILES_PER_SIDE};
use pinhole_core::hf::{GenerationConfig, ImageProcessorConfig, SmolVlmConfig};
use pinhole_core::{Error, Result, Tensor};

use crate::arch::{eos_ids, rename_prefix, Architecture, Basics, Family, ImageInput, ProcessorLayout, WeightPrecision};
use crate::layers::{siglip_tower, CachedAttention, Linear, RmsDecoder, Scope, StepRows};

/// Patch-grid sides (1..=128) whose bucketized positions are not row-major in torch (the
/// list `tools/make_smolvlm_fixtures.py` checks against transformers). Published models use
/// 32 (SmolVLM-256M/500M), 26 (Idefics3-8B) and 27 (SmolVLM2), which are fine.
pub const POSITION_BUCKET_EXCEPTIONS: &[usize] = &[
    19, 25, 29, 31, 38, 40, 41, 43, 47, 49, 50, 54, 55, 58, 59, 61, 62, 67, 68, 71, 72, 73, 74, 76, 77, 80, 82, 83, 84,
    86, 87, 93, 94, 97, 98, 99, 100, 101, 103, 107, 108, 109, 110, 111, 113, 115, 116, 118, 121, 122, 123, 124, 127,
];

pub struct SmolVlm {
    pub cfg: SmolVlmConfig,
    pub image: SmolVlmImageConfig,
    pub basics: Basics,
}

/// For output row `p` of the pixel shuffle (before the reshape to `s²`-wide rows), the input
/// row it takes: `p = (i'·(side/s) + j')·s² + u·s + t` ← `(i'·s + u)·side + j'·s + t`.
/// Transcribes `SmolVLMConnector.pixel_shuffle`'s view / permute / reshape sequence.
pub fn pixel_shuffle_sources(side: usize, s: usize) -> Vec<usize> {
    let per = side / s;
    (0..side * side)
        .map(|p| {
            let (r, q) = (p / (s * s), p % (s * s));
            let (i, j) = (r / per, r % per);
            let (u, t) = (q / s, q % s);
            (i * s + u) * side + j * s + t
        })
        .collect()
}

impl Family for SmolVlm {
    type Config = SmolVlmConfig;
    type Processor = SmolVlmImageConfig;

    /// Checks what pinhole's graphs assume (see the module docs).
    fn new(
        cfg: SmolVlmConfig,
        image: SmolVlmImageConfig,
        generation: GenerationConfig,
        precision: WeightPrecision,
    ) -> Result<Self> {
        let side = cfg.patch_side();
        if POSITION_BUCKET_EXCEPTIONS.contains(&side) {
            return Err(Error::Unsupported(format!(
                "a {side}x{side} patch grid (vision image_size / patch_size): transformers' bucketized \
                 position ids are not row-major for this size, which pinhole does not implement"
            )));
        }
        if image.tile != cfg.vision.image_size {
            return Err(Error::Unsupported(format!(
                "processor max_image_size.longest_edge {} differs from vision_config.image_size {}; \
                 pinhole runs full tiles of the vision tower's size",
                image.tile, cfg.vision.image_size
            )));
        }
        if let Some(n) = image.image_seq_len {
            if n != cfg.image_seq_len() {
                return Err(Error::Invalid(format!(
                    "processor image_seq_len {n} differs from the model's {} ((image_size / patch_size)² / \
                     scale_factor²); the folder's configs do not belong together",
                    cfg.image_seq_len()
                )));
            }
        }
        let basics = Basics {
            family: "smolvlm",
            matrix_dtype: precision.matrix_dtype(cfg.dtype),
            vocab_size: cfg.text.vocab_size,
            max_positions: cfg.text.max_position_embeddings,
            hidden_size: cfg.text.hidden_size,
            image_token: Some(cfg.image_token_id),
            pixel_shape: [cfg.vision.num_channels, cfg.vision.image_size, cfg.vision.image_size],
            eos_ids: eos_ids(&generation, &[], &cfg.text.eos_token_ids),
        };
        Ok(SmolVlm { cfg, image, basics })
    }
}

/// SmolVLM's processor resizes by the longest edge into tiles: its own config.
impl ProcessorLayout for SmolVlmImageConfig {
    fn parse(bytes: &[u8], file: &str) -> Result<Self> {
        SmolVlmImageConfig::parse(bytes, file)
    }

    /// Full tiles of the vision tower's size, no splitting.
    fn fitting(image_size: usize) -> Result<Self> {
        let json = format!(
            r#"{{"size": {{"longest_edge": {image_size}}}, "max_image_size": {{"longest_edge": {image_size}}}, "do_image_splitting": false}}"#
        );
        SmolVlmImageConfig::parse(json.as_bytes(), "processor_config.json")
    }
}

impl SmolVlm {
    /// Rows of the image-feature state: every tile's connector rows.
    pub fn max_image_tokens(&self) -> usize {
        self.max_tiles() * self.cfg.image_seq_len()
    }

    /// Checkpoint tensor name → canonical name (`None`: not used).
    pub fn canonical_name(name: &str) -> Option<String> {
        const MAP: &[(&str, &str)] = &[
            ("model.vision_model.", "vision."),
            ("vision_model.", "vision."),
            ("model.connector.", "connector."),
            ("connector.", "connector."),
            ("model.text_model.", "text."),
            ("text_model.", "text."),
            ("lm_head.", "lm_head."),
        ];
        rename_prefix(name, MAP)
    }

    /// A checkpoint name that would provide the canonical weight `name` (error messages).
    pub fn example_source(name: &str) -> String {
        const MAP: &[(&str, &str)] = &[
            ("vision.", "model.vision_model."),
            ("connector.", "model.connector."),
            ("text.", "model.text_model."),
        ];
        rename_prefix(name, MAP).unwrap_or_else(|| name.to_string())
    }

    /// The connector: pixel shuffle of `x [side², E]` → `[side²/s², E·s²]` → `modality_projection`.
    pub fn connector(&self, g: &mut Graph, x: TensorId) -> Result<TensorId> {
        let c = &self.cfg;
        let (side, s, e) = (c.patch_side(), c.scale_factor, c.vision.hidden_size);
        let src = pixel_shuffle_sources(side, s);
        // scatter_rows writes src row i to row index[i]: the inverse of `src`.
        let mut index = vec![0u32; src.len()];
        for (p, &from) in src.iter().enumerate() {
            index[from] = p as u32;
        }
        let index = g.constant(Tensor::u32(&[index.len()], index)?);
        let permuted = g.scatter_rows(x, x, index)?;
        let rows = c.image_seq_len();
        let shuffled = g.reshape(permuted, &[rows, e * s * s])?;
        let proj = Scope::root("connector").pp("modality_projection").pp("proj");
        Linear::no_bias(c.text.hidden_size, c.connector_width()).forward(g, &proj, shuffled)
    }

    /// The Llama (SmolLM2) decoder as the shared Llama-family decoder: plain RMSNorm, SwiGLU,
    /// 0-based positions, causal attention everywhere, no sliding window.
    fn decoder(&self) -> RmsDecoder {
        let t = &self.cfg.text;
        RmsDecoder {
            hidden: t.hidden_size,
            intermediate: t.intermediate_size,
            layers: t.num_hidden_layers,
            attn: CachedAttention {
                heads: t.num_attention_heads,
                kv_heads: t.num_key_value_heads,
                head_dim: t.head_dim,
                scale: t.attn_scale() as f32,
                softcap: 0.0,
            },
            rms_eps: t.rms_norm_eps,
            rms_add_one: false,
            act: Activation::Silu,
            sandwich_norms: false,
            rope_theta: t.rope_theta,
            position_offset: 0,
            windows: Vec::new(),
        }
    }
}

impl Architecture for SmolVlm {
    fn basics(&self) -> &Basics {
        &self.basics
    }

    fn default_prompt(&self) -> &'static str {
        "Describe this image."
    }

    fn is_chat(&self) -> bool {
        true
    }

    /// The (chat-templated) text with one `<image>`, expanded into the tile tokens of the
    /// image's grid ([`crate::smolvlm_processor`]).
    fn prompt_ids(
        &self,
        tok: &tokenizers::Tokenizer,
        prompt: &str,
        image: Option<&ImageInput>,
    ) -> crate::error::Result<Vec<u32>> {
        use crate::error::Error;
        let image = image.ok_or_else(|| {
            Error::Request("SmolVLM prompt ids depend on the image's tiles; use processor::prompt_ids_for".into())
        })?;
        let (rows, cols) = image.grid.ok_or_else(|| {
            Error::Request("a SmolVLM image needs its tile grid; preprocess it with processor::image_input".into())
        })?;
        crate::smolvlm_processor::prompt_ids(
            tok,
            prompt,
            rows,
            cols,
            self.cfg.image_seq_len(),
            self.cfg.image_token_id,
        )
    }

    fn num_image_tokens(&self) -> usize {
        self.max_image_tokens()
    }

    fn image_tokens_for(&self, image: &ImageInput) -> usize {
        image.tiles() * self.cfg.image_seq_len()
    }

    fn min_image_tokens(&self) -> usize {
        self.cfg.image_seq_len()
    }

    /// Rescale / normalise only; the resize and tiling are `self.image`'s.
    fn processor(&self) -> &ImageProcessorConfig {
        &self.image.norm
    }

    fn tiled(&self) -> bool {
        true
    }

    fn tiles(&self, img: &Rgb8Image, name: &str) -> Option<crate::error::Result<ImageInput>> {
        let run = || -> crate::error::Result<ImageInput> {
            let t = pinhole_core::hf::smolvlm_image::preprocess_tiles(img, &self.image)?;
            if t.tiles() > self.max_tiles() {
                return Err(crate::error::Error::Request(format!(
                    "{name}: {} tiles, more than the {} this processor config allows",
                    t.tiles(),
                    self.max_tiles()
                )));
            }
            Ok(ImageInput {
                pixels: t.pixels,
                grid: Some((t.rows, t.cols)),
            })
        };
        Some(run())
    }

    /// Most tiles one image can give with this processor config (split tiles + global).
    fn max_tiles(&self) -> usize {
        if !self.image.do_image_splitting {
            return 1;
        }
        let per_side = if self.image.do_resize {
            self.image
                .longest_edge
                .div_ceil(self.image.tile)
                .min(MAX_TILES_PER_SIDE)
        } else {
            MAX_TILES_PER_SIDE
        };
        if per_side <= 1 {
            1
        } else {
            per_side * per_side + 1
        }
    }

    /// One tile `[3, T, T]`: vision tower → connector, at rows `tile · image_seq_len`.
    fn encode_image(&self, g: &mut Graph, pixels: TensorId) -> Result<(TensorId, Vec<TensorId>)> {
        let vis = siglip_tower(g, &Scope::root("vision"), &self.cfg.vision, pixels)?;
        let conn = self.connector(g, vis)?;
        Ok((conn, vec![vis, conn]))
    }

    fn debug_output_names(&self) -> &'static [&'static str] {
        &["vision_out", "projector_out"]
    }

    /// Whole tiles only: a multiple of the tile's rows, up to the most an image gives.
    fn check_image_rows(&self, n: usize) -> Result<()> {
        if n == 0 || n > self.max_image_tokens() || !n.is_multiple_of(self.cfg.image_seq_len()) {
            return Err(Error::Invalid(format!(
                "the prompt has {n} image tokens; an image gives a multiple of {} up to {}",
                self.cfg.image_seq_len(),
                self.max_image_tokens()
            )));
        }
        Ok(())
    }

    /// The Llama decoder; the prompt attends causally (`prefix_len` is unused).
    fn text_forward(&self, g: &mut Graph, x: TensorId, rows: &StepRows, _prefix_len: usize) -> Result<TensorId> {
        self.decoder().forward(g, &Scope::root("text"), x, rows, 0)
    }

    /// The tied embedding table or `lm_head`.
    fn lm_head(&self, g: &mut Graph, x: TensorId) -> Result<TensorId> {
        let t = &self.cfg.text;
        let s = if self.cfg.tie_word_embeddings {
            Scope::root("text").pp("embed_tokens")
        } else {
            Scope::root("lm_head")
        };
        Linear::no_bias(t.vocab_size, t.hidden_size).forward(g, &s, x)
    }

    fn canonical_name(&self, name: &str) -> Option<String> {
        SmolVlm::canonical_name(name)
    }

    fn example_source(&self, canonical: &str) -> String {
        SmolVlm::example_source(canonical)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixel_shuffle_is_a_permutation() {
        // 4x4 grid, s = 2: output row 0 is input rows 0, 1, 4, 5 (u-major, then t).
        let src = pixel_shuffle_sources(4, 2);
        assert_eq!(&src[..8], &[0, 1, 4, 5, 2, 3, 6, 7]);
        let mut sorted = pixel_shuffle_sources(32, 4);
        sorted.sort_unstable();
        assert_eq!(sorted, (0..1024).collect::<Vec<_>>());
    }

    #[test]
    fn names_of_both_layouts() {
        for (name, canonical) in [
            (
                "model.text_model.layers.0.mlp.up_proj.weight",
                Some("text.layers.0.mlp.up_proj.weight"),
            ),
            ("vision_model.post_layernorm.bias", Some("vision.post_layernorm.bias")),
            (
                "connector.modality_projection.proj.weight",
                Some("connector.modality_projection.proj.weight"),
            ),
            ("lm_head.weight", Some("lm_head.weight")),
            ("something.else", None),
        ] {
            assert_eq!(SmolVlm::canonical_name(name).as_deref(), canonical, "{name}");
        }
    }
}
