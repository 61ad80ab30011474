//! Chat templates: the Jinja template a chat model's folder carries, rendered as transformers'
//! `apply_chat_template(messages, add_generation_prompt=True)` renders it.
//!
//! transformers (5.x, `utils/chat_template_utils.py`) compiles the template in jinja2's
//! `ImmutableSandboxedEnvironment` with `trim_blocks=True`, `lstrip_blocks=True`, the
//! `loopcontrols` extension, and the globals `raise_exception`, `strftime_now`, `namespace`,
//! a `tojson` filter that is `json.dumps(x, ensure_ascii=False)`; it renders with `messages`,
//! `add_generation_prompt`, `tools`/`documents` (None here) and the tokenizer's special tokens
//! (`bos_token`, `eos_token`, `unk_token`, `pad_token`). This module does the same with
//! `minijinja` (Python string/dict methods such as `.strip()` or `.items()` through
//! `minijinja-contrib`'s pycompat), with a fuel limit so a hostile template cannot run
//! without bound.
//!
//! One difference: message dicts reach the template with their keys sorted (pinhole's JSON
//! maps are ordered by key), where Python keeps the caller's order; it shows only in a
//! template that prints a whole dict (`message | tojson`) or iterates `message.items()`.
//!
//! Where the template comes from (the first that exists): `chat_template.jinja` (what
//! transformers 5 saves), `chat_template.json` (`{"chat_template": ...}`, transformers 4
//! processors), `processor_config.json`'s `chat_template`, `tokenizer_config.json`'s
//! `chat_template` (a string, or a list of `{name, template}` of which `default` is used).

use serde_json::Value as Json;

use crate::error::{Error, Result};
use crate::hf::json::parse_object;

/// Instructions a template may spend on one render (minijinja's fuel). Rendering a long chat
/// with a published template takes a few thousand; this bounds a template that loops.
const FUEL: u64 = 5_000_000;
/// Longest template source accepted (published ones are a few kB).
const MAX_TEMPLATE_BYTES: usize = 1 << 20;

/// A chat template with the special tokens it is rendered with.
#[derive(Clone, Debug)]
pub struct ChatTemplate {
    source: String,
    /// Where the template came from (errors).
    file: String,
    /// `bos_token`, `eos_token`, `unk_token`, `pad_token` from `tokenizer_config.json`.
    special: Vec<(String, String)>,
}

/// The files a chat template can come from (bytes of each that exists).
#[derive(Clone, Debug, Default)]
pub struct ChatTemplateFiles<'a> {
    pub chat_template_jinja: Option<&'a [u8]>,
    pub chat_template_json: Option<&'a [u8]>,
    pub processor_config: Option<&'a [u8]>,
    pub tokenizer_config: Option<&'a [u8]>,
}

fn template_err(file: &str, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!(
        "{file}: the chat template does not render: {e}; fix the template or pass a raw prompt"
    ))
}

impl ChatTemplate {
    /// A template from its source; `file` names it in errors. It is compiled once here, so a
    /// syntax error shows when the model is loaded, not at the first prompt.
    pub fn new(source: impl Into<String>, file: &str) -> Result<ChatTemplate> {
        let source = source.into();
        if source.len() > MAX_TEMPLATE_BYTES {
            return Err(Error::Invalid(format!(
                "{file}: the chat template is {} bytes, over pinhole's limit of {MAX_TEMPLATE_BYTES}",
                source.len()
            )));
        }
        let t = ChatTemplate {
            source,
            file: file.to_string(),
            special: Vec::new(),
        };
        let env = t.env();
        env.template_from_str(&t.source).map_err(|e| template_err(file, e))?;
        Ok(t)
    }

    /// Sets the special tokens from `tokenizer_config.json` bytes (strings or `{"content": ..}`).
    pub fn with_tokenizer_config(mut self, bytes: &[u8], file: &str) -> Result<ChatTemplate> {
        let root = parse_object(bytes, file)?;
        self.special.clear();
        for key in ["bos_token", "eos_token", "unk_token", "pad_token"] {
            let s = match root.get(key) {
                Some(Json::String(s)) => Some(s.clone()),
                Some(Json::Object(m)) => m.get("content").and_then(Json::as_str).map(str::to_string),
                _ => None,
            };
            if let Some(s) = s {
                self.special.push((key.to_string(), s));
            }
        }
        Ok(self)
    }

