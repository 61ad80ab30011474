//! Weights on the GPU. Each weight is uploaded on its own (the loader streams a checkpoint
//! tensor by tensor, so the host never holds two copies of a model) and split by rows into
//! chunks that each fit one storage binding: a 257,216 × 2048 embedding table is over 1 GB in
//! f16, while many devices allow 128 MiB per binding. Kernels that read weights (matmul,
//! embedding gather) take one dispatch per chunk.

use std::collections::HashMap;

use pinhole_core::tensor::rows_of;
use pinhole_core::{DType, Tensor};

use crate::context::Gpu;
use crate::error::{GpuError, Result};

#[derive(Clone, Debug)]
pub struct Chunk {
    pub buffer: wgpu::Buffer,
    /// First row of the full tensor held in this chunk.
    pub row0: usize,
    pub rows: usize,
}

/// A tensor resident on the GPU, possibly split into row chunks.
#[derive(Clone, Debug)]
pub struct GpuTensor {
    pub shape: Vec<usize>,
    /// Storage dtype: F32, F16 (packed pairs), U32, or Q4 (4-bit, with its group size and
    /// scheme; each chunk holds its rows' packed words, scales and offsets, see
    /// `pinhole_core::quant::chunk_storage_bytes`).
    pub dtype: DType,
    pub chunks: Vec<Chunk>,
}

impl GpuTensor {
    pub fn rows(&self) -> usize {
        rows_of(&self.shape)
    }

    pub fn cols(&self) -> usize {
        *self.shape.last().unwrap_or(&1)
    }

    /// The single buffer of an unsplit tensor, or an error naming it.
    pub fn single(&self, what: &str, gpu: &Gpu) -> Result<&wgpu::Buffer> {
        match self.chunks.as_slice() {
            [c] => Ok(&c.buffer),
            _ => Err(GpuError::TooLarge {
                what: format!(
                    "{what} (shape {:?}) is used by a kernel that cannot read a split tensor; it",
                    self.shape
                ),
                bytes: self.bytes(),
                limit: gpu.weight_binding_limit(),
                limit_name: "per-binding limit",
            }),
        }
    }

    pub fn bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.buffer.size()).sum()
    }
}

/// Bytes one chunk of `rows` rows of `cols` values takes (padded to whole 4-byte words).
pub(crate) fn chunk_bytes(rows: usize, cols: usize, dtype: DType) -> u64 {
    if let DType::Q4(f) = dtype {
        // Packed words, scales (and offsets) of these rows in one buffer, padded to 16 bytes
        // because the kernels read it as vec4<u32>.
        let (_, _, words) = pinhole_core::quant::chunk_layout(rows, cols, f);
        return (words as u64 * 4).div_ceil(16) * 16;
    }
    let elem = if dtype == DType::BF16 { 2 } else { dtype.size() };
    ((rows * cols * elem) as u64).div_ceil(4) * 4
}

/// Rows per chunk so that each chunk fits `limit` bytes.
pub(crate) fn rows_per_chunk(what: &str, rows: usize, cols: usize, dtype: DType, limit: u64) -> Result<usize> {
    let row_bytes = chunk_bytes(1, cols, dtype);
    if row_bytes > limit {
        return Err(GpuError::TooLarge {
            what: format!("one row of {what}"),
            bytes: row_bytes,
            limit,
            limit_name: "max_storage_buffer_binding_size",
        });
    }
    let mut per = ((limit / row_bytes.max(1)) as usize).clamp(1, rows.max(1));
    while per > 1 && chunk_bytes(per, cols, dtype) > limit {
        per -= 1;
    }
    Ok(per)
}

/// The storage dtype on the GPU of a weight held as `dtype` on the host.
fn storage_dtype(dtype: DType) -> DType {
    match dtype {
        DType::BF16 => DType::F16,
        d => d,
    }
}

