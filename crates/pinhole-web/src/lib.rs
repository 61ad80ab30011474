//! pinhole-web: the engine of the npm package. The same pinhole-core / pinhole-gpu /
//! pinhole-models code as the desktop, compiled to `wasm32-unknown-unknown` (wgpu's WebGPU
//! backend) and exported with wasm-bindgen. The JS in `js/` does what only JS can (fetch,
//! Cache Storage, files, workers, image sources) and calls these classes:
//!
//! * [`Engine`]: the GPU device (`Engine.open()`), adapter facts, and `beginLoad()`;
//! * [`Loader`]: a model arriving as byte chunks (weights uploaded tensor by tensor while the
//!   download runs, see `pinhole_models::stream_loader`);
//! * [`Model`]: a loaded model: image preprocessing (encoded bytes decoded with the same
//!   `image` crate path as the CLI, or raw RGBA pixels; SmolVLM's tiles as its processor
//!   makes them), the prompt (chat models: the folder's chat template over `messages`, as
//!   transformers' `apply_chat_template`) and generation with a per-token callback that can
//!   stop it.
//!
//! Every failure is a JS `Error` with a `code` property (see [`errors`]). A Rust panic aborts
//! the wasm instance; the panic hook records its message first ([`last_panic`]) so the JS side
//! can report it as an `internal` error and start a fresh instance.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use js_sys::{Function, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use pinhole_core::hf::image::{composite_on_white, Rgb8Image};
use pinhole_core::hf::{ChatTemplate, ChatTemplateFiles};
use pinhole_gpu::{Executor, Gpu, GpuOptions};
use pinhole_models::boxes::parse_boxes;
use pinhole_models::loader::{LoadOptions, ModelFiles, WeightPrecision};
use pinhole_models::processor::{self, ImageInput};
use pinhole_models::stream_loader::StreamingLoader;
use pinhole_models::{GenerateOptions, LoadedModel, Model as Arch};

pub mod errors;
#[cfg(feature = "kernel-tests")]
mod kernel_tests;

use errors::{js_error, model_error, Code};

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    static PANIC_LISTENER: RefCell<Option<Function>> = const { RefCell::new(None) };
}

/// Installs the panic hook (called once when the module is instantiated): the message goes to
/// the console, is kept for [`last_panic`] and is passed to the [`on_panic`] listener before
/// the instance aborts (a panic inside an async call would otherwise leave its promise
/// pending forever).
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        let msg = info.to_string();
        let _ = LAST_PANIC.try_with(|p| p.try_borrow_mut().map(|mut p| *p = Some(msg.clone())));
        console_error_panic_hook::hook(info);
        let _ = PANIC_LISTENER.try_with(|l| {
            if let Ok(l) = l.try_borrow() {
                if let Some(f) = l.as_ref() {
                    let _ = f.call1(&JsValue::NULL, &JsValue::from_str(&msg));
                }
            }
        });
    }));
}

/// Registers `listener(message)`, called when Rust panics (the instance is unusable after).
#[wasm_bindgen(js_name = onPanic)]
pub fn on_panic(listener: Function) {
    PANIC_LISTENER.with(|l| *l.borrow_mut() = Some(listener));
}

/// The message of the panic that aborted this instance, if one did.
#[wasm_bindgen(js_name = lastPanic)]
pub fn last_panic() -> Option<String> {
    LAST_PANIC.with(|p| p.borrow().clone())
}

/// Panics on purpose: the tests use it to prove a panic becomes an `internal` error and the
/// worker keeps working afterwards.
#[wasm_bindgen(js_name = debugPanic)]
pub fn debug_panic(message: &str) {
    panic!("debugPanic: {message}");
}

/// An image decoded to RGB8 by the same code as the CLI (PNG, JPEG, WebP, GIF; EXIF/XMP
/// orientation applied unless turned off; alpha composited on white).
#[wasm_bindgen]
pub struct DecodedImage {
    img: Rgb8Image,
}

#[wasm_bindgen]
impl DecodedImage {
    #[wasm_bindgen(getter)]
    pub fn width(&self) -> u32 {
        self.img.width as u32
    }

    #[wasm_bindgen(getter)]
    pub fn height(&self) -> u32 {
        self.img.height as u32
    }

