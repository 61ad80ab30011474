//! The image side of the SmolVLM / Idefics3 processors: `SmolVLMImageProcessorPil` /
//! `Idefics3ImageProcessorPil` (the classes transformers 5 picks without torchvision; their
//! code is the same), step for step:
//!
//! 1. `do_resize`: the longest edge becomes `size.longest_edge` (up *or* down), the other edge
//!    `int(longest / aspect)` rounded up to even, then both kept ≤ 4096;
//! 2. `do_image_splitting`: each edge rounded up to a multiple of `max_image_size.longest_edge`
//!    (the short edge from `int(long / aspect)` first), resized again; when larger than one tile
//!    it is cut into tiles row-major and a *global* image (that resized image resized to one
//!    tile) is appended; otherwise it stays one tile and `rows = cols = 0`. Without splitting
//!    the image is resized to one square tile;
//! 3. every resize is Pillow's on 8-bit RGB with the configured filter (Lanczos, 1, for every
//!    published SmolVLM; bicubic, 3, also accepted), each from the previous 8-bit result;
//! 4. rescale + normalise as numpy does ([`crate::hf::image::normalize`]).
//!
//! A single image never needs padding (every tile is a full square), so `do_pad` changes
//! nothing; `pixel_attention_mask` is all ones.

use crate::error::{Error, Result};
use crate::hf::image::{normalize, resize_filtered, Filter, PassOrder, Rgb8Image};
use crate::hf::json::{parse_object, Obj};
use crate::hf::processor::ImageProcessorConfig;
use crate::tensor::Tensor;

/// `MAX_IMAGE_SIZE` of the processors: no edge beyond 4096 px.
const MAX_IMAGE_SIZE: usize = 4096;

/// Most tiles pinhole accepts per image (the tokenizer has `<row_R_col_C>` up to 6 x 6).
pub const MAX_TILES_PER_SIDE: usize = 6;

/// `processor_config.json` (transformers 5: `image_processor` nested, `image_seq_len` at the
/// top) or `preprocessor_config.json` + `processor_config.json` (transformers 4) of a
/// SmolVLM / Idefics3 model.
#[derive(Clone, Debug, PartialEq)]
pub struct SmolVlmImageConfig {
    pub do_resize: bool,
    /// `size.longest_edge`.
    pub longest_edge: usize,
    pub filter: Filter,
    pub do_image_splitting: bool,
    /// `max_image_size.longest_edge`: the tile size.
    pub tile: usize,
    /// Rescale / normalise settings (in the shape [`normalize`] takes).
    pub norm: ImageProcessorConfig,
    /// `<image>` tokens per tile; `None` when the config does not say (the processor's default
    /// is 169, pinhole then derives it from the model config).
    pub image_seq_len: Option<usize>,
}

impl SmolVlmImageConfig {
    /// Parses the processor config bytes (`file` names it in errors).
    pub fn parse(bytes: &[u8], file: &str) -> Result<SmolVlmImageConfig> {
        let root = parse_object(bytes, file)?;
        let top = Obj::new(file, "", &root);
        let obj = top.sub("image_processor")?.unwrap_or_else(|| top.clone());
        let edge = |key: &str, default: usize| -> Result<usize> {
            match obj.sub(key)? {
                None => Ok(default),
                Some(s) => match s.opt_usize_or("longest_edge", None)? {
                    Some(v) if v > 0 => Ok(v),
                    _ => Err(Error::Unsupported(format!(
                        "{file}: {}{key} must give a non-zero `longest_edge` (SmolVLM's processor \
                         resizes by the longest edge); got {}",
                        obj.path,
                        serde_json::Value::Object(s.map.clone())
                    ))),
                },
            }
        };
        let resample = obj.opt_u32_or("resample", Some(1))?.unwrap_or(1);
        let filter = Filter::from_pil(resample).ok_or_else(|| {
            Error::Unsupported(format!(
                "{file}: resample {resample} is not supported; pinhole implements Pillow's Lanczos (1) \
                 and bicubic (3)"
            ))
        })?;
        let d = ImageProcessorConfig::default();
        let norm = ImageProcessorConfig {
            do_resize: false,
            size: (0, 0),
            resample,
            do_rescale: obj.bool("do_rescale", true)?,
            rescale_factor: obj.f64("rescale_factor", d.rescale_factor)?,
            do_normalize: obj.bool("do_normalize", true)?,
            // IMAGENET_STANDARD_MEAN / STD, the processors' defaults.
            image_mean: obj.triple("image_mean", [0.5; 3])?,
            image_std: obj.triple("image_std", [0.5; 3])?,
            do_convert_rgb: obj.opt_bool("do_convert_rgb")?.unwrap_or(true),
            image_seq_length: None,
        };
        if norm.image_std.contains(&0.0) {
            return Err(Error::Invalid(format!(
                "{file}: image_std {:?} has a zero; fix the config",
                norm.image_std
            )));
        }
        let cfg = SmolVlmImageConfig {
            do_resize: obj.bool("do_resize", true)?,
            longest_edge: edge("size", 4 * 364)?,
            filter,
            do_image_splitting: obj.bool("do_image_splitting", true)?,
            tile: edge("max_image_size", 364)?,
            norm,
            image_seq_len: top.opt_usize_or("image_seq_len", None)?,
        };
        Ok(cfg)
    }

