//! A streaming safetensors reader.
//!
//! A safetensors file is an 8-byte little-endian header length `N`, `N` bytes of JSON
//! (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {..}}`) and the
//! tensor bytes, with offsets relative to the first byte after the header.
//!
//! Only the header is ever held in memory: [`SafetensorsFile`] reads one tensor's bytes on
//! request (seek + read through a [`ByteSource`]) and converts them to a host [`Tensor`], in
//! chunks, so reading a tensor needs memory for that tensor's values and little more.
//! [`crate::hf::checkpoint::CheckpointReader`] puts one or several files (a sharded checkpoint
//! with its `model.safetensors.index.json`) behind a single name → tensor lookup.
//!
//! Headers are validated before anything is read: the header length against the file size,
//! every dtype × shape against its byte range, ranges inside the data area and not overlapping,
//! names unique. Errors name the file and tensor and say what to do.
//!
//! The parsing functions ([`Header::parse`], [`decode_tensor`]) work on bytes, so a browser can
//! fetch a header with a range request and parse it; the `std::fs` helper [`FileSource`] is not
//! compiled for wasm32.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

use crate::error::{Error, Result};
use crate::tensor::{round_f16, DType, Tensor};

/// Largest header accepted (the same limit as the reference implementation: 100 MB).
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// Bytes converted per read when decoding a tensor (bounds the extra memory of a read).
const CHUNK_BYTES: usize = 1 << 20;

/// The dtype of a tensor as the file stores it. Every dtype of the format is recognised (so
/// headers validate and list); [`SafetensorsFile::read`] converts the float and integer dtypes
/// pinhole uses and answers [`Error::Unsupported`] for the rest (raw bytes are still available
/// through [`SafetensorsFile::read_raw`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StDType {
    Bool,
    U8,
    I8,
    F8E4M3,
    F8E5M2,
    U16,
    I16,
    F16,
    BF16,
    U32,
    I32,
    F32,
    U64,
    I64,
    F64,
    /// A dtype string this reader does not know. It lists, but cannot be validated or read.
    Other(String),
}

impl StDType {
    pub fn parse(s: &str) -> StDType {
        match s {
            "BOOL" => StDType::Bool,
            "U8" => StDType::U8,
            "I8" => StDType::I8,
            "F8_E4M3" => StDType::F8E4M3,
            "F8_E5M2" => StDType::F8E5M2,
            "U16" => StDType::U16,
            "I16" => StDType::I16,
            "F16" => StDType::F16,
            "BF16" => StDType::BF16,
            "U32" => StDType::U32,
            "I32" => StDType::I32,
            "F32" => StDType::F32,
            "U64" => StDType::U64,
            "I64" => StDType::I64,
            "F64" => StDType::F64,
            other => StDType::Other(other.to_string()),
        }
    }

    /// The name as written in the header (`"BF16"`, ...).
    pub fn name(&self) -> &str {
        match self {
            StDType::Bool => "BOOL",
            StDType::U8 => "U8",
            StDType::I8 => "I8",
            StDType::F8E4M3 => "F8_E4M3",
            StDType::F8E5M2 => "F8_E5M2",
            StDType::U16 => "U16",
            StDType::I16 => "I16",
            StDType::F16 => "F16",
            StDType::BF16 => "BF16",
            StDType::U32 => "U32",
            StDType::I32 => "I32",
            StDType::F32 => "F32",
            StDType::U64 => "U64",
            StDType::I64 => "I64",
            StDType::F64 => "F64",
            StDType::Other(s) => s,
        }
    }

    /// Bytes per element; `None` for an unknown dtype.
    pub fn size(&self) -> Option<usize> {
        Some(match self {
            StDType::Bool | StDType::U8 | StDType::I8 | StDType::F8E4M3 | StDType::F8E5M2 => 1,
            StDType::U16 | StDType::I16 | StDType::F16 | StDType::BF16 => 2,
            StDType::U32 | StDType::I32 | StDType::F32 => 4,
            StDType::U64 | StDType::I64 | StDType::F64 => 8,
            StDType::Other(_) => return None,
        })
    }

    /// True for the float dtypes [`SafetensorsFile::read`] converts (F32, F16, BF16).
    pub fn is_supported_float(&self) -> bool {
        matches!(self, StDType::F32 | StDType::F16 | StDType::BF16)
    }

    /// True for the integer dtypes [`SafetensorsFile::read`] converts to u32 (U8, U32, I32, I64).
    pub fn is_supported_int(&self) -> bool {
        matches!(self, StDType::U8 | StDType::U32 | StDType::I32 | StDType::I64)
    }
}

