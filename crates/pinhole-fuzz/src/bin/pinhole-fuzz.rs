//! The long fuzz run: `cargo run -p pinhole-fuzz --release -- [--secs N] [--execs N]
//! [--seed N] [--out DIR] [TARGET...]`. Prints one table row per target (the format of
//! RELIABILITY.md) and writes each finding to DIR (default `target/fuzz-findings`) as
//! `<target>-<n>.bin` with its message in `<target>-<n>.txt`, and the slowest input of each
//! target as `<target>-slowest.bin`. Exits 1 when anything was found.
//! Release builds are built with overflow checks off unless `--config
//! profile.release.overflow-checks=true` is given (RELIABILITY.md uses it).

use std::path::PathBuf;
use std::time::Duration;

fn main() {
    let mut secs = 60.0f64;
    let mut execs = u64::MAX;
    let mut seed = 1u64;
    let mut out = PathBuf::from("target/fuzz-findings");
    let mut names = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = |what: &str| {
            args.next().unwrap_or_else(|| {
                eprintln!("pinhole-fuzz: {what} needs a value");
                std::process::exit(2)
            })
        };
        match a.as_str() {
            "--secs" => secs = val("--secs").parse().unwrap_or(secs),
            "--execs" => execs = val("--execs").parse().unwrap_or(execs),
            "--seed" => seed = val("--seed").parse().unwrap_or(seed),
            "--out" => out = PathBuf::from(val("--out")),
            other => names.push(other.to_string()),
        }
    }
    let targets: Vec<_> = pinhole_fuzz::targets::all()
        .into_iter()
        .filter(|t| names.is_empty() || names.iter().any(|n| n == t.name))
        .collect();
    println!(
        "| target | executions | per second | findings | distinct outcomes | slowest input | largest peak allocation |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut found = false;
    for t in &targets {
        let r = pinhole_fuzz::fuzz(t, seed, Duration::from_secs_f64(secs), execs);
        println!("{}", pinhole_fuzz::summary(&r));
        let _ = std::fs::create_dir_all(&out);
        let _ = std::fs::write(out.join(format!("{}-slowest.bin", t.name)), &r.slowest_input);
        for (i, f) in r.findings.iter().enumerate() {
            found = true;
            let _ = std::fs::create_dir_all(&out);
            let _ = std::fs::write(out.join(format!("{}-{i}.bin", t.name)), &f.input);
            let _ = std::fs::write(out.join(format!("{}-{i}.txt", t.name)), &f.what);
            eprintln!("{} finding {i}: {}", t.name, f.what);
        }
    }
    std::process::exit(i32::from(found));
}