    /// The pixels, row by row, 3 bytes each.
    pub fn rgb(&self) -> Vec<u8> {
        self.img.data.clone()
    }

    /// Resized with Pillow's bicubic filter (what the processors use), as a new image.
    pub fn resize(&self, width: u32, height: u32) -> Result<DecodedImage, JsValue> {
        let img = pinhole_core::hf::image::resize_bicubic(&self.img, height as usize, width as usize)
            .map_err(|e| js_error(Code::BadImage, &e.to_string()))?;
        Ok(DecodedImage { img })
    }
}

/// Decodes an encoded image as the CLI and `Model.pixelsFromEncoded` do (tests compare its
/// pixels with Pillow's; BENCHMARKS.md times it).
#[wasm_bindgen(js_name = decodeImage)]
pub fn decode_image(bytes: &[u8], name: &str, exif_orientation: Option<bool>) -> Result<DecodedImage, JsValue> {
    let opts = pinhole_core::hf::image::DecodeOptions {
        apply_orientation: exif_orientation.unwrap_or(true),
    };
    let img = pinhole_core::hf::image::decode_image_with(bytes, name, opts)
        .map_err(|e| js_error(Code::BadImage, &e.to_string()))?;
    Ok(DecodedImage { img })
}

/// The crate version (the npm package checks it matches its own).
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

/// The GPU device.
#[wasm_bindgen]
pub struct Engine {
    gpu: Arc<Gpu>,
}

#[wasm_bindgen]
impl Engine {
    /// Opens the WebGPU adapter and device. `max_binding_bytes` lowers the size at which
    /// weights are split across bindings (tests; `undefined` = the adapter's limit).
    pub async fn open(max_binding_bytes: Option<f64>) -> Result<Engine, JsValue> {
        let opts = GpuOptions {
            max_binding_bytes: max_binding_bytes.filter(|b| *b >= 1.0).map(|b| b as u64),
            force_fallback: false,
        };
        let gpu = Gpu::new(&opts).await.map_err(|e| model_error(&e.into()))?;
        Ok(Engine { gpu })
    }

    /// Opt-in f16 arithmetic in the tiled GEMM (`Gpu::set_f16_math`): faster on GPUs with
    /// `shader-f16`, results no longer bit-equal to transformers. A `bad-request` error on an
    /// adapter without the feature.
    #[wasm_bindgen(js_name = setF16Math)]
    pub fn set_f16_math(&self, on: bool) -> Result<(), JsValue> {
        self.gpu.set_f16_math(on).map_err(|e| model_error(&e.into()))
    }

    /// Adapter facts as JSON: name, backend, software or not, f16, subgroups, limits.
    #[wasm_bindgen(js_name = adapterJson)]
    pub fn adapter_json(&self) -> String {
        let a = &self.gpu.adapter;
        serde_json::json!({
            "name": a.name,
            "backend": a.backend,
            "deviceType": a.device_type,
            "driver": a.driver,
            "isSoftware": a.is_software,
            "shaderF16": a.shader_f16,
            "subgroups": a.subgroups,
            "features": a.features,
            "limits": {
                "maxStorageBufferBindingSize": a.max_storage_buffer_binding_size,
                "maxBufferSize": a.max_buffer_size,
                "maxComputeWorkgroupStorageSize": a.max_compute_workgroup_storage_size,
                "maxComputeInvocationsPerWorkgroup": a.max_compute_invocations_per_workgroup,
                "maxComputeWorkgroupsPerDimension": a.max_compute_workgroups_per_dimension,
                "maxStorageBuffersPerShaderStage": a.max_storage_buffers_per_shader_stage,
            },
            "weightBindingLimit": a.weight_binding_limit,
        })
        .to_string()
    }

    /// Why the GPU device was lost (`GPUDevice.lost` resolved), or `undefined` while it is
    /// usable. The JS side checks it before a call and, once lost, opens a new device and
    /// reloads the model instead of failing every later call.
    #[wasm_bindgen(js_name = lostReason)]
    pub fn lost_reason(&self) -> Option<String> {
        self.gpu.lost_reason()
    }