impl fmt::Display for StDType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One tensor of a header.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub dtype: StDType,
    pub shape: Vec<usize>,
    /// Absolute byte offset of the tensor's data in its file.
    pub start: u64,
    /// Length of the tensor's data in bytes.
    pub len: u64,
}

impl TensorInfo {
    /// Number of elements (the header check guarantees it fits in usize).
    pub fn numel(&self) -> usize {
        self.shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .unwrap_or(usize::MAX)
    }
}

/// A parsed and validated safetensors header.
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    /// The file name used in error messages.
    pub file: String,
    /// `8 + N`: where the data area starts.
    pub data_start: u64,
    /// The whole file's length, as the header was validated against.
    pub file_len: u64,
    /// Tensors in order of their data (which is the order to read them in for sequential I/O).
    pub tensors: Vec<TensorInfo>,
    /// The `__metadata__` entries (string values only; others are skipped).
    pub metadata: BTreeMap<String, String>,
    index: HashMap<String, usize>,
}

fn bad(file: &str, detail: impl fmt::Display) -> Error {
    Error::Invalid(format!(
        "safetensors file {file}: {detail}; the file is corrupt or not a safetensors file: \
         download it again"
    ))
}

impl Header {
    /// Reads the header length from the first 8 bytes of a file of `file_len` bytes and checks
    /// that it fits the file and the [`MAX_HEADER_LEN`] limit.
    pub fn header_len(prefix: &[u8], file_len: u64, file: &str) -> Result<u64> {
        if file_len < 8 || prefix.len() < 8 {
            return Err(bad(
                file,
                format!(
                    "it is {} bytes long, but a safetensors file starts with an 8-byte header \
                     length",
                    file_len.min(prefix.len() as u64)
                ),
            ));
        }
        let mut b = [0u8; 8];
        b.copy_from_slice(&prefix[..8]);
        let n = u64::from_le_bytes(b);
        if n < 2 {
            return Err(bad(
                file,
                format!("the header length is {n}; a header is at least `{{}}`"),
            ));
        }
        if n > MAX_HEADER_LEN {
            return Err(bad(
                file,
                format!("the header length is {n} bytes, over the limit of {MAX_HEADER_LEN} bytes"),
            ));
        }
        if n > file_len - 8 {
            return Err(bad(
                file,
                format!(
                    "the header length is {n} bytes but only {} bytes follow the length \
                     (truncated download?)",
                    file_len - 8
                ),
            ));
        }
        Ok(n)
    }

    /// Parses and validates the `N` header bytes (the JSON after the 8-byte length) of a file of
    /// `file_len` bytes in total.
    pub fn parse(json: &[u8], file_len: u64, file: &str) -> Result<Header> {
        let n = json.len() as u64;
        let data_start = 8u64.checked_add(n).filter(|&s| s <= file_len).ok_or_else(|| {
            bad(
                file,
                format!("a {n}-byte header does not fit in a {file_len}-byte file"),
            )
        })?;
        let data_len = file_len - data_start;
        let raw: RawHeader =
            serde_json::from_slice(json).map_err(|e| bad(file, format!("the header is not valid JSON: {e}")))?;

        let mut seen = HashSet::new();
        let mut tensors = Vec::new();
        let mut metadata = BTreeMap::new();
        for (name, value) in raw.0 {
            if !seen.insert(name.clone()) {
                return Err(bad(file, format!("the header lists `{name}` twice")));
            }
            if name == "__metadata__" {
                let obj = value
                    .as_object()
                    .ok_or_else(|| bad(file, "`__metadata__` must be an object of strings".to_string()))?;
                for (k, v) in obj {
                    if let Some(s) = v.as_str() {
                        metadata.insert(k.clone(), s.to_string());
                    }
                }
                continue;
            }
            tensors.push(parse_entry(file, &name, &value, data_start, data_len)?);
        }

        tensors.sort_by_key(|t| (t.start, t.len));
        let mut prev: Option<&TensorInfo> = None;
        for t in tensors.iter().filter(|t| t.len > 0) {
            if let Some(p) = prev {
                if t.start < p.start + p.len {
                    return Err(bad(
                        file,
                        format!(
                            "tensors `{}` (bytes {}..{}) and `{}` (bytes {}..{}) overlap",
                            p.name,
                            p.start - data_start,
                            p.start + p.len - data_start,
                            t.name,
                            t.start - data_start,
                            t.start + t.len - data_start
                        ),
                    ));
                }
            }
            prev = Some(t);
        }
        let index = tensors.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        Ok(Header {
            file: file.to_string(),
            data_start,
            file_len,
            tensors,
            metadata,
            index,
        })
    }

