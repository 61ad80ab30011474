//! [`Architecture`]: everything the loaders, the processor, the generation loop, the CLI and the
//! browser need from a model family, and nothing else. A family is a model file that implements
//! it (config → graphs, prompt ids, image rows, checkpoint name mapping, defaults) plus one line
//! in [`crate::registry`], keyed by config.json's `model_type`; nothing else matches on the
//! family.
//!
//! Model files import this module, [`crate::layers`], `pinhole-core` and their config only.

use std::any::Any;

use pinhole_core::graph::{Graph, TensorId};
use pinhole_core::hf::image::Rgb8Image;
use pinhole_core::hf::{ConfigLayout, GenerationConfig, ImageProcessorConfig};
use pinhole_core::{DType, Tensor};

use crate::error::{Error, Result};
use crate::layers::{
    embedding, prompt_embeddings, token_embedding, Scope, StepOutputs, StepRows, TokenChoice, IMAGE_FEATURES,
};

/// Storage precision of matrix weights (linear layers, embedding table). Norms, biases,
/// position embeddings and the patch-embedding kernel always stay f32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightPrecision {
    F32,
    F16,
    /// f16 when the checkpoint is f16/bf16, f32 when it is f32.
    Auto,
}

impl WeightPrecision {
    /// The storage dtype of matrix weights for a checkpoint whose config.json says `saved_as`.
    pub fn matrix_dtype(self, saved_as: Option<DType>) -> DType {
        match self {
            WeightPrecision::F32 => DType::F32,
            WeightPrecision::F16 => DType::F16,
            WeightPrecision::Auto => match saved_as {
                Some(DType::F16) | Some(DType::BF16) => DType::F16,
                _ => DType::F32,
            },
        }
    }
}

/// The small files of a model folder, as bytes with the name to show in errors (a path, or a
/// URL in the browser).
pub struct ModelFiles<'a> {
    pub config: (&'a [u8], &'a str),
    /// `preprocessor_config.json` or `processor_config.json`.
    pub processor: (&'a [u8], &'a str),
    /// `generation_config.json`, when the folder has one.
    pub generation: Option<(&'a [u8], String)>,
    pub tokenizer: (&'a [u8], &'a str),
}

/// Where a canonical weight comes from when it is not a checkpoint tensor of its own: rows
/// `first .. first + rows` of the (fused) checkpoint tensor with canonical name `source`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowSlice {
    pub source: String,
    pub first: usize,
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

/// The family's own type behind a `dyn Architecture`, for code (tests, tools) that needs its
/// config ([`crate::model::Model::downcast_ref`]); every `'static` type has it.
pub trait AsAny {
    fn as_any(&self) -> &dyn Any;
}

impl<T: Any> AsAny for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// What every family has and states the same way (its [`Architecture::basics`]), so a family's
/// `impl Architecture` states only what differs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Basics {
    /// A short name of the architecture (for `--json` and messages).
    pub family: &'static str,
    /// Storage dtype of matrix weights on the GPU.
    pub matrix_dtype: DType,
    /// Rows of the text model's embedding table / logits.
    pub vocab_size: usize,
    /// The text model's `max_position_embeddings`.
    pub max_positions: usize,
    /// The text model's width (of the embeddings and the image rows).
    pub hidden_size: usize,
    /// The prompt token whose positions take the image rows ([`Architecture::image_token`]).
    pub image_token: Option<u32>,
    /// `[channels, size, size]` of the pixels the vision tower takes (of one tile).
    pub pixel_shape: [usize; 3],
    /// Generation stops on these ids ([`eos_ids`]).
    pub eos_ids: Vec<u32>,
}

/// A model family. Graph builders must be pure functions of the config and their arguments:
/// the weight list the loaders check is read off the graphs they build
/// ([`crate::model::Model::expected_weights`]).
pub trait Architecture: AsAny + Send + Sync {
    /// The facts every family states the same way, fixed when it is built; the methods below
    /// read them.
    fn basics(&self) -> &Basics;

