//! Seeded mutation fuzzing of pinhole's parsers of untrusted input, on the stable toolchain
//! and without a fuzzing engine: each [`targets::Target`] starts from committed seed files,
//! a [`mutate::Mutator`] (seeded, so runs are reproducible) derives new inputs, and every
//! execution runs under `catch_unwind` with a counting allocator. An input is a finding when
//! the target panics (a panic contained inside the target, such as the tokenizers crate's,
//! is not: it became a typed error) or when it allocates more than [`budget`] for its size.
//! Overflow checks are on in the test and dev profiles, so arithmetic overflow panics too.
//!
//! A mutant is kept in the working corpus when it produces an outcome not seen before (the
//! target's error message with the numbers taken out: a cheap stand-in for coverage).
//!
//! `cargo test -p pinhole-fuzz` replays the regression corpus (crates/pinhole-fuzz/corpus) and
//! fuzzes each target for a bounded time (`PINHOLE_FUZZ_SECS`, default 6 s per target);
//! `cargo run -p pinhole-fuzz --release -- --secs 600` is the long run (RELIABILITY.md).

pub mod alloc;
pub mod mutate;
pub mod targets;

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;
use std::time::{Duration, Instant};

use targets::{frame, unframe, Target};

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

/// Bytes an input may make a target allocate at its peak: a small multiple of its size plus
/// room for the bounded structures a valid description builds (graphs, weight lists).
pub fn budget(input_len: usize) -> usize {
    64usize.saturating_mul(input_len).saturating_add(128 << 20)
}

/// What went wrong with one input.
#[derive(Clone, Debug)]
pub struct Finding {
    pub input: Vec<u8>,
    pub what: String,
}

#[derive(Clone, Debug, Default)]
pub struct Report {
    pub target: String,
    pub execs: u64,
    pub findings: Vec<Finding>,
    /// Distinct outcomes seen (an indication of how much of the parser was reached).
    pub outcomes: usize,
    pub corpus: usize,
    pub slowest: Duration,
    pub slowest_len: usize,
    pub slowest_input: Vec<u8>,
    /// Largest peak allocation of one execution, and its input's length.
    pub peak_alloc: usize,
    pub peak_alloc_len: usize,
    pub elapsed: Duration,
}

thread_local! {
    static PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    static IN_EXEC: Cell<bool> = const { Cell::new(false) };
}

/// A panic hook that records the message of a panic inside a fuzz execution for the harness
/// instead of printing it, and hands every other panic (a failing test's) to the previous hook.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_EXEC.try_with(|f| f.get()).unwrap_or(false) {
                let msg = format!("{info}");
                let _ = PANIC.try_with(|p| *p.borrow_mut() = Some(msg));
            } else {
                previous(info);
            }
        }));
    });
}

/// The outcome with digits removed, so `hidden_size 7` and `hidden_size 9` count as one.
fn class(outcome: &str) -> String {
    outcome.chars().filter(|c| !c.is_ascii_digit()).take(160).collect()
}

/// Runs `target` on one input: `Err` with what went wrong when it is a finding.
pub fn execute(target: &Target, input: &[u8]) -> (Result<String, String>, Duration, usize) {
    install_hook();
    alloc::set_current(input);
    let base = alloc::live();
    alloc::reset();
    let t0 = Instant::now();
    IN_EXEC.with(|f| f.set(true));
    let r = catch_unwind(AssertUnwindSafe(|| (target.run)(input)));
    IN_EXEC.with(|f| f.set(false));
    let dt = t0.elapsed();
    let (peak, largest) = alloc::usage(base);
    let out = match r {
        Ok(_) if peak > budget(input.len()) => Err(format!(
            "allocated {peak} bytes at its peak (largest single request {largest}) for a {}-byte input; the \
             budget is {}",
            input.len(),
            budget(input.len())
        )),
        Ok(o) => Ok(o),
        Err(_) => Err(PANIC
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| "panicked".into())),
    };
    (out, dt, peak)
}

/// Fuzzes `target` from its seeds until `deadline` or `max_execs`, stopping early after a few
/// findings.
pub fn fuzz(target: &Target, seed: u64, time: Duration, max_execs: u64) -> Report {
    let start = Instant::now();
    let seeds = (target.seeds)();
    let mut m = mutate::Mutator::new(seed, &seeds);
    let mut report = Report {
        target: target.name.to_string(),
        ..Default::default()
    };
    let mut corpus: Vec<Vec<u8>> = Vec::new();
    let mut seen = HashSet::new();
    let mut note = |report: &mut Report, input: &[u8], r: Result<String, String>, dt: Duration, peak: usize| {
        report.execs += 1;
        if dt > report.slowest {
            report.slowest = dt;
            report.slowest_len = input.len();
            report.slowest_input = input.to_vec();
        }
        if peak > report.peak_alloc {
            report.peak_alloc = peak;
            report.peak_alloc_len = input.len();
        }
        match r {
            Ok(o) => seen.insert(class(&o)),
            Err(what) => {
                report.findings.push(Finding {
                    input: input.to_vec(),
                    what,
                });
                false
            }
        }
    };
    for s in &seeds {
        let (r, dt, peak) = execute(target, s);
        note(&mut report, s, r, dt, peak);
        corpus.push(s.clone());
    }
    while start.elapsed() < time && report.execs < max_execs && report.findings.len() < 5 && !corpus.is_empty() {
        let a = m.rng.next_u64() as usize % corpus.len();
        let b = m.rng.next_u64() as usize % corpus.len();
        let input = if target.framed {
            let mut parts: Vec<Vec<u8>> = unframe(&corpus[a]).into_iter().map(|p| p.to_vec()).collect();
            let others = unframe(&corpus[b]);
            if parts.is_empty() {
                parts.push(Vec::new());
            }
            let i = m.rng.next_u64() as usize % parts.len();
            let other = others.get(i).copied().unwrap_or(&[]);
            parts[i] = m.mutate(&parts[i], other);
            let refs: Vec<&[u8]> = parts.iter().map(|p| p.as_slice()).collect();
            frame(&refs)
        } else {
            let other = corpus[b].clone();
            m.mutate(&corpus[a], &other)
        };
        let (r, dt, peak) = execute(target, &input);
        if note(&mut report, &input, r, dt, peak) && corpus.len() < 4096 {
            corpus.push(input);
        }
    }
    report.outcomes = seen.len();
    report.corpus = corpus.len();
    report.elapsed = start.elapsed();
    report
}

/// One line of the report table (RELIABILITY.md).
pub fn summary(r: &Report) -> String {
    format!(
        "| {} | {} | {:.0} | {} | {} | {:.1} ms ({} B) | {:.1} MiB ({} B) |",
        r.target,
        r.execs,
        r.execs as f64 / r.elapsed.as_secs_f64().max(1e-9),
        r.findings.len(),
        r.outcomes,
        r.slowest.as_secs_f64() * 1e3,
        r.slowest_len,
        r.peak_alloc as f64 / (1 << 20) as f64,
        r.peak_alloc_len
    )
}
