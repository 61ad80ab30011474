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
    /// The `len` bytes at `offset` without a copy, where the source already has them in
    /// memory (a mapped file, a buffer); `None` when they are to be read with
    /// [`ByteSource::read_exact_at`] (or are not all there, which that then reports).
    fn bytes_at(&self, _offset: u64, _len: usize) -> Option<&[u8]> {
        None
    }
    /// A hint: `offset .. offset + len` is read next, in order (a mapped file starts reading
    /// it ahead, so the disk works while the caller converts what it has).
    fn will_read(&self, _offset: u64, _len: u64) {}
    /// A hint: `offset .. offset + len` has been used (a mapped file drops those pages from
    /// the process, so mapping a model does not keep a second copy of it resident; the OS
    /// page cache still has them).
    fn done_with(&self, _offset: u64, _len: u64) {}
}

fn slice_at(data: &[u8], offset: u64, len: usize) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    data.get(start..start.checked_add(len)?)
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
    fn bytes_at(&self, offset: u64, len: usize) -> Option<&[u8]> {
        slice_at(self, offset, len)
    }
}

impl ByteSource for &[u8] {
    fn byte_len(&mut self) -> std::io::Result<u64> {
        Ok(self.len() as u64)
    }
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        slice_read(self, offset, buf)
    }
    fn bytes_at(&self, offset: u64, len: usize) -> Option<&[u8]> {
        slice_at(self, offset, len)
    }
}

/// A file on disk (not on wasm32): mapped into memory where the platform allows it, so
/// tensors are converted straight from the OS page cache without being copied into a buffer
/// first; read with seek + read otherwise, or when the environment variable
/// `PINHOLE_NO_MMAP` is set.
///
/// A mapped file that another process truncates or rewrites while it is being loaded can
/// end this one (SIGBUS) or change the bytes read, as with every loader that maps files;
/// set `PINHOLE_NO_MMAP=1` where files may change under a running process.
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug)]
pub struct FileSource {
    file: std::fs::File,
    map: Option<memmap2::Mmap>,
}

#[cfg(not(target_arch = "wasm32"))]
impl FileSource {
    /// Opens `path`, mapped if the platform allows (see [`FileSource`]).
    pub fn open(path: &std::path::Path) -> Result<FileSource> {
        let mut s = FileSource::open_unmapped(path)?;
        if std::env::var_os("PINHOLE_NO_MMAP").is_none() {
            // SAFETY: a read-only private mapping; the only hazard is another process changing
            // the file while it is mapped (see the type's documentation). An empty file or a
            // platform that cannot map it leaves the reads.
            s.map = unsafe { memmap2::MmapOptions::new().map(&s.file) }.ok();
        }
        Ok(s)
    }

    /// Opens `path` to be read through buffers, never mapped.
    pub fn open_unmapped(path: &std::path::Path) -> Result<FileSource> {
        let file = std::fs::File::open(path).map_err(|e| {
            Error::Invalid(format!(
                "cannot open {}: {e}; check the path and that the file was downloaded",
                path.display()
            ))
        })?;
        Ok(FileSource { file, map: None })
    }

