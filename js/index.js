// @ts-check
// pinhole: vision-language models on the user's GPU through WebGPU.
//
//   import { Pinhole } from 'pinhole';
//   const vlm = await Pinhole.load('https://host/model-folder/', { onProgress, signal });
//   const { text, tokenIds, boxes, timings } = await vlm.generate(image, { prompt: 'caption en' });
//   // chat models (SmolVLM): a question, or the conversation as apply_chat_template takes it
//   await vlm.generate(image, { messages: [{ role: 'user', content: [{ type: 'image' }, { type: 'text', text: 'Describe this image.' }] }] });
//   for await (const { text } of vlm.stream(image, { prompt: 'describe en' })) out.append(text);
//   vlm.dispose();
//
// The engine (Rust compiled to wasm, in pkg/) runs in a module worker by default, so the page
// never freezes; `worker: false` runs it on the calling thread. Frames are turned into
// ImageBitmaps here and transferred to the worker; encoded image files go as Blobs and are
// decoded by the same Rust code as the desktop CLI, so captions match it.

import { PinholeError, toPinholeError, fromJSON, abortError, NO_WEBGPU_MESSAGE, NO_ADAPTER_MESSAGE, ERROR_CODES } from './errors.js';
import { listCache, deleteCache, CACHE_NAME, baseUrl } from './cache.js';
import { dispatch } from './dispatch.js';
import { bundledModel, BUNDLED_MODEL } from './bundled.js';

export { PinholeError, ERROR_CODES, CACHE_NAME };

/** @type {ImageBitmapOptions} */
const BITMAP_OPTIONS = { premultiplyAlpha: 'none', colorSpaceConversion: 'none' };

/** The worker-backed engine: every call is a message; aborts are messages too. */
class WorkerBackend {
  constructor() {
    this.worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'pinhole' });
    this.next = 1;
    this.calls = new Map();
    this.worker.onmessage = (ev) => this.onMessage(ev.data);
    this.worker.onerror = (ev) => {
      ev.preventDefault?.();
      const err = new PinholeError('internal', `the pinhole worker failed to start or crashed: ${ev.message ?? 'unknown error'}`);
      for (const c of this.calls.values()) c.reject(err);
      this.calls.clear();
      this.broken = err;
    };
  }

  onMessage(m) {
    const c = this.calls.get(m.id);
    if (!c) return;
    if (m.type === 'progress') c.onProgress?.(m.event);
    else if (m.type === 'token') c.onToken?.(m.piece);
    else {
      this.calls.delete(m.id);
      c.cleanup();
      if (m.type === 'result') c.resolve(m.value);
      else c.reject(fromJSON(m.error));
    }
  }

  /**
   * @param {string} op
   * @param {import('./dispatch.js').Payload} [payload]
   * @param {import('./dispatch.js').Callbacks & {transfer?: Transferable[]}} [callbacks]
   * @returns {Promise<any>}
   */
  call(op, payload = {}, { signal, onProgress, onToken, transfer = [] } = {}) {
    if (this.broken) return Promise.reject(this.broken);
    if (signal?.aborted) return Promise.reject(abortError());
    const id = this.next++;
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        // The worker stops between tokens / chunks; the caller is answered now.
        this.worker.postMessage({ op: 'abort', target: id });
        const c = this.calls.get(id);
        if (c) {
          c.onToken = null;
          c.onProgress = null;
          c.resolve = () => {};
          c.reject = () => {};
        }
        reject(abortError());
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.calls.set(id, {
        resolve,
        reject,
        onProgress,
        onToken,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      });
      this.worker.postMessage({ id, op, ...payload }, transfer);
    });
  }

  terminate() {
    this.worker.terminate();
    const err = new PinholeError('disposed', 'the model was disposed');
    for (const c of this.calls.values()) c.reject(err);
    this.calls.clear();
    this.broken = err;
  }
}

/** The same engine on the calling thread. */
class LocalBackend {
  constructor() {
    this.enginePromise = import('./engine.js').then((m) => new m.Engine());
  }

