//! Typed access to the JSON objects of config files, with errors that name the file and the
//! key path (`text_config.hidden_size`) and say what was expected. Public so that a model
//! family's own config.json parser ([`crate::hf::config::ConfigLayout`]) reads its keys with
//! the same checks and [`crate::hf::limits`] as the parsers here.

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::hf::limits;
use crate::tensor::DType;

#[cfg(not(target_arch = "wasm32"))]
pub fn read_file(path: &std::path::Path) -> Result<(Vec<u8>, String)> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        Error::Invalid(format!(
            "cannot read {shown}: {e}; check the path and that the model folder is complete"
        ))
    })?;
    Ok((bytes, shown))
}

pub fn parse_object(bytes: &[u8], file: &str) -> Result<Map<String, Value>> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(Error::Invalid(format!(
            "{file} must hold a JSON object, not {}; download it again",
            kind(&other)
        ))),
        Err(e) => Err(Error::Invalid(format!(
            "{file} is not valid JSON ({e}); download it again"
        ))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();

/// A JSON object with the file and key path it came from, for error messages.
#[derive(Clone)]
pub struct Obj<'a> {
    pub file: &'a str,
    /// `""` at the top, `"text_config."` inside a sub-object.
    pub path: String,
    pub map: &'a Map<String, Value>,
}

