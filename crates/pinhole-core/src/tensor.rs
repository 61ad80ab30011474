//! Host-side tensors: row-major, with a dtype that says how the values are *stored*.
//!
//! Activations are always f32. Weights may be stored as f16 (or bf16 converted to f16/f32 on
//! load); on the host a weight keeps its values as f32 that are exactly representable in the
//! storage dtype, so the CPU reference computes with exactly the numbers the GPU reads.

use std::borrow::Cow;

use crate::error::{shape_err, Error, Result};
use crate::quant::{self, Q4Data, Q4Format};
// Re-exported: callers have always found these here.
pub use crate::num::{rel_error, round_f16};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    /// IEEE half precision. Only used for stored weights; kernels compute in f32.
    F16,
    /// bfloat16: only appears in checkpoints; converted on load.
    BF16,
    /// Token ids, positions, indices.
    U32,
    /// 4-bit group-quantized weight (see [`crate::quant`]); the shape is the logical `[N, K]`.
    Q4(Q4Format),
}

impl DType {
    /// Bytes per element as stored on the GPU.
    pub fn size(self) -> usize {
        match self {
            DType::F32 | DType::U32 => 4,
            DType::F16 | DType::BF16 => 2,
            // Not a per-element size: 4 bits plus the scales; see `quant::row_bytes`.
            DType::Q4(_) => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
            DType::BF16 => "bf16",
            DType::U32 => "u32",
            DType::Q4(f) => f.scheme.meta(),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    F32(Vec<f32>),
    U32(Vec<u32>),
    /// The stored bits of a 4-bit weight.
    Q4(Q4Data),
}

/// A host tensor. `dtype` is the storage dtype; `data` holds f32 values for float dtypes
/// (already rounded to the storage precision) and u32 values for `U32`.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub data: Data,
}

pub fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

impl Tensor {
    pub fn f32(shape: &[usize], data: Vec<f32>) -> Result<Tensor> {
        check_len("Tensor::f32", shape, data.len())?;
        Ok(Tensor {
            shape: shape.to_vec(),
            dtype: DType::F32,
            data: Data::F32(data),
        })
    }

    /// A weight stored as f16: the values are rounded to f16 now, so the CPU reference and the
    /// GPU see identical numbers.
    pub fn f16(shape: &[usize], data: Vec<f32>) -> Result<Tensor> {
        check_len("Tensor::f16", shape, data.len())?;
        let data = data.into_iter().map(round_f16).collect();
        Ok(Tensor {
            shape: shape.to_vec(),
            dtype: DType::F16,
            data: Data::F32(data),
        })
    }

    pub fn u32(shape: &[usize], data: Vec<u32>) -> Result<Tensor> {
        check_len("Tensor::u32", shape, data.len())?;
        Ok(Tensor {
            shape: shape.to_vec(),
            dtype: DType::U32,
            data: Data::U32(data),
        })
    }

    /// A 4-bit weight `[n, k]` from its stored bits (checked against the shape).
    pub fn q4(shape: &[usize], f: Q4Format, d: Q4Data) -> Result<Tensor> {
        if shape.len() != 2 {
            return Err(shape_err(
                "Tensor::q4",
                format!("4-bit weights are matrices, got shape {shape:?}"),
            ));
        }
        d.check("Tensor::q4", shape[0], shape[1], f)?;
        Ok(Tensor {
            shape: shape.to_vec(),
            dtype: DType::Q4(f),
            data: Data::Q4(d),
        })
    }

    /// Quantizes a float `[n, k]` tensor to 4 bits.
    pub fn quantize_q4(&self, f: Q4Format) -> Result<Tensor> {
        if self.shape.len() != 2 {
            return Err(shape_err(
                "quantize",
                format!("expected a matrix, got {:?}", self.shape),
            ));
        }
        let d = quant::quantize(self.as_f32()?, self.shape[0], self.shape[1], f)?;
        Tensor::q4(&self.shape, f, d)
    }

