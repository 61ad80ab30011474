//! Image input: decoding and SigLIP preprocessing exactly as transformers' PIL-backend image
//! processor does it.
//!
//! 1. [`decode_image`]: PNG, JPEG, WebP or GIF (first frame) bytes → 8-bit RGB, turned
//!    upright by the EXIF orientation as transformers' `load_image` does
//!    (`ImageOps.exif_transpose`; [`decode_image_with`] can turn that off). JPEG is decoded by
//!    the `jpeg` module, a re-implementation of what Pillow's libjpeg-turbo computes (islow IDCT, fancy
//!    upsampling, libjpeg's colour tables, Adobe CMYK), identical to Pillow on the photo
//!    corpus (tests/photos.rs); the other formats by the `image` crate. Transparency is
//!    composited onto white with Pillow's integer `alpha_composite`, as transformers'
//!    `convert_to_rgb` does; 16-bit PNGs are reduced as Pillow reads them.
//!
//!    Alpha policy (decided 2026-12-02 against transformers 5.24): the image processors
//!    (SigLIP/PaliGemma, SmolVLM: `do_convert_rgb=True`) composite every image they are given
//!    on white: `convert_to_rgb` does it for a PIL image with an alpha band or a palette
//!    `transparency`, and for an RGBA array (`round(α·c + (1 − α)·255)`, the same numbers as
//!    Pillow's integer `alpha_composite` for all 65 536 (c, α) pairs, tested below). Only the
//!    convenience loader `load_image(url_or_path)` drops alpha first (`.convert("RGB")`), so
//!    the processor then sees the colours hidden under transparent pixels. pinhole follows the
//!    processor, the component that defines preprocessing and sees every input kind (files,
//!    and the browser's canvases and `ImageData`, which are RGBA arrays): a transparent
//!    screenshot is captioned as it looks on a white page, whatever the encoder left in its
//!    transparent pixels. Callers who mimic `load_image` exactly can drop alpha themselves. Sizes are checked
//!    against [`MAX_INPUT_PIXELS`] and [`MAX_INPUT_SIDE`] from the header, before decoding.
//! 2. [`resize_bicubic`]: Pillow's `Image.resize(size, Image.BICUBIC)` (libImaging/Resample.c)
//!    re-implemented operation for operation: separable convolution with the bicubic kernel
//!    (a = -0.5) whose support is scaled by the downscale factor (antialiasing), coefficients
//!    normalised in f64 then converted to fixed point with 22 fractional bits, 8-bit rounding
//!    and clipping after each pass. The pass order follows Pillow 13 (horizontal first unless
//!    the height shrinks much more than the width, see [`PassOrder`]); Pillow ≤ 12's
//!    always-horizontal-first order is available too. The result is byte-identical to Pillow
//!    13.0.0 (tested on fixtures made with it).
//! 3. [`normalize`]: `(x · rescale_factor − mean) / std` with numpy's rounding (rescale in
//!    f64 then cast to f32, normalise in f32) into a `[3, H, W]` f32 [`Tensor`].
//!
//! Decoding equals Pillow's exactly on the test corpora (tests/hf_image.rs, tests/photos.rs):
//! JPEG (baseline, progressive, every common subsampling, grayscale, CMYK), PNG (8- and
//! 16-bit, palette, alpha), GIF and WebP (lossless and lossy, animated: first frame).

mod exif;
mod jpeg;

pub use exif::{apply_orientation, orientation};

use crate::error::{Error, Result};
use crate::hf::processor::ImageProcessorConfig;
use crate::tensor::Tensor;

/// An 8-bit RGB image, rows top to bottom, pixels `[r, g, b]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rgb8Image {
    pub width: usize,
    pub height: usize,
    /// `height * width * 3` bytes.
    pub data: Vec<u8>,
}

impl Rgb8Image {
    pub fn new(width: usize, height: usize, data: Vec<u8>) -> Result<Rgb8Image> {
        let want = width.checked_mul(height).and_then(|n| n.checked_mul(3));
        if want != Some(data.len()) {
            return Err(Error::Invalid(format!(
                "an RGB image of {width}x{height} needs {} bytes, got {}",
                want.map_or_else(|| "too many".to_string(), |n| n.to_string()),
                data.len()
            )));
        }
        Ok(Rgb8Image { width, height, data })
    }
}