impl<'a> Obj<'a> {
    pub fn new(file: &'a str, path: &str, map: &'a Map<String, Value>) -> Obj<'a> {
        Obj {
            file,
            path: path.to_string(),
            map,
        }
    }

    pub fn empty(file: &'a str, path: &str) -> Obj<'a> {
        Obj::new(file, path, EMPTY.get_or_init(Map::new))
    }

    /// The value of `key`, `None` when missing or null.
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn err(&self, key: &str, want: &str, got: &Value) -> Error {
        Error::Invalid(format!(
            "{}: `{}{key}` must be {want}, got {got}; fix the config file",
            self.file, self.path
        ))
    }

    pub fn sub(&self, key: &str) -> Result<Option<Obj<'a>>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Obj::new(self.file, &format!("{}{key}.", self.path), m))),
            Some(v) => Err(self.err(key, "an object", v)),
        }
    }

    pub fn as_usize(&self, key: &str, v: &Value) -> Result<usize> {
        let n = match v {
            Value::Number(n) => n.as_u64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 9.0e15)
                    .map(|f| f as u64)
            }),
            _ => None,
        };
        n.and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| self.err(key, "a non-negative integer", v))
    }

    pub fn usize(&self, key: &str, default: usize) -> Result<usize> {
        self.get(key).map_or(Ok(default), |v| self.as_usize(key, v))
    }

    /// A size that must be at most `max` (one of [`crate::hf::limits`]), checked before the
    /// caller can allocate or multiply with it.
    pub fn dim(&self, key: &str, default: usize, max: usize) -> Result<usize> {
        let v = self.usize(key, default)?;
        limits::at_most(self.file, &format!("{}{key}", self.path), v, max)
    }

    /// [`Obj::dim`] that must also be non-zero (a width, a count of heads, a vocabulary).
    pub fn dim_pos(&self, key: &str, default: usize, max: usize) -> Result<usize> {
        let v = self.dim(key, default, max)?;
        self.nonzero(key, v)
    }

    pub fn nonzero(&self, key: &str, v: usize) -> Result<usize> {
        if v == 0 {
            return Err(Error::Invalid(format!(
                "{}: `{}{key}` must be > 0; fix the config file",
                self.file, self.path
            )));
        }
        Ok(v)
    }

    /// [`Obj::opt_usize_or`] with the limit of [`Obj::dim`].
    pub fn opt_dim_or(&self, key: &str, default: Option<usize>, max: usize) -> Result<Option<usize>> {
        match self.opt_usize_or(key, default)? {
            Some(v) => limits::at_most(self.file, &format!("{}{key}", self.path), v, max).map(Some),
            None => Ok(None),
        }
    }

    /// [`Obj::square`] that must be in `1..=max`.
    pub fn square_dim(&self, key: &str, default: usize, max: usize) -> Result<usize> {
        let v = self.square(key, default)?;
        let v = limits::at_most(self.file, &format!("{}{key}", self.path), v, max)?;
        self.nonzero(key, v)
    }

    /// Missing → `default`; explicit null → `None`; otherwise `read` of the value.
    fn opt_or<T>(&self, key: &str, default: Option<T>, read: impl Fn(&Value) -> Result<T>) -> Result<Option<T>> {
        match self.map.get(key) {
            None => Ok(default),
            Some(Value::Null) => Ok(None),
            Some(v) => read(v).map(Some),
        }
    }

    /// Missing → `default`; explicit null → `None`.
    pub fn opt_usize_or(&self, key: &str, default: Option<usize>) -> Result<Option<usize>> {
        self.opt_or(key, default, |v| self.as_usize(key, v))
    }

    pub fn as_u32(&self, key: &str, v: &Value) -> Result<u32> {
        let n = self.as_usize(key, v)?;
        u32::try_from(n).map_err(|_| self.err(key, "a token id below 2^32", v))
    }

    pub fn opt_u32(&self, key: &str) -> Result<Option<u32>> {
        self.opt_u32_or(key, None)
    }

    pub fn opt_u32_or(&self, key: &str, default: Option<u32>) -> Result<Option<u32>> {
        self.opt_or(key, default, |v| self.as_u32(key, v))
    }

    /// A token id or a list of them; missing → `default`, null → empty.
    pub fn token_ids(&self, key: &str, default: &[u32]) -> Result<Vec<u32>> {
        match self.map.get(key) {
            None => Ok(default.to_vec()),
            Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a.iter().map(|v| self.as_u32(key, v)).collect(),
            Some(v) => Ok(vec![self.as_u32(key, v)?]),
        }
    }

    pub fn f64(&self, key: &str, default: f64) -> Result<f64> {
        Ok(self.opt_f64_or(key, Some(default))?.unwrap_or(default))
    }

    pub fn opt_f64_or(&self, key: &str, default: Option<f64>) -> Result<Option<f64>> {
        self.opt_or(key, default, |v| {
            v.as_f64()
                .filter(|f| f.is_finite())
                .ok_or_else(|| self.err(key, "a number", v))
        })
    }

    pub fn bool(&self, key: &str, default: bool) -> Result<bool> {
        Ok(self.opt_bool(key)?.unwrap_or(default))
    }

    pub fn opt_bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.err(key, "true or false", v)),
        }
    }

    pub fn string(&self, key: &str, default: Option<&str>) -> Result<Option<String>> {
        match self.get(key) {
            None => Ok(default.map(str::to_string)),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.err(key, "a string", v)),
        }
    }

    /// An int, or a `[h, w]` list with h == w (SigLIP allows both).
    pub fn square(&self, key: &str, default: usize) -> Result<usize> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Array(a)) if a.len() == 2 => {
                let h = self.as_usize(key, &a[0])?;
                let w = self.as_usize(key, &a[1])?;
                if h != w {
                    return Err(Error::Unsupported(format!(
                        "{}: `{}{key}` is {h}x{w}; pinhole supports square images and patches",
                        self.file, self.path
                    )));
                }
                Ok(h)
            }
            Some(v) => self.as_usize(key, v),
        }
    }

    /// A number or a list of 3 (per RGB channel).
    pub fn triple(&self, key: &str, default: [f64; 3]) -> Result<[f64; 3]> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Array(a)) if a.len() == 3 => {
                let mut out = [0.0; 3];
                for (o, v) in out.iter_mut().zip(a) {
                    *o = v
                        .as_f64()
                        .ok_or_else(|| self.err(key, "three numbers", &Value::Array(a.clone())))?;
                }
                Ok(out)
            }
            Some(Value::Number(n)) => n
                .as_f64()
                .map(|f| [f; 3])
                .ok_or_else(|| self.err(key, "a number or three numbers", &Value::Null)),
            Some(v) => Err(self.err(key, "a number or three numbers (one per channel)", v)),
        }
    }

    /// `dtype` (transformers 5) or `torch_dtype` (4.x).
    pub fn dtype(&self) -> Result<Option<DType>> {
        let key = if self.get("dtype").is_some() {
            "dtype"
        } else {
            "torch_dtype"
        };
        let Some(s) = self.string(key, None)? else {
            return Ok(None);
        };
        match s.strip_prefix("torch.").unwrap_or(&s) {
            "float32" => Ok(Some(DType::F32)),
            "float16" => Ok(Some(DType::F16)),
            "bfloat16" => Ok(Some(DType::BF16)),
            other => Err(Error::Unsupported(format!(
                "{}: `{}{key}` is `{other}`; pinhole reads float32, float16 and bfloat16 \
                 checkpoints",
                self.file, self.path
            ))),
        }
    }
}
