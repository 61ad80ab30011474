//! `pinhole quantize`: writes a 4-bit copy of a model folder (see `pinhole_models::quantize`)
//! and prints what happened to every tensor: shape, bytes before/after, relative error.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use pinhole_core::quant::Q4Scheme;
use pinhole_models::quantize::{quantize_dir, QuantizeOptions};

fn mb(b: u64) -> String {
    format!("{:.3} MB", b as f64 / 1e6)
}

pub fn run(argv: &[String]) -> Result<(), String> {
    let args = crate::args::parse(argv, &["quiet"], &["model", "out", "group", "scheme", "keep"])?;
    if let Some(p) = args.positional.first() {
        return Err(format!(
            "unexpected argument '{p}'; usage: pinhole quantize --model DIR --out DIR"
        ));
    }
    let model = PathBuf::from(
        args.opt("model")
            .ok_or("--model DIR is required (the f32/f16/bf16 model folder)")?,
    );
    let out = PathBuf::from(
        args.opt("out")
            .ok_or("--out DIR is required (a new folder for the 4-bit model)")?,
    );
    let scheme = match args.opt("scheme") {
        None | Some("sym") => Q4Scheme::Sym,
        Some("asym") => Q4Scheme::Asym,
        Some(o) => return Err(format!("--scheme must be sym or asym (got '{o}')")),
    };
    let opts = QuantizeOptions {
        group: args.num("group", pinhole_core::quant::DEFAULT_GROUP)?,
        scheme,
        keep: args.opts.get("keep").cloned().unwrap_or_default(),
    };
    let quiet = args.flag("quiet");
    let tty = std::io::stderr().is_terminal();
    let report = quantize_dir(&model, &out, &opts, |done, total, t| {
        if quiet {
            return;
        }
        // Progress on stderr: a rewritten line on a terminal, one line per tensor otherwise.
        if tty {
            eprint!("\r\x1b[Kquantizing [{done}/{total}] {}", t.name);
            if done == total {
                eprintln!();
            }
        } else {
            eprintln!("quantizing [{done}/{total}] {}", t.name);
        }
        let _ = std::io::stderr().flush();
    })
    .map_err(|e| e.to_string())?;
    if quiet {
        return Ok(());
    }
    outln!(
        "{:<64} {:<14} {:<8} {:>12} {:>12} {:>9}",
        "tensor",
        "shape",
        "stored",
        "bytes before",
        "bytes after",
        "rel err"
    );
    for t in &report.tensors {
        let shape = format!("{:?}", t.shape);
        let err = t.rel_error.map(|e| format!("{e:.2e}")).unwrap_or_else(|| "-".into());
        outln!(
            "{:<64} {:<14} {:<8} {:>12} {:>12} {:>9}{}",
            t.name,
            shape,
            t.stored_as,
            t.bytes_in,
            t.bytes_out,
            err,
            t.note.as_ref().map(|n| format!("  ({n})")).unwrap_or_default()
        );
    }
    let q = report.tensors.iter().filter(|t| t.rel_error.is_some()).count();
    outln!(
        "total: {} tensors ({q} quantized, {} group {}), {} → {} ({:.3}×), {:.2} bits per quantized weight",
        report.tensors.len(),
        scheme.meta(),
        opts.group,
        mb(report.bytes_in),
        mb(report.bytes_out),
        report.bytes_out as f64 / report.bytes_in.max(1) as f64,
        report.bits_per_weight()
    );
    outln!("wrote {}", out.display());
    Ok(())
}
