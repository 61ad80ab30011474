//! Loading a model from byte streams, for the browser: the configs and tokenizer arrive as
//! bytes, then each safetensors file arrives as a sequence of chunks (a `fetch` body, a
//! `File.stream()`, a Cache Storage entry).
//!
//! Memory: f32/f16/bf16 tensors are converted and written to their GPU buffers piece by piece
//! as their bytes arrive (`write_buffer` at offsets, into the same row-split buffers a whole
//! upload makes), so the host never holds a whole tensor: wasm memory stays below a fixed
//! bound ([`DEFAULT_HOST_BOUND`], 256 MiB; [`StreamingLoader::set_host_bound`]) whatever the
//! tensor or model size. A 257,216 × 2048 bf16 embedding (1 GB) used to be held and converted
//! whole, which ran a browser's wasm memory out. A pushed chunk is processed in pieces of at
//! most a quarter of the bound, and its converted bytes take at most twice that. 4-bit
//! weights (`pinhole quantize` output) stream the same way: each of their parts (packed
//! words, scales, offsets: separate tensors of the file) is written as it arrives into its
//! region of the weight's chunk buffers, whose writers stay open until the weight's last part
//! is in (they hold GPU buffers, not host memory). They used to be assembled whole: a 4-bit
//! 257,216 × 2048 embedding took 0.57 GB of wasm memory at its peak. Not covered by the
//! bound: the chunk the caller passes in (the npm engine passes fetch-sized chunks).
//!
//! The checks are the same as [`crate::loader::load_dir`]'s: every weight the model needs is
//! present (known before any data for a single file; from the index for a sharded
//! checkpoint) with the shape config.json implies, and every file is exactly as long as its
//! header says (a truncated download is an error, never a silently partial model).
//!
//! Integrity: a load that is not byte-identical to the file is an error, never a model.
//! * The file's length is fixed once its header arrives: the end of its last tensor's data
//!   (a safetensors file has nothing after it). A size the caller announces must agree, and
//!   a byte past that length (a chunk delivered twice, trailing garbage) is refused as it
//!   arrives; a file that ends short (a chunk lost, a cut download) is refused by
//!   [`StreamingLoader::end_file`]. This holds whether or not the size was announced (the
//!   browser announces none when Content-Length is missing or the response is compressed).
//! * A caller that knows where its chunks belong (Range requests, retries) passes their file
//!   offset to [`StreamingLoader::push_at`]: a chunk at any offset other than the next
//!   expected byte is refused, so a duplicate or a gap is named even when the total length
//!   happens to come out right.
//!
//! ```text
//! let mut l = StreamingLoader::new(gpu, &files, &opts)?;   // configs + tokenizer
//! l.set_index(index_bytes, "model.safetensors.index.json")?;  // only for sharded checkpoints
//! for file in l.weight_files() {
//!     l.begin_file(&file, Some(size))?;
//!     for (offset, chunk) in stream { l.push_at(offset, &chunk)?; }   // or l.push(&chunk)
//!     l.end_file()?;
//! }
//! let model = l.finish()?;
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use pinhole_core::hf::safetensors::{decode_tensor, Header, TensorInfo};
use pinhole_core::hf::ShardIndex;
use pinhole_core::quant::{Q4Format, SUFFIX_OFFSETS, SUFFIX_PACKED, SUFFIX_SCALES};
use pinhole_core::DType;
use pinhole_gpu::{Gpu, WeightStore, WeightWriter};

use crate::error::{Error, Result};
use crate::layers::ExpectedWeight;
use crate::loader::{
    model_matrix_dtype, prepare, squeeze, take_rows, write_piece, LoadOptions, LoadedModel, ModelFiles,
};
use crate::model::Model;
use crate::q4_load;

/// The single-file checkpoint name.
pub const SINGLE_FILE: &str = "model.safetensors";
/// The shard index name.
pub const INDEX_FILE: &str = "model.safetensors.index.json";