    /// Calls `GPUDevice.destroy()` on this engine's device: the tests use it to lose the
    /// device in the middle of a generation (the same thing a GPU reset does to pinhole).
    #[wasm_bindgen(js_name = debugLoseDevice)]
    pub fn debug_lose_device(&self) {
        self.gpu.device.destroy();
    }

    /// Starts loading a model from its small files. `precision`: "auto" | "f32" | "f16".
    /// `place` names the model (its URL or folder) in errors.
    #[allow(clippy::too_many_arguments)]
    #[wasm_bindgen(js_name = beginLoad)]
    pub fn begin_load(
        &self,
        place: &str,
        config: &[u8],
        processor_config: &[u8],
        processor_name: &str,
        generation_config: Option<Vec<u8>>,
        tokenizer: &[u8],
        precision: &str,
    ) -> Result<Loader, JsValue> {
        let precision = match precision {
            "auto" | "" => WeightPrecision::Auto,
            "f32" => WeightPrecision::F32,
            "f16" => WeightPrecision::F16,
            other => {
                return Err(js_error(
                    Code::BadRequest,
                    &format!("dtype must be 'auto', 'f32' or 'f16', got '{other}'"),
                ))
            }
        };
        let at = |f: &str| format!("{}/{f}", place.trim_end_matches('/'));
        let files = ModelFiles {
            config: (config, &at("config.json")),
            processor: (processor_config, &at(processor_name)),
            generation: generation_config.as_deref().map(|b| (b, at("generation_config.json"))),
            tokenizer: (tokenizer, &at("tokenizer.json")),
        };
        let inner = StreamingLoader::new(self.gpu.clone(), &files, &LoadOptions { precision }, place)
            .map_err(|e| model_error(&e))?;
        Ok(Loader {
            inner: Some(inner),
            gpu: self.gpu.clone(),
            template: None,
        })
    }

    /// Runs the kernel test cases shared with `crates/pinhole-gpu/tests` on this device (and
    /// on a second device with the per-binding limit lowered); resolves to a JSON report.
    #[cfg(feature = "kernel-tests")]
    #[wasm_bindgen(js_name = runKernelTests)]
    pub fn run_kernel_tests(&self, filter: Option<String>) -> Promise {
        let gpu = self.gpu.clone();
        future_to_promise(async move {
            let report = kernel_tests::run(gpu, filter.as_deref()).await;
            Ok(JsValue::from_str(&report))
        })
    }
}

/// A model arriving as byte chunks.
#[wasm_bindgen]
pub struct Loader {
    inner: Option<StreamingLoader>,
    gpu: Arc<Gpu>,
    /// Chat models: the folder's chat template ([`Loader::set_chat_template`]).
    template: Option<ChatTemplate>,
}

impl Loader {
    fn get(&mut self) -> Result<&mut StreamingLoader, JsValue> {
        self.inner
            .as_mut()
            .ok_or_else(|| js_error(Code::BadRequest, "this loader already finished"))
    }
}

#[wasm_bindgen]
impl Loader {
    /// Whether the model takes chat prompts (SmolVLM / Idefics3): the JS side then fetches the
    /// files a chat template can come from and passes them to [`Loader::set_chat_template`].
    #[wasm_bindgen(js_name = isChatModel)]
    pub fn is_chat_model(&mut self) -> Result<bool, JsValue> {
        Ok(is_chat(self.get()?.model()))
    }

    /// The chat template from whichever of its files the folder has (transformers' order:
    /// `chat_template.jinja`, `chat_template.json`, `processor_config.json`,
    /// `tokenizer_config.json`, whose special tokens the template sees too). A folder with
    /// none can still be used with `rawPrompt`.
    #[wasm_bindgen(js_name = setChatTemplate)]
    pub fn set_chat_template(
        &mut self,
        jinja: Option<Vec<u8>>,
        json: Option<Vec<u8>>,
        processor_config: Option<Vec<u8>>,
        tokenizer_config: Option<Vec<u8>>,
    ) -> Result<(), JsValue> {
        self.get()?;
        let files = ChatTemplateFiles {
            chat_template_jinja: jinja.as_deref(),
            chat_template_json: json.as_deref(),
            processor_config: processor_config.as_deref(),
            tokenizer_config: tokenizer_config.as_deref(),
        };
        self.template = ChatTemplate::from_files(&files).map_err(|e| js_error(Code::BadModel, &e.to_string()))?;
        Ok(())
    }

