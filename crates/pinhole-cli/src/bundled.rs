//! The bundled model, compiled into the binary: the 4-bit copy of `models/pinhole-shapes`
//! (0.85 MB of weights), so `pinhole caption` works from a binary installed with `cargo install`
//! or copied to another machine with nothing beside it.
//!
//! `crates/pinhole-cli/model` is a symbolic link to `models/pinhole-shapes-q4` (the model lives
//! in one place in the repository); `cargo package` follows it and puts the files into the crate.

use std::sync::Arc;

use pinhole_gpu::Gpu;
use pinhole_models::loader::{LoadOptions, LoadedModel, ModelFiles};
use pinhole_models::stream_loader::{StreamingLoader, SINGLE_FILE};

/// How the bundled model is named in messages.
pub const NAME: &str = "the bundled model (pinhole-shapes, 4-bit)";

const CONFIG: &[u8] = include_bytes!("../model/config.json");
const PREPROCESSOR: &[u8] = include_bytes!("../model/preprocessor_config.json");
const GENERATION: &[u8] = include_bytes!("../model/generation_config.json");
const TOKENIZER: &[u8] = include_bytes!("../model/tokenizer.json");
const WEIGHTS: &[u8] = include_bytes!("../model/model.safetensors");

/// Loads the embedded model onto `gpu` (the same streaming loader the browser uses, fed from
/// memory).
pub fn load(gpu: &Arc<Gpu>, opts: &LoadOptions) -> Result<LoadedModel, String> {
    let files = ModelFiles {
        config: (CONFIG, "config.json"),
        processor: (PREPROCESSOR, "preprocessor_config.json"),
        generation: Some((GENERATION, "generation_config.json".to_string())),
        tokenizer: (TOKENIZER, "tokenizer.json"),
    };
    let err = |e: pinhole_models::Error| format!("{NAME}: {e}");
    let mut l = StreamingLoader::new(gpu.clone(), &files, opts, NAME).map_err(err)?;
    l.begin_file(SINGLE_FILE, Some(WEIGHTS.len() as u64)).map_err(err)?;
    l.push(WEIGHTS).map_err(err)?;
    l.end_file().map_err(err)?;
    l.finish().map_err(err)
}
