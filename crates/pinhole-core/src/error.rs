//! The one error type of the core crate. Every variant carries what a user needs to act:
//! the file, tensor or limit involved and what to do about it.

use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// Two shapes that must agree do not. `what` names the op or tensor.
    Shape { what: String, detail: String },
    /// A value of the wrong dtype was given to an op.
    DType { what: String, detail: String },
    /// A graph refers to a tensor or input that does not exist, or an input was not supplied.
    Graph(String),
    /// A configuration or request pinhole does not support.
    Unsupported(String),
    /// Something else that was given is not valid (an out-of-range id, a bad parameter).
    Invalid(String),
    /// A size read from `file` (at `key`) is over one of pinhole's documented limits
    /// ([`crate::hf::limits`]); checked before anything is allocated from it.
    Limit {
        file: String,
        key: String,
        /// The value as given (a number, or `a x b` for a product that overflows).
        value: String,
        limit: u64,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Shape { what, detail } => write!(f, "shape mismatch in {what}: {detail}"),
            Error::DType { what, detail } => write!(f, "wrong dtype for {what}: {detail}"),
            Error::Graph(m) => write!(f, "graph error: {m}"),
            Error::Unsupported(m) => write!(f, "unsupported: {m}"),
            Error::Invalid(m) => write!(f, "invalid input: {m}"),
            Error::Limit {
                file,
                key,
                value,
                limit,
            } => write!(
                f,
                "over a limit: {file}: `{key}` is {value}, over pinhole's limit of {limit}; the file \
                 is damaged or describes a model larger than pinhole supports (limits: RELIABILITY.md)"
            ),
        }
    }
}

impl std::error::Error for Error {}

pub(crate) fn shape_err(what: impl Into<String>, detail: impl Into<String>) -> Error {
    Error::Shape {
        what: what.into(),
        detail: detail.into(),
    }
}