    /// A short name of the architecture (for `--json` and messages).
    fn family(&self) -> &'static str {
        self.basics().family
    }

    /// Storage dtype of matrix weights on the GPU.
    fn matrix_dtype(&self) -> DType {
        self.basics().matrix_dtype
    }

    fn vocab_size(&self) -> usize {
        self.basics().vocab_size
    }

    fn max_positions(&self) -> usize {
        self.basics().max_positions
    }

    /// Generation stops on these ids.
    fn eos_ids(&self) -> Vec<u32> {
        self.basics().eos_ids.clone()
    }

    // --- the processor ---------------------------------------------------------------------

    /// The prompt `pinhole generate` uses when `--prompt` is not given.
    fn default_prompt(&self) -> &'static str;

    /// Whether prompts go through the folder's chat template (SmolVLM).
    fn is_chat(&self) -> bool {
        false
    }

    /// Token ids of `prompt` with the image placeholders; `image` is the preprocessed image
    /// when the placeholders depend on it (SmolVLM's tile grid). The caller checks the ids
    /// against the vocabulary.
    fn prompt_ids(&self, tok: &tokenizers::Tokenizer, prompt: &str, image: Option<&ImageInput>) -> Result<Vec<u32>>;

    /// The id whose positions in the prompt take the image rows (`None`: the first
    /// [`Architecture::num_image_tokens`] positions, BLIP-2 without an image token).
    fn image_token(&self) -> Option<u32> {
        self.basics().image_token
    }

    /// Rows of image features written into the prompt (SmolVLM: the most an image can give).
    fn num_image_tokens(&self) -> usize;

    /// Rows of image features the prompt of `image` must hold.
    fn image_tokens_for(&self, _image: &ImageInput) -> usize {
        self.num_image_tokens()
    }

    /// The fewest image rows a prefill graph takes: the probe prompt of
    /// [`crate::model::Model::expected_weights`], which reads the weights off the graphs and so
    /// wants them small (one row for a one-tile family, whose prefill takes any number of image
    /// rows up to [`Architecture::num_image_tokens`]; one tile's rows for SmolVLM).
    fn min_image_tokens(&self) -> usize {
        1
    }

    /// `[channels, size, size]` of the pixels the vision tower takes (SmolVLM: of one tile).
    fn pixel_shape(&self) -> [usize; 3] {
        self.basics().pixel_shape
    }

    /// Rescale / normalisation (and, for one-tile families, the resize) of the image.
    fn processor(&self) -> &ImageProcessorConfig;

    /// Whether the family cuts an image into tiles ([`Architecture::tiles`]; its prompt ids
    /// then depend on the image).
    fn tiled(&self) -> bool {
        false
    }

    /// `Some`: the family cuts a decoded image into tiles itself (SmolVLM); `None`: one resize
    /// to [`Architecture::pixel_shape`] with [`Architecture::processor`] (the processor does it).
    fn tiles(&self, _img: &Rgb8Image, _name: &str) -> Option<Result<ImageInput>> {
        None
    }

    // --- graphs ----------------------------------------------------------------------------

    /// Most tiles one image can give (1 for one-tile families): the image-encode graphs are
    /// those of tiles `0 .. max_tiles`.
    fn max_tiles(&self) -> usize {
        1
    }

    /// The image features of one image (or tile) `pixels` of [`Architecture::pixel_shape`]:
    /// `[rows, hidden]`, one tile's rows of the prompt; and the intermediate results named by
    /// [`Architecture::debug_output_names`], in that order.
    fn encode_image(&self, g: &mut Graph, pixels: TensorId) -> pinhole_core::Result<(TensorId, Vec<TensorId>)>;

    /// The image-encode graph of tile `tile`: input "pixels", its features written into the
    /// state [`crate::layers::IMAGE_FEATURES`] at the tile's rows (so several prompts can reuse
    /// one encoded image); with `debug` its outputs are the intermediate results named by
    /// [`Architecture::debug_output_names`], in that order.
    fn image_graph(&self, tile: usize, debug: bool) -> pinhole_core::Result<Graph> {
        if tile >= self.max_tiles() {
            return Err(pinhole_core::Error::Invalid(format!(
                "tile {tile} of an image; this processor config makes at most {} tiles",
                self.max_tiles()
            )));
        }
        let mut g = Graph::new();
        let px = g.input("pixels", &self.pixel_shape(), DType::F32);
        let (features, steps) = self.encode_image(&mut g, px)?;
        let rows = g.value(features)?.shape[0];
        let state = g.state(IMAGE_FEATURES, &[self.num_image_tokens(), self.basics().hidden_size]);
        g.write_rows(state, features, tile * rows)?;
        if debug {
            for s in steps {
                g.output(s);
            }
        }
        Ok(g)
    }

    /// Names of the image graph's debug outputs (as in the fixtures' expected.safetensors).
    fn debug_output_names(&self) -> &'static [&'static str];

    /// Token embeddings of `ids`: the rows the text model takes (the image rows replace some).
    /// Every family so far names its table `text.embed_tokens`.
    fn embed(&self, g: &mut Graph, ids: TensorId) -> pinhole_core::Result<TensorId> {
        let b = self.basics();
        embedding(
            g,
            &Scope::root("text").pp("embed_tokens"),
            ids,
            b.vocab_size,
            b.hidden_size,
        )
    }

    /// The text model over the embedded rows `x` at `rows` of the sequence: its final hidden
    /// states. `prefix_len` is the prompt length (for families whose prompt block attends
    /// bidirectionally).
    fn text_forward(
        &self,
        g: &mut Graph,
        x: TensorId,
        rows: &StepRows,
        prefix_len: usize,
    ) -> pinhole_core::Result<TensorId>;

    /// Hidden states → logits.
    fn lm_head(&self, g: &mut Graph, x: TensorId) -> pinhole_core::Result<TensorId>;

    /// Refuses a prompt whose image rows the family cannot fill (SmolVLM: whole tiles only).
    fn check_image_rows(&self, _rows: usize) -> pinhole_core::Result<()> {
        Ok(())
    }

    /// Prefill over the prompt `ids` whose image tokens are at `image_rows`: they take the first
    /// `image_rows.len()` rows of the state [`crate::layers::IMAGE_FEATURES`], written by the
    /// image-encode graph. Outputs the next token as `choice` picks it (greedy argmax or
    /// sampled on the GPU), and with `all_logits` the logits of every position (for checks
    /// against transformers).
    fn prefill_graph(
        &self,
        ids: &[u32],
        image_rows: &[u32],
        max_len: usize,
        all_logits: bool,
        choice: &TokenChoice,
    ) -> pinhole_core::Result<(Graph, StepOutputs)> {
        self.check_image_rows(image_rows.len())?;
        let mut g = Graph::new();
        let (n, h) = (self.num_image_tokens(), self.basics().hidden_size);
        let x = prompt_embeddings(&mut g, ids, image_rows, n, h, |g, ids| self.embed(g, ids))?;
        let rows = StepRows {
            row0: 0,
            len: ids.len(),
            max_len,
        };
        text_step(self, g, x, rows, ids.len(), all_logits, choice)
    }

    /// One decode step for `token` at sequence position `row` → the next token as `choice`
    /// picks it; with `logits` also the step's logits (before any repetition penalty or
    /// temperature). `prefix_len` is the prompt length.
    #[allow(clippy::too_many_arguments)]
    fn decode_graph(
        &self,
        token: u32,
        row: usize,
        prefix_len: usize,
        max_len: usize,
        logits: bool,
        choice: &TokenChoice,
    ) -> pinhole_core::Result<(Graph, StepOutputs)> {
        let mut g = Graph::new();
        let x = token_embedding(&mut g, token, |g, ids| self.embed(g, ids))?;
        let rows = StepRows {
            row0: row,
            len: 1,
            max_len,
        };
        text_step(self, g, x, rows, prefix_len, logits, choice)
    }

    // --- checkpoint names ------------------------------------------------------------------

    /// Checkpoint tensor name → canonical name (`None`: not used).
    fn canonical_name(&self, name: &str) -> Option<String>;

    /// A checkpoint name that would provide the canonical weight (error messages).
    fn example_source(&self, canonical: &str) -> String;

    /// For weights cut out of a fused checkpoint tensor: where their rows come from.
    fn row_slice(&self, _canonical: &str) -> Option<RowSlice> {
        None
    }

    /// Weights that load as zeros when the checkpoint has neither them nor their source.
    fn zero_if_missing(&self, _canonical: &str) -> bool {
        false
    }
}