    /// Parses the header at the start of `bytes` (the whole file, or at least its first
    /// `8 + N` bytes when `file_len` is given separately through [`Header::parse`]).
    pub fn from_bytes(bytes: &[u8], file: &str) -> Result<Header> {
        let n = Header::header_len(bytes, bytes.len() as u64, file)?;
        // header_len checked 8 + n <= bytes.len().
        let end = 8 + n as usize;
        Header::parse(&bytes[8..end], bytes.len() as u64, file)
    }

    pub fn get(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).and_then(|&i| self.tensors.get(i))
    }
}

fn parse_entry(
    file: &str,
    name: &str,
    value: &serde_json::Value,
    data_start: u64,
    data_len: u64,
) -> Result<TensorInfo> {
    let obj = value
        .as_object()
        .ok_or_else(|| bad(file, format!("the entry of tensor `{name}` is not an object: {value}")))?;
    let dtype = obj
        .get("dtype")
        .and_then(|d| d.as_str())
        .map(StDType::parse)
        .ok_or_else(|| bad(file, format!("tensor `{name}` has no string `dtype`")))?;
    let shape_v = obj
        .get("shape")
        .and_then(|s| s.as_array())
        .ok_or_else(|| bad(file, format!("tensor `{name}` has no `shape` array")))?;
    let mut shape = Vec::with_capacity(shape_v.len());
    for d in shape_v {
        let d = d.as_u64().and_then(|d| usize::try_from(d).ok()).ok_or_else(|| {
            bad(
                file,
                format!("tensor `{name}` has a shape entry that is not a size: {d}"),
            )
        })?;
        shape.push(d);
    }
    if shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).is_none() {
        return Err(Error::Unsupported(format!(
            "safetensors file {file}: tensor `{name}` has shape {shape:?}, more elements than \
             this platform can address"
        )));
    }
    let offs = obj
        .get("data_offsets")
        .and_then(|o| o.as_array())
        .filter(|o| o.len() == 2)
        .and_then(|o| Some((o[0].as_u64()?, o[1].as_u64()?)))
        .ok_or_else(|| {
            bad(
                file,
                format!("tensor `{name}` needs `data_offsets` as two non-negative integers"),
            )
        })?;
    let (begin, end) = offs;
    if begin > end {
        return Err(bad(
            file,
            format!("tensor `{name}` has data_offsets [{begin}, {end}] that end before they begin"),
        ));
    }
    if end > data_len {
        return Err(bad(
            file,
            format!(
                "tensor `{name}` has data_offsets [{begin}, {end}] past the end of the data area \
                 ({data_len} bytes; truncated download?)"
            ),
        ));
    }
    if let Some(size) = dtype.size() {
        let expect = shape.iter().try_fold(size as u64, |acc, &d| acc.checked_mul(d as u64));
        if expect != Some(end - begin) {
            return Err(bad(
                file,
                format!(
                    "tensor `{name}` is {dtype} {shape:?}, which needs {} bytes, but its \
                     data_offsets [{begin}, {end}] hold {} bytes",
                    expect.map_or_else(|| "more than 2^64".to_string(), |e| e.to_string()),
                    end - begin
                ),
            ));
        }
    }
    Ok(TensorInfo {
        name: name.to_string(),
        dtype,
        shape,
        start: data_start + begin,
        len: end - begin,
    })
}

/// The header's top-level entries in document order (serde_json's map would drop duplicates
/// silently and reorder).
struct RawHeader(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for RawHeader {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawHeader;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object of tensor entries")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> std::result::Result<RawHeader, A::Error> {
                let mut v = Vec::new();
                while let Some(e) = m.next_entry::<String, serde_json::Value>()? {
                    v.push(e);
                }
                Ok(RawHeader(v))
            }
        }
        d.deserialize_map(V)
    }
}

/// Random access to the bytes of one file: a file on disk, an in-memory buffer, or anything a
/// host can seek in.
pub trait ByteSource {
    /// Total length in bytes.
    fn byte_len(&mut self) -> std::io::Result<u64>;
    /// Fills `buf` with the bytes at `offset ..`, failing if they are not all there.
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

fn slice_read(data: &[u8], offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    let start = usize::try_from(offset).ok();
    let range = start.and_then(|s| Some(s..s.checked_add(buf.len())?));
    match range.and_then(|r| data.get(r)) {
        Some(src) => {
            buf.copy_from_slice(src);
            Ok(())
        }
        None => Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!(
                "read of {} bytes at offset {offset} is past the end ({} bytes)",
                buf.len(),
                data.len()
            ),
        )),
    }
}

