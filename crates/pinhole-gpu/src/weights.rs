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

/// Uploads a host tensor, split by rows to fit the per-binding limit.
pub fn upload(gpu: &Gpu, name: &str, t: &Tensor) -> Result<GpuTensor> {
    let dtype = match t.dtype {
        DType::BF16 => DType::F16,
        d => d,
    };
    let rows = t.rows();
    let cols = *t.shape.last().unwrap_or(&1);
    // Matrices (linear weights, embedding tables) are split by rows; the kernels that read
    // them take one dispatch per chunk. Other tensors (norm weights, biases, conv kernels,
    // position tables) are small in every real model and must fit one binding whole.
    let limit = if t.shape.len() == 2 {
        gpu.weight_binding_limit()
    } else {
        gpu.activation_binding_limit()
    };
    let per = if t.shape.len() == 2 {
        rows_per_chunk(name, rows, cols, dtype, limit)?
    } else {
        rows.max(1)
    };
    if t.shape.len() != 2 && chunk_bytes(rows, cols, dtype) > limit {
        return Err(GpuError::TooLarge {
            what: format!("weight '{name}' {:?}", t.shape),
            bytes: chunk_bytes(rows, cols, dtype),
            limit,
            limit_name: "max_storage_buffer_binding_size",
        });
    }
    let mut chunks = Vec::new();
    let mut row0 = 0;
    while row0 < rows.max(1) {
        let n = per.min(rows.max(1) - row0);
        let mut bytes = t.storage_bytes_range(row0 * cols, ((row0 + n) * cols).min(t.numel()));
        if matches!(dtype, DType::Q4(_)) {
            bytes.resize(chunk_bytes(n, cols, dtype) as usize, 0);
        }
        let size = (bytes.len() as u64).max(4);
        if size > gpu.limits.max_buffer_size {
            return Err(GpuError::TooLarge {
                what: format!("weight '{name}'"),
                bytes: size,
                limit: gpu.limits.max_buffer_size,
                limit_name: "max_buffer_size",
            });
        }
        let buffer = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(name),
            size,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        if !bytes.is_empty() {
            gpu.queue.write_buffer(&buffer, 0, &bytes);
        }
        chunks.push(Chunk { buffer, row0, rows: n });
        row0 += n;
    }
    Ok(GpuTensor {
        shape: t.shape.clone(),
        dtype,
        chunks,
    })
}

/// All weights of a model, by name.
#[derive(Default)]
pub struct WeightStore {
    map: HashMap<String, GpuTensor>,
    bytes: u64,
}

impl WeightStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Uploads one weight. The host tensor can be dropped as soon as this returns.
    pub fn upload(&mut self, gpu: &Gpu, name: &str, t: &Tensor) -> Result<()> {
        let g = upload(gpu, name, t)?;
        self.bytes += g.bytes();
        if let Some(old) = self.map.insert(name.to_string(), g) {
            self.bytes -= old.bytes();
        }
        Ok(())
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
