//! No import cycles: between the top-level modules of each crate (a module `a` depends on `b`
//! when code in `a` — any file under `src/a.rs` or `src/a/` — names a `crate::b` path) and
//! between the workspace crates (their `pinhole-*` dependencies in Cargo.toml, dev-dependencies
//! included, since Cargo allows cycles through those). Comments are skipped, so a doc link is
//! not a dependency; `lib.rs` is skipped, since the root only declares and re-exports modules.
//!
//! A cycle fails the test with its path, e.g. `paligemma → generate → loader → paligemma`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without `//` comments (doc comments included).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            // A `//` inside a string literal ("http://…") is rare in this code; cutting there
            // can only drop a dependency after it on the same line, never add one.
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn ident(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The top-level modules a piece of code names through `crate::`.
fn crate_refs(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::X, b}`: the first name of each item at the top level of the braces.
            let mut depth = 0;
            let mut start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && !c.is_whitespace() => {
                        start = false;
                        let name = ident(&group[j..]);
                        if !name.is_empty() {
                            out.insert(name.to_string());
                        }
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                out.insert(name.to_string());
            }
        }
    }
    out
}

/// Top-level module → the top-level modules it names.
fn module_graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut g = Graph::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .to_string();
        if first == "lib.rs" || first == "main.rs" {
            continue;
        }
        let module = first.trim_end_matches(".rs").to_string();
        let text = std::fs::read_to_string(&f).unwrap();
        let deps = g.entry(module.clone()).or_default();
        for d in crate_refs(&code(&text)) {
            if d != module {
                deps.insert(d);
            }
        }
    }
    g
}

/// Crate → the workspace crates it depends on (any dependency table).
fn crate_graph() -> Graph {
    let mut g = Graph::new();
    for e in std::fs::read_dir(workspace().join("crates")).unwrap() {
        let dir = e.unwrap().path();
        let Ok(toml) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let mut in_deps = false;
        let deps = g.entry(name).or_default();
        for line in toml.lines().map(str::trim) {
            if line.starts_with('[') {
                in_deps = line.contains("dependencies");
            } else if in_deps && line.starts_with("pinhole-") {
                deps.insert(ident(&line.replace('-', "_")).replace('_', "-"));
            }
        }
    }
    g
}

/// A cycle of `g` as a path `a → b → … → a`, if there is one.
fn find_cycle(g: &Graph) -> Option<String> {
    fn visit(n: &str, g: &Graph, state: &mut BTreeMap<String, u8>, stack: &mut Vec<String>) -> Option<String> {
        match state.get(n) {
            Some(2) => return None,
            Some(1) => {
                let at = stack.iter().position(|s| s == n).unwrap();
                let mut path = stack[at..].to_vec();
                path.push(n.to_string());
                return Some(path.join(" → "));
            }
            _ => {}
        }
        state.insert(n.to_string(), 1);
        stack.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, g, state, stack) {
                return Some(c);
            }
        }
        stack.pop();
        state.insert(n.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    g.keys().find_map(|n| visit(n, g, &mut state, &mut Vec::new()))
}

#[test]
fn the_checker_finds_cycles() {
    let refs = crate_refs(&code(
        "use crate::a::X;\n// crate::commented\nuse crate::{b::{Y, Z}, c};\nlet v = crate::d::f();",
    ));
    assert_eq!(refs.into_iter().collect::<Vec<_>>(), ["a", "b", "c", "d"]);
    let mut g = Graph::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    assert_eq!(find_cycle(&g), None);
    g.entry("c".into()).or_default().insert("a".into());
    assert_eq!(find_cycle(&g).as_deref(), Some("a → b → c → a"));
}

#[test]
fn no_cycle_between_the_modules_of_pinhole_models() {
    let g = module_graph(&workspace().join("crates/pinhole-models/src"));
    assert!(g.contains_key("layers") && g.contains_key("loader"), "{g:?}");
    if let Some(c) = find_cycle(&g) {
        panic!("pinhole-models modules import each other in a circle: {c}");
    }
}

#[test]
fn model_files_import_only_the_layers_and_the_architecture_trait() {
    // Model files are leaves over `layers` (and core): they never reach into the loader, the
    // generation loop or each other.
    let g = module_graph(&workspace().join("crates/pinhole-models/src"));
    // `arch` is the trait they implement; SmolVLM's prompt expansion is its own second file.
    let allowed: BTreeSet<String> = ["layers", "arch", "error", "smolvlm_processor"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for m in ["paligemma", "blip2", "smolvlm"] {
        let extra: Vec<_> = g[m].difference(&allowed).collect();
        assert!(extra.is_empty(), "{m} imports {extra:?}");
    }
    assert!(g["layers"].is_empty(), "layers imports {:?}", g["layers"]);
    // The trait knows no family: only the registry names them.
    for m in ["paligemma", "blip2", "smolvlm"] {
        assert!(!g["arch"].contains(m), "arch imports {m}");
        assert!(!g["model"].contains(m), "model imports {m}");
    }
}

#[test]
fn no_cycle_between_the_modules_of_any_workspace_crate() {
    // Every crate under crates/ (the workspace members), so a new crate is covered unasked.
    let mut checked = Vec::new();
    for e in std::fs::read_dir(workspace().join("crates")).unwrap() {
        let dir = e.unwrap().path();
        let src = dir.join("src");
        if !src.is_dir() {
            continue;
        }
        let krate = dir.file_name().unwrap().to_string_lossy().to_string();
        let g = module_graph(&src);
        if let Some(c) = find_cycle(&g) {
            panic!("{krate} modules import each other in a circle: {c}");
        }
        checked.push(krate);
    }
    checked.sort();
    for k in [
        "pinhole-cli",
        "pinhole-core",
        "pinhole-fuzz",
        "pinhole-gpu",
        "pinhole-models",
        "pinhole-web",
    ] {
        assert!(checked.iter().any(|c| c == k), "{k} not checked: {checked:?}");
    }
}

#[test]
fn no_cycle_between_the_workspace_crates() {
    let g = crate_graph();
    assert!(g["pinhole-models"].contains("pinhole-core"), "{g:?}");
    if let Some(c) = find_cycle(&g) {
        panic!("workspace crates depend on each other in a circle: {c}");
    }
}
