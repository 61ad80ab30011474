//! Mutations of seed inputs: byte-level (flips, truncation, insertion, duplication, splicing,
//! interesting numbers written as text) and, for JSON inputs, structure-aware (a node replaced
//! by an interesting number or another type, keys dropped or added from a dictionary of the
//! seeds' keys). Driven by a seeded [`Rng`], so a run is reproducible from its seed.

use pinhole_core::rng::Rng;
use serde_json::{Map, Number, Value};

/// Numbers that reach edge cases: zero, one, powers of two around 32- and 64-bit limits, the
/// sizes of pinhole's limits and just over them, huge, negative and fractional values.
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "2",
    "3",
    "7",
    "8",
    "-1",
    "255",
    "256",
    "1023",
    "1024",
    "1025",
    "4095",
    "4096",
    "4097",
    "65535",
    "65536",
    "65537",
    "262144",
    "1048576",
    "1048577",
    "2147483647",
    "2147483648",
    "4294967295",
    "4294967296",
    "1000000000000000",
    "4611686018427387904",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "1e15",
    "1e308",
    "1e400",
    "-1e400",
    "0.5",
    "-0.0",
    "1.5",
    "NaN",
    "\"\"",
    "null",
    "true",
    "[]",
    "{}",
];

pub struct Mutator {
    pub rng: Rng,
    /// Keys seen in the JSON seeds (to add plausible keys).
    keys: Vec<String>,
}

