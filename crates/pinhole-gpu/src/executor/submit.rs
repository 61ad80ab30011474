//! Submission and readback: every dispatch's params in one uniform buffer (one write), one
//! bind group per dispatch, the whole graph in one compute pass and one submit, outputs copied
//! to mappable buffers in the same command buffer and read back.
//!
//! Recording: the pipelines and bind groups of a run are kept ([`Recording`], a few, most
//! recent last) with a uniform buffer of their own. A later run whose dispatches bind the same
//! buffers ([`DispatchKey`]) writes its params into that uniform buffer and replays them: the
//! next decode step of a model at the same cache bucket differs from the last one only in
//! params (position), uploads (token id, RoPE rows) and nothing the bind groups see, because
//! the buffer pool hands out buffers in a fixed order (sorted after every run).

use std::num::NonZeroU64;

use pinhole_core::graph::Graph;
use pinhole_core::tensor::numel;
use pinhole_core::{DType, Error as CoreError, Tensor};

use super::plan::Plan;
use super::{core_err, Dispatch, Executor};
use crate::error::{GpuError, Result};
use crate::kernels::Kernel;
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
        for (b, data) in &plan.uploads {
            if !data.is_empty() {
                gpu.queue.write_buffer(b, 0, data);
            }
        }

        // A run that binds exactly what a recorded one bound (same kernels, buffers and params
        // sizes: a decode step of the same model and cache bucket, whose token and position
        // live only in the uniform block, the grids and the uploads) replays its pipelines
        // and bind groups.
        let key: Vec<DispatchKey> = plan.dispatches.iter().map(DispatchKey::of).collect();
        let found = self
            .record
            .then(|| self.recordings.iter().position(|r| r.key == key))
            .flatten();
        let rec = match found {
            Some(i) => {
                self.stats.replays += 1;
                self.recordings.remove(i)
            }
            None => self.record_run(key, &plan.dispatches, &offsets, ubytes.len()).await?,
        };
        if !ubytes.is_empty() {
            gpu.queue.write_buffer(&rec.uniform, 0, &ubytes);
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
                for ((p, bg), d) in rec.groups.iter().zip(&plan.dispatches) {
                    let [x, y, z] = d.groups;
                    pass.set_pipeline(p);
                    pass.set_bind_group(0, bg, &[]);
                    pass.dispatch_workgroups(x, y, z);
                }
            }
        }
        self.stats.dispatches += rec.groups.len() * repeats;
        // Most recent last; the oldest recording goes when there are more than RECORDINGS.
        if self.record {
            self.recordings.push(rec);
            if self.recordings.len() > RECORDINGS {
                self.recordings.remove(0);
            }
        }

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
        // In a fixed order, so that the same graph planned again takes the same buffers (and
        // its recording replays).
        self.free.sort_by(|a, b| a.size().cmp(&b.size()).then_with(|| a.cmp(b)));
        Ok(outs)
    }

    /// Pipelines and bind groups for `dispatches`, with a uniform buffer of their own (the
    /// params written at `offsets` each run).
    async fn record_run(
        &mut self,
        key: Vec<DispatchKey>,
        dispatches: &[Dispatch],
        offsets: &[usize],
        ubytes: usize,
    ) -> Result<Recording> {
        let gpu = self.gpu.clone();
        let uniform = gpu.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("pinhole params"),
            size: (ubytes as u64).max(16).div_ceil(256) * 256,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut groups = Vec::with_capacity(dispatches.len());
        for (d, &off) in dispatches.iter().zip(offsets) {
            let pipeline = gpu.pipeline_with(d.kernel, d.w_f16, d.f16_math).await?;
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
            groups.push((pipeline, bg));
        }
        Ok(Recording { key, uniform, groups })
    }
}

/// How many recorded runs an executor keeps (image encode, prefill and decode of one
/// generation, and a spare).
const RECORDINGS: usize = 4;

/// What a dispatch's bind group and pipeline depend on; two runs whose dispatches have equal
/// keys can share bind groups (the params themselves are rewritten every run).
#[derive(PartialEq)]
pub(super) struct DispatchKey {
    kernel: Kernel,
    w_f16: bool,
    f16_math: bool,
    params_len: usize,
    bindings: Vec<(u32, wgpu::Buffer)>,
}

impl DispatchKey {
    fn of(d: &Dispatch) -> Self {
        DispatchKey {
            kernel: d.kernel,
            w_f16: d.w_f16,
            f16_math: d.f16_math,
            params_len: d.params.len(),
            bindings: d.bindings.clone(),
        }
    }
}

/// A recorded run: its pipelines and bind groups, replayed by every later run with the same
/// [`DispatchKey`]s. wgpu cannot replay a compute pass, so the pass is encoded again each run
/// (a few calls per dispatch); what is saved is creating the bind groups and looking up the
/// pipelines.
pub(super) struct Recording {
    key: Vec<DispatchKey>,
    uniform: wgpu::Buffer,
    groups: Vec<(wgpu::ComputePipeline, wgpu::BindGroup)>,
}
