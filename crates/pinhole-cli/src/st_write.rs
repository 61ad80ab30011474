//! A minimal safetensors writer for `--dump` (f32 and u32 tensors).

use pinhole_core::tensor::Data;
use pinhole_core::Tensor;

pub fn serialize(tensors: &[(&str, &Tensor)]) -> Result<Vec<u8>, String> {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, t) in tensors {
        let (dtype, bytes): (&str, Vec<u8>) = match &t.data {
            Data::F32(v) => ("F32", bytemuck::cast_slice(v).to_vec()),
            Data::U32(v) => ("U32", bytemuck::cast_slice(v).to_vec()),
            Data::Q4(_) => return Err(format!("{name}: 4-bit tensors are not written by --dump")),
        };
        let start = data.len();
        data.extend_from_slice(&bytes);
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype, "shape": t.shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut h = serde_json::Value::Object(header).to_string().into_bytes();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + h.len() + data.len());
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(&data);
    Ok(out)
}