impl Mutator {
    pub fn new(seed: u64, seeds: &[Vec<u8>]) -> Mutator {
        let mut keys = Vec::new();
        for s in seeds {
            if let Ok(v) = serde_json::from_slice::<Value>(s) {
                collect_keys(&v, &mut keys);
            }
        }
        keys.sort();
        keys.dedup();
        Mutator {
            rng: Rng::new(seed),
            keys,
        }
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.rng.next_u64() % n as u64) as usize
    }

    /// A mutant of `input`; `other` is another seed for splicing.
    pub fn mutate(&mut self, input: &[u8], other: &[u8]) -> Vec<u8> {
        // Several stacked mutations now and then, as libFuzzer does.
        let rounds = 1 + self.below(4) * (self.below(3) / 2);
        let mut out = input.to_vec();
        for _ in 0..rounds {
            out = if self.below(2) == 0 {
                match serde_json::from_slice::<Value>(&out) {
                    Ok(v) => self.mutate_json(v),
                    Err(_) => self.mutate_bytes(out, other),
                }
            } else {
                self.mutate_bytes(out, other)
            };
        }
        out
    }

    fn number_text(&mut self) -> &'static str {
        NUMBERS[self.below(NUMBERS.len())]
    }

    fn mutate_bytes(&mut self, mut b: Vec<u8>, other: &[u8]) -> Vec<u8> {
        let n = b.len();
        match self.below(9) {
            0 if n > 0 => {
                let i = self.below(n);
                b[i] ^= 1 << self.below(8);
            }
            1 if n > 0 => {
                let i = self.below(n);
                b[i] = self.rng.next_u64() as u8;
            }
            2 => b.truncate(self.below(n + 1)),
            3 if n > 0 => {
                // Delete a range.
                let i = self.below(n);
                let len = 1 + self.below((n - i).min(64));
                b.drain(i..i + len);
            }
            4 if n > 0 => {
                // Duplicate a range (a chunk delivered twice).
                let i = self.below(n);
                let len = 1 + self.below((n - i).min(256));
                let piece = b[i..i + len].to_vec();
                let at = self.below(n + 1);
                b.splice(at..at, piece);
            }
            5 => {
                // Overwrite a run of digits (or any position) with an interesting number.
                let num = self.number_text().as_bytes().to_vec();
                let digits: Vec<usize> = (0..n).filter(|&i| b[i].is_ascii_digit()).collect();
                if digits.is_empty() {
                    let at = self.below(n + 1);
                    b.splice(at..at, num);
                } else {
                    let start = digits[self.below(digits.len())];
                    let mut end = start;
                    while end < n && (b[end].is_ascii_digit() || b[end] == b'.') {
                        end += 1;
                    }
                    b.splice(start..end, num);
                }
            }
            6 if !other.is_empty() => {
                // Splice: a prefix of this input, a suffix of the other.
                let cut = self.below(n + 1);
                let from = self.below(other.len());
                b.truncate(cut);
                b.extend_from_slice(&other[from..]);
            }
            7 if n >= 8 => {
                // A little-endian u64 at a random place (headers with binary lengths).
                let i = self.below(n - 7);
                let v: u64 = match self.below(5) {
                    0 => 0,
                    1 => u64::MAX,
                    2 => 1 << self.below(64),
                    3 => (n as u64).wrapping_add(self.below(17) as u64).wrapping_sub(8),
                    _ => self.rng.next_u64(),
                };
                b[i..i + 8].copy_from_slice(&v.to_le_bytes());
            }
            _ => {
                let at = self.below(n + 1);
                let len = 1 + self.below(8);
                let ins: Vec<u8> = (0..len).map(|_| self.rng.next_u64() as u8).collect();
                b.splice(at..at, ins);
            }
        }
        b
    }

    fn interesting_value(&mut self) -> Value {
        loop {
            if let Ok(v) = serde_json::from_str::<Value>(self.number_text()) {
                return v;
            }
            // Out-of-range texts (1e400, NaN) are not JSON values; pick again.
            if self.below(4) == 0 {
                return Value::Number(Number::from(u64::MAX));
            }
        }
    }

    fn mutate_json(&mut self, mut v: Value) -> Vec<u8> {
        let count = count_nodes(&v);
        let target = self.below(count);
        let choice = self.below(6);
        let key = if self.keys.is_empty() {
            "x".to_string()
        } else {
            let k = self.below(self.keys.len());
            self.keys[k].clone()
        };
        let replacement = match choice {
            0..=2 => self.interesting_value(),
            3 => Value::String(
                [
                    "",
                    "phi",
                    "gemma2",
                    "paligemma",
                    "blip-2",
                    "Precompiled",
                    "Fuse",
                    "\u{0}",
                ][self.below(8)]
                .to_string(),
            ),
            _ => self.interesting_value(),
        };
        let mut i = 0;
        let drop_key = choice == 4;
        let add_key = choice == 5;
        edit_nth(&mut v, target, &mut i, &mut |node| {
            if drop_key || add_key {
                if let Value::Object(m) = node {
                    if drop_key && !m.is_empty() {
                        let k = m.keys().next().cloned();
                        if let Some(k) = k {
                            m.remove(&k);
                        }
                    } else {
                        m.insert(key.clone(), replacement.clone());
                    }
                    return;
                }
                if let Value::Array(a) = node {
                    if drop_key && !a.is_empty() {
                        a.pop();
                    } else if let Some(first) = a.first().cloned() {
                        a.push(first);
                    }
                    return;
                }
            }
            *node = replacement.clone();
        });
        serde_json::to_vec(&v).unwrap_or_default()
    }
}

fn collect_keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if out.len() < 4096 {
                    out.push(k.clone());
                }
                collect_keys(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_keys(x, out)),
        _ => {}
    }
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Object(m) => m.values().map(count_nodes).sum(),
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Applies `f` to the `n`-th node in pre-order.
fn edit_nth(v: &mut Value, n: usize, i: &mut usize, f: &mut dyn FnMut(&mut Value)) -> bool {
    if *i == n {
        f(v);
        return true;
    }
    *i += 1;
    match v {
        Value::Object(m) => {
            let m: &mut Map<String, Value> = m;
            for x in m.values_mut() {
                if edit_nth(x, n, i, f) {
                    return true;
                }
            }
        }
        Value::Array(a) => {
            for x in a.iter_mut() {
                if edit_nth(x, n, i, f) {
                    return true;
                }
            }
        }
        _ => {}
    }
    false
}