    #[cfg(not(target_arch = "wasm32"))]
    pub fn load(path: impl AsRef<std::path::Path>) -> Result<SmolVlmImageConfig> {
        let (bytes, shown) = crate::hf::json::read_file(path.as_ref())?;
        SmolVlmImageConfig::parse(&bytes, &shown)
    }
}

/// One preprocessed image: `pixels [tiles, 3, tile, tile]` and the split grid (`rows = cols =
/// 0` for a single tile), which the prompt expansion needs.
#[derive(Clone, Debug)]
pub struct TiledImage {
    pub pixels: Tensor,
    pub rows: usize,
    pub cols: usize,
}

impl TiledImage {
    pub fn tiles(&self) -> usize {
        self.pixels.shape[0]
    }
}

/// `_resize_output_size_rescale_to_max_len` then `_resize_output_size_scale_below_upper_bound`:
/// `(height, width)` with the longest edge at `max_len`.
pub fn longest_edge_size(height: usize, width: usize, max_len: usize) -> (usize, usize) {
    let aspect = width as f64 / height as f64;
    let (mut h, mut w);
    if width >= height {
        w = max_len;
        h = (w as f64 / aspect) as usize;
        if h % 2 != 0 {
            h += 1;
        }
    } else {
        h = max_len;
        w = (h as f64 * aspect) as usize;
        if w % 2 != 0 {
            w += 1;
        }
    }
    h = h.max(1);
    w = w.max(1);
    // Below the 4096 upper bound (no even rounding here).
    let aspect = w as f64 / h as f64;
    if w >= h && w > MAX_IMAGE_SIZE {
        w = MAX_IMAGE_SIZE;
        h = (w as f64 / aspect) as usize;
    } else if h > w && h > MAX_IMAGE_SIZE {
        h = MAX_IMAGE_SIZE;
        w = (h as f64 * aspect) as usize;
    }
    (h.max(1), w.max(1))
}

/// `resize_for_vision_encoder`: both edges rounded up to multiples of `tile`.
pub fn tile_multiple_size(height: usize, width: usize, tile: usize) -> (usize, usize) {
    let aspect = width as f64 / height as f64;
    let up = |v: usize| (v as f64 / tile as f64).ceil() as usize * tile;
    if width >= height {
        let w = up(width);
        let h = (w as f64 / aspect) as usize;
        (up(h), w)
    } else {
        let h = up(height);
        let w = (h as f64 * aspect) as usize;
        (h, up(w))
    }
}

fn resize(img: &Rgb8Image, h: usize, w: usize, filter: Filter) -> Result<Rgb8Image> {
    resize_filtered(img, h, w, filter, PassOrder::Pillow13)
}

fn crop(img: &Rgb8Image, y0: usize, x0: usize, size: usize) -> Result<Rgb8Image> {
    let mut data = Vec::with_capacity(size * size * 3);
    for y in y0..y0 + size {
        let row = y * img.width * 3;
        data.extend_from_slice(&img.data[row + x0 * 3..row + (x0 + size) * 3]);
    }
    Rgb8Image::new(size, size, data)
}

