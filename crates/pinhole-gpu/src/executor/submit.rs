//! Submission and readback: every dispatch's params in one uniform buffer (one write), one
//! bind group per dispatch, the whole graph in one compute pass and one submit, outputs copied
//! to mappable buffers in the same command buffer and read back.

use std::num::NonZeroU64;

use pinhole_core::graph::Graph;
use pinhole_core::tensor::numel;
use pinhole_core::{DType, Error as CoreError, Tensor};

use super::plan::Plan;
use super::{core_err, Executor};
use crate::error::{GpuError, Result};
use crate::readback::MapFuture;

impl Executor {
    pub(super) async fn submit_and_read(&mut self, g: &Graph, plan: Plan, repeats: usize) -> Result<Vec<Tensor>> {
        let gpu = self.gpu.clone();
        let align = gpu.limits.min_uniform_buffer_offset_alignment.max(16) as usize;
        // One uniform buffer for every dispatch's parameters, one write.
        let mut ubytes: Vec<u8> = Vec::new();
        let mut offsets = Vec::with_capacity(plan.dispatches.len());
        for d in &plan.dispatches {
            let off = ubytes.len().div_ceil(align) * align;
            ubytes.resize(off, 0);
            offsets.push(off);
            ubytes.extend_from_slice(&d.params);
            let padded = ubytes.len().div_ceil(16) * 16;
            ubytes.resize(padded, 0);
        }
        let usize_ = (ubytes.len() as u64).max(16);
        if self.uniform.as_ref().is_none_or(|u| u.size() < usize_) {
            self.uniform = Some(gpu.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("pinhole params"),
                size: usize_.div_ceil(4096) * 4096,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }));
        }
        let uniform = self
            .uniform
            .clone()
            .ok_or_else(|| GpuError::Validation("no uniform buffer".into()))?;
        if !ubytes.is_empty() {
            gpu.queue.write_buffer(&uniform, 0, &ubytes);
        }
        for (b, data) in &plan.uploads {
            if !data.is_empty() {
                gpu.queue.write_buffer(b, 0, data);
            }
        }

        let mut groups_list = Vec::with_capacity(plan.dispatches.len());
        for (d, &off) in plan.dispatches.iter().zip(&offsets) {
            let pipeline = gpu.pipeline(d.kernel, d.w_f16).await?;
            let layout = pipeline.get_bind_group_layout(0);
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &uniform,
                    offset: off as u64,
                    size: NonZeroU64::new(d.params.len() as u64),
                }),
            }];
            for (bi, b) in &d.bindings {
                entries.push(wgpu::BindGroupEntry {
                    binding: *bi,
                    resource: b.as_entire_binding(),
                });
            }
            let bg = gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(d.kernel.entry()),
                layout: &layout,
                entries: &entries,
            });
            groups_list.push((pipeline, bg, d.groups));
        }

        let mut enc = gpu.device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
            label: Some("pinhole forward"),
        });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("pinhole graph"),
                timestamp_writes: None,
            });
            for _ in 0..repeats {
                for (p, bg, [x, y, z]) in &groups_list {
                    pass.set_pipeline(p);
                    pass.set_bind_group(0, bg, &[]);
                    pass.dispatch_workgroups(*x, *y, *z);
                }
            }
        }
        self.stats.dispatches += groups_list.len() * repeats;

        // Copy outputs to mappable buffers in the same command buffer.
        let mut reads = Vec::new();
        for o in &g.outputs {
            let v = g.value(*o).map_err(core_err)?;
            let t = plan.values[o.0]
                .as_ref()
                .ok_or_else(|| core_err(CoreError::Graph(format!("output #{} not computed", o.0))))?;
            let bytes = (numel(&v.shape) * 4) as u64;
            let src = t.single("output", &gpu)?.clone();
            let size = bytes.max(4).div_ceil(4) * 4;
            let rb = match self
                .readback_free
                .iter()
                .position(|b| b.size() >= size && b.size() <= size * 2 + 4096)
            {
                Some(i) => self.readback_free.swap_remove(i),
                None => gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("pinhole readback"),
                    size: size.div_ceil(256) * 256,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }),
            };
            if bytes > 0 {
                enc.copy_buffer_to_buffer(&src, 0, &rb, 0, Some(size));
            }
            reads.push((rb, size, v.shape.clone(), v.dtype));
        }
        gpu.queue.submit(Some(enc.finish()));
        self.stats.submits += 1;

        let futures: Vec<MapFuture> = reads.iter().map(|(rb, size, _, _)| MapFuture::new(rb, *size)).collect();
        gpu.wait_idle()?;
        let mut outs = Vec::with_capacity(reads.len());
        for (fut, (rb, size, shape, dtype)) in futures.into_iter().zip(reads) {
            fut.await.map_err(GpuError::Readback)?;
            let n = numel(&shape);
            let t = {
                let view = rb
                    .get_mapped_range(..size)
                    .map_err(|e| GpuError::Readback(e.to_string()))?;
                let words: &[u32] =
                    bytemuck::try_cast_slice(&view[..n * 4]).map_err(|e| GpuError::Readback(e.to_string()))?;
                if dtype == DType::U32 {
                    Tensor::u32(&shape, words.to_vec())
                } else {
                    Tensor::f32(&shape, words.iter().map(|&w| f32::from_bits(w)).collect())
                }
            };
            rb.unmap();
            self.readback_free.push(rb);
            outs.push(t.map_err(core_err)?);
        }
        // Everything taken for this run goes back to the pool for the next one.
        // (A buffer can appear twice in `taken` when it was freed and handed out again.)
        for b in plan.taken {
            if !self.free.contains(&b) {
                self.free.push(b);
            }
        }
        Ok(outs)
    }
}
