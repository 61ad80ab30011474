//! The preprocessing and generation configs of a Hugging Face model folder:
//! `preprocessor_config.json` / `processor_config.json` → [`ImageProcessorConfig`] (with
//! `SiglipImageProcessor`'s defaults) and `generation_config.json` → [`GenerationConfig`].
//! Both parse from bytes; the `load` helpers read files and are not compiled for wasm32.

use serde_json::Value;

use crate::error::{Error, Result};
#[cfg(not(target_arch = "wasm32"))]
use crate::hf::json::read_file;
use crate::hf::json::{parse_object, Obj};
use crate::hf::limits::{MAX_IMAGE_SIDE, MAX_IMAGE_TOKENS};

/// The image preprocessing of `preprocessor_config.json` (or the `image_processor` entry of a
/// transformers 5 `processor_config.json`), with `SiglipImageProcessor`'s defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageProcessorConfig {
    pub do_resize: bool,
    /// Output `(height, width)`.
    pub size: (usize, usize),
    /// PIL resample filter code; only 3 (bicubic) is supported.
    pub resample: u32,
    pub do_rescale: bool,
    pub rescale_factor: f64,
    pub do_normalize: bool,
    pub image_mean: [f64; 3],
    pub image_std: [f64; 3],
    pub do_convert_rgb: bool,
    /// Image tokens per image in the prompt (PaliGemma's processor).
    pub image_seq_length: Option<usize>,
}

impl Default for ImageProcessorConfig {
    fn default() -> Self {
        ImageProcessorConfig {
            do_resize: true,
            size: (224, 224),
            resample: 3,
            do_rescale: true,
            rescale_factor: 1.0 / 255.0,
            do_normalize: true,
            image_mean: [0.5; 3],
            image_std: [0.5; 3],
            do_convert_rgb: true,
            image_seq_length: None,
        }
    }
}

impl ImageProcessorConfig {
    /// Parses `preprocessor_config.json` or `processor_config.json` bytes.
    pub fn parse(bytes: &[u8], file: &str) -> Result<ImageProcessorConfig> {
        let root = parse_object(bytes, file)?;
        let top = Obj::new(file, "", &root);
        let (obj, seq_fallback) = match top.sub("image_processor")? {
            Some(nested) => (nested, top.opt_dim_or("image_seq_length", None, MAX_IMAGE_TOKENS)?),
            None => (top.clone(), None),
        };
        let d = ImageProcessorConfig::default();
        let size = match obj.sub("size")? {
            None => d.size,
            // Bounded before anything is resized to it: the resize target decides the work
            // and memory spent on every image.
            Some(s) => match (
                s.opt_dim_or("height", None, MAX_IMAGE_SIDE)?,
                s.opt_dim_or("width", None, MAX_IMAGE_SIDE)?,
            ) {
                (Some(h), Some(w)) if h > 0 && w > 0 => (h, w),
                _ => {
                    return Err(Error::Unsupported(format!(
                        "{file}: {}size must give a non-zero `height` and `width` (pinhole \
                         resizes to a fixed size, as SigLIP does), got {}",
                        obj.path,
                        Value::Object(s.map.clone())
                    )))
                }
            },
        };
        let cfg = ImageProcessorConfig {
            do_resize: obj.bool("do_resize", d.do_resize)?,
            size,
            resample: obj.opt_u32_or("resample", Some(d.resample))?.unwrap_or(3),
            do_rescale: obj.bool("do_rescale", d.do_rescale)?,
            rescale_factor: obj.f64("rescale_factor", d.rescale_factor)?,
            do_normalize: obj.bool("do_normalize", d.do_normalize)?,
            image_mean: obj.triple("image_mean", d.image_mean)?,
            image_std: obj.triple("image_std", d.image_std)?,
            do_convert_rgb: obj.opt_bool("do_convert_rgb")?.unwrap_or(true),
            image_seq_length: obj
                .opt_dim_or("image_seq_length", None, MAX_IMAGE_TOKENS)?
                .or(seq_fallback),
        };
        if cfg.do_resize && cfg.resample != 3 {
            return Err(Error::Unsupported(format!(
                "{file}: resample {} is not supported; pinhole implements PIL's bicubic \
                 (resample 3), which SigLIP uses",
                cfg.resample
            )));
        }
        for key in ["do_center_crop", "do_pad"] {
            if obj.opt_bool(key)? == Some(true) {
                return Err(Error::Unsupported(format!(
                    "{file}: `{key}: true` is not supported; SigLIP preprocessing only resizes, \
                     rescales and normalises"
                )));
            }
        }
        if cfg.image_std.contains(&0.0) {
            return Err(Error::Invalid(format!(
                "{file}: image_std {:?} has a zero; fix the config",
                cfg.image_std
            )));
        }
        Ok(cfg)
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<ImageProcessorConfig> {
        let (bytes, shown) = read_file(path.as_ref())?;
        ImageProcessorConfig::parse(&bytes, &shown)
    }
}

/// `generation_config.json`. Unset values stay `None`: transformers then falls back to the
/// model config (token ids) or its own defaults (`max_length` 20, greedy decoding).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenerationConfig {
    pub bos_token_id: Option<u32>,
    /// `eos_token_id`, a number or a list.
    pub eos_token_ids: Vec<u32>,
    pub pad_token_id: Option<u32>,
    pub max_length: Option<usize>,
    pub max_new_tokens: Option<usize>,
    pub do_sample: Option<bool>,
    pub num_beams: Option<usize>,
    pub temperature: Option<f64>,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
}