impl ByteSource for Vec<u8> {
    fn byte_len(&mut self) -> std::io::Result<u64> {
        Ok(self.len() as u64)
    }
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        slice_read(self, offset, buf)
    }
}

impl ByteSource for &[u8] {
    fn byte_len(&mut self) -> std::io::Result<u64> {
        Ok(self.len() as u64)
    }
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        slice_read(self, offset, buf)
    }
}

/// A file on disk read with seek + read (not on wasm32).
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug)]
pub struct FileSource {
    file: std::fs::File,
}

#[cfg(not(target_arch = "wasm32"))]
impl FileSource {
    pub fn open(path: &std::path::Path) -> Result<FileSource> {
        let file = std::fs::File::open(path).map_err(|e| {
            Error::Invalid(format!(
                "cannot open {}: {e}; check the path and that the file was downloaded",
                path.display()
            ))
        })?;
        Ok(FileSource { file })
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl ByteSource for FileSource {
    fn byte_len(&mut self) -> std::io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        use std::io::{Read, Seek, SeekFrom};
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.read_exact(buf)
    }
}

fn io_err(file: &str, what: &str, e: std::io::Error) -> Error {
    Error::Invalid(format!(
        "safetensors file {file}: cannot read {what}: {e}; the file may be truncated or \
         unreadable: download it again"
    ))
}

/// One safetensors file: its validated header and the source to read tensors from.
pub struct SafetensorsFile<S> {
    source: S,
    header: Header,
}

impl<S> fmt::Debug for SafetensorsFile<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SafetensorsFile")
            .field("file", &self.header.file)
            .field("tensors", &self.header.tensors.len())
            .finish()
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl SafetensorsFile<FileSource> {
    /// Opens a file on disk and reads (only) its header.
    pub fn open_path(path: impl AsRef<std::path::Path>) -> Result<Self> {
        let path = path.as_ref();
        SafetensorsFile::open(FileSource::open(path)?, &path.display().to_string())
    }
}

impl<S: ByteSource> SafetensorsFile<S> {
    /// Reads and validates the header of `source`; `file` names it in errors.
    pub fn open(mut source: S, file: &str) -> Result<Self> {
        let file_len = source.byte_len().map_err(|e| io_err(file, "the file size", e))?;
        let mut prefix = [0u8; 8];
        if file_len >= 8 {
            source
                .read_exact_at(0, &mut prefix)
                .map_err(|e| io_err(file, "the header length", e))?;
        }
        let n = Header::header_len(&prefix[..file_len.min(8) as usize], file_len, file)?;
        // n <= MAX_HEADER_LEN, so it fits in usize on every target.
        let mut json = vec![0u8; n as usize];
        source
            .read_exact_at(8, &mut json)
            .map_err(|e| io_err(file, "the header", e))?;
        let header = Header::parse(&json, file_len, file)?;
        Ok(SafetensorsFile { source, header })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn tensors(&self) -> &[TensorInfo] {
        &self.header.tensors
    }

    pub fn info(&self, name: &str) -> Result<&TensorInfo> {
        self.header
            .get(name)
            .ok_or_else(|| missing_tensor(name, &self.header.file, self.header.tensors.iter()))
    }

    /// The tensor's bytes exactly as stored (little endian), e.g. for quantized weights.
    pub fn read_raw(&mut self, name: &str) -> Result<Vec<u8>> {
        let info = self.info(name)?.clone();
        let len = usize::try_from(info.len).map_err(|_| {
            Error::Unsupported(format!(
                "tensor `{name}` in {} is {} bytes, more than this platform can address",
                self.header.file, info.len
            ))
        })?;
        let mut buf = vec![0u8; len];
        self.source
            .read_exact_at(info.start, &mut buf)
            .map_err(|e| io_err(&self.header.file, &format!("tensor `{name}`"), e))?;
        Ok(buf)
    }

    /// Reads one tensor in its natural host form: F32 and BF16 as an f32 tensor (BF16 values
    /// are exact in f32), F16 as an f16 tensor (exact), U8/U32/I32/I64 as a u32 tensor (values
    /// must fit in u32). Other dtypes answer [`Error::Unsupported`].
    pub fn read(&mut self, name: &str) -> Result<Tensor> {
        let target = match self.info(name)?.dtype {
            StDType::F16 => DType::F16,
            StDType::F32 | StDType::BF16 => DType::F32,
            _ => DType::U32,
        };
        self.read_as(name, target)
    }

    /// Reads one tensor converted to `target`:
    /// * `F32`: any float dtype, exactly.
    /// * `F16`: any float dtype, rounded to f16 (as [`Tensor::f16`]); a finite value too large
    ///   for f16 is an error rather than a silent infinity.
    /// * `U32`: U8/U32/I32/I64 whose values fit in u32.
    pub fn read_as(&mut self, name: &str, target: DType) -> Result<Tensor> {
        let info = self.info(name)?.clone();
        let file = self.header.file.clone();
        let convertible = match target {
            DType::F32 | DType::F16 => info.dtype.is_supported_float(),
            DType::U32 => info.dtype.is_supported_int(),
            DType::BF16 | DType::Q4(_) => false,
        };
        if !convertible {
            return Err(Error::Unsupported(format!(
                "tensor `{name}` in {file} is {}; pinhole reads F32/F16/BF16 as f32 or f16 and \
                 U8/U32/I32/I64 as u32, not {} as {}{}",
                info.dtype,
                info.dtype,
                target.name(),
                if info.dtype.is_supported_float() {
                    " (ask for F32 or F16)"
                } else if info.dtype.is_supported_int() {
                    " (ask for U32)"
                } else {
                    " (use read_raw for its bytes)"
                }
            )));
        }
        let size = info.dtype.size().unwrap_or(1);
        let numel = info.numel();
        let mut floats: Vec<f32> = Vec::new();
        let mut ints: Vec<u32> = Vec::new();
        if target == DType::U32 {
            ints.reserve_exact(numel);
        } else {
            floats.reserve_exact(numel);
        }
        let total = info.len;
        let step = (CHUNK_BYTES / size * size) as u64;
        let mut buf = vec![0u8; (total.min(step)) as usize];
        let mut done = 0u64;
        while done < total {
            let n = (total - done).min(step) as usize;
            let chunk = &mut buf[..n];
            self.source
                .read_exact_at(info.start + done, chunk)
                .map_err(|e| io_err(&file, &format!("tensor `{name}`"), e))?;
            if target == DType::U32 {
                decode_ints(&info.dtype, chunk, &mut ints, name, &file)?;
            } else {
                decode_floats(&info.dtype, chunk, &mut floats);
            }
            done += n as u64;
        }
        match target {
            DType::U32 => Tensor::u32(&info.shape, ints),
            DType::F32 => Tensor::f32(&info.shape, floats),
            _ => {
                check_f16_range(&floats, name, &file)?;
                Tensor::f16(&info.shape, floats)
            }
        }
    }
}

/// Converts the bytes of a whole tensor (as [`SafetensorsFile::read_raw`] returns them, or as a
/// browser fetched them) to a host tensor, as [`SafetensorsFile::read_as`] does.
pub fn decode_tensor(info: &TensorInfo, bytes: &[u8], target: DType) -> Result<Tensor> {
    let mut file = SafetensorsFile {
        source: bytes,
        header: Header {
            file: "(in-memory tensor bytes)".to_string(),
            data_start: 0,
            file_len: bytes.len() as u64,
            tensors: vec![TensorInfo {
                start: 0,
                ..info.clone()
            }],
            metadata: BTreeMap::new(),
            index: [(info.name.clone(), 0)].into_iter().collect(),
        },
    };
    if bytes.len() as u64 != info.len {
        return Err(Error::Invalid(format!(
            "tensor `{}` needs {} bytes but {} were given",
            info.name,
            info.len,
            bytes.len()
        )));
    }
    file.read_as(&info.name, target)
}

/// Appends the GPU storage bytes of float elements stored as `dtype` (F32/F16/BF16) in
/// `bytes` (whole elements) to `out`, converted to `target` (F32 words or F16 halves): the
/// same bits as [`decode_tensor`] followed by [`Tensor::to_storage_bytes`], without the f32
/// copy of the whole tensor in between, so a tensor can be converted piece by piece as it
/// arrives. A finite value outside the f16 range is an error (as in
/// [`SafetensorsFile::read_as`]) naming tensor `name`.
pub fn encode_storage(dtype: &StDType, bytes: &[u8], target: DType, out: &mut Vec<u8>, name: &str) -> Result<()> {
    let size = dtype.size().unwrap_or(1);
    let convertible = dtype.is_supported_float() && matches!(target, DType::F32 | DType::F16);
    if !convertible || !bytes.len().is_multiple_of(size) {
        return Err(Error::Unsupported(format!(
            "tensor `{name}` is {dtype}; pinhole converts F32/F16/BF16 to f32 or f16 storage, \
             not {dtype} to {} ({} bytes)",
            target.name(),
            bytes.len()
        )));
    }
    out.reserve(bytes.len() / size * target.size());
    match (dtype, target) {
        // Same bits in and out.
        (StDType::F32, DType::F32) | (StDType::F16, DType::F16) => out.extend_from_slice(bytes),
        (StDType::F16, _) => {
            for c in bytes.chunks_exact(2) {
                let v = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        (StDType::BF16, DType::F32) => {
            for c in bytes.chunks_exact(2) {
                out.extend_from_slice(&[0, 0, c[0], c[1]]);
            }
        }
        (_, DType::F32) => {}
        (_, _) => {
            let from = |c: &[u8]| match dtype {
                StDType::BF16 => half::bf16::from_le_bytes([c[0], c[1]]).to_f32(),
                _ => f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            };
            for c in bytes.chunks_exact(size) {
                let v = from(c);
                let h = half::f16::from_f32(v);
                if v.is_finite() && h.is_infinite() {
                    return Err(Error::Unsupported(format!(
                        "tensor `{name}` holds {v}, outside the f16 range (±65504); load it as F32"
                    )));
                }
                out.extend_from_slice(&h.to_le_bytes());
            }
        }
    }
    Ok(())
}

fn decode_floats(dtype: &StDType, bytes: &[u8], out: &mut Vec<f32>) {
    match dtype {
        StDType::F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
        StDType::F16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()),
        ),
        StDType::BF16 => out.extend(
            bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32()),
        ),
        _ => {}
    }
}

fn decode_ints(dtype: &StDType, bytes: &[u8], out: &mut Vec<u32>, name: &str, file: &str) -> Result<()> {
    let range_err = |v: i128| {
        Error::Unsupported(format!(
            "tensor `{name}` in {file} ({dtype}) holds {v}, which does not fit in u32; read it \
             with read_raw instead"
        ))
    };
    match dtype {
        StDType::U8 => out.extend(bytes.iter().map(|&b| b as u32)),
        StDType::U32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
        ),
        StDType::I32 => {
            for c in bytes.chunks_exact(4) {
                let v = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                out.push(u32::try_from(v).map_err(|_| range_err(v as i128))?);
            }
        }
        StDType::I64 => {
            for c in bytes.chunks_exact(8) {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                let v = i64::from_le_bytes(b);
                out.push(u32::try_from(v).map_err(|_| range_err(v as i128))?);
            }
        }
        _ => {}
    }
    Ok(())
}