    /// Whether the file is mapped.
    pub fn is_mapped(&self) -> bool {
        self.map.is_some()
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl ByteSource for FileSource {
    fn byte_len(&mut self) -> std::io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        if let Some(b) = self.bytes_at(offset, buf.len()) {
            buf.copy_from_slice(b);
            return Ok(());
        }
        use std::io::{Read, Seek, SeekFrom};
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.read_exact(buf)
    }
    fn bytes_at(&self, offset: u64, len: usize) -> Option<&[u8]> {
        slice_at(self.map.as_deref()?, offset, len)
    }
    fn will_read(&self, offset: u64, len: u64) {
        if let (Some(m), Ok(o), Ok(n)) = (&self.map, usize::try_from(offset), usize::try_from(len)) {
            if o.checked_add(n).is_some_and(|end| end <= m.len()) {
                // Only a hint: a failure changes nothing but speed.
                let _ = m.advise_range(memmap2::Advice::WillNeed, o, n);
            }
        }
    }
    fn done_with(&self, offset: u64, len: u64) {
        #[cfg(unix)]
        if let (Some(m), Ok(o), Ok(n)) = (&self.map, usize::try_from(offset), usize::try_from(len)) {
            if o.checked_add(n).is_some_and(|end| end <= m.len()) {
                // SAFETY: the mapping is private and never written, so dropping its pages
                // only means a later access reads them from the file again (same bytes).
                let _ = unsafe { m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, o, n) };
            }
        }
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

    /// Calls `f` with the bytes of elements `elems` (flat indices) of tensor `name`, in order,
    /// in pieces of at most `piece` bytes (whole elements; at least one element): slices of
    /// the file itself where the source has it in memory (a mapped file: no copy), else read
    /// into `buf`, which is reused across pieces and calls. Only one piece is in memory at a
    /// time, however large the tensor.
    pub fn read_pieces<E: From<Error>>(
        &mut self,
        name: &str,
        elems: std::ops::Range<usize>,
        piece: usize,
        buf: &mut Vec<u8>,
        mut f: impl FnMut(&[u8]) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let info = self.info(name)?.clone();
        let file = &self.header.file;
        let Some(size) = info.dtype.size() else {
            return Err(Error::Unsupported(format!(
                "tensor `{name}` in {file} is {}, which has no whole-byte elements",
                info.dtype
            ))
            .into());
        };
        if elems.start > elems.end || elems.end > info.numel() {
            return Err(Error::Invalid(format!(
                "elements {elems:?} of tensor `{name}` in {file}: it has {}",
                info.numel()
            ))
            .into());
        }
        let step = (piece / size).max(1) * size;
        let mut at = info.start + (elems.start * size) as u64;
        let end = info.start + (elems.end * size) as u64;
        self.source.will_read(at, end - at);
        while at < end {
            let n = (end - at).min(step as u64) as usize;
            match self.source.bytes_at(at, n) {
                Some(b) => f(b)?,
                None => {
                    buf.resize(n, 0);
                    self.source
                        .read_exact_at(at, &mut buf[..n])
                        .map_err(|e| io_err(file, &format!("tensor `{name}`"), e))?;
                    f(&buf[..n])?;
                }
            }
            self.source.done_with(at, n as u64);
            at += n as u64;
        }
        Ok(())
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
/// [`SafetensorsFile::read_as`]) naming tensor `name`. See [`convert_storage`].
pub fn encode_storage(dtype: &StDType, bytes: &[u8], target: DType, out: &mut Vec<u8>, name: &str) -> Result<()> {
    let n = storage_len(dtype, bytes.len(), target, name)?;
    let old = out.len();
    out.resize(old + n, 0);
    convert_storage(dtype, bytes, target, &mut out[old..], name)
}

/// The storage bytes `src_len` bytes of `dtype` elements take as `target`, or the error
/// [`encode_storage`] gives for a pair it does not convert (or a partial element).
pub fn storage_len(dtype: &StDType, src_len: usize, target: DType, name: &str) -> Result<usize> {
    let size = dtype.size().unwrap_or(1);
    let convertible = dtype.is_supported_float() && matches!(target, DType::F32 | DType::F16);
    if !convertible || !src_len.is_multiple_of(size) {
        return Err(Error::Unsupported(format!(
            "tensor `{name}` is {dtype}; pinhole converts F32/F16/BF16 to f32 or f16 storage, \
             not {dtype} to {} ({src_len} bytes)",
            target.name(),
        )));
    }
    Ok(src_len / size * target.size())
}

/// [`encode_storage`] into a slice: converts the float elements in `src` to `target` storage
/// bytes in `dst`, which must be exactly [`storage_len`] bytes long. The bulk loops (bf16 → f16
/// and bf16 → f32 above all, what every Hub checkpoint needs) are branch-free so the compiler
/// vectorises them; they give the same bits as the element-by-element conversion through f32
/// (`half::f16::from_f32`, round to nearest even), for every input.
pub fn convert_storage(dtype: &StDType, src: &[u8], target: DType, dst: &mut [u8], name: &str) -> Result<()> {
    let n = storage_len(dtype, src.len(), target, name)?;
    if dst.len() != n {
        return Err(Error::Invalid(format!(
            "tensor `{name}`: {} bytes of storage given for {n}",
            dst.len()
        )));
    }
    let overflow = |v: f32| {
        Error::Unsupported(format!(
            "tensor `{name}` holds {v}, outside the f16 range (±65504); load it as F32"
        ))
    };
    match (dtype, target) {
        // Same bits in and out.
        (StDType::F32, DType::F32) | (StDType::F16, DType::F16) => dst.copy_from_slice(src),
        (StDType::F16, _) => {
            for (o, c) in dst.chunks_exact_mut(4).zip(src.chunks_exact(2)) {
                let v = half::f16::from_le_bytes([c[0], c[1]]).to_f32();
                o.copy_from_slice(&v.to_le_bytes());
            }
        }
        (StDType::BF16, DType::F32) => bf16_to_f32_bulk(src, dst),
        (StDType::BF16, _) => {
            if bf16_to_f16_bulk(src, dst) {
                // Rare: find the value for the message.
                let v = src
                    .chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .find(|v| v.is_finite() && half::f16::from_f32(*v).is_infinite())
                    .unwrap_or(f32::MAX);
                return Err(overflow(v));
            }
        }
        (_, DType::F32) => {}
        (_, _) => {
            for (o, c) in dst.chunks_exact_mut(2).zip(src.chunks_exact(4)) {
                let v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                let h = half::f16::from_f32(v);
                if v.is_finite() && h.is_infinite() {
                    return Err(overflow(v));
                }
                o.copy_from_slice(&h.to_le_bytes());
            }
        }
    }
    Ok(())
}

/// One bf16 value (its bits) as f16 bits, rounded to nearest even, and whether it was a finite
/// value too large for f16 (then the result is infinity). Written without branches so that
/// [`bf16_to_f16_bulk`] vectorises.
#[inline(always)]
pub fn bf16_to_f16_bits(b: u16) -> (u16, bool) {
    let x = b as u32;
    let sign = (x & 0x8000) as u16;
    let a = x & 0x7fff;
    // |value| < 2^-14 (f16 subnormals and zero): adding 0.5 in f32 leaves the value in units
    // of 2^-24 (f16's subnormal step) in the low mantissa bits, rounded to nearest even by
    // the addition itself; 1024 (= 2^-14, the smallest normal) when it rounds up.
    let sub = (f32::from_bits(a << 16) + 0.5).to_bits().wrapping_sub(0x3f00_0000);
    // Normal in f16 (bf16 exponent 113..=142): exact, the exponent rebiased by 127 - 15 and
    // the 7 mantissa bits moved to the top of f16's 10.
    let normal = a.wrapping_sub(112 << 7) << 3;
    // NaN: quiet, keeping the payload's top bits (as half::f16::from_f32 does).
    let nan = 0x7e00 | ((a & 0x7f) << 3);
    let big = a >= (143 << 7);
    let r = if a < (113 << 7) {
        sub
    } else if !big {
        normal
    } else if a <= 0x7f80 {
        0x7c00
    } else {
        nan
    };
    (r as u16 | sign, big & (a < 0x7f80))
}

/// bf16 → f16 over whole slices (2 bytes each, little endian, any alignment). Returns whether
/// some finite value was too large for f16.
fn bf16_to_f16_bulk(src: &[u8], dst: &mut [u8]) -> bool {
    // Aligned (the usual case: tensors start at even offsets, buffers come from the
    // allocator): whole vector loads and stores, with AVX2 where the CPU has it.
    #[cfg(target_endian = "little")]
    if let (Ok(s), Ok(d)) = (
        bytemuck::try_cast_slice::<u8, u16>(src),
        bytemuck::try_cast_slice_mut::<u8, u16>(dst),
    ) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            return unsafe { bf16_to_f16_avx2(s, d) };
        }
        return bf16_to_f16_words(s, d);
    }
    let mut over = 0u16;
    for (o, c) in dst.chunks_exact_mut(2).zip(src.chunks_exact(2)) {
        let (h, big) = bf16_to_f16_bits(u16::from_le_bytes([c[0], c[1]]));
        o.copy_from_slice(&h.to_le_bytes());
        over |= big as u16;
    }
    over != 0
}

#[inline(always)]
fn bf16_to_f16_words(src: &[u16], dst: &mut [u16]) -> bool {
    let mut over = 0u16;
    for (o, &b) in dst.iter_mut().zip(src) {
        let (h, big) = bf16_to_f16_bits(b);
        *o = h;
        over |= big as u16;
    }
    over != 0
}

/// [`bf16_to_f16_words`] compiled for AVX2 (16 values per instruction instead of 8).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn bf16_to_f16_avx2(src: &[u16], dst: &mut [u16]) -> bool {
    bf16_to_f16_words(src, dst)
}