impl GenerationConfig {
    pub fn parse(bytes: &[u8], file: &str) -> Result<GenerationConfig> {
        let root = parse_object(bytes, file)?;
        let obj = Obj::new(file, "", &root);
        Ok(GenerationConfig {
            bos_token_id: obj.opt_u32("bos_token_id")?,
            eos_token_ids: obj.token_ids("eos_token_id", &[])?,
            pad_token_id: obj.opt_u32("pad_token_id")?,
            max_length: obj.opt_usize_or("max_length", None)?,
            max_new_tokens: obj.opt_usize_or("max_new_tokens", None)?,
            do_sample: obj.opt_bool("do_sample")?,
            num_beams: obj.opt_usize_or("num_beams", None)?,
            temperature: obj.opt_f64_or("temperature", None)?,
            top_k: obj.opt_usize_or("top_k", None)?,
            top_p: obj.opt_f64_or("top_p", None)?,
        })
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<GenerationConfig> {
        let (bytes, shown) = read_file(path.as_ref())?;
        GenerationConfig::parse(&bytes, &shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_processor_configs() {
        // transformers 4.x preprocessor_config.json of PaliGemma.
        let old = r#"{"do_convert_rgb": null, "do_normalize": true, "do_rescale": true,
            "do_resize": true, "image_mean": [0.5, 0.5, 0.5], "image_processor_type":
            "SiglipImageProcessor", "image_seq_length": 256, "image_std": [0.5, 0.5, 0.5],
            "processor_class": "PaliGemmaProcessor", "resample": 3,
            "rescale_factor": 0.00392156862745098, "size": {"height": 224, "width": 224}}"#;
        let c = ImageProcessorConfig::parse(old.as_bytes(), "preprocessor_config.json").unwrap();
        assert_eq!(c.size, (224, 224));
        assert_eq!(c.image_seq_length, Some(256));
        assert_eq!(c.rescale_factor, 0.00392156862745098);
        assert!(c.do_convert_rgb);
        assert_eq!(
            c,
            ImageProcessorConfig {
                image_seq_length: Some(256),
                ..Default::default()
            }
        );
        // transformers 5 processor_config.json nests the image processor.
        let new = r#"{"image_processor": {"image_processor_type": "SiglipImageProcessor",
            "size": {"height": 448, "width": 448}, "image_mean": 0.25, "image_std": [1, 2, 3]},
            "image_seq_length": 1024, "processor_class": "PaliGemmaProcessor"}"#;
        let c = ImageProcessorConfig::parse(new.as_bytes(), "processor_config.json").unwrap();
        assert_eq!(c.size, (448, 448));
        assert_eq!(c.image_seq_length, Some(1024));
        assert_eq!(c.image_mean, [0.25; 3]);
        assert_eq!(c.image_std, [1.0, 2.0, 3.0]);
        let e = ImageProcessorConfig::parse(br#"{"resample": 2}"#, "p.json").unwrap_err();
        assert!(matches!(e, Error::Unsupported(_)) && e.to_string().contains("p.json"));
        let e = ImageProcessorConfig::parse(br#"{"size": {"shortest_edge": 224}}"#, "p.json").unwrap_err();
        assert!(e.to_string().contains("height"), "{e}");
        let e = ImageProcessorConfig::parse(br#"{"image_std": [1, 0, 1]}"#, "p.json").unwrap_err();
        assert!(e.to_string().contains("zero"), "{e}");
    }

    #[test]
    fn generation_configs() {
        let g = GenerationConfig::parse(
            br#"{"bos_token_id": 2, "eos_token_id": [1, 107], "pad_token_id": 0,
                 "max_length": 8192, "do_sample": false, "transformers_version": "4.47.0"}"#,
            "generation_config.json",
        )
        .unwrap();
        assert_eq!(g.bos_token_id, Some(2));
        assert_eq!(g.eos_token_ids, vec![1, 107]);
        assert_eq!(g.max_length, Some(8192));
        assert_eq!(g.do_sample, Some(false));
        assert_eq!(g.top_k, None);
        let g = GenerationConfig::parse(br#"{"eos_token_id": 1}"#, "g.json").unwrap();
        assert_eq!(g.eos_token_ids, vec![1]);
        let e = GenerationConfig::parse(br#"{"eos_token_id": -1}"#, "g.json").unwrap_err();
        assert!(e.to_string().contains("g.json") && e.to_string().contains("eos_token_id"));
    }
}