/// Most pixels (width × height) an input image may have: 100 million, enough for the
/// largest common camera photos (50-100 MP); larger inputs are refused from their header,
/// before any pixel memory is allocated (decoding one costs about 4.5 bytes per pixel).
pub const MAX_INPUT_PIXELS: usize = 100_000_000;

/// Longest side an input image may have (a tiny GIF or WebP can announce a 65535-pixel
/// canvas and cost seconds and hundreds of MB to "decode"; no camera comes close).
pub const MAX_INPUT_SIDE: usize = 32_768;

/// How [`decode_image_with`] reads an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Turn the image upright according to its EXIF (or XMP) orientation, as transformers'
    /// `load_image` does with `ImageOps.exif_transpose`. On by default.
    pub apply_orientation: bool,
}

impl Default for DecodeOptions {
    fn default() -> DecodeOptions {
        DecodeOptions {
            apply_orientation: true,
        }
    }
}

/// Decodes PNG, JPEG, WebP or GIF (first frame) bytes to RGB and turns it upright by its EXIF
/// orientation; `name` names the image in errors. See [`decode_image_with`].
pub fn decode_image(bytes: &[u8], name: &str) -> Result<Rgb8Image> {
    decode_image_with(bytes, name, DecodeOptions::default())
}

fn too_large(name: &str, w: usize, h: usize) -> Error {
    Error::Unsupported(format!(
        "image {name} is {w}x{h}: larger than pinhole's limit of {MAX_INPUT_PIXELS} pixels and          {MAX_INPUT_SIDE} pixels per side; scale it down first"
    ))
}

fn check_size(name: &str, w: usize, h: usize) -> Result<()> {
    if w > MAX_INPUT_SIDE || h > MAX_INPUT_SIDE || w.saturating_mul(h) > MAX_INPUT_PIXELS {
        return Err(too_large(name, w, h));
    }
    Ok(())
}

/// Decodes PNG, JPEG, WebP or GIF (first frame) bytes to the RGB pixels transformers' PIL
/// path sees: JPEG exactly as Pillow (libjpeg-turbo) decodes it (the `jpeg` module), the others with
/// the `image` crate (identical to Pillow on the test corpus), transparency composited onto
/// white, then the EXIF orientation applied unless `opts` turns it off. The size is checked
/// against [`MAX_INPUT_PIXELS`] / [`MAX_INPUT_SIDE`] from the header, before decoding.
pub fn decode_image_with(bytes: &[u8], name: &str, opts: DecodeOptions) -> Result<Rgb8Image> {
    if bytes.is_empty() {
        return Err(Error::Invalid(format!(
            "image {name} is empty (0 bytes); give a PNG, JPEG, WebP or GIF file"
        )));
    }
    let format = image::guess_format(bytes).map_err(|_| {
        Error::Unsupported(format!(
            "image {name} is not a PNG, JPEG, WebP or GIF file (unrecognised header); convert \
             it to one of those"
        ))
    })?;
    let (img, exif, xmp) = match format {
        image::ImageFormat::Jpeg => {
            let d = jpeg::decode(bytes, MAX_INPUT_PIXELS, MAX_INPUT_SIDE).map_err(|e| match e {
                jpeg::JpegError::TooLarge { width, height } => too_large(name, width, height),
                jpeg::JpegError::Unsupported(m) => Error::Unsupported(format!("image {name}: {m}")),
                jpeg::JpegError::Truncated => Error::Invalid(format!(
                    "cannot decode image {name} (JPEG): the data ends before the image does; the \
                     file is truncated"
                )),
                jpeg::JpegError::Corrupt(m) => Error::Invalid(format!(
                    "cannot decode image {name} (JPEG): {m}; the file is corrupt or truncated"
                )),
            })?;
            (Rgb8Image::new(d.width, d.height, d.rgb)?, d.exif, d.xmp)
        }
        image::ImageFormat::Png | image::ImageFormat::WebP | image::ImageFormat::Gif => {
            decode_other(bytes, name, format)?
        }
        _ => {
            return Err(Error::Unsupported(format!(
                "image {name} is {format:?}; pinhole reads PNG, JPEG, WebP and GIF: convert it"
            )))
        }
    };
    if !opts.apply_orientation {
        return Ok(img);
    }
    let o = exif::orientation(exif.as_deref(), xmp.as_deref());
    Ok(exif::apply_orientation(img, o))
}