/// What the registry needs of a family besides its [`Architecture`]: the layouts of its two
/// config files and its constructor.
pub trait Family: Architecture + Sized + 'static {
    /// config.json's layout.
    type Config: ConfigLayout;
    /// preprocessor_config.json's / processor_config.json's layout.
    type Processor: ProcessorLayout;

    /// The family from its parsed files, its matrix weights stored in `precision`
    /// ([`WeightPrecision::matrix_dtype`] of the config's dtype).
    fn new(
        cfg: Self::Config,
        processor: Self::Processor,
        generation: GenerationConfig,
        precision: WeightPrecision,
    ) -> pinhole_core::Result<Self>;
}

/// An image-processor config layout.
pub trait ProcessorLayout: Sized {
    /// Parses the processor file; `file` names it in errors.
    fn parse(bytes: &[u8], file: &str) -> pinhole_core::Result<Self>;

    /// A processor for a vision tower taking `image_size`² images, for a model described by
    /// its config.json alone ([`crate::registry::from_config`]: fuzzing, tools).
    fn fitting(image_size: usize) -> pinhole_core::Result<Self>;
}

impl ProcessorLayout for ImageProcessorConfig {
    fn parse(bytes: &[u8], file: &str) -> pinhole_core::Result<Self> {
        ImageProcessorConfig::parse(bytes, file)
    }

