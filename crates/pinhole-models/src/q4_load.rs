//! Reading 4-bit weights from a quantized model folder (written by `pinhole quantize`).
//!
//! A quantized folder is an ordinary model folder: the same config/tokenizer/processor files,
//! and a safetensors checkpoint where each quantized weight `NAME` is replaced by
//! `NAME.q4` (U32 `[N, K/8]`), `NAME.q4_scales` (F16 `[N, K/group]`) and, for the asymmetric
//! scheme, `NAME.q4_offsets` (F16 `[N, K/group]`); the file metadata says `pinhole.quant`
//! (`q4_sym` | `q4_asym`) and `pinhole.quant.group`. See `pinhole_core::quant`.
//!
//! The loader asks this module two things per expected weight, before and while reading: is it
//! stored quantized (and are its three tensors consistent with the shape the config implies),
//! and the tensor itself. Everything else about loading is unchanged, so model graphs do not
//! know whether a weight is 4-bit.

use pinhole_core::hf::safetensors::{Header, TensorInfo};
use pinhole_core::hf::{ByteSource, CheckpointReader, StDType};
use pinhole_core::quant::{
    Q4Data, Q4Format, Q4Scheme, META_GROUP, META_QUANT, SUFFIX_OFFSETS, SUFFIX_PACKED, SUFFIX_SCALES,
};
use pinhole_core::Tensor;

use crate::error::{Error, Result};

/// The checkpoint name a quantized tensor stands for (`X.q4` → `X`); `None` for other names.
pub fn base_name(name: &str) -> Option<&str> {
    name.strip_suffix(SUFFIX_PACKED)
}

/// The 4-bit format of a checkpoint from its metadata, `None` for an ordinary checkpoint.
/// An unknown `pinhole.quant` value, a bad group size, shards that disagree, or `.q4` tensors
/// without the metadata are errors.
pub fn checkpoint_format<S: ByteSource>(reader: &CheckpointReader<S>) -> Result<Option<Q4Format>> {
    let mut found: Option<(Q4Format, String)> = None;
    for shard in reader.shards() {
        let h = shard.header();
        let Some(f) = header_format(h)? else {
            continue;
        };
        if let Some((other, file)) = &found {
            if *other != f {
                return Err(Error::File {
                    path: h.file.clone(),
                    message: format!("its 4-bit format differs from {file}'s; the shards do not belong together"),
                });
            }
        }
        found = Some((f, h.file.clone()));
    }
    if found.is_none() {
        untagged_q4(reader.tensors())?;
    }
    Ok(found.map(|(f, _)| f))
}

/// An error naming the first `.q4` tensor of `tensors` (for a checkpoint without the 4-bit
/// metadata).
pub fn untagged_q4<'a>(mut tensors: impl Iterator<Item = &'a TensorInfo>) -> Result<()> {
    match tensors.find(|t| base_name(&t.name).is_some()) {
        Some(t) => Err(Error::Tensor {
            name: t.name.clone(),
            message: format!(
                "is a 4-bit tensor but the checkpoint has no `{META_QUANT}` metadata; the file is not a \
                 pinhole-quantized checkpoint or was damaged"
            ),
        }),
        None => Ok(()),
    }
}

/// The 4-bit format one safetensors file's metadata declares (`None`: no `pinhole.quant`).
/// Used per shard by [`checkpoint_format`] and per streamed file by the streaming loader.
pub fn header_format(h: &Header) -> Result<Option<Q4Format>> {
    let Some(q) = h.metadata.get(META_QUANT) else {
        return Ok(None);
    };
    let scheme = Q4Scheme::from_meta(q).ok_or_else(|| Error::File {
        path: h.file.clone(),
        message: format!(
            "unknown `{META_QUANT}` = '{q}' in the safetensors metadata; pinhole reads q4_sym and q4_asym \
                 (re-quantize the model with this version of `pinhole quantize`)"
        ),
    })?;
    let group = h.metadata.get(META_GROUP).ok_or_else(|| Error::File {
        path: h.file.clone(),
        message: format!("`{META_QUANT}` is set but `{META_GROUP}` is missing from the metadata"),
    })?;
    let group: usize = group.parse().map_err(|_| Error::File {
        path: h.file.clone(),
        message: format!("`{META_GROUP}` = '{group}' is not a number"),
    })?;
    let f = Q4Format::new(group, scheme).map_err(|e| Error::File {
        path: h.file.clone(),
        message: e.to_string(),
    })?;
    Ok(Some(f))
}