type Metadata = Option<Vec<u8>>;

/// PNG, WebP and GIF through the `image` crate, with the sizes checked from the header first.
fn decode_other(bytes: &[u8], name: &str, format: image::ImageFormat) -> Result<(Rgb8Image, Metadata, Metadata)> {
    use image::{DynamicImage as D, ImageDecoder};
    let corrupt = |e: image::ImageError| {
        Error::Invalid(format!(
            "cannot decode image {name} ({format:?}): {e}; the file is corrupt or truncated"
        ))
    };
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    // A backstop for what the header check below cannot see (the crate's own buffers).
    let mut limits = image::Limits::default();
    limits.max_alloc = Some((MAX_INPUT_PIXELS as u64) * 8);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(corrupt)?;
    let (w, h) = decoder.dimensions();
    let (w, h) = (w as usize, h as usize);
    check_size(name, w, h)?;
    if w == 0 || h == 0 {
        return Err(Error::Invalid(format!("image {name} is {w}x{h}: it has no pixels")));
    }
    // Pillow reads EXIF from PNG eXIf and WebP EXIF chunks, XMP from iTXt / XMP chunks.
    let exif = decoder.exif_metadata().ok().flatten();
    let xmp = decoder.xmp_metadata().ok().flatten();
    let img = D::from_decoder(decoder).map_err(corrupt)?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let n = w * h;
    let mut rgb = Vec::with_capacity(n * 3);
    match &img {
        D::ImageRgb8(b) => rgb.extend_from_slice(b.as_raw()),
        D::ImageRgba8(b) => push_rgba(&mut rgb, b.as_raw().chunks_exact(4).map(rgba4)),
        D::ImageLuma8(b) => {
            for &l in b.as_raw() {
                rgb.extend_from_slice(&[l, l, l]);
            }
        }
        D::ImageLumaA8(b) => push_rgba(&mut rgb, b.as_raw().chunks_exact(2).map(|c| [c[0], c[0], c[0], c[1]])),
        // Pillow reads 16-bit RGB(A)/LA PNGs by keeping the high byte ("RGB;16B")...
        D::ImageRgb16(b) => rgb.extend(b.as_raw().iter().map(|&v| (v >> 8) as u8)),
        D::ImageRgba16(b) => push_rgba(
            &mut rgb,
            b.as_raw()
                .chunks_exact(4)
                .map(|c| [hi(c[0]), hi(c[1]), hi(c[2]), hi(c[3])]),
        ),
        D::ImageLumaA16(b) => push_rgba(
            &mut rgb,
            b.as_raw().chunks_exact(2).map(|c| {
                let l = hi(c[0]);
                [l, l, l, hi(c[1])]
            }),
        ),
        // ...but 16-bit grey as mode "I;16", whose conversion to RGB clips at 255.
        D::ImageLuma16(b) => {
            for &v in b.as_raw() {
                let l = v.min(255) as u8;
                rgb.extend_from_slice(&[l, l, l]);
            }
        }
        other => {
            let b = other.to_rgba8();
            push_rgba(&mut rgb, b.as_raw().chunks_exact(4).map(rgba4));
        }
    }
    Ok((Rgb8Image::new(w, h, rgb)?, exif, xmp))
}

fn hi(v: u16) -> u8 {
    (v >> 8) as u8
}

fn rgba4(c: &[u8]) -> [u8; 4] {
    [c[0], c[1], c[2], c[3]]
}

fn push_rgba(out: &mut Vec<u8>, px: impl Iterator<Item = [u8; 4]>) {
    for p in px {
        out.extend_from_slice(&composite_on_white(p));
    }
}

