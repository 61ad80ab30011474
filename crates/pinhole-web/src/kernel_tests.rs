//! `runKernelTests()`: the kernel cases of `pinhole_gpu::kernel_cases` (the same ones the
//! native tests run) under the browser's WebGPU, on the page's device and on a second device
//! whose per-binding limit is lowered to 4 KiB. Returns a JSON report.

use std::sync::Arc;

use pinhole_gpu::kernel_cases::{all_cases, run_all};
use pinhole_gpu::{Gpu, GpuOptions};

pub const LOW_LIMIT: u64 = 4096;

pub async fn run(gpu: Arc<Gpu>, filter: Option<&str>) -> String {
    let t0 = pinhole_models::generate::now_ms();
    let mut gpus = vec![gpu.clone()];
    let mut notes = Vec::new();
    match Gpu::new(&GpuOptions {
        max_binding_bytes: Some(LOW_LIMIT),
        force_fallback: false,
    })
    .await
    {
        Ok(low) => {
            // SwiftShader is a CPU adapter, so the page's device runs the barrier-free matmul
            // kernels; the second device runs the other family so both are checked here.
            low.set_barrier_free_matmul(!gpu.barrier_free_matmul());
            gpus.push(low)
        }
        Err(e) => notes.push(format!("second device with a lowered binding limit: {e}")),
    }
    let out = run_all(&gpus, filter).await;
    let cases: Vec<_> = out
        .iter()
        .map(|o| {
            serde_json::json!({
                "name": o.name,
                "bindingLimit": o.binding_limit,
                "passed": o.passed,
                "maxRelError": if o.max_rel_error.is_finite() { serde_json::json!(o.max_rel_error) } else { serde_json::Value::Null },
                "tol": o.tol,
                "message": o.message,
            })
        })
        .collect();
    let passed = out.iter().filter(|o| o.passed).count();
    serde_json::json!({
        "adapter": gpu.adapter.name,
        "isSoftware": gpu.adapter.is_software,
        "devices": gpus.len(),
        "totalCases": all_cases().len(),
        "ran": out.len(),
        "passed": passed,
        "failed": out.len() - passed,
        "ok": !out.is_empty() && passed == out.len() && gpus.len() == 2,
        "notes": notes,
        "ms": pinhole_models::generate::now_ms() - t0,
        "cases": cases,
    })
    .to_string()
}