/// Tensor headers by name: a whole checkpoint (the native loader) or the header of one
/// streamed file (the browser's loader), so the 4-bit checks are shared by both.
pub trait TensorIndex {
    fn tensor(&self, name: &str) -> Option<&TensorInfo>;
}

impl<S: ByteSource> TensorIndex for CheckpointReader<S> {
    fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.info(name).ok()
    }
}

impl TensorIndex for Header {
    fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.get(name)
    }
}

fn check_entry<R: TensorIndex + ?Sized>(reader: &R, name: &str, dtype: StDType, shape: &[usize]) -> Result<u64> {
    let info = reader.tensor(name).ok_or_else(|| Error::Tensor {
        name: name.to_string(),
        message: "is missing; a quantized weight needs its .q4, .q4_scales (and .q4_offsets for q4_asym) tensors"
            .into(),
    })?;
    if info.dtype != dtype || info.shape != shape {
        return Err(Error::Tensor {
            name: name.to_string(),
            message: format!(
                "is {} {:?} but the config and the 4-bit format imply {} {:?}",
                info.dtype, info.shape, dtype, shape
            ),
        });
    }
    Ok(info.len)
}

/// If checkpoint tensor `src` is stored as 4-bit, checks its tensors against the expected
/// `[N, K]` shape (without reading data) and returns their total bytes; `None` when `src` is
/// an ordinary tensor. `matrix` says whether the model may use a 4-bit weight there.
pub fn check<R: TensorIndex + ?Sized>(
    reader: &R,
    format: Option<Q4Format>,
    src: &str,
    shape: &[usize],
    matrix: bool,
) -> Result<Option<u64>> {
    let packed = format!("{src}{SUFFIX_PACKED}");
    if reader.tensor(&packed).is_none() {
        return Ok(None);
    }
    let Some(f) = format else {
        return Err(Error::Tensor {
            name: packed,
            message: format!("is 4-bit but the checkpoint has no `{META_QUANT}` metadata"),
        });
    };
    if !matrix || shape.len() != 2 {
        return Err(Error::Tensor {
            name: packed,
            message: format!(
                "is 4-bit, but this weight ({shape:?}) is not a linear weight or embedding table; only those can \
                 be 4-bit (quantize again without it)"
            ),
        });
    }
    let (n, k) = (shape[0], shape[1]);
    if !f.fits(k) {
        return Err(Error::Tensor {
            name: packed,
            message: format!(
                "is 4-bit, but K = {k} is not a multiple of 8 and of the group size {}",
                f.group
            ),
        });
    }
    let ng = k / f.group();
    let mut bytes = check_entry(reader, &packed, StDType::U32, &[n, k / 8])?;
    bytes += check_entry(reader, &format!("{src}{SUFFIX_SCALES}"), StDType::F16, &[n, ng])?;
    let offsets = format!("{src}{SUFFIX_OFFSETS}");
    if f.asym() {
        bytes += check_entry(reader, &offsets, StDType::F16, &[n, ng])?;
    } else if reader.tensor(&offsets).is_some() {
        return Err(Error::Tensor {
            name: offsets,
            message: "is present but the checkpoint says q4_sym (offsets belong to q4_asym)".into(),
        });
    }
    Ok(Some(bytes))
}

fn halves(bytes: &[u8]) -> Vec<u16> {
    bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect()
}