  /**
   * @param {string} op
   * @param {import('./dispatch.js').Payload} [payload]
   * @param {import('./dispatch.js').Callbacks & {transfer?: Transferable[]}} [callbacks]
   * @returns {Promise<any>}
   */
  async call(op, payload = {}, { signal, onProgress, onToken } = {}) {
    const engine = await this.enginePromise;
    try {
      return await dispatch(engine, op, payload, { signal, onProgress, onToken });
    } catch (e) {
      throw toPinholeError(e);
    }
  }

  terminate() {}
}

function makeBackend(worker) {
  if (worker !== false && typeof Worker !== 'undefined') return new WorkerBackend();
  return new LocalBackend();
}

/**
 * A model URL made absolute against the calling page (document.baseURI), so a relative URL means
 * the same with the worker (whose own base is its script's URL) as without it.
 */
function resolveSource(source) {
  if (source === undefined || source === BUNDLED_MODEL) return bundledModel();
  if (source instanceof URL) return source.href;
  if (typeof source !== 'string') return source;
  try {
    return new URL(source, baseUrl()).href;
  } catch (e) {
    throw new PinholeError('bad-request', `not a model URL: ${source} (${e?.message ?? e})`);
  }
}

function isA(x, name) {
  const C = globalThis[name];
  return typeof C === 'function' && x instanceof C;
}

/**
 * Converts any supported image source into what the engine takes (Blob, ImageData or
 * ImageBitmap) plus the objects to transfer.
 */
async function prepareImage(image) {
  if (image == null) throw new PinholeError('bad-image', 'no image given');
  if (isA(image, 'Blob') || isA(image, 'ImageData')) return { value: image, transfer: [] };
  if (isA(image, 'ImageBitmap')) return { value: image, transfer: [] }; // the caller's: copied, not transferred
  if (typeof image === 'object' && image.data && image.width && image.height && !isA(image, 'HTMLElement')) {
    return { value: { data: image.data, width: image.width, height: image.height }, transfer: [] };
  }
  if (typeof createImageBitmap !== 'function') throw new PinholeError('bad-image', 'this environment has no createImageBitmap; pass a Blob or ImageData');
  try {
    if (isA(image, 'HTMLImageElement')) {
      if (!image.complete || !image.naturalWidth) await image.decode();
    } else if (isA(image, 'HTMLVideoElement')) {
      if (image.readyState < 2 || !image.videoWidth) {
        throw new PinholeError('bad-image', 'the video has no frame yet: wait for its "loadeddata" event');
      }
    } else if (!(isA(image, 'HTMLCanvasElement') || isA(image, 'OffscreenCanvas') || isA(image, 'VideoFrame') || isA(image, 'SVGImageElement'))) {
      throw new PinholeError('bad-image', 'unsupported image: give an HTMLImageElement, canvas, OffscreenCanvas, ImageBitmap, ImageData, VideoFrame, video element or an image Blob/File');
    }
    const bmp = await createImageBitmap(image, BITMAP_OPTIONS);
    return { value: bmp, transfer: [bmp] };
  } catch (e) {
    if (e instanceof PinholeError) throw e;
    throw new PinholeError('bad-image', `cannot read the image: ${e?.message ?? e}`, { cause: e });
  }
}

/**
 * The request's text options as the engine takes them. `messages` are copied as JSON here, so
 * an image object a caller put inside a part (which the worker could not receive) is dropped
 * rather than failing the call; the engine checks their shape.
 * @param {import('./types.js').GenerateOptions} options
 */
function textOptions({ prompt, messages, rawPrompt, maxNewTokens = 32 }) {
  if (messages === undefined) return { prompt, rawPrompt, maxNewTokens };
  let plain;
  try {
    plain = JSON.parse(JSON.stringify(messages));
  } catch (e) {
    throw new PinholeError('bad-request', `messages must be JSON-serialisable: ${e?.message ?? e}`);
  }
  return { prompt, messages: plain, rawPrompt, maxNewTokens };
}

/** A queue that turns pushed values into an async iterator. */
function channel() {
  const items = [];
  let wake = null;
  let done = false;
  let error = null;
  return {
    push(v) {
      items.push(v);
      wake?.();
    },
    end(err) {
      done = true;
      error = err ?? null;
      wake?.();
    },
    async *iterate() {
      for (;;) {
        if (items.length) {
          yield items.shift();
          continue;
        }
        if (done) {
          if (error) throw error;
          return;
        }
        await new Promise((r) => {
          wake = r;
        });
        wake = null;
      }
    },
  };
}