    fn fitting(image_size: usize) -> pinhole_core::Result<Self> {
        Ok(ImageProcessorConfig {
            size: (image_size, image_size),
            ..ImageProcessorConfig::default()
        })
    }
}

/// The text model over `x` and the step's outputs (the shared end of the prefill and decode
/// graphs).
#[allow(clippy::too_many_arguments)]
fn text_step<A: Architecture + ?Sized>(
    arch: &A,
    mut g: Graph,
    x: TensorId,
    rows: StepRows,
    prefix_len: usize,
    logits: bool,
    choice: &TokenChoice,
) -> pinhole_core::Result<(Graph, StepOutputs)> {
    let hidden = arch.text_forward(&mut g, x, &rows, prefix_len)?;
    let out = StepOutputs::from_hidden(&mut g, hidden, rows.len, logits, choice, |g, x| arch.lm_head(g, x))?;
    Ok((g, out))
}

/// `name` with the first matching prefix of `map` replaced (`(from, to)` pairs, tried in
/// order): the checkpoint ↔ canonical name mappings of the families.
pub fn rename_prefix(name: &str, map: &[(&str, &str)]) -> Option<String> {
    map.iter()
        .find_map(|(from, to)| name.strip_prefix(from).map(|rest| format!("{to}{rest}")))
}

/// Stop ids as transformers picks them: generation_config.json's, else config.json's, else the
/// text config's.
pub fn eos_ids(generation: &GenerationConfig, config: &[u32], text: &[u32]) -> Vec<u32> {
    [generation.eos_token_ids.as_slice(), config, text]
        .into_iter()
        .find(|ids| !ids.is_empty())
        .unwrap_or_default()
        .to_vec()
}

/// A tokenizer error naming tokenizer.json.
pub fn tok_err(message: String) -> Error {
    Error::Tokenizer {
        file: "tokenizer.json".into(),
        message,
    }
}

/// `tok.encode` with a panic inside the tokenizers crate contained ([`crate::tokenizer`]).
pub fn encode(tok: &tokenizers::Tokenizer, text: &str, special: bool) -> Result<tokenizers::Encoding> {
    crate::tokenizer::contained("tokenizer.json", "encoding the prompt", || {
        tok.encode(text, special).map_err(|e| tok_err(e.to_string()))
    })
}
