//! `pinhole bench kernels`: kernel timings on this adapter, with a copy-kernel baseline.
//! `pinhole bench model`: end-to-end timings of a model folder ([`crate::bench_model`]).

use pinhole_gpu::bench::bench_kernels_filtered;
use pinhole_gpu::GpuOptions;
use serde_json::json;

pub fn run(argv: &[String]) -> Result<(), String> {
    if argv.first().map(String::as_str) == Some("model") {
        return crate::bench_model::run(&argv[1..]);
    }
    let args = crate::args::parse(argv, &["json", "quick"], &["runs", "filter"])?;
    match args.positional.first().map(String::as_str) {
        Some("kernels") => {}
        Some(other) => return Err(format!("unknown benchmark '{other}'; available: kernels, model")),
        None => {
            return Err("say what to benchmark: `pinhole bench kernels` or `pinhole bench model --model DIR`".into())
        }
    }
    let runs: usize = args.num("runs", 5)?;
    let gpu = pinhole_gpu::open_blocking(&GpuOptions::from_env()).map_err(|e| e.to_string())?;
    let json_out = args.flag("json");
    let report = bench_kernels_filtered(&gpu, args.flag("quick"), runs, args.opt("filter"), |what| {
        if !json_out {
            eprintln!("  measuring {what} …");
        }
    })
    .map_err(|e| e.to_string())?;
    if json_out {
        let v = json!({
            "adapter": crate::info::adapter_json(&gpu.adapter),
            "runs": report.runs,
            "statistic": "median after one warm-up run; each run times 3 back-to-back repetitions in one submission",
            "copy_baseline": { "bytes": report.copy_bytes, "gbps": report.copy_gbps },
            "kernels": report.results.iter().map(|r| json!({
                "name": r.name, "shape": r.shape, "median_ms": r.median_ms,
                "gflops": r.gflops, "gbps": r.gbps, "copy_ratio": r.copy_ratio,
            })).collect::<Vec<_>>(),
        });
        outln!("{v}");
        return Ok(());
    }
    let a = &gpu.adapter;
    outln!("{}", crate::info::adapter_line(a));
    outln!(
        "copy baseline: {:.1} GB/s ({} MiB vec4 copy)",
        report.copy_gbps,
        report.copy_bytes >> 20
    );
    outln!(
        "{:<26} {:<22} {:>10} {:>9} {:>8} {:>7}",
        "kernel",
        "shape",
        "median ms",
        "GFLOP/s",
        "GB/s",
        "×copy"
    );
    for r in &report.results {
        outln!(
            "{:<26} {:<22} {:>10.3} {:>9.1} {:>8.1} {:>7.2}",
            r.name,
            r.shape,
            r.median_ms,
            r.gflops,
            r.gbps,
            r.copy_ratio
        );
    }
    Ok(())
}