function adapterFacts(info, adapter) {
  const arch = `${info?.architecture ?? ''} ${info?.description ?? ''} ${info?.vendor ?? ''}`.toLowerCase();
  const software = /swiftshader|llvmpipe|lavapipe|warp|software|microsoft basic render/.test(arch);
  return {
    fallbackAdapter: Boolean(info?.isFallbackAdapter ?? adapter?.isFallbackAdapter ?? false) || software,
    adapter: { vendor: info?.vendor ?? '', architecture: info?.architecture ?? '', description: info?.description ?? '' },
  };
}

export class Pinhole {
  /** @private */
  constructor(backend, loaded) {
    this._backend = backend;
    this._disposed = false;
    /** Model facts: image size and tokens, weight dtype and bytes, context length. @type {import('./types.js').ModelInfo | null} */
    this.info = loaded?.info ?? null;
    /** The engine's adapter (name, backend, isSoftware, shaderF16, limits ...). @type {import('./types.js').EngineAdapter | null} */
    this.adapter = loaded?.adapter ?? null;
    /** Milliseconds the load took. @type {number | null} */
    this.loadMs = loaded?.loadMs ?? null;
    /** The engine's memory at the end of the load: wasm memory, the loader's peak for weights, its bound. @type {import('./types.js').LoadMemory | null} */
    this.memory = loaded?.memory ?? null;
  }

  /**
   * Loads a model: a URL of a folder in Hugging Face layout, a FileList / File[], a
   * FileSystemDirectoryHandle, or nothing (or 'pinhole-shapes') for the model in the package.
   */
  /**
   * @param {import('./types.js').ModelSource | import('./types.js').BundledModelName} [source]
   * @param {import('./types.js').LoadOptions} [options]
   * @returns {Promise<Pinhole>}
   */
  static async load(source, { onProgress, signal, worker = true, dtype = 'auto', maxBindingBytes, maxHostBytes, f16Math = false } = {}) {
    if (signal?.aborted) throw abortError();
    if (maxHostBytes !== undefined && !(typeof maxHostBytes === 'number' && Number.isFinite(maxHostBytes) && maxHostBytes >= 4096)) {
      throw new PinholeError('bad-request', `maxHostBytes must be a number of bytes ≥ 4096 (got ${String(maxHostBytes)}); leave it out for the default of 256 MiB`);
    }
    if (typeof f16Math !== 'boolean') throw new PinholeError('bad-request', `f16Math must be true or false (got ${String(f16Math)})`);
    if (!globalThis.navigator?.gpu) throw new PinholeError('no-webgpu', NO_WEBGPU_MESSAGE);
    if (source === null || source === '') throw new PinholeError('bad-request', "Pinhole.load needs a model folder URL, a FileList / File[], a FileSystemDirectoryHandle, or nothing (or 'pinhole-shapes') for the bundled model");
    const resolved = resolveSource(source);
    const backend = makeBackend(worker);
    try {
      const loaded = await backend.call('load', { source: resolved, options: { dtype, maxBindingBytes, maxHostBytes, f16Math } }, { signal, onProgress });
      return new Pinhole(backend, loaded);
    } catch (e) {
      backend.terminate();
      throw toPinholeError(e);
    }
  }

  /**
   * What this browser offers: { webgpu, f16, subgroups, fallbackAdapter, adapter, limits }.
   * @returns {Promise<import('./types.js').Support>}
   */
  static async support() {
    const gpu = globalThis.navigator?.gpu;
    const none = { webgpu: false, f16: false, subgroups: false, fallbackAdapter: false, adapter: null, limits: null };
    if (!gpu) return { ...none, message: NO_WEBGPU_MESSAGE };
    let adapter = null;
    try {
      adapter = await gpu.requestAdapter({ powerPreference: 'high-performance' });
    } catch {
      adapter = null;
    }
    if (!adapter) return { ...none, message: NO_ADAPTER_MESSAGE };
    const info = adapter.info ?? (await adapter.requestAdapterInfo?.().catch(() => null));
    const limits = {};
    for (const k of ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupsPerDimension', 'maxStorageBuffersPerShaderStage']) {
      limits[k] = adapter.limits?.[k];
    }
    return {
      webgpu: true,
      f16: adapter.features.has('shader-f16'),
      subgroups: adapter.features.has('subgroups'),
      ...adapterFacts(info, adapter),
      limits,
    };
  }