/// The row chunks `(row0, rows, buffer bytes)` a weight of `shape` and storage `dtype` is
/// split into. The one layout rule for a tensor uploaded whole ([`upload`]) and one written
/// in pieces as its bytes arrive ([`WeightWriter`]), so both land identically.
fn layout(gpu: &Gpu, name: &str, shape: &[usize], dtype: DType) -> Result<Vec<(usize, usize, u64)>> {
    let rows = rows_of(shape);
    let cols = *shape.last().unwrap_or(&1);
    // Matrices (linear weights, embedding tables) are split by rows; the kernels that read
    // them take one dispatch per chunk. Other tensors (norm weights, biases, conv kernels,
    // position tables) are small in every real model and must fit one binding whole.
    let limit = if shape.len() == 2 {
        gpu.weight_binding_limit()
    } else {
        gpu.activation_binding_limit()
    };
    let per = if shape.len() == 2 {
        rows_per_chunk(name, rows, cols, dtype, limit)?
    } else {
        rows.max(1)
    };
    if shape.len() != 2 && chunk_bytes(rows, cols, dtype) > limit {
        return Err(GpuError::TooLarge {
            what: format!("weight '{name}' {shape:?}"),
            bytes: chunk_bytes(rows, cols, dtype),
            limit,
            limit_name: "max_storage_buffer_binding_size",
        });
    }
    let mut out = Vec::new();
    let mut row0 = 0;
    while row0 < rows.max(1) {
        let n = per.min(rows.max(1) - row0);
        // Rows past the tensor's end (an empty tensor still gets one 4-byte buffer).
        let real = n.min(rows.saturating_sub(row0));
        let size = chunk_bytes(real, if rows == 0 { 0 } else { cols }, dtype).max(4);
        if size > gpu.limits.max_buffer_size {
            return Err(GpuError::TooLarge {
                what: format!("weight '{name}'"),
                bytes: size,
                limit: gpu.limits.max_buffer_size,
                limit_name: "max_buffer_size",
            });
        }
        out.push((row0, n, size));
        row0 += n;
    }
    Ok(out)
}

fn weight_buffer(gpu: &Gpu, name: &str, size: u64) -> wgpu::Buffer {
    gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(name),
        size,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    })
}

/// Uploads a host tensor, split by rows to fit the per-binding limit.
pub fn upload(gpu: &Gpu, name: &str, t: &Tensor) -> Result<GpuTensor> {
    let dtype = storage_dtype(t.dtype);
    let cols = *t.shape.last().unwrap_or(&1);
    let mut chunks = Vec::new();
    for (row0, n, size) in layout(gpu, name, &t.shape, dtype)? {
        let mut bytes = t.storage_bytes_range(row0 * cols, ((row0 + n) * cols).min(t.numel()));
        if matches!(dtype, DType::Q4(_)) {
            bytes.resize(chunk_bytes(n, cols, dtype) as usize, 0);
        }
        let buffer = weight_buffer(gpu, name, size);
        if !bytes.is_empty() {
            gpu.queue.write_buffer(&buffer, 0, &bytes);
        }
        chunks.push(Chunk { buffer, row0, rows: n });
    }
    Ok(GpuTensor {
        shape: t.shape.clone(),
        dtype,
        chunks,
    })
}

/// A weight written in pieces as its bytes arrive (the browser's stream loader): its buffers
/// are created up front with [`upload`]'s layout, and each piece goes straight to its place
/// with `write_buffer` at an offset, so the host never holds the whole tensor.
///
/// The bytes come in one or more *parts*, each a row-major stream of the weight's rows: a
/// float weight has one (f32 words or packed f16 halves, in element order, [`write`]); a
/// 4-bit weight has one per tensor of its checkpoint form ([`write_part`]): 0 the packed
/// words (`X.q4`), 1 the f16 scales (`X.q4_scales`), 2 the f16 offsets (`X.q4_offsets`,
/// asymmetric scheme), and every chunk holds its rows of each part at that part's offset
/// (`pinhole_core::quant::chunk_layout`). Parts may be written in any order relative to each
/// other; each part's bytes in order.
///
/// [`write`]: WeightWriter::write
/// [`write_part`]: WeightWriter::write_part
pub struct WeightWriter {
    name: String,
    tensor: GpuTensor,
    parts: Vec<Part>,
}

