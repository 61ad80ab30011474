//! [`Model`]: the architectures pinhole runs, picked from `config.json`'s `model_type`. The
//! loader, the processor, the generation loop and the CLI go through this enum, so both
//! families share one loading path and one generation loop (KV cache, sampling).

use pinhole_core::hf::ImageProcessorConfig;
use pinhole_core::{Graph, Result};

use crate::blip2::{Blip2Phi, RowSlice};
use crate::layers::{weights_of, ExpectedWeight, StepOutputs, TokenChoice};
use crate::paligemma::PaliGemma;
use crate::smolvlm::SmolVlm;

pub enum Model {
    /// PaliGemma / PaliGemma 2 (`model_type: "paligemma"`).
    PaliGemma(PaliGemma),
    /// BLIP-2 with a Phi language model, TinyGPT-V class (`model_type: "blip-2"`).
    Blip2Phi(Blip2Phi),
    /// SmolVLM / Idefics3 (`model_type: "smolvlm"` / `"idefics3"`): the image is several
    /// tiles, each encoded by its own graph ([`SmolVlm::tile_graph`]).
    SmolVlm(SmolVlm),
}

impl Model {
    /// A short name of the architecture (for `--json` and messages).
    pub fn family(&self) -> &'static str {
        match self {
            Model::PaliGemma(_) => "paligemma",
            Model::Blip2Phi(_) => "blip-2+phi",
            Model::SmolVlm(_) => "smolvlm",
        }
    }

    /// Every weight the model's graphs read (image encode, prefill, decode), with its shape:
    /// read off the graphs themselves ([`weights_of`]), so the loaders check exactly what the
    /// graphs will ask for.
    pub fn expected_weights(&self) -> Result<Vec<ExpectedWeight>> {
        // The weights do not depend on the prompt: any prompt with the image rows will do, and
        // the smallest keeps the probe graphs small (SmolVLM: one tile's rows).
        let n = match self {
            Model::SmolVlm(m) => m.cfg.image_seq_len(),
            _ => self.num_image_tokens(),
        };
        let ids = vec![0; n + 1];
        let rows: Vec<u32> = (0..n as u32).collect();
        let max_len = n + 2;
        let image = self.image_graph(0, false)?;
        let (prefill, _) = self.prefill_graph(&ids, &rows, max_len, false, &TokenChoice::Greedy)?;
        let (decode, _) = self.decode_graph(0, n + 1, n + 1, max_len, false, &TokenChoice::Greedy)?;
        weights_of([&image, &prefill, &decode])
    }

    /// Checkpoint tensor name → canonical name (`None`: not used).
    pub fn canonical_name(&self, name: &str) -> Option<String> {
        match self {
            Model::PaliGemma(_) => PaliGemma::canonical_name(name),
            Model::Blip2Phi(_) => Blip2Phi::canonical_name(name),
            Model::SmolVlm(_) => SmolVlm::canonical_name(name),
        }
    }

    /// A checkpoint name that would provide the canonical weight `canonical` (error messages).
    pub fn example_source(&self, canonical: &str) -> String {
        match self {
            Model::PaliGemma(_) => PaliGemma::example_source(canonical),
            Model::Blip2Phi(_) => Blip2Phi::example_source(canonical),
            Model::SmolVlm(_) => SmolVlm::example_source(canonical),
        }
    }

    /// For weights cut out of a fused checkpoint tensor: where their rows come from.
    pub fn row_slice(&self, canonical: &str) -> Option<RowSlice> {
        match self {
            Model::PaliGemma(_) | Model::SmolVlm(_) => None,
            Model::Blip2Phi(m) => m.row_slice(canonical),
        }
    }

    /// Weights that load as zeros when the checkpoint lacks them (see
    /// [`Blip2Phi::zero_if_missing`]).
    pub fn zero_if_missing(&self, canonical: &str) -> bool {
        match self {
            Model::PaliGemma(_) | Model::SmolVlm(_) => false,
            Model::Blip2Phi(_) => Blip2Phi::zero_if_missing(canonical),
        }
    }

    /// Rows of image features written into the prompt (SmolVLM: the most an image can give;
    /// each image gives `tiles · image_seq_len`).
    pub fn num_image_tokens(&self) -> usize {
        match self {
            Model::PaliGemma(m) => m.num_image_tokens(),
            Model::Blip2Phi(m) => m.num_image_tokens(),
            Model::SmolVlm(m) => m.max_image_tokens(),
        }
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            Model::PaliGemma(m) => m.cfg.text.vocab_size,
            Model::Blip2Phi(m) => m.cfg.text.vocab_size,
            Model::SmolVlm(m) => m.cfg.text.vocab_size,
        }
    }

    pub fn max_positions(&self) -> usize {
        match self {
            Model::PaliGemma(m) => m.cfg.text.max_position_embeddings,
            Model::Blip2Phi(m) => m.cfg.text.max_position_embeddings,
            Model::SmolVlm(m) => m.cfg.text.max_position_embeddings,
        }
    }

    /// `[channels, size, size]` of the pixels the vision tower takes (SmolVLM: of one tile).
    pub fn pixel_shape(&self) -> [usize; 3] {
        match self {
            Model::PaliGemma(m) => {
                let v = &m.cfg.vision;
                [v.num_channels, v.image_size, v.image_size]
            }
            Model::Blip2Phi(m) => {
                let v = &m.cfg.vision;
                [v.num_channels, v.image_size, v.image_size]
            }
            Model::SmolVlm(m) => {
                let v = &m.cfg.vision;
                [v.num_channels, v.image_size, v.image_size]
            }
        }
    }

    pub fn processor(&self) -> &ImageProcessorConfig {
        match self {
            Model::PaliGemma(m) => &m.processor,
            Model::Blip2Phi(m) => &m.processor,
            // Rescale / normalise only; the resize and tiling are `m.image`'s.
            Model::SmolVlm(m) => &m.image.norm,
        }
    }

    /// Generation stops on these ids: generation_config.json's, else config.json's.
    pub fn eos_ids(&self) -> Vec<u32> {
        match self {
            Model::PaliGemma(m) => {
                let g = &m.generation.eos_token_ids;
                if !g.is_empty() {
                    return g.clone();
                }
                if !m.cfg.eos_token_ids.is_empty() {
                    return m.cfg.eos_token_ids.clone();
                }
                m.cfg.text.eos_token_ids.clone()
            }
            Model::Blip2Phi(m) => {
                let g = &m.generation.eos_token_ids;
                if !g.is_empty() {
                    return g.clone();
                }
                if !m.cfg.eos_token_ids.is_empty() {
                    return m.cfg.eos_token_ids.clone();
                }
                m.cfg.text.eos_token_ids.clone()
            }
            Model::SmolVlm(m) => {
                let g = &m.generation.eos_token_ids;
                if !g.is_empty() {
                    return g.clone();
                }
                m.cfg.text.eos_token_ids.clone()
            }
        }
    }

    /// The image-encode graph of tile `tile` (writes the state "image_features"; PaliGemma and
    /// BLIP-2 have one tile, 0); with `debug` its outputs are the intermediate results, in
    /// [`Model::debug_output_names`] order.
    pub fn image_graph(&self, tile: usize, debug: bool) -> Result<Graph> {
        match self {
            Model::PaliGemma(m) => m.image_graph(debug),
            Model::Blip2Phi(m) => m.image_graph(debug),
            Model::SmolVlm(m) => m.tile_graph(tile, debug),
        }
    }

    /// Names of the image graph's debug outputs (as in the fixtures' expected.safetensors).
    pub fn debug_output_names(&self) -> &'static [&'static str] {
        match self {
            Model::PaliGemma(_) | Model::SmolVlm(_) => &["vision_out", "projector_out"],
            Model::Blip2Phi(_) => &["vision_out", "qformer_out", "projector_out"],
        }
    }

    /// Prefill over the prompt ids with the image rows filled from the encoded image.
    pub fn prefill_graph(
        &self,
        ids: &[u32],
        image_rows: &[u32],
        max_len: usize,
        all_logits: bool,
        choice: &TokenChoice,
    ) -> Result<(Graph, StepOutputs)> {
        match self {
            Model::PaliGemma(m) => m.prefill_graph_from_state(ids, image_rows, max_len, all_logits, choice),
            Model::Blip2Phi(m) => m.prefill_graph_from_state(ids, image_rows, max_len, all_logits, choice),
            Model::SmolVlm(m) => m.prefill_graph_from_state(ids, image_rows, max_len, all_logits, choice),
        }
    }

    /// One decode step; `prefix_len` is the prompt length (PaliGemma's bidirectional block).
    pub fn decode_graph(
        &self,
        token: u32,
        row: usize,
        prefix_len: usize,
        max_len: usize,
        logits: bool,
        choice: &TokenChoice,
    ) -> Result<(Graph, StepOutputs)> {
        match self {
            Model::PaliGemma(m) => m.decode_graph(token, row, prefix_len, max_len, logits, choice),
            Model::Blip2Phi(m) => m.decode_graph(token, row, max_len, logits, choice),
            Model::SmolVlm(m) => m.decode_graph(token, row, max_len, logits, choice),
        }
    }
}