/// One tensor of the current file that the model needs, and the weights it provides: itself,
/// or row slices of it (BLIP-2's fused vision `qkv` is split into q, k and v here).
struct Wanted {
    info: TensorInfo,
    targets: Vec<Target>,
    /// Written to the GPU piece by piece as its bytes arrive (a float tensor, or a part of a
    /// 4-bit weight).
    stream: bool,
    /// A part of a 4-bit weight.
    q4: Option<Q4Part>,
}

/// One part of a 4-bit weight (written by `pinhole quantize`, see [`crate::q4_load`]): its
/// `.q4`, `.q4_scales` (and `.q4_offsets`) tensors arrive as separate tensors of the file and
/// are written into the same writers ([`WeightWriter::write_part`]).
struct Q4Part {
    /// The checkpoint name the parts stand for (`X` of `X.q4`).
    base: String,
    /// The writer part: 0 packed words, 1 scales, 2 offsets.
    part: usize,
    /// The weight's part that arrives last: its end completes the weight.
    last: bool,
}

struct Target {
    canonical: String,
    /// First row of the slice, for a row slice of a fused tensor.
    first: Option<usize>,
    shape: Vec<usize>,
    dtype: DType,
}

/// The file being streamed.
struct Current {
    name: String,
    /// The size announced by the caller (Content-Length, `File.size`), if known.
    announced: Option<u64>,
    /// The file's exact length, known once its header arrived (the end of its data).
    length: Option<u64>,
    /// Bytes not yet consumed; `buf[0]` is at file offset `consumed`.
    buf: Vec<u8>,
    consumed: u64,
    received: u64,
    header: Option<Header>,
    /// Needed tensors of this file in data order, and the next one to complete.
    wanted: Vec<Wanted>,
    next: usize,
    /// Writers of the 4-bit weights whose first part arrived and last did not, by base name
    /// (one per target, in the order of the parts' `targets`).
    q4_open: HashMap<String, Vec<WeightWriter>>,
    /// The streamed tensor being written: one writer per target, and the source elements
    /// written so far.
    active: Vec<(WeightWriter, std::ops::Range<usize>)>,
    done_elems: usize,
}

/// The default bound on the host memory the loader uses for f32/f16/bf16 weights (see the
/// module documentation).
pub const DEFAULT_HOST_BOUND: usize = 256 << 20;

pub struct StreamingLoader {
    gpu: Arc<Gpu>,
    model: Model,
    tokenizer: tokenizers::Tokenizer,
    place: String,
    expected: HashMap<String, ExpectedWeight>,
    index: Option<ShardIndex>,
    weights: WeightStore,
    uploaded: HashSet<String>,
    done_files: Vec<String>,
    current: Option<Current>,
    /// The 4-bit format of the files streamed so far (every shard must agree).
    q4_format: Option<(Q4Format, String)>,
    /// Bytes of needed tensors uploaded so far, and their total (known once every header is).
    uploaded_bytes: u64,
    /// See [`StreamingLoader::set_host_bound`].
    host_bound: usize,
    /// Conversion output, reused across pieces.
    scratch: Vec<u8>,
    /// The most host bytes held at once by the loader's buffers (pending bytes, conversion
    /// output, 4-bit parts).
    peak_host: usize,
}

impl StreamingLoader {
    /// Parses the configs and the tokenizer. `place` names the model (a URL or folder name) in
    /// errors.
    pub fn new(gpu: Arc<Gpu>, files: &ModelFiles<'_>, opts: &LoadOptions, place: &str) -> Result<Self> {
        let (model, tokenizer) = prepare(files, opts)?;
        let expected = model
            .expected_weights()?
            .into_iter()
            .map(|w| (w.name.clone(), w))
            .collect();
        Ok(StreamingLoader {
            gpu,
            model,
            tokenizer,
            place: place.to_string(),
            expected,
            index: None,
            weights: WeightStore::new(),
            uploaded: HashSet::new(),
            done_files: Vec::new(),
            current: None,
            q4_format: None,
            uploaded_bytes: 0,
            host_bound: DEFAULT_HOST_BOUND,
            scratch: Vec::new(),
            peak_host: 0,
        })
    }