    /// The template of a model folder from its files, with the special tokens of
    /// `tokenizer_config.json`; `None` when no file has one.
    pub fn from_files(files: &ChatTemplateFiles) -> Result<Option<ChatTemplate>> {
        let from_key = |bytes: &[u8], file: &str| -> Result<Option<String>> {
            let root = parse_object(bytes, file)?;
            match root.get("chat_template") {
                None | Some(Json::Null) => Ok(None),
                Some(Json::String(s)) => Ok(Some(s.clone())),
                Some(Json::Array(list)) => {
                    // tokenizer_config.json's named templates: the `default` one.
                    for item in list {
                        if item.get("name").and_then(Json::as_str) == Some("default") {
                            if let Some(t) = item.get("template").and_then(Json::as_str) {
                                return Ok(Some(t.to_string()));
                            }
                        }
                    }
                    Err(Error::Unsupported(format!(
                        "{file}: `chat_template` is a list without a `default` template"
                    )))
                }
                Some(other) => Err(Error::Invalid(format!(
                    "{file}: `chat_template` must be a string, got {other}"
                ))),
            }
        };
        let mut found = None;
        if let Some(b) = files.chat_template_jinja {
            let s =
                std::str::from_utf8(b).map_err(|_| Error::Invalid("chat_template.jinja is not UTF-8 text".into()))?;
            found = Some((s.to_string(), "chat_template.jinja"));
        }
        let sources = [
            (files.chat_template_json, "chat_template.json"),
            (files.processor_config, "processor_config.json"),
            (files.tokenizer_config, "tokenizer_config.json"),
        ];
        for (bytes, file) in sources {
            if found.is_some() {
                break;
            }
            if let Some(b) = bytes {
                found = from_key(b, file)?.map(|s| (s, file));
            }
        }
        let Some((source, file)) = found else {
            return Ok(None);
        };
        let mut t = ChatTemplate::new(source, file)?;
        if let Some(b) = files.tokenizer_config {
            t = t.with_tokenizer_config(b, "tokenizer_config.json")?;
        }
        Ok(Some(t))
    }

    /// [`ChatTemplate::from_files`] over a model folder on disk.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load_dir(dir: impl AsRef<std::path::Path>) -> Result<Option<ChatTemplate>> {
        let dir = dir.as_ref();
        let read = |name: &str| -> Result<Option<Vec<u8>>> {
            let p = dir.join(name);
            match std::fs::read(&p) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(Error::Invalid(format!("cannot read {}: {e}", p.display()))),
            }
        };
        let jinja = read("chat_template.jinja")?;
        let json = read("chat_template.json")?;
        let proc = read("processor_config.json")?;
        let tok = read("tokenizer_config.json")?;
        ChatTemplate::from_files(&ChatTemplateFiles {
            chat_template_jinja: jinja.as_deref(),
            chat_template_json: json.as_deref(),
            processor_config: proc.as_deref(),
            tokenizer_config: tok.as_deref(),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    fn env(&self) -> minijinja::Environment<'static> {
        let mut env = minijinja::Environment::new();
        // jinja2's defaults that transformers keeps: no autoescape, the final newline of the
        // template dropped; plus its trim_blocks / lstrip_blocks.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        let syntax = minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(false)
            .build()
            .expect("the default delimiters are valid");
        env.set_syntax(syntax);
        env.set_fuel(Some(FUEL));
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> std::result::Result<String, minijinja::Error> {
                Err(minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, msg))
            },
        );
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env
    }

    /// Renders `messages` (a JSON list of `{role, content}` as transformers takes them).
    pub fn render(&self, messages: &Json, add_generation_prompt: bool) -> Result<String> {
        if !messages.is_array() {
            return Err(Error::Invalid(
                "chat messages must be a JSON list of {role, content}".into(),
            ));
        }
        let env = self.env();
        let tmpl = env
            .template_from_str(&self.source)
            .map_err(|e| template_err(&self.file, e))?;
        let mut ctx: Vec<(String, minijinja::Value)> = vec![
            ("messages".into(), to_value(messages)),
            ("add_generation_prompt".into(), add_generation_prompt.into()),
            ("tools".into(), minijinja::Value::from(())),
            ("documents".into(), minijinja::Value::from(())),
        ];
        for (k, v) in &self.special {
            ctx.push((k.clone(), minijinja::Value::from(v.as_str())));
        }
        tmpl.render(minijinja::Value::from_pairs(ctx))
            .map_err(|e| template_err(&self.file, e))
    }

    /// The messages of a one-turn question about one image, the form model cards use:
    /// `[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]`.
    pub fn image_question(question: &str) -> Json {
        serde_json::json!([{
            "role": "user",
            "content": [{"type": "image"}, {"type": "text", "text": question}],
        }])
    }
}