  /** The model cache (Cache Storage). */
  static cache = {
    /** @returns {Promise<import('./types.js').CachedModel[]>} */
    list: () => listCache(),
    /**
     * Deletes one model folder's files (or all with no argument); resolves to the number of entries removed.
     * @param {string | URL} [url]
     * @returns {Promise<number>}
     */
    delete: (url) => deleteCache(url),
  };

  /**
   * Runs the kernel test cases shared with the native tests under this browser's WebGPU (each
   * case against the CPU reference, on the adapter's limit and a lowered binding limit).
   */
  /**
   * @param {{worker?: boolean, filter?: string}} [options]
   * @returns {Promise<import('./types.js').KernelTestReport>}
   */
  static async runKernelTests({ worker = true, filter } = {}) {
    if (!globalThis.navigator?.gpu) throw new PinholeError('no-webgpu', NO_WEBGPU_MESSAGE);
    const backend = makeBackend(worker);
    try {
      return await backend.call('kernelTests', { filter });
    } finally {
      backend.terminate();
    }
  }

  _check() {
    if (this._disposed) throw new PinholeError('disposed', 'this model was disposed; load it again');
  }

  /**
   * Generates text for one image.
   * @param {import('./types.js').ImageInput} image
   * @param {import('./types.js').GenerateOptions} [options]
   * @returns {Promise<import('./types.js').GenerateResult>}
   */
  async generate(image, { signal, ...options } = {}) {
    this._check();
    if (signal?.aborted) throw abortError();
    const text = textOptions(options);
    const { value, transfer } = await prepareImage(image);
    return this._backend.call('generate', { image: value, options: text }, { signal, transfer });
  }

  /**
   * Generates and yields each new piece of text as soon as it is known: { text, tokenId }.
   * @param {import('./types.js').ImageInput} image
   * @param {import('./types.js').GenerateOptions} [options]
   * @returns {AsyncGenerator<import('./types.js').StreamPiece, import('./types.js').GenerateResult, undefined>}
   */
  async *stream(image, { signal, ...options } = {}) {
    this._check();
    const text = textOptions(options);
    const ch = channel();
    const inner = new AbortController();
    const onOuterAbort = () => inner.abort();
    signal?.addEventListener('abort', onOuterAbort, { once: true });
    if (signal?.aborted) inner.abort();
    let finished = false;
    try {
      const { value, transfer } = await prepareImage(image);
      const p = this._backend.call('generate', { image: value, options: text, stream: true }, { signal: inner.signal, transfer, onToken: (piece) => ch.push(piece) });
      p.then(
        () => ch.end(),
        (e) => ch.end(e),
      );
      yield* ch.iterate();
      // The generator's return value is the whole result (timings, boxes), for callers that
      // drive the iterator themselves; `for await` ignores it.
      const result = await p;
      finished = true;
      return result;
    } finally {
      signal?.removeEventListener('abort', onOuterAbort);
      // The consumer left the loop early (break/return/throw): stop generating.
      if (!finished) inner.abort();
    }
  }

  /** Frees the model's GPU memory and ends its worker. */
  dispose() {
    if (this._disposed) return;
    this._disposed = true;
    const b = this._backend;
    b.call('dispose').finally(() => b.terminate()).catch(() => {});
  }

  /**
   * Test hook: destroys the engine's GPUDevice now, as a GPU reset would (a call in flight
   * rejects with code 'device-lost'; the next call opens a new device and reloads the model).
   */
  _debugLoseDevice() {
    this._check();
    return this._backend.call('debugLoseDevice');
  }

  /** Test hook: makes the engine panic (the call rejects with code 'internal'). */
  _debugPanic() {
    this._check();
    return this._backend.call('debugPanic');
  }
}

export default Pinhole;