    /// For a sharded checkpoint: `model.safetensors.index.json`.
    #[wasm_bindgen(js_name = setIndex)]
    pub fn set_index(&mut self, bytes: &[u8], name: &str) -> Result<(), JsValue> {
        self.get()?.set_index(bytes, name).map_err(|e| model_error(&e))
    }

    /// The safetensors files to stream, in order.
    #[wasm_bindgen(js_name = weightFiles)]
    pub fn weight_files(&mut self) -> Result<Vec<String>, JsValue> {
        Ok(self.get()?.weight_files())
    }

    #[wasm_bindgen(js_name = beginFile)]
    pub fn begin_file(&mut self, name: &str, size: Option<f64>) -> Result<(), JsValue> {
        self.get()?
            .begin_file(name, size.map(|s| s as u64))
            .map_err(|e| model_error(&e))
    }

    /// The next bytes of the current file; tensors they complete are uploaded now. `offset`
    /// is where they start in the file: anything but the next expected byte (a duplicate
    /// chunk, a gap) is refused.
    pub fn push(&mut self, chunk: &[u8], offset: Option<f64>) -> Result<(), JsValue> {
        let l = self.get()?;
        match offset {
            Some(o) => l.push_at(o as u64, chunk),
            None => l.push(chunk),
        }
        .map_err(|e| model_error(&e))
    }

    #[wasm_bindgen(js_name = endFile)]
    pub fn end_file(&mut self) -> Result<(), JsValue> {
        self.get()?.end_file().map_err(|e| model_error(&e))
    }

    /// Bounds the wasm memory the loader uses for f32/f16/bf16 weights (bytes; default
    /// 256 MiB): tensors are written to the GPU in pieces as their bytes arrive.
    #[wasm_bindgen(js_name = setHostBound)]
    pub fn set_host_bound(&mut self, bytes: f64) -> Result<(), JsValue> {
        self.get()?.set_host_bound(bytes.max(0.0) as usize);
        Ok(())
    }

    /// The most wasm memory the loader held at once for weights so far (bytes).
    #[wasm_bindgen(js_name = peakHostBytes)]
    pub fn peak_host_bytes(&self) -> f64 {
        self.inner.as_ref().map_or(0.0, |l| l.peak_host_bytes() as f64)
    }

    /// Bytes of weights uploaded so far.
    #[wasm_bindgen(js_name = uploadedBytes)]
    pub fn uploaded_bytes(&self) -> f64 {
        self.inner.as_ref().map_or(0.0, |l| l.uploaded_bytes() as f64)
    }

    /// The loaded model (the loader cannot be used afterwards).
    pub fn finish(&mut self) -> Result<Model, JsValue> {
        let l = self
            .inner
            .take()
            .ok_or_else(|| js_error(Code::BadRequest, "this loader already finished"))?;
        let lm = l.finish().map_err(|e| model_error(&e))?;
        let ex = Executor::new(self.gpu.clone());
        Ok(Model {
            inner: Rc::new(RefCell::new(Some(Inner {
                lm,
                ex,
                template: self.template.take(),
            }))),
        })
    }
}

struct Inner {
    lm: LoadedModel,
    ex: Executor,
    template: Option<ChatTemplate>,
}

/// Whether `m` is a chat model: its prompt goes through the folder's chat template.
fn is_chat(m: &Arch) -> bool {
    m.is_chat()
}

/// The question asked when the caller gives neither a prompt nor messages: PaliGemma's
/// captioning task (also the package's default for BLIP-2, kept as it was), and for chat
/// models the CLI's default question.
fn default_prompt(m: &Arch) -> &'static str {
    if is_chat(m) {
        "Describe this image."
    } else {
        "caption en"
    }
}

