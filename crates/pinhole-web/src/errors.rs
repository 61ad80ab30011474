//! Rust errors as JS `Error`s with a `code` the npm package turns into a `PinholeError`
//! (js/errors.js lists the same codes).

use js_sys::Reflect;
use wasm_bindgen::JsValue;

use pinhole_gpu::GpuError;
use pinhole_models::Error;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    NoWebgpu,
    BadModel,
    BadImage,
    PromptTooLong,
    BadRequest,
    DeviceLost,
    Gpu,
    Busy,
    Disposed,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::NoWebgpu => "no-webgpu",
            Code::BadModel => "bad-model",
            Code::BadImage => "bad-image",
            Code::PromptTooLong => "prompt-too-long",
            Code::BadRequest => "bad-request",
            Code::DeviceLost => "device-lost",
            Code::Gpu => "gpu",
            Code::Busy => "busy",
            Code::Disposed => "disposed",
        }
    }
}

/// A JS `Error(message)` with `code` set.
pub fn js_error(code: Code, message: &str) -> JsValue {
    let e = js_sys::Error::new(message);
    // Setting a property on a fresh Error object cannot fail.
    let _ = Reflect::set(&e, &JsValue::from_str("code"), &JsValue::from_str(code.as_str()));
    e.into()
}

/// The code of a model/loading/generation error.
pub fn code_of(e: &Error) -> Code {
    match e {
        Error::Gpu(g) => match g {
            GpuError::NoAdapter(_) | GpuError::RequestDevice(_) => Code::NoWebgpu,
            GpuError::DeviceLost { .. } => Code::DeviceLost,
            // An option this adapter cannot honour (f16 math without shader-f16).
            GpuError::Core(_) | GpuError::MissingFeature { .. } => Code::BadRequest,
            _ => Code::Gpu,
        },
        Error::TooLong { .. } => Code::PromptTooLong,
        Error::Request(_) | Error::Sampling(_) => Code::BadRequest,
        Error::Core(_) | Error::File { .. } | Error::Tokenizer { .. } | Error::Tensor { .. } => Code::BadModel,
    }
}

pub fn model_error(e: &Error) -> JsValue {
    let msg = match e {
        // The desktop message mentions CLI flags; say it in the API's words.
        Error::TooLong { needed, limit } => format!(
            "the prompt, image tokens and new tokens need {needed} positions but the model's context is {limit}; \
             shorten the prompt or lower maxNewTokens"
        ),
        other => other.to_string(),
    };
    js_error(code_of(e), &msg)
}