/// The write position of one part (see [`WeightWriter`]).
struct Part {
    /// Payload bytes per row.
    row_bytes: u64,
    /// Byte offset of the part in each chunk's buffer.
    base: Vec<u64>,
    /// Pieces are whole units of this many bytes (the part's element size).
    unit: usize,
    /// The chunk being filled, the bytes of it written so far (a multiple of 4) and the
    /// payload bytes it has received (written or pending).
    chunk: usize,
    written: u64,
    received: u64,
    /// Up to 3 bytes waiting for the rest of their 4-byte word (`write_buffer` needs whole words).
    pending: Vec<u8>,
}

impl WeightWriter {
    /// Creates the buffers of weight `name` of `shape`, stored as `dtype` (F32, F16/BF16 or
    /// Q4).
    pub fn new(gpu: &Gpu, name: &str, shape: &[usize], dtype: DType) -> Result<WeightWriter> {
        let dtype = storage_dtype(dtype);
        let chunks: Vec<Chunk> = layout(gpu, name, shape, dtype)?
            .into_iter()
            .map(|(row0, rows, size)| Chunk {
                buffer: weight_buffer(gpu, name, size),
                row0,
                rows,
            })
            .collect();
        let cols = *shape.last().unwrap_or(&1);
        let total_rows = rows_of(shape);
        let real = |c: &Chunk| c.rows.min(total_rows.saturating_sub(c.row0));
        let part = |row_bytes: usize, unit: usize, base: Vec<u64>| Part {
            row_bytes: row_bytes as u64,
            base,
            unit,
            chunk: 0,
            written: 0,
            received: 0,
            pending: Vec::new(),
        };
        let parts = match dtype {
            DType::F32 | DType::F16 => vec![part(cols * dtype.size(), dtype.size(), vec![0; chunks.len()])],
            DType::Q4(f) => {
                let at = |c: &Chunk| pinhole_core::quant::chunk_layout(real(c), cols, f);
                let gpr = cols / f.group();
                let mut p = vec![
                    part(cols / 2, 4, vec![0; chunks.len()]),
                    part(2 * gpr, 2, chunks.iter().map(|c| at(c).0 as u64 * 4).collect()),
                ];
                if f.asym() {
                    p.push(part(2 * gpr, 2, chunks.iter().map(|c| at(c).1 as u64 * 4).collect()));
                }
                p
            }
            d => {
                return Err(GpuError::Validation(format!(
                    "weight '{name}': only f32/f16/4-bit weights are written in pieces, not {}",
                    d.name()
                )))
            }
        };
        Ok(WeightWriter {
            name: name.to_string(),
            tensor: GpuTensor {
                shape: shape.to_vec(),
                dtype,
                chunks,
            },
            parts,
        })
    }

    /// How many parts the weight's bytes come in (1 for a float weight, 2 or 3 for 4-bit).
    pub fn parts(&self) -> usize {
        self.parts.len()
    }

    /// Payload bytes of part `p` in chunk `i` (its rows, without the padding to a whole word).
    fn payload(&self, p: usize, i: usize) -> u64 {
        let rows = rows_of(&self.tensor.shape);
        let c = &self.tensor.chunks[i];
        let real = c.rows.min(rows.saturating_sub(c.row0));
        real as u64 * self.parts[p].row_bytes
    }

    fn put(&mut self, gpu: &Gpu, p: usize, bytes: &[u8]) {
        let part = &mut self.parts[p];
        let at = part.base[part.chunk] + part.written;
        gpu.queue
            .write_buffer(&self.tensor.chunks[part.chunk].buffer, at, bytes);
        part.written += bytes.len() as u64;
    }

    /// Writes the next storage bytes of a float weight (whole elements, in order).
    pub fn write(&mut self, gpu: &Gpu, bytes: &[u8]) -> Result<()> {
        self.write_part(gpu, 0, bytes)
    }