/// Reads a 4-bit weight (after [`check`] said it is one): its packed words, scales and
/// offsets as stored, checked for non-finite scales.
pub fn read<S: ByteSource>(
    reader: &mut CheckpointReader<S>,
    f: Q4Format,
    src: &str,
    shape: &[usize],
) -> Result<Tensor> {
    let packed_name = format!("{src}{SUFFIX_PACKED}");
    let packed = reader.read_raw(&packed_name)?;
    let scales = reader.read_raw(&format!("{src}{SUFFIX_SCALES}"))?;
    let offsets = if f.asym() {
        Some(reader.read_raw(&format!("{src}{SUFFIX_OFFSETS}"))?)
    } else {
        None
    };
    from_raw(f, src, shape, &packed, &scales, offsets.as_deref())
}

/// A 4-bit weight from the raw little-endian bytes of its `.q4`, `.q4_scales` and (q4_asym)
/// `.q4_offsets` tensors, after [`check`] accepted their headers; non-finite scales or offsets
/// are errors. Shared by [`read`] and the streaming loader.
pub fn from_raw(
    f: Q4Format,
    src: &str,
    shape: &[usize],
    packed: &[u8],
    scales: &[u8],
    offsets: Option<&[u8]>,
) -> Result<Tensor> {
    let packed_name = format!("{src}{SUFFIX_PACKED}");
    let packed: Vec<u32> = packed
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let scales_name = format!("{src}{SUFFIX_SCALES}");
    let scales = halves(scales);
    let offsets_name = format!("{src}{SUFFIX_OFFSETS}");
    let offsets = match (f.asym(), offsets) {
        (true, Some(o)) => halves(o),
        (true, None) => {
            return Err(Error::Tensor {
                name: offsets_name,
                message: "is missing; q4_asym weights need offsets".into(),
            })
        }
        (false, _) => Vec::new(),
    };
    for (name, v) in [(&scales_name, &scales), (&offsets_name, &offsets)] {
        check_finite(name, v.iter().copied())?;
    }
    Tensor::q4(
        shape,
        f,
        Q4Data {
            packed,
            scales,
            offsets,
        },
    )
    .map_err(|e| Error::Tensor {
        name: packed_name,
        message: e.to_string(),
    })
}

/// Checks raw little-endian f16 scales or offsets (a whole tensor or a piece of one, as the
/// streaming loader gets them) for inf or NaN: an error naming tensor `name`.
pub fn check_halves(name: &str, bytes: &[u8]) -> Result<()> {
    check_finite(name, bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]])))
}

fn check_finite(name: &str, mut halves: impl Iterator<Item = u16>) -> Result<()> {
    // An all-ones f16 exponent is inf or NaN.
    if halves.any(|h| h & 0x7C00 == 0x7C00) {
        return Err(Error::Tensor {
            name: name.to_string(),
            message: "holds inf or NaN; the quantized checkpoint is corrupt".into(),
        });
    }
    Ok(())
}

/// Rows `first .. first + rows` of a 4-bit weight (a piece of a fused qkv weight).
pub fn take_rows(t: &Tensor, first: usize, rows: usize) -> Result<Tensor> {
    let (pinhole_core::tensor::Data::Q4(d), pinhole_core::DType::Q4(f)) = (&t.data, t.dtype) else {
        return Err(Error::Request("take_rows: not a 4-bit tensor".into()));
    };
    let k = t.shape[1];
    if first + rows > t.shape[0] {
        return Err(Error::Request(format!(
            "rows {first}..{} outside {:?}",
            first + rows,
            t.shape
        )));
    }
    let (wpr, gpr) = (k / 8, k / f.group());
    let offsets = if f.asym() {
        d.offsets[first * gpr..(first + rows) * gpr].to_vec()
    } else {
        Vec::new()
    };
    let part = Q4Data {
        packed: d.packed[first * wpr..(first + rows) * wpr].to_vec(),
        scales: d.scales[first * gpr..(first + rows) * gpr].to_vec(),
        offsets,
    };
    Ok(Tensor::q4(&[rows, k], f, part)?)
}
