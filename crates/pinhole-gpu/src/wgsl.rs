//! The WGSL sources and the one step that joins them.
//!
//! Each kernel family is one file in `crates/pinhole-gpu/shaders/`; code that several families
//! share (f16 decode, workgroup reductions, grid indexing, the GEMM tile, tanh) lives once in
//! `shaders/common/`. A line that is exactly
//!
//! ```text
//! // #include "common/reduce.wgsl"
//! ```
//!
//! (a WGSL comment, so every file stays plain WGSL text) is replaced by the named file, itself
//! expanded. A file is pasted at most once per module, where it is first included: WGSL forbids
//! declaring a name twice, and two snippets may include the same third one. Each snippet's
//! header says which names the including file must declare (WGSL resolves module-scope names
//! in any order). An unknown file, a malformed include line or an include cycle is an error
//! naming the chain. Every file is compiled in with `include_str!`, so native and wasm builds
//! carry the same text and nothing is read at run time.
//!
//! A module is built in a [`Variant`]: each flag swaps one snippet for another with the same
//! contract (the kernels include only the default one), so a variant is a specialisation of
//! the same source, never a copy of a kernel.

use crate::error::{GpuError, Result};

/// Every WGSL file of the crate, by its path under `shaders/`.
pub const FILES: &[(&str, &str)] = &[
    ("argmax.wgsl", include_str!("../shaders/argmax.wgsl")),
    ("attention.wgsl", include_str!("../shaders/attention.wgsl")),
    ("copy.wgsl", include_str!("../shaders/copy.wgsl")),
    ("elementwise.wgsl", include_str!("../shaders/elementwise.wgsl")),
    ("embedding.wgsl", include_str!("../shaders/embedding.wgsl")),
    ("matmul.wgsl", include_str!("../shaders/matmul.wgsl")),
    ("norm.wgsl", include_str!("../shaders/norm.wgsl")),
    ("patch_embed.wgsl", include_str!("../shaders/patch_embed.wgsl")),
    ("q4.wgsl", include_str!("../shaders/q4.wgsl")),
    ("rope.wgsl", include_str!("../shaders/rope.wgsl")),
    ("sample.wgsl", include_str!("../shaders/sample.wgsl")),
    ("linear_vec4.wgsl", include_str!("../shaders/linear_vec4.wgsl")),
    ("common/act.wgsl", include_str!("../shaders/common/act.wgsl")),
    ("common/epilogue.wgsl", include_str!("../shaders/common/epilogue.wgsl")),
    ("common/f16.wgsl", include_str!("../shaders/common/f16.wgsl")),
    ("common/grid.wgsl", include_str!("../shaders/common/grid.wgsl")),
    ("common/linear.wgsl", include_str!("../shaders/common/linear.wgsl")),
    (
        "common/matmul_params.wgsl",
        include_str!("../shaders/common/matmul_params.wgsl"),
    ),
    ("common/reduce.wgsl", include_str!("../shaders/common/reduce.wgsl")),
    ("common/reg_tile.wgsl", include_str!("../shaders/common/reg_tile.wgsl")),
    (
        "common/row_sum_sg.wgsl",
        include_str!("../shaders/common/row_sum_sg.wgsl"),
    ),
    (
        "common/row_sum_wg.wgsl",
        include_str!("../shaders/common/row_sum_wg.wgsl"),
    ),
    ("common/tanh.wgsl", include_str!("../shaders/common/tanh.wgsl")),
    ("common/tile_f16.wgsl", include_str!("../shaders/common/tile_f16.wgsl")),
    ("common/tile_f32.wgsl", include_str!("../shaders/common/tile_f32.wgsl")),
    ("common/weight.wgsl", include_str!("../shaders/common/weight.wgsl")),
];

const DIRECTIVE: &str = "// #include";

/// Snippets swapped when a module is built for subgroups: `(fallback, subgroup variant)`.
/// Both files of a pair define the same functions with the same contract, so the kernels
/// include only the fallback and the subgroup module differs from it by that one snippet.
pub const SUBGROUP_SWAPS: &[(&str, &str)] = &[("common/row_sum_wg.wgsl", "common/row_sum_sg.wgsl")];

/// Snippets swapped when a module is built with f16 math: `(f32 default, f16 variant)`. The
/// tiled GEMM's slabs and micro-kernel (`gemm` of matmul.wgsl and q4.wgsl); nothing else of
/// those modules changes, and only their `gemm` pipelines are built from it.
pub const F16_MATH_SWAPS: &[(&str, &str)] = &[("common/tile_f32.wgsl", "common/tile_f16.wgsl")];

/// What the f16-math module starts with. Unlike `enable subgroups;` (which naga rejects
/// natively, taking the capability from the device), naga requires `enable f16;` before any
/// use of the `f16` type, and so does the WGSL spec and therefore the browser, which gets this
/// source unchanged from wgpu's WebGPU backend; both also need the device created with
/// `shader-f16` (context.rs requests it when the adapter has it).
pub const F16_ENABLE: &str = "enable f16;\n";