    /// Makes this a sharded checkpoint: checks that the index names a tensor for every weight
    /// the model needs before any shard is read.
    pub fn set_index(&mut self, bytes: &[u8], name: &str) -> Result<()> {
        let idx = ShardIndex::parse(bytes, name)?;
        let have: HashSet<String> = idx
            .weight_map
            .keys()
            .filter_map(|n| self.model.canonical_name(q4_load::base_name(n).unwrap_or(n)))
            .collect();
        let provided = |w: &ExpectedWeight| {
            have.contains(&w.name)
                || self.model.row_slice(&w.name).is_some_and(|s| have.contains(&s.source))
                || self.model.zero_if_missing(&w.name)
        };
        if let Some(w) = sorted(self.expected.values()).into_iter().find(|w| !provided(w)) {
            return Err(Error::Tensor {
                name: w.name.clone(),
                message: format!(
                    "missing from the shard index {name} of {} (looked for it under the known name layouts, e.g. '{}')",
                    self.place,
                    self.model.example_source(&w.name)
                ),
            });
        }
        self.index = Some(idx);
        Ok(())
    }

    /// The safetensors files to stream, in order.
    pub fn weight_files(&self) -> Vec<String> {
        match &self.index {
            Some(i) => i.files.clone(),
            None => vec![SINGLE_FILE.to_string()],
        }
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Bytes of needed tensors uploaded so far.
    pub fn uploaded_bytes(&self) -> u64 {
        self.uploaded_bytes
    }

    /// Sets the bound on the host memory used for f32/f16/bf16 weights (default
    /// [`DEFAULT_HOST_BOUND`]; at least 4 KiB). Tests lower it below a tensor's size.
    pub fn set_host_bound(&mut self, bytes: usize) {
        self.host_bound = bytes.max(4 << 10);
    }

    /// The most host bytes the loader held at once so far (pending bytes and conversion output).
    pub fn peak_host_bytes(&self) -> usize {
        self.peak_host
    }

    /// Starts the next safetensors file. `size` is its length when known (checked against the
    /// header and the bytes that arrive).
    pub fn begin_file(&mut self, name: &str, size: Option<u64>) -> Result<()> {
        if let Some(c) = &self.current {
            return Err(Error::Request(format!(
                "{name} started while {} was still streaming; end one file before the next",
                c.name
            )));
        }
        if !self.weight_files().iter().any(|f| f == name) {
            return Err(Error::Request(format!(
                "{name} is not a weight file of {} (expected one of {:?})",
                self.place,
                self.weight_files()
            )));
        }
        if self.done_files.iter().any(|f| f == name) {
            return Err(Error::Request(format!("{name} was already loaded")));
        }
        self.current = Some(Current {
            name: name.to_string(),
            announced: size,
            length: None,
            buf: Vec::new(),
            consumed: 0,
            received: 0,
            header: None,
            wanted: Vec::new(),
            next: 0,
            q4_open: HashMap::new(),
            active: Vec::new(),
            done_elems: 0,
        });
        Ok(())
    }

    /// Feeds the next bytes of the current file; uploads every tensor they complete.
    pub fn push(&mut self, chunk: &[u8]) -> Result<()> {
        let at = self.current.as_ref().map_or(0, |c| c.received);
        self.push_at(at, chunk)
    }

    /// Feeds the bytes at file offset `offset` of the current file, which must be the next
    /// byte expected (the bytes received so far): an earlier offset is a duplicate, a later
    /// one a gap, and both are refused.
    pub fn push_at(&mut self, offset: u64, chunk: &[u8]) -> Result<()> {
        let Some(mut cur) = self.current.take() else {
            return Err(Error::Request("bytes pushed with no file started".into()));
        };
        let r = if offset != cur.received {
            let what = if offset < cur.received {
                format!(
                    "a chunk for bytes {offset}..{} arrived but bytes up to {} had already arrived (a duplicate chunk)",
                    offset.saturating_add(chunk.len() as u64),
                    cur.received
                )
            } else {
                format!(
                    "a chunk for bytes from {offset} arrived but bytes {}..{offset} never did (a gap)",
                    cur.received
                )
            };
            Err(self.file_err(&cur, what))
        } else {
            self.push_inner(&mut cur, chunk)
        };
        self.current = Some(cur);
        r
    }

    fn push_inner(&mut self, cur: &mut Current, chunk: &[u8]) -> Result<()> {
        let received = cur.received.saturating_add(chunk.len() as u64);
        if let Some(size) = cur.length.or(cur.announced) {
            if received > size {
                return Err(self.file_err(
                    cur,
                    format!(
                        "more bytes arrived ({received}) than its {size} bytes (a chunk delivered twice, or trailing data)"
                    ),
                ));
            }
        }
        cur.received = received;
        // Pieces of a quarter of the bound: with their conversion output (at most twice as
        // large) and the partial element left over, the host stays within the bound.
        let piece = (self.host_bound / 4).max(1);
        for part in chunk.chunks(piece) {
            self.take_bytes(cur, part)?;
        }
        Ok(())
    }

    fn take_bytes(&mut self, cur: &mut Current, chunk: &[u8]) -> Result<()> {
        let skip_all = cur.header.is_some() && cur.next >= cur.wanted.len();
        if skip_all {
            // Past the last needed tensor: nothing more to keep.
            cur.consumed += chunk.len() as u64;
            return Ok(());
        }
        cur.buf.extend_from_slice(chunk);
        self.note_host(cur);
        if cur.header.is_none() {
            if cur.buf.len() < 8 {
                return Ok(());
            }
            // Until the header says otherwise, allow any length; the real length is checked
            // at the end.
            let bound = cur.announced.unwrap_or(u64::MAX);
            let n = Header::header_len(&cur.buf, bound, &cur.name)?;
            if (cur.buf.len() as u64) < 8 + n {
                return Ok(());
            }
            let json = &cur.buf[8..8 + n as usize];
            let length = implied_len(json, &cur.name)?;
            if let Some(size) = cur.announced.filter(|&s| s != length) {
                return Err(self.file_err(
                    cur,
                    format!("its size is {size} bytes but its safetensors header describes {length} bytes"),
                ));
            }
            if cur.received > length {
                return Err(self.file_err(
                    cur,
                    format!(
                        "more bytes arrived ({}) than the {length} bytes its header describes (a chunk delivered twice, or trailing data)",
                        cur.received
                    ),
                ));
            }
            cur.length = Some(length);
            let header = Header::parse(json, length, &cur.name)?;
            self.plan_file(cur, &header)?;
            cur.header = Some(header);
        }
        self.drain(cur)
    }

    /// Matches the header's tensors against the model's needs (shapes, and for a single file
    /// completeness) and lists the needed ones in data order.
    fn plan_file(&mut self, cur: &mut Current, header: &Header) -> Result<()> {
        let matrix_dtype = model_matrix_dtype(&self.model);
        // A file written by `pinhole quantize`: its metadata names the 4-bit format, which
        // every shard must share (as `q4_load::checkpoint_format` checks for `load_dir`).
        let format = match q4_load::header_format(header)? {
            Some(f) => {
                if let Some((other, file)) = &self.q4_format {
                    if *other != f {
                        return Err(Error::File {
                            path: format!("{}/{}", self.place.trim_end_matches('/'), cur.name),
                            message: format!(
                                "its 4-bit format differs from {file}'s; the shards do not belong together"
                            ),
                        });
                    }
                }
                self.q4_format = Some((f, cur.name.clone()));
                Some(f)
            }
            None => {
                if self.q4_format.is_none() {
                    q4_load::untagged_q4(header.tensors.iter())?;
                }
                self.q4_format.as_ref().map(|(f, _)| *f)
            }
        };
        // Canonical name → this file's tensor (the `.q4` part for a 4-bit weight).
        let mut here: HashMap<String, &TensorInfo> = HashMap::new();
        for info in &header.tensors {
            let base = q4_load::base_name(&info.name).unwrap_or(&info.name);
            let Some(c) = self.model.canonical_name(base) else {
                continue;
            };
            if let Some(idx) = &self.index {
                if idx.weight_map.get(&info.name) != Some(&cur.name) {
                    return Err(Error::Tensor {
                        name: info.name.clone(),
                        message: format!(
                            "is in {} but the shard index puts it in {:?}; the shards and the index do not match: download them again",
                            cur.name,
                            idx.weight_map.get(&info.name)
                        ),
                    });
                }
            }
            if self.uploaded.contains(&c) || here.insert(c.clone(), info).is_some() {
                return Err(Error::Tensor {
                    name: info.name.clone(),
                    message: format!(
                        "provides weight '{c}' a second time (in {}); the checkpoint mixes name layouts",
                        cur.name
                    ),
                });
            }
        }
        let mut by_tensor: HashMap<String, Wanted> = HashMap::new();
        for w in sorted(self.expected.values()) {
            if self.uploaded.contains(&w.name) {
                continue;
            }
            let dtype = if w.matrix { matrix_dtype } else { DType::F32 };
            // A tensor of its own wins over a slice of a fused one (as in `load_dir`).
            let (info, first) = if let Some(info) = here.get(&w.name) {
                if q4_load::base_name(&info.name).is_some() {
                    // Checked against the shape with the 4-bit parts, below.
                } else if squeeze(&info.shape) != squeeze(&w.shape) {
                    return Err(Error::Tensor {
                        name: info.name.clone(),
                        message: format!(
                            "in {} of {}: has shape {:?} but config.json implies {:?}",
                            cur.name, self.place, info.shape, w.shape
                        ),
                    });
                }
                (*info, None)
            } else if let Some((s, info)) = self
                .model
                .row_slice(&w.name)
                .and_then(|s| here.get(&s.source).map(|i| (s, *i)))
            {
                let want = [vec![3 * w.shape[0]], w.shape[1..].to_vec()].concat();
                let q4 = q4_load::base_name(&info.name).is_some();
                if (!q4 && info.shape != want) || s.first + w.shape[0] > want[0] {
                    return Err(Error::Tensor {
                        name: info.name.clone(),
                        message: format!("has shape {:?} but config.json implies {want:?}", info.shape),
                    });
                }
                (info, Some(s.first))
            } else {
                if self.index.is_none() && !self.model.zero_if_missing(&w.name) {
                    return Err(Error::Tensor {
                        name: w.name.clone(),
                        message: format!(
                            "missing from {} of {} (looked for it under the known name layouts, e.g. '{}')",
                            cur.name,
                            self.place,
                            self.model.example_source(&w.name)
                        ),
                    });
                }
                continue;
            };
            let target = Target {
                canonical: w.name.clone(),
                first,
                shape: w.shape.clone(),
                dtype,
            };
            if let Some(base) = q4_load::base_name(&info.name) {
                // A 4-bit weight: all its parts must be in this file, with the shapes the
                // config and the format imply (the same check as `load_dir`'s).
                let full_shape = match first {
                    Some(_) => [vec![3 * w.shape[0]], w.shape[1..].to_vec()].concat(),
                    None => w.shape.clone(),
                };
                if q4_load::check(header, format, base, &full_shape, w.matrix)?.is_none() {
                    return Err(Error::Request(format!("{}: 4-bit parts vanished", info.name)));
                }
                let Some(format) = format else {
                    return Err(Error::Request(format!("{}: 4-bit weight without a format", info.name)));
                };
                let mut parts: Vec<(usize, &TensorInfo)> = [SUFFIX_PACKED, SUFFIX_SCALES, SUFFIX_OFFSETS]
                    .iter()
                    .enumerate()
                    .filter_map(|(i, suffix)| header.get(&format!("{base}{suffix}")).map(|t| (i, t)))
                    .collect();
                parts.sort_by_key(|(_, p)| p.start);
                let Some(&(_, last)) = parts.last() else {
                    return Err(Error::Request(format!("{}: 4-bit parts vanished", info.name)));
                };
                for &(i, p) in &parts {
                    by_tensor
                        .entry(p.name.clone())
                        .or_insert_with(|| Wanted {
                            info: p.clone(),
                            targets: Vec::new(),
                            stream: true,
                            q4: Some(Q4Part {
                                base: base.to_string(),
                                part: i,
                                last: p.name == last.name,
                            }),
                        })
                        .targets
                        .push(Target {
                            canonical: target.canonical.clone(),
                            first: target.first,
                            shape: target.shape.clone(),
                            dtype: DType::Q4(format),
                        });
                }
                continue;
            }
            by_tensor
                .entry(info.name.clone())
                .or_insert_with(|| Wanted {
                    info: info.clone(),
                    targets: Vec::new(),
                    // Other dtypes take the whole-tensor path, which names them as unsupported.
                    stream: info.dtype.is_supported_float(),
                    q4: None,
                })
                .targets
                .push(Target {
                    canonical: w.name.clone(),
                    first,
                    shape: w.shape.clone(),
                    dtype,
                });
        }
        let mut wanted: Vec<Wanted> = by_tensor.into_values().collect();
        wanted.sort_by_key(|w| w.info.start);
        cur.wanted = wanted;
        cur.next = 0;
        Ok(())
    }

    /// Uploads every needed tensor whose bytes are complete and drops the bytes before the
    /// next needed one.
    fn drain(&mut self, cur: &mut Current) -> Result<()> {
        let mut start = 0usize; // into cur.buf
        while let Some(w) = cur.wanted.get(cur.next) {
            let end_buf = cur.consumed + cur.buf.len() as u64;
            let pos = cur.consumed + start as u64;
            if w.info.start > pos {
                // Skip bytes before the tensor (other tensors, padding).
                let skip = (w.info.start.min(end_buf) - pos) as usize;
                start += skip;
                if w.info.start > end_buf {
                    break;
                }
            }
            if w.stream {
                // Write the complete elements that are here; keep a partial one for later.
                let t_end = w.info.start + w.info.len;
                let esize = w.info.dtype.size().unwrap_or(1) as u64;
                let pos = cur.consumed + start as u64;
                let n = ((end_buf.min(t_end) - pos) / esize) as usize;
                self.stream_piece(cur, start, n)?;
                start += n * esize as usize;
                if cur.consumed + (start as u64) < t_end {
                    break;
                }
                self.finish_streamed(cur)?;
                continue;
            }
            if end_buf < w.info.start + w.info.len {
                break;
            }
            let bytes = &cur.buf[start..start + w.info.len as usize];
            self.note_host(cur);
            for tg in &w.targets {
                let mut t = decode_tensor(&w.info, bytes, tg.dtype)?;
                match tg.first {
                    Some(first) => t = take_rows(&t, first, tg.shape[0], &tg.shape)?,
                    // Leading 1-dims (`[1, 1, E]` class token and the like) are dropped.
                    None => t.shape = tg.shape.clone(),
                }
                self.weights.upload(&self.gpu, &tg.canonical, &t).map_err(Error::Gpu)?;
                self.uploaded.insert(tg.canonical.clone());
            }
            self.uploaded_bytes += w.info.len;
            start += w.info.len as usize;
            cur.next += 1;
        }
        if cur.header.is_some() {
            if cur.next >= cur.wanted.len() {
                start = cur.buf.len();
            }
            cur.buf.drain(..start);
            cur.consumed += start as u64;
            // Keep room for one more piece, not the high-water mark of a whole tensor held
            // earlier (a 4-bit part, the header).
            let keep = cur.buf.len().max(self.host_bound / 4);
            if cur.buf.capacity() > 2 * keep {
                cur.buf.shrink_to(keep);
            }
        }
        Ok(())
    }

    /// Converts and writes `n` source elements of the streamed tensor `cur.wanted[cur.next]`
    /// starting at `cur.buf[start..]`, creating its writers on its first bytes (for a 4-bit
    /// weight, on the first bytes of its first part).
    fn stream_piece(&mut self, cur: &mut Current, start: usize, n: usize) -> Result<()> {
        let w = &cur.wanted[cur.next];
        // Elements per row of the source (for row slices of a fused tensor).
        let cols: usize = w.info.shape.iter().skip(1).product();
        let range = |tg: &Target| match tg.first {
            Some(first) => first * cols..(first + tg.shape[0]) * cols,
            None => 0..w.info.numel(),
        };
        match &w.q4 {
            Some(q) if !cur.q4_open.contains_key(&q.base) => {
                let mut writers = Vec::with_capacity(w.targets.len());
                for tg in &w.targets {
                    writers.push(WeightWriter::new(&self.gpu, &tg.canonical, &tg.shape, tg.dtype).map_err(Error::Gpu)?);
                }
                cur.q4_open.insert(q.base.clone(), writers);
            }
            None if cur.active.is_empty() => {
                for tg in &w.targets {
                    let writer =
                        WeightWriter::new(&self.gpu, &tg.canonical, &tg.shape, tg.dtype).map_err(Error::Gpu)?;
                    cur.active.push((writer, range(tg)));
                }
            }
            _ => {}
        }
        if n == 0 {
            return Ok(());
        }
        let esize = w.info.dtype.size().unwrap_or(1);
        let src = &cur.buf[start..start + n * esize];
        let (e0, e1) = (cur.done_elems, cur.done_elems + n);
        if let Some(q) = &w.q4 {
            // Scales and offsets are f16 halves: inf or NaN means a corrupt file.
            if q.part > 0 {
                q4_load::check_halves(&w.info.name, src)?;
            }
            let writers = cur
                .q4_open
                .get_mut(&q.base)
                .ok_or_else(|| Error::Request(format!("{}: 4-bit writers vanished", q.base)))?;
            for (tg, writer) in w.targets.iter().zip(writers.iter_mut()) {
                let r = range(tg);
                let (a, b) = (e0.max(r.start), e1.min(r.end));
                if a < b {
                    let piece = &src[(a - e0) * esize..(b - e0) * esize];
                    self.weights
                        .write_part(&self.gpu, writer, q.part, piece)
                        .map_err(Error::Gpu)?;
                }
            }
        } else {
            for (i, tg) in w.targets.iter().enumerate() {
                let (writer, range) = &mut cur.active[i];
                let (a, b) = (e0.max(range.start), e1.min(range.end));
                if a >= b {
                    continue;
                }
                write_piece(
                    &self.gpu,
                    &mut self.weights,
                    writer,
                    &w.info,
                    &src[(a - e0) * esize..(b - e0) * esize],
                    tg.dtype,
                    &mut self.scratch,
                )?;
            }
        }
        self.peak_host = self.peak_host.max(cur.buf.capacity() + self.scratch.capacity());
        cur.done_elems = e1;
        Ok(())
    }

    /// All bytes of the streamed tensor were written: its weights join the store (a 4-bit
    /// weight's once its last part is in).
    fn finish_streamed(&mut self, cur: &mut Current) -> Result<()> {
        let w = &cur.wanted[cur.next];
        let done: Vec<WeightWriter> = match &w.q4 {
            Some(q) if q.last => cur.q4_open.remove(&q.base).unwrap_or_default(),
            Some(_) => Vec::new(),
            None => cur.active.drain(..).map(|(writer, _)| writer).collect(),
        };
        for (writer, tg) in done.into_iter().zip(&w.targets) {
            self.weights.finish(&tg.canonical, writer).map_err(Error::Gpu)?;
            self.uploaded.insert(tg.canonical.clone());
        }
        self.uploaded_bytes += w.info.len;
        cur.next += 1;
        cur.done_elems = 0;
        // The conversion buffer is reused by the next tensor, but not kept larger than a piece needs.
        if self.scratch.capacity() > self.host_bound / 2 {
            self.scratch = Vec::new();
        }
        Ok(())
    }

    fn note_host(&mut self, cur: &Current) {
        self.peak_host = self.peak_host.max(cur.buf.capacity() + self.scratch.capacity());
    }

    fn file_err(&self, cur: &Current, detail: String) -> Error {
        Error::File {
            path: format!("{}/{}", self.place.trim_end_matches('/'), cur.name),
            message: format!("{detail}; the download is incomplete or corrupt: load it again"),
        }
    }

    /// Ends the current file: it must be exactly as long as announced and as its header
    /// implies, and every needed tensor in it must have been uploaded.
    pub fn end_file(&mut self) -> Result<()> {
        let Some(cur) = self.current.take() else {
            return Err(Error::Request("end_file with no file started".into()));
        };
        let Some(header) = &cur.header else {
            return Err(self.file_err(
                &cur,
                format!("it ended after {} bytes, before its safetensors header", cur.received),
            ));
        };
        // Set with the header; a file must be exactly this long (`push_at` refused any more).
        let length = cur.length.unwrap_or(header.file_len);
        if cur.received != length {
            let size = match cur.announced {
                Some(s) => format!("its size of {s} bytes"),
                None => "the length its header describes".to_string(),
            };
            return Err(self.file_err(&cur, format!("{} of its {length} bytes arrived ({size})", cur.received)));
        }
        if cur.next < cur.wanted.len() {
            return Err(self.file_err(
                &cur,
                format!("tensor '{}' did not arrive complete", cur.wanted[cur.next].info.name),
            ));
        }
        if let Some(base) = cur.q4_open.keys().next() {
            return Err(self.file_err(&cur, format!("the 4-bit weight '{base}' did not arrive complete")));
        }
        self.done_files.push(cur.name);
        Ok(())
    }

    /// The loaded model, once every weight file was streamed.
    pub fn finish(mut self) -> Result<LoadedModel> {
        if let Some(c) = &self.current {
            return Err(Error::Request(format!("{} is still streaming", c.name)));
        }
        if let Some(f) = self.weight_files().into_iter().find(|f| !self.done_files.contains(f)) {
            return Err(Error::File {
                path: format!("{}/{f}", self.place.trim_end_matches('/')),
                message: "was never loaded".into(),
            });
        }
        let mut zeros = Vec::new();
        for w in sorted(self.expected.values()) {
            if self.uploaded.contains(&w.name) {
                continue;
            }
            if !self.model.zero_if_missing(&w.name) {
                return Err(Error::Tensor {
                    name: w.name.clone(),
                    message: format!("missing from the checkpoint of {}", self.place),
                });
            }
            zeros.push((w.name.clone(), w.shape.clone()));
        }
        // A bias the checkpoint layout does not have loads as zeros (as in `load_dir`).
        for (name, shape) in zeros {
            self.weights
                .upload(&self.gpu, &name, &pinhole_core::Tensor::zeros(&shape))
                .map_err(Error::Gpu)?;
        }
        // The last writes may have gone to a device lost since: a model on it is no model.
        self.gpu
            .check_alive()
            .map_err(|e| Error::Gpu(e.during(|| format!("loading {}", self.place))))?;
        Ok(LoadedModel {
            model: self.model,
            tokenizer: self.tokenizer,
            weights: self.weights,
            dir: self.place,
        })
    }
}

fn sorted<'a>(it: impl Iterator<Item = &'a ExpectedWeight>) -> Vec<&'a ExpectedWeight> {
    let mut v: Vec<_> = it.collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

/// File length implied by a header (when the size was not announced): the end of the last
/// tensor's data.
fn implied_len(json: &[u8], file: &str) -> Result<u64> {
    let h = Header::parse(json, u64::MAX, file)?;
    Ok(h.tensors.iter().map(|t| t.start + t.len).max().unwrap_or(h.data_start))
}
