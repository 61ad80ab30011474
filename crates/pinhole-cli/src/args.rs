//! A small argument parser: flags (`--json`), options with values (`--runs 5`), and
//! positionals. Unknown flags are errors, so typos do not pass silently.

use std::collections::HashMap;

pub struct Args {
    pub flags: Vec<String>,
    pub opts: HashMap<String, Vec<String>>,
    pub positional: Vec<String>,
}

/// `flags`: options without a value; `opts`: options that take one value (may repeat).
pub fn parse(argv: &[String], flags: &[&str], opts: &[&str]) -> Result<Args, String> {
    let mut a = Args {
        flags: vec![],
        opts: HashMap::new(),
        positional: vec![],
    };
    let mut i = 0;
    while i < argv.len() {
        let s = &argv[i];
        if let Some(name) = s.strip_prefix("--") {
            let (name, inline) = match name.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (name, None),
            };
            if flags.contains(&name) {
                a.flags.push(name.to_string());
            } else if opts.contains(&name) {
                let v = match inline {
                    Some(v) => v,
                    None => {
                        i += 1;
                        argv.get(i).cloned().ok_or_else(|| format!("--{name} needs a value"))?
                    }
                };
                a.opts.entry(name.to_string()).or_default().push(v);
            } else {
                return Err(format!("unknown option --{name}"));
            }
        } else {
            a.positional.push(s.clone());
        }
        i += 1;
    }
    Ok(a)
}

impl Args {
    pub fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }

    pub fn opt(&self, name: &str) -> Option<&str> {
        self.opts.get(name).and_then(|v| v.last()).map(String::as_str)
    }

    pub fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.opt(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{name}: '{v}' is not a valid number")),
        }
    }
}
