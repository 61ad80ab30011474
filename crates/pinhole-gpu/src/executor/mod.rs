//! The graph executor: plans buffers for a [`Graph`], turns every op into WGSL dispatches,
//! encodes the whole graph into one command buffer with one submit, and reads back only the
//! graph's outputs.
//!
//! Memory: intermediate buffers come from a pool. A value's buffer returns to the pool right
//! after its last use, so later ops in the same graph reuse it (WebGPU orders dispatches and
//! their storage hazards); across runs the pool keeps the buffers, so a decode loop allocates
//! nothing after its first step. Persistent `State` tensors (KV caches) live in the executor.
//!
//! By concern:
//! * `plan`: liveness, the buffer pool, host uploads, state tensors, and the one match that
//!   sends each op to the dispatch module of its family;
//! * `submit`: the uniform block, bind groups, one command buffer, one submit, readback; a run
//!   whose dispatches bind the same buffers as a recent one (the next decode step of the same
//!   model and cache bucket: token and position change only the uniform block and uploads)
//!   replays that run's recorded pipelines and bind groups;
//! * `fuse`: which matmuls take over the residual add or activation right after them (one
//!   dispatch, the bias-and-epilogue step of common/epilogue.wgsl);
//! * `dispatch`: a [`Dispatch`] (kernel, typed params, bindings by WGSL name, checked against
//!   the kernel table) and [`OpCtx`], all a dispatch module sees of the plan;
//! * one dispatch module per op family, each turning its ops into dispatches: `matmul` (f32,
//!   f16 and 4-bit weights), `attention`, `norm`, `elementwise`, `rope`, `embedding` (gather,
//!   scatter), `copy` (rows, reshape, KV-cache writes), `sampling` (argmax, sample, repetition
//!   penalty), `patch_embed`.

mod attention;
mod copy;
mod dispatch;
mod elementwise;
mod embedding;
mod fuse;
mod matmul;
mod norm;
mod patch_embed;
mod plan;
mod rope;
mod sampling;
mod submit;

use std::collections::HashMap;
use std::sync::Arc;

use pinhole_core::graph::Graph;
use pinhole_core::{Error as CoreError, Tensor};

use crate::context::Gpu;
use crate::error::{GpuError, Result};
use crate::weights::{GpuTensor, WeightStore};

pub(crate) use dispatch::{Dispatch, OpCtx};

/// Counters for tests and `--json` reports.
#[derive(Clone, Debug, Default)]
pub struct RunStats {
    pub dispatches: usize,
    pub submits: usize,
    pub buffers_created: usize,
    pub pooled_bytes: u64,
    /// Runs that replayed a recorded run's bind groups (see `submit`).
    pub replays: usize,
}

pub struct Executor {
    gpu: Arc<Gpu>,
    states: HashMap<String, GpuTensor>,
    free: Vec<wgpu::Buffer>,
    readback_free: Vec<wgpu::Buffer>,
    /// Recently run dispatch lists with their bind groups, most recent last.
    recordings: Vec<submit::Recording>,
    /// Fill every op output with NaN before the op runs, so an element a kernel forgets to
    /// write shows up in tests instead of passing by luck.
    pub poison: bool,
    /// Keep the pipelines and bind groups of recent runs and replay them when a run binds the
    /// same buffers (on by default; tests turn it off to compare).
    pub record: bool,
    /// Fuse a matmul with the residual add or activation that consumes it (`fuse`; on by
    /// default; tests and `pinhole bench model --no-fuse` turn it off to compare).
    pub fuse: bool,
    pub stats: RunStats,
}

fn core_err(e: CoreError) -> GpuError {
    GpuError::Core(e)
}

impl Executor {
    pub fn new(gpu: Arc<Gpu>) -> Self {
        Executor {
            gpu,
            states: HashMap::new(),
            free: Vec::new(),
            readback_free: Vec::new(),
            recordings: Vec::new(),
            poison: false,
            record: true,
            fuse: true,
            stats: RunStats::default(),
        }
    }

    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }

    /// Drops persistent state (KV caches) so the next graph starts fresh.
    pub fn clear_states(&mut self) {
        self.states.clear();
        // Their bind groups hold the old states (and weights) alive.
        self.recordings.clear();
    }

    /// GPU bytes held by persistent state tensors.
    pub fn state_bytes(&self) -> u64 {
        self.states.values().map(|t| t.bytes()).sum()
    }

    /// Runs `g` and returns its outputs, in order.
    pub async fn run(
        &mut self,
        g: &Graph,
        weights: &WeightStore,
        inputs: &HashMap<String, Tensor>,
    ) -> Result<Vec<Tensor>> {
        self.gpu.check_alive()?;
        let scope = self.gpu.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let oom = self.gpu.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let plan = self.plan(g, weights, inputs);
        let result = match plan {
            Ok(plan) => self.submit_and_read(g, plan, 1).await,
            Err(e) => Err(e),
        };
        let oom_err = oom.pop().await;
        let val_err = scope.pop().await;
        // A lost device also fails mapping and validation: report the cause, not the symptom.
        self.gpu.check_alive()?;
        if let Some(e) = oom_err {
            return Err(GpuError::Validation(format!("out of GPU memory: {e}")));
        }
        if let Some(e) = val_err {
            return Err(GpuError::Validation(e.to_string()));
        }
        if let Some(e) = self.gpu.take_uncaptured() {
            return Err(GpuError::Validation(e));
        }
        result
    }

    /// Runs the graph's dispatches `repeats` times in one submission and returns the wall
    /// time per repeat in seconds (native only; used by `pinhole bench`).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn time_graph(
        &mut self,
        g: &Graph,
        weights: &WeightStore,
        inputs: &HashMap<String, Tensor>,
        repeats: usize,
    ) -> Result<f64> {
        let plan = self.plan(g, weights, inputs)?;
        let start = std::time::Instant::now();
        pollster::block_on(self.submit_and_read(g, plan, repeats.max(1)))?;
        Ok(start.elapsed().as_secs_f64() / repeats.max(1) as f64)
    }
}