    /// Writes the next bytes of part `p` (whole elements of it, in order).
    pub fn write_part(&mut self, gpu: &Gpu, p: usize, mut bytes: &[u8]) -> Result<()> {
        let Some(unit) = self.parts.get(p).map(|x| x.unit) else {
            return Err(GpuError::Validation(format!(
                "weight '{}': no part {p} (it has {})",
                self.name,
                self.parts.len()
            )));
        };
        if !bytes.len().is_multiple_of(unit) {
            return Err(GpuError::Validation(format!(
                "weight '{}': {} bytes are not whole {unit}-byte elements",
                self.name,
                bytes.len(),
            )));
        }
        while !bytes.is_empty() {
            if self.parts[p].chunk >= self.tensor.chunks.len() {
                return Err(GpuError::Validation(format!(
                    "weight '{}' {:?}: more bytes than the tensor holds",
                    self.name, self.tensor.shape
                )));
            }
            let payload = self.payload(p, self.parts[p].chunk);
            let room = payload - self.parts[p].received;
            let take = (room as usize).min(bytes.len());
            let (mut piece, rest) = bytes.split_at(take);
            bytes = rest;
            self.parts[p].received += take as u64;
            if !self.parts[p].pending.is_empty() {
                let need = (4 - self.parts[p].pending.len()).min(piece.len());
                self.parts[p].pending.extend_from_slice(&piece[..need]);
                piece = &piece[need..];
                if self.parts[p].pending.len() == 4 {
                    let word = std::mem::take(&mut self.parts[p].pending);
                    self.put(gpu, p, &word);
                }
            }
            let whole = piece.len() / 4 * 4;
            if whole > 0 {
                self.put(gpu, p, &piece[..whole]);
            }
            self.parts[p].pending.extend_from_slice(&piece[whole..]);
            if self.parts[p].received == payload {
                if !self.parts[p].pending.is_empty() {
                    // The chunk's last half word: padded with zeros, as `upload` pads it.
                    let mut word = std::mem::take(&mut self.parts[p].pending);
                    word.resize(4, 0);
                    self.put(gpu, p, &word);
                }
                let part = &mut self.parts[p];
                part.chunk += 1;
                part.written = 0;
                part.received = 0;
            }
        }
        Ok(())
    }

    /// Skips past chunks with no payload (an empty tensor).
    fn settle(&mut self) {
        for p in 0..self.parts.len() {
            while self.parts[p].chunk < self.tensor.chunks.len() && self.payload(p, self.parts[p].chunk) == 0 {
                self.parts[p].chunk += 1;
            }
        }
    }

    /// The uploaded tensor, once every byte of every part was written.
    pub fn finish(mut self) -> Result<GpuTensor> {
        self.settle();
        if let Some(p) = self.parts.iter().position(|p| p.chunk < self.tensor.chunks.len()) {
            let what = if self.parts.len() > 1 {
                format!(" (part {p})")
            } else {
                String::new()
            };
            return Err(GpuError::Validation(format!(
                "weight '{}' {:?}: ended before all its bytes were written{what}",
                self.name, self.tensor.shape
            )));
        }
        Ok(self.tensor)
    }
}

