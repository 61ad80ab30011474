//! The model families pinhole runs, by config.json's `model_type` (as transformers.js'
//! `registry.js`). Adding a family: one model file implementing [`Architecture`] with a
//! [`Build`] function, and one line here (see ARCHITECTURE.md, "Adding a model family").

use pinhole_core::hf::{GenerationConfig, ModelConfig};

use crate::arch::{Architecture, ModelFiles, WeightPrecision};
use crate::error::{Error, Result};

/// Builds a family's architecture from the parsed config.json (the family takes its own
/// variant), the folder's other files, generation_config.json and the requested precision.
pub type Build = fn(ModelConfig, &ModelFiles<'_>, GenerationConfig, WeightPrecision) -> Result<Box<dyn Architecture>>;

/// `model_type` → the family that runs it.
pub const FAMILIES: &[(&str, Build)] = &[
    ("paligemma", crate::paligemma::build),
    ("blip-2", crate::blip2::build),
    ("smolvlm", crate::smolvlm::build),
    ("idefics3", crate::smolvlm::build),
];

/// config.json's `model_type` string (the config parsed already, so it is there).
fn model_type(bytes: &[u8]) -> Option<String> {
    match serde_json::from_slice::<serde_json::Value>(bytes)
        .ok()?
        .get("model_type")?
    {
        serde_json::Value::String(t) => Some(t.clone()),
        _ => None,
    }
}

/// The architecture of a model folder, picked by its config.json's `model_type`. `cfg` is
/// config.json parsed by `ModelConfig::parse`, which has already refused unknown types and
/// bad values with messages naming the file and key.
pub fn build(
    cfg: ModelConfig,
    files: &ModelFiles<'_>,
    generation: GenerationConfig,
    precision: WeightPrecision,
) -> Result<Box<dyn Architecture>> {
    let (bytes, file) = files.config;
    let t = model_type(bytes).unwrap_or_default();
    match FAMILIES.iter().find(|(name, _)| *name == t) {
        Some((_, build)) => build(cfg, files, generation, precision),
        None => Err(Error::Core(pinhole_core::Error::Unsupported(format!(
            "{file}: model_type `{t}` has a config parser but no model; known: {}",
            FAMILIES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        )))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Model;
    use pinhole_core::hf::{ImageProcessorConfig, PaliGemmaConfig};
    use pinhole_core::DType;

    #[test]
    fn downcast_reaches_the_family() {
        let cfg = PaliGemmaConfig::parse(br#"{"model_type": "paligemma"}"#, "config.json").unwrap();
        let arch = crate::paligemma::PaliGemma::new(
            cfg,
            ImageProcessorConfig::default(),
            GenerationConfig::default(),
            DType::F32,
        );
        let m = Model::new(Box::new(arch));
        assert_eq!(m.family(), "paligemma");
        assert!(m.downcast_ref::<crate::paligemma::PaliGemma>().is_some());
        assert!(m.downcast_ref::<crate::smolvlm::SmolVlm>().is_none());
    }

    #[test]
    fn every_model_type_is_registered_once() {
        let mut names: Vec<_> = FAMILIES.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FAMILIES.len());
        for t in ["paligemma", "blip-2", "smolvlm", "idefics3"] {
            assert!(names.contains(&t), "{t}");
        }
    }
}
