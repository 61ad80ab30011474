//! `pinhole info`: what GPU pinhole would use and what it can do.

use pinhole_gpu::{AdapterSummary, GpuOptions};
use serde_json::json;

pub fn adapter_json(a: &AdapterSummary) -> serde_json::Value {
    json!({
        "name": a.name,
        "backend": a.backend,
        "device_type": a.device_type,
        "driver": a.driver,
        "driver_info": a.driver_info,
        "software": a.is_software,
        "shader_f16": a.shader_f16,
        "subgroups": a.subgroups,
        "subgroup_min_size": a.subgroup_min_size,
        "subgroup_max_size": a.subgroup_max_size,
        "subgroup_reduce": a.subgroup_reduce,
    })
}

/// `adapter: NAME (BACKEND, TYPE[, software])`: the first line of the benchmark reports.
pub fn adapter_line(a: &AdapterSummary) -> String {
    let software = if a.is_software { ", software" } else { "" };
    format!("adapter: {} ({}, {}{software})", a.name, a.backend, a.device_type)
}

pub fn run(argv: &[String]) -> Result<(), String> {
    let args = crate::args::parse(argv, &["json"], &[])?;
    let gpu = pinhole_gpu::open_blocking(&GpuOptions::from_env()).map_err(|e| e.to_string())?;
    let n = pollster::block_on(gpu.compile_all()).map_err(|e| e.to_string())?;
    let a = &gpu.adapter;
    if args.flag("json") {
        let mut v = adapter_json(a);
        v["features"] = json!(a.features);
        v["limits"] = json!({
            "max_storage_buffer_binding_size": a.max_storage_buffer_binding_size,
            "max_buffer_size": a.max_buffer_size,
            "max_compute_workgroup_storage_size": a.max_compute_workgroup_storage_size,
            "max_compute_invocations_per_workgroup": a.max_compute_invocations_per_workgroup,
            "max_compute_workgroups_per_dimension": a.max_compute_workgroups_per_dimension,
            "max_storage_buffers_per_shader_stage": a.max_storage_buffers_per_shader_stage,
        });
        v["weight_binding_limit"] = json!(a.weight_binding_limit);
        v["kernels_compiled"] = json!(n);
        outln!("{v}");
        return Ok(());
    }
    outln!("adapter        {}", a.name);
    outln!("backend        {}", a.backend);
    outln!(
        "device type    {}{}",
        a.device_type,
        if a.is_software {
            " (software/fallback: correct but slow)"
        } else {
            ""
        }
    );
    outln!("driver         {} {}", a.driver, a.driver_info);
    outln!("shader-f16     {}", if a.shader_f16 { "yes" } else { "no" });
    if a.subgroups {
        outln!(
            "subgroups      yes, sizes {}..={}; GEMV row sums on subgroups: {}",
            a.subgroup_min_size,
            a.subgroup_max_size,
            if a.subgroup_reduce { "yes" } else { "no" }
        );
    } else {
        outln!("subgroups      no (GEMV row sums in workgroup memory)");
    }
    outln!("features       {}", a.features.join(", "));
    outln!("limits");
    outln!(
        "  max_storage_buffer_binding_size     {} ({:.0} MiB)",
        a.max_storage_buffer_binding_size,
        a.max_storage_buffer_binding_size as f64 / 1048576.0
    );
    outln!(
        "  max_buffer_size                     {} ({:.0} MiB)",
        a.max_buffer_size,
        a.max_buffer_size as f64 / 1048576.0
    );
    outln!(
        "  max_compute_workgroup_storage_size  {}",
        a.max_compute_workgroup_storage_size
    );
    outln!(
        "  max_compute_invocations_per_workgroup {}",
        a.max_compute_invocations_per_workgroup
    );
    outln!(
        "  max_compute_workgroups_per_dimension  {}",
        a.max_compute_workgroups_per_dimension
    );
    outln!(
        "  max_storage_buffers_per_shader_stage  {}",
        a.max_storage_buffers_per_shader_stage
    );
    if a.weight_binding_limit != a.max_storage_buffer_binding_size {
        outln!(
            "weights split at {} bytes (PINHOLE_MAX_BINDING_BYTES)",
            a.weight_binding_limit
        );
    }
    outln!("kernels        {n} pipelines compiled OK");
    Ok(())
}