impl GpuTensor {
    /// The bytes of each chunk's buffer, read back from the GPU (tests compare loaders with
    /// it; not for the hot path).
    pub async fn read_back(&self, gpu: &Gpu) -> Result<Vec<Vec<u8>>> {
        let mut enc = gpu.device.create_command_encoder(&Default::default());
        let mut reads = Vec::new();
        for c in &self.chunks {
            let size = c.buffer.size();
            let rb = gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("pinhole weight readback"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            enc.copy_buffer_to_buffer(&c.buffer, 0, &rb, 0, Some(size));
            reads.push((rb, size));
        }
        gpu.queue.submit(Some(enc.finish()));
        let futures: Vec<_> = reads
            .iter()
            .map(|(rb, size)| crate::readback::MapFuture::new(rb, *size))
            .collect();
        gpu.wait_idle()?;
        let mut out = Vec::new();
        for (fut, (rb, size)) in futures.into_iter().zip(&reads) {
            fut.await.map_err(GpuError::Readback)?;
            let view = rb
                .get_mapped_range(..*size)
                .map_err(|e| GpuError::Readback(e.to_string()))?;
            out.push(view.to_vec());
            drop(view);
            rb.unmap();
        }
        Ok(out)
    }
}

/// Bytes queued with `write_buffer` after which the loaders flush the queue. wgpu copies
/// each write into a staging buffer that lives until a submission completes; loading never
/// submits, so without a flush a whole model's staging copies would pile up next to the
/// weights (twice the model in memory on a CPU adapter or a unified-memory machine). At most
/// two windows are in flight (the one the GPU copies while the next is written), so the
/// staging memory stays below twice this.
pub const FLUSH_BYTES: u64 = 32 << 20;

/// All weights of a model, by name.
#[derive(Default)]
pub struct WeightStore {
    map: HashMap<String, GpuTensor>,
    bytes: u64,
    /// Bytes written since the last flush.
    unflushed: u64,
    /// The last flush's submission, not yet waited for.
    #[cfg(not(target_arch = "wasm32"))]
    in_flight: Option<wgpu::SubmissionIndex>,
}

impl WeightStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Uploads one weight. The host tensor can be dropped as soon as this returns.
    pub fn upload(&mut self, gpu: &Gpu, name: &str, t: &Tensor) -> Result<()> {
        // Writes to a lost device are silently dropped: stop the load at the first weight.
        gpu.check_alive()
            .map_err(|e| e.during(|| format!("loading weight '{name}'")))?;
        let g = upload(gpu, name, t)?;
        self.noted(gpu, g.bytes())?;
        self.insert(name, g);
        Ok(())
    }

    /// Writes the next piece of a float weight being streamed (see [`WeightWriter`]).
    pub fn write(&mut self, gpu: &Gpu, w: &mut WeightWriter, bytes: &[u8]) -> Result<()> {
        self.write_part(gpu, w, 0, bytes)
    }

    /// Writes the next piece of part `part` of a weight being streamed (see [`WeightWriter`]).
    pub fn write_part(&mut self, gpu: &Gpu, w: &mut WeightWriter, part: usize, bytes: &[u8]) -> Result<()> {
        gpu.check_alive()
            .map_err(|e| e.during(|| format!("loading weight '{}'", w.name)))?;
        w.write_part(gpu, part, bytes)?;
        self.noted(gpu, bytes.len() as u64)
    }

    /// Adds a streamed weight once all its bytes were written.
    pub fn finish(&mut self, name: &str, w: WeightWriter) -> Result<()> {
        let g = w.finish()?;
        self.insert(name, g);
        Ok(())
    }

    fn insert(&mut self, name: &str, g: GpuTensor) {
        self.bytes += g.bytes();
        if let Some(old) = self.map.insert(name.to_string(), g) {
            self.bytes -= old.bytes();
        }
    }

    /// Counts written bytes and flushes the queue every [`FLUSH_BYTES`]: the staging copies
    /// of the writes so far are released once the (empty) submission completes.
    fn noted(&mut self, gpu: &Gpu, bytes: u64) -> Result<()> {
        self.unflushed += bytes;
        if self.unflushed >= FLUSH_BYTES {
            self.unflushed = 0;
            let _index = gpu.queue.submit(std::iter::empty());
            // Natively: wait for the previous flush, so its staging memory is freed, while
            // this one's copies run (on a CPU adapter, on the driver's thread) as the caller
            // converts the next window. In the browser the implementation owns staging memory
            // (not wasm memory) and the event loop drives it.
            #[cfg(not(target_arch = "wasm32"))]
            if let Some(prev) = self.in_flight.replace(_index) {
                if let Err(e) = gpu.device.poll(wgpu::PollType::Wait {
                    submission_index: Some(prev),
                    timeout: None,
                }) {
                    gpu.check_alive()?;
                    return Err(GpuError::Validation(e.to_string()));
                }
                gpu.check_alive()?;
            }
            #[cfg(target_arch = "wasm32")]
            gpu.wait_idle()?;
        }
        Ok(())
    }

    /// Every weight with its name (tests compare loaders through it).
    pub fn iter(&self) -> impl Iterator<Item = (&String, &GpuTensor)> {
        self.map.iter()
    }

    pub fn get(&self, name: &str) -> Option<&GpuTensor> {
        self.map.get(name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.map.contains_key(name)
    }

    /// GPU bytes held by weights.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
