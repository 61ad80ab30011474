//! Device setup: pick an adapter, request a device with the adapter's own limits, compile
//! pipelines once, and turn wgpu's asynchronous error reporting into values instead of panics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{GpuError, Result};
use crate::kernels::{Family, Kernel};
use crate::wgsl::Variant;

/// How to open the GPU.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Lowers the per-binding size used to split large weights (bytes). `None` uses the
    /// adapter's `max_storage_buffer_binding_size`. Tests use it to prove splitting works.
    pub max_binding_bytes: Option<u64>,
    /// Ask for the software fallback adapter.
    pub force_fallback: bool,
}

impl GpuOptions {
    /// Reads `PINHOLE_MAX_BINDING_BYTES` from the environment (native only).
    pub fn from_env() -> Self {
        #[cfg(not(target_arch = "wasm32"))]
        let max_binding_bytes = std::env::var("PINHOLE_MAX_BINDING_BYTES")
            .ok()
            .and_then(|v| v.trim().parse().ok());
        #[cfg(target_arch = "wasm32")]
        let max_binding_bytes = None;
        GpuOptions {
            max_binding_bytes,
            ..GpuOptions::default()
        }
    }
}

/// What `pinhole info` prints.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    /// A CPU/software implementation (llvmpipe, SwiftShader, WARP): correct but slow.
    pub is_software: bool,
    pub shader_f16: bool,
    pub subgroups: bool,
    /// Subgroup sizes the adapter may use (wgpu's adapter info; meaningful with `subgroups`).
    pub subgroup_min_size: u32,
    pub subgroup_max_size: u32,
    /// Whether the GEMV row reductions start out on subgroups (`Gpu::subgroup_reduce`).
    pub subgroup_reduce: bool,
    pub features: Vec<String>,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroups_per_dimension: u32,
    pub max_storage_buffers_per_shader_stage: u32,
    /// The per-binding size weights are split at (the adapter limit or a lowered override).
    pub weight_binding_limit: u64,
}

pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: AdapterSummary,
    pub limits: wgpu::Limits,
    weight_binding_limit: u64,
    /// Modules by family and the variant (subgroup and f16-math snippets) they were built in.
    modules: Mutex<HashMap<(Family, Variant), wgpu::ShaderModule>>,
    /// Pipelines by kernel, weight dtype (f16) and module variant.
    pipelines: Mutex<HashMap<(Kernel, bool, Variant), wgpu::ComputePipeline>>,
    subgroup_reduce: AtomicBool,
    /// The tiled GEMMs plan their f16-math variant (`Gpu::set_f16_math`); off by default.
    f16_math: AtomicBool,
    uncaptured: Arc<Mutex<Vec<String>>>,
    lost: Arc<Mutex<Option<String>>>,
    /// Bound where a kernel declares an optional input that this dispatch does not use.
    pub(crate) dummy: wgpu::Buffer,
    /// Matmuls use the barrier-free kernels (row-per-thread GEMV, register-tiled GEMM: no
    /// workgroup memory, no barriers) instead of the GPU ones; on by default on CPU adapters.
    barrier_free_matmul: AtomicBool,
    /// An attention kernel forced for attentions planned from now on (benchmarks, tests);
    /// `None`: the rule of executor/attention.rs.
    attention_kernel: Mutex<Option<Kernel>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock only means another thread panicked while holding it; the data (caches,
    // error lists) is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Gpu {
    pub async fn new(opts: &GpuOptions) -> Result<Arc<Gpu>> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
            backends: wgpu::Backends::VULKAN
                | wgpu::Backends::METAL
                | wgpu::Backends::DX12
                | wgpu::Backends::BROWSER_WEBGPU,
            ..wgpu::InstanceDescriptor::new_without_display_handle()
        });
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                force_fallback_adapter: opts.force_fallback,
                compatible_surface: None,
                apply_limit_buckets: false,
            })
            .await
            .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        let features = adapter.features();
        let limits = adapter.limits();
        // Ask for exactly what the adapter offers: the default WebGPU limits (128 MiB per
        // binding, 256 MiB per buffer) are far below what real models need.
        let mut wanted = wgpu::Features::empty();
        for f in [wgpu::Features::SHADER_F16, wgpu::Features::SUBGROUP] {
            if features.contains(f) {
                wanted |= f;
            }
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("pinhole"),
                required_features: wanted,
                required_limits: limits.clone(),
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::RequestDevice(e.to_string()))?;

        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        // wgpu's default handler panics; a runtime embedded in a page or an app must not.
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| lock(&sink).push(e.to_string())));
        let lost = Arc::new(Mutex::new(None));
        let lost_sink = lost.clone();
        // Natively wgpu calls this from `Device::destroy`, a poll that finds the device gone,
        // or the drop; in the browser when `GPUDevice.lost` resolves. Work after it fails fast
        // in `check_alive` instead of queuing commands on a dead device.
        device.set_device_lost_callback(move |reason, msg| {
            *lock(&lost_sink) = Some(lost_reason(reason, &msg));
        });

        let adapter_limit = limits.max_storage_buffer_binding_size as u64;
        let weight_binding_limit = match opts.max_binding_bytes {
            Some(b) if b >= 256 => b.min(adapter_limit),
            _ => adapter_limit,
        };
        let is_software = matches!(info.device_type, wgpu::DeviceType::Cpu)
            || info.name.to_lowercase().contains("llvmpipe")
            || info.name.to_lowercase().contains("swiftshader");
        let summary = AdapterSummary {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            is_software,
            shader_f16: features.contains(wgpu::Features::SHADER_F16),
            subgroups: features.contains(wgpu::Features::SUBGROUP),
            subgroup_min_size: info.subgroup_min_size,
            subgroup_max_size: info.subgroup_max_size,
            subgroup_reduce: device.features().contains(wgpu::Features::SUBGROUP),
            features: features.iter_names().map(|(n, _)| n.to_string()).collect(),
            max_storage_buffer_binding_size: adapter_limit,
            max_buffer_size: limits.max_buffer_size,
            max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            max_storage_buffers_per_shader_stage: limits.max_storage_buffers_per_shader_stage,
            weight_binding_limit,
        };
        let dummy = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("pinhole dummy"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        // The subgroup row reductions need the feature on the device, not just the adapter.
        let subgroups = device.features().contains(wgpu::Features::SUBGROUP);
        Ok(Arc::new(Gpu {
            device,
            queue,
            adapter: summary,
            limits,
            weight_binding_limit,
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
            uncaptured,
            lost,
            dummy,
            barrier_free_matmul: AtomicBool::new(is_software),
            attention_kernel: Mutex::new(None),
            subgroup_reduce: AtomicBool::new(subgroups),
            f16_math: AtomicBool::new(false),
        }))
    }

    /// Whether matmuls run the barrier-free kernels (`gemv_rows` and `gemm_reg` of
    /// linear_vec4.wgsl and q4.wgsl) rather than the GPU ones (K-split GEMV with a workgroup
    /// reduction, shared-memory tiled GEMM). The default is the adapter rule: on for CPU
    /// adapters, off for GPUs.
    pub fn barrier_free_matmul(&self) -> bool {
        self.barrier_free_matmul.load(Ordering::Relaxed)
    }

    /// Overrides [`Gpu::barrier_free_matmul`] for matmuls planned from now on. Tests use it to
    /// run both kernel families on one adapter; results are the same either way (up to f32
    /// summation order).
    pub fn set_barrier_free_matmul(&self, on: bool) {
        self.barrier_free_matmul.store(on, Ordering::Relaxed);
    }

    /// Forces `kernel` (one of `Kernel::Attention`, `AttentionRows`, `AttentionTiled`) for
    /// the attentions planned from now on wherever it supports the shape (the rule's choice
    /// elsewhere); `None` restores the rule. `pinhole bench kernels` uses it to time the
    /// variants side by side.
    pub fn set_attention_kernel(&self, kernel: Option<Kernel>) {
        *lock(&self.attention_kernel) = kernel;
    }

    pub(crate) fn attention_kernel(&self) -> Option<Kernel> {
        *lock(&self.attention_kernel)
    }

    /// Whether the GEMV row reductions use subgroup operations (`common/row_sum_sg.wgsl`)
    /// rather than workgroup memory (`common/row_sum_wg.wgsl`). On when the adapter has
    /// `SUBGROUP` and the device was created with it (native only: wgpu's WebGPU backend never
    /// enables the feature, so the browser always runs the fallback).
    pub fn subgroup_reduce(&self) -> bool {
        self.subgroup_reduce.load(Ordering::Relaxed)
    }

    /// Overrides [`Gpu::subgroup_reduce`] for pipelines fetched from now on; `true` is ignored
    /// on a device without subgroups. Tests use it to run both variants on one adapter.
    pub fn set_subgroup_reduce(&self, on: bool) {
        let on = on && self.device.features().contains(wgpu::Features::SUBGROUP);
        self.subgroup_reduce.store(on, Ordering::Relaxed);
    }

    /// Whether the device was created with `shader-f16` (requested whenever the adapter has
    /// it), which the f16-math GEMM needs.
    pub fn has_shader_f16(&self) -> bool {
        self.device.features().contains(wgpu::Features::SHADER_F16)
    }

    /// Whether matmuls planned now run the f16-math variant of the shared-memory tiled GEMM
    /// (see [`Gpu::set_f16_math`]).
    pub fn f16_math(&self) -> bool {
        self.f16_math.load(Ordering::Relaxed)
    }

    /// Turns f16 arithmetic on or off for the shared-memory tiled GEMM (`gemm` of
    /// matmul.wgsl and q4.wgsl: prefill and the vision tower on GPUs) for matmuls planned from
    /// now on: f16 slabs in workgroup memory and f16 products summed in f16 within each
    /// K slab (common/tile_f16.wgsl). Meant for GPUs with fast f16 (twice the f32 FMA rate
    /// on many, and half the workgroup memory traffic), but results move by ~1e-3 relative,
    /// so it is off by default and outputs no longer equal transformers bit for bit. Everything else stays f32: the GEMVs (decode), the
    /// epilogues, and the CPU adapters' register-tiled `gemm_reg`, since a CPU adapter
    /// (llvmpipe, SwiftShader) emulates f16 through f32 and would only pay the conversions.
    /// `Err(GpuError::MissingFeature)` when the device has no `shader-f16`.
    pub fn set_f16_math(&self, on: bool) -> Result<()> {
        if on && !self.has_shader_f16() {
            return Err(GpuError::MissingFeature {
                what: "f16 math".into(),
                feature: "shader-f16",
                adapter: self.adapter.name.clone(),
            });
        }
        self.f16_math.store(on, Ordering::Relaxed);
        Ok(())
    }

    /// Bytes per binding that weights are split at.
    pub fn weight_binding_limit(&self) -> u64 {
        self.weight_binding_limit
    }

    /// Largest single binding for activations (the adapter limit, also capped by
    /// `max_buffer_size`).
    pub fn activation_binding_limit(&self) -> u64 {
        self.limits
            .max_storage_buffer_binding_size
            .min(self.limits.max_buffer_size)
    }

    /// `Err(GpuError::DeviceLost)` once the device was lost (see [`Gpu::lost_reason`]).
    pub fn check_alive(&self) -> Result<()> {
        // Natively wgpu reports a loss from its maintenance step, which only a poll runs
        // (`destroy()` itself does not call the callback): a non-blocking poll makes it
        // visible now rather than after the next wait.
        #[cfg(not(target_arch = "wasm32"))]
        if lock(&self.lost).is_none() {
            let _ = self.device.poll(wgpu::PollType::Poll);
        }
        match self.lost_reason() {
            Some(reason) => Err(GpuError::DeviceLost { reason, during: None }),
            None => Ok(()),
        }
    }

    /// Why the device was lost, once it was; `None` while it is usable.
    pub fn lost_reason(&self) -> Option<String> {
        lock(&self.lost).clone()
    }

    pub(crate) fn take_uncaptured(&self) -> Option<String> {
        let mut v = lock(&self.uncaptured);
        if v.is_empty() {
            None
        } else {
            Some(std::mem::take(&mut *v).join("; "))
        }
    }

    /// The compiled pipeline for a kernel, built on first use and cached (one compile per
    /// kernel, weight dtype and variant for the life of the device).
    pub async fn pipeline(&self, kernel: Kernel, w_f16: bool) -> Result<wgpu::ComputePipeline> {
        self.pipeline_with(kernel, w_f16, false).await
    }

    /// [`Gpu::pipeline`], with `f16_math` the f16-math variant of a kernel that has one
    /// ([`Kernel::has_f16_math`]; ignored for the others). The subgroup variant follows
    /// [`Gpu::subgroup_reduce`].
    pub async fn pipeline_with(&self, kernel: Kernel, w_f16: bool, f16_math: bool) -> Result<wgpu::ComputePipeline> {
        let w_f16 = w_f16 && kernel.has_weight_dtype();
        let variant = Variant {
            subgroups: self.subgroup_reduce(),
            f16_math: f16_math && kernel.has_f16_math(),
        };
        if variant.f16_math && !self.has_shader_f16() {
            return Err(GpuError::MissingFeature {
                what: format!("the f16-math variant of {}", kernel.label()),
                feature: "shader-f16",
                adapter: self.adapter.name.clone(),
            });
        }
        if let Some(p) = lock(&self.pipelines).get(&(kernel, w_f16, variant)) {
            return Ok(p.clone());
        }
        let family = kernel.family();
        let cached = lock(&self.modules).get(&(family, variant)).cloned();
        // Join the includes before the error scope opens, so that a bad include returns with
        // the scope stack balanced.
        let source = if cached.is_none() {
            crate::wgsl::source_with(family.file(), variant)?
        } else {
            String::new()
        };
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = match cached {
            Some(m) => m,
            None => {
                let m = self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(family.file()),
                    source: wgpu::ShaderSource::Wgsl(source.into()),
                });
                lock(&self.modules).insert((family, variant), m.clone());
                m
            }
        };
        let constants: Vec<(&str, f64)> = if kernel.has_weight_dtype() {
            vec![("W_F16", if w_f16 { 1.0 } else { 0.0 })]
        } else {
            vec![]
        };
        let label = kernel.label();
        let pipeline = self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: None,
            module: &module,
            entry_point: Some(kernel.entry()),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                zero_initialize_workgroup_memory: true,
            },
            cache: None,
        });
        if let Some(err) = scope.pop().await {
            // Do not cache a broken module either.
            lock(&self.modules).remove(&(family, variant));
            // On a lost device every compile fails: that is the error to report.
            self.check_alive()?;
            return Err(GpuError::Shader {
                kernel: label,
                message: err.to_string(),
            });
        }
        lock(&self.pipelines).insert((kernel, w_f16, variant), pipeline.clone());
        Ok(pipeline)
    }

    /// Compiles every kernel of the table (both weight dtypes where relevant, and the
    /// f16-math variants where the device has `shader-f16`); used by tests and `info`.
    /// Returns the number of pipelines.
    pub async fn compile_all(&self) -> Result<usize> {
        let mut n = 0;
        for &k in Kernel::ALL {
            for f16 in [false, true] {
                if f16 && !k.has_weight_dtype() {
                    continue;
                }
                self.pipeline(k, f16).await?;
                n += 1;
                if k.has_f16_math() && self.has_shader_f16() {
                    self.pipeline_with(k, f16, true).await?;
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// Blocks until submitted work is done (native); a no-op in the browser, where mapping
    /// callbacks are driven by the event loop.
    pub fn wait_idle(&self) -> Result<()> {
        #[cfg(not(target_arch = "wasm32"))]
        if let Err(e) = self.device.poll(wgpu::PollType::wait_indefinitely()) {
            self.check_alive()?;
            return Err(GpuError::Validation(e.to_string()));
        }
        self.check_alive()
    }
}

/// wgpu's reason for a lost device, in words.
fn lost_reason(reason: wgpu::DeviceLostReason, msg: &str) -> String {
    let what = match reason {
        wgpu::DeviceLostReason::Destroyed => "the device was destroyed",
        wgpu::DeviceLostReason::Unknown => "the driver or browser reported it (GPU reset, driver update or crash)",
    };
    if msg.trim().is_empty() {
        what.to_string()
    } else {
        format!("{what}: {}", msg.trim())
    }
}

/// Opens the GPU on native targets, blocking the calling thread.
#[cfg(not(target_arch = "wasm32"))]
pub fn open_blocking(opts: &GpuOptions) -> Result<Arc<Gpu>> {
    pollster::block_on(Gpu::new(opts))
}