/// The variant flags a module is built with; the default (all off) is the plain source.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Variant {
    /// GEMV row sums on subgroup operations ([`SUBGROUP_SWAPS`]).
    pub subgroups: bool,
    /// f16 slabs and products in the tiled GEMM ([`F16_MATH_SWAPS`], [`F16_ENABLE`]).
    pub f16_math: bool,
}

impl Variant {
    /// The snippet swaps of every flag that is set.
    pub fn swaps(self) -> Vec<(&'static str, &'static str)> {
        let mut v = Vec::new();
        if self.subgroups {
            v.extend_from_slice(SUBGROUP_SWAPS);
        }
        if self.f16_math {
            v.extend_from_slice(F16_MATH_SWAPS);
        }
        v
    }
}

/// The module source of `file` (a path under `shaders/`) with its includes resolved.
pub fn source(file: &str) -> Result<String> {
    source_with(file, Variant::default())
}

/// The module source of `file` in `variant`: the snippets of each set flag's swaps replaced.
/// With `subgroups` no `enable subgroups;` directive is added: naga (native) rejects it and
/// takes the capability from the device's features instead. With `f16_math` the source starts
/// with [`F16_ENABLE`].
pub fn source_with(file: &str, variant: Variant) -> Result<String> {
    let expanded = expand_with(FILES, file, &variant.swaps()).map_err(|message| GpuError::Shader {
        kernel: file.to_string(),
        message,
    })?;
    Ok(if variant.f16_math {
        format!("{F16_ENABLE}{expanded}")
    } else {
        expanded
    })
}

/// Resolves the includes of `root` against `files`; the error names the include chain.
#[cfg(test)]
pub(crate) fn expand(files: &[(&str, &str)], root: &str) -> std::result::Result<String, String> {
    expand_with(files, root, &[])
}

fn expand_with(files: &[(&str, &str)], root: &str, swaps: &[(&str, &str)]) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut pasted: Vec<&str> = Vec::new();
    paste(files, root, swaps, &mut Vec::new(), &mut pasted, &mut out)?;
    Ok(out)
}

