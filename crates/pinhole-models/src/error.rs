//! Errors of model loading and generation: each names the file, tensor or limit involved.

use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug)]
pub enum Error {
    Core(pinhole_core::Error),
    Gpu(pinhole_gpu::GpuError),
    /// A file of the model folder is missing or unreadable.
    File {
        path: String,
        message: String,
    },
    /// `tokenizer.json` could not be loaded or used.
    Tokenizer {
        file: String,
        message: String,
    },
    /// A checkpoint tensor is missing or has the wrong shape.
    Tensor {
        name: String,
        message: String,
    },
    /// The prompt plus image tokens plus new tokens exceed the model's context.
    TooLong {
        needed: usize,
        limit: usize,
    },
    /// Bad request (empty prompt, zero tokens, …).
    Request(String),
    /// A sampling parameter outside its domain (temperature ≤ 0, top_p outside (0, 1],
    /// repetition penalty ≤ 0).
    Sampling(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Core(e) => write!(f, "{e}"),
            Error::Gpu(e) => write!(f, "{e}"),
            Error::File { path, message } => write!(f, "{path}: {message}"),
            Error::Tokenizer { file, message } => write!(f, "{file}: cannot use the tokenizer: {message}"),
            Error::Tensor { name, message } => write!(f, "tensor '{name}': {message}"),
            Error::TooLong { needed, limit } => write!(
                f,
                "the prompt, image tokens and new tokens need {needed} positions but the model's context is {limit}; \
                 shorten the prompt or lower --max-new-tokens"
            ),
            Error::Request(m) => write!(f, "{m}"),
            Error::Sampling(m) => write!(f, "invalid sampling parameters: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<pinhole_core::Error> for Error {
    fn from(e: pinhole_core::Error) -> Self {
        Error::Core(e)
    }
}

impl From<pinhole_gpu::GpuError> for Error {
    fn from(e: pinhole_gpu::GpuError) -> Self {
        Error::Gpu(e)
    }
}