    /// The float values; a 4-bit tensor is dequantized (as the kernels do). What the CPU
    /// reference computes with for weights.
    pub fn values(&self) -> Result<Cow<'_, [f32]>> {
        match (&self.data, self.dtype) {
            (Data::Q4(d), DType::Q4(f)) => Ok(Cow::Owned(quant::dequantize(d, self.shape[0], self.shape[1], f))),
            _ => self.as_f32().map(Cow::Borrowed),
        }
    }

    pub fn zeros(shape: &[usize]) -> Tensor {
        Tensor {
            shape: shape.to_vec(),
            dtype: DType::F32,
            data: Data::F32(vec![0.0; numel(shape)]),
        }
    }

    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    /// The float values (f32 or rounded f16). Errors for u32 tensors.
    pub fn as_f32(&self) -> Result<&[f32]> {
        match &self.data {
            Data::F32(v) => Ok(v),
            Data::U32(_) => Err(Error::DType {
                what: "tensor".into(),
                detail: "expected float, got u32".into(),
            }),
            Data::Q4(_) => Err(Error::DType {
                what: "tensor".into(),
                detail: "expected float values, got a 4-bit weight (use `values()` to dequantize)".into(),
            }),
        }
    }

    pub fn as_u32(&self) -> Result<&[u32]> {
        match &self.data {
            Data::U32(v) => Ok(v),
            Data::F32(_) | Data::Q4(_) => Err(Error::DType {
                what: "tensor".into(),
                detail: format!("expected u32, got {}", self.dtype.name()),
            }),
        }
    }

    /// Number of rows when viewed as a matrix `[rows, last_dim]`.
    pub fn rows(&self) -> usize {
        rows_of(&self.shape)
    }

    /// The bytes the GPU stores for this tensor: f32/u32 as 4-byte words, f16 as packed halves
    /// (padded to a whole number of 4-byte words).
    pub fn to_storage_bytes(&self) -> Vec<u8> {
        self.storage_bytes_range(0, self.numel())
    }

    /// Storage bytes of elements `[start, end)`, used to split a tensor across bindings.
    /// A 4-bit tensor is split at whole rows (`start` and `end` multiples of K) and stored
    /// as [`quant::chunk_storage_bytes`] lays it out.
    pub fn storage_bytes_range(&self, start: usize, end: usize) -> Vec<u8> {
        match (&self.data, self.dtype) {
            (Data::Q4(d), DType::Q4(f)) => {
                let k = self.shape[1].max(1);
                quant::chunk_storage_bytes(d, k, f, start / k, end.div_ceil(k))
            }
            _ => storage_bytes(&self.data, self.dtype, start, end),
        }
    }
}

fn storage_bytes(data: &Data, dtype: DType, start: usize, end: usize) -> Vec<u8> {
    let mut out = match (data, dtype) {
        (Data::U32(v), _) => bytemuck::cast_slice(&v[start..end]).to_vec(),
        (Data::Q4(d), _) => bytemuck::cast_slice(&d.packed).to_vec(),
        (Data::F32(v), DType::F16) | (Data::F32(v), DType::BF16) => {
            let mut b = Vec::with_capacity((end - start) * 2 + 2);
            for &x in &v[start..end] {
                b.extend_from_slice(&half::f16::from_f32(x).to_le_bytes());
            }
            b
        }
        (Data::F32(v), _) => bytemuck::cast_slice(&v[start..end]).to_vec(),
    };
    while out.len() % 4 != 0 {
        out.push(0);
    }
    out
}

pub fn rows_of(shape: &[usize]) -> usize {
    if shape.is_empty() {
        1
    } else {
        numel(&shape[..shape.len() - 1])
    }
}

fn check_len(what: &str, shape: &[usize], len: usize) -> Result<()> {
    if numel(shape) != len {
        return Err(shape_err(
            what,
            format!("shape {shape:?} holds {} values but {len} were given", numel(shape)),
        ));
    }
    Ok(())
}
