//! Errors of the GPU runtime. Each message says what failed and what the user can do.

use std::fmt;

pub type Result<T, E = GpuError> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq)]
pub enum GpuError {
    /// No WebGPU/Vulkan/Metal/DX12 adapter could be found.
    NoAdapter(String),
    /// The adapter refused to create a device with the limits/features asked for.
    RequestDevice(String),
    /// A WGSL kernel failed to compile or its pipeline failed to build.
    Shader { kernel: String, message: String },
    /// The executor built a dispatch that does not match the kernel's row in the kernel table
    /// (params struct or bindings): a bug in pinhole, caught before the GPU sees it.
    Dispatch { kernel: String, message: String },
    /// Something asked for needs an adapter feature this device does not have (e.g. f16 math
    /// without `shader-f16`).
    MissingFeature {
        what: String,
        feature: &'static str,
        adapter: String,
    },
    /// A tensor or buffer does not fit a device limit.
    TooLarge {
        what: String,
        bytes: u64,
        limit: u64,
        limit_name: &'static str,
    },
    /// The device was lost (driver reset or update, GPU process crash, `destroy()`, a tab
    /// in the background for too long): everything on it is gone. `reason` is what wgpu
    /// (or the browser) reported; `during` what pinhole was doing when it noticed, once known.
    DeviceLost { reason: String, during: Option<String> },
    /// wgpu reported a validation or out-of-memory error while running a graph.
    Validation(String),
    /// Reading results back from the GPU failed.
    Readback(String),
    /// A graph, shape or input error from pinhole-core.
    Core(pinhole_core::Error),
}

impl fmt::Display for GpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuError::NoAdapter(m) => write!(
                f,
                "no GPU adapter found ({m}). On Linux install a Vulkan driver (for a software one: \
                 `apt-get install mesa-vulkan-drivers libvulkan1`); on macOS Metal is built in; on Windows \
                 update the GPU driver. In a browser, use one with WebGPU enabled (Chrome/Edge 113+, or \
                 enable the WebGPU flag)."
            ),
            GpuError::RequestDevice(m) => write!(f, "the GPU adapter refused to create a device: {m}"),
            GpuError::Shader { kernel, message } => write!(f, "kernel '{kernel}' failed to compile: {message}"),
            GpuError::MissingFeature { what, feature, adapter } => write!(
                f,
                "{what} needs the WebGPU feature '{feature}', which the adapter '{adapter}' does not offer; \
                 run without it (the default f32 arithmetic works on every adapter)"
            ),
            GpuError::Dispatch { kernel, message } => write!(
                f,
                "internal error: a dispatch of kernel '{kernel}' does not match the kernel table ({message}); \
                 please report this as a pinhole bug"
            ),
            GpuError::TooLarge {
                what,
                bytes,
                limit,
                limit_name,
            } => write!(
                f,
                "{what} needs {bytes} bytes but this adapter's {limit_name} is {limit} bytes; \
                 use a smaller input or a device with larger limits"
            ),
            GpuError::DeviceLost { reason, during } => {
                write!(f, "the GPU device was lost")?;
                if let Some(d) = during {
                    write!(f, " while {d}")?;
                }
                write!(
                    f,
                    " ({reason}); the model's GPU memory is gone: load the model again (on a new device) to continue"
                )
            }
            GpuError::Validation(m) => write!(f, "GPU error while running the graph: {m}"),
            GpuError::Readback(m) => write!(f, "reading results back from the GPU failed: {m}"),
            GpuError::Core(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for GpuError {}

impl GpuError {
    /// Says what was running when the device was lost (the first caller to know wins);
    /// other errors pass through unchanged.
    pub fn during(self, what: impl FnOnce() -> String) -> GpuError {
        match self {
            GpuError::DeviceLost { reason, during: None } => GpuError::DeviceLost {
                reason,
                during: Some(what()),
            },
            other => other,
        }
    }

    pub fn is_device_lost(&self) -> bool {
        matches!(self, GpuError::DeviceLost { .. })
    }
}

impl From<pinhole_core::Error> for GpuError {
    fn from(e: pinhole_core::Error) -> Self {
        GpuError::Core(e)
    }
}
