//! The `pinhole` command-line tool (native desktop path).
//!
//! Commands: `generate`, `caption`, `quantize`, `info`, `bench kernels`, `bench model`. Each command lives in its own module; errors are
//! printed as one friendly line and exit non-zero, never as a panic.

/// `println!` for stdout that ends the process quietly when the reader has gone
/// (`pinhole caption *.png | head -1`), as Unix tools do, instead of panicking on EPIPE.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut o = std::io::stdout().lock();
        if let Err(e) = writeln!(o, $($arg)*).and_then(|_| o.flush()) {
            crate::stdout_failed(e)
        }
    }};
}

/// `print!` with the same handling as [`outln!`].
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut o = std::io::stdout().lock();
        if let Err(e) = write!(o, $($arg)*).and_then(|_| o.flush()) {
            crate::stdout_failed(e)
        }
    }};
}

mod args;
mod bench;
mod bench_model;
mod bundled;
mod generate;
mod info;
mod quantize;
mod st_write;

use std::process::ExitCode;

const USAGE: &str = "pinhole — vision-language models on WebGPU

USAGE:
  pinhole caption [--model DIR] IMAGE...     one caption line per image (without --model: the
                  [--no-exif-orientation]   4-bit shapes model compiled into this binary; an
                                             unreadable image is reported on stderr and skipped;
                                             exit status 1; images are turned upright by their
                                             EXIF orientation as transformers' load_image does; this flag keeps
                                             the pixels as stored; generate takes it too)
  pinhole generate [--model DIR] --image IMG --prompt TEXT [--max-new-tokens N]
                   [--json] [--stream] [--dump DIR] [--dtype auto|f32|f16]
                   [--no-exif-orientation] [--raw-prompt] [--f16-math]
                   [--temperature T] [--top-k K] [--top-p P] [--repetition-penalty R] [--seed S]
                                             run a prompt on an image (prompts: 'caption en',
                                             'describe en', 'answer en QUESTION', 'detect OBJECT', 'ocr';
                                             SmolVLM: a question, put through the folder's chat
                                             template unless --raw-prompt; default 'Describe this image.');
                                             greedy unless a sampling option is given (seed 0 by default;
                                             on the GPU, one token id read back per step);
                                             --f16-math: f16 arithmetic in the prefill and vision
                                             GEMMs, faster on GPUs with fast f16 but no longer
                                             exactly transformers' outputs (needs shader-f16)
  pinhole quantize --model DIR --out DIR [--group 32] [--scheme sym|asym] [--keep PATTERN]... [--quiet]
                                             write a 4-bit copy of a model folder (linear weights and the
                                             embedding table; --keep NAME-PATTERN leaves matching tensors f16)
  pinhole info [--json]                      adapter, backend, features and limits
  pinhole bench kernels [--json] [--quick] [--runs N] [--filter TEXT]
                                             kernel timings vs a copy kernel on this adapter
  pinhole bench model --model DIR [--image IMG] [--prompt TEXT] [--max-new-tokens 16] [--runs 3]
                   [--dtype auto|f32|f16] [--no-fuse] [--f16-math] [--json]
                                             load, image encode, prefill, time to first token, decode
                                             tokens/s, dispatches and host CPU per step, roofline
                                             (--no-fuse: matmul epilogue fusion off, to compare;
                                             --f16-math: as for generate, trades exactness for speed)

ENVIRONMENT:
  PINHOLE_MAX_BINDING_BYTES   lower the per-binding size weights are split at (testing)
";

/// The USAGE lines of one command (`pinhole CMD ...` and its indented continuation lines).
fn command_usage(cmd: &str) -> Option<String> {
    let head = format!("  pinhole {cmd}");
    let mut lines = USAGE.lines().skip_while(|l| !l.starts_with(&head));
    let first = lines.next()?;
    let rest = lines.take_while(|l| l.starts_with("    "));
    Some(std::iter::once(first).chain(rest).collect::<Vec<_>>().join("\n"))
}

/// stdout cannot be written: a closed pipe ends the process like SIGPIPE would (status 141,
/// no message); anything else is reported.
fn stdout_failed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(141);
    }
    eprintln!("error: cannot write to standard output: {e}");
    std::process::exit(1)
}

fn main() -> ExitCode {
    // `std::env::args` panics on an argument that is not UTF-8; say so in one line instead.
    let argv: Vec<String> = match std::env::args_os().skip(1).map(|a| a.into_string()).collect() {
        Ok(v) => v,
        Err(bad) => {
            eprintln!(
                "error: the argument '{}' is not valid UTF-8; pinhole takes prompts and paths in UTF-8",
                bad.to_string_lossy()
            );
            return ExitCode::FAILURE;
        }
    };
    // `pinhole CMD --help` (or -h) anywhere after a known command: that command's usage.
    if let Some(cmd) = argv.first() {
        if argv[1..].iter().any(|a| a == "--help" || a == "-h") {
            if let Some(u) = command_usage(cmd) {
                outln!("USAGE:\n{u}");
                return ExitCode::SUCCESS;
            }
        }
    }
    let result = match argv.first().map(String::as_str) {
        Some("info") => info::run(&argv[1..]),
        Some("bench") => bench::run(&argv[1..]),
        Some("generate") => generate::run(&argv[1..]),
        Some("caption") => generate::caption(&argv[1..]),
        Some("quantize") => quantize::run(&argv[1..]),
        Some("-h") | Some("--help") | Some("help") | None => {
            out!("{USAGE}");
            Ok(())
        }
        Some("--version") | Some("-V") => {
            outln!("pinhole {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Some(other) => Err(format!("unknown command '{other}'. Run `pinhole --help` for the list.")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            if e.starts_with("unknown option") {
                if let Some(cmd) = argv.first() {
                    eprintln!("(run `pinhole {cmd} --help` for its options)");
                }
            }
            ExitCode::FAILURE
        }
    }
}
