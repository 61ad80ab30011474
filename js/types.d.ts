// The types of the pinhole npm package's API (hand-written). js/index.d.ts declares the
// exports with them, and js/*.js names them in JSDoc; tests/types/check.ts checks the
// declarations against what TypeScript infers from js/index.js.

export type PinholeErrorCode =
  | 'no-webgpu'
  | 'network'
  | 'bad-model'
  | 'bad-image'
  | 'prompt-too-long'
  | 'bad-request'
  | 'aborted'
  | 'device-lost'
  | 'gpu'
  | 'busy'
  | 'disposed'
  | 'internal';

/** A model folder in Hugging Face layout: its URL, local files, or a directory handle. */
export type ModelSource = string | URL | FileList | File[] | FileSystemDirectoryHandle;

/** The name of the model inside the package (`Pinhole.load()` loads it too). */
export type BundledModelName = 'pinhole-shapes';

/** Anything the page can show as an image. */
export type ImageInput =
  | HTMLImageElement
  | HTMLCanvasElement
  | OffscreenCanvas
  | ImageBitmap
  | ImageData
  | VideoFrame
  | HTMLVideoElement
  | Blob
  | File;

export interface ProgressEvent {
  /** The file this event is about; `null` on the final 'ready' event. */
  file: string | null;
  /** Bytes of `file` read so far. */
  loaded: number;
  /** Size of `file` when known (Content-Length, File.size), else null. */
  total: number | null;
  /** 'download' (network), 'cache' (Cache Storage or local files), 'ready' (model loaded). */
  phase: 'download' | 'cache' | 'ready';
  /** Bytes of all files read so far. */
  totalLoaded: number;
  /** Sum of the sizes known so far (grows as each file starts). */
  totalBytes: number;
}

export interface LoadOptions {
  onProgress?: (event: ProgressEvent) => void;
  /** Aborts downloads and the load; the promise rejects with code 'aborted'. */
  signal?: AbortSignal;
  /** Run the engine in a module Web Worker (default) or on the calling thread (false). */
  worker?: boolean;
  /** Matrix weight storage on the GPU: 'auto' (f16 for f16/bf16 checkpoints), 'f32', 'f16'. */
  dtype?: 'auto' | 'f32' | 'f16';
  /** Lowers the size at which weights are split across bindings (testing the phone path). */
  maxBindingBytes?: number;
  /**
   * The most wasm memory the loader holds at once for f32/f16/bf16 weights, in bytes (default
   * 256 MiB, at least 4096): tensors go to the GPU in pieces as their bytes arrive, whatever
   * their size. Lower it on memory-tight devices.
   */
  maxHostBytes?: number;
  /**
   * f16 arithmetic in the prefill and vision matrix products (default false): faster on GPUs
   * with `shader-f16` (see `Pinhole.support().f16`), but outputs move by about 1e-3 and may
   * no longer equal transformers token for token. Rejects with 'bad-request' where the
   * adapter has no `shader-f16`.
   */
  f16Math?: boolean;
}

/** Memory of the engine at the end of a load (`Pinhole.memory`). */
export interface LoadMemory {
  /** Size of the engine's wasm memory (it never shrinks, so this is its peak so far); null if unknown. */
  wasmBytes: number | null;
  /** The most wasm memory the loader held at once for float weights during this load. */
  loaderPeakBytes: number;
  /** The bound it kept to (`maxHostBytes`, or the default 256 MiB). */
  hostBoundBytes: number;
}

/** A part of a chat message's content, as transformers' apply_chat_template takes it. */
export type ChatContentPart = { type: 'image' } | { type: 'text'; text: string };

/** One turn of a conversation (chat models such as SmolVLM). */
export interface ChatMessage {
  /** 'user', 'assistant' or 'system' (whatever the model's chat template knows). */
  role: string;
  /** A list of parts (exactly one `{type: 'image'}` in the whole conversation), or plain text. */
  content: ChatContentPart[] | string;
}

export interface GenerateOptions {
  /**
   * PaliGemma prompts: 'caption en', 'describe en', 'answer en <question>', 'detect <object>',
   * 'ocr' (default 'caption en'). Chat models (SmolVLM): a question, asked as one user turn with
   * the image first through the model's chat template (default 'Describe this image.').
   */
  prompt?: string;
  /**
   * Chat models: the conversation instead of `prompt`, rendered by the model folder's chat
   * template with the generation prompt (as `apply_chat_template(messages,
   * add_generation_prompt=True)`); its one `{type: 'image'}` part is the image argument.
   */
  messages?: ChatMessage[];
  /** Chat models: use `prompt` as it is, no template (it must contain `<image>` once). */
  rawPrompt?: boolean;
  /** Default 32. */
  maxNewTokens?: number;
  /** Stops generation between tokens; the promise rejects with code 'aborted'. */
  signal?: AbortSignal;
}

/** A box from `<locYYYY>` tokens, coordinates normalised to [0, 1] of the image. */
export interface DetectionBox {
  label: string;
  xMin: number;
  yMin: number;
  xMax: number;
  yMax: number;
}

export interface Timings {
  imageEncodeMs: number;
  prefillMs: number;
  decodeMs: number;
  tokensPerSecond: number;
}

export interface GenerateResult {
  text: string;
  /** Generated ids, including the EOS id when generation stopped on it. */
  tokenIds: number[];
  boxes: DetectionBox[];
  timings: Timings;
  stoppedOnEos: boolean;
  /** Length of the prompt in tokens (image tokens included). */
  promptTokens: number;
}

export interface StreamPiece {
  /** The text this token added. */
  text: string;
  tokenId: number;
}

export interface AdapterInfo {
  vendor: string;
  architecture: string;
  description: string;
}

export interface Support {
  webgpu: boolean;
  f16: boolean;
  subgroups: boolean;
  /** A software (fallback) adapter such as SwiftShader: correct but slow. */
  fallbackAdapter: boolean;
  adapter: AdapterInfo | null;
  limits: Record<string, number> | null;
  /** Why WebGPU is not usable, when it is not. */
  message?: string;
}

export interface ModelInfo {
  /** 'paligemma', 'blip-2+phi' or 'smolvlm' (SmolVLM and Idefics3). */
  modelType: string;
  /** [height, width] of the pixels the vision tower takes (SmolVLM: of one tile). */
  imageSize: [number, number];
  imageTokens: number;
  weightDtype: 'f32' | 'f16';
  weightBytes: number;
  contextLength: number;
  /** A chat model: prompts go through its chat template, and `messages` are accepted. */
  chat: boolean;
  /** The folder has a chat template (chat models without one need `rawPrompt`). */
  chatTemplate: boolean;
}

/** The engine's adapter, as wgpu sees it. */
export interface EngineAdapter {
  name: string;
  backend: string;
  deviceType: string;
  driver: string;
  isSoftware: boolean;
  shaderF16: boolean;
  subgroups: boolean;
  features: string[];
  limits: Record<string, number>;
  weightBindingLimit: number;
}

export interface CachedModel {
  url: string;
  files: { name: string; bytes: number | null }[];
  bytes: number;
  /** A complete load finished (the next load needs no network). */
  complete: boolean;
}

export interface KernelCaseReport {
  name: string;
  bindingLimit: number;
  passed: boolean;
  maxRelError: number | null;
  tol: number;
  message: string;
}

export interface KernelTestReport {
  adapter: string;
  isSoftware: boolean;
  devices: number;
  totalCases: number;
  ran: number;
  passed: number;
  failed: number;
  ok: boolean;
  notes: string[];
  ms: number;
  cases: KernelCaseReport[];
}