/// The text the model gets. Chat models: `messages` (a JSON list of `{role, content}`, the
/// form `apply_chat_template` takes) through the chat template with the generation prompt;
/// a plain `prompt` becomes one user turn with the image first (as `pinhole generate`);
/// `raw` passes `prompt` as it is (it must hold `<image>`). Other models take `prompt`.
fn model_prompt(i: &Inner, prompt: Option<String>, messages: Option<String>, raw: bool) -> Result<String, JsValue> {
    let m = &i.lm.model;
    if !is_chat(m) {
        if messages.is_some() {
            return Err(js_error(
                Code::BadRequest,
                &format!(
                    "messages are for chat models (SmolVLM / Idefics3); this {} model takes a prompt",
                    m.family()
                ),
            ));
        }
        return Ok(prompt.unwrap_or_else(|| default_prompt(m).to_string()));
    }
    if raw {
        if messages.is_some() {
            return Err(js_error(Code::BadRequest, "rawPrompt takes a prompt, not messages"));
        }
        return prompt.ok_or_else(|| js_error(Code::BadRequest, "rawPrompt needs a prompt that holds <image>"));
    }
    let template = i.template.as_ref().ok_or_else(|| {
        js_error(
            Code::BadModel,
            "the model folder has no chat template (chat_template.jinja, chat_template.json, processor_config.json or \
             tokenizer_config.json); pass rawPrompt: true with a prompt that holds <image>",
        )
    })?;
    let messages = match messages {
        Some(json) => serde_json::from_str::<serde_json::Value>(&json)
            .map_err(|e| js_error(Code::BadRequest, &format!("messages are not JSON: {e}")))?,
        None => ChatTemplate::image_question(prompt.as_deref().unwrap_or(default_prompt(m))),
    };
    template
        .render(&messages, true)
        .map_err(|e| js_error(Code::BadRequest, &e.to_string()))
}

/// A preprocessed image for one model: pixels `[3, H, W]`, or SmolVLM's tiles and grid.
#[wasm_bindgen]
pub struct Pixels {
    t: ImageInput,
}

/// A loaded model.
#[wasm_bindgen]
pub struct Model {
    inner: Rc<RefCell<Option<Inner>>>,
}

fn busy() -> JsValue {
    js_error(Code::Busy, "the model is busy with another request; await it first")
}

fn busy_or_gone<T>(r: Result<T, std::cell::BorrowError>) -> Result<T, JsValue> {
    r.map_err(|_| busy())
}

#[wasm_bindgen]
impl Model {
    /// Model facts as JSON (image size, image tokens, weight dtype and GPU bytes).
    #[wasm_bindgen(js_name = infoJson)]
    pub fn info_json(&self) -> Result<String, JsValue> {
        let g = busy_or_gone(self.inner.try_borrow())?;
        let i = g.as_ref().ok_or_else(disposed)?;
        let m = &i.lm.model;
        let [_, h, w] = m.pixel_shape();
        Ok(serde_json::json!({
            "modelType": m.family(),
            "imageSize": [h, w],
            "imageTokens": m.num_image_tokens(),
            "weightDtype": format!("{:?}", pinhole_models::loader::model_matrix_dtype(m)).to_lowercase(),
            "weightBytes": i.lm.weights.bytes(),
            "contextLength": m.max_positions(),
            "chat": is_chat(m),
            "chatTemplate": i.template.is_some(),
        })
        .to_string())
    }

    /// Decodes an encoded image (PNG, JPEG, WebP, GIF) with the same code as the CLI and
    /// preprocesses it for this model.
    #[wasm_bindgen(js_name = pixelsFromEncoded)]
    pub fn pixels_from_encoded(&self, bytes: &[u8], name: &str) -> Result<Pixels, JsValue> {
        let g = busy_or_gone(self.inner.try_borrow())?;
        let i = g.as_ref().ok_or_else(disposed)?;
        let t =
            processor::image_input(&i.lm.model, bytes, name).map_err(|e| js_error(Code::BadImage, &e.to_string()))?;
        Ok(Pixels { t })
    }

