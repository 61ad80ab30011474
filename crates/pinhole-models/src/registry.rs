//! The model families pinhole runs, by config.json's `model_type` (as transformers.js'
//! `registry.js`). Adding a family: one model file with its [`Architecture`] and [`Family`]
//! impls (and its config.json layout, a [`ConfigLayout`], when pinhole-core has none that
//! fits), and one line in [`FAMILIES`] (see ARCHITECTURE.md, "Adding a model family").

use pinhole_core::hf::json::{parse_object, Obj};
use pinhole_core::hf::{model_type, ConfigLayout, GenerationConfig};

use crate::arch::{Architecture, Family, ModelFiles, ProcessorLayout, WeightPrecision};
use crate::error::{Error, Result};

/// One `model_type` and the family that runs it ([`entry`] makes it from the family's type).
pub struct Entry {
    pub model_type: &'static str,
    build: fn(&Obj, &ModelFiles<'_>, WeightPrecision) -> Result<Box<dyn Architecture>>,
    sketch: fn(&Obj, WeightPrecision) -> Result<Box<dyn Architecture>>,
}

/// The registry line of family `F` for `model_type`.
pub const fn entry<F: Family>(model_type: &'static str) -> Entry {
    Entry {
        model_type,
        build: build_family::<F>,
        sketch: sketch_family::<F>,
    }
}

/// `model_type` → the family that runs it.
pub const FAMILIES: &[Entry] = &[
    entry::<crate::paligemma::PaliGemma>("paligemma"),
    entry::<crate::blip2::Blip2Phi>("blip-2"),
    entry::<crate::smolvlm::SmolVlm>("smolvlm"),
    entry::<crate::smolvlm::SmolVlm>("idefics3"),
];

fn build_family<F: Family>(
    obj: &Obj,
    files: &ModelFiles<'_>,
    precision: WeightPrecision,
) -> Result<Box<dyn Architecture>> {
    let cfg = F::Config::from_obj(obj)?;
    let generation = match &files.generation {
        Some((b, name)) => GenerationConfig::parse(b, name)?,
        None => GenerationConfig::default(),
    };
    let processor = F::Processor::parse(files.processor.0, files.processor.1)?;
    Ok(Box::new(F::new(cfg, processor, generation, precision)?))
}

fn sketch_family<F: Family>(obj: &Obj, precision: WeightPrecision) -> Result<Box<dyn Architecture>> {
    let cfg = F::Config::from_obj(obj)?;
    let processor = F::Processor::fitting(cfg.image_size())?;
    Ok(Box::new(F::new(
        cfg,
        processor,
        GenerationConfig::default(),
        precision,
    )?))
}

/// Parses config.json and finds the registry line of its `model_type`.
fn with_entry<T>(config: (&[u8], &str), then: impl FnOnce(&Entry, &Obj) -> Result<T>) -> Result<T> {
    let (bytes, file) = config;
    let root = parse_object(bytes, file)?;
    let obj = Obj::new(file, "", &root);
    let t = model_type(&obj)?;
    match FAMILIES.iter().find(|e| e.model_type == t) {
        Some(e) => then(e, &obj),
        None => Err(Error::Core(pinhole_core::Error::Unsupported(format!(
            "{file}: model_type `{t}` is not supported; pinhole runs {}",
            FAMILIES
                .iter()
                .map(|e| format!("`{}`", e.model_type))
                .collect::<Vec<_>>()
                .join(", ")
        )))),
    }
}

/// The architecture of a model folder, picked by its config.json's `model_type`: the family
/// parses config.json (every size checked against `hf::limits`), generation_config.json and
/// the processor config, in that order, with messages naming the file and key.
pub fn build(files: &ModelFiles<'_>, precision: WeightPrecision) -> Result<Box<dyn Architecture>> {
    with_entry(files.config, |e, obj| (e.build)(obj, files, precision))
}

/// The architecture described by config.json alone, with the default generation config and a
/// processor that fits the vision tower ([`ProcessorLayout::fitting`]): what the config fuzz
/// target drives, and enough for anything that needs the graphs but no image.
pub fn from_config(bytes: &[u8], file: &str, precision: WeightPrecision) -> Result<Box<dyn Architecture>> {
    with_entry((bytes, file), |e, obj| (e.sketch)(obj, precision))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Model;
    use pinhole_core::hf::{ImageProcessorConfig, PaliGemmaConfig};

    #[test]
    fn downcast_reaches_the_family() {
        let cfg = PaliGemmaConfig::parse(br#"{"model_type": "paligemma"}"#, "config.json").unwrap();
        let arch = crate::paligemma::PaliGemma::new(
            cfg,
            ImageProcessorConfig::default(),
            GenerationConfig::default(),
            WeightPrecision::F32,
        )
        .unwrap();
        let m = Model::new(Box::new(arch));
        assert_eq!(m.family(), "paligemma");
        assert!(m.downcast_ref::<crate::paligemma::PaliGemma>().is_some());
        assert!(m.downcast_ref::<crate::smolvlm::SmolVlm>().is_none());
    }

    #[test]
    fn every_model_type_is_registered_once() {
        let mut names: Vec<_> = FAMILIES.iter().map(|e| e.model_type).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FAMILIES.len());
        for t in ["paligemma", "blip-2", "smolvlm", "idefics3"] {
            assert!(names.contains(&t), "{t}");
        }
    }

    #[test]
    fn a_config_alone_builds_each_family() {
        for (json, family) in [
            (r#"{"model_type": "paligemma"}"#, "paligemma"),
            (
                r#"{"model_type": "blip-2", "text_config": {"model_type": "phi"}}"#,
                "blip-2+phi",
            ),
            (
                r#"{"model_type": "idefics3", "image_token_id": 3, "vision_config": {"image_size": 512, "patch_size": 16}}"#,
                "smolvlm",
            ),
        ] {
            let arch = from_config(json.as_bytes(), "config.json", WeightPrecision::F16).unwrap();
            assert_eq!(arch.family(), family);
        }
        let e = from_config(br#"{"model_type": "llava"}"#, "config.json", WeightPrecision::F16);
        let e = e.err().unwrap().to_string();
        assert!(e.contains("llava") && e.contains("`paligemma`"), "{e}");
    }
}