/// `datetime.now().strftime(fmt)` for the directives chat templates use (a "today" line):
/// `%Y %m %d %e %b %B %H %M %S %%`, in UTC.
fn strftime_now(fmt: String) -> std::result::Result<String, minijinja::Error> {
    #[cfg(target_arch = "wasm32")]
    {
        // No clock in wasm32-unknown-unknown's std.
        let _ = fmt;
        Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            "strftime_now is not available in the browser; pass a raw prompt",
        ))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Ok(format_time(secs, &fmt))
    }
}

/// `fmt` for the UTC time `secs` after the Unix epoch (see [`strftime_now`]).
// Only `strftime_now` uses it, and that has no clock on wasm32 (the tests use it on every target).
#[cfg(any(test, not(target_arch = "wasm32")))]
fn format_time(secs: u64, fmt: &str) -> String {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    // Days → civil date (Howard Hinnant's algorithm).
    let days = (secs / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, mi, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
    let month = MONTHS[(m - 1) as usize];
    let mut out = String::new();
    let mut it = fmt.chars();
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('Y') => out.push_str(&y.to_string()),
            Some('m') => out.push_str(&format!("{m:02}")),
            Some('d') => out.push_str(&format!("{d:02}")),
            Some('e') => out.push_str(&format!("{d:>2}")),
            Some('b') => out.push_str(&month[..3]),
            Some('B') => out.push_str(month),
            Some('H') => out.push_str(&format!("{h:02}")),
            Some('M') => out.push_str(&format!("{mi:02}")),
            Some('S') => out.push_str(&format!("{s:02}")),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

fn to_value(v: &Json) -> minijinja::Value {
    use minijinja::Value;
    match v {
        Json::Null => Value::from(()),
        Json::Bool(b) => Value::from(*b),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::from(i)
            } else if let Some(u) = n.as_u64() {
                Value::from(u)
            } else {
                Value::from(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Json::String(s) => Value::from(s.as_str()),
        Json::Array(a) => Value::from(a.iter().map(to_value).collect::<Vec<_>>()),
        Json::Object(m) => Value::from_pairs(m.iter().map(|(k, v)| (k.as_str(), to_value(v)))),
    }
}

/// transformers' `tojson`: `json.dumps(x, ensure_ascii=False, indent=indent)` with Python's
/// separators (`", "` and `": "`, or `","` and `": "` with an indent).
fn tojson(
    v: &minijinja::Value,
    kwargs: minijinja::value::Kwargs,
) -> std::result::Result<minijinja::Value, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    kwargs.assert_all_used()?;
    let mut out = String::new();
    dump(v, indent, sort_keys.unwrap_or(false), 0, &mut out)?;
    Ok(minijinja::Value::from_safe_string(out))
}

fn dump(
    v: &minijinja::Value,
    indent: Option<usize>,
    sort: bool,
    level: usize,
    out: &mut String,
) -> std::result::Result<(), minijinja::Error> {
    use minijinja::value::ValueKind;
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            if let Some(i) = v.as_i64() {
                out.push_str(&i.to_string());
            } else {
                let f = f64::try_from(v.clone()).unwrap_or(f64::NAN);
                // Python's repr of a float: always a decimal point or exponent.
                let s = format!("{f:?}");
                out.push_str(&s);
            }
        }
        ValueKind::String => {
            out.push_str(&serde_json::to_string(v.as_str().unwrap_or("")).unwrap_or_default());
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<_> = v.try_iter()?.collect();
            dump_items(&items, ['[', ']'], indent, level, out, |it, out| {
                dump(it, indent, sort, level + 1, out)
            })?;
        }
        ValueKind::Map => {
            let mut keys: Vec<_> = v.try_iter()?.collect();
            if sort {
                keys.sort();
            }
            dump_items(&keys, ['{', '}'], indent, level, out, |k, out| {
                let ks = k.as_str().map(str::to_string).unwrap_or_else(|| k.to_string());
                out.push_str(&serde_json::to_string(&ks).unwrap_or_default());
                out.push_str(": ");
                dump(&v.get_item(k)?, indent, sort, level + 1, out)
            })?;
        }
        _ => out.push_str(&serde_json::to_string(&v.to_string()).unwrap_or_default()),
    }
    Ok(())
}