    /// Preprocesses straight RGBA pixels (a canvas' `ImageData`): alpha is composited on
    /// white as Pillow's `convert("RGB")` after `alpha_composite` does for decoded images.
    #[wasm_bindgen(js_name = pixelsFromRgba)]
    pub fn pixels_from_rgba(&self, rgba: &[u8], width: u32, height: u32) -> Result<Pixels, JsValue> {
        let g = busy_or_gone(self.inner.try_borrow())?;
        let i = g.as_ref().ok_or_else(disposed)?;
        let (w, h) = (width as usize, height as usize);
        if w == 0 || h == 0 || rgba.len() != w * h * 4 {
            return Err(js_error(
                Code::BadImage,
                &format!(
                    "an RGBA image of {width}x{height} needs {} bytes, got {}",
                    w * h * 4,
                    rgba.len()
                ),
            ));
        }
        let mut rgb = Vec::with_capacity(w * h * 3);
        for p in rgba.chunks_exact(4) {
            rgb.extend_from_slice(&composite_on_white([p[0], p[1], p[2], p[3]]));
        }
        let img = Rgb8Image::new(w, h, rgb).map_err(|e| js_error(Code::BadImage, &e.to_string()))?;
        let t = processor::image_input_rgb(&i.lm.model, &img, "the RGBA image")
            .map_err(|e| js_error(Code::BadImage, &e.to_string()))?;
        Ok(Pixels { t })
    }

    /// Generates for `pixels` and `prompt` or `messages` (JSON; chat models, see
    /// [`model_prompt`]; `undefined` prompt: the model's default question). `on_token(id,
    /// textSoFar)` is called after each new token; returning `false` stops generation there
    /// (abort). Resolves to the result as JSON: `{text, tokenIds, boxes, timings,
    /// stoppedOnEos, stopped, promptTokens}`.
    // The mutable borrow held across the awaits is the model's lock: a second call while one
    // runs gets a 'busy' error instead of interleaving with its KV cache (the JS side queues
    // calls, so this only happens when the raw class is used directly).
    #[allow(clippy::await_holding_refcell_ref)]
    pub fn generate(
        &self,
        pixels: &Pixels,
        prompt: Option<String>,
        max_new_tokens: u32,
        on_token: Function,
        messages: Option<String>,
        raw_prompt: Option<bool>,
    ) -> Promise {
        let inner = self.inner.clone();
        let px = pixels.t.clone();
        future_to_promise(async move {
            let mut g = inner.try_borrow_mut().map_err(|_| busy())?;
            let i = g.as_mut().ok_or_else(disposed)?;
            let prompt = model_prompt(i, prompt, messages, raw_prompt.unwrap_or(false))?;
            let opts = GenerateOptions {
                max_new_tokens: max_new_tokens as usize,
                ..Default::default()
            };
            let mut stopped = false;
            let mut callback_error: Option<JsValue> = None;
            let gen = pinhole_models::generate_with(&i.lm, &mut i.ex, &px, &prompt, &opts, |id, text| {
                match on_token.call2(&JsValue::NULL, &JsValue::from(id), &JsValue::from_str(text)) {
                    Ok(v) if v.as_bool() == Some(false) => {
                        stopped = true;
                        false
                    }
                    Ok(_) => true,
                    Err(e) => {
                        callback_error = Some(e);
                        false
                    }
                }
            })
            .await
            .map_err(|e| model_error(&e))?;
            if let Some(e) = callback_error {
                return Err(e);
            }
            let with_special = processor::decode_with_special(&i.lm.tokenizer, &gen.token_ids).unwrap_or_default();
            let boxes: Vec<_> = parse_boxes(&with_special)
                .into_iter()
                .map(|b| {
                    serde_json::json!({"label": b.label, "xMin": b.x_min, "yMin": b.y_min, "xMax": b.x_max, "yMax": b.y_max})
                })
                .collect();
            let t = &gen.timings;
            let json = serde_json::json!({
                "text": gen.text,
                "tokenIds": gen.token_ids,
                "promptTokens": gen.prompt_ids.len(),
                "stoppedOnEos": gen.stopped_on_eos,
                "stopped": stopped,
                "boxes": boxes,
                "timings": {
                    "imageEncodeMs": t.image_encode_ms,
                    "prefillMs": t.prefill_ms,
                    "decodeMs": t.decode_ms,
                    "tokensPerSecond": t.tokens_per_s,
                },
            });
            Ok(JsValue::from_str(&json.to_string()))
        })
    }

    /// Frees the GPU memory of the model now (instead of when JS garbage-collects it).
    pub fn dispose(&self) -> Result<(), JsValue> {
        let mut g = self.inner.try_borrow_mut().map_err(|_| busy())?;
        *g = None;
        Ok(())
    }
}

fn disposed() -> JsValue {
    js_error(Code::Disposed, "the model was disposed; load it again")
}