fn paste<'a>(
    files: &[(&'a str, &str)],
    name: &str,
    swaps: &[(&str, &str)],
    stack: &mut Vec<&'a str>,
    pasted: &mut Vec<&'a str>,
    out: &mut String,
) -> std::result::Result<(), String> {
    let chain = |stack: &[&str]| stack.iter().map(|s| format!("{s} → ")).collect::<String>();
    let name = swaps.iter().find(|(from, _)| *from == name).map_or(name, |(_, to)| *to);
    let Some(&(key, text)) = files.iter().find(|(n, _)| *n == name) else {
        return Err(format!(
            "{}{name}: no such WGSL file in pinhole-gpu/shaders",
            chain(stack)
        ));
    };
    if stack.contains(&key) {
        return Err(format!("include cycle: {}{name}", chain(stack)));
    }
    if pasted.contains(&key) {
        return Ok(());
    }
    pasted.push(key);
    stack.push(key);
    for (i, line) in text.lines().enumerate() {
        let Some(rest) = line.trim().strip_prefix(DIRECTIVE) else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let target = rest
            .trim()
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .filter(|t| !t.is_empty() && !t.contains('"'))
            .ok_or_else(|| format!("{key}:{}: expected `{DIRECTIVE} \"common/file.wgsl\"`", i + 1))?;
        paste(files, target, swaps, stack, pasted, out)?;
    }
    stack.pop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SG: Variant = Variant {
        subgroups: true,
        f16_math: false,
    };
    const F16: Variant = Variant {
        subgroups: false,
        f16_math: true,
    };

    #[test]
    fn includes_are_pasted_once_in_place() {
        let files = [
            ("main.wgsl", "a\n// #include \"x.wgsl\"\n  // #include \"y.wgsl\"\nb\n"),
            ("x.wgsl", "x1\n// #include \"y.wgsl\"\n"),
            ("y.wgsl", "y1\n"),
        ];
        assert_eq!(expand(&files, "main.wgsl").unwrap(), "a\nx1\ny1\nb\n");
    }

    #[test]
    fn unknown_files_cycles_and_bad_lines_are_errors() {
        let files = [
            ("a.wgsl", "// #include \"b.wgsl\"\n"),
            ("b.wgsl", "// #include \"a.wgsl\"\n"),
            ("c.wgsl", "// #include \"nope.wgsl\"\n"),
            ("d.wgsl", "// #include common/x.wgsl\n"),
        ];
        let e = expand(&files, "a.wgsl").unwrap_err();
        assert!(e.contains("cycle: a.wgsl → b.wgsl → a.wgsl"), "{e}");
        let e = expand(&files, "c.wgsl").unwrap_err();
        assert!(e.contains("c.wgsl → nope.wgsl: no such"), "{e}");
        let e = expand(&files, "d.wgsl").unwrap_err();
        assert!(e.contains("d.wgsl:1: expected"), "{e}");
        assert!(source("missing.wgsl").is_err());
    }

    #[test]
    fn every_shader_expands_without_leftover_includes() {
        for (name, _) in FILES {
            let s = source(name).unwrap();
            assert!(!s.contains(DIRECTIVE), "{name}");
        }
        // The shared snippets really are shared: one definition per module.
        let q4 = source("q4.wgsl").unwrap();
        assert_eq!(q4.matches("fn tile_fma(").count(), 1);
        assert_eq!(q4.matches("fn f16_half(").count(), 1);
    }

    #[test]
    fn subgroup_swaps_give_exactly_one_row_sum() {
        for (name, _) in FILES.iter().filter(|(n, _)| !n.starts_with("common/")) {
            let wg = source_with(name, Variant::default()).unwrap();
            if !wg.contains("fn row_sum(") {
                continue;
            }
            let sg = source_with(name, SG).unwrap();
            for s in [&wg, &sg] {
                assert_eq!(s.matches("fn row_sum(").count(), 1, "{name}");
                assert!(!s.contains(DIRECTIVE), "{name}");
            }
            assert!(!wg.contains("subgroupAdd") && sg.contains("subgroupAdd"), "{name}");
        }
        for name in ["linear_vec4.wgsl", "q4.wgsl", "matmul.wgsl"] {
            assert!(source(name).unwrap().contains("fn row_sum("), "{name}");
        }
    }

    #[test]
    fn subgroup_modules_validate_without_an_enable_directive() {
        use naga::valid::{Capabilities, ValidationFlags, Validator};
        for name in ["linear_vec4.wgsl", "q4.wgsl", "matmul.wgsl"] {
            let src = source_with(name, SG).unwrap();
            let module = naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| {
                panic!("{name}: {}", e.emit_to_string(&src));
            });
            Validator::new(ValidationFlags::all(), Capabilities::all())
                .validate(&module)
                .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        }
    }

    #[test]
    fn f16_math_swaps_only_the_gemm_tile_and_enables_f16() {
        for (name, _) in FILES.iter().filter(|(n, _)| !n.starts_with("common/")) {
            let plain = source(name).unwrap();
            assert!(!plain.contains("enable ") && !plain.contains("f16("), "{name}");
            let f16 = source_with(name, F16).unwrap();
            if !plain.contains("fn tile_fma(") {
                // No tiled GEMM: the variant is the plain source behind the directive.
                assert_eq!(f16, format!("{F16_ENABLE}{plain}"), "{name}");
                continue;
            }
            assert!(f16.starts_with(F16_ENABLE), "{name}");
            for s in [&plain, &f16] {
                assert_eq!(s.matches("fn tile_fma(").count(), 1, "{name}");
                assert_eq!(s.matches("fn put_x(").count(), 1, "{name}");
                assert!(!s.contains(DIRECTIVE), "{name}");
            }
            assert!(plain.contains("var<workgroup> xs: array<f32,"), "{name}");
            assert!(f16.contains("var<workgroup> xs: array<f16,"), "{name}");
            assert!(f16.contains("var<workgroup> ws: array<f16,"), "{name}");
            // The rest of the module (entry points, epilogue, GEMVs) is untouched.
            let tile = |s: &str, file: &str| s.replace(&expand(FILES, file).unwrap(), "");
            assert_eq!(
                tile(&plain, "common/tile_f32.wgsl"),
                tile(&f16[F16_ENABLE.len()..], "common/tile_f16.wgsl"),
                "{name}"
            );
        }
        for name in ["q4.wgsl", "matmul.wgsl"] {
            assert!(source(name).unwrap().contains("fn tile_fma("), "{name}");
        }
    }

    #[test]
    fn f16_math_modules_validate_and_need_the_enable_directive() {
        use naga::valid::{Capabilities, ValidationFlags, Validator};
        for name in ["q4.wgsl", "matmul.wgsl"] {
            for v in [
                F16,
                Variant {
                    subgroups: true,
                    f16_math: true,
                },
            ] {
                let src = source_with(name, v).unwrap();
                let module = naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| {
                    panic!("{name}: {}", e.emit_to_string(&src));
                });
                Validator::new(ValidationFlags::all(), Capabilities::all())
                    .validate(&module)
                    .unwrap_or_else(|e| panic!("{name}: {e:?}"));
                // Validation needs the f16 capability (the device's `shader-f16`) ...
                let no_f16 = Capabilities::all() - Capabilities::SHADER_FLOAT16;
                assert!(Validator::new(ValidationFlags::all(), no_f16)
                    .validate(&module)
                    .is_err());
            }
            // ... and naga refuses f16 without the directive.
            let src = source_with(name, F16).unwrap();
            assert!(
                naga::front::wgsl::parse_str(&src[F16_ENABLE.len()..]).is_err(),
                "{name}"
            );
        }
    }

    #[test]
    fn the_table_lists_every_file_in_shaders() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
        let mut on_disk = Vec::new();
        for dir in ["", "common/"] {
            for e in std::fs::read_dir(root.join(dir)).unwrap() {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                if name.ends_with(".wgsl") {
                    on_disk.push(format!("{dir}{name}"));
                }
            }
        }
        on_disk.sort();
        let mut listed: Vec<String> = FILES.iter().map(|(n, _)| n.to_string()).collect();
        listed.sort();
        assert_eq!(on_disk, listed);
    }
}