/// A list or an object: `open`, the items separated as `json.dumps` does (each on its own
/// line with an indent), `close`; just the brackets when there are none.
fn dump_items(
    items: &[minijinja::Value],
    [open, close]: [char; 2],
    indent: Option<usize>,
    level: usize,
    out: &mut String,
    mut item: impl FnMut(&minijinja::Value, &mut String) -> std::result::Result<(), minijinja::Error>,
) -> std::result::Result<(), minijinja::Error> {
    let newline = |out: &mut String, level: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.push_str(&" ".repeat(n * level));
        }
    };
    out.push(open);
    if items.is_empty() {
        out.push(close);
        return Ok(());
    }
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(if indent.is_some() { "," } else { ", " });
        }
        newline(out, level + 1);
        item(it, out)?;
    }
    newline(out, level);
    out.push(close);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trim_and_lstrip_blocks_as_jinja2() {
        let t = ChatTemplate::new(
            "{% for m in messages %}\n  {% if m.role == 'user' %}\n[{{ m.content }}]\n  {% endif %}\n{% endfor %}\n",
            "t",
        )
        .unwrap();
        let msgs = serde_json::json!([{"role": "user", "content": "a"}, {"role": "x", "content": "b"}]);
        // jinja2 (trim_blocks, lstrip_blocks): "[a]\n"
        assert_eq!(t.render(&msgs, false).unwrap(), "[a]\n");
    }

    #[test]
    fn python_methods_special_tokens_and_tojson() {
        let t = ChatTemplate::new(
            "{{ bos_token }}{% for m in messages %}{{ m['content'].strip() | capitalize }}|{{ m | tojson }}{% endfor %}",
            "t",
        )
        .unwrap()
        .with_tokenizer_config(br#"{"bos_token": {"content": "<s>"}, "eos_token": "</s>"}"#, "tok")
        .unwrap();
        let msgs = serde_json::json!([{"role": "user", "content": "  hELLO ", "n": [1, 2.5, null]}]);
        assert_eq!(
            t.render(&msgs, true).unwrap(),
            // Keys come sorted (serde_json's map), where Python keeps the caller's order.
            r#"<s>Hello|{"content": "  hELLO ", "n": [1, 2.5, null], "role": "user"}"#
        );
    }

    #[test]
    fn dates() {
        // 2026-12-02 09:41:05 UTC; Python: datetime(2026,12,2,9,41,5).strftime("%d %b %Y %H:%M:%S %B %%")
        assert_eq!(
            format_time(1_796_204_465, "%d %b %Y %H:%M:%S %B %%"),
            "02 Dec 2026 09:41:05 December %"
        );
        assert_eq!(format_time(951_782_400, "%Y-%m-%d"), "2000-02-29");
    }

    #[test]
    fn errors_and_limits() {
        let e = ChatTemplate::new("{% for %}", "chat_template.jinja").unwrap_err();
        assert!(e.to_string().contains("chat_template.jinja"), "{e}");
        let t = ChatTemplate::new("{{ raise_exception('roles must alternate') }}", "t").unwrap();
        let e = t.render(&serde_json::json!([]), true).unwrap_err();
        assert!(e.to_string().contains("roles must alternate"), "{e}");
        // A template that would run for ever runs out of fuel.
        let t = ChatTemplate::new(
            "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
            "t",
        )
        .unwrap();
        assert!(t.render(&serde_json::json!([]), true).is_err());
        assert!(t.render(&serde_json::json!({"a": 1}), true).is_err());
    }

    #[test]
    fn sources_in_transformers_order() {
        let files = ChatTemplateFiles {
            chat_template_jinja: None,
            chat_template_json: None,
            processor_config: Some(br#"{"image_seq_len": 4}"#),
            tokenizer_config: Some(
                br#"{"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D{{ eos_token }}"}], "eos_token": "E"}"#,
            ),
        };
        let t = ChatTemplate::from_files(&files).unwrap().unwrap();
        assert_eq!(t.render(&serde_json::json!([]), false).unwrap(), "DE");
        let files = ChatTemplateFiles {
            chat_template_json: Some(br#"{"chat_template": "J"}"#),
            ..files
        };
        assert_eq!(ChatTemplate::from_files(&files).unwrap().unwrap().source(), "J");
        let files = ChatTemplateFiles {
            chat_template_jinja: Some(b"K\n"),
            ..files
        };
        let t = ChatTemplate::from_files(&files).unwrap().unwrap();
        assert_eq!(
            t.render(&serde_json::json!([]), false).unwrap(),
            "K",
            "final newline dropped"
        );
        assert!(ChatTemplate::from_files(&ChatTemplateFiles::default())
            .unwrap()
            .is_none());
    }
}