fn check_f16_range(values: &[f32], name: &str, file: &str) -> Result<()> {
    if let Some(&v) = values.iter().find(|v| v.is_finite() && round_f16(**v).is_infinite()) {
        return Err(Error::Unsupported(format!(
            "tensor `{name}` in {file} holds {v}, outside the f16 range (±65504); load it as F32"
        )));
    }
    Ok(())
}

pub(crate) fn missing_tensor<'a>(name: &str, place: &str, all: impl Iterator<Item = &'a TensorInfo>) -> Error {
    // Suggest the names sharing the longest prefix with the one asked for.
    let mut best: Vec<(usize, &str)> = all
        .map(|t| {
            let common = t.name.bytes().zip(name.bytes()).take_while(|(a, b)| a == b).count();
            (common, t.name.as_str())
        })
        .collect();
    best.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(b.1)));
    let near: Vec<&str> = best.iter().take(3).map(|b| b.1).collect();
    Error::Invalid(format!(
        "tensor `{name}` is not in {place}{}; check the model type and tensor naming of the \
         checkpoint",
        if near.is_empty() {
            " (it holds no tensors)".to_string()
        } else {
            format!(" (nearest names: {})", near.join(", "))
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file built by hand: header JSON + data bytes.
    fn file(json: &str, data: &[u8]) -> Vec<u8> {
        let mut v = (json.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(json.as_bytes());
        v.extend_from_slice(data);
        v
    }

    fn open(bytes: Vec<u8>) -> Result<SafetensorsFile<Vec<u8>>> {
        SafetensorsFile::open(bytes, "test.safetensors")
    }

    fn err_msg<T: fmt::Debug>(r: Result<T>) -> String {
        r.expect_err("expected an error").to_string()
    }

    #[test]
    fn dtype_names_round_trip() {
        for s in [
            "BOOL", "U8", "I8", "F8_E4M3", "F8_E5M2", "U16", "I16", "F16", "BF16", "U32", "I32", "F32", "U64", "I64",
            "F64",
        ] {
            let d = StDType::parse(s);
            assert_eq!(d.name(), s);
            assert!(d.size().is_some());
        }
        assert_eq!(StDType::parse("F4"), StDType::Other("F4".into()));
        assert_eq!(StDType::parse("F4").size(), None);
    }

    #[test]
    fn encode_storage_matches_decode_then_storage_bytes() {
        // Every F32/F16/BF16 → f32/f16 pair, on random values, the edges of f16 (near max, subnormals,
        // zeros of both signs, infinities) and an odd count, in pieces that split the data.
        let mut rng = crate::rng::Rng::new(7);
        let mut vals: Vec<f32> = (0..1001).map(|_| (rng.next_f32() - 0.5) * 8.0).collect();
        vals.extend([
            65000.0,
            -65000.0,
            6.0e-8,
            -3.0e-6,
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            1e-3,
        ]);
        for (st, size) in [(StDType::F32, 4), (StDType::F16, 2), (StDType::BF16, 2)] {
            let bytes: Vec<u8> = vals
                .iter()
                .flat_map(|&v| match st {
                    StDType::F32 => v.to_le_bytes().to_vec(),
                    StDType::F16 => half::f16::from_f32(v).to_le_bytes().to_vec(),
                    _ => half::bf16::from_f32(v).to_le_bytes().to_vec(),
                })
                .collect();
            let info = TensorInfo {
                name: "t".into(),
                dtype: st.clone(),
                shape: vec![vals.len()],
                start: 0,
                len: bytes.len() as u64,
            };
            for target in [DType::F32, DType::F16] {
                let want = decode_tensor(&info, &bytes, target).unwrap().to_storage_bytes();
                let mut got = Vec::new();
                for piece in bytes.chunks(size * 37) {
                    encode_storage(&st, piece, target, &mut got, "t").unwrap();
                }
                while !got.len().is_multiple_of(4) {
                    got.push(0);
                }
                assert!(got == want, "{st} -> {}", target.name());
            }
        }
        // Out of the f16 range: an error naming the tensor, as read_as gives.
        let big = 1.0e6f32.to_le_bytes();
        let e = encode_storage(&StDType::F32, &big, DType::F16, &mut Vec::new(), "w.big").unwrap_err();
        assert!(
            e.to_string().contains("w.big") && e.to_string().contains("f16 range"),
            "{e}"
        );
        assert!(encode_storage(&StDType::I32, &big, DType::F32, &mut Vec::new(), "ints").is_err());
        assert!(encode_storage(&StDType::F32, &big[..3], DType::F32, &mut Vec::new(), "odd").is_err());
    }

    #[test]
    fn reads_a_hand_built_file() {
        let mut data = Vec::new();
        for x in [1.0f32, -2.0] {
            data.extend_from_slice(&x.to_le_bytes());
        }
        for x in [0.5f32, 3.0] {
            data.extend_from_slice(&half::bf16::from_f32(x).to_le_bytes());
        }
        let json = r#"{"__metadata__":{"format":"pt"},"b":{"dtype":"BF16","shape":[2],"data_offsets":[8,12]},"a":{"dtype":"F32","shape":[2,1],"data_offsets":[0,8]}}  "#;
        let mut f = open(file(json, &data)).unwrap();
        assert_eq!(f.header().metadata.get("format").map(|s| s.as_str()), Some("pt"));
        let names: Vec<&str> = f.tensors().iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a", "b"], "tensors are listed in data order");
        let a = f.read("a").unwrap();
        assert_eq!(a.shape, vec![2, 1]);
        assert_eq!(a.as_f32().unwrap(), &[1.0, -2.0]);
        let b = f.read("b").unwrap();
        assert_eq!(b.dtype, DType::F32);
        assert_eq!(b.as_f32().unwrap(), &[0.5, 3.0]);
        assert_eq!(f.read_raw("b").unwrap(), data[8..12].to_vec());
        let info = f.info("b").unwrap().clone();
        let t = decode_tensor(&info, &data[8..12], DType::F16).unwrap();
        assert_eq!(t.dtype, DType::F16);
        assert_eq!(t.as_f32().unwrap(), &[0.5, 3.0]);
    }

    #[test]
    fn header_errors_are_specific() {
        // Too short for the length prefix.
        assert!(err_msg(open(vec![1, 2, 3])).contains("8-byte header length"));
        // Length larger than the file.
        let mut v = file("{}", &[]);
        v[0] = 200;
        assert!(err_msg(open(v)).contains("truncated"));
        // Length over the limit.
        let mut v = file("{}", &[]);
        v[..8].copy_from_slice(&(MAX_HEADER_LEN + 1).to_le_bytes());
        assert!(err_msg(open(v)).contains("over the limit"));
        // Not JSON.
        assert!(err_msg(open(file("{\"a\":", &[]))).contains("not valid JSON"));
        assert!(err_msg(open(file("[1, 2]", &[]))).contains("not valid JSON"));
        // Duplicate name.
        let j = r#"{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}"#;
        assert!(err_msg(open(file(j, &[0, 0]))).contains("twice"));
        // Byte count does not match dtype × shape.
        let j = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#;
        let m = err_msg(open(file(j, &[0; 4])));
        assert!(m.contains("`a`") && m.contains("needs 8 bytes"), "{m}");
        // Offsets past the data (a truncated file).
        let j = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
        assert!(err_msg(open(file(j, &[0; 6]))).contains("past the end"));
        // Overlap.
        let j = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
        assert!(err_msg(open(file(j, &[0; 8]))).contains("overlap"));
        // Reversed offsets.
        let j = r#"{"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}}"#;
        assert!(err_msg(open(file(j, &[0; 8]))).contains("end before"));
        // Shape overflow.
        let j = r#"{"a":{"dtype":"F32","shape":[4611686018427387904, 2],"data_offsets":[0,8]}}"#;
        assert!(err_msg(open(file(j, &[0; 8]))).contains("more than 2^64"));
        let j = r#"{"a":{"dtype":"U8","shape":[18446744073709551615, 4],"data_offsets":[0,8]}}"#;
        assert!(err_msg(open(file(j, &[0; 8]))).contains("more elements"));
        // Missing fields.
        let j = r#"{"a":{"shape":[1],"data_offsets":[0,1]}}"#;
        assert!(err_msg(open(file(j, &[0]))).contains("dtype"));
        let j = r#"{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,1]}}"#;
        assert!(err_msg(open(file(j, &[0]))).contains("shape entry"));
    }

    #[test]
    fn missing_and_unsupported_tensors() {
        let j = r#"{"model.w":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"model.x":{"dtype":"I32","shape":[1],"data_offsets":[8,12]},"odd":{"dtype":"F4","shape":[3],"data_offsets":[12,14]}}"#;
        let mut data = vec![0u8; 14];
        data[8..12].copy_from_slice(&(-3i32).to_le_bytes());
        let mut f = open(file(j, &data)).unwrap();
        let m = err_msg(f.read("model.v"));
        assert!(m.contains("`model.v`") && m.contains("model.w"), "{m}");
        assert!(err_msg(f.read("model.w")).contains("F64"));
        assert!(err_msg(f.read("model.x")).contains("does not fit in u32"));
        assert!(err_msg(f.read_as("model.x", DType::F32)).contains("ask for U32"));
        assert!(err_msg(f.read("odd")).contains("read_raw"));
        assert_eq!(f.read_raw("odd").unwrap().len(), 2);
    }

    #[test]
    fn f16_overflow_is_an_error() {
        let j = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
        let mut data = Vec::new();
        data.extend_from_slice(&1.0f32.to_le_bytes());
        data.extend_from_slice(&70000.0f32.to_le_bytes());
        let mut f = open(file(j, &data)).unwrap();
        assert!(err_msg(f.read_as("a", DType::F16)).contains("f16 range"));
        assert_eq!(f.read("a").unwrap().as_f32().unwrap(), &[1.0, 70000.0]);
    }

    #[test]
    fn chunked_reads_cover_big_tensors() {
        // More than one CHUNK_BYTES of f16 data, with an odd element count.
        let n = CHUNK_BYTES / 2 * 3 + 7;
        let mut data = Vec::with_capacity(n * 2);
        for i in 0..n {
            data.extend_from_slice(&half::f16::from_f32((i % 2000) as f32).to_le_bytes());
        }
        let j = format!(
            r#"{{"w":{{"dtype":"F16","shape":[{n}],"data_offsets":[0,{}]}}}}"#,
            n * 2
        );
        let mut f = open(file(&j, &data)).unwrap();
        let t = f.read("w").unwrap();
        let v = t.as_f32().unwrap();
        assert_eq!(v.len(), n);
        assert!(v.iter().enumerate().all(|(i, &x)| x == (i % 2000) as f32));
    }
}