/// The processor's tiles for one decoded RGB image, normalised.
pub fn preprocess_tiles(img: &Rgb8Image, cfg: &SmolVlmImageConfig) -> Result<TiledImage> {
    let t = cfg.tile;
    let mut cur = img.clone();
    if cfg.do_resize {
        let (h, w) = longest_edge_size(cur.height, cur.width, cfg.longest_edge);
        cur = resize(&cur, h, w, cfg.filter)?;
    }
    let (frames, rows, cols) = if cfg.do_image_splitting {
        let (h, w) = tile_multiple_size(cur.height, cur.width, t);
        cur = resize(&cur, h, w, cfg.filter)?;
        if h > t || w > t {
            let (rows, cols) = ((h - t) / t + 1, (w - t) / t + 1);
            if rows > MAX_TILES_PER_SIDE || cols > MAX_TILES_PER_SIDE {
                return Err(Error::Unsupported(format!(
                    "the image splits into {rows} x {cols} tiles; the processor's prompt has \
                     <row_R_col_C> tokens up to {MAX_TILES_PER_SIDE} x {MAX_TILES_PER_SIDE} \
                     (size.longest_edge {} / max_image_size.longest_edge {t} is too large)",
                    cfg.longest_edge
                )));
            }
            let mut frames = Vec::with_capacity(rows * cols + 1);
            for r in 0..rows {
                for c in 0..cols {
                    frames.push(crop(&cur, r * t, c * t, t)?);
                }
            }
            frames.push(resize(&cur, t, t, cfg.filter)?);
            (frames, rows, cols)
        } else {
            (vec![cur], 0, 0)
        }
    } else {
        (vec![resize(&cur, t, t, cfg.filter)?], 0, 0)
    };
    let n = frames.len();
    let mut data = Vec::with_capacity(n * 3 * t * t);
    for f in &frames {
        if (f.height, f.width) != (t, t) {
            return Err(Error::Invalid(format!(
                "internal tiling error: a {}x{} tile, expected {t}x{t}",
                f.width, f.height
            )));
        }
        data.extend_from_slice(normalize(f, &cfg.norm)?.as_f32()?);
    }
    Ok(TiledImage {
        pixels: Tensor::f32(&[n, 3, t, t], data)?,
        rows,
        cols,
    })
}

/// The text that replaces one `<image>` in the prompt (`get_image_prompt_string`).
pub fn image_prompt_string(rows: usize, cols: usize, image_seq_len: usize) -> String {
    const FAKE: &str = "<fake_token_around_image>";
    let image = "<image>".repeat(image_seq_len);
    let global = format!("{FAKE}<global-img>{image}{FAKE}");
    if rows == 0 && cols == 0 {
        return global;
    }
    let mut s = String::new();
    for r in 1..=rows {
        for c in 1..=cols {
            s.push_str(&format!("{FAKE}<row_{r}_col_{c}>{image}"));
        }
        s.push('\n');
    }
    s.push('\n');
    s.push_str(&global);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_the_processor() {
        // 50x37 (w x h) to longest 96: w 96, h int(96 / (50/37)) = 71 -> 72 (even).
        assert_eq!(longest_edge_size(37, 50, 96), (72, 96));
        assert_eq!(tile_multiple_size(72, 96, 32), (96, 96));
        assert_eq!(longest_edge_size(60, 20, 96), (96, 32));
        assert_eq!(tile_multiple_size(96, 32, 32), (96, 32));
        assert_eq!(longest_edge_size(100, 100_000, 2048).1, 2048);
    }

    #[test]
    fn prompt_strings() {
        assert_eq!(
            image_prompt_string(0, 0, 2),
            "<fake_token_around_image><global-img><image><image><fake_token_around_image>"
        );
        let s = image_prompt_string(1, 2, 1);
        assert_eq!(
            s,
            "<fake_token_around_image><row_1_col_1><image><fake_token_around_image><row_1_col_2><image>\n\n\
             <fake_token_around_image><global-img><image><fake_token_around_image>"
        );
    }

    #[test]
    fn configs() {
        let c = SmolVlmImageConfig::parse(
            br#"{"image_processor": {"size": {"longest_edge": 2048}, "max_image_size": {"longest_edge": 512},
                "resample": 1, "image_mean": [0.5,0.5,0.5]}, "image_seq_len": 64}"#,
            "processor_config.json",
        )
        .unwrap();
        assert_eq!((c.longest_edge, c.tile, c.image_seq_len), (2048, 512, Some(64)));
        assert_eq!(c.filter, Filter::Lanczos);
        let e = SmolVlmImageConfig::parse(br#"{"resample": 2}"#, "p.json").unwrap_err();
        assert!(
            matches!(e, Error::Unsupported(_)) && e.to_string().contains("p.json"),
            "{e}"
        );
        let e = SmolVlmImageConfig::parse(br#"{"size": {"height": 3, "width": 3}}"#, "p.json").unwrap_err();
        assert!(e.to_string().contains("longest_edge"), "{e}");
    }
}
