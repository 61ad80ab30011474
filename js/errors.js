// @ts-check
// PinholeError: every failure of the package is a rejected promise with one of these.
// `code` is stable (switch on it); `message` says what happened and what to do.

/** @type {readonly import('./types.js').PinholeErrorCode[]} */
export const ERROR_CODES = Object.freeze([
  'no-webgpu', // the browser has no WebGPU (or no adapter): see the message for what to do
  'network', // a download failed (offline, HTTP error, CORS)
  'bad-model', // a model file is missing, corrupt or does not match config.json
  'bad-image', // the image cannot be decoded or has no pixels
  'prompt-too-long', // prompt + image tokens + maxNewTokens exceed the model's context
  'bad-request', // an option is out of range (maxNewTokens 0, unknown dtype, ...)
  'aborted', // the AbortSignal fired
  'device-lost', // the GPU device was lost: the next call opens a new one and reloads the model
  'gpu', // WebGPU reported a validation or out-of-memory error
  'busy', // a model call was made while another one runs (await the first)
  'disposed', // the model was disposed
  'internal', // a bug (a Rust panic): the worker recovers, the next call works
]);

export class PinholeError extends Error {
  /**
   * @param {import('./types.js').PinholeErrorCode | string} code one of ERROR_CODES
   * @param {string} message
   * @param {{cause?: unknown}} [options]
   */
  constructor(code, message, options) {
    super(message, options);
    /** @type {'PinholeError'} */
    this.name = 'PinholeError';
    /** @type {import('./types.js').PinholeErrorCode} */
    this.code = ERROR_CODES.includes(/** @type {any} */ (code)) ? /** @type {import('./types.js').PinholeErrorCode} */ (code) : 'internal';
  }

  /** A plain object that survives postMessage. */
  toJSON() {
    return { code: this.code, message: this.message };
  }
}

/** Turns anything thrown (a wasm Error with `code`, a DOMException, a TypeError) into a PinholeError. */
export function toPinholeError(e, fallbackCode = 'internal') {
  if (e instanceof PinholeError) return e;
  if (e && typeof e === 'object') {
    if (e.name === 'AbortError') return new PinholeError('aborted', 'aborted by the AbortSignal', { cause: e });
    if (typeof e.code === 'string' && ERROR_CODES.includes(e.code)) {
      return new PinholeError(e.code, String(e.message ?? e), { cause: e });
    }
    if (typeof WebAssembly !== 'undefined' && e instanceof WebAssembly.RuntimeError) {
      return new PinholeError('internal', `the engine crashed (${e.message}); it restarts on the next call`, { cause: e });
    }
    if (typeof e.message === 'string') return new PinholeError(fallbackCode, e.message, { cause: e });
  }
  return new PinholeError(fallbackCode, String(e));
}

/** Rebuilds a PinholeError from its toJSON() form (worker → page). */
export function fromJSON(o) {
  return new PinholeError(o?.code ?? 'internal', o?.message ?? 'unknown error');
}

export function abortError() {
  return new PinholeError('aborted', 'aborted by the AbortSignal');
}

export const NO_WEBGPU_MESSAGE =
  'WebGPU is not available in this browser (navigator.gpu is missing). Use Chrome or Edge 113 or newer ' +
  '(on Linux, enable chrome://flags/#enable-unsafe-webgpu or start with --enable-unsafe-webgpu), Safari 26 or newer, ' +
  'or Firefox 141 or newer on Windows; the page must come from https:// or http://localhost.';

export const NO_ADAPTER_MESSAGE =
  'WebGPU is present but the browser gave no GPU adapter (the GPU may be blocklisted or WebGPU disabled in ' +
  'settings). Update the browser and GPU driver, check chrome://gpu, or try another browser.';