/// Pillow's `Image.alpha_composite(white, rgba).convert("RGB")` for one pixel
/// (libImaging/AlphaComposite.c, 7 bits of extra precision, rounded divisions by 255).
pub fn composite_on_white(p: [u8; 4]) -> [u8; 3] {
    const PRECISION_BITS: u32 = 7;
    let [r, g, b, a] = p.map(u32::from);
    if a == 0 {
        return [255, 255, 255];
    }
    let shift_div255 = |x: u32| ((x >> 8) + x) >> 8;
    let blend = 255 * (255 - a);
    let outa255 = a * 255 + blend;
    let coef1 = a * 255 * 255 * (1 << PRECISION_BITS) / outa255;
    let coef2 = 255 * (1 << PRECISION_BITS) - coef1;
    let ch = |c: u32| {
        let tmp = c * coef1 + 255 * coef2;
        (shift_div255(tmp + (0x80 << PRECISION_BITS)) >> PRECISION_BITS) as u8
    };
    [ch(r), ch(g), ch(b)]
}

/// Reads and decodes an image file (not on wasm32).
#[cfg(not(target_arch = "wasm32"))]
pub fn load_image(path: impl AsRef<std::path::Path>) -> Result<Rgb8Image> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let bytes =
        std::fs::read(path).map_err(|e| Error::Invalid(format!("cannot read image {shown}: {e}; check the path")))?;
    decode_image(&bytes, &shown)
}

/// [`load_image`] with [`DecodeOptions`] (not on wasm32).
#[cfg(not(target_arch = "wasm32"))]
pub fn load_image_with(path: impl AsRef<std::path::Path>, opts: DecodeOptions) -> Result<Rgb8Image> {
    let path = path.as_ref();
    let shown = path.display().to_string();
    let bytes =
        std::fs::read(path).map_err(|e| Error::Invalid(format!("cannot read image {shown}: {e}; check the path")))?;
    decode_image_with(&bytes, &shown, opts)
}

/// Largest resize output accepted (64 Mi pixels).
pub const MAX_PIXELS: usize = 1 << 26;