/// bf16 → f32 (exact: the bf16 bits are the f32's top half; a NaN comes out quiet, as
/// `half::bf16::to_f32` makes it).
fn bf16_to_f32_bulk(src: &[u8], dst: &mut [u8]) {
    let one = |b: u16| {
        let quiet = (((b & 0x7fff) > 0x7f80) as u16) << 6;
        ((b | quiet) as u32) << 16
    };
    #[cfg(target_endian = "little")]
    if let (Ok(s), Ok(d)) = (
        bytemuck::try_cast_slice::<u8, u16>(src),
        bytemuck::try_cast_slice_mut::<u8, u32>(dst),
    ) {
        for (o, &b) in d.iter_mut().zip(s) {
            *o = one(b);
        }
        return;
    }
    for (o, c) in dst.chunks_exact_mut(4).zip(src.chunks_exact(2)) {
        o.copy_from_slice(&one(u16::from_le_bytes([c[0], c[1]])).to_le_bytes());
    }
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
    fn bulk_bf16_conversion_matches_the_reference_for_every_bit_pattern() {
        // All 65536 bf16 values (zeros, subnormals, the rounding ties of f16's subnormal range,
        // overflow, infinities, NaNs with payloads) through the bulk loops, against the
        // element-by-element path through f32: bit for bit, and the same overflow verdict.
        let src: Vec<u8> = (0..=u16::MAX).flat_map(|b| b.to_le_bytes()).collect();
        let mut over_ref = Vec::new();
        let mut f16_ref = Vec::new();
        let mut f32_ref = Vec::new();
        for b in 0..=u16::MAX {
            let v = half::bf16::from_bits(b).to_f32();
            let h = half::f16::from_f32(v);
            over_ref.push(v.is_finite() && h.is_infinite());
            f16_ref.extend_from_slice(&h.to_le_bytes());
            f32_ref.extend_from_slice(&v.to_bits().to_le_bytes());
            assert_eq!(
                bf16_to_f16_bits(b),
                (h.to_bits(), *over_ref.last().unwrap()),
                "bf16 {b:#06x}"
            );
        }
        let mut f16 = vec![0u8; src.len()];
        let mut f32s = vec![0u8; src.len() * 2];
        // Odd offsets and piece sizes: misaligned slices and loop remainders.
        let mut at = 0;
        for (i, piece) in [1usize, 3, 17, 1000, 4097].iter().cycle().enumerate() {
            let a = at.min(65536);
            let b = (a + piece).min(65536);
            if a == b {
                break;
            }
            let over = bf16_to_f16_bulk(&src[2 * a..2 * b], &mut f16[2 * a..2 * b]);
            assert_eq!(over, over_ref[a..b].iter().any(|&o| o), "piece {i}");
            bf16_to_f32_bulk(&src[2 * a..2 * b], &mut f32s[4 * a..4 * b]);
            at = b;
        }
        assert!(f16 == f16_ref);
        assert!(f32s == f32_ref);
        // Misaligned slices (the byte-wise loops) and the portable word loop (what a CPU
        // without AVX2 runs).
        let mut shifted = vec![0u8; src.len() * 2 + 1];
        shifted[1..src.len() + 1].copy_from_slice(&src);
        let (mut f16_odd, mut f32_odd) = (vec![0u8; src.len() + 1], vec![0u8; src.len() * 2 + 1]);
        bf16_to_f16_bulk(&shifted[1..src.len() + 1], &mut f16_odd[1..]);
        bf16_to_f32_bulk(&shifted[1..src.len() + 1], &mut f32_odd[1..]);
        assert!(f16_odd[1..] == f16_ref[..] && f32_odd[1..] == f32_ref[..]);
        let words: Vec<u16> = (0..=u16::MAX).collect();
        let mut out = vec![0u16; words.len()];
        assert!(bf16_to_f16_words(&words, &mut out));
        assert!(bytemuck::cast_slice::<u16, u8>(&out) == &f16_ref[..]);
        // Through the public entry: finite overflow is the error, infinities and NaNs are not.
        let finite: Vec<u8> = (0..=u16::MAX)
            .filter(|&b| !over_ref[b as usize])
            .flat_map(|b| b.to_le_bytes())
            .collect();
        let mut out = Vec::new();
        encode_storage(&StDType::BF16, &finite, DType::F16, &mut out, "all").unwrap();
        let want: Vec<u8> = (0..=u16::MAX)
            .filter(|&b| !over_ref[b as usize])
            .flat_map(|b| f16_ref[2 * b as usize..2 * b as usize + 2].to_vec())
            .collect();
        assert!(out == want);
        let e = encode_storage(&StDType::BF16, &src, DType::F16, &mut Vec::new(), "w.all").unwrap_err();
        assert!(
            e.to_string().contains("w.all") && e.to_string().contains("f16 range"),
            "{e}"
        );
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