/// Fixed-point fraction bits of the resampling coefficients (Pillow: `32 - 8 - 2`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's bicubic filter, a = -0.5, support 2.
fn bicubic(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = if x < 0.0 { -x } else { x };
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// Pillow's Lanczos filter (`lanczos_filter`: a sinc truncated at 3, windowed by sinc(x / 3)).
fn lanczos(x: f64) -> f64 {
    fn sinc(x: f64) -> f64 {
        if x == 0.0 {
            return 1.0;
        }
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
    if (-3.0..3.0).contains(&x) {
        sinc(x) * sinc(x / 3.0)
    } else {
        0.0
    }
}

/// A Pillow resampling filter (the `resample` code of an image processor config).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filter {
    /// `Image.BICUBIC` (3): a = -0.5, support 2.
    Bicubic,
    /// `Image.LANCZOS` (1): support 3.
    Lanczos,
}

impl Filter {
    /// The filter for a PIL resample code, if pinhole implements it.
    pub fn from_pil(code: u32) -> Option<Filter> {
        match code {
            1 => Some(Filter::Lanczos),
            3 => Some(Filter::Bicubic),
            _ => None,
        }
    }

    fn support(self) -> f64 {
        match self {
            Filter::Bicubic => 2.0,
            Filter::Lanczos => 3.0,
        }
    }

    fn eval(self, x: f64) -> f64 {
        match self {
            Filter::Bicubic => bicubic(x),
            Filter::Lanczos => lanczos(x),
        }
    }
}

/// Per output pixel: the first input pixel and the fixed-point weights of the input pixels
/// from there on (Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc`).
struct Coeffs {
    bounds: Vec<(usize, usize)>,
    ksize: usize,
    weights: Vec<i32>,
}

fn precompute_coeffs(in_size: usize, out_size: usize, filter: Filter) -> Coeffs {
    // Pillow computes `in1 - in0` in f32 (the box is float); exact for sizes below 2^24.
    let scale = (in_size as f32) as f64 / out_size as f64;
    let filterscale = if scale < 1.0 { 1.0 } else { scale };
    let support = filter.support() * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // C's (int) truncates toward zero, as `as` does.
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) - xmin;
        let xmax = xmax.clamp(0, ksize as i64) as usize;
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(xmax) {
            let w = filter.eval(((x as i64 + xmin) as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        let row = &mut weights[xx * ksize..(xx + 1) * ksize];
        for (x, kx) in k.iter().enumerate().take(xmax) {
            let v = if ww != 0.0 { kx / ww } else { *kx };
            row[x] = if v < 0.0 {
                (-0.5 + v * (1u32 << PRECISION_BITS) as f64) as i32
            } else {
                (0.5 + v * (1u32 << PRECISION_BITS) as f64) as i32
            };
        }
        bounds.push((xmin as usize, xmax));
    }
    Coeffs { bounds, ksize, weights }
}

fn clip8(v: i64) -> u8 {
    if v >= (1i64 << PRECISION_BITS << 8) {
        255
    } else if v <= 0 {
        0
    } else {
        (v >> PRECISION_BITS) as u8
    }
}

/// The order of the two 1-D passes. Pillow 12 and older always resize horizontally first;
/// Pillow 13 (python-pillow/Pillow#9549) resizes vertically first when the height shrinks by
/// more than twice as many pixels as the width does. The order changes the 8-bit rounding
/// between the passes, so the result depends on it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PassOrder {
    /// Pillow ≥ 13, the reference environment's Pillow (13.0.0): vertical first iff
    /// `out_h < in_h` and `in_h - out_h > 2 * (in_w - out_w)`.
    #[default]
    Pillow13,
    /// Pillow ≤ 12: always horizontal first.
    HorizontalFirst,
}

impl PassOrder {
    fn vertical_first(self, in_h: usize, in_w: usize, out_h: usize, out_w: usize) -> bool {
        match self {
            PassOrder::HorizontalFirst => false,
            PassOrder::Pillow13 => out_h < in_h && (in_h - out_h) as i64 > 2 * (in_w as i64 - out_w as i64),
        }
    }
}

/// Resizes to `height` x `width` exactly as Pillow 13's `Image.resize((width, height),
/// Image.BICUBIC)` on an RGB image (see [`resize_bicubic_ordered`] for Pillow ≤ 12).
pub fn resize_bicubic(img: &Rgb8Image, height: usize, width: usize) -> Result<Rgb8Image> {
    resize_bicubic_ordered(img, height, width, PassOrder::Pillow13)
}

/// [`resize_bicubic`] with the pass order of a given Pillow version.
pub fn resize_bicubic_ordered(img: &Rgb8Image, height: usize, width: usize, order: PassOrder) -> Result<Rgb8Image> {
    resize_filtered(img, height, width, Filter::Bicubic, order)
}

/// Pillow's `Image.resize((width, height), filter)` on an RGB image: the same separable
/// fixed-point convolution for every filter, only the kernel and its support differ.
pub fn resize_filtered(
    img: &Rgb8Image,
    height: usize,
    width: usize,
    filter: Filter,
    order: PassOrder,
) -> Result<Rgb8Image> {
    if height == 0 || width == 0 {
        return Err(Error::Invalid(format!(
            "cannot resize an image to {width}x{height}; the size must be positive"
        )));
    }
    if height.checked_mul(width).is_none_or(|n| n > MAX_PIXELS) {
        return Err(Error::Unsupported(format!(
            "cannot resize to {width}x{height}: more than {MAX_PIXELS} pixels; check the \
             image processor's `size`"
        )));
    }
    let (in_w, in_h) = (img.width, img.height);
    if in_w == 0 || in_h == 0 || img.data.len() != in_w * in_h * C {
        return Err(Error::Invalid(format!(
            "cannot resize a {in_w}x{in_h} image holding {} bytes",
            img.data.len()
        )));
    }
    if height == in_h && width == in_w {
        return Ok(img.clone());
    }
    let need_h = width != in_w;
    let need_v = height != in_h;
    let horiz = precompute_coeffs(in_w, width, filter);
    let vert = precompute_coeffs(in_h, height, filter);
    let out = if need_h && need_v && order.vertical_first(in_h, in_w, height, width) {
        let tmp = vertical_pass(&img.data, in_w, in_h, 0, &vert)?;
        horizontal_pass(&tmp, in_w, 0..height, &horiz)
    } else if need_h {
        // Only the rows the vertical pass reads.
        let first = vert.bounds.first().map_or(0, |b| b.0);
        let last = vert.bounds.last().map_or(in_h, |b| b.0 + b.1);
        let tmp = horizontal_pass(&img.data, in_w, first..last.max(first), &horiz);
        if need_v {
            vertical_pass(&tmp, width, last.max(first) - first, first, &vert)?
        } else {
            tmp
        }
    } else {
        vertical_pass(&img.data, in_w, in_h, 0, &vert)?
    };
    Rgb8Image::new(width, height, out)
}

/// Channels of the images resized here.
const C: usize = 3;

/// Pillow's `ImagingResampleHorizontal_8bpc` over source rows `rows`.
fn horizontal_pass(src: &[u8], src_w: usize, rows: std::ops::Range<usize>, k: &Coeffs) -> Vec<u8> {
    let out_w = k.bounds.len();
    let half = 1i64 << (PRECISION_BITS - 1);
    let mut out = vec![0u8; rows.len() * out_w * C];
    for (oy, y) in rows.enumerate() {
        let in_row = &src[y * src_w * C..(y + 1) * src_w * C];
        let out_row = &mut out[oy * out_w * C..(oy + 1) * out_w * C];
        for (xx, &(xmin, n)) in k.bounds.iter().enumerate() {
            let w = &k.weights[xx * k.ksize..xx * k.ksize + n];
            let mut ss = [half; C];
            for (x, &kx) in w.iter().enumerate() {
                let p = &in_row[(xmin + x) * C..(xmin + x + 1) * C];
                for c in 0..C {
                    ss[c] += p[c] as i64 * kx as i64;
                }
            }
            for c in 0..C {
                out_row[xx * C + c] = clip8(ss[c]);
            }
        }
    }
    out
}

/// Pillow's `ImagingResampleVertical_8bpc`; `src` holds `src_h` rows starting at source row
/// `row0` (the coefficients' bounds are in source rows).
fn vertical_pass(src: &[u8], w: usize, src_h: usize, row0: usize, k: &Coeffs) -> Result<Vec<u8>> {
    let out_h = k.bounds.len();
    let half = 1i64 << (PRECISION_BITS - 1);
    let mut out = vec![0u8; out_h * w * C];
    for (yy, &(ymin, n)) in k.bounds.iter().enumerate() {
        let coeffs = &k.weights[yy * k.ksize..yy * k.ksize + n];
        let ymin = ymin
            .checked_sub(row0)
            .filter(|&m| m + n <= src_h)
            .ok_or_else(|| Error::Invalid("internal resize bounds error; please report this image size".into()))?;
        let out_row = &mut out[yy * w * C..(yy + 1) * w * C];
        for (i, o) in out_row.iter_mut().enumerate() {
            let mut ss = half;
            for (y, &ky) in coeffs.iter().enumerate() {
                ss += src[(ymin + y) * w * C + i] as i64 * ky as i64;
            }
            *o = clip8(ss);
        }
    }
    Ok(out)
}

/// Rescales and normalises to a `[3, H, W]` f32 tensor as transformers does: the u8 value is
/// multiplied by `rescale_factor` in f64 and cast to f32, then `(x - mean) / std` in f32.
pub fn normalize(img: &Rgb8Image, cfg: &ImageProcessorConfig) -> Result<Tensor> {
    let (h, w) = (img.height, img.width);
    if img.data.len() != h * w * 3 {
        return Err(Error::Invalid(format!(
            "a {w}x{h} RGB image holds {} bytes, not {}",
            img.data.len(),
            h * w * 3
        )));
    }
    let mut out = vec![0f32; 3 * h * w];
    for c in 0..3 {
        let mean = cfg.image_mean[c] as f32;
        let std = cfg.image_std[c] as f32;
        let plane = &mut out[c * h * w..(c + 1) * h * w];
        for (i, o) in plane.iter_mut().enumerate() {
            let v = img.data[i * 3 + c];
            let x = if cfg.do_rescale {
                (v as f64 * cfg.rescale_factor) as f32
            } else {
                v as f32
            };
            *o = if cfg.do_normalize { (x - mean) / std } else { x };
        }
    }
    Tensor::f32(&[3, h, w], out)
}

/// Resizes (when the config says so) and normalises an RGB image: the `pixel_values` of one
/// image, `[3, height, width]`.
pub fn preprocess_rgb(img: &Rgb8Image, cfg: &ImageProcessorConfig) -> Result<Tensor> {
    if cfg.do_resize {
        let (h, w) = cfg.size;
        normalize(&resize_bicubic(img, h, w)?, cfg)
    } else {
        normalize(img, cfg)
    }
}

/// Decodes image bytes and preprocesses them: [`decode_image`] then [`preprocess_rgb`].
pub fn preprocess_image(bytes: &[u8], name: &str, cfg: &ImageProcessorConfig) -> Result<Tensor> {
    preprocess_image_with(bytes, name, cfg, DecodeOptions::default())
}

/// [`preprocess_image`] with [`DecodeOptions`].
pub fn preprocess_image_with(
    bytes: &[u8],
    name: &str,
    cfg: &ImageProcessorConfig,
    opts: DecodeOptions,
) -> Result<Tensor> {
    preprocess_rgb(&decode_image_with(bytes, name, opts)?, cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bicubic_kernel_values() {
        assert_eq!(bicubic(0.0), 1.0);
        assert_eq!(bicubic(1.0), 0.0);
        assert_eq!(bicubic(2.0), 0.0);
        assert_eq!(bicubic(0.5), 0.5625);
        assert_eq!(bicubic(-1.5), -0.0625);
    }

    #[test]
    fn coefficients_sum_to_one_in_fixed_point() {
        for (i, o) in [(50, 32), (13, 48), (1000, 7), (7, 1000), (1, 5)] {
            let c = precompute_coeffs(i, o, Filter::Bicubic);
            for (xx, &(_, n)) in c.bounds.iter().enumerate() {
                let s: i64 = c.weights[xx * c.ksize..xx * c.ksize + n]
                    .iter()
                    .map(|&w| w as i64)
                    .sum();
                assert!((s - (1 << PRECISION_BITS)).abs() <= n as i64, "{i}->{o} at {xx}: {s}");
            }
        }
    }

    #[test]
    fn constant_images_stay_constant() {
        for v in [0u8, 1, 128, 254, 255] {
            let img = Rgb8Image::new(17, 9, vec![v; 17 * 9 * 3]).unwrap();
            for (h, w) in [(4, 5), (30, 41), (9, 3), (2, 17)] {
                let r = resize_bicubic(&img, h, w).unwrap();
                assert_eq!((r.height, r.width), (h, w));
                assert!(r.data.iter().all(|&x| x == v), "{v} -> {h}x{w}");
            }
        }
    }

    #[test]
    fn composite_equals_transformers_array_convert_to_rgb() {
        // transformers' `convert_to_rgb` on an RGBA uint8 array: alpha = a / 255 (float64),
        // composite = alpha * c + (1 - alpha) * 255, `np.round` (half to even).
        for a in 0..=255u8 {
            let alpha = f64::from(a) / 255.0;
            for c in 0..=255u8 {
                let want = (alpha * f64::from(c) + (1.0 - alpha) * 255.0).round_ties_even() as u8;
                assert_eq!(composite_on_white([c, c, c, a]), [want; 3], "c={c} a={a}");
            }
        }
    }

    #[test]
    fn opaque_composite_is_identity() {
        for v in 0..=255u8 {
            assert_eq!(composite_on_white([v, 255 - v, v / 2, 255]), [v, 255 - v, v / 2]);
        }
        assert_eq!(composite_on_white([0, 0, 0, 0]), [255, 255, 255]);
    }

    #[test]
    fn bad_inputs_are_errors() {
        let e = decode_image(&[], "empty.png").unwrap_err().to_string();
        assert!(e.contains("empty.png") && e.contains("empty"), "{e}");
        let e = decode_image(b"hello world, not an image", "x.txt").unwrap_err();
        assert!(matches!(e, Error::Unsupported(_)) && e.to_string().contains("x.txt"));
        // A PNG signature followed by garbage.
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend_from_slice(&[0u8; 20]);
        let e = decode_image(&png, "broken.png").unwrap_err().to_string();
        assert!(e.contains("broken.png") && e.contains("corrupt"), "{e}");
        let img = Rgb8Image::new(2, 2, vec![0; 12]).unwrap();
        assert!(resize_bicubic(&img, 0, 3).is_err());
        assert!(Rgb8Image::new(2, 2, vec![0; 11]).is_err());
    }
}
